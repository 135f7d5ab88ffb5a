"""MeanFlow (Geng et al. 2025) in this project's time direction (t = 0 noise, t = 1 data).

The network is the average velocity u(z, r, t) over [r, t], r <= t, where z is the state
at the earlier (noisier) time r:

    z_t = z + (t - r) u(z, r, t),      u(z, r, t) = 1/(t - r) int_r^t v(z_s, s) ds.

Differentiating (t - r) u(z_r, r, t) along the flow in r gives the MeanFlow identity

    u = v + (t - r) du/dr,     du/dr = v . du/dz + du/dr(partial)

(the total derivative along the flow: one JVP with tangents (v, 1, 0) for (z, r, t)).
Training regresses u(z, r, t) on the right-hand side under stop-gradient, with v the
conditional velocity x1 - x0 of the straight path.

Network convention: the objectives call ``net(x, t, r)`` (x, end time, start time), so
u(z, r, t) = net(z, t, r) and the instantaneous velocity is v(x, t) = net(x, t, t).

Guidance trained in (the paper's training-time CFG, ``cfg`` > 0): the conditional velocity v is
replaced, in the JVP's tangent and in the target alike, by the guided field

    v~ = v + cfg (v - u(z, r, r | null)),      omega = 1 + cfg,

with the unconditional instantaneous velocity under stop-gradient, on the rows whose text
condition is kept (dropped rows train the unconditional field with the plain v).  ``cfg`` is
the sampler's convention (out = cond + cfg (cond - uncond)), so the one-step network imitates
the flow sampled with that guidance, at one forward a step; it is then sampled with cfg 0.
The single-sample v is noisy, and v~ scales that noise by omega.  ``cfg_kappa`` = kappa in
[0, 1) mixes in the network's own conditional velocity (the paper's improved guidance
with a mixing scale kappa), also under stop-gradient:

    v~ = omega v + kappa u(z, r, r | c) + (1 - omega - kappa) u(z, r, r | null),
    omega = (1 + cfg)(1 - kappa),

whose fixed point u(. | c) = (1 + cfg) v_c - cfg u(. | null) is the same guided field,
with the noise of v scaled by omega instead of 1 + cfg.

The JVP's tangent (``jvp_tangent``): MeanFlow differentiates along the sample's velocity
v = x1 - x0, so the target carries that sample's noise through the network's Jacobian
(t - r) du/dz . v.  Improved MeanFlow (Geng et al. 2025, "On the challenges of fastforward
generative models") differentiates along the network's own instantaneous velocity
v_theta = u(z, r, r), detached (``predicted``):

    target = v + (t - r) du/dr |_(tangents (v_theta, 1, 0)),

which is their loss on v: u - (t - r) sg(du/dr) regressed on v, a plain regression whose
noise is v's alone.  When u is the exact average velocity of the network's own field,
u - (t - r) du/dr = v_theta, so the residual u - target is v_theta - v: zero in
expectation where v_theta is the marginal velocity.  With guidance the target's v is the
guided v~ as above; the tangent stays u(z, r, r | c), the field the network samples.

Forward-mode AD: PyTorch's fused SDPA kernels (flash / memory-efficient, also the CPU
flash kernel) have no forward-mode derivative. :meth:`MeanFlowObjective.loss` runs the
JVP inside :func:`jvp_attention`, which restricts ``F.scaled_dot_product_attention`` to
the math backend; a model with its own attention switch should also be called with its
math path (the TTS model takes ``attention="math"`` per call) inside the closure given
here. Under DistributedDataParallel pass the unwrapped module (the JVP cannot go through
the DDP wrapper) and synchronise gradients yourself.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import torch
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..config import ObjectiveConfig, check_objective_settings
from .base import (LossOutput, Net, Objective, Unconditional, VelocityFn, batch_time, call_net, clean_padding,
                   draw_normal, draw_uniform, masked_mean_square)
from .timesteps import TimeSampling

__all__ = [
    "AverageVelocityFn",
    "MeanFlowJVP",
    "meanflow_jvp",
    "meanflow_target",
    "adaptive_weight",
    "jvp_attention",
    "meanflow_sample",
    "meanflow_trajectory",
    "MeanFlowObjective",
]

AverageVelocityFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``u(z, r, t) -> average velocity``: z (B, C, T) state at r; r, t (B,) with r <= t."""


@dataclass
class MeanFlowJVP:
    """u: (B, C, T) u(z, r, t) (keeps its graph for backprop);
    dudr: (B, C, T) total derivative du/dr along the flow (tangents (v, 1, 0))."""

    u: Tensor
    dudr: Tensor


@contextmanager
def jvp_attention() -> Iterator[None]:
    """Restrict ``F.scaled_dot_product_attention`` to the math backend, the one with a
    forward-mode derivative, for the duration of a JVP."""
    with sdpa_kernel(SDPBackend.MATH):
        yield


def _check_times(z: Tensor, r: Tensor, t: Tensor, v: Tensor) -> None:
    if z.dim() != 3:  # a (B, D) state would broadcast (t - r)[:, None, None] to (B, B, D) silently
        raise ValueError(f"z must have shape (B, C, T), got {tuple(z.shape)}")
    b = z.shape[0]
    if r.shape != (b,) or t.shape != (b,):
        raise ValueError(f"r and t must have shape ({b},), got {tuple(r.shape)} and {tuple(t.shape)}")
    if v.shape != z.shape:
        raise ValueError(f"v must be shaped like z {tuple(z.shape)}, got {tuple(v.shape)}")


def meanflow_jvp(u: AverageVelocityFn, z: Tensor, r: Tensor, t: Tensor, v: Tensor) -> MeanFlowJVP:
    """u(z, r, t) and its total derivative along the flow in one ``torch.func.jvp``.

    u: callable u(z, r, t); z (B, C, T) the state at time r; r, t (B,); v (B, C, T) the
    velocity at (z, r). Tangents (v, 1, 0) for (z, r, t) give du/dr = v . du/dz + du/dr.
    """
    _check_times(z, r, t, v)

    def fn(z_: Tensor, r_: Tensor, t_: Tensor) -> Tensor:
        out = u(z_, r_, t_)
        if out.shape != z_.shape:
            raise ValueError(f"u(z, r, t) must return a tensor shaped like z {tuple(z_.shape)}, "
                             f"got {tuple(out.shape)}")
        return out

    out, dudr = torch.func.jvp(fn, (z, r, t), (v, torch.ones_like(r), torch.zeros_like(t)))
    return MeanFlowJVP(u=out, dudr=dudr)


def _target(v: Tensor, r: Tensor, t: Tensor, dudr: Tensor) -> Tensor:
    return (v + (t - r)[:, None, None] * dudr).detach()


def meanflow_target(u: AverageVelocityFn, z: Tensor, r: Tensor, t: Tensor, v: Tensor) -> Tensor:
    """The stop-gradient MeanFlow target v + (t - r) du/dr, (B, C, T), detached.

    Arguments as in :func:`meanflow_jvp`. With the true u and marginal v the target equals
    u(z, r, t); at r == t it equals v.
    """
    jv = meanflow_jvp(u, z, r, t, v)
    return _target(v, r, t, jv.dudr)


def adaptive_weight(sq: Tensor, p: float = 1.0, c: float = 1e-3) -> Tensor:
    """MeanFlow's adaptive loss weight 1 / (sq + c)^p, detached; sq the per-example
    squared error (B,)."""
    return (sq.detach() + c).pow(-p)


def _check_grid(grid: Tensor) -> None:
    if not isinstance(grid, Tensor) or grid.dim() != 1 or grid.numel() < 2:
        shape = tuple(grid.shape) if isinstance(grid, Tensor) else type(grid).__name__
        raise ValueError(f"grid must be a 1-D tensor of at least 2 times, got {shape}")


def meanflow_trajectory(u: AverageVelocityFn, x0: Tensor, grid: Tensor) -> Tensor:
    """States at every grid time, (K+1, B, C, T), jumping z_{k+1} = z_k + (t_{k+1} - t_k)
    u(z_k, t_k, t_{k+1}) from x0 (B, C, T) at grid[0] (grid: (K+1,) increasing, 0 to 1)."""
    _check_grid(grid)
    states = [x0]
    z = x0
    for k in range(grid.numel() - 1):
        r, t = batch_time(grid[k], z), batch_time(grid[k + 1], z)
        z = z + (t - r)[:, None, None] * u(z, r, t)
        states.append(z)
    return torch.stack(states)


def meanflow_sample(u: AverageVelocityFn, x0: Tensor, grid: Tensor) -> Tensor:
    """x1 (B, C, T) from noise x0 by average-velocity jumps over ``grid`` (one step:
    grid = [0, 1], x1 = x0 + u(x0, 0, 1))."""
    _check_grid(grid)
    z = x0
    for k in range(grid.numel() - 1):
        r, t = batch_time(grid[k], z), batch_time(grid[k + 1], z)
        z = z + (t - r)[:, None, None] * u(z, r, t)
    return z


class MeanFlowObjective(Objective):
    """MeanFlow loss with logit-normal (t, r) sampling and adaptive weighting.

    Times: two logit-normal draws (logit_mean, logit_std), sorted so r <= t; each example
    independently keeps r != t with probability ``r_neq_t_fraction`` and otherwise sets
    t = r (plain flow matching on that example).  The state z always sits at r, the
    noisier of the two draws (t = 0 is noise): as in the paper, whose z stays at its
    noisy end, so the r = t rows see the same time distribution as the state of the
    r != t rows (not its mirror image).  z = (1-r) x0 + r x1, v = x1 - x0.
    Loss: delta = u(z, r, t) - sg(target); sq = masked mean square of delta per example;
    loss = mean(w * sq) with w = 1 / (sq + adaptive_c)^adaptive_p (detached).

    ``cfg`` > 0 trains guidance in (module docstring): :meth:`loss` then needs
    ``unconditional``, and the guided v~ takes v's place.  ``jvp_tangent`` "predicted"
    takes du/dr along net(z, r, r) (detached) instead of v (module docstring).

    Reduction of ||delta||^2: the paper sums over a fixed number D of elements (an image);
    utterances differ in length, and a sum would grow with the frame count, so the weight
    and the meaning of c would change with length.  Here sq is the mean over channels and
    real frames (padding left out): length-independent, and ``adaptive_c`` is on that
    per-element scale (the paper's c over D elements corresponds to c / D here).
    """

    name = "meanflow"

    def __init__(self, logit_mean: float = 0.0, logit_std: float = 1.0, r_neq_t_fraction: float = 0.25,
                 adaptive_p: float = 1.0, adaptive_c: float = 1e-3, cfg: float = 0.0,
                 cfg_kappa: float = 0.0, jvp_tangent: str = "conditional") -> None:
        check_objective_settings(r_neq_t_fraction=r_neq_t_fraction, adaptive_p=adaptive_p, adaptive_c=adaptive_c,
                                 cfg=cfg, cfg_kappa=cfg_kappa, jvp_tangent=jvp_tangent)
        self.time_sampling = TimeSampling(kind="logit_normal", logit_mean=logit_mean, logit_std=logit_std)
        self.r_neq_t_fraction = float(r_neq_t_fraction)
        self.adaptive_p = float(adaptive_p)
        self.adaptive_c = float(adaptive_c)
        self.cfg = float(cfg)
        self.cfg_kappa = float(cfg_kappa)
        self.jvp_tangent = jvp_tangent

    @property
    def wants_unconditional(self) -> bool:
        return self.cfg > 0

    @classmethod
    def from_config(cls, config: ObjectiveConfig) -> "MeanFlowObjective":
        return cls(logit_mean=config.logit_mean, logit_std=config.logit_std,
                   r_neq_t_fraction=config.r_neq_t_fraction, adaptive_p=config.adaptive_p,
                   adaptive_c=config.adaptive_c, cfg=config.cfg, cfg_kappa=config.cfg_kappa,
                   jvp_tangent=config.jvp_tangent)

    def sample_times(self, n: int, generator: Optional[torch.Generator] = None,
                     device: Optional[torch.device] = None, dtype: torch.dtype = torch.float32
                     ) -> tuple[Tensor, Tensor]:
        """(r, t), each (n,), with r <= t (see the class docstring)."""
        a = self.time_sampling.sample(n, generator=generator, device=device, dtype=dtype)
        b = self.time_sampling.sample(n, generator=generator, device=device, dtype=dtype)
        r, t = torch.minimum(a, b), torch.maximum(a, b)
        distinct = draw_uniform(n, generator, device, dtype) < self.r_neq_t_fraction
        return r, torch.where(distinct, t, r)

    def loss(self, net: Net, x1: Tensor, mask: Optional[Tensor] = None,
             generator: Optional[torch.Generator] = None,
             unconditional: Optional[Unconditional] = None) -> LossOutput:
        """x1: (B, C, T); mask: (B, T) bool or None; ``unconditional`` the null-condition
        network, needed (and only read) when ``cfg`` > 0. See the class docstring."""
        if self.cfg > 0 and unconditional is None:
            raise ValueError(f"MeanFlow with cfg {self.cfg} trains guidance in and needs the unconditional "
                             "network: pass unconditional=Unconditional(net, dropped)")
        x1 = clean_padding(x1, mask)
        r, t = self.sample_times(x1.shape[0], generator=generator, device=x1.device, dtype=x1.dtype)
        x0 = draw_normal(x1, generator)
        z = (1 - r)[:, None, None] * x0 + r[:, None, None] * x1
        v = x1 - x0
        own = None  # the network's instantaneous velocity u(z, r, r), detached, when read
        if self.jvp_tangent == "predicted" or (self.cfg > 0 and self.cfg_kappa > 0):
            with torch.no_grad():
                own = call_net(net, z, r, r)
        if self.cfg > 0:
            v = self.guided_velocity(v, z, r, unconditional, net, own=own)
        tangent = own if self.jvp_tangent == "predicted" else v
        with jvp_attention():
            jv = meanflow_jvp(self.average_velocity(net), z, r, t, tangent)
        target = _target(v, r, t, jv.dudr)
        sq = masked_mean_square(jv.u - target, mask)
        weight = adaptive_weight(sq, self.adaptive_p, self.adaptive_c)
        loss = (weight * sq).mean()
        return LossOutput(loss=loss, per_example=sq.detach(), t=t.detach(),
                          terms={"meanflow": loss.detach(), "mse": sq.detach().mean(),
                                 "r_neq_t": (r < t).to(x1.dtype).mean()})

    def guided_velocity(self, v: Tensor, z: Tensor, r: Tensor, unconditional: Unconditional,
                        net: Optional[Net] = None, own: Optional[Tensor] = None) -> Tensor:
        """v~ = omega v + kappa u(z, r, r | c) + (1 - omega - kappa) u(z, r, r | null) with
        omega = (1 + cfg)(1 - kappa) (kappa 0: v + cfg (v - u(. | null))) on the rows whose
        condition is kept, v on the dropped ones; (B, C, T), detached.  v, z (B, C, T): the
        velocity and state at r (B,); ``net`` the conditional network (read when kappa > 0),
        or ``own`` its velocity net(z, r, r) computed already."""
        dropped = unconditional.dropped
        if dropped.shape != r.shape or dropped.dtype != torch.bool:
            raise ValueError(f"unconditional.dropped must be a ({r.shape[0]},) bool tensor, "
                             f"got {tuple(dropped.shape)} {dropped.dtype}")
        kappa = self.cfg_kappa
        if kappa > 0 and net is None and own is None:
            raise ValueError("cfg_kappa > 0 mixes in the conditional network's velocity: pass net")
        omega = (1 + self.cfg) * (1 - kappa)
        with torch.no_grad():
            guided = omega * v + (1 - omega - kappa) * call_net(unconditional.net, z, r, r)
            if kappa > 0:
                guided = guided + kappa * (own if own is not None else call_net(net, z, r, r))
        return torch.where(dropped.to(v.device)[:, None, None], v, guided).detach()

    def average_velocity(self, net: Net) -> AverageVelocityFn:
        """u(z, r, t) = net(z, t, r): z (B, C, T) the state at r, r <= t (B,)."""

        def u(z: Tensor, r: Tensor, t: Tensor) -> Tensor:
            return call_net(net, z, t, r)

        return u

    def velocity(self, net: Net) -> VelocityFn:
        """Instantaneous velocity v(x, t) = u(x, t, t) = net(x, t, t)."""

        def velocity(x: Tensor, t) -> Tensor:
            t = batch_time(t, x)
            return call_net(net, x, t, t)

        return velocity
