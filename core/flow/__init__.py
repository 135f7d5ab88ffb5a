"""Training objectives, independent of the network architecture.

Time convention: t = 0 is Gaussian noise, t = 1 is data (mel); x_t = (1-t) x0 + t x1,
target velocity x1 - x0. Each objective takes ``net(x, t, r) -> out`` (x (B, C, T),
t (B,), r (B,) or None) and a frame mask (B, T), and returns a :class:`LossOutput`;
``objective.velocity(net)`` is the flow velocity every ODE solver samples.

* :class:`CFMObjective`      conditional flow matching (time sampling + weighting)
* :class:`EDMObjective`      Karras x0-prediction baseline, sampled as a flow
* :class:`MeanFlowObjective` average velocity u(z, r, t); :func:`meanflow_target`
"""

from .base import (LossOutput, Net, Objective, OBJECTIVES, Unconditional, VelocityFn, build_objective,
                   masked_mean_square)
from .cfm import CFMObjective
from .edm import (EDMObjective, EDMPreconditioning, edm_loss_weight, edm_preconditioning, karras_sigmas,
                  sigma_to_time, time_to_sigma)
from .meanflow import (AverageVelocityFn, MeanFlowJVP, MeanFlowObjective, adaptive_weight, jvp_attention,
                       meanflow_jvp, meanflow_sample, meanflow_target, meanflow_trajectory)
from .timesteps import TIME_SAMPLERS, WEIGHTINGS, TimeSampling, loss_weight, sample_time

__all__ = [
    "LossOutput", "Net", "Objective", "OBJECTIVES", "Unconditional", "VelocityFn", "build_objective",
    "masked_mean_square",
    "CFMObjective",
    "EDMObjective", "EDMPreconditioning", "edm_loss_weight", "edm_preconditioning", "karras_sigmas",
    "sigma_to_time", "time_to_sigma",
    "AverageVelocityFn", "MeanFlowJVP", "MeanFlowObjective", "adaptive_weight", "jvp_attention",
    "meanflow_jvp", "meanflow_sample", "meanflow_target", "meanflow_trajectory",
    "TIME_SAMPLERS", "WEIGHTINGS", "TimeSampling", "loss_weight", "sample_time",
]
