"""Where torch runs: one resolution of a device option for every entry point.

``resolve_device("auto")`` (or None) is CUDA when available, else the CPU; ``"cpu"``,
``"cuda"``, ``"cuda:N"`` and :class:`torch.device` are taken as they are.  An unknown
name, or CUDA asked for on a machine without it, is a :class:`core.config.ConfigError`
(a ``ValueError``) with the valid choices, whatever the caller (synthesizer, vocoders,
trainer, evaluation).
"""

from __future__ import annotations

from typing import Optional, Union

import torch

from .config import ConfigError

__all__ = ["resolve_device", "DEVICE_CHOICES"]

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")


def resolve_device(device: Union[str, torch.device, None] = "auto", cuda_index: Optional[int] = None) -> torch.device:
    """The :class:`torch.device` of ``device``; ``auto`` picks ``cuda:<cuda_index>`` (or
    the current CUDA device) when CUDA is available, else the CPU."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", cuda_index) if cuda_index is not None else torch.device("cuda")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}; valid: {', '.join(DEVICE_CHOICES)}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {device!r}; valid: {', '.join(DEVICE_CHOICES)}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for but CUDA is not available on this machine; use cpu or auto")
    return dev
