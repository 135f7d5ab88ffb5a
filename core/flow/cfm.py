"""Conditional flow matching on the straight (optimal-transport) path.

Time convention: t = 0 is Gaussian noise, t = 1 is data.

    x0 ~ N(0, I),  t ~ time sampler,  x_t = (1-t) x0 + t x1,  target = x1 - x0
    loss = mean_b  w(t_b) * masked_mse(net(x_t, t, None) - target)_b

The network output is the velocity v(x_t, t) itself, so :meth:`CFMObjective.velocity`
just calls it.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..config import ObjectiveConfig, check_objective_settings
from .base import (LossOutput, Net, Objective, VelocityFn, batch_time, call_net, clean_padding,
                   draw_normal, masked_mean_square)
from .timesteps import TimeSampling, loss_weight

__all__ = ["CFMObjective"]


class CFMObjective(Objective):
    """Conditional flow matching with configurable time sampling and loss weighting.

    time_sampling: how t is drawn (see :class:`TimeSampling`).
    weighting:     ``none`` | ``linear`` | ``quadratic`` (w = 1, t, t^2).
    """

    name = "cfm"

    def __init__(self, time_sampling: Optional[TimeSampling] = None, weighting: str = "none") -> None:
        check_objective_settings(weighting=weighting)
        self.time_sampling = time_sampling if time_sampling is not None else TimeSampling()
        self.weighting = weighting

    @classmethod
    def from_config(cls, config: ObjectiveConfig) -> "CFMObjective":
        return cls(time_sampling=TimeSampling.from_config(config), weighting=config.weighting)

    def loss(self, net: Net, x1: Tensor, mask: Optional[Tensor] = None,
             generator: Optional[torch.Generator] = None) -> LossOutput:
        """x1: (B, C, T) mel; mask: (B, T) bool or None. See the module docstring."""
        x1 = clean_padding(x1, mask)
        t = self.time_sampling.sample(x1.shape[0], generator=generator, device=x1.device, dtype=x1.dtype)
        x0 = draw_normal(x1, generator)
        tb = t[:, None, None]
        x_t = (1 - tb) * x0 + tb * x1
        target = x1 - x0
        pred = call_net(net, x_t, t, None)
        mse = masked_mean_square(pred - target, mask)
        weight = loss_weight(t, self.weighting)
        loss = (weight * mse).mean()
        return LossOutput(loss=loss, per_example=mse.detach(), t=t.detach(),
                          terms={"cfm": loss.detach(), "mse": mse.detach().mean()})

    def velocity(self, net: Net) -> VelocityFn:
        """v(x, t) = net(x, t, None)."""

        def velocity(x: Tensor, t) -> Tensor:
            return call_net(net, x, batch_time(t, x), None)

        return velocity
