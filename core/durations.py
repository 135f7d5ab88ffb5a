"""External token durations for training, instead of monotonic alignment search.

``training.durations`` (:class:`core.config.TrainingConfig`) picks the source:

* ``mas`` (default): none here; the model aligns tokens to frames itself (Matcha-TTS's
  monotonic alignment search) and learns the durations it finds.
* ``manifest``: a ``durations`` column in the manifest, frames per token, separated by
  spaces or commas (``"3 7 0 12"``); frames are mel frames of this project's front end
  (``hop_length`` samples each at ``sample_rate``).
* ``textgrid``: Praat TextGrids, e.g. written by the Montreal Forced Aligner, one
  ``<textgrid_dir>/<utterance id>.TextGrid`` per utterance.  Every interval of the tier
  ``textgrid_tier`` (empty ones, i.e. silences, included: they cover time too) is one
  token, in order, so the tier must be made with this project's tokens (e.g. a phone
  tokenizer whose symbols the aligner used).  An interval ``[t0, t1)`` owns the frames
  whose centre ``k * hop / sample_rate`` lies in it: boundaries
  ``round(t * sample_rate / hop)``; durations are their differences.

Either way the durations are checked per utterance when the dataset is scanned
(:func:`fit_to_frames`): one duration per token, non-negative, summing to the mel
frame count give or take :func:`tolerance` frames (a forced aligner's end time and the
STFT's frame count differ by a frame or so); the last token with frames absorbs that
difference.  A row that fails is skipped with a counted reason that says why, as every
other bad row is; a run in which every row fails stops with those reasons.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from .config import AudioConfig

__all__ = ["DURATION_SOURCES", "DurationError", "parse_durations", "textgrid_durations", "fit_to_frames",
           "tolerance", "duration_source"]

DURATION_SOURCES = ("mas", "manifest", "textgrid")


class DurationError(ValueError):
    """Durations that cannot be used for an utterance; the message says why."""


def parse_durations(text: str) -> tuple:
    """``"3 7 0 12"`` (spaces and/or commas) -> (3, 7, 0, 12); non-negative integers only."""
    parts = [p for p in str(text).replace(",", " ").split() if p]
    if not parts:
        raise DurationError("the durations column is empty")
    out = []
    for p in parts:
        try:
            value = int(p)
        except ValueError:
            raise DurationError(f"durations must be whole frame counts, got {p!r}") from None
        if value < 0:
            raise DurationError(f"durations must be >= 0, got {value}")
        out.append(value)
    return tuple(out)


def textgrid_durations(path: str | Path, tier: str, audio: AudioConfig) -> tuple:
    """Frames per interval of ``tier`` in a TextGrid file (module doc)."""
    try:
        from praatio import textgrid
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise DurationError("reading TextGrids needs the praatio package (pip install praatio)") from exc
    try:
        grid = textgrid.openTextgrid(str(path), includeEmptyIntervals=True)
    except FileNotFoundError:
        raise DurationError(f"no TextGrid {path}") from None
    except Exception as exc:  # praatio raises several kinds for a malformed file
        raise DurationError(f"cannot read TextGrid {path}: {str(exc).splitlines()[0] if str(exc) else exc!r}") \
            from None
    if tier not in grid.tierNames:
        raise DurationError(f"TextGrid {path} has no tier {tier!r}; tiers: {', '.join(grid.tierNames) or '(none)'}")
    entries = list(grid.getTier(tier).entries)
    if not entries or not hasattr(entries[0], "start"):
        raise DurationError(f"tier {tier!r} of {path} has no intervals")
    per_second = audio.sample_rate / audio.hop_length
    bounds = [round(entries[0].start * per_second)] + [round(e.end * per_second) for e in entries]
    bounds[0] = 0  # frames before the first interval belong to it
    return tuple(max(0, b - a) for a, b in zip(bounds[:-1], bounds[1:]))


def tolerance(n_frames: int) -> int:
    """Frames by which a duration sum may miss the mel frame count: max(3, 2 %)."""
    return max(3, round(0.02 * n_frames))


def fit_to_frames(durations: tuple, n_tokens: int, n_frames: int) -> tuple:
    """Check ``durations`` against the token and frame counts (module doc) and return them
    with the sum made exactly ``n_frames``; raises :class:`DurationError` with the reason."""
    if len(durations) != n_tokens:
        raise DurationError(f"{len(durations)} durations for {n_tokens} tokens (one per token of this "
                            "tokenizer is needed)")
    total = sum(durations)
    diff = n_frames - total
    if abs(diff) > tolerance(n_frames):
        raise DurationError(f"durations sum to {total} frames but the audio has {n_frames} (more than "
                            f"{tolerance(n_frames)} apart)")
    out = list(durations)
    k = max((i for i, d in enumerate(out) if d > 0), default=len(out) - 1)
    if out[k] + diff < 0:
        raise DurationError(f"durations sum to {total} frames, the audio has {n_frames}: the last token cannot "
                            "absorb the difference")
    out[k] += diff
    return tuple(out)


def duration_source(mode: str, audio: AudioConfig, textgrid_dir: str = "",
                    tier: str = "phones") -> Optional[Callable[[object], Optional[tuple]]]:
    """``utterance -> durations`` (None when the row has none) for a training run, or None
    for ``mas``."""
    if mode == "mas":
        return None
    if mode == "manifest":
        return lambda utt: getattr(utt, "durations", None)
    if mode == "textgrid":
        folder = Path(textgrid_dir)
        if not folder.is_dir():
            raise DurationError(f"training.textgrid_dir {textgrid_dir!r} is not a folder")

        def from_textgrid(utt) -> Optional[tuple]:
            path = folder / f"{utt.id}.TextGrid"
            return textgrid_durations(path, tier, audio) if path.is_file() else None

        return from_textgrid
    from .config import choice_error

    raise choice_error("duration source", mode, DURATION_SOURCES)
