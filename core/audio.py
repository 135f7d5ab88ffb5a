"""Audio front end: log-mel features, wav I/O, resampling, peak safety and loudness.

Mel features are exactly those of Vocos ``charactr/vocos-mel-24khz`` (the defaults of
:class:`~core.config.AudioConfig`): 24 kHz, n_fft 1024, window 1024 (Hann), hop 256,
100 HTK mel bins without filter normalisation, ``center=True`` with reflect padding,
magnitude (power 1), then ``log(clamp(x, min=1e-7))``.  Mel tensors are
``(batch, n_mels, frames)``; in the flow-matching convention they are the data end
(t = 1) of the path, Gaussian noise being t = 0.

Audio handed to users is float32 mono in [-1, 1] (:func:`peak_safe`).  Files are read
and written with ``soundfile`` (any rate and format libsndfile reads), resampled with
``torchaudio.functional.resample``; loudness follows ITU-R BS.1770-4 via ``pyloudnorm``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import soundfile as sf
import torch
import torchaudio

from .checkpoint import atomic_write
from .config import AudioConfig, choice_error

__all__ = [
    "AudioError",
    "AudioClip",
    "LoudnessResult",
    "MelSpectrogram",
    "mel_spectrogram",
    "mel_frames",
    "load_wav",
    "load_wav_with_rate",
    "resample",
    "peak_safe",
    "save_wav",
    "loudness",
    "match_loudness",
    "normalize_loudness",
]

PathLike = Union[str, Path]
ArrayLike = Union[np.ndarray, torch.Tensor]

MEL_SCALES = ("htk", "slaney")
MEL_NORMS = (None, "slaney")


class AudioError(ValueError):
    """Audio that cannot be used: a missing or unreadable file (named in the message),
    or a clip too short or of the wrong shape for the front end."""


# --------------------------------------------------------------------------- mel front end


def mel_frames(n_samples: int, config: Optional[AudioConfig] = None) -> int:
    """Number of mel frames for a clip of ``n_samples`` samples.

    ``center=True``: ``n_samples // hop + 1`` (frame ``j`` is centred on sample
    ``j * hop``).  ``center=False``: ``(n_samples - n_fft) // hop + 1`` (0 if shorter).
    """
    cfg = config or AudioConfig()
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    if cfg.center:
        return n_samples // cfg.hop_length + 1
    if n_samples < cfg.n_fft:
        return 0
    return (n_samples - cfg.n_fft) // cfg.hop_length + 1


def _min_samples(cfg: AudioConfig) -> int:
    """Shortest clip the STFT accepts: reflect padding by n_fft // 2 needs more samples
    than the pad; without centring a clip must hold one full window."""
    return cfg.n_fft // 2 + 1 if cfg.center else cfg.n_fft


class MelSpectrogram(torch.nn.Module):
    """Log-mel spectrogram ``(B, samples)`` or ``(samples,)`` -> ``(B, n_mels, frames)``.

    With the default :class:`AudioConfig` the output equals
    ``vocos.feature_extractors.MelSpectrogramFeatures(padding="center")``; every other
    ``AudioConfig`` field (f_min, f_max, power, mel_scale, norm, log_clip, center) is
    honoured.  A 1-D input is treated as a batch of one, so the output is always 3-D.
    ``frames = mel_frames(samples)``.  Half-precision input is computed in float32.

    Batches: frames are computed on the batch as given.  For a row zero-padded past its
    real length ``L``, frames ``j`` whose window lies inside the real samples
    (``j * hop + n_fft // 2 <= L``) equal the unpadded result; the last two of
    the ``mel_frames(L)`` frames see the padding instead of the reflection, so compute
    clips one at a time where the tail must be exact.
    """

    def __init__(self, config: Optional[AudioConfig] = None):
        super().__init__()
        cfg = dataclasses.replace(config) if config is not None else AudioConfig()
        cfg.validate()
        if cfg.mel_scale not in MEL_SCALES:
            raise choice_error("audio.mel_scale", cfg.mel_scale, MEL_SCALES)
        if cfg.norm not in MEL_NORMS:
            raise choice_error("audio.norm", cfg.norm, MEL_NORMS)
        self.config = cfg
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=cfg.sample_rate,
            n_fft=cfg.n_fft,
            win_length=cfg.win_length,
            hop_length=cfg.hop_length,
            f_min=cfg.f_min,
            f_max=cfg.f_max,
            n_mels=cfg.n_mels,
            window_fn=torch.hann_window,
            power=cfg.power,
            normalized=False,
            center=cfg.center,
            pad_mode="reflect",
            norm=cfg.norm,
            mel_scale=cfg.mel_scale,
        )

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        if not isinstance(wav, torch.Tensor):
            raise TypeError(f"wav must be a torch.Tensor, got {type(wav).__name__}")
        if not wav.is_floating_point():
            raise TypeError(f"wav must be a float tensor, got {wav.dtype}")
        if wav.dim() == 1:
            wav = wav.unsqueeze(0)
        elif wav.dim() != 2:
            raise AudioError(f"wav must be (batch, samples) or (samples,), got shape {tuple(wav.shape)}")
        need = _min_samples(self.config)
        if wav.shape[-1] < need:
            raise AudioError(
                f"clip of {wav.shape[-1]} samples is too short for the mel front end; "
                f"it needs at least {need} samples (n_fft={self.config.n_fft}, center={self.config.center})")
        if wav.dtype in (torch.float16, torch.bfloat16):
            wav = wav.float()
        mel = self.mel(wav)
        return torch.log(torch.clamp(mel, min=self.config.log_clip))


@functools.lru_cache(maxsize=16)
def _cached_mel(settings: tuple, device: str, dtype: torch.dtype) -> MelSpectrogram:
    module = MelSpectrogram(AudioConfig(*settings))
    return module.to(device=torch.device(device), dtype=dtype).eval()


def mel_spectrogram(wav: torch.Tensor, config: Optional[AudioConfig] = None) -> torch.Tensor:
    """Functional :class:`MelSpectrogram`: ``(B, samples)`` or ``(samples,)`` float ->
    ``(B, n_mels, frames)`` log-mel on the input's device.  One module per
    (settings, device, dtype) is cached, so repeated calls do not rebuild filterbanks."""
    if not isinstance(wav, torch.Tensor):
        raise TypeError(f"wav must be a torch.Tensor, got {type(wav).__name__}")
    cfg = config or AudioConfig()
    dtype = wav.dtype if wav.dtype in (torch.float32, torch.float64) else torch.float32
    return _cached_mel(dataclasses.astuple(cfg), str(wav.device), dtype)(wav)


# --------------------------------------------------------------------------- reading


@dataclass
class AudioClip:
    """Audio as stored in a file: ``samples`` float32 mono, shape ``(n,)``, at ``sample_rate`` Hz."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate


def load_wav_with_rate(path: PathLike) -> AudioClip:
    """Read an audio file at its own rate, mixing channels down by averaging.

    Any format libsndfile reads (WAV, FLAC, OGG, ...).  A missing or unreadable file
    raises :class:`AudioError` naming the file.
    """
    p = Path(path)
    if not p.is_file():
        raise AudioError(f"audio file not found: {p}")
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise AudioError(f"cannot read audio file {p}: {exc}") from None
    samples = np.ascontiguousarray(data.mean(axis=1, dtype=np.float32))
    return AudioClip(samples=samples, sample_rate=int(rate))


def load_wav(path: PathLike, sample_rate: Optional[int] = 24000) -> torch.Tensor:
    """Read an audio file as a 1-D float32 mono tensor ``(samples,)``.

    Channels are averaged; the clip is resampled to ``sample_rate`` with
    :func:`resample` unless ``sample_rate`` is ``None`` (keep the file's rate).
    A missing or unreadable file raises :class:`AudioError` naming the file.
    """
    clip = load_wav_with_rate(path)
    wav = torch.from_numpy(clip.samples)
    if sample_rate is not None and sample_rate != clip.sample_rate:
        wav = resample(wav, clip.sample_rate, sample_rate)
    return wav


def resample(wav: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Band-limited resampling ``(..., samples)`` -> ``(..., ceil(samples * new / orig))``.

    ``torchaudio.functional.resample`` with its defaults (windowed sinc, Hann window,
    6 zero crossings, roll-off 0.99).  Returns the input unchanged when the rates match.
    """
    for name, rate in (("orig_rate", orig_rate), ("new_rate", new_rate)):
        if isinstance(rate, bool) or int(rate) != rate or rate <= 0:
            raise ValueError(f"{name} must be a positive integer, got {rate!r}")
    if not isinstance(wav, torch.Tensor) or not wav.is_floating_point():
        raise TypeError("wav must be a float torch.Tensor with time as the last dimension")
    if orig_rate == new_rate:
        return wav
    return torchaudio.functional.resample(wav, int(orig_rate), int(new_rate))


# --------------------------------------------------------------------------- peak safety and writing


def _as_mono_float64(audio: ArrayLike, what: str = "audio") -> np.ndarray:
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(audio, dtype=np.float64)
    if arr.ndim != 1:
        raise AudioError(f"{what} must be 1-D mono (samples,), got shape {arr.shape}")
    return arr


def peak_safe(audio: ArrayLike) -> np.ndarray:
    """Float32 copy of a 1-D clip (numpy or torch) within [-1, 1].

    NaN and +-inf samples become 0; if the peak then exceeds 1 the whole clip is
    scaled down so the peak is exactly 1 (no hard clipping, the waveform shape is kept).
    """
    x = np.nan_to_num(_as_mono_float64(audio), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 1.0:
        x = x / peak
    return x.astype(np.float32)


def _format_for(path: Path) -> str:
    fmt = path.suffix.lstrip(".").upper()
    formats = sf.available_formats()
    if fmt not in formats:
        raise AudioError(f"cannot write {path}: unknown audio file suffix {path.suffix!r}; "
                         f"valid: {', '.join('.' + f.lower() for f in formats)}")
    return fmt


def save_wav(path: PathLike, audio: ArrayLike, sample_rate: int, subtype: str = "PCM_16") -> Path:
    """Write a mono clip after :func:`peak_safe`; returns the path.

    The container follows the suffix (``.wav`` normally; ``.flac`` etc. also work);
    ``subtype`` is a soundfile subtype such as ``PCM_16``, ``PCM_24`` or ``FLOAT``.
    The write is atomic (temporary file in the same folder, then ``os.replace``) and
    missing parent folders are created.
    """
    p = Path(path)
    fmt = _format_for(p)
    subtypes = sf.available_subtypes(fmt)
    if subtype not in subtypes or not sf.check_format(fmt, subtype):
        valid = [s for s in subtypes if sf.check_format(fmt, s)]
        raise choice_error(f"subtype for {fmt}", subtype, valid)
    if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    data = peak_safe(audio)
    atomic_write(p, lambda tmp: sf.write(tmp, data, int(sample_rate), subtype=subtype, format=fmt))
    return p


# --------------------------------------------------------------------------- loudness

GATE_BLOCK_S = 0.400  # BS.1770-4 gating block


def loudness(audio: ArrayLike, sample_rate: int) -> float:
    """Integrated loudness of a 1-D clip in LUFS (ITU-R BS.1770-4 via pyloudnorm).

    K-weighting, 400 ms blocks with 75 % overlap, absolute gate -70 LUFS and relative
    gate -10 LU.  A clip shorter than one 400 ms block is measured as a single block
    spanning the whole clip (the mean square of the K-weighted clip; no padding, which
    would dilute it).  Silence, an empty clip, or audio entirely below the -70 LUFS
    absolute gate returns ``-inf``.  NaN or inf samples are an error.
    """
    import pyloudnorm

    x = _as_mono_float64(audio)
    if not np.all(np.isfinite(x)):
        raise AudioError("audio contains NaN or inf; loudness is undefined (use peak_safe first)")
    if x.size == 0 or not np.any(x):
        return -math.inf
    block = GATE_BLOCK_S
    if x.size < block * sample_rate:
        block = x.size / sample_rate
        if block * sample_rate > x.size:  # guard pyloudnorm's length check against rounding
            block = float(np.nextafter(block, 0.0))
    value = float(pyloudnorm.Meter(sample_rate, block_size=block).integrated_loudness(x))
    return value if math.isfinite(value) else -math.inf


@dataclass
class LoudnessResult:
    """What :func:`match_loudness` did.

    ``audio``: float32 result; ``measured_lufs``: input loudness; ``gain_db``: gain
    actually applied (after any peak limit); ``peak_limited``: True when the gain to the
    target would have pushed the peak over 1, so the clip was scaled down and ends up
    quieter than the target.
    """

    audio: np.ndarray
    measured_lufs: float
    gain_db: float
    peak_limited: bool
    target_lufs: float


def match_loudness(audio: ArrayLike, sample_rate: int, target_lufs: float = -23.0) -> LoudnessResult:
    """Apply one gain so the clip measures ``target_lufs`` (see :func:`loudness`), then
    :func:`peak_safe`.  The peak limit may leave the clip quieter than the target
    (``peak_limited``).  Silence (``-inf`` LUFS) is returned unchanged with 0 dB gain."""
    x = _as_mono_float64(audio)
    measured = loudness(x, sample_rate)
    if not math.isfinite(measured):
        return LoudnessResult(peak_safe(x), measured, 0.0, False, float(target_lufs))
    gain = 10.0 ** ((target_lufs - measured) / 20.0)
    y = x * gain
    peak = float(np.max(np.abs(y)))
    limited = peak > 1.0
    if limited:
        y = y / peak
        gain /= peak
    return LoudnessResult(y.astype(np.float32), measured, 20.0 * math.log10(gain), limited, float(target_lufs))


def normalize_loudness(audio: ArrayLike, sample_rate: int, target_lufs: float = -23.0) -> np.ndarray:
    """Float32 clip at ``target_lufs`` LUFS, peak-safe; :func:`match_loudness` without
    the report.  A loud target may leave it quieter than asked (the peak limit wins)."""
    return match_loudness(audio, sample_rate, target_lufs).audio
