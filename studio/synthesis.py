"""Synthesis shared by every page of one studio server: loaded models, vocoder choices
and the CPU thread policy.

* :class:`SynthesizerPool` keeps loaded :class:`core.Synthesizer` objects, keyed by the
  checkpoint file (path, modification time, size) and the vocoder spec, at most
  ``max_models`` of them (least recently used dropped first).  The Explorer and Compare
  pages of every browser session and the listening-test stimulus renderer all use
  :func:`shared_pool`, so a checkpoint opened in two tabs is loaded once.
* Synthesis itself runs one call at a time per process (:meth:`SynthesizerPool.synthesize`
  holds the pool's compute lock): two renders at once on a small CPU only fight over
  the cores, and torch's thread pool collapses when oversubscribed.
* :data:`VOCODER_MODES` and :func:`vocoder_spec` are the vocoder choices every page
  offers (auto, Griffin-Lim, a Vocos folder inside the configured folders).

Time convention (core's): sampling runs from noise at t = 0 to the mel at t = 1.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import core
from core.config import choice_error

from .config import resolve_inside

__all__ = ["SynthesizerPool", "shared_pool", "VOCODER_MODES", "vocoder_spec", "Loader", "speaker_labels",
           "checkpoint_speakers", "checkpoint_info", "CheckpointInfo"]

VOCODER_MODES = ("auto", "griffin-lim", "vocos folder")
"""Vocoder choices of every page: ``auto`` (a Vocos model when one is found, else
Griffin-Lim; see :data:`core.vocoders.VOCODER_CHOICES`), ``griffin-lim``, or a Vocos
folder (``config.yaml`` + ``pytorch_model.bin``) inside the configured folders."""

Loader = Callable[[str, str], Any]  # (checkpoint path, vocoder spec) -> Synthesizer


def vocoder_spec(mode: str, folder: str, roots: Sequence[Path]) -> str:
    """The :func:`core.vocoders.load_vocoder` spec of a page's vocoder choice.  A Vocos
    folder must lie inside ``roots`` (:class:`studio.config.PathRefused` otherwise); an
    unknown mode is a :class:`core.ConfigError` listing the valid ones."""
    if mode not in VOCODER_MODES:
        raise choice_error("vocoder", mode, VOCODER_MODES)
    if mode == "vocos folder":
        if not (folder or "").strip():
            raise core.ConfigError("vocoder 'vocos folder' needs the folder (config.yaml + pytorch_model.bin)")
        return str(resolve_inside(folder.strip(), roots))
    return mode


def speaker_labels(speakers: Sequence[str], n: int) -> list[str]:
    """Labels of ``n`` speakers: their names, unnamed ones by index."""
    names = list(speakers) + [""] * max(0, n - len(speakers))
    return [name or str(i) for i, name in enumerate(names[:n])]


@dataclass(frozen=True)
class CheckpointInfo:
    """What a page needs to know about a checkpoint before rendering: its speaker labels,
    its model family (``flow`` or ``lewm``, see :mod:`core.families`) and the family's
    sampler defaults from its config (flow: ``config.sampling``; LeWM: ``temperature``,
    ``min_length_ratio``, ``max_length_ratio`` of ``config.lewm``)."""

    speakers: tuple[str, ...]
    family: str
    defaults: tuple[tuple[str, Any], ...]


_info_cache: dict[tuple[str, int, int], CheckpointInfo] = {}
_info_lock = threading.Lock()


def checkpoint_info(path: str | Path, *, cached_only: bool = False) -> Optional[CheckpointInfo]:
    """:class:`CheckpointInfo` of a checkpoint file (read with :func:`core.load_checkpoint`,
    which never runs code), remembered per file version for the whole process.  With
    ``cached_only`` no file is read: None when not known yet (a stat only)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        if cached_only:
            return None
        raise core.CheckpointError(f"{path}: cannot read the checkpoint; refresh the list") from None
    key = (str(p.resolve()), st.st_mtime_ns, st.st_size)
    with _info_lock:
        if key in _info_cache or cached_only:
            return _info_cache.get(key)
    ck = core.load_checkpoint(p)
    cfg = ck.config
    if cfg.model.family == "lewm":
        defaults = {k: getattr(cfg.lewm, k) for k in ("temperature", "min_length_ratio", "max_length_ratio")}
    else:
        defaults = {k: getattr(cfg.sampling, k) for k in ("steps", "solver", "schedule", "sway", "duration_scale",
                                                          "cfg", "temperature")}
    info = CheckpointInfo(tuple(speaker_labels(ck.speakers, cfg.model.n_speakers)), cfg.model.family,
                          tuple(defaults.items()))
    with _info_lock:
        _info_cache[key] = info
    return info


def checkpoint_speakers(path: str | Path, *, cached_only: bool = False) -> Optional[list[str]]:
    """Speaker labels of a checkpoint file (see :func:`checkpoint_info`)."""
    info = checkpoint_info(path, cached_only=cached_only)
    return None if info is None else list(info.speakers)


@dataclass(frozen=True)
class _Key:
    path: str
    mtime_ns: int
    size: int
    vocoder: str


class SynthesizerPool:
    """Loaded synthesizers shared by the sessions of one server process (thread-safe).

    device: where synthesis runs (``"auto"``: CUDA when available).  max_models: how
    many loaded synthesizers to keep.  loader: ``(checkpoint, vocoder) -> synthesizer``
    (default ``core.Synthesizer.from_checkpoint``; tests pass a fake).  ``loads``
    counts the cache misses.
    """

    def __init__(self, device: str = "auto", *, max_models: int = 4, loader: Optional[Loader] = None):
        if isinstance(max_models, bool) or not isinstance(max_models, int) or max_models < 1:
            raise ValueError(f"max_models must be an integer >= 1, got {max_models!r}")
        self.device = device
        self.max_models = max_models
        self._loader = loader or self._load
        self._cache: "OrderedDict[_Key, Any]" = OrderedDict()
        self._cache_lock = threading.Lock()
        self.compute_lock = threading.Lock()  # one load or synthesis at a time in this process
        self.loads = 0

    def _load(self, checkpoint: str, vocoder: str):
        return core.Synthesizer.from_checkpoint(checkpoint, device=self.device, vocoder=vocoder)

    def get(self, checkpoint: str | Path, vocoder: str = "auto"):
        """The synthesizer of ``checkpoint`` with ``vocoder`` (loaded on first use; a file
        rewritten in place is loaded again).  Raises CheckpointError for a missing file."""
        path = Path(checkpoint).resolve()
        try:
            st = path.stat()
        except OSError as exc:
            raise core.CheckpointError(f"{checkpoint}: cannot read the checkpoint ({exc.strerror or exc}); "
                                       "refresh the list") from None
        key = _Key(str(path), st.st_mtime_ns, st.st_size, str(vocoder))
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        with self.compute_lock:  # loading is heavy: never beside a synthesis
            with self._cache_lock:
                if key in self._cache:  # another thread loaded it meanwhile
                    return self._cache[key]
            synth = self._loader(str(path), key.vocoder)
            with self._cache_lock:
                for old in [k for k in self._cache if k.path == key.path and k.vocoder == key.vocoder]:
                    del self._cache[old]  # the file changed since it was loaded
                self._cache[key] = synth
                self.loads += 1
                while len(self._cache) > self.max_models:
                    self._cache.popitem(last=False)
            return synth

    def synthesize(self, checkpoint: str | Path, vocoder: str, text, **options):
        """``get(checkpoint, vocoder).synthesize(text, **options)`` under the compute lock."""
        synth = self.get(checkpoint, vocoder)
        with self.compute_lock:
            return synth.synthesize(text, **options)


@functools.lru_cache(maxsize=None)
def shared_pool(device: str) -> SynthesizerPool:
    """The synthesizer pool of this server process for ``device`` (one per device)."""
    return SynthesizerPool(device)
