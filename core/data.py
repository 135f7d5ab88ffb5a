"""Training data: utterance lists, a mel cache, a dataset, padded batches, a bucket sampler.

Readers turn an LJSpeech folder (``metadata.csv`` + ``wavs/``) or a CSV/JSONL manifest
into :class:`Utterance` rows.  :class:`TTSDataset` scans the rows once (without decoding
audio), skips bad ones with a counted, logged reason (:class:`LoadReport`) and yields
:class:`Item` s: token ids ``(L,)`` and a log-mel ``(n_mels, T)`` (the data end, t = 1,
of the flow x_t = (1-t) x0 + t x1).  :func:`collate` pads items into a :class:`Batch`
with masks; :class:`BucketBatchSampler` groups items of similar length under a frame
budget, deterministically per (seed, epoch), sharded across ranks and resumable.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple, Optional

import numpy as np
import torch

from .config import AudioConfig, choice_error
from .batching import BucketBatchSampler  # noqa: F401  (re-exported)

__all__ = ["DataError", "Utterance", "SkippedRow", "LoadReport", "read_ljspeech", "read_manifest",
           "read_dataset", "speaker_list", "MelCache", "Item", "TTSDataset", "Batch", "collate",
           "BucketBatchSampler", "Split", "split_validation", "DATA_FORMATS"]

log = logging.getLogger("core.data")
DATA_FORMATS = ("auto", "ljspeech", "manifest")
MAX_EXAMPLES_PER_REASON = 20


class DataError(ValueError):
    """A dataset or manifest cannot be read as a whole; the message names the file and the fix."""


@dataclass
class Utterance:
    """One row of a dataset: an audio file and its transcript (``speaker`` "" = single speaker)."""

    id: str
    audio_path: Path
    text: str
    speaker: str = ""
    durations: Optional[tuple] = None  # frames per token, from a manifest column (core.durations)


class SkippedRow(NamedTuple):
    """A row left out of a dataset: its id, the reason (a count key) and details."""

    row: str
    reason: str
    detail: str = ""


@dataclass
class LoadReport:
    """What a dataset scan kept and skipped: ``skipped`` maps reason -> count; ``examples``
    holds up to ``MAX_EXAMPLES_PER_REASON`` skipped rows per reason."""

    kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    examples: list[SkippedRow] = field(default_factory=list)

    def skip(self, row: str, reason: str, detail: str = "") -> None:
        count = self.skipped.get(reason, 0)
        if count == 0:
            log.warning("skipping rows: %s (first: %s%s)", reason, row, f": {detail}" if detail else "")
        self.skipped[reason] = count + 1
        if count < MAX_EXAMPLES_PER_REASON:
            self.examples.append(SkippedRow(row, reason, detail))

    def summary(self) -> str:
        total = sum(self.skipped.values())
        reasons = ", ".join(f"{r}: {n}" for r, n in sorted(self.skipped.items()))
        return f"kept {self.kept} of {self.kept + total} utterances" + (f"; skipped {reasons}" if total else "")


# --------------------------------------------------------------------------- readers


def read_ljspeech(folder: str | Path) -> list[Utterance]:
    """Read an LJSpeech-style folder: ``metadata.csv`` lines ``id|text|normalized`` (the
    normalized text when present and non-empty, else the text) and audio ``wavs/<id>.wav``.
    A line without text becomes a row with empty text, which the dataset skips."""
    folder = Path(folder)
    meta = folder / "metadata.csv"
    if not meta.is_file():
        raise DataError(f"{folder}: no metadata.csv (an LJSpeech folder has metadata.csv and wavs/)")
    rows = []
    for line in meta.read_text(encoding="utf-8-sig").splitlines():
        if not line.strip():
            continue
        parts = line.split("|")
        uid = parts[0].strip()
        text = parts[2] if len(parts) > 2 and parts[2].strip() else (parts[1] if len(parts) > 1 else "")
        rows.append(Utterance(uid, folder / "wavs" / f"{uid}.wav", text.strip()))
    return rows


_REQUIRED = ("audio_path", "text")


def _manifest_row(where: str, record: dict, base: Path) -> Utterance:
    missing = [k for k in _REQUIRED if k not in record]
    if missing:
        raise DataError(f"{where}: missing required column(s) {', '.join(missing)}; "
                        f"columns found: {', '.join(map(str, record)) or '(none)'}")
    raw = str(record["audio_path"] or "").strip()
    path = Path(raw)
    uid = str(record.get("id") or "").strip() or (str(path.with_suffix("")) if raw else where)
    durations = None
    value = record.get("durations")
    if value not in (None, "") and not (isinstance(value, list) and not value):
        from .durations import DurationError, parse_durations

        try:
            durations = parse_durations(" ".join(map(str, value)) if isinstance(value, list) else value)
        except DurationError as exc:
            raise DataError(f"{where}: {exc}") from None
    return Utterance(uid, path if path.is_absolute() else base / path, str(record["text"] or "").strip(),
                     str(record.get("speaker") or "").strip(), durations)


def read_manifest(path: str | Path) -> list[Utterance]:
    """Read a manifest: CSV with header ``audio_path,text[,speaker][,id][,durations]`` or
    JSONL objects with those keys (other columns are ignored; ``durations``: frames per
    token, :mod:`core.durations`).  Relative audio paths resolve against the
    manifest's folder; a missing id becomes the audio path without its suffix."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such manifest file")
    base = path.parent
    if path.suffix.lower() == ".jsonl":
        rows = []
        for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{n}: not a JSON object: {exc}") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{n}: each line must be a JSON object")
            rows.append(_manifest_row(f"{path}:{n}", record, base))
        return rows
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            found = [c.strip() for c in reader.fieldnames or []]
            missing = [k for k in _REQUIRED if k not in found]
            if missing:
                raise DataError(f"{path}: missing required column(s) {', '.join(missing)}; "
                                f"columns found: {', '.join(found) or '(none)'}")
            reader.fieldnames = found
            return [_manifest_row(f"{path}:{n}", rec, base) for n, rec in enumerate(reader, 2)]
    raise choice_error("manifest suffix", path.suffix, (".csv", ".jsonl"))


def read_dataset(path: str | Path, data_format: str = "auto") -> list[Utterance]:
    """Read ``path`` as ``ljspeech`` (a folder with metadata.csv) or ``manifest`` (a .csv or
    .jsonl file); ``auto`` picks by what ``path`` is."""
    if data_format not in DATA_FORMATS:
        raise choice_error("data format", data_format, DATA_FORMATS)
    path = Path(path)
    if data_format == "auto":
        if path.is_dir() and (path / "metadata.csv").is_file():
            data_format = "ljspeech"
        elif path.is_file() and path.suffix.lower() in (".csv", ".jsonl"):
            data_format = "manifest"
        else:
            raise DataError(f"{path}: cannot tell the data format; give an LJSpeech folder (with "
                            "metadata.csv and wavs/) or a .csv/.jsonl manifest")
    return read_ljspeech(path) if data_format == "ljspeech" else read_manifest(path)


def speaker_list(utterances: list[Utterance]) -> list[str]:
    """Sorted unique speaker names; a speaker's index in this list is its id."""
    return sorted({u.speaker for u in utterances})


# --------------------------------------------------------------------------- mel cache


def compute_mel(path: str | Path, audio: AudioConfig) -> torch.Tensor:
    """Decode ``path`` (mono, resampled to ``audio.sample_rate``) -> log-mel ``(n_mels, frames)``."""
    from .audio import load_wav, mel_spectrogram

    wav = load_wav(path, sample_rate=audio.sample_rate)
    return mel_spectrogram(wav.reshape(1, -1), audio)[0].float().contiguous()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    corrupt: int = 0


class MelCache:
    """Log-mels on disk under ``root/<settings hash>/<aa>/<file sha256>.npy``.

    The key is the sha256 of the audio file's bytes plus a hash of the mel settings, so
    editing the file or changing any audio setting misses the old entry.  Entries are
    written to a temporary file and renamed (safe with several workers or ranks; no fsync:
    a damaged entry is simply recomputed).  ``stats`` counts hits, misses and corrupt entries.
    """

    def __init__(self, root: str | Path, audio: AudioConfig):
        self.audio = audio
        settings = json.dumps({"cache_version": 1, **audio.mel_settings()}, sort_keys=True)
        self.settings_hash = hashlib.sha256(settings.encode()).hexdigest()[:16]
        self.root = Path(root) / self.settings_hash
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "settings.json").write_text(settings + "\n", encoding="utf-8")
        self.stats = CacheStats()

    def entry(self, path: str | Path) -> Path:
        """The cache file that holds (or would hold) the mel of ``path`` as it is now."""
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        return self.root / digest[:2] / f"{digest}.npy"

    def get(self, path: str | Path) -> torch.Tensor:
        """The log-mel ``(n_mels, frames)`` float32 of audio file ``path``, computed on a miss."""
        entry = self.entry(path)
        if entry.exists():
            try:
                mel = np.load(entry, allow_pickle=False)
                if mel.ndim != 2 or mel.shape[0] != self.audio.n_mels or mel.dtype != np.float32:
                    raise ValueError(f"unexpected array {mel.dtype} {mel.shape}")
                self.stats.hits += 1
                return torch.from_numpy(mel)
            except Exception as exc:  # truncated, garbage, wrong shape: recompute
                log.warning("mel cache entry %s is unreadable (%s); recomputing", entry, exc)
                self.stats.corrupt += 1
        self.stats.misses += 1
        mel = compute_mel(path, self.audio)
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{entry.stem}.", suffix=".tmp", dir=entry.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, mel.numpy(), allow_pickle=False)
            os.replace(tmp, entry)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return mel


# --------------------------------------------------------------------------- dataset


@dataclass
class Item:
    """One training example: ``tokens`` long ``(L,)``, ``mel`` float ``(n_mels, T)``."""

    id: str
    tokens: torch.Tensor
    mel: torch.Tensor
    speaker: int
    text: str
    durations: Optional[torch.Tensor] = None  # long (L,), frames per token, summing to T


def audio_info(utt: "Utterance", report: "LoadReport"):
    """``soundfile.info`` of an utterance's audio, or None after recording in ``report``
    why it is skipped (a missing or unreadable file).  Reads the header only."""
    import soundfile

    row = f"{utt.id} ({utt.audio_path})"
    if not Path(utt.audio_path).is_file():
        report.skip(row, "missing file")
        return None
    try:
        return soundfile.info(str(utt.audio_path))
    except Exception as exc:
        report.skip(row, "unreadable audio", str(exc).splitlines()[0] if str(exc) else "")
        return None


def _resampled_samples(n_samples: int, rate: int, audio: AudioConfig) -> int:
    """Samples after resampling to ``audio.sample_rate``: torchaudio's ceil(n * new / old)."""
    return -(-n_samples * audio.sample_rate // rate)


def _min_samples(audio: AudioConfig) -> int:
    """Shortest clip the mel front end accepts (reflect padding needs more than n_fft // 2)."""
    return audio.n_fft // 2 + 1 if audio.center else audio.n_fft


class TTSDataset(torch.utils.data.Dataset):
    """Utterances -> :class:`Item` s, after a scan that skips bad rows.

    The scan (no decoding: ``soundfile.info`` only) skips, with a counted reason in
    ``report``: a missing file, unreadable audio, empty audio, audio longer than
    ``max_seconds`` or too short for one STFT window, empty text, text that ``encode`` turns into no ids (or fails on), and
    a speaker not in ``speakers``.  ``lengths[i]`` is the mel frame count of kept item i.
    ``__getitem__`` returns ``None`` (logged) when decoding fails; :func:`collate` drops it.
    """

    def __init__(self, utterances: list[Utterance], audio: AudioConfig, encode: Callable[[str], list[int]],
                 speakers: list[str], max_seconds: float, cache: Optional[MelCache] = None,
                 durations: Optional[Callable[[Utterance], Optional[tuple]]] = None):
        from .audio import mel_frames
        from .durations import DurationError, fit_to_frames

        self.audio, self.cache = audio, cache
        self.speakers = list(speakers)
        speaker_ids = {s: i for i, s in enumerate(self.speakers)}
        self.report = LoadReport()
        self.utterances: list[Utterance] = []
        self.tokens: list[list[int]] = []
        self.lengths: list[int] = []
        self.durations: list[Optional[tuple]] = []
        for utt in utterances:
            row = f"{utt.id} ({utt.audio_path})"
            info = audio_info(utt, self.report)
            if info is None:
                continue
            if info.frames <= 0 or info.samplerate <= 0:
                self.report.skip(row, "empty audio")
                continue
            seconds = info.frames / info.samplerate
            if seconds > max_seconds:
                self.report.skip(row, "too long", f"{seconds:.2f} s > {max_seconds} s")
                continue
            n_samples = _resampled_samples(info.frames, info.samplerate, audio)
            if n_samples < _min_samples(audio):
                self.report.skip(row, "too short", f"{n_samples} samples < {_min_samples(audio)}")
                continue
            text = utt.text.strip()
            if not text:
                self.report.skip(row, "empty text")
                continue
            try:
                ids = list(encode(text))
            except Exception as exc:
                self.report.skip(row, "text not encodable", str(exc))
                continue
            if not ids:
                self.report.skip(row, "no tokens")
                continue
            if utt.speaker not in speaker_ids:
                self.report.skip(row, "unknown speaker", repr(utt.speaker))
                continue
            n_frames = int(mel_frames(n_samples, audio))
            given = None
            if durations is not None:
                try:
                    given = durations(utt)
                    if given is None:
                        self.report.skip(row, "no durations")
                        continue
                    given = fit_to_frames(given, len(ids), n_frames)
                except DurationError as exc:
                    self.report.skip(row, "durations do not fit", str(exc))
                    continue
            self.utterances.append(utt)
            self.tokens.append(ids)
            self.lengths.append(n_frames)
            self.durations.append(given)
        self.report.kept = len(self.utterances)
        (log.warning if self.report.skipped else log.info)("dataset: %s", self.report.summary())
        self._speaker_ids = speaker_ids

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> Optional[Item]:
        utt = self.utterances[index]
        try:
            mel = self.cache.get(utt.audio_path) if self.cache is not None else compute_mel(utt.audio_path, self.audio)
        except Exception as exc:  # never crash mid-epoch: the batch goes on without this item
            log.warning("dropping %s (%s): %s", utt.id, utt.audio_path, exc)
            return None
        d = self.durations[index]
        if d is not None and sum(d) != mel.shape[1]:  # the cached mel disagrees with the header's frame count
            log.warning("dropping %s (%s): %d mel frames, durations sum to %d", utt.id, utt.audio_path,
                        mel.shape[1], sum(d))
            return None
        return Item(utt.id, torch.tensor(self.tokens[index], dtype=torch.long), mel,
                    self._speaker_ids[utt.speaker], utt.text.strip(),
                    None if d is None else torch.tensor(d, dtype=torch.long))


# --------------------------------------------------------------------------- batches


@dataclass
class Batch:
    """Padded tensors of B items.

    ``tokens`` long ``(B, L)`` padded with id 0, ``token_mask`` bool ``(B, L)`` (True on
    real tokens), ``token_lengths`` long ``(B,)``; ``mel`` float ``(B, n_mels, T)`` padded
    with 0.0 (not silence, which is log(1e-7)), ``mel_mask`` bool ``(B, T)``,
    ``mel_lengths`` long ``(B,)``; ``speakers`` long ``(B,)``; ``durations`` long ``(B, L)``
    (frames per token, 0 on padding) when every item has external durations, else None.
    Padded positions carry no meaning: losses and attention must use the masks.
    """

    ids: list[str]
    texts: list[str]
    tokens: torch.Tensor
    token_mask: torch.Tensor
    token_lengths: torch.Tensor
    mel: torch.Tensor
    mel_mask: torch.Tensor
    mel_lengths: torch.Tensor
    speakers: torch.Tensor
    durations: Optional[torch.Tensor] = None

    _TENSORS = ("tokens", "token_mask", "token_lengths", "mel", "mel_mask", "mel_lengths", "speakers", "durations")

    def __len__(self) -> int:
        return len(self.ids)

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "Batch":
        return Batch(list(self.ids), list(self.texts),
                     **{k: None if getattr(self, k) is None else fn(getattr(self, k)) for k in self._TENSORS})

    def to(self, device: str | torch.device, non_blocking: bool = False) -> "Batch":
        """A copy with every tensor on ``device``."""
        return self._map(lambda x: x.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> "Batch":
        """Called by ``DataLoader(pin_memory=True)``."""
        return self._map(lambda x: x.pin_memory())


def collate(items: list[Optional[Item]]) -> Optional[Batch]:
    """Pad items into a :class:`Batch`; ``None`` items (failed decodes) are dropped and
    ``None`` is returned when nothing is left (the training loop skips such a step)."""
    items = [it for it in items if it is not None]
    if not items:
        return None
    n, n_mels = len(items), items[0].mel.shape[0]
    token_lengths = torch.tensor([len(it.tokens) for it in items], dtype=torch.long)
    mel_lengths = torch.tensor([it.mel.shape[1] for it in items], dtype=torch.long)
    tokens = torch.zeros(n, int(token_lengths.max()), dtype=torch.long)
    mel = torch.zeros(n, n_mels, int(mel_lengths.max()), dtype=torch.float32)
    durations = None
    if all(it.durations is not None for it in items):
        durations = torch.zeros(n, tokens.shape[1], dtype=torch.long)
    for i, it in enumerate(items):
        tokens[i, : len(it.tokens)] = it.tokens
        mel[i, :, : it.mel.shape[1]] = it.mel
        if durations is not None:
            durations[i, : len(it.durations)] = it.durations
    return Batch(
        ids=[it.id for it in items], texts=[it.text for it in items], tokens=tokens,
        token_mask=torch.arange(tokens.shape[1]) < token_lengths[:, None], token_lengths=token_lengths,
        mel=mel, mel_mask=torch.arange(mel.shape[2]) < mel_lengths[:, None], mel_lengths=mel_lengths,
        speakers=torch.tensor([it.speaker for it in items], dtype=torch.long), durations=durations)


# --------------------------------------------------------------------------- split


class Split(NamedTuple):
    train: list[Utterance]
    val: list[Utterance]


def _unit_hash(seed: int, uid: str) -> float:
    return int.from_bytes(hashlib.sha256(f"{seed}:{uid}".encode()).digest()[:8], "big") / 2.0**64


def split_validation(utterances: list[Utterance], fraction: float, seed: int = 0) -> Split:
    """Split by a hash of (seed, id): a row's side never changes when rows are added.

    Rows keep their order.  With ``fraction > 0`` and at least two rows, val has at least
    one row (the lowest hash) and train keeps at least one (the highest).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    keys = [_unit_hash(seed, u.id) for u in utterances]
    is_val = [k < fraction for k in keys]
    if fraction > 0 and len(utterances) >= 2:
        if not any(is_val):
            is_val[int(np.argmin(keys))] = True
        if all(is_val):
            is_val[int(np.argmax(keys))] = False
    return Split([u for u, v in zip(utterances, is_val) if not v], [u for u, v in zip(utterances, is_val) if v])
