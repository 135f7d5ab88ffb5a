"""The generator: a ``vocos.Vocos`` built from the package's own modules on this
project's mel, and its export as a standard Vocos folder (``config.yaml`` +
``pytorch_model.bin``) that :meth:`core.vocoders.VocosVocoder.from_folder` and
``vocos.Vocos.from_hparams`` + ``load_state_dict`` (what ``Vocos.from_pretrained`` does)
load.

Shapes: ``generator.decode(mel)``: log-mel ``(B, n_mels, T)`` -> waveform
``(B, T * hop)`` (ISTFT head with ``padding="same"``).  The feature extractor
(``MelSpectrogramFeatures(padding="center")``) equals :func:`core.audio.mel_spectrogram`
for the default :class:`~core.config.AudioConfig`; it is only used by ``Vocos.forward``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

import torch

from ..checkpoint import atomic_write
from ..config import AudioConfig
from .config import GeneratorConfig

__all__ = ["vocos_yaml", "build_generator", "export_vocos_folder", "EXPORT_DTYPES", "generator_config_of"]

EXPORT_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}


def vocos_yaml(audio: AudioConfig, gen: GeneratorConfig) -> dict[str, Any]:
    """The ``config.yaml`` mapping of a Vocos mel model (the class paths the folder loader allows)."""
    backbone = {"input_channels": audio.n_mels, "dim": gen.dim, "intermediate_dim": gen.intermediate_dim,
                "num_layers": gen.num_layers}
    if gen.layer_scale_init_value is not None:
        backbone["layer_scale_init_value"] = gen.layer_scale_init_value
    return {
        "feature_extractor": {"class_path": "vocos.feature_extractors.MelSpectrogramFeatures",
                              "init_args": {"sample_rate": audio.sample_rate, "n_fft": audio.n_fft,
                                            "hop_length": audio.hop_length, "n_mels": audio.n_mels,
                                            "padding": "center" if audio.center else "same"}},
        "backbone": {"class_path": "vocos.models.VocosBackbone", "init_args": backbone},
        "head": {"class_path": "vocos.heads.ISTFTHead",
                 "init_args": {"dim": gen.dim, "n_fft": audio.n_fft, "hop_length": audio.hop_length,
                               "padding": "same"}},
    }


def _check_vocos_mel(audio: AudioConfig) -> None:
    """Vocos' MelSpectrogramFeatures is fixed to f_min 0, no f_max, power 1, HTK, no norm,
    log clip 1e-7; a run on other mel settings could not be exported as a Vocos folder."""
    from ..config import ConfigError

    fixed = {"f_min": 0.0, "f_max": None, "power": 1.0, "mel_scale": "htk", "norm": None, "log_clip": 1e-7}
    bad = [f"audio.{k}={getattr(audio, k)!r} (Vocos: {v!r})" for k, v in fixed.items() if getattr(audio, k) != v]
    if bad or audio.win_length != audio.n_fft:
        raise ConfigError("a Vocos mel vocoder cannot use these mel settings: " + ", ".join(
            bad or [f"audio.win_length={audio.win_length} != n_fft={audio.n_fft}"]))


def build_generator(audio: AudioConfig, gen: GeneratorConfig) -> torch.nn.Module:
    """A fresh ``vocos.Vocos`` (feature extractor + backbone + ISTFT head); uses the
    global torch RNG for its initial weights."""
    import vocos
    from vocos.feature_extractors import MelSpectrogramFeatures
    from vocos.heads import ISTFTHead
    from vocos.models import VocosBackbone

    _check_vocos_mel(audio)
    args = vocos_yaml(audio, gen)
    return vocos.Vocos(feature_extractor=MelSpectrogramFeatures(**args["feature_extractor"]["init_args"]),
                       backbone=VocosBackbone(**args["backbone"]["init_args"]),
                       head=ISTFTHead(**args["head"]["init_args"]))


def generator_config_of(model: torch.nn.Module) -> GeneratorConfig:
    """The :class:`GeneratorConfig` of a built ``vocos.Vocos`` with a ``VocosBackbone``."""
    from ..config import ConfigError
    from vocos.heads import ISTFTHead
    from vocos.models import VocosBackbone

    bb = model.backbone
    if not isinstance(bb, VocosBackbone) or not isinstance(model.head, ISTFTHead):
        raise ConfigError(f"--init: only VocosBackbone + ISTFTHead models can be trained here, got "
                          f"{type(bb).__name__} + {type(model.head).__name__}")
    block = bb.convnext[0]
    return GeneratorConfig(dim=int(bb.embed.out_channels), intermediate_dim=int(block.pwconv1.out_features),
                           num_layers=len(bb.convnext),
                           layer_scale_init_value=None)


def export_vocos_folder(generator: torch.nn.Module, audio: AudioConfig, gen: GeneratorConfig,
                        folder: Union[str, os.PathLike], dtype: str = "fp32") -> Path:
    """Write ``folder/config.yaml`` and ``folder/pytorch_model.bin`` (the full state dict;
    backbone and head weights cast to ``dtype``, the feature extractor's window and
    filterbank kept in float32).  Both files are written atomically; returns the folder."""
    import yaml

    from ..config import choice_error

    if dtype not in EXPORT_DTYPES:
        raise choice_error("export dtype", dtype, EXPORT_DTYPES)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cast = EXPORT_DTYPES[dtype]
    state = {k: (v.detach().to("cpu", cast) if v.is_floating_point() and not k.startswith("feature_extractor.")
                 else v.detach().to("cpu")).contiguous().clone()
             for k, v in generator.state_dict().items()}
    text = yaml.safe_dump(vocos_yaml(audio, gen), sort_keys=False)
    atomic_write(folder / "config.yaml", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    atomic_write(folder / "pytorch_model.bin", lambda tmp: torch.save(state, tmp))
    return folder
