"""Sampling: time grids and ODE solvers (noise at t = 0 to data at t = 1).

``time_grid(steps, schedule, coef)`` makes the times; ``integrate(velocity, x0, grid,
method)`` carries the noise ``x0`` along ``dx/dt = velocity(x, t)`` to the data end.
Only the light modules are imported here; the synthesizer is imported on use.
"""

from .grids import EPSS_STEPS, SCHEDULES, SWAY_RANGE, time_grid
from .solvers import FIXED_STEP_SOLVERS, SOLVERS, Trajectory, integrate, nfe_per_step

__all__ = ["time_grid", "integrate", "SCHEDULES", "SOLVERS", "FIXED_STEP_SOLVERS", "EPSS_STEPS",
           "SWAY_RANGE", "nfe_per_step", "Trajectory"]
