"""The render callable of listening tests: a checkpoint condition -> one clip.

:class:`StimulusRenderer` is what :func:`studio.listening.render_stimuli` calls for
checkpoint conditions: ``renderer(condition, text, seed) -> RenderedClip``.  It renders
through a :class:`studio.synthesis.SynthesizerPool` (the server's shared one, so a
model the Explorer already loaded is not loaded again; a checkpoint file rewritten in
place is loaded again).

Condition settings (``studio.listening.SETTING_NAMES``) map onto the synthesizer, by
the family of the condition's checkpoint (:data:`FAMILY_SETTINGS`), so one test can mix
flow-matching and LeWM conditions:

* flow matching: ``steps, solver, schedule, sway, cfg, duration_scale, temperature``,
  checked against :data:`core.sampling.options.SAMPLER_OPTIONS`;
* LeWM: ``temperature`` (feedback noise, [0, 10]), ``min_length_ratio``,
  ``max_length_ratio`` (mel frames per text token);
* both: ``speaker``.

Only the family's options are passed; a setting of the other family (for example the
steps the Experimenter's form fills in for every condition) is not, and the clip's
provenance lists it under ``settings_not_applied``.  An option the condition leaves out
takes the checkpoint's own default (flow: its config's ``sampling`` section; LeWM: its
``lewm`` section), exactly as ``python -m core synth`` does.  ``vocoder``
is the ``from_checkpoint`` vocoder spec (default ``"auto"``).  The seed is the
condition's.  Time convention (core's): noise at t = 0 to the mel at t = 1.

The clip's provenance is ``Synthesis.settings`` (text, the resolved options, seed,
vocoder name, checkpoint path + sha256, code version, ...) plus ``nfe`` and
``timings``; its ``vocoder`` entry names the vocoder that really made the clip (e.g.
``griffin-lim`` when ``auto`` found no Vocos), which the studio shows next to each
condition and the CSV export reports.
"""

from __future__ import annotations

import math
from typing import Optional

from core.config import ConfigError, choice_error
from core.lewm.synthesizer import MAX_TEMPERATURE
from core.sampling.options import OPTION, check_sampler_options
from studio.listening import SETTING_NAMES, Condition, ListeningError, RenderedClip
from studio.synthesis import Loader, SynthesizerPool

__all__ = ["StimulusRenderer", "synthesis_options", "settings_not_applied", "DEFAULT_VOCODER", "FAMILY_SETTINGS"]

DEFAULT_VOCODER = "auto"
FAMILY_SETTINGS = {
    "flow": tuple(OPTION),
    "lewm": ("temperature", "min_length_ratio", "max_length_ratio"),
}
"""The condition settings that are ``synthesize`` options, per model family (plus
``speaker`` for both)."""


def _check_lewm(values: dict) -> dict:
    out = {}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        high = MAX_TEMPERATURE if name == "temperature" else 1000.0
        if not 0.0 <= value <= high:
            raise ConfigError(f"{name} must be in [0, {high:g}], got {value}")
        out[name] = float(value)
    return out


def settings_not_applied(settings: dict, family: str = "flow") -> list[str]:
    """The sampler settings of a condition that a checkpoint of ``family`` does not take."""
    return [k for k in settings if k not in FAMILY_SETTINGS[family] and k not in ("vocoder", "speaker")]


def synthesis_options(settings: dict, family: str = "flow") -> dict:
    """The ``synthesize`` keyword options of a condition's ``settings`` for a checkpoint
    of ``family`` (only those it gives and the family takes: the rest take the
    checkpoint's defaults; ``vocoder`` left out), checked; raises
    :class:`core.ConfigError` naming a bad option and its valid values,
    :class:`ListeningError` for an unknown setting name."""
    unknown = [k for k in settings if k not in SETTING_NAMES]
    if unknown:
        raise ListeningError(f"unknown condition setting {unknown[0]!r}; valid: {', '.join(SETTING_NAMES)}")
    if family not in FAMILY_SETTINGS:
        raise choice_error("model family", family, FAMILY_SETTINGS)
    given = {k: v for k, v in settings.items() if k in FAMILY_SETTINGS[family]}
    opts = check_sampler_options(given) if family == "flow" else _check_lewm(given)
    speaker = settings.get("speaker")
    if speaker is not None and speaker != "":
        opts["speaker"] = speaker
    return opts


class StimulusRenderer:
    """``renderer(condition, text, seed) -> RenderedClip`` for checkpoint conditions.

    pool: the synthesizer pool (default: a private one on ``device`` with ``loader``,
    for tests; the studio passes :func:`studio.synthesis.shared_pool`).  Safe to call
    from several threads: synthesis is serialised by the pool.
    """

    def __init__(self, device: str = "auto", *, max_models: int = 4, loader: Optional[Loader] = None,
                 pool: Optional[SynthesizerPool] = None):
        self.pool = pool or SynthesizerPool(device, max_models=max_models, loader=loader)

    @property
    def loads(self) -> int:
        """How many synthesizers the pool loaded (its cache misses)."""
        return self.pool.loads

    def synthesizer(self, checkpoint, vocoder: str = DEFAULT_VOCODER):
        """The pool's synthesizer of ``checkpoint`` with ``vocoder`` (loaded on first use;
        :class:`core.CheckpointError` when the file cannot be read)."""
        return self.pool.get(checkpoint, vocoder)

    def __call__(self, condition: Condition, text: str, seed: int) -> RenderedClip:
        if condition.checkpoint is None:
            raise ListeningError(f"condition {condition.label!r} has no checkpoint to render from")
        vocoder = str(condition.settings.get("vocoder") or DEFAULT_VOCODER)
        synth = self.pool.get(condition.checkpoint, vocoder)
        config = getattr(synth, "config", None)
        family = config.model.family if config is not None else "flow"
        options = synthesis_options(condition.settings, family)
        result = self.pool.synthesize(condition.checkpoint, vocoder, text, seed=int(seed), **options)
        provenance = dict(result.settings, nfe=result.nfe, timings=dict(result.timings))
        skipped = settings_not_applied(condition.settings, family)
        if skipped:
            provenance["settings_not_applied"] = skipped
        return RenderedClip(result.audio, int(result.sample_rate), provenance)
