"""Flow-time sampling for training and the per-time loss weighting.

Time convention: t = 0 is Gaussian noise, t = 1 is data (x_t = (1-t) x0 + t x1).

Samplers (``TimeSampling.kind``):

* ``uniform``       t ~ U[0, 1)
* ``logit_normal``  t = sigmoid(m + s * n), n ~ N(0, 1)  (m = logit_mean, s = logit_std;
                    SD3 / Esser et al. 2024: concentrates on the middle of the path)
* ``range``         t ~ U[t_lo, t_hi)  (skip the extremes)

Weightings (:func:`loss_weight`): ``none`` w = 1, ``linear`` w = t, ``quadratic`` w = t^2
(emphasise the data end, where the mel's fine detail is decided).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch import Tensor

from ..config import TIME_SAMPLERS, WEIGHTINGS, ObjectiveConfig, check_objective_settings, choice_error
from .base import draw_uniform

__all__ = ["TIME_SAMPLERS", "WEIGHTINGS", "TimeSampling", "sample_time", "loss_weight"]



@dataclass(frozen=True)
class TimeSampling:
    """How training times are drawn; validated on construction.

    ``logit_mean``/``logit_std`` are used by ``logit_normal`` only, ``t_lo``/``t_hi`` by
    ``range`` only.
    """

    kind: str = "uniform"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    t_lo: float = 0.0
    t_hi: float = 1.0

    def __post_init__(self) -> None:
        check_objective_settings(time_sampling=self.kind, logit_std=self.logit_std, t_lo=self.t_lo, t_hi=self.t_hi)

    @classmethod
    def from_config(cls, config: ObjectiveConfig) -> "TimeSampling":
        return cls(kind=config.time_sampling, logit_mean=config.logit_mean, logit_std=config.logit_std,
                   t_lo=config.t_lo, t_hi=config.t_hi)

    def sample(self, n: int, generator: Optional[torch.Generator] = None,
               device: Optional[Union[torch.device, str]] = None,
               dtype: torch.dtype = torch.float32) -> Tensor:
        """(n,) flow times in [0, 1] on ``device``."""
        if self.kind == "uniform":
            return draw_uniform(n, generator, device, dtype)
        if self.kind == "range":
            u = draw_uniform(n, generator, device, dtype)
            return self.t_lo + (self.t_hi - self.t_lo) * u
        # logit_normal: draw the normal on the generator's device for reproducibility
        gen_device = generator.device if generator is not None else device
        z = torch.randn(n, dtype=dtype, device=gen_device, generator=generator).to(device)
        return torch.sigmoid(self.logit_mean + self.logit_std * z)


def sample_time(n: int, spec: Union[TimeSampling, ObjectiveConfig, str] = "uniform", *,
                generator: Optional[torch.Generator] = None,
                device: Optional[Union[torch.device, str]] = None,
                dtype: torch.dtype = torch.float32) -> Tensor:
    """Draw (n,) training times in [0, 1] (t = 0 noise, t = 1 data).

    ``spec`` is a :class:`TimeSampling`, an :class:`ObjectiveConfig` (its
    ``time_sampling``, ``logit_mean``, ``logit_std``, ``t_lo``, ``t_hi``) or a sampler
    name with default parameters. An unknown name raises :class:`ConfigError`.
    """
    if isinstance(spec, str):
        spec = TimeSampling(kind=spec)
    elif isinstance(spec, ObjectiveConfig):
        spec = TimeSampling.from_config(spec)
    elif not isinstance(spec, TimeSampling):
        raise TypeError(f"sample_time needs a TimeSampling, ObjectiveConfig or name, got {type(spec).__name__}")
    return spec.sample(n, generator=generator, device=device, dtype=dtype)


def loss_weight(t: Tensor, kind: str = "none") -> Tensor:
    """Per-example loss weight w(t), shaped like ``t``: ``none`` 1, ``linear`` t,
    ``quadratic`` t^2. An unknown name raises :class:`ConfigError`."""
    if kind == "none":
        return torch.ones_like(t)
    if kind == "linear":
        return t.clone()
    if kind == "quadratic":
        return t.square()
    raise choice_error("loss weighting", kind, WEIGHTINGS)
