"""Sampling: time grids, ODE solvers, classifier-free guidance and the Synthesizer
(noise at t = 0 to data at t = 1).

``time_grid(steps, schedule, coef)`` makes the times; ``integrate(velocity, x0, grid,
method)`` carries the noise ``x0`` along ``dx/dt = velocity(x, t)`` to the data end;
``guided_net`` / ``model_net`` apply guidance in one batched forward.  Only the light
modules are imported here; ``Synthesizer`` and ``Synthesis`` are imported on first use.
"""

from .grids import EPSS_STEPS, SCHEDULES, SWAY_RANGE, time_grid
from .guidance import check_cfg, combine_guidance, guided_net, model_net
from .solvers import FIXED_STEP_SOLVERS, SOLVERS, Trajectory, integrate, nfe_per_step

__all__ = ["time_grid", "integrate", "SCHEDULES", "SOLVERS", "FIXED_STEP_SOLVERS", "EPSS_STEPS",
           "SWAY_RANGE", "nfe_per_step", "Trajectory", "check_cfg", "combine_guidance", "guided_net",
           "model_net", "Synthesizer", "Synthesis"]


def __getattr__(name):
    if name in ("Synthesizer", "Synthesis"):
        from . import synthesizer

        return getattr(synthesizer, name)
    raise AttributeError(f"module 'core.sampling' has no attribute {name!r}")
