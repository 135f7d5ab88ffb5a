"""ODE solvers against closed forms, torchdiffeq, their orders of convergence and autograd."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchdiffeq import odeint

from core.config import ConfigError
from core.sampling import FIXED_STEP_SOLVERS, SOLVERS, Trajectory, integrate, nfe_per_step, time_grid

F64 = torch.float64
# A non-uniform grid from 0 to 1 (steps of 0.1, 0.15, 0.05, 0.3, 0.2, 0.2).
GRID = torch.tensor([0.0, 0.1, 0.25, 0.3, 0.6, 0.8, 1.0], dtype=F64)


def test_public_names():
    assert SOLVERS == ("euler", "midpoint", "heun", "rk4", "dopri5")
    assert FIXED_STEP_SOLVERS == ("euler", "midpoint", "heun", "rk4")
    assert [nfe_per_step(m) for m in FIXED_STEP_SOLVERS] == [1, 2, 2, 4]


# --------------------------------------------------------------------------- quadrature: v depends on t only


def _quadrature_3t2(method: str, grid: torch.Tensor) -> float:
    """Closed form of each method on dx/dt = 3 t^2, x(0) = 0 (exact answer 1).

    Per step [a, b], h = b - a, f'' = 6: euler is the left rule h f(a); midpoint the
    midpoint rule, error -h^3 f''/24 = -h^3/4; heun the trapezoid rule, error
    +h^3 f''/12 = +h^3/2; rk4 reduces to Simpson's rule, exact for cubics.
    """
    a, h = grid[:-1], grid[1:] - grid[:-1]
    if method == "euler":
        return float((3 * a ** 2 * h).sum())
    if method == "midpoint":
        return 1.0 - float((h ** 3).sum()) / 4
    if method == "heun":
        return 1.0 + float((h ** 3).sum()) / 2
    return 1.0


@pytest.mark.parametrize("method", SOLVERS)
def test_three_t_squared_on_a_non_uniform_grid(method):
    x1 = integrate(lambda x, t: 3 * t ** 2 * torch.ones_like(x), torch.zeros(3, dtype=F64), GRID, method)
    expected = 1.0 if method == "dopri5" else _quadrature_3t2(method, GRID)
    torch.testing.assert_close(x1, torch.full((3,), expected, dtype=F64), rtol=0, atol=1e-12)


@pytest.mark.parametrize("method,expected", [
    # uniform N = 4: euler 3/N^3 * sum i^2 = (N-1)(2N-1)/(2N^2) = 21/32; midpoint 1 - 1/(4N^2) = 63/64;
    # heun 1 + 1/(2N^2) = 33/32; rk4 exact.
    ("euler", 21 / 32), ("midpoint", 63 / 64), ("heun", 33 / 32), ("rk4", 1.0)])
def test_three_t_squared_uniform_pinned(method, expected):
    x1 = integrate(lambda x, t: 3 * t ** 2 * torch.ones_like(x), torch.zeros(1, dtype=F64), time_grid(4), method)
    assert x1.item() == pytest.approx(expected, abs=1e-14)


@pytest.mark.parametrize("method,expected", [
    # one step of dx/dt = 5 t^4 on [0, 1]: euler 0; midpoint 5/16; trapezoid (0 + 5)/2;
    # Simpson (0 + 4 * 5/16 + 5)/6 = 25/24.  The 3/8-rule RK4 would give 55/54, so this
    # pins the classic tableau.
    ("euler", 0.0), ("midpoint", 5 / 16), ("heun", 5 / 2), ("rk4", 25 / 24)])
def test_quartic_one_step_pins_each_tableau(method, expected):
    x1 = integrate(lambda x, t: 5 * t ** 4 * torch.ones_like(x), torch.zeros(1, dtype=F64), [0.0, 1.0], method)
    assert x1.item() == pytest.approx(expected, abs=1e-15)


# --------------------------------------------------------------------------- linear fields: stability polynomials


def _amplification(method: str, z: complex) -> complex:
    """One step of dx/dt = lambda x multiplies x by R(z), z = h lambda (the truncated Taylor series)."""
    order = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}[method]
    return sum(z ** k / math.factorial(k) for k in range(order + 1))


@pytest.mark.parametrize("method", FIXED_STEP_SOLVERS)
def test_exponential_growth_matches_stability_polynomial(method):
    a = 1.3
    x0 = torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.25, -1.0]], dtype=F64)
    x1 = integrate(lambda x, t: a * x, x0, GRID, method)
    factor = np.prod([_amplification(method, float(h) * a).real for h in GRID.diff()])
    torch.testing.assert_close(x1, x0 * factor, rtol=1e-14, atol=0)
    assert abs(factor - math.exp(a)) < {"euler": 0.6, "midpoint": 0.05, "heun": 0.05, "rk4": 5e-4}[method]


def test_dopri5_exponential_and_its_gradient():
    a = 1.3
    x0 = torch.tensor([1.0, -2.0, 0.5], dtype=F64, requires_grad=True)
    x1 = integrate(lambda x, t: a * x, x0, GRID, "dopri5")
    torch.testing.assert_close(x1, x0.detach() * math.exp(a), rtol=1e-8, atol=0)
    x1.sum().backward()  # d x1 / d x0 = exp(a), through torchdiffeq's adaptive steps
    torch.testing.assert_close(x0.grad, torch.full((3,), math.exp(a), dtype=F64), rtol=1e-7, atol=0)


@pytest.mark.parametrize("method", FIXED_STEP_SOLVERS)
def test_rotation_norm_follows_stability_polynomial(method):
    # v = A x with A = [[0, -w], [w, 0]]: exact flow is a rotation by angle w (norm kept).
    # A has eigenvalues +-iw, so each step scales the norm by |R(i h w)|.
    w = 2.0
    A = torch.tensor([[0.0, -w], [w, 0.0]], dtype=F64)
    x0 = torch.tensor([[1.0, 0.0], [0.3, -0.7]], dtype=F64)
    x1 = integrate(lambda x, t: x @ A.T, x0, GRID, method)
    growth = np.prod([abs(_amplification(method, 1j * float(h) * w)) for h in GRID.diff()])
    torch.testing.assert_close(x1.norm(dim=1), x0.norm(dim=1) * growth, rtol=1e-13, atol=0)
    assert abs(growth - 1) < {"euler": 0.5, "midpoint": 0.05, "heun": 0.05, "rk4": 1e-3}[method]
    rotation = torch.tensor([[math.cos(w), -math.sin(w)], [math.sin(w), math.cos(w)]], dtype=F64)
    tol = {"euler": 1.0, "midpoint": 0.1, "heun": 0.1, "rk4": 2e-3}[method]
    assert (x1 - x0 @ rotation.T).abs().max().item() < tol


# --------------------------------------------------------------------------- order of convergence


def _forced_decay(x, t):
    return -x + torch.sin(t)


def _forced_decay_solution(x0: float, t: float) -> float:
    # x' + x = sin t  =>  x(t) = (x0 + 1/2) e^{-t} + (sin t - cos t) / 2
    return (x0 + 0.5) * math.exp(-t) + (math.sin(t) - math.cos(t)) / 2


@pytest.mark.parametrize("schedule", ["linear", "power", "sway"])
@pytest.mark.parametrize("method,order", [("euler", 1), ("midpoint", 2), ("heun", 2), ("rk4", 4)])
def test_empirical_order_of_convergence(method, order, schedule):
    x0 = torch.tensor([1.0], dtype=F64)
    exact = _forced_decay_solution(1.0, 1.0)
    steps = [4, 8, 16, 32]
    errors = [abs(integrate(_forced_decay, x0, time_grid(n, schedule, dtype=F64), method).item() - exact)
              for n in steps]
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert abs(-slope - order) < 0.3, (errors, slope)


def test_dopri5_matches_closed_form_at_every_grid_time():
    grid = time_grid(10, "sway", dtype=F64)
    traj = integrate(_forced_decay, torch.tensor([1.0], dtype=F64), grid, "dopri5", return_trajectory=True)
    expected = torch.tensor([[_forced_decay_solution(1.0, float(t))] for t in grid], dtype=F64)
    torch.testing.assert_close(traj.states, expected, rtol=0, atol=1e-9)
    x1_f32 = integrate(_forced_decay, torch.tensor([1.0]), grid.float(), "dopri5")  # looser float32 defaults
    assert abs(x1_f32.item() - _forced_decay_solution(1.0, 1.0)) < 1e-5


def test_dopri5_tolerances_change_the_work():
    x0 = torch.tensor([1.0], dtype=F64)
    loose = integrate(_forced_decay, x0, GRID, "dopri5", rtol=1e-3, atol=1e-5, return_trajectory=True)
    tight = integrate(_forced_decay, x0, GRID, "dopri5", rtol=1e-10, atol=1e-12, return_trajectory=True)
    assert loose.nfe < tight.nfe
    assert abs(tight.x1.item() - _forced_decay_solution(1.0, 1.0)) < 1e-9


# --------------------------------------------------------------------------- torchdiffeq's fixed-grid solvers


def _nonlinear_field():
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(4, 4, generator=gen, dtype=F64) / 2
    b = torch.randn(4, generator=gen, dtype=F64)
    return lambda x, t: torch.tanh(x @ W.T + b * torch.cos(3 * t)) - 0.5 * x


@pytest.mark.parametrize("method,theirs,tol", [
    ("euler", "euler", 1e-13), ("midpoint", "midpoint", 1e-13),
    ("heun", "heun2", 1e-13),  # torchdiffeq's heun2 is the same trapezoidal tableau
    # torchdiffeq's rk4 is the 3/8-rule variant: a different 4th-order method, so agreement is
    # only to the size of either's error on this 32-step grid (~2e-7 each).
    ("rk4", "rk4", 1e-6),
])
def test_agrees_with_torchdiffeq_on_a_non_uniform_grid(method, theirs, tol):
    v = _nonlinear_field()
    grid = time_grid(32, "sway", -0.8, dtype=F64)
    x0 = torch.randn(3, 4, generator=torch.Generator().manual_seed(1), dtype=F64)
    ours = integrate(v, x0, grid, method, return_trajectory=True).states
    reference = odeint(lambda t, x: v(x, t), x0, grid, method=theirs)
    torch.testing.assert_close(ours, reference, rtol=0, atol=tol)
    if method == "rk4":  # ... and both are close to the adaptive reference
        exact = integrate(v, x0, grid, "dopri5")
        assert (ours[-1] - exact).abs().max().item() < 1e-6


# --------------------------------------------------------------------------- bookkeeping


@pytest.mark.parametrize("method", SOLVERS)
def test_nfe_and_trajectory(method):
    calls = []

    def v(x, t):
        calls.append(t)
        return -x

    x0 = torch.randn(2, 5, 7)
    grid = time_grid(7, "sway")
    traj = integrate(v, x0, grid, method, return_trajectory=True)
    assert isinstance(traj, Trajectory) and traj.method == method
    assert traj.nfe == len(calls) > 0
    if method != "dopri5":
        assert traj.nfe == 7 * nfe_per_step(method)
    assert traj.states.shape == (8, 2, 5, 7)
    assert torch.equal(traj.states[0], x0) and torch.equal(traj.states[-1], traj.x1)
    assert torch.equal(traj.times, grid)
    assert all(t.dim() == 0 and t.dtype == torch.float32 for t in calls)
    calls.clear()
    x1 = integrate(v, x0, grid, method)
    assert isinstance(x1, torch.Tensor) and torch.equal(x1, traj.x1)


def test_nfe_per_step_errors():
    with pytest.raises(ConfigError, match=r"dopri5 is adaptive"):
        nfe_per_step("dopri5")
    with pytest.raises(ValueError, match=r"unknown solver 'rk45'; valid: euler, midpoint, heun, rk4, dopri5"):
        nfe_per_step("rk45")


@pytest.mark.parametrize("dtype,time_dtype", [(torch.float32, torch.float32), (torch.float64, F64),
                                              (torch.bfloat16, torch.float32)])
def test_state_dtype_kept_and_time_dtype(dtype, time_dtype):
    seen = []

    def v(x, t):
        seen.append(t.dtype)
        return torch.ones_like(x)

    x1 = integrate(v, torch.zeros(4, dtype=dtype), time_grid(10, "sway", dtype=F64), "heun")
    assert x1.dtype == dtype and set(seen) == {time_dtype}
    assert torch.allclose(x1.float(), torch.ones(4))  # dx/dt = 1 from 0 to 1


def test_decreasing_grid_integrates_backwards():
    x1 = torch.tensor([2.0, -1.0], dtype=F64)
    back = integrate(lambda x, t: 0.7 * x, x1, time_grid(20, dtype=F64).flip(0), "rk4")
    torch.testing.assert_close(back, x1 * math.exp(-0.7), rtol=1e-7, atol=0)


@pytest.mark.parametrize("method", FIXED_STEP_SOLVERS)
def test_gradcheck_through_the_solver(method):
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randn(2, 3, generator=gen, dtype=F64, requires_grad=True)
    W = (torch.randn(3, 3, generator=gen, dtype=F64) / 2).requires_grad_()
    grid = torch.tensor([0.0, 0.3, 0.45, 1.0], dtype=F64)

    def run(x0, W):
        return integrate(lambda x, t: torch.tanh(x @ W) * (1 + t), x0, grid, method)

    assert torch.autograd.gradcheck(run, (x0, W))


# --------------------------------------------------------------------------- bad input


def test_unknown_method_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown solver 'rk45'; valid: euler, midpoint, heun, rk4, dopri5"):
        integrate(lambda x, t: x, torch.zeros(2), time_grid(4), "rk45")


def test_tolerances_only_for_dopri5():
    with pytest.raises(ConfigError, match=r"rtol/atol apply only to the adaptive dopri5 solver, not to euler"):
        integrate(lambda x, t: x, torch.zeros(2), time_grid(4), "euler", rtol=1e-3)
    with pytest.raises(ConfigError, match=r"must be > 0"):
        integrate(lambda x, t: x, torch.zeros(2), time_grid(4), "dopri5", atol=0.0)


@pytest.mark.parametrize("grid", [torch.tensor(0.5), torch.tensor([0.0]), torch.zeros(2, 3), []])
def test_grid_shape_errors(grid):
    with pytest.raises(ConfigError, match=r"grid must be 1-D with at least 2 times"):
        integrate(lambda x, t: x, torch.zeros(2), grid)


@pytest.mark.parametrize("grid", [[0.0, 0.5, 0.5, 1.0], [0.0, 0.7, 0.3, 1.0]])
def test_non_monotone_grid(grid):
    with pytest.raises(ConfigError, match=r"strictly monotone"):
        integrate(lambda x, t: x, torch.zeros(2), grid)


def test_velocity_with_wrong_shape():
    with pytest.raises(ConfigError, match=r"must return a tensor shaped like x \(2, 3\), got \(1, 2, 3\)"):
        integrate(lambda x, t: x[None], torch.zeros(2, 3), time_grid(4))


def test_integer_state_refused():
    with pytest.raises(ConfigError, match=r"x0 must be a floating point tensor"):
        integrate(lambda x, t: x, torch.zeros(2, dtype=torch.long), time_grid(4))


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", FIXED_STEP_SOLVERS)
def test_no_host_sync_in_the_loop_on_cuda(method):
    x0 = torch.randn(2, 100, 50, device="cuda")
    grid = time_grid(10, "sway", device="cuda")
    expected = integrate(lambda x, t: -x * t, x0.cpu(), grid.cpu(), method)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        x1 = integrate(lambda x, t: -x * t, x0, grid, method)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.testing.assert_close(x1.cpu(), expected, rtol=1e-5, atol=1e-6)
