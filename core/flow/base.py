"""The shared contract of the training objectives: the loss record, the base class, the
masked mean square and the factory :func:`build_objective`.

Every objective is independent of the network architecture. It receives a callable

    net(x, t, r) -> out        x: (B, C, T)   t: (B,) in [0, 1]   r: (B,) or None

with the conditioning (text, speaker, mask) already closed over by the caller; ``out``
has ``x``'s shape and means what the objective says (CFM: velocity, EDM: the raw
backbone output F, MeanFlow: the average velocity).

Time convention: t = 0 is Gaussian noise, t = 1 is data; x_t = (1-t) x0 + t x1.
Masks are ``(B, T)`` bool, True = real frame; losses average over real frames and
channels only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import torch
from torch import Tensor

from ..config import OBJECTIVES, ConfigError, ObjectiveConfig, choice_error

__all__ = [
    "Net",
    "VelocityFn",
    "LossOutput",
    "Objective",
    "Unconditional",
    "OBJECTIVES",
    "build_objective",
    "masked_mean_square",
    "clean_padding",
    "batch_time",
    "call_net",
    "draw_normal",
    "draw_uniform",
]

Net = Callable[[Tensor, Tensor, Optional[Tensor]], Tensor]
"""``net(x, t, r) -> out``: x (B, C, T), t (B,), r (B,) or None, out (B, C, T)."""

VelocityFn = Callable[[Tensor, Union[Tensor, float]], Tensor]
"""``velocity(x, t) -> dx/dt`` in this project's time (t = 0 noise, t = 1 data)."""



@dataclass
class LossOutput:
    """What one objective step returns.

    loss:        scalar tensor to backpropagate (weighted, averaged over the batch).
    per_example: (B,) detached, unweighted masked mean square error of each example
                 (feeds the per-timestep loss curve).
    t:           (B,) detached flow time of each example in [0, 1] (t = 0 noise,
                 t = 1 data; EDM maps its noise level sigma to t = 1 / (1 + sigma)).
    terms:       named scalar terms for logging (detached tensors or floats).
    """

    loss: Tensor
    per_example: Tensor
    t: Tensor
    terms: dict[str, Union[float, Tensor]] = field(default_factory=dict)


@dataclass
class Unconditional:
    """The network with its text condition dropped, for guidance trained into an objective.

    net:     ``net(x, t, r)`` like the conditional one, every row with the null condition.
    dropped: (B,) bool, rows whose condition the conditional call already dropped (they
             train the unconditional field and take no guidance).
    """

    net: Net
    dropped: Tensor


class Objective:
    """A training objective: one :meth:`loss` method plus the flow velocity it implies.

    Subclasses set ``name`` and implement :meth:`loss` and :meth:`velocity`.  One that
    trains guidance in sets :attr:`wants_unconditional`; its caller then passes
    ``unconditional=`` (:class:`Unconditional`) to :meth:`loss`.
    """

    name: str = ""
    wants_unconditional: bool = False

    def loss(self, net: Net, x1: Tensor, mask: Optional[Tensor] = None,
             generator: Optional[torch.Generator] = None) -> LossOutput:
        """Loss of ``net`` on data ``x1`` (B, C, T) with frame mask (B, T) (None = all real).

        All randomness (noise, times) comes from ``generator`` when one is given, drawn
        on the generator's device, so a seeded generator makes the loss reproducible.
        """
        raise NotImplementedError

    def velocity(self, net: Net) -> VelocityFn:
        """The instantaneous flow velocity ``v(x, t)`` (x (B, C, T), t a number, a 0-d or
        a (B,) tensor) in this project's time, so every objective is sampled by the same
        ODE solvers from x0 ~ N(0, I) at t = 0 to data at t = 1."""
        raise NotImplementedError

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        fields = ", ".join(f"{k}={tuple(v.shape) if isinstance(v, Tensor) else v!r}"
                           for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


# --------------------------------------------------------------------------- helpers


def _check_mask(x: Tensor, mask: Optional[Tensor]) -> Optional[Tensor]:
    if x.dim() != 3:
        raise ValueError(f"expected a (batch, channels, frames) tensor, got shape {tuple(x.shape)}")
    if mask is None:
        return None
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (True = real frame), got {mask.dtype}")
    if mask.shape != (x.shape[0], x.shape[2]):
        raise ValueError(f"mask must have shape (batch, frames) = {(x.shape[0], x.shape[2])}, "
                         f"got {tuple(mask.shape)}")
    return mask.to(x.device)


def clean_padding(x1: Tensor, mask: Optional[Tensor]) -> Tensor:
    """``x1`` (B, C, T) with padded frames set to 0, so whatever the caller padded with
    (even NaN) can change neither the loss nor its gradient."""
    mask = _check_mask(x1, mask)
    if mask is None:
        return x1
    return torch.where(mask[:, None, :], x1, torch.zeros((), dtype=x1.dtype, device=x1.device))


def masked_mean_square(err: Tensor, mask: Optional[Tensor]) -> Tensor:
    """Per-example mean of ``err ** 2`` over channels and real frames.

    err: (B, C, T); mask: (B, T) bool or None (all real). Returns (B,). An example with
    no real frame gives 0 rather than NaN.
    """
    mask = _check_mask(err, mask)
    sq = err.square()
    if mask is None:
        return sq.mean(dim=(1, 2))
    sq = torch.where(mask[:, None, :], sq, torch.zeros((), dtype=sq.dtype, device=sq.device))
    count = mask.sum(dim=1).to(sq.dtype) * err.shape[1]
    return sq.sum(dim=(1, 2)) / count.clamp_min(1.0)


def batch_time(t: Union[Tensor, float], x: Tensor) -> Tensor:
    """Broadcast a time (a number, a 0-d, (1,) or (B,) tensor) to a (B,) tensor on
    ``x``'s device and dtype."""
    b = x.shape[0]
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.dim() == 0 or t.shape == (1,):
        return t.reshape(()).expand(b)
    if t.shape != (b,):
        raise ValueError(f"time must be a number or a tensor of shape ({b},), got {tuple(t.shape)}")
    return t


def call_net(net: Net, x: Tensor, t: Tensor, r: Optional[Tensor] = None) -> Tensor:
    """``net(x, t, r)`` with a check that the output has ``x``'s shape."""
    out = net(x, t, r)
    if not isinstance(out, Tensor) or out.shape != x.shape:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"net(x, t, r) must return a tensor shaped like x {tuple(x.shape)}, got {shape}")
    return out


def draw_normal(like: Tensor, generator: Optional[torch.Generator]) -> Tensor:
    """Standard normal noise shaped like ``like``, drawn on the generator's device (so a
    CPU generator reproduces the same numbers for a model on any device)."""
    if generator is None:
        return torch.randn(like.shape, dtype=like.dtype, device=like.device)
    noise = torch.randn(like.shape, dtype=like.dtype, device=generator.device, generator=generator)
    return noise.to(like.device)


def draw_uniform(n: int, generator: Optional[torch.Generator], device: Optional[torch.device],
                 dtype: torch.dtype) -> Tensor:
    """(n,) uniform numbers in [0, 1), drawn on the generator's device, returned on ``device``."""
    if generator is None:
        return torch.rand(n, dtype=dtype, device=device)
    return torch.rand(n, dtype=dtype, device=generator.device, generator=generator).to(device)


# --------------------------------------------------------------------------- factory


def build_objective(config: ObjectiveConfig) -> Objective:
    """The objective named by ``config.name`` (``cfm``, ``edm`` or ``meanflow``), with its
    options taken from ``config``. An unknown name raises :class:`ConfigError`."""
    if not isinstance(config, ObjectiveConfig):
        raise ConfigError(f"build_objective needs an ObjectiveConfig, got {type(config).__name__}")
    if config.name == "cfm":
        from .cfm import CFMObjective

        return CFMObjective.from_config(config)
    if config.name == "edm":
        from .edm import EDMObjective

        return EDMObjective.from_config(config)
    if config.name == "meanflow":
        from .meanflow import MeanFlowObjective

        return MeanFlowObjective.from_config(config)
    raise choice_error("objective", config.name, OBJECTIVES)
