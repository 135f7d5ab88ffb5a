"""The render callable of listening tests: a checkpoint condition -> one clip.

:class:`StimulusRenderer` is what :func:`studio.listening.render_stimuli` calls for
checkpoint conditions: ``renderer(condition, text, seed) -> RenderedClip``.  It wraps
``core.Synthesizer.from_checkpoint(checkpoint, device, vocoder).synthesize(text, ...)``
and keeps one synthesizer per (checkpoint file, vocoder spec) -- at most
``max_models`` of them, least recently used dropped first -- so a test with many
sentences loads each model once.  A checkpoint file rewritten in place (new mtime or
size) is loaded again.

Condition settings (``studio.listening.SETTING_NAMES``) map onto the synthesizer:
``steps, solver, schedule, sway, cfg, duration_scale, temperature, speaker`` are
``synthesize`` options (defaults: those of ``Synthesizer.synthesize``), ``vocoder`` is
the ``from_checkpoint`` vocoder spec (default ``"auto"``: cached Vocos, else
Griffin-Lim).  The seed is the condition's.  The time convention is core's: sampling
runs from noise at t = 0 to the mel at t = 1.

The clip's provenance is ``Synthesis.settings`` (text, options, seed, vocoder name,
checkpoint path + sha256, code version, ...) plus ``nfe`` and ``timings``; its
``vocoder`` entry names the vocoder that really made the clip (e.g. ``griffin-lim``
when ``auto`` found no Vocos), which the studio shows next to each condition.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import core
from studio.listening import SETTING_NAMES, Condition, ListeningError, RenderedClip

__all__ = ["StimulusRenderer", "synthesis_options", "DEFAULT_VOCODER"]

DEFAULT_VOCODER = "auto"
_OPTION_DEFAULTS = {"steps": 10, "solver": "euler", "schedule": "sway", "sway": -1.0, "duration_scale": 1.0,
                    "cfg": 0.0, "temperature": 1.0}


def synthesis_options(settings: dict) -> dict:
    """The ``synthesize`` keyword options of a condition's ``settings`` (defaults filled
    in, ``vocoder`` left out), validated by core's option check; raises
    :class:`core.ConfigError` naming a bad option, :class:`ListeningError` for an
    unknown setting name."""
    from core.sampling.synthesizer import check_options

    unknown = [k for k in settings if k not in SETTING_NAMES]
    if unknown:
        raise ListeningError(f"unknown condition setting {unknown[0]!r}; valid: {', '.join(SETTING_NAMES)}")
    opts = dict(_OPTION_DEFAULTS)
    opts.update({k: v for k, v in settings.items() if k in _OPTION_DEFAULTS})
    check_options(opts["steps"], opts["solver"], opts["schedule"], opts["sway"], opts["duration_scale"],
                  opts["cfg"], opts["temperature"], None)
    speaker = settings.get("speaker")
    if speaker is not None and speaker != "":
        opts["speaker"] = speaker
    return opts


@dataclass(frozen=True)
class _Key:
    path: str
    mtime_ns: int
    size: int
    vocoder: str


Loader = Callable[[str, str], Any]  # (checkpoint path, vocoder spec) -> Synthesizer


class StimulusRenderer:
    """``renderer(condition, text, seed) -> RenderedClip`` for checkpoint conditions.

    device: where synthesis runs (``"auto"``: CUDA when available).  max_models: how
    many loaded synthesizers to keep.  loader: ``(checkpoint, vocoder) -> synthesizer``
    (default ``core.Synthesizer.from_checkpoint``; tests pass a fake).  Safe to call
    from several threads: loading and synthesis are serialised by one lock.
    """

    def __init__(self, device: str = "auto", *, max_models: int = 4, loader: Optional[Loader] = None):
        if isinstance(max_models, bool) or not isinstance(max_models, int) or max_models < 1:
            raise ValueError(f"max_models must be an integer >= 1, got {max_models!r}")
        self.device = device
        self.max_models = max_models
        self._loader = loader or self._load
        self._cache: "OrderedDict[_Key, Any]" = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # how many synthesizers were loaded (the cache's misses)

    def _load(self, checkpoint: str, vocoder: str):
        return core.Synthesizer.from_checkpoint(checkpoint, device=self.device, vocoder=vocoder)

    def synthesizer(self, checkpoint: str | os.PathLike, vocoder: str = DEFAULT_VOCODER):
        """The cached synthesizer of ``checkpoint`` with ``vocoder`` (loaded on first use)."""
        path = Path(checkpoint).resolve()
        try:
            st = path.stat()
        except OSError as exc:
            raise ListeningError(f"checkpoint {checkpoint} cannot be read: {exc.strerror or exc}") from None
        key = _Key(str(path), st.st_mtime_ns, st.st_size, str(vocoder))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            for old in [k for k in self._cache if k.path == key.path and k.vocoder == key.vocoder]:
                del self._cache[old]  # the file changed since it was loaded
            synth = self._loader(str(path), key.vocoder)
            self.loads += 1
            self._cache[key] = synth
            while len(self._cache) > self.max_models:
                self._cache.popitem(last=False)
            return synth

    def __call__(self, condition: Condition, text: str, seed: int) -> RenderedClip:
        if condition.checkpoint is None:
            raise ListeningError(f"condition {condition.label!r} has no checkpoint to render from")
        options = synthesis_options(condition.settings)
        vocoder = str(condition.settings.get("vocoder") or DEFAULT_VOCODER)
        synth = self.synthesizer(condition.checkpoint, vocoder)
        with self._lock:
            result = synth.synthesize(text, seed=int(seed), **options)
        provenance = dict(result.settings, nfe=result.nfe, timings=dict(result.timings))
        return RenderedClip(result.audio, int(result.sample_rate), provenance)
