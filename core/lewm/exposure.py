"""Remedies for exposure bias (training feeds the teacher's latents, generation its own).

* :func:`scheduled_sampling_rate` — the rate at which the second training pass feeds
  back the model's own predictions: 0 before ``ss_start``, rising (``linear`` or
  ``cosine``) to ``ss_max_rate`` at ``ss_end`` (fractions of training), constant after;
  always 0 for ``off``.
* :func:`mix_fed_latents` — two-pass scheduled sampling for transformers (Mihaylova &
  Martins 2019): the first pass is teacher-forced; in the second, each fed frame is
  replaced, independently with probability ``rate``, by the first pass's prediction of
  that frame (detached).
* :func:`add_feedback_noise` — Gaussian noise on the fed latents.

(Prenet dropout kept on at inference is :class:`core.lewm.predictor.Prenet`'s masks.)
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from ..config import SS_SCHEDULES, LeWMConfig, choice_error

__all__ = ["scheduled_sampling_rate", "mix_fed_latents", "add_feedback_noise"]


def scheduled_sampling_rate(step: int, total_steps: int, lewm: LeWMConfig) -> float:
    """Rate in [0, ss_max_rate] after ``step`` of ``total_steps`` updates; see the module docstring."""
    kind = lewm.scheduled_sampling
    if kind not in SS_SCHEDULES:
        raise choice_error("lewm.scheduled_sampling", kind, SS_SCHEDULES)
    if kind == "off" or total_steps <= 0:
        return 0.0
    p = step / total_steps
    ramp = min(1.0, max(0.0, (p - lewm.ss_start) / (lewm.ss_end - lewm.ss_start)))
    if kind == "cosine":
        ramp = 0.5 * (1.0 - math.cos(math.pi * ramp))
    return lewm.ss_max_rate * ramp


def mix_fed_latents(teacher: Tensor, predicted: Tensor, rate: float,
                    generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """teacher, predicted (B, T, D): the fed latents of the two passes.  Returns the mixed
    latents and the (B, T) bool map of frames taken from ``predicted`` (each with
    probability ``rate``, independently); ``predicted`` is detached."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"scheduled-sampling rate must be in [0, 1], got {rate}")
    dev = generator.device if generator is not None else teacher.device
    u = torch.rand(teacher.shape[:2], generator=generator, device=dev).to(teacher.device)
    take = u < rate
    mixed = torch.where(take[..., None], predicted.detach().to(teacher.dtype), teacher)
    return mixed, take


def add_feedback_noise(z: Tensor, std: float, generator: Optional[torch.Generator] = None) -> Tensor:
    """z + std * N(0, I) (unchanged for std 0)."""
    if std <= 0:
        return z
    dev = generator.device if generator is not None else z.device
    return z + std * torch.randn(z.shape, generator=generator, device=dev).to(z.device, z.dtype)
