"""Vocoders: log-mel ``(B, n_mels, T)`` -> float32 waveform ``(B, T * hop_length)``.

* :class:`VocosVocoder` -- a ``vocos`` model from a folder with ``config.yaml`` +
  ``pytorch_model.bin`` or from a Hugging Face hub id the user names.  Weights are read
  with ``torch.load(weights_only=True)``; the YAML may only name the Vocos classes in
  ``_ALLOWED_CLASSES`` (its ``class_path`` would otherwise import and call anything).
* :class:`GriffinLimVocoder` -- no weights, offline: mel filterbank inverse + fast
  Griffin-Lim (torchaudio).

:func:`load_vocoder` picks one from a spec (``VOCODER_CHOICES``) and refuses a vocoder
whose mel settings differ from the checkpoint's ``AudioConfig`` (:func:`check_compatible`),
which would otherwise give noise, not an error.  The mel is the data end (t = 1) of the
flow-matching path.  Output is not clipped to [-1, 1]; the caller makes it peak-safe.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any, Union

import torch

from .config import AudioConfig, ConfigError

__all__ = ["VocoderError", "Vocoder", "VocosVocoder", "GriffinLimVocoder", "load_vocoder",
           "check_compatible", "VOCODER_CHOICES", "DEFAULT_HUB_ID", "VOCOS_ENV", "BUNDLED_VOCODER"]

log = logging.getLogger(__name__)
Device = Union[str, torch.device]

VOCODER_CHOICES = ("auto", "griffin-lim", "<folder with config.yaml + pytorch_model.bin>", "hub:<owner/name>")
"""Forms of a vocoder spec for :func:`load_vocoder`:

``auto``         Vocos from the folder in ``$FLOWTTS_VOCOS`` if set, else
                 ``charactr/vocos-mel-24khz`` if already in the local Hugging Face cache
                 (never downloaded), else the bundled vocoder ``assets/vocoder/`` when it
                 is there (trained here: ``python -m core vocoder train``), else Griffin-Lim.
``griffin-lim``  Griffin-Lim with the checkpoint's mel settings.
``<folder>``     an existing folder with ``config.yaml`` + ``pytorch_model.bin``.
``hub:<id>``     a hub id, e.g. ``hub:charactr/vocos-mel-24khz``: from the cache, else
                 downloaded (unless ``HF_HUB_OFFLINE=1``).
A bare ``owner/name`` that is not an existing folder is an error suggesting ``hub:``
(a mistyped path never turns into a network call).
"""

DEFAULT_HUB_ID = "charactr/vocos-mel-24khz"
VOCOS_ENV = "FLOWTTS_VOCOS"
BUNDLED_VOCODER = Path(__file__).resolve().parents[1] / "assets" / "vocoder"
"""The bundled Vocos folder ``auto`` falls back to before Griffin-Lim (used only when it
holds a ``config.yaml``)."""
CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "pytorch_model.bin"
VOCOS_LOG_CLIP = 1e-7  # vocos.modules.safe_log default, used by MelSpectrogramFeatures

_ALLOWED_CLASSES = {
    "feature_extractor": ("vocos.feature_extractors.MelSpectrogramFeatures",),
    "backbone": ("vocos.models.VocosBackbone", "vocos.models.VocosResNetBackbone"),
    "head": ("vocos.heads.ISTFTHead", "vocos.heads.IMDCTSymExpHead", "vocos.heads.IMDCTCosHead"),
}


class VocoderError(ValueError):
    """A vocoder cannot be loaded or used; the message names the file, setting or spec."""


class _NotCached(VocoderError):
    """A hub file is not in the local cache and may not be downloaded."""


# --------------------------------------------------------------------------- interface


class Vocoder:
    """Log-mel ``(B, n_mels, T)`` -> waveform ``(B, T * hop_length)`` float32.

    Attributes: ``name`` (shown to users: ``"vocos:<folder or hub id>"``,
    ``"griffin-lim"``), ``sample_rate``, ``mel_settings`` (the keys of
    ``AudioConfig.mel_settings()``) and ``device``.  Every vocoder here returns exactly
    ``T * hop_length`` samples per item (zero-padded or trimmed at the end where a head
    makes a few more or fewer) on its own device; the input may live on any device and
    is cast to float32.
    """

    name: str
    sample_rate: int
    mel_settings: dict[str, Any]
    device: torch.device

    @property
    def n_mels(self) -> int:
        return int(self.mel_settings["n_mels"])

    @property
    def hop_length(self) -> int:
        return int(self.mel_settings["hop_length"])

    def decode(self, mel: torch.Tensor) -> torch.Tensor:
        """``(B, n_mels, T)`` log-mel -> ``(B, T * hop_length)`` float32 waveform."""
        if not isinstance(mel, torch.Tensor) or not mel.is_floating_point():
            raise VocoderError(f"{self.name}: mel must be a float tensor (B, n_mels, T)")
        if mel.dim() != 3 or mel.shape[1] != self.n_mels or mel.shape[2] < 1:
            raise VocoderError(f"{self.name}: mel must have shape (B, {self.n_mels}, T>=1), got {tuple(mel.shape)}")
        mel = mel.detach().to(self.device, torch.float32)
        with torch.no_grad():
            wav = self._decode(mel).float()
        samples = mel.shape[2] * self.hop_length
        wav = wav[..., :samples] if wav.shape[-1] >= samples else torch.nn.functional.pad(
            wav, (0, samples - wav.shape[-1]))
        return wav.clone()  # a normal tensor (not from inference mode): callers may edit it in place

    def _decode(self, mel: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def to(self, device: Device) -> "Vocoder":
        """Move to ``device`` (in place); returns ``self``."""
        self.device = _device(device)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, sample_rate={self.sample_rate}, device={self.device})"


def _device(device: Device) -> torch.device:
    from .devices import resolve_device

    return resolve_device(device)


# --------------------------------------------------------------------------- Vocos


class VocosVocoder(Vocoder):
    """A ``vocos.Vocos`` model with a mel feature extractor; ``decode`` runs
    ``model.decode`` (backbone + Fourier head).  With the ISTFT head and
    ``padding="same"`` of ``charactr/vocos-mel-24khz`` that is already ``T * hop``
    samples.  Build with :meth:`from_folder` or :meth:`from_hub`."""

    def __init__(self, model: torch.nn.Module, name: str, mel_settings: dict[str, Any], device: Device = "cpu"):
        self.model = model.eval()
        self.name = name
        self.mel_settings = dict(mel_settings)
        self.sample_rate = int(mel_settings["sample_rate"])
        self.to(device)

    def to(self, device: Device) -> "VocosVocoder":
        self.device = _device(device)
        self.model.to(self.device)
        return self

    def _decode(self, mel: torch.Tensor) -> torch.Tensor:
        return self.model.decode(mel)

    @classmethod
    def from_folder(cls, path: Union[str, os.PathLike], device: Device = "cpu") -> "VocosVocoder":
        """Load ``<path>/config.yaml`` + ``<path>/pytorch_model.bin``.  Missing or corrupt
        files, classes other than the Vocos mel models (EnCodec features included) and
        weights that do not fit raise :class:`VocoderError` naming the file."""
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise VocoderError(f"Vocos folder not found: {folder}")
        return cls._from_files(folder / CONFIG_FILE, folder / WEIGHTS_FILE, f"vocos:{folder}", device)

    @classmethod
    def from_hub(cls, repo_id: str, device: Device = "cpu", allow_download: bool = True) -> "VocosVocoder":
        """Load a Vocos model by hub id (e.g. ``charactr/vocos-mel-24khz``) from the local
        Hugging Face cache; only if absent, and ``allow_download`` and not
        ``HF_HUB_OFFLINE``, download it.  Failures raise :class:`VocoderError`."""
        config_path = _hub_file(repo_id, CONFIG_FILE, allow_download)
        weights_path = _hub_file(repo_id, WEIGHTS_FILE, allow_download)
        return cls._from_files(Path(config_path), Path(weights_path), f"vocos:{repo_id}", device)

    @classmethod
    def _from_files(cls, config_path: Path, weights_path: Path, name: str, device: Device) -> "VocosVocoder":
        try:
            import vocos
            from vocos.pretrained import instantiate_class
        except ImportError as exc:
            raise VocoderError(f"the vocos package is not importable ({exc}); use griffin-lim") from None
        config = _read_config(config_path)
        try:  # what vocos.Vocos.from_hparams does, on the config vetted above
            parts = {key: instantiate_class(args=(), init=config[key]) for key in _ALLOWED_CLASSES}
        except (TypeError, ValueError, KeyError, AttributeError, RuntimeError) as exc:
            raise VocoderError(f"Vocos config {config_path}: cannot build the model: {exc}") from None
        settings = _mel_settings_of(parts["feature_extractor"], config_path)
        for part, key, want in (("backbone", "input_channels", "n_mels"), ("head", "hop_length", "hop_length")):
            value = config[part].get("init_args", {}).get(key, settings[want])
            if value != settings[want]:
                raise VocoderError(f"Vocos config {config_path}: {part}.{key}={value} but the feature "
                                   f"extractor has {want}={settings[want]}")
        model = vocos.Vocos(**parts)
        _load_weights(model, weights_path)
        return cls(model, name, settings, device)


def _read_config(path: Path) -> dict[str, Any]:
    """Parse (safe YAML) and vet a Vocos ``config.yaml``: only allowed class paths."""
    import yaml

    if not path.is_file():
        raise VocoderError(f"Vocos config not found: {path}")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise VocoderError(f"Vocos config {path} is not readable YAML: {exc}") from None
    if not isinstance(config, dict):
        raise VocoderError(f"Vocos config {path} must be a mapping with feature_extractor, backbone and head")
    for key, allowed in _ALLOWED_CLASSES.items():
        entry = config.get(key)
        if not isinstance(entry, dict) or not isinstance(entry.get("init_args", {}), dict):
            raise VocoderError(f"Vocos config {path}: {key} must be a mapping with class_path and init_args")
        if entry.get("class_path") not in allowed:
            why = " (only mel-spectrogram Vocos models can vocode these mels)" if key == "feature_extractor" else ""
            raise VocoderError(f"Vocos config {path}: unsupported {key} class {entry.get('class_path')!r}{why}; "
                               f"valid: {', '.join(allowed)}")
    if config["backbone"].get("init_args", {}).get("adanorm_num_embeddings") is not None:
        raise VocoderError(f"Vocos config {path}: backbone.adanorm_num_embeddings (EnCodec bandwidth "
                           "conditioning) has no meaning for a mel vocoder")
    return config


def _mel_settings_of(feature_extractor: torch.nn.Module, config_path: Path) -> dict[str, Any]:
    """Mel settings read off a built ``MelSpectrogramFeatures`` (torchaudio transform:
    window = n_fft, magnitude, HTK, no norm, f_min 0, f_max None; log clip 1e-7).
    ``padding="center"`` is ``center=True``; ``padding="same"`` (reflect padding by
    ``(win - hop) / 2``, uncentred frames) is recorded as ``center=False``."""
    ms = feature_extractor.mel_spec
    try:
        audio = AudioConfig(
            sample_rate=int(ms.sample_rate), n_fft=int(ms.n_fft), win_length=int(ms.win_length),
            hop_length=int(ms.hop_length), n_mels=int(ms.n_mels), f_min=float(ms.f_min),
            f_max=None if ms.f_max is None else float(ms.f_max), center=feature_extractor.padding == "center",
            power=float(ms.power), mel_scale=ms.mel_scale.mel_scale, norm=ms.mel_scale.norm,
            log_clip=VOCOS_LOG_CLIP)
        audio.validate()
    except ConfigError as exc:
        raise VocoderError(f"Vocos config {config_path}: bad feature_extractor settings: {exc}") from None
    return audio.mel_settings()


def _load_weights(model: torch.nn.Module, path: Path) -> None:
    """``torch.load(weights_only=True)``, never a plain unpickle, then a strict key check
    (the feature extractor's window / filterbank buffers may be absent: decode never
    uses them)."""
    if not path.is_file():
        raise VocoderError(f"Vocos weights not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError (zip), EOFError, ...
        raise VocoderError(f"cannot load Vocos weights {path}: not a plain tensor state dict "
                           f"(corrupt, truncated or holding code): {_load_cause(exc)}") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise VocoderError(f"Vocos weights {path} must be a dict of name -> tensor")
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatch
        raise VocoderError(f"Vocos weights {path} do not fit {CONFIG_FILE}: {str(exc).splitlines()[-1].strip()}") from None
    missing = [k for k in result.missing_keys if not k.startswith("feature_extractor.")]
    if missing or result.unexpected_keys:
        raise VocoderError(f"Vocos weights {path} do not fit {CONFIG_FILE}: missing {missing[:5]}, "
                           f"unexpected {list(result.unexpected_keys)[:5]}")


def _load_cause(exc: Exception) -> str:
    """The useful part of a torch.load error (without its advice to retry unsafely)."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].strip().split(". ")[0]
    text = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _hub_file(repo_id: str, filename: str, allow_download: bool) -> str:
    """Path of ``filename`` of hub repo ``repo_id``: from the cache, else downloaded if
    allowed.  ``HF_HUB_CACHE`` / ``HF_HOME`` / ``HF_HUB_OFFLINE`` are read now (the
    ``huggingface_hub`` constants are frozen when it is first imported)."""
    try:
        from huggingface_hub import constants, hf_hub_download
        from huggingface_hub.errors import HFValidationError
    except ImportError as exc:
        raise VocoderError(f"huggingface_hub is not importable ({exc}); pass a local Vocos folder") from None
    env = os.environ
    cache = env.get("HF_HUB_CACHE") or (os.path.join(env["HF_HOME"], "hub") if env.get("HF_HOME") else None)
    offline = env.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on") or constants.HF_HUB_OFFLINE
    try:
        return hf_hub_download(repo_id, filename, cache_dir=cache, local_files_only=True)
    except HFValidationError as exc:
        raise VocoderError(f"invalid Hugging Face repo id {repo_id!r}: {exc}") from None
    except Exception:  # LocalEntryNotFoundError or an unreadable cache entry: not usable from the cache
        pass
    if not allow_download or offline:
        why = "downloads are off (HF_HUB_OFFLINE is set)" if allow_download else "downloading was not allowed"
        raise _NotCached(f"{filename} of {repo_id} is not in {cache or 'the default Hugging Face cache'} and "
                         f"{why}; download it once with network access or pass a local Vocos folder")
    try:
        return hf_hub_download(repo_id, filename, cache_dir=cache)
    except Exception as exc:
        raise VocoderError(f"cannot download {filename} of {repo_id} from the Hugging Face hub: "
                           f"{type(exc).__name__}: {exc}; check the id and the network, or pass a "
                           "local Vocos folder") from None


# --------------------------------------------------------------------------- Griffin-Lim


class GriffinLimVocoder(Vocoder):
    """Weight-free vocoder for any :class:`AudioConfig`.

    1. ``y = exp(mel)`` -> ``|S|^power``: ``clamp(pinv(fb^T) y, 1e-7)``, then ``nnls_iter``
       multiplicative non-negative least-squares updates ``S <- S * fb y / (fb fb^T S)``
       (``fb``: (n_freqs, n_mels) filterbank).  On 5 s of flite speech the mean |log-mel
       error| of this magnitude is 0.0055 after the clamp, 0.0017 after 10 updates: far
       below the phase error (~0.1); torchaudio's SGD ``InverseMelScale`` is much slower.
    2. Phase: ``torchaudio.functional.griffinlim`` (fast Griffin-Lim with ``momentum``),
       the config's n_fft / win / hop, periodic Hann window, zero initial phase
       (``rand_init=False``: deterministic).  Log-mel error of the result on that clip:
       ~0.115 at 16 iterations, ~0.10 at ``n_iter=32``, ~0.093 at 64 for twice the time.

    Frames are taken as centred; for a ``center=False`` config the output is the same
    audio without its first ``n_fft // 2`` samples.
    """

    def __init__(self, audio: AudioConfig, n_iter: int = 32, momentum: float = 0.99, nnls_iter: int = 10,
                 device: Device = "cpu"):
        import torchaudio

        if not isinstance(audio, AudioConfig):
            raise VocoderError(f"GriffinLimVocoder needs an AudioConfig, got {type(audio).__name__}")
        try:
            audio.validate()
        except ConfigError as exc:
            raise VocoderError(f"griffin-lim: {exc}") from None
        for what, n in (("n_iter", n_iter), ("nnls_iter", nnls_iter)):
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise VocoderError(f"griffin-lim: {what} must be an integer >= 0, got {n!r}")
        if not 0.0 <= momentum < 1.0:
            raise VocoderError(f"griffin-lim: momentum must be in [0, 1), got {momentum!r}")
        self.name = "griffin-lim"
        self.audio = audio
        self.sample_rate = audio.sample_rate
        self.mel_settings = audio.mel_settings()
        self.n_iter, self.momentum, self.nnls_iter = n_iter, float(momentum), nnls_iter
        self._fb = torchaudio.functional.melscale_fbanks(  # (n_freqs, n_mels): mel = fb^T @ |S|^power
            n_freqs=audio.n_fft // 2 + 1, f_min=audio.f_min,
            f_max=audio.f_max if audio.f_max is not None else audio.sample_rate / 2,
            n_mels=audio.n_mels, sample_rate=audio.sample_rate, norm=audio.norm, mel_scale=audio.mel_scale,
        ).double()
        self.to(device)

    def to(self, device: Device) -> "GriffinLimVocoder":
        self.device = _device(device)
        fb = self._fb.to(self.device)
        self.fb_t = fb.T.float().contiguous()                        # (n_mels, n_freqs)
        self.fb_pinv = torch.linalg.pinv(fb.T).float().contiguous()  # (n_freqs, n_mels)
        self.window = torch.hann_window(self.audio.win_length, device=self.device)
        return self

    def magnitude(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(B, n_mels, T)`` -> non-negative ``|S|^power`` ``(B, n_fft // 2 + 1, T)``."""
        y = torch.exp(mel.to(self.device, torch.float32))
        spec = torch.clamp(self.fb_pinv @ y, min=self.audio.log_clip)
        fb = self.fb_t.T  # (n_freqs, n_mels)
        fy = fb @ y
        for _ in range(self.nnls_iter):
            spec = spec * fy / (fb @ (self.fb_t @ spec) + 1e-12)
        return spec

    def _decode(self, mel: torch.Tensor) -> torch.Tensor:
        import torchaudio

        a = self.audio
        spec = self.magnitude(mel)
        # the STFT inside needs (T - 1) * hop > n_fft / 2 (reflect padding): pad with silence
        min_frames = -(-(a.n_fft // 2 + 1) // a.hop_length) + 1
        if spec.shape[-1] < min_frames:
            spec = torch.nn.functional.pad(spec, (0, min_frames - spec.shape[-1]))
        return torchaudio.functional.griffinlim(  # (B, (T - 1) * hop); decode() pads the last hop
            spec, self.window, a.n_fft, a.hop_length, a.win_length, a.power, self.n_iter, self.momentum,
            None, False)


# --------------------------------------------------------------------------- choosing


def check_compatible(vocoder: Vocoder, audio: AudioConfig) -> None:
    """Raise :class:`VocoderError` naming every mel setting in which ``vocoder`` differs
    from the checkpoint's ``audio`` (numbers compared to a relative 1e-6)."""
    bad = []
    for key, value in audio.mel_settings().items():
        other = vocoder.mel_settings.get(key, "<missing>")
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (value, other))
        if not (math.isclose(other, value, rel_tol=1e-6, abs_tol=1e-12) if numbers else other == value):
            bad.append(f"vocoder expects {key}={other} but the checkpoint uses {key}={value}")
    if bad:
        raise VocoderError(f"vocoder {vocoder.name} does not match the checkpoint's mel settings: " + "; ".join(bad))


def load_vocoder(spec: Union[str, os.PathLike], audio: AudioConfig, device: Device = "cpu") -> Vocoder:
    """Vocoder for ``spec`` (one of ``VOCODER_CHOICES``), checked against ``audio``.

    ``auto`` never downloads: ``$FLOWTTS_VOCOS`` (must load and match, else an error),
    else the cached ``charactr/vocos-mel-24khz`` (skipped, with a log line, when it does
    not match ``audio``; with a warning when its cached files are broken), else the
    bundled vocoder :data:`BUNDLED_VOCODER` when present (skipped the same way), else
    Griffin-Lim.
    """
    spec = os.fspath(spec) if isinstance(spec, os.PathLike) else spec
    if not isinstance(spec, str) or not spec.strip():
        raise VocoderError(f"vocoder spec must be a non-empty string; valid: {', '.join(VOCODER_CHOICES)}")
    spec = spec.strip()
    if spec == "griffin-lim":
        return GriffinLimVocoder(audio, device=device)
    if spec == "auto":
        return _auto(audio, device)
    if spec.startswith("hub:"):
        vocoder: Vocoder = VocosVocoder.from_hub(spec[len("hub:"):], device=device)
    elif Path(spec).expanduser().is_dir():
        vocoder = VocosVocoder.from_folder(spec, device=device)
    else:
        hint = f"; for a Hugging Face hub id write hub:{spec}" if spec.count("/") == 1 else ""
        raise VocoderError(f"unknown vocoder {spec!r} (not an existing folder){hint}; "
                           f"valid: {', '.join(VOCODER_CHOICES)}")
    check_compatible(vocoder, audio)
    return vocoder


def _auto(audio: AudioConfig, device: Device) -> Vocoder:
    folder = os.environ.get(VOCOS_ENV, "").strip()
    if folder:
        try:
            vocoder: Vocoder = VocosVocoder.from_folder(folder, device=device)
            check_compatible(vocoder, audio)
        except VocoderError as exc:
            raise VocoderError(f"${VOCOS_ENV}={folder}: {exc}") from None
        return vocoder
    for what, load in ((f"cached {DEFAULT_HUB_ID}", lambda: VocosVocoder.from_hub(DEFAULT_HUB_ID, device=device,
                                                                                  allow_download=False)),
                       (f"bundled {BUNDLED_VOCODER}", lambda: _bundled(device))):
        try:
            vocoder = load()
        except _NotCached:
            continue
        except VocoderError as exc:  # present but broken, or vocos missing: say so
            warnings.warn(f"vocoder auto: skipping {what}: {exc}", stacklevel=3)
            continue
        try:
            check_compatible(vocoder, audio)
        except VocoderError as exc:
            log.info("vocoder auto: %s; trying the next choice", exc)
            continue
        return vocoder
    return GriffinLimVocoder(audio, device=device)


def _bundled(device: Device) -> Vocoder:
    """The bundled Vocos folder, or :class:`_NotCached` when this checkout has none."""
    folder = Path(BUNDLED_VOCODER)
    if not (folder / CONFIG_FILE).is_file():
        raise _NotCached(f"no bundled vocoder in {folder}")
    return VocosVocoder.from_folder(folder, device=device)
