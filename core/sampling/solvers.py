"""ODE solvers that carry noise to data along a learned velocity field.

Time convention: ``t = 0`` is Gaussian noise, ``t = 1`` is data; the state obeys
``dx/dt = velocity(x, t)`` and :func:`integrate` steps it along a time grid (usually
from :func:`core.sampling.time_grid`), returning the state at the grid's last time.

Methods (explicit Runge-Kutta on any grid, uniform or not; ``h = t1 - t0``):

* ``euler``    (order 1, NFE 1): ``x + h k1``, ``k1 = v(x, t0)``
* ``midpoint`` (order 2, NFE 2): ``x + h v(x + h/2 k1, t0 + h/2)``
* ``heun``     (order 2, NFE 2): ``x + h/2 (k1 + v(x + h k1, t1))`` (trapezoidal / improved Euler)
* ``rk4``      (order 4, NFE 4): classic Runge-Kutta, weights 1/6, 2/6, 2/6, 1/6 (not the
  3/8 rule that torchdiffeq's ``rk4`` uses)
* ``dopri5``   (order 5, adaptive): Dormand-Prince via ``torchdiffeq.odeint``, read out at
  the grid times; a reference for measuring the others' discretisation error.

NFE is per step and exact (no evaluation is reused between steps, so a heun step
always costs 2); the adaptive ``dopri5`` counts its evaluations as it goes.

The fixed-step loop does no host synchronisation: the per-step times are precomputed
on the state's device and indexed there (no ``.item()``), so it can run under CUDA
graphs or ``torch.compile``.  Gradients flow through every method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from ..config import ConfigError, choice_error
from .options import SOLVER_NAMES

__all__ = ["SOLVERS", "FIXED_STEP_SOLVERS", "Trajectory", "Velocity", "integrate", "nfe_per_step"]

Velocity = Callable[[Tensor, Tensor], Tensor]
"""``velocity(x, t) -> dx/dt``: ``x`` any shape, ``t`` a 0-dim tensor; returns ``x``'s shape."""

_NFE_PER_STEP = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}
FIXED_STEP_SOLVERS: tuple[str, ...] = SOLVER_NAMES
assert FIXED_STEP_SOLVERS == tuple(_NFE_PER_STEP), "core.sampling.options.SOLVER_NAMES must match the solvers"
SOLVERS: tuple[str, ...] = FIXED_STEP_SOLVERS + ("dopri5",)

# dopri5 (rtol, atol) defaults: tight in float64, and above float32 round-off otherwise.
_DOPRI5_TOLERANCES = {torch.float64: (1e-9, 1e-11)}
_DOPRI5_TOLERANCES_DEFAULT = (1e-5, 1e-7)


@dataclass
class Trajectory:
    """The states of one integration at every grid time.

    Attributes:
        x1: the final state (``states[-1]``), shape of ``x0``.
        states: ``(N + 1, *x0.shape)``; ``states[0]`` is ``x0``, ``states[i]`` the state at ``times[i]``.
        times: ``(N + 1,)`` the grid the solver used (on ``x0``'s device).
        nfe: number of velocity evaluations made.
        method: the solver's name.
    """

    x1: Tensor
    states: Tensor
    times: Tensor
    nfe: int
    method: str


def nfe_per_step(method: str) -> int:
    """Velocity evaluations per step of a fixed-step method (euler 1, midpoint 2, heun 2, rk4 4).

    ``dopri5`` is adaptive, so it has no fixed count: read :attr:`Trajectory.nfe`.
    """
    if method == "dopri5":
        raise ConfigError("dopri5 is adaptive: its NFE depends on the tolerance and the field; "
                          "integrate with return_trajectory=True and read Trajectory.nfe")
    if method not in _NFE_PER_STEP:
        raise choice_error("solver", method, SOLVERS)
    return _NFE_PER_STEP[method]


def integrate(velocity: Velocity, x0: Tensor, grid: Tensor | Sequence[float], method: str = "euler", *,
              return_trajectory: bool = False, rtol: Optional[float] = None,
              atol: Optional[float] = None) -> Tensor | Trajectory:
    """Integrate ``dx/dt = velocity(x, t)`` from ``x0`` at ``grid[0]`` to ``grid[-1]``.

    Args:
        velocity: ``velocity(x, t) -> dx/dt`` with ``x`` shaped like ``x0`` (e.g. a mel
            batch ``(B, n_mels, frames)``) and ``t`` a 0-dim tensor on ``x0``'s device
            (float64 when ``x0`` is float64, else float32; expand it to a batch yourself).
        x0: the state at ``grid[0]`` (noise, for a grid from 0 to 1), any shape, floating.
        grid: ``(N + 1,)`` strictly monotone times, N >= 1 steps; usually
            ``time_grid(steps, schedule)`` from 0 (noise) to 1 (data).  A decreasing grid
            integrates backwards (data to noise).  It is moved to ``x0``'s device; a CPU
            grid is checked for monotonicity (a device grid is not, to avoid a sync).
        method: one of :data:`SOLVERS`.
        return_trajectory: return a :class:`Trajectory` (every state, the times and the
            NFE) instead of the final state.
        rtol, atol: ``dopri5`` tolerances only (default 1e-9/1e-11 in float64, else
            1e-5/1e-7); giving them with a fixed-step method is an error.

    Returns:
        The state at ``grid[-1]``, shape and dtype of ``x0`` (or a :class:`Trajectory`).
        NFE is ``nfe_per_step(method) * N`` for the fixed-step methods.
    """
    if method not in SOLVERS:
        raise choice_error("solver", method, SOLVERS)
    if method != "dopri5" and (rtol is not None or atol is not None):
        raise ConfigError(f"rtol/atol apply only to the adaptive dopri5 solver, not to {method}")
    if not isinstance(x0, Tensor) or not x0.is_floating_point():
        raise ConfigError(f"x0 must be a floating point tensor, got {type(x0).__name__}"
                          + (f" of {x0.dtype}" if isinstance(x0, Tensor) else ""))
    times = _prepare_grid(grid, x0)

    if method == "dopri5":
        return _integrate_dopri5(velocity, x0, times, return_trajectory, rtol, atol)

    step = _STEPS[method]
    t0s, t1s = times[:-1], times[1:]
    hs = t1s - t0s
    cache = _StepTimes(t0=t0s, t1=t1s, h=hs, half_h=0.5 * hs, tmid=t0s + 0.5 * hs, sixth_h=hs / 6.0)
    x = x0
    states = [x0] if return_trajectory else None
    for i in range(hs.shape[0]):
        x = step(velocity, x, cache, i)
        if states is not None:
            states.append(x)
    if states is None:
        return x
    return Trajectory(x1=x, states=torch.stack(states), times=times,
                      nfe=_NFE_PER_STEP[method] * hs.shape[0], method=method)


# --------------------------------------------------------------------------- internals


@dataclass
class _StepTimes:
    """Per-step times, each ``(N,)`` on the state's device, precomputed once."""

    t0: Tensor
    t1: Tensor
    h: Tensor
    half_h: Tensor
    tmid: Tensor
    sixth_h: Tensor


def _time_dtype(x0: Tensor) -> torch.dtype:
    # Low-precision states (bf16/fp16) keep float32 times: a bf16 grid would merge points.
    return torch.float64 if x0.dtype == torch.float64 else torch.float32


def _prepare_grid(grid: Tensor | Sequence[float], x0: Tensor) -> Tensor:
    """Validate ``grid`` and return it as a 1-D tensor on ``x0``'s device in the time dtype."""
    if not isinstance(grid, Tensor):
        try:
            grid = torch.as_tensor(grid, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"grid must be a 1-D tensor or a sequence of numbers: {exc}") from None
    if grid.dim() != 1 or grid.shape[0] < 2:
        raise ConfigError(f"grid must be 1-D with at least 2 times (N + 1 for N steps), got shape {tuple(grid.shape)}")
    if not grid.is_floating_point():
        grid = grid.to(torch.float64)
    if grid.device.type == "cpu":
        d = grid[1:] - grid[:-1]
        if not (bool((d > 0).all()) or bool((d < 0).all())):
            raise ConfigError("grid must be strictly monotone (e.g. increasing from 0 = noise to 1 = data)")
    return grid.to(device=x0.device, dtype=_time_dtype(x0))


def _eval(velocity: Velocity, x: Tensor, t: Tensor) -> Tensor:
    k = velocity(x, t)
    if not isinstance(k, Tensor) or k.shape != x.shape:
        got = tuple(k.shape) if isinstance(k, Tensor) else type(k).__name__
        raise ConfigError(f"velocity(x, t) must return a tensor shaped like x {tuple(x.shape)}, got {got}")
    return k


def _euler(v: Velocity, x: Tensor, s: _StepTimes, i: int) -> Tensor:
    return x + s.h[i] * _eval(v, x, s.t0[i])


def _midpoint(v: Velocity, x: Tensor, s: _StepTimes, i: int) -> Tensor:
    k1 = _eval(v, x, s.t0[i])
    return x + s.h[i] * _eval(v, x + s.half_h[i] * k1, s.tmid[i])


def _heun(v: Velocity, x: Tensor, s: _StepTimes, i: int) -> Tensor:
    k1 = _eval(v, x, s.t0[i])
    k2 = _eval(v, x + s.h[i] * k1, s.t1[i])
    return x + s.half_h[i] * (k1 + k2)


def _rk4(v: Velocity, x: Tensor, s: _StepTimes, i: int) -> Tensor:
    k1 = _eval(v, x, s.t0[i])
    k2 = _eval(v, x + s.half_h[i] * k1, s.tmid[i])
    k3 = _eval(v, x + s.half_h[i] * k2, s.tmid[i])
    k4 = _eval(v, x + s.h[i] * k3, s.t1[i])
    return x + s.sixth_h[i] * (k1 + 2.0 * (k2 + k3) + k4)


_STEPS: dict[str, Callable[[Velocity, Tensor, _StepTimes, int], Tensor]] = {
    "euler": _euler, "midpoint": _midpoint, "heun": _heun, "rk4": _rk4,
}


def _integrate_dopri5(velocity: Velocity, x0: Tensor, times: Tensor, return_trajectory: bool,
                      rtol: Optional[float], atol: Optional[float]) -> Tensor | Trajectory:
    """Adaptive Dormand-Prince 5(4) through torchdiffeq, read out at ``times``."""
    from torchdiffeq import odeint  # imported here: only the reference solver needs it

    default_rtol, default_atol = _DOPRI5_TOLERANCES.get(x0.dtype, _DOPRI5_TOLERANCES_DEFAULT)
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    if not (rtol > 0 and atol > 0):
        raise ConfigError(f"dopri5 rtol and atol must be > 0, got rtol={rtol}, atol={atol}")
    calls = 0

    def field(t: Tensor, y: Tensor) -> Tensor:  # torchdiffeq calls f(t, y)
        nonlocal calls
        calls += 1
        return _eval(velocity, y, t)

    states = odeint(field, x0, times, method="dopri5", rtol=rtol, atol=atol)
    if not return_trajectory:
        return states[-1]
    return Trajectory(x1=states[-1], states=states, times=times, nfe=calls, method="dopri5")
