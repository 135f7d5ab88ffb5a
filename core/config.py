"""Typed configuration records that round-trip through JSON and validate on load.

Every option with a fixed set of values is declared as a ``typing.Literal``; loading a
config with an unknown key or an unknown option name raises :class:`ConfigError` that
lists the valid ones.  ``Config`` groups the sections (audio, text, model, objective,
training, sampling, lewm) that a run and a checkpoint carry.

Two model families (``model.family``, :data:`FAMILIES`): ``flow`` (the flow-matching
TTSModel: the model, objective and sampling sections) and ``lewm`` (the JEPA model of
:mod:`core.lewm`: the ``lewm`` section; of the model section only ``family``,
``vocab_size`` and ``n_speakers``).  A setting of the other family changed from its
default is refused where a user's config enters (:meth:`Config.check_keys_apply`).

Time convention everywhere: t = 0 is Gaussian noise, t = 1 is data.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

__all__ = [
    "ConfigError",
    "AudioConfig",
    "TextConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "TrainingConfig",
    "SamplingConfig",
    "LeWMConfig",
    "FAMILIES",
    "Config",
    "PRESETS",
    "preset",
    "from_dict",
    "to_dict",
    "differences",
]


class ConfigError(ValueError):
    """A configuration value or key is not valid; the message says which and what is."""


def choice_error(what: str, value: Any, valid: typing.Iterable[Any]) -> ConfigError:
    """Build the standard 'unknown option' error listing the valid names."""
    return ConfigError(f"unknown {what} {value!r}; valid: {', '.join(map(str, valid))}")


# --------------------------------------------------------------------------- sections

# Upper bounds, far above any model this project trains (the base preset: dim 768, depth
# 18) yet low enough that a hostile checkpoint or config cannot make the code allocate
# terabytes or build modules for hours before anything else is checked.
MODEL_LIMITS = {"vocab_size": 2 ** 24, "text_dim": 2 ** 14, "dim": 2 ** 14, "speaker_dim": 2 ** 14,
                "duration_channels": 2 ** 14, "depth": 256, "text_convnext_layers": 256,
                "text_transformer_layers": 256, "duration_layers": 256, "heads": 1024, "text_heads": 1024,
                "ff_mult": 64, "n_speakers": 2 ** 20}
AUDIO_LIMITS = {"sample_rate": 384000, "n_fft": 2 ** 16, "win_length": 2 ** 16, "hop_length": 2 ** 16,
                "n_mels": 1024}


def _check_bounds(section: str, obj: Any, limits: dict[str, int]) -> None:
    for name, limit in limits.items():
        value = getattr(obj, name)
        if value > limit:
            raise ConfigError(f"{section}.{name} must be at most {limit}, got {value}")
        if value < 0:
            raise ConfigError(f"{section}.{name} must be >= 0, got {value}")


@dataclass
class AudioConfig:
    """Mel front-end settings; the defaults are Vocos ``charactr/vocos-mel-24khz``."""

    sample_rate: int = 24000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 256
    n_mels: int = 100
    f_min: float = 0.0
    f_max: Optional[float] = None
    center: bool = True
    power: float = 1.0
    mel_scale: Literal["htk", "slaney"] = "htk"
    norm: Optional[Literal["slaney"]] = None
    log_clip: float = 1e-7

    def validate(self) -> None:
        for name in ("sample_rate", "n_fft", "win_length", "hop_length", "n_mels"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"audio.{name} must be positive, got {getattr(self, name)}")
        _check_bounds("audio", self, AUDIO_LIMITS)
        if self.win_length > self.n_fft:
            raise ConfigError("audio.win_length must not exceed audio.n_fft")
        if self.log_clip <= 0:
            raise ConfigError("audio.log_clip must be positive")

    def mel_settings(self) -> dict[str, Any]:
        """The settings a vocoder must share with a checkpoint (compared on load)."""
        return to_dict(self)


@dataclass
class TextConfig:
    """Tokenizer choice. ``chars``: Unicode code points seen in training, others map to
    an explicit unknown id; ``bytes``: UTF-8 bytes (covers everything);
    ``phonemes``: espeak-ng IPA (needs espeak-ng installed)."""

    tokenizer: Literal["chars", "bytes", "phonemes"] = "bytes"
    intersperse_blank: bool = False
    normalize: bool = True
    language: str = "en-us"
    max_chars: int = 2000

    def validate(self) -> None:
        if self.max_chars <= 0:
            raise ConfigError("text.max_chars must be positive")


FAMILIES = ("flow", "lewm")
# the model-section keys a LeWM model reads (the rest size the flow-matching model)
LEWM_MODEL_KEYS = ("family", "vocab_size", "n_speakers")


@dataclass
class ModelConfig:
    """The model family, and for ``flow`` the sizes of the text encoder, the DiT velocity
    network and the duration predictor (``lewm`` sizes are in :class:`LeWMConfig`)."""

    family: Literal[FAMILIES] = "flow"
    vocab_size: int = 260
    text_dim: int = 192
    text_convnext_layers: int = 4
    text_transformer_layers: int = 2
    text_heads: int = 2
    dim: int = 256
    depth: int = 6
    heads: int = 4
    ff_mult: int = 2
    dropout: float = 0.0
    n_speakers: int = 1
    speaker_dim: int = 64
    cond_drop_prob: float = 0.1
    duration_layers: int = 2
    duration_channels: int = 192
    attention: Literal["sdpa", "math"] = "sdpa"
    # velocity network layout (core.models.dit): "dit" runs every block at the mel frame
    # rate; "udit" runs the first and last ``udit_outer`` blocks there and the middle ones
    # at half the frame rate (a U shape with a residual skip; same parameters as "dit")
    velocity: Literal["dit", "udit"] = "dit"
    udit_outer: int = 1

    def validate(self) -> None:
        if self.velocity == "udit" and not (self.udit_outer >= 1 and 2 * self.udit_outer < self.depth):
            raise ConfigError(f"model.udit_outer must be >= 1 and leave at least one middle block: 2 x "
                              f"{self.udit_outer} outer blocks with model.depth {self.depth}")
        for name in ("vocab_size", "text_dim", "dim", "depth", "heads", "n_speakers"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"model.{name} must be positive, got {getattr(self, name)}")
        _check_bounds("model", self, MODEL_LIMITS)
        if self.dim % self.heads:
            raise ConfigError(f"model.dim ({self.dim}) must be divisible by model.heads ({self.heads})")
        if self.text_dim % self.text_heads:
            raise ConfigError("model.text_dim must be divisible by model.text_heads")
        if not 0.0 <= self.cond_drop_prob < 1.0:
            raise ConfigError("model.cond_drop_prob must be in [0, 1)")


# ---------------------------------------------------------------------- objective settings
# The one place for the objectives' choices and rules: ObjectiveConfig validates with
# them, and each objective class (core.flow) checks its constructor arguments with
# check_objective_settings, so a rule is written once.
OBJECTIVES = ("cfm", "edm", "meanflow")
TIME_SAMPLERS = ("uniform", "logit_normal", "range")
WEIGHTINGS = ("none", "linear", "quadratic")
SIGMA_SAMPLERS = ("lognormal", "discrete")
EDM_WEIGHTINGS = ("karras", "clipped_snr", "min_snr", "simplified", "normalized")
JVP_TANGENTS = ("conditional", "predicted")

# (settings, test on their values, what they must satisfy); a rule applies when all its
# settings are given.  Choices (names) are checked against the tuples above.
_OBJECTIVE_CHOICES = {"name": ("objective", OBJECTIVES), "time_sampling": ("time sampling", TIME_SAMPLERS),
                      "weighting": ("loss weighting", WEIGHTINGS),
                      "sigma_sampling": ("sigma sampling", SIGMA_SAMPLERS),
                      "edm_weighting": ("EDM weighting", EDM_WEIGHTINGS),
                      "jvp_tangent": ("MeanFlow JVP tangent", JVP_TANGENTS)}
OBJECTIVE_RULES: tuple[tuple[tuple[str, ...], typing.Callable[..., bool], str], ...] = (
    (("logit_std",), lambda v: v > 0, "must be positive"),
    (("t_lo", "t_hi"), lambda lo, hi: 0.0 <= lo < hi <= 1.0, "must satisfy 0 <= t_lo < t_hi <= 1"),
    (("sigma_data",), lambda v: v is None or v > 0, "must be positive (or null: the data's std)"),
    (("p_std",), lambda v: v > 0, "must be positive"),
    (("sigma_min", "sigma_max"), lambda lo, hi: 0 < lo < hi, "must satisfy 0 < sigma_min < sigma_max"),
    (("discrete_steps",), lambda v: v >= 2, "must be >= 2"),
    (("discrete_filter_lo", "discrete_filter_hi"), lambda lo, hi: 0.0 <= lo < hi <= 1.0,
     "must satisfy 0 <= lo < hi <= 1"),
    (("snr_clip",), lambda v: v > 0, "must be positive"),
    (("timestep_filter",), lambda v: 0.0 <= v < 0.5, "must be in [0, 0.5)"),
    (("r_neq_t_fraction",), lambda v: 0.0 <= v <= 1.0, "must be in [0, 1]"),
    (("adaptive_p",), lambda v: v >= 0, "must be >= 0"),
    (("adaptive_c",), lambda v: v > 0, "must be positive"),
    (("cfg",), lambda v: v == v and 0 <= v < float("inf"), "must be a finite number >= 0 (0 = no guidance)"),
    (("cfg", "cfg_kappa"), lambda c, k: 0 <= k < 1 and (k == 0 or c > 0),
     "must satisfy 0 <= cfg_kappa < 1, and cfg_kappa > 0 needs cfg > 0"),
)


def check_objective_settings(**values: Any) -> None:
    """Check objective settings, named as in :class:`ObjectiveConfig` (any subset), against
    the choices and :data:`OBJECTIVE_RULES`; the first violation raises a ConfigError
    naming the setting(s) and the values."""
    for key, (what, valid) in _OBJECTIVE_CHOICES.items():
        if key in values and values[key] not in valid:
            raise choice_error(what, values[key], valid)
    for keys, test, must in OBJECTIVE_RULES:
        if all(k in values for k in keys):
            args = [values[k] for k in keys]
            if not test(*args):
                names = "/".join(f"objective.{k}" for k in keys)
                got = ", ".join(repr(a) for a in args)
                raise ConfigError(f"{names} {must}, got {got}")


@dataclass
class ObjectiveConfig:
    """Training objective.

    ``cfm``: conditional flow matching on the straight path x_t = (1-t) x0 + t x1,
    target x1 - x0; ``time_sampling`` and ``weighting`` apply to it only.  ``edm``: Karras x0-prediction baseline.  ``meanflow``: average
    velocity u(z, r, t) for one-step generation; (r, t) are logit-normal with
    ``logit_mean``/``logit_std``; ``cfg`` > 0 trains guidance into it (MeanFlow's
    training-time CFG; needs ``model.cond_drop_prob`` > 0), so it is sampled with
    sampling ``cfg`` 0; ``cfg_kappa`` makes that target less noisy; ``jvp_tangent``
    ``predicted`` differentiates along the network's own velocity instead of the
    sample's x1 - x0 (improved MeanFlow's v-loss: a target that no longer multiplies the
    sample's noise by the network's Jacobian).
    """

    name: Literal[OBJECTIVES] = "cfm"
    # CFM time sampling and loss weighting
    time_sampling: Literal[TIME_SAMPLERS] = "uniform"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    t_lo: float = 0.0
    t_hi: float = 1.0
    weighting: Literal[WEIGHTINGS] = "none"
    # EDM
    # None: the std of the data the trainer feeds the objective, 1.0 (the model normalises
    # mels by the training set's global mean and std); an explicit value must match it
    sigma_data: Optional[float] = None
    p_mean: float = -1.2
    p_std: float = 1.2
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_sampling: Literal[SIGMA_SAMPLERS] = "lognormal"
    discrete_steps: int = 1000
    discrete_filter_lo: float = 0.0
    discrete_filter_hi: float = 1.0
    edm_weighting: Literal[EDM_WEIGHTINGS] = "karras"
    snr_clip: float = 5.0
    timestep_filter: float = 0.0
    # MeanFlow
    r_neq_t_fraction: float = 0.25
    adaptive_p: float = 1.0
    adaptive_c: float = 1e-3
    # classifier-free guidance baked into the network in training (MeanFlow's omega = 1 + cfg,
    # in the sampler's convention: the one-step model imitates the flow sampled with this cfg)
    cfg: float = 0.0
    # the share kappa of the network's own conditional velocity in that guided target
    # (MeanFlow's improved guidance): a less noisy target for the same effective cfg
    cfg_kappa: float = 0.0
    # the direction of the JVP that gives du/dr: the sample's velocity x1 - x0 (MeanFlow)
    # or the network's own instantaneous velocity u(z, r, r) (improved MeanFlow)
    jvp_tangent: Literal[JVP_TANGENTS] = "conditional"
    # auxiliary losses
    duration_weight: float = 1.0

    # which settings each objective reads (``name`` and ``duration_weight`` apply to all)
    KEYS_OF = {
        "cfm": ("time_sampling", "logit_mean", "logit_std", "t_lo", "t_hi", "weighting"),
        "edm": ("sigma_data", "p_mean", "p_std", "sigma_min", "sigma_max", "sigma_sampling", "discrete_steps",
                "discrete_filter_lo", "discrete_filter_hi", "edm_weighting", "snr_clip", "timestep_filter"),
        "meanflow": ("logit_mean", "logit_std", "r_neq_t_fraction", "adaptive_p", "adaptive_c", "cfg", "cfg_kappa",
                     "jvp_tangent"),
    }

    def check_keys_apply(self) -> None:
        """A setting of another objective changed from its default would be silently
        ignored: refuse it, listing the settings the chosen objective takes.  Checked
        where a user's config enters (:meth:`Config.load`, :func:`merge`), not when a
        checkpoint is read: a stored config may hold another objective's former default
        (e.g. EDM's sigma_data 0.5), which its own objective never read."""
        mine = set(self.KEYS_OF[self.name]) | {"name", "duration_weight"}
        default = ObjectiveConfig()
        for f in dataclasses.fields(self):
            if f.name not in mine and getattr(self, f.name) != getattr(default, f.name):
                owners = [n for n, keys in self.KEYS_OF.items() if f.name in keys]
                raise ConfigError(f"objective.{f.name} applies to {' and '.join(owners)} only, not to objective "
                                  f"{self.name!r}; {self.name} takes: {', '.join(sorted(mine))}")

    def validate(self) -> None:
        check_objective_settings(**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})


@dataclass
class TrainingConfig:
    """Optimisation, data and bookkeeping of a training run."""

    data: str = ""
    data_format: Literal["auto", "ljspeech", "manifest"] = "auto"
    val_data: str = ""
    val_fraction: float = 0.02
    max_audio_seconds: float = 20.0
    batch_frames: int = 4000
    max_batch_size: int = 64
    steps: int = 1000
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.01
    warmup_steps: int = 100
    decay: Literal["cosine", "linear", "constant"] = "cosine"
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 500
    val_every: int = 500
    sample_every: int = 0
    keep_checkpoints: int = 3
    # the bad-step guard: a step is skipped when its loss is not finite or is a spike (above
    # the running mean by more than spike_factor - 1 times the running mean of |loss|,
    # core/train/guard.py); max_bad_steps in a row stop the run
    max_bad_steps: int = 5
    spike_factor: float = 10.0
    cache_dir: str = ""
    # where the token durations come from: "mas" (monotonic alignment search, learnt),
    # "manifest" (a ``durations`` column: frames per token) or "textgrid" (Praat
    # TextGrids, e.g. from the Montreal Forced Aligner: ``textgrid_dir/<id>.TextGrid``,
    # one interval of ``textgrid_tier`` per token); see core.durations
    durations: Literal["mas", "manifest", "textgrid"] = "mas"
    textgrid_dir: str = ""
    textgrid_tier: str = "phones"
    # a checkpoint whose weights a new run starts from (core.train.init_from; CLI --init):
    # matching weights loaded, new output-side layers zeroed; "" = random initialisation.
    # Read when a run starts, not when it resumes (--resume does not compare it)
    init: str = ""
    # with init: the step the new run starts counting at (CLI --init-step), so that the
    # learning-rate schedule (and LeWM's KL and scheduled-sampling schedules, fractions of
    # ``steps``) go on from there: how a run continues from an export of it when its run
    # folder is gone (a new machine).  The optimiser's moments, the EMA and the data order
    # start afresh; 0 = a run of its own from step 0
    init_step: int = 0

    def validate(self) -> None:
        if self.durations == "textgrid" and not self.textgrid_dir:
            raise ConfigError("training.durations 'textgrid' needs training.textgrid_dir (the folder of "
                              "<utterance id>.TextGrid files)")
        if self.durations != "textgrid" and self.textgrid_dir:
            raise ConfigError(f"training.textgrid_dir is set but training.durations is {self.durations!r}; "
                              "set durations to 'textgrid' or remove textgrid_dir")
        for name in ("batch_frames", "max_batch_size", "steps", "log_every"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"training.{name} must be positive, got {getattr(self, name)}")
        if self.init_step < 0:
            raise ConfigError(f"training.init_step must be >= 0, got {self.init_step}")
        if self.init_step and not self.init:
            raise ConfigError("training.init_step needs training.init (the checkpoint whose weights the run "
                              "continues from)")
        if self.init_step >= self.steps:
            raise ConfigError(f"training.init_step ({self.init_step}) must be below training.steps ({self.steps})")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError("training.ema_decay must be in [0, 1)")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError("training.val_fraction must be in [0, 1)")
        if self.max_bad_steps < 1:
            raise ConfigError("training.max_bad_steps must be >= 1")


@dataclass
class SamplingConfig:
    """Default inference settings stored with a checkpoint (what ``synthesize`` uses
    for an option left out).  Names, defaults, bounds and valid choices are those of
    :data:`core.sampling.options.SAMPLER_OPTIONS`, checked there."""

    steps: int = 10
    solver: str = "euler"
    schedule: str = "sway"
    sway: float = -1.0
    duration_scale: float = 1.0
    cfg: float = 0.0
    temperature: float = 1.0

    def validate(self) -> None:
        from .sampling.options import check_sampler_options

        try:
            check_sampler_options(to_dict(self))
        except ConfigError as exc:
            raise ConfigError(f"sampling section: {exc}") from None



# ---------------------------------------------------------------------- the LeWM family
REGULARIZERS = ("kl", "sigreg")
SS_SCHEDULES = ("off", "linear", "cosine")
PREDICTOR_HEADS = ("point", "gaussian")
LEWM_LIMITS = {"text_dim": 2 ** 14, "text_layers": 256, "text_heads": 1024, "latent_dim": 2 ** 12,
               "encoder_dim": 2 ** 14, "encoder_layers": 256, "encoder_heads": 1024, "predictor_dim": 2 ** 14,
               "predictor_layers": 256, "predictor_heads": 1024, "ff_mult": 64, "prenet_dim": 2 ** 14,
               "decoder_dim": 2 ** 14, "decoder_blocks": 256, "sigreg_projections": 2 ** 16,
               "sigreg_knots": 1025}


@dataclass
class LeWMConfig:
    """The LeWM family (a JEPA text-to-speech model, :mod:`core.lewm`): sizes, losses,
    exposure-bias remedies and length limits.  Used when ``model.family`` is ``lewm``.

    Sizes: byte/char text encoder (``text_*``, a transformer); audio encoder (1-D CNN
    that downsamples the mel by ``downsample_factor`` (2 or 4), then
    ``encoder_layers`` transformer layers) to latents of ``latent_dim``; predictor
    (``predictor_layers`` decoder layers: causal self-attention over latent frames,
    cross-attention to the text); mel decoder (Linear -> ``decoder_dim``, transposed-conv
    upsampling, ``decoder_blocks`` residual conv blocks, a refinement conv).

    Losses (all weights here): ``prediction_weight`` x latent MSE of the predictor;
    the regulariser ``regularizer``: ``kl`` (``kl_weight`` x KL(q(z|x) || N(0, I)), the
    weight ramped linearly from 0 over the first ``kl_anneal_fraction`` of training) or
    ``sigreg`` (``sigreg_weight`` x SIGReg: Epps-Pulley statistic of
    ``sigreg_projections`` random 1-D projections against N(0, 1), integrated on
    ``sigreg_knots`` points); ``reconstruction_weight`` x L1 of the decoded mel;
    ``spectral_weight`` x multi-resolution spectral loss (L1 of the mel average-pooled
    by each of ``spectral_scales``, in time and frequency); ``stop_weight`` x stop BCE
    with positive-class weight ``stop_pos_weight``.

    Predictor output, ``predictor_head``: ``point`` (the next latent; its loss the MSE) or
    ``gaussian`` (mean and log-variance of the next latent, :mod:`core.lewm.gaussian_head`;
    the predictor learns by Gaussian negative log-likelihood, the encoder keeps the MSE's
    gradient; generation samples ``mean + temperature * std * eps``).

    Exposure bias: ``scheduled_sampling`` (``off``, ``linear``, ``cosine``) ramps the
    rate at which the second of two passes feeds back the first pass's predictions,
    from 0 at ``ss_start`` to ``ss_max_rate`` at ``ss_end`` (fractions of training);
    ``ss_passes`` (2..8, default 2) runs that many passes, each after the first feeding
    back the previous pass's predictions at that rate, so the last pass (the one the loss
    sees) has been fed predictions of predictions, up to ``ss_passes - 1`` deep: closer
    to free running, at one more gradient-free forward pass each;
    ``feedback_noise``: std of Gaussian noise added to the latents fed to the predictor
    in training; ``prenet_dropout`` (kept on at inference when
    ``prenet_dropout_at_inference``, as in Tacotron 2).

    ``predicted_mel_weight`` x L1 between the mel the decoder (parameters held fixed)
    makes of the predicted latents and the target mel: a loss on what the predictions
    sound like, for the predictor only (0: off; logged as ``pred_mel`` either way).

    Alignment: ``guided_attention_weight`` x the DC-TTS guided-attention penalty
    (:mod:`core.lewm.alignment`, width ``guided_attention_sigma``) on the cross-attention
    of the first ``guided_attention_heads`` heads of the last ``guided_attention_layers``
    predictor layers; 0 turns the training term off (the penalty is still logged as
    ``align``, a diagonality score).

    Stopping on the attention: with ``stop_on_attention``, generation also ends a row
    (at or after its minimum length) once the guided heads' cross-attention has reached
    the end of the text: the expected token position under their mean attention is
    within ``attention_stop_margin`` tokens of the last one.  Meant for a model trained
    with guided attention (its attention is diagonal); the stop head still ends rows too.

    Classifier-free guidance on the text: in training, each row's text features are
    zeroed with probability ``text_drop_prob`` (0..0.5; the unconditional predictor sees
    only the fed latents and the positions of the text), so that
    :func:`core.lewm.generate` can take ``cfg`` > 0 and predict each latent as ``cond +
    cfg * (cond - uncond)`` (F5-TTS's convention, as the flow sampler's ``cfg``).  It is
    measured in ``benchmarks/lewm_table.py --cfg``; the Synthesizer does not offer it yet
    (it did not make the demo voice intelligible, see docs/lewm.md).

    Lengths, in mel frames per text token: generation never stops before
    ``min_length_ratio`` x tokens nor runs past ``max_length_ratio`` x tokens.
    ``temperature``: with the ``point`` head, the default std of the noise added to each
    generated latent before it is fed back; with the ``gaussian`` head, the default scale
    of the predicted std when sampling each latent (0: the mean).  0 is deterministic
    apart from prenet dropout.
    """

    text_dim: int = 256
    text_layers: int = 4
    text_heads: int = 4
    latent_dim: int = 64
    downsample_factor: int = 2
    encoder_dim: int = 256
    encoder_layers: int = 4
    encoder_heads: int = 4
    predictor_dim: int = 256
    predictor_layers: int = 6
    predictor_heads: int = 4
    predictor_head: Literal[PREDICTOR_HEADS] = "point"
    ff_mult: int = 4
    dropout: float = 0.1
    prenet_dim: int = 256
    prenet_dropout: float = 0.5
    prenet_dropout_at_inference: bool = True
    decoder_dim: int = 512
    decoder_blocks: int = 3
    regularizer: Literal[REGULARIZERS] = "kl"
    prediction_weight: float = 1.0
    kl_weight: float = 0.01
    kl_anneal_fraction: float = 0.2
    sigreg_weight: float = 0.1
    sigreg_projections: int = 256
    sigreg_knots: int = 17
    reconstruction_weight: float = 1.0
    spectral_weight: float = 1.0
    spectral_scales: list = field(default_factory=lambda: [2, 4, 8])
    stop_weight: float = 1.0
    stop_pos_weight: float = 20.0
    scheduled_sampling: Literal[SS_SCHEDULES] = "linear"
    ss_start: float = 0.2
    ss_end: float = 0.8
    ss_max_rate: float = 0.5
    ss_passes: int = 2
    feedback_noise: float = 0.05
    guided_attention_weight: float = 0.0
    predicted_mel_weight: float = 0.0
    guided_attention_sigma: float = 0.4
    guided_attention_layers: int = 2
    guided_attention_heads: int = 2
    stop_on_attention: bool = False
    attention_stop_margin: float = 1.0
    min_length_ratio: float = 1.0
    max_length_ratio: float = 25.0
    temperature: float = 0.0
    text_drop_prob: float = 0.0

    def validate(self) -> None:
        for name in LEWM_LIMITS:
            if getattr(self, name) <= 0:
                raise ConfigError(f"lewm.{name} must be positive, got {getattr(self, name)}")
        _check_bounds("lewm", self, LEWM_LIMITS)
        if self.downsample_factor not in (2, 4):
            raise choice_error("lewm.downsample_factor", self.downsample_factor, (2, 4))
        for name, valid in (("regularizer", REGULARIZERS), ("scheduled_sampling", SS_SCHEDULES),
                            ("predictor_head", PREDICTOR_HEADS)):
            if getattr(self, name) not in valid:
                raise choice_error(f"lewm.{name}", getattr(self, name), valid)
        for dim, heads in (("text_dim", "text_heads"), ("encoder_dim", "encoder_heads"),
                           ("predictor_dim", "predictor_heads")):
            if getattr(self, dim) % getattr(self, heads):
                raise ConfigError(f"lewm.{dim} ({getattr(self, dim)}) must be divisible by lewm.{heads} "
                                  f"({getattr(self, heads)})")
        if (self.text_dim // self.text_heads) % 2 or (self.encoder_dim // self.encoder_heads) % 2:
            raise ConfigError("lewm.text_dim / text_heads and encoder_dim / encoder_heads must be even "
                              "(rotary positions)")
        for name in ("prediction_weight", "kl_weight", "sigreg_weight", "reconstruction_weight",
                     "spectral_weight", "stop_weight", "feedback_noise", "temperature", "guided_attention_weight",
                     "predicted_mel_weight"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"lewm.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("dropout", "prenet_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"lewm.{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("kl_anneal_fraction", "ss_max_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"lewm.{name} must be in [0, 1], got {getattr(self, name)}")
        if isinstance(self.ss_passes, bool) or not isinstance(self.ss_passes, int) or not 2 <= self.ss_passes <= 8:
            raise ConfigError(f"lewm.ss_passes must be an integer in 2..8, got {self.ss_passes!r}")
        if not 0.0 <= self.text_drop_prob <= 0.5:
            raise ConfigError(f"lewm.text_drop_prob must be in [0, 0.5], got {self.text_drop_prob}")
        if not 0.0 <= self.ss_start < self.ss_end <= 1.0:
            raise ConfigError(f"lewm.ss_start/lewm.ss_end must satisfy 0 <= ss_start < ss_end <= 1, "
                              f"got {self.ss_start}, {self.ss_end}")
        if not self.stop_pos_weight > 0:
            raise ConfigError(f"lewm.stop_pos_weight must be positive, got {self.stop_pos_weight}")
        if not 0.0 <= self.min_length_ratio < self.max_length_ratio <= 1000.0:
            raise ConfigError("lewm.min_length_ratio/lewm.max_length_ratio (mel frames per text token) must "
                              f"satisfy 0 <= min < max <= 1000, got {self.min_length_ratio}, "
                              f"{self.max_length_ratio}")
        if self.sigreg_knots < 3:
            raise ConfigError(f"lewm.sigreg_knots must be >= 3, got {self.sigreg_knots}")
        if not isinstance(self.stop_on_attention, bool):
            raise ConfigError(f"lewm.stop_on_attention must be true or false, got {self.stop_on_attention!r}")
        if not 0.0 <= self.attention_stop_margin <= 100.0:
            raise ConfigError(f"lewm.attention_stop_margin (text tokens) must be in [0, 100], got "
                              f"{self.attention_stop_margin}")
        if not 0.0 < self.guided_attention_sigma <= 10.0:
            raise ConfigError(f"lewm.guided_attention_sigma must be in (0, 10], got {self.guided_attention_sigma}")
        for name, limit in (("guided_attention_layers", "predictor_layers"), ("guided_attention_heads", "predictor_heads")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= getattr(self, limit):
                raise ConfigError(f"lewm.{name} must be an integer in [1, lewm.{limit} = {getattr(self, limit)}], "
                                  f"got {value!r}")
        scales = self.spectral_scales
        if not isinstance(scales, list) or not all(isinstance(s, int) and not isinstance(s, bool)
                                                   and 1 <= s <= 64 for s in scales):
            raise ConfigError(f"lewm.spectral_scales must be a list of integers in 1..64, got {scales!r}")


@dataclass
class Config:
    """The full resolved configuration of a run or checkpoint."""

    audio: AudioConfig = field(default_factory=AudioConfig)
    text: TextConfig = field(default_factory=TextConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    lewm: LeWMConfig = field(default_factory=LeWMConfig)

    @property
    def family(self) -> str:
        """``model.family``: ``flow`` or ``lewm``."""
        return self.model.family

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            getattr(self, f.name).validate()
        if self.family == "flow" and self.objective.cfg > 0 and self.model.cond_drop_prob == 0:
            raise ConfigError(f"objective.cfg {self.objective.cfg} needs the unconditional field, which only rows "
                              "with the text dropped train: set model.cond_drop_prob > 0 (e.g. 0.1)")

    def check_keys_apply(self) -> None:
        """Refuse a setting that the chosen family (and objective) would silently ignore:
        for ``lewm`` any changed objective, sampling or flow-only model setting; for
        ``flow`` any changed ``lewm`` setting.  Checked where a user's config enters
        (:meth:`load`, :func:`merge`), not when a checkpoint is read."""
        if self.family == "flow":
            self.objective.check_keys_apply()
            changed = [k for k, v in to_dict(self.lewm).items() if v != to_dict(LeWMConfig()).get(k)]
            if changed:
                raise ConfigError(f"lewm.{changed[0]} applies to model.family 'lewm' only; this config's "
                                  "family is 'flow' (set model.family to 'lewm', or remove the lewm section)")
            return
        if self.training.durations != "mas":
            raise ConfigError(f"training.durations {self.training.durations!r} applies to model.family 'flow' only: "
                              "a 'lewm' model has no token durations")
        for section, default, keep in (("model", ModelConfig(), LEWM_MODEL_KEYS), ("objective", ObjectiveConfig(), ()),
                                       ("sampling", SamplingConfig(), ())):
            for key, value in to_dict(getattr(self, section)).items():
                if key not in keep and value != to_dict(default)[key]:
                    why = (f"a 'lewm' model reads only model.{', model.'.join(LEWM_MODEL_KEYS)} and takes its sizes "
                           "from the lewm section" if section == "model" else
                           f"a 'lewm' model has no flow {section}: its losses and inference defaults are in the "
                           "lewm section")
                    raise ConfigError(f"{section}.{key} applies to model.family 'flow' only; {why}")

    # JSON round trip ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Config":
        return from_dict(cls, data)

    @classmethod
    def from_json(cls, text: str) -> "Config":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        """Load a JSON config file; a preset name (``small``/``base``/``tiny``) also works,
        and a file may say ``{"preset": "small", ...overrides}``."""
        p = Path(path)
        if not p.exists() and str(path) in PRESETS:
            return preset(str(path))
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config {p}: {exc.strerror or exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config {p} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config {p} must hold a JSON object")
        base = data.pop("preset", None)
        if base is not None:
            return merge(preset(base), data)
        cfg = cls.from_dict(data)
        cfg.check_keys_apply()
        return cfg

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- generic (de)serialisation


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain JSON-able dict (tuples become lists)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def _check_value(where: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be an object, got {type(value).__name__}")
        return from_dict(hint, value, where)
    if origin is Literal:
        if value not in args:
            raise choice_error(where, value, args)
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        others = [a for a in args if a is not type(None)]
        if len(others) == 1:
            return _check_value(where, others[0], value)
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{where} must be a list of {len(args)} numbers")
        return tuple(_check_value(f"{where}[{i}]", a, v) for i, (a, v) in enumerate(zip(args, value)))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    return value


# Keys that were removed: a file may still hold them at the value that meant "off"
# (checkpoints written before the removal); any other value is an error saying why.
_REMOVED = {"TrainingConfig": {"num_workers": (0, "data loads in the training process (it never used workers); "
                                                  "remove the key")}}


def from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``: unknown keys and bad values raise
    :class:`ConfigError`; missing keys take the defaults; the result is validated."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__} must be an object")
    removed = _REMOVED.get(cls.__name__, {})
    if any(k in data for k in removed):
        data = dict(data)
        for key, (off, why) in removed.items():
            if key in data and data.pop(key) != off:
                raise ConfigError(f"{where + '.' if where else ''}{key} was removed: {why}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        label = f"key in {where}" if where else "config key"
        raise choice_error(label, unknown[0], names)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _check_value(f"{where}.{name}" if where else name, hints[name], value)
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate()
    return obj


def differences(a: Config, b: Config, ignore: typing.Iterable[str] = ()) -> list[tuple[str, Any, Any]]:
    """``(dotted key, value in a, value in b)`` for every setting that differs, in
    section order, leaving out the keys in ``ignore`` (e.g. ``"training.steps"``)."""
    skip, out = set(ignore), []
    da, db = a.to_dict(), b.to_dict()
    for section, values in da.items():
        for key, value in values.items():
            name = f"{section}.{key}"
            if name not in skip and value != db.get(section, {}).get(key):
                out.append((name, value, db.get(section, {}).get(key)))
    return out


def merge(cfg: Config, overrides: dict[str, Any]) -> Config:
    """Return ``cfg`` with nested ``overrides`` applied (validated like a fresh load)."""
    data = cfg.to_dict()
    for section, values in overrides.items():
        if section not in data:
            raise choice_error("config section", section, list(data))
        if not isinstance(values, dict):
            raise ConfigError(f"config section {section!r} must be an object")
        data[section].update(values)
    cfg = Config.from_dict(data)
    cfg.check_keys_apply()
    return cfg


# --------------------------------------------------------------------------- presets


def _tiny() -> Config:
    """About 0.3M parameters: for tests and notebooks (well under a second a step on CPU)."""
    return Config(
        model=ModelConfig(text_dim=64, text_convnext_layers=2, text_transformer_layers=1, text_heads=2,
                          dim=64, depth=2, heads=2, ff_mult=2, speaker_dim=16,
                          duration_layers=1, duration_channels=64),
        training=TrainingConfig(batch_frames=1200, steps=20, warmup_steps=5, log_every=1,
                                checkpoint_every=10, val_every=10, lr=1e-3),
    )


def _small() -> Config:
    """About 7.6M parameters: trains on a 2-core CPU (a few seconds a step at 2000 frames)."""
    return Config(
        model=ModelConfig(text_dim=192, text_convnext_layers=4, text_transformer_layers=2, text_heads=2,
                          dim=256, depth=6, heads=4, ff_mult=2),
        training=TrainingConfig(batch_frames=2000, steps=20000, warmup_steps=500, lr=5e-4),
    )


def _base() -> Config:
    """F5-TTS-like width for GPU training (about 170M parameters)."""
    return Config(
        model=ModelConfig(text_dim=512, text_convnext_layers=4, text_transformer_layers=4, text_heads=8,
                          dim=768, depth=18, heads=12, ff_mult=2, speaker_dim=256,
                          duration_layers=3, duration_channels=512, dropout=0.1),
        training=TrainingConfig(batch_frames=38400, steps=300000, warmup_steps=5000, lr=1e-4,
                                precision="auto", checkpoint_every=5000, val_every=5000),
    )


def _lewm_tiny() -> Config:
    """A LeWM model of about 0.2M parameters: for tests (a fraction of a second a step on CPU)."""
    return Config(
        model=ModelConfig(family="lewm"),
        lewm=LeWMConfig(text_dim=32, text_layers=1, text_heads=2, latent_dim=8, encoder_dim=32, encoder_layers=1,
                        encoder_heads=2, predictor_dim=32, predictor_layers=2, predictor_heads=2, ff_mult=2,
                        dropout=0.0, prenet_dim=32, decoder_dim=32, decoder_blocks=1, sigreg_projections=16),
        training=TrainingConfig(batch_frames=1200, steps=20, warmup_steps=5, log_every=1,
                                checkpoint_every=10, val_every=10, lr=1e-3),
    )


def _lewm_small() -> Config:
    """The LeWM sizes of the project notes (text 4 x 256, encoder 4 x 256, predictor
    6 x 256, decoder 512 with 3 residual blocks; 22.4M parameters, 9.1M of them in the
    decoder) with 2x downsampling, for the demo corpus."""
    return Config(
        model=ModelConfig(family="lewm"),
        lewm=LeWMConfig(),
        training=TrainingConfig(batch_frames=4000, steps=20000, warmup_steps=500, lr=3e-4),
    )


def _lewm_demo() -> Config:
    """The bundled LeWM demo voice: ``lewm_small``'s layout cut to fit a 25 MB fp16
    sampling checkpoint (``python -m core export --dtype fp16``) with the audio encoder
    kept, so voice prompts work.

    Kept from the issue: byte text encoder 4 layers x 256 d x 4 heads; audio encoder 1-D
    CNN + 4 transformer layers (256 d); predictor 6 causal decoder layers (256 d, cross-
    attention to the text); mel decoder with ConvTranspose1d upsampling and residual conv
    blocks; 2x downsampling; latents of 64.  Cut where it costs least: the decoder (Linear
    -> 256 instead of 512, 2 residual blocks instead of 3: it maps 64-d latents to 100 mel
    bins, yet held 40 % of ``lewm_small``) and the feed-forward width (``ff_mult`` 2
    instead of 4, as in the flow ``small`` preset).  Parameters with the byte vocabulary
    (259) and the demo corpus's 4 speakers: text encoder 2.18M, audio encoder 2.53M,
    predictor 4.98M, decoder 1.67M; 11.35M in all, 22.8 MB exported in fp16
    (``lewm_small``: 22.4M, 44.9 MB).

    Losses and exposure-bias remedies are ``lewm_small``'s, the :class:`LeWMConfig`
    defaults: KL 0.01 annealed over the first 20 %; scheduled sampling ``linear`` from
    0.2 to 0.8 of training up to a rate of 0.5; feedback noise 0.05; prenet dropout 0.5,
    kept on at inference.

    Training is sized for a 2-core CPU: 3000-frame batches (about 10 clips of the demo
    corpus, mean 3.0 s).  Measured (``benchmarks/lewm_step_time.py``, 1 thread, load
    average 2.5 from two other trainings): 4.2 s a step with one predictor pass, 4.9 s
    with scheduled sampling's two, so 12,000 steps take about 16 h like that.  The
    schedules are fractions of ``training.steps``: choose it before the run starts."""
    return Config(
        model=ModelConfig(family="lewm"),
        lewm=LeWMConfig(ff_mult=2, decoder_dim=256, decoder_blocks=2),
        training=TrainingConfig(batch_frames=3000, steps=12000, warmup_steps=500, lr=3e-4, checkpoint_every=1000,
                                val_every=1000, sample_every=2000, keep_checkpoints=3),
    )


PRESETS = {"tiny": _tiny, "small": _small, "base": _base, "lewm_tiny": _lewm_tiny, "lewm_small": _lewm_small,
           "lewm_demo": _lewm_demo}


def preset(name: str) -> Config:
    """A named preset config (``tiny``, ``small``, ``base``; ``lewm_tiny``, ``lewm_small``, ``lewm_demo``)."""
    if name not in PRESETS:
        raise choice_error("preset", name, PRESETS)
    return PRESETS[name]()
