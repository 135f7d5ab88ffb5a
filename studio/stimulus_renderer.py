"""The render callable of listening tests: a checkpoint condition -> one clip.

:class:`StimulusRenderer` is what :func:`studio.listening.render_stimuli` calls for
checkpoint conditions: ``renderer(condition, text, seed) -> RenderedClip``.  It renders
through a :class:`studio.synthesis.SynthesizerPool` (the server's shared one, so a
model the Explorer already loaded is not loaded again; a checkpoint file rewritten in
place is loaded again).

Condition settings (``studio.listening.SETTING_NAMES``) map onto the synthesizer:
``steps, solver, schedule, sway, cfg, duration_scale, temperature, speaker`` are
``synthesize`` options, checked against :data:`core.sampling.options.SAMPLER_OPTIONS`;
a sampler option the condition leaves out takes the checkpoint's own default (its
config's ``sampling`` section), exactly as ``python -m core synth`` does.  ``vocoder``
is the ``from_checkpoint`` vocoder spec (default ``"auto"``).  The seed is the
condition's.  Time convention (core's): noise at t = 0 to the mel at t = 1.

The clip's provenance is ``Synthesis.settings`` (text, the resolved options, seed,
vocoder name, checkpoint path + sha256, code version, ...) plus ``nfe`` and
``timings``; its ``vocoder`` entry names the vocoder that really made the clip (e.g.
``griffin-lim`` when ``auto`` found no Vocos), which the studio shows next to each
condition and the CSV export reports.
"""

from __future__ import annotations

from typing import Optional

from core.sampling.options import OPTION, check_sampler_options
from studio.listening import SETTING_NAMES, Condition, ListeningError, RenderedClip
from studio.synthesis import Loader, SynthesizerPool

__all__ = ["StimulusRenderer", "synthesis_options", "DEFAULT_VOCODER"]

DEFAULT_VOCODER = "auto"


def synthesis_options(settings: dict) -> dict:
    """The ``synthesize`` keyword options of a condition's ``settings`` (only those it
    gives: the rest take the checkpoint's defaults; ``vocoder`` left out), checked;
    raises :class:`core.ConfigError` naming a bad option and its valid values,
    :class:`ListeningError` for an unknown setting name."""
    unknown = [k for k in settings if k not in SETTING_NAMES]
    if unknown:
        raise ListeningError(f"unknown condition setting {unknown[0]!r}; valid: {', '.join(SETTING_NAMES)}")
    opts = check_sampler_options({k: v for k, v in settings.items() if k in OPTION})
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
        options = synthesis_options(condition.settings)
        vocoder = str(condition.settings.get("vocoder") or DEFAULT_VOCODER)
        result = self.pool.synthesize(condition.checkpoint, vocoder, text, seed=int(seed), **options)
        provenance = dict(result.settings, nfe=result.nfe, timings=dict(result.timings))
        return RenderedClip(result.audio, int(result.sample_rate), provenance)
