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
* LeWM: ``temperature`` ([0, 10]: feedback noise with a point predictor head, the
  sampling scale with a Gaussian one), ``min_length_ratio``, ``max_length_ratio`` (mel
  frames per text token), and a voice prompt: ``prompt_audio`` (an audio file) with
  ``prompt_text`` (its transcript), both or neither;
* both: ``speaker`` and ``vocoder`` (:data:`COMMON_SETTINGS`).

A setting of the other family is an error that lists the settings the condition's
family takes (:func:`synthesis_options`; :func:`check_condition` checks a condition
against its checkpoint before anything is rendered), so a clip's provenance never holds
a setting that did not apply.  An option the condition leaves out takes the
checkpoint's own default (flow: its config's ``sampling`` section; LeWM: its ``lewm``
section), exactly as ``python -m core synth`` does.  ``vocoder`` is the
``from_checkpoint`` vocoder spec (default ``"auto"``).  The seed is the condition's.
Time convention (core's): noise at t = 0 to the mel at t = 1.

Voice prompts and folders: a renderer given ``prompt_roots`` (the studio server's, see
:attr:`studio.config.StudioSettings.roots`) refuses a ``prompt_audio`` outside them
(:class:`studio.config.PathRefused`); ``python -m studio test create``, run by the
file's owner, reads any path.

The clip's provenance is ``Synthesis.settings`` (text, the resolved options, seed,
vocoder name, checkpoint path + sha256, code version, ...) plus ``nfe`` and
``timings``; its ``vocoder`` entry names the vocoder that really made the clip (e.g.
``griffin-lim`` when ``auto`` found no Vocos), which the studio shows next to each
condition and the CSV export reports.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

from core.config import ConfigError, choice_error
from core.lewm.synthesizer import MAX_TEMPERATURE
from core.sampling.options import OPTION, check_sampler_options
from studio.config import resolve_inside
from studio.listening import SETTING_NAMES, Condition, ListeningError, RenderedClip
from studio.synthesis import Loader, SynthesizerPool, checkpoint_info

__all__ = ["StimulusRenderer", "synthesis_options", "check_condition", "check_prompt_file", "DEFAULT_VOCODER",
           "FAMILY_SETTINGS", "COMMON_SETTINGS", "FAMILY_NAMES"]

DEFAULT_VOCODER = "auto"
FAMILY_SETTINGS = {
    "flow": tuple(OPTION),
    "lewm": ("temperature", "min_length_ratio", "max_length_ratio", "prompt_audio", "prompt_text"),
}
"""The condition settings that are ``synthesize`` options, per model family."""
COMMON_SETTINGS = ("speaker", "vocoder")
"""The condition settings every family takes."""
FAMILY_NAMES = {"flow": "flow-matching", "lewm": "LeWM"}
MAX_LENGTH_RATIO = 1000.0


def _check_lewm(values: dict, prompt_roots: Optional[Sequence[Path]]) -> dict:
    out: dict = {}
    for name in ("temperature", "min_length_ratio", "max_length_ratio"):
        if name not in values:
            continue
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        high = MAX_TEMPERATURE if name == "temperature" else MAX_LENGTH_RATIO
        if not 0.0 <= value <= high:
            raise ConfigError(f"{name} must be in [0, {high:g}], got {value}")
        out[name] = float(value)
    if "min_length_ratio" in out and "max_length_ratio" in out and not out["min_length_ratio"] < out["max_length_ratio"]:
        raise ConfigError(f"min_length_ratio must be below max_length_ratio, got {out['min_length_ratio']:g} and "
                          f"{out['max_length_ratio']:g}")
    audio, text = values.get("prompt_audio"), values.get("prompt_text")
    if audio is None and text is None:
        return out
    if not isinstance(audio, str) or not audio.strip():
        raise ConfigError("a voice prompt is prompt_audio (an audio file) with prompt_text (its transcript); "
                          f"prompt_audio is {audio!r}")
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("the voice prompt needs prompt_text: the words its clip says")
    path = Path(audio).expanduser()
    if prompt_roots is not None:
        path = resolve_inside(path, prompt_roots)
    out.update(prompt_audio=str(path), prompt_text=text.strip())
    return out


def synthesis_options(settings: dict, family: str = "flow", *,
                      prompt_roots: Optional[Sequence[Path]] = None) -> dict:
    """The ``synthesize`` keyword options of a condition's ``settings`` for a checkpoint
    of ``family`` (only those it gives: the rest take the checkpoint's defaults;
    ``vocoder`` left out), checked.  Raises :class:`ListeningError` for an unknown
    setting name, :class:`core.ConfigError` for a setting of the other family (listing
    the valid ones) or a bad value, :class:`studio.config.PathRefused` for a voice
    prompt outside ``prompt_roots`` (when given)."""
    unknown = [k for k in settings if k not in SETTING_NAMES]
    if unknown:
        raise ListeningError(f"unknown condition setting {unknown[0]!r}; valid: {', '.join(SETTING_NAMES)}")
    if family not in FAMILY_SETTINGS:
        raise choice_error("model family", family, FAMILY_SETTINGS)
    valid = FAMILY_SETTINGS[family] + COMMON_SETTINGS
    foreign = [k for k in settings if k not in valid]
    if foreign:
        other = FAMILY_NAMES["lewm" if family == "flow" else "flow"]
        raise ConfigError(f"{', '.join(foreign)} {'applies' if len(foreign) == 1 else 'apply'} to {other} "
                          f"checkpoints only; a {FAMILY_NAMES[family]} condition takes: {', '.join(valid)}")
    given = {k: v for k, v in settings.items() if k in FAMILY_SETTINGS[family]}
    opts = check_sampler_options(given) if family == "flow" else _check_lewm(given, prompt_roots)
    speaker = settings.get("speaker")
    if speaker is not None and speaker != "":
        opts["speaker"] = speaker
    return opts


def check_condition(condition: Condition, *, prompt_roots: Optional[Sequence[Path]] = None) -> dict:
    """The ``synthesize`` options of a checkpoint condition, checked against its
    checkpoint's family (read with :func:`studio.synthesis.checkpoint_info`, which never
    runs code), the voice prompt file read for its length; raises as
    :func:`synthesis_options` (the message naming the condition) or
    :class:`core.CheckpointError`.  Folder conditions give ``{}``."""
    if condition.checkpoint is None:
        return {}
    family = checkpoint_info(condition.checkpoint).family
    try:
        opts = synthesis_options(condition.settings, family, prompt_roots=prompt_roots)
        if "prompt_audio" in opts:
            check_prompt_file(opts["prompt_audio"])
    except (ConfigError, ListeningError) as exc:
        raise type(exc)(f"condition {condition.label!r}: {exc}") from None
    return opts


def check_prompt_file(path: str) -> None:
    """A voice prompt file must be audio that lasts as long as :mod:`core.lewm.prompt`
    allows; raises :class:`core.ConfigError` saying what is wrong (reads the header only)."""
    import soundfile as sf

    from core.lewm.prompt import MAX_PROMPT_SECONDS, MIN_PROMPT_SECONDS

    try:
        info = sf.info(path)
    except (RuntimeError, OSError) as exc:   # soundfile raises RuntimeError subclasses for unreadable files
        raise ConfigError(f"voice prompt {path}: not an audio file that can be read ({exc})") from None
    seconds = info.frames / info.samplerate
    if not MIN_PROMPT_SECONDS <= seconds <= MAX_PROMPT_SECONDS:
        raise ConfigError(f"voice prompt {path} lasts {seconds:.2f} s; it must last {MIN_PROMPT_SECONDS:g}-"
                          f"{MAX_PROMPT_SECONDS:g} s")


class StimulusRenderer:
    """``renderer(condition, text, seed) -> RenderedClip`` for checkpoint conditions.

    pool: the synthesizer pool (default: a private one on ``device`` with ``loader``,
    for tests; the studio passes :func:`studio.synthesis.shared_pool`).  prompt_roots:
    the folders a voice prompt may lie in (None: any; see the module docstring).  Safe to call
    from several threads: synthesis is serialised by the pool.
    """

    def __init__(self, device: str = "auto", *, max_models: int = 4, loader: Optional[Loader] = None,
                 pool: Optional[SynthesizerPool] = None, prompt_roots: Optional[Sequence[Path]] = None):
        self.pool = pool or SynthesizerPool(device, max_models=max_models, loader=loader)
        self.prompt_roots = None if prompt_roots is None else tuple(Path(r) for r in prompt_roots)

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
        try:
            options = synthesis_options(condition.settings, family, prompt_roots=self.prompt_roots)
        except (ConfigError, ListeningError) as exc:
            raise type(exc)(f"condition {condition.label!r}: {exc}") from None
        result = self.pool.synthesize(condition.checkpoint, vocoder, text, seed=int(seed), **options)
        provenance = dict(result.settings, nfe=result.nfe, timings=dict(result.timings))
        return RenderedClip(result.audio, int(result.sample_rate), provenance)
