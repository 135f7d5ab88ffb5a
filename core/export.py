"""``python -m core export``: a small inference checkpoint from a training checkpoint.

A training checkpoint carries the EMA weights, the raw weights and the optimiser state
(about four times the model in fp32).  Sampling needs only the EMA weights, so the export
keeps those, optionally cast to ``fp16`` or ``bf16`` (half the bytes; the synthesizer
loads them into fp32 parameters, so the network still runs in fp32 unless asked
otherwise), and drops the rest.  Config, speakers, tokenizer and mel settings travel
unchanged; ``extra["exported_from"]`` records the source file's name, SHA-256 and step.
This is how ``assets/demo.pt`` was made from the demo run's last checkpoint.

``sampling`` writes a voice's recommended inference settings into the exported config's
``sampling`` section (e.g. ``{"steps": 10, "cfg": 2.0}``: options left out keep the
source's values).  ``core synth``, ``core eval`` and the studio's "checkpoint default"
start from that section, so a bundled voice ships with the settings that measured best.
Names, bounds and choices are :data:`core.sampling.options.SAMPLER_OPTIONS`.  A LeWM
model keeps its inference defaults in its ``lewm`` section: for it, ``sampling`` takes
:data:`LEWM_INFERENCE_OPTIONS` instead (e.g. ``{"stop_on_attention": True}``), checked
by :meth:`core.config.LeWMConfig.validate`.  A name of the other family is an error
listing the valid ones.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import Config, ConfigError, SamplingConfig, choice_error, to_dict

__all__ = ["DTYPES", "LEWM_INFERENCE_OPTIONS", "export_checkpoint"]

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

# The ``lewm`` settings a LeWM voice's generation reads by default (LeWMSynthesizer): the
# ones an export may set, as ``sampling`` does for a flow voice.
LEWM_INFERENCE_OPTIONS = ("temperature", "min_length_ratio", "max_length_ratio", "stop_on_attention",
                          "attention_stop_margin")


def export_checkpoint(src: Union[str, Path], dst: Union[str, Path], dtype: str = "fp16",
                      sampling: Optional[Mapping[str, Any]] = None) -> Path:
    """Write the sampling weights of ``src`` to ``dst`` (``.pt`` or ``.safetensors``).

    Floating tensors are cast to ``dtype`` (``fp32``, ``fp16``, ``bf16``); integer buffers
    stay as they are.  ``sampling``: inference defaults to store in the config (see the
    module docstring; checked before anything is written).  Raises
    :class:`CheckpointError` for an unreadable source, a weight that does not fit in
    fp16's range, or ``dst`` equal to ``src``; :class:`ConfigError` for a bad option.
    """
    if dtype not in DTYPES:
        raise choice_error("dtype", dtype, DTYPES)
    src, dst = Path(src), Path(dst)
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise CheckpointError(f"{dst}: the export would overwrite its source; choose another file")
    ck = load_checkpoint(src)
    config = ck.config
    if sampling:
        config, sampling = _with_inference_defaults(config, sampling, src)
    target = DTYPES[dtype]
    weights = {}
    for name, tensor in ck.weights.items():
        if tensor.is_floating_point():
            cast = tensor.to(target)
            if not torch.isfinite(cast).all() and torch.isfinite(tensor).all():
                raise CheckpointError(f"{src}: weight {name} overflows {dtype} (max |w| = "
                                      f"{tensor.abs().max().item():.3g}); export as fp32 or bf16")
            tensor = cast
        weights[name] = tensor
    extra = dict(ck.extra)
    extra["exported_from"] = {"file": src.name, "sha256": ck.sha256, "step": ck.step, "dtype": dtype}
    if sampling:
        extra["exported_from"]["sampling"] = dict(sampling)
    return save_checkpoint(dst, config=config, weights=weights, step=ck.step, speakers=ck.speakers,
                           extra=extra)


def _with_inference_defaults(config: Config, sampling: Mapping[str, Any], src: Path) -> tuple[Config, dict]:
    """``config`` with ``sampling`` merged into the section its family samples from (flow:
    ``sampling``; LeWM: the :data:`LEWM_INFERENCE_OPTIONS` of ``lewm``), and the checked values."""
    if config.family == "lewm":
        for name, value in sampling.items():
            if name not in LEWM_INFERENCE_OPTIONS:
                raise choice_error("LeWM inference option", name, LEWM_INFERENCE_OPTIONS)
            wants_bool = name == "stop_on_attention"
            if isinstance(value, bool) != wants_bool or not isinstance(value, (bool, int, float)):
                raise ConfigError(f"{name} must be {'true or false' if wants_bool else 'a number'}, got {value!r}")
        checked = {k: (v if isinstance(v, bool) else float(v)) for k, v in sampling.items()}
        from .lewm.synthesizer import MAX_TEMPERATURE

        if not 0.0 <= checked.get("temperature", 0.0) <= MAX_TEMPERATURE:  # what the synthesizer accepts
            raise ConfigError(f"temperature must be in [0, {MAX_TEMPERATURE}], got {checked['temperature']}")
        lewm = dataclasses.replace(config.lewm, **checked)
        lewm.validate()
        return dataclasses.replace(config, lewm=lewm), checked
    from .sampling.options import OPTION, check_sampler_options

    for name in sampling:
        if name not in OPTION:
            raise choice_error("sampler option", name, list(OPTION))
    checked = check_sampler_options(sampling)
    if config.objective.name == "meanflow" and checked.get("solver", "euler") != "euler":
        raise ConfigError(f"{src}: a MeanFlow model samples by average-velocity jumps: solver must be "
                          f"'euler', got {checked['solver']!r}")
    merged = {**to_dict(config.sampling), **checked}
    new = SamplingConfig(**merged)
    new.validate()  # the rules between options (epss steps) on the merged section
    return dataclasses.replace(config, sampling=new), checked
