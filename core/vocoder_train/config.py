"""Vocoder training configuration: the generator's size, the segments it trains on, the
losses and their weights, the discriminators, the optimiser and the run's habits.

Loaded like the acoustic config (:func:`core.config.from_dict`): an unknown key or an
unknown name is an error listing the valid ones.  A JSON file may name a preset and
override fields: ``{"preset": "cpu", "training": {"steps": 40000}}``.

Presets (:data:`PRESETS`):

``tiny``   tests: a 2-layer, 32-wide generator, 8-frame segments, small discriminators.
``cpu``    the recipe chosen for a 2-core CPU (docs/vocoder.md has the measurements):
           a 128-wide, 6-layer Vocos backbone (0.82M parameters, 1.7 MB in fp16), which
           at equal wall time learnt faster than 256 x 8 here; 32-frame segments (0.34 s)
           in batches of 8; reconstruction losses only (mel L1 + multi-resolution STFT)
           for the first 30000 of 40000 steps, then vocos' MRD alone (FFT sizes 2048,
           1024, 512 at 16 channels; the MPD costs ~40 s per period per step here) on
           every 4th step.
``vocos``  the published ``charactr/vocos-mel-24khz`` recipe, for a GPU: 512 x 8 backbone,
           full MPD + MRD every step, mel weight 45, MRD weight 0.1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

from ..config import AudioConfig, ConfigError, choice_error, from_dict, to_dict

__all__ = ["GeneratorConfig", "LossConfig", "DiscriminatorConfig", "VocoderTrainingConfig",
           "VocoderConfig", "PRESETS", "preset", "merge", "load_config"]


@dataclass
class GeneratorConfig:
    """``vocos.models.VocosBackbone`` (ConvNeXt blocks) + ``vocos.heads.ISTFTHead``."""

    dim: int = 256
    intermediate_dim: int = 768
    num_layers: int = 8
    layer_scale_init_value: Optional[float] = None  # None: vocos' 1 / num_layers

    def validate(self) -> None:
        for name in ("dim", "intermediate_dim", "num_layers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"generator.{name} must be >= 1, got {getattr(self, name)}")


PHASE_WEIGHTINGS = ("magnitude", "none")


@dataclass
class LossConfig:
    """Generator loss = mel_weight * mel L1 (vocos MelSpecReconstructionLoss on this
    project's mel) + stft_weight * multi-resolution STFT loss (spectral convergence +
    log-magnitude L1 at ``stft_resolutions``, each ``[n_fft, hop, win]``) + in the
    adversarial phase the hinge generator losses and feature matching of the MPD
    (weight 1) and the MRD (``mrd_weight``), times ``adv_weight`` and ``fm_weight``;
    + ``phase_weight`` * APNet's anti-wrapped phase losses on one STFT
    (``phase_resolution`` ``[n_fft, hop, win]``; ``phase_weighting`` ``magnitude`` weighs
    each bin by the reference's magnitude, ``none`` is APNet's plain mean; see
    :class:`core.vocoder_train.losses.PhaseLoss`).  ``phase_weight`` 0 (the default) is off."""

    mel_weight: float = 45.0
    stft_weight: float = 1.0
    stft_resolutions: list = field(default_factory=lambda: [[512, 128, 512], [1024, 256, 1024], [2048, 512, 2048]])
    adv_weight: float = 1.0
    fm_weight: float = 1.0
    mrd_weight: float = 0.1
    phase_weight: float = 0.0
    phase_resolution: list = field(default_factory=lambda: [1024, 256, 1024])
    phase_weighting: str = "magnitude"

    def validate(self) -> None:
        for name in ("mel_weight", "stft_weight", "adv_weight", "fm_weight", "mrd_weight", "phase_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"loss.{name} must be >= 0, got {getattr(self, name)}")
        _check_resolutions("loss.stft_resolutions", self.stft_resolutions, allow_empty=True)
        _check_resolutions("loss.phase_resolution", [self.phase_resolution], allow_empty=False)
        if self.phase_weighting not in PHASE_WEIGHTINGS:
            raise choice_error("loss.phase_weighting", self.phase_weighting, PHASE_WEIGHTINGS)


@dataclass
class DiscriminatorConfig:
    """``vocos.discriminators``: MultiPeriodDiscriminator over ``periods`` (empty: none)
    and MultiResolutionDiscriminator over window lengths ``fft_sizes`` (empty: none),
    its ``DiscriminatorR`` blocks with ``mrd_channels`` channels (the package: 32).
    ``mpd_channels`` thins every ``DiscriminatorP`` to ``c, 4c, 16c, 32c, 32c`` channels
    (the package fixes ``c`` = 32: 32-128-512-1024-1024, ~40 s per period and step on
    this CPU; ``c`` = 4 costs about 1/50 of that)."""

    periods: list = field(default_factory=lambda: [2, 3, 5, 7, 11])
    fft_sizes: list = field(default_factory=lambda: [2048, 1024, 512])
    mrd_channels: int = 32
    mpd_channels: int = 32

    def validate(self) -> None:
        if not isinstance(self.periods, list) or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 1
                                                         for p in self.periods):
            raise ConfigError(f"discriminator.periods must be a list of integers >= 1, got {self.periods!r}")
        if not isinstance(self.fft_sizes, list) or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 16 for n in self.fft_sizes):
            raise ConfigError(f"discriminator.fft_sizes must be a list of integers >= 16, got {self.fft_sizes!r}")
        for name in ("mrd_channels", "mpd_channels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"discriminator.{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class VocoderTrainingConfig:
    """Steps, segments, optimiser and the run's habits.

    ``adversarial_start``: steps of reconstruction-only pretraining before the
    discriminators join (>= ``steps``: never); ``disc_every``: from then on, every k-th
    step trains the discriminators and adds the adversarial terms to the generator loss
    (the other steps are reconstruction-only).  ``checkpoint_minutes`` also writes a
    checkpoint when that much wall time passed since the last one (0: off).
    """

    data: str = ""
    val_data: str = ""
    cache_dir: str = ""
    segment_frames: int = 32
    batch_size: int = 8
    max_audio_seconds: float = 30.0
    steps: int = 100000
    lr: float = 5e-4
    disc_lr: float = 5e-4
    betas: tuple[float, float] = (0.8, 0.9)
    weight_decay: float = 0.01
    warmup_steps: int = 500
    decay: Literal["cosine", "linear", "constant"] = "cosine"
    grad_clip: float = 100.0
    adversarial_start: int = 20000
    disc_every: int = 4
    seed: int = 0
    log_every: int = 50
    val_every: int = 1000
    val_clips: int = 8
    sample_clips: int = 2
    checkpoint_every: int = 2000
    checkpoint_minutes: float = 10.0
    keep_checkpoints: int = 3
    max_bad_steps: int = 20
    spike_factor: float = 10.0

    def validate(self) -> None:
        for name in ("segment_frames", "batch_size", "steps", "disc_every", "log_every", "max_bad_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"training.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "adversarial_start", "val_every", "val_clips", "sample_clips",
                     "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 0:
                raise ConfigError(f"training.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr", "disc_lr", "grad_clip", "max_audio_seconds", "spike_factor"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"training.{name} must be > 0, got {getattr(self, name)}")
        if self.checkpoint_minutes < 0:
            raise ConfigError(f"training.checkpoint_minutes must be >= 0, got {self.checkpoint_minutes}")


@dataclass
class VocoderConfig:
    """Everything a vocoder run needs; stored in ``config.json`` and in every checkpoint."""

    audio: AudioConfig = field(default_factory=AudioConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    training: VocoderTrainingConfig = field(default_factory=VocoderTrainingConfig)

    def validate(self) -> None:
        for section in (self.audio, self.generator, self.loss, self.discriminator, self.training):
            section.validate()
        if self.audio.win_length != self.audio.n_fft:
            raise ConfigError("a Vocos mel feature extractor has win_length == n_fft; "
                              f"audio.win_length={self.audio.win_length}, audio.n_fft={self.audio.n_fft}")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VocoderConfig":
        return from_dict(cls, data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def _check_resolutions(where: str, value: Any, allow_empty: bool) -> None:
    ok = isinstance(value, list) and (allow_empty or value) and all(
        isinstance(r, (list, tuple)) and len(r) == 3 and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                             for v in r) and r[2] <= r[0]
        for r in value)
    if not ok:
        raise ConfigError(f"{where} must be a list of [n_fft, hop, win] positive integers with win <= n_fft, "
                          f"got {value!r}")


def _tiny() -> VocoderConfig:
    return VocoderConfig(
        generator=GeneratorConfig(dim=32, intermediate_dim=64, num_layers=2),
        loss=LossConfig(stft_resolutions=[[256, 64, 256], [512, 128, 512]]),
        discriminator=DiscriminatorConfig(periods=[2, 3], fft_sizes=[512], mrd_channels=4),
        training=VocoderTrainingConfig(segment_frames=8, batch_size=2, steps=6, warmup_steps=2,
                                       adversarial_start=2, disc_every=2, log_every=1, val_every=3,
                                       val_clips=2, sample_clips=1, checkpoint_every=3, checkpoint_minutes=0,
                                       keep_checkpoints=10, lr=1e-3, disc_lr=1e-3))


def _cpu() -> VocoderConfig:
    return VocoderConfig(
        generator=GeneratorConfig(dim=128, intermediate_dim=384, num_layers=6),
        discriminator=DiscriminatorConfig(periods=[], fft_sizes=[2048, 1024, 512], mrd_channels=16),
        training=VocoderTrainingConfig(segment_frames=32, batch_size=8, steps=40000, adversarial_start=30000,
                                       disc_every=4, warmup_steps=500, lr=5e-4, disc_lr=5e-4, val_clips=8,
                                       sample_clips=4, log_every=50, val_every=1000, checkpoint_every=2000,
                                       checkpoint_minutes=10.0))


def _vocos() -> VocoderConfig:
    return VocoderConfig(
        generator=GeneratorConfig(dim=512, intermediate_dim=1536, num_layers=8),
        training=VocoderTrainingConfig(segment_frames=64, batch_size=16, steps=1000000, adversarial_start=0,
                                       disc_every=1, warmup_steps=0, lr=5e-4, disc_lr=5e-4,
                                       checkpoint_every=10000, val_every=5000))


PRESETS = {"tiny": _tiny, "cpu": _cpu, "vocos": _vocos}


def preset(name: str) -> VocoderConfig:
    """A named preset (``tiny``, ``cpu``, ``vocos``)."""
    if name not in PRESETS:
        raise choice_error("vocoder preset", name, PRESETS)
    return PRESETS[name]()


def merge(cfg: VocoderConfig, overrides: dict[str, Any]) -> VocoderConfig:
    """``cfg`` with nested ``overrides`` applied (validated like a fresh load)."""
    data = cfg.to_dict()
    for section, values in overrides.items():
        if section not in data:
            raise choice_error("vocoder config section", section, list(data))
        if not isinstance(values, dict):
            raise ConfigError(f"vocoder config section {section!r} must be an object")
        data[section].update(values)
    return VocoderConfig.from_dict(data)


def load_config(spec: str) -> VocoderConfig:
    """A preset name, or a JSON file (which may say ``{"preset": "cpu", ...overrides}``)."""
    p = Path(spec)
    if not p.exists():
        if spec in PRESETS:
            return preset(spec)
        raise ConfigError(f"vocoder config {spec!r} is neither a file nor a preset; valid presets: "
                          f"{', '.join(PRESETS)}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"vocoder config {p} is not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"vocoder config {p} must hold a JSON object")
    base = data.pop("preset", None)
    return merge(preset(base), data) if base is not None else VocoderConfig.from_dict(data)
