"""EDM (Karras et al. 2022) x0-prediction baseline, sampleable as a flow in this
project's time.

Noise level sigma, data x1, x_noisy = x1 + sigma n. The denoiser wraps the backbone F:

    D(x; s) = c_skip(s) x + c_out(s) F(c_in(s) x, t_net(s))
    c_skip = sd^2 / (s^2 + sd^2)     c_out = s sd / sqrt(s^2 + sd^2)
    c_in   = 1 / sqrt(s^2 + sd^2)    c_noise = ln(s) / 4             (sd = sigma_data)

Noise input of the backbone. The backbone has a flow-time input in [0, 1], so instead
of c_noise it receives the fixed monotone map

    t_net(s) = 1 / (1 + clamp(s, sigma_min, sigma_max)) = sigmoid(-4 c_noise(clamped s)),

the flow time at which this noise level occurs (see below), the same in training and
sampling.

Weightings lambda(s) of the x0 error ``masked_mse(D - x1)``, with SNR = 1/s^2:

* ``karras``       (s^2 + sd^2) / (s sd)^2 = SNR + 1/sd^2. Equals 1/c_out^2, so the loss
                   is the plain MSE of F against its unit-variance target.
* ``clipped_snr``  clamp(SNR, 1e-4, 1e4) + 1/sd^2: the karras weight with its SNR term
                   kept inside [1e-4, 1e4], so the near-clean levels (SNR exploding as
                   s -> 0) and the pure-noise ones cannot dominate (the convergence note's
                   "clipped SNR").
* ``min_snr``      min(SNR, gamma) with gamma = ``snr_clip`` (Min-SNR-gamma, Hang et al.
                   2023, x0 form). SNR * ||x0 error||^2 is the epsilon-prediction loss;
                   capping at gamma stops the near-clean levels from dominating.
* ``simplified``   1 / (sd^2 + s^2) (the note's Option A).
* ``normalized``   the karras weight divided by its (detached) batch mean, so the loss
                   scale does not depend on which sigmas a batch happened to draw (the
                   note's Option 4, loss / mean weight).

Probability-flow ODE in flow time (t = 0 noise, t = 1 data). The straight path
x_t = (1-t) x0 + t x1 equals t (x1 + s x0) with s = (1-t)/t, so x_t / t is an EDM noisy
sample at sigma s, x1_hat = D(x_t / t; s) and v = (x1_hat - x_t) / (1 - t). Written with
q^2 = (1-t)^2 + sd^2 t^2 this is

    v(x, t) = x (sd^2 t - (1-t)) / q^2 + (sd / q) F(x / q, t_net(s(t)))

which is finite on all of [0, 1] (q >= sd / sqrt(1 + sd^2) > 0): no division by t or
1 - t is left, so solvers may evaluate t = 0 and t = 1 exactly; only the backbone's
noise input is clamped to [sigma_min, sigma_max].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor

from ..config import (EDM_WEIGHTINGS, SIGMA_SAMPLERS, ConfigError, ObjectiveConfig, check_objective_settings,
                      choice_error)
from .base import (LossOutput, Net, Objective, VelocityFn, batch_time, call_net, clean_padding,
                   draw_normal, draw_uniform, masked_mean_square)

__all__ = [
    "EDM_WEIGHTINGS",
    "SIGMA_SAMPLERS",
    "EDMPreconditioning",
    "edm_preconditioning",
    "edm_loss_weight",
    "karras_sigmas",
    "sigma_to_time",
    "time_to_sigma",
    "EDMObjective",
]

NORMALIZED_DATA_STD = 1.0
"""Std of what the objective sees in training: ``TTSModel.normalize_mel`` divides the
log-mel by the training set's global std, so the data have unit std, not EDM's 0.5."""

SNR_CLAMP = (1e-4, 1e4)  # the SNR range of the clipped_snr weighting


@dataclass
class EDMPreconditioning:
    """The four EDM coefficients for a batch of noise levels, each shaped like sigma."""

    c_skip: Tensor
    c_out: Tensor
    c_in: Tensor
    c_noise: Tensor


def edm_preconditioning(sigma: Tensor, sigma_data: float = 0.5) -> EDMPreconditioning:
    """Karras et al. 2022, Table 1 (EDM column), for sigma > 0 of any shape."""
    sd2 = sigma_data ** 2
    s2 = sigma.square()
    root = (s2 + sd2).sqrt()
    return EDMPreconditioning(c_skip=sd2 / (s2 + sd2), c_out=sigma * sigma_data / root,
                              c_in=1.0 / root, c_noise=sigma.log() / 4)


def edm_loss_weight(sigma: Tensor, kind: str = "karras", sigma_data: float = 0.5,
                    snr_clip: float = 5.0) -> Tensor:
    """lambda(sigma) shaped like sigma (see the module docstring for the formulas).
    ``normalized`` divides by the batch mean of the karras weight (detached)."""
    if kind not in EDM_WEIGHTINGS:
        raise choice_error("EDM weighting", kind, EDM_WEIGHTINGS)
    snr = sigma.square().reciprocal()
    if kind == "min_snr":
        return snr.clamp(max=snr_clip)
    if kind == "clipped_snr":
        return snr.clamp(*SNR_CLAMP) + 1.0 / sigma_data ** 2
    if kind == "simplified":
        return (sigma.square() + sigma_data ** 2).reciprocal()
    karras = snr + 1.0 / sigma_data ** 2
    if kind == "normalized":
        return karras / karras.mean().detach()
    return karras


def karras_sigmas(steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> Tensor:
    """(steps,) float64 noise levels from sigma_max down to sigma_min (Karras eq. 5):
    sigma_i = (smax^(1/rho) + i/(steps-1) (smin^(1/rho) - smax^(1/rho)))^rho."""
    check_objective_settings(discrete_steps=steps, sigma_min=sigma_min, sigma_max=sigma_max)
    frac = torch.arange(steps, dtype=torch.float64) / (steps - 1)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + frac * (lo - hi)) ** rho


def sigma_to_time(sigma: Tensor) -> Tensor:
    """Flow time t = 1 / (1 + sigma) at which the straight path has noise level sigma."""
    return 1.0 / (1.0 + sigma)


def time_to_sigma(t: Tensor) -> Tensor:
    """sigma = (1 - t) / t (inf at t = 0)."""
    return (1.0 - t) / t


class EDMObjective(Objective):
    """EDM x0-prediction loss with Karras preconditioning; sampled as a flow.

    sigma_sampling ``lognormal``: ln s ~ N(p_mean, p_std^2).  ``discrete``: uniform over
    the ``discrete_steps`` Karras sigmas (rho = 7, sigma_max first) whose index fraction
    i / (steps - 1) lies in [discrete_filter_lo, discrete_filter_hi] (0 = sigma_max,
    1 = sigma_min), so raising lo drops the noisiest and lowering hi the cleanest levels.

    timestep_filter f (the convergence note's Option 1; 0 = off, the baseline): skip the
    extreme fraction f of noise levels at each end, for either sampler: ``lognormal``
    draws from the log-normal truncated to its quantiles [f, 1 - f] (inverse-CDF
    sampling of u ~ U(f, 1 - f)); ``discrete`` keeps index fractions in [f, 1 - f] too.
    """

    name = "edm"

    def __init__(self, sigma_data: float = 0.5, p_mean: float = -1.2, p_std: float = 1.2,
                 sigma_min: float = 0.002, sigma_max: float = 80.0, sigma_sampling: str = "lognormal",
                 discrete_steps: int = 1000, discrete_filter_lo: float = 0.0, discrete_filter_hi: float = 1.0,
                 weighting: str = "karras", snr_clip: float = 5.0, timestep_filter: float = 0.0) -> None:
        check_objective_settings(sigma_data=sigma_data, p_std=p_std, sigma_min=sigma_min, sigma_max=sigma_max,
                                 sigma_sampling=sigma_sampling, discrete_steps=discrete_steps,
                                 discrete_filter_lo=discrete_filter_lo, discrete_filter_hi=discrete_filter_hi,
                                 edm_weighting=weighting, snr_clip=snr_clip, timestep_filter=timestep_filter)
        self.timestep_filter = float(timestep_filter)
        discrete_filter_lo = max(discrete_filter_lo, self.timestep_filter)
        discrete_filter_hi = min(discrete_filter_hi, 1.0 - self.timestep_filter)
        self.sigma_data = float(sigma_data)
        self.p_mean, self.p_std = float(p_mean), float(p_std)
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self.sigma_sampling = sigma_sampling
        self.weighting = weighting
        self.snr_clip = float(snr_clip)
        self.discrete_sigmas: Optional[Tensor] = None
        if sigma_sampling == "discrete":
            sigmas = karras_sigmas(discrete_steps, sigma_min, sigma_max)
            frac = torch.arange(discrete_steps, dtype=torch.float64) / (discrete_steps - 1)
            keep = (frac >= discrete_filter_lo - 1e-12) & (frac <= discrete_filter_hi + 1e-12)
            if not keep.any():
                raise ConfigError(f"discrete filter [{discrete_filter_lo}, {discrete_filter_hi}] keeps none "
                                  f"of the {discrete_steps} sigmas")
            self.discrete_sigmas = sigmas[keep]

    @classmethod
    def from_config(cls, config: ObjectiveConfig) -> "EDMObjective":
        """``sigma_data`` None means the std of the normalised mels the trainer feeds,
        :data:`NORMALIZED_DATA_STD`."""
        sd = NORMALIZED_DATA_STD if config.sigma_data is None else config.sigma_data
        return cls(sigma_data=sd, p_mean=config.p_mean, p_std=config.p_std,
                   sigma_min=config.sigma_min, sigma_max=config.sigma_max,
                   sigma_sampling=config.sigma_sampling, discrete_steps=config.discrete_steps,
                   discrete_filter_lo=config.discrete_filter_lo, discrete_filter_hi=config.discrete_filter_hi,
                   weighting=config.edm_weighting, snr_clip=config.snr_clip,
                   timestep_filter=config.timestep_filter)

    # ------------------------------------------------------------------ pieces
    def sample_sigma(self, n: int, generator: Optional[torch.Generator] = None,
                     device: Optional[torch.device] = None, dtype: torch.dtype = torch.float32) -> Tensor:
        """(n,) training noise levels."""
        if self.discrete_sigmas is not None:
            u = draw_uniform(n, generator, device, torch.float64)
            idx = (u * len(self.discrete_sigmas)).long().clamp(max=len(self.discrete_sigmas) - 1)
            return self.discrete_sigmas.to(device)[idx].to(dtype)
        gen_device = generator.device if generator is not None else device
        if self.timestep_filter > 0:  # inverse CDF of u ~ U(f, 1 - f): the truncated normal
            f = self.timestep_filter
            u = f + (1.0 - 2.0 * f) * draw_uniform(n, generator, device, torch.float64)
            z = (math.sqrt(2.0) * torch.erfinv(2.0 * u - 1.0)).to(dtype)
        else:
            z = torch.randn(n, dtype=dtype, device=gen_device, generator=generator).to(device)
        return (self.p_mean + self.p_std * z).exp()

    def network_time(self, sigma: Tensor) -> Tensor:
        """The backbone's time input t_net = 1 / (1 + clamp(sigma, sigma_min, sigma_max))."""
        return sigma_to_time(sigma.clamp(self.sigma_min, self.sigma_max))

    def denoiser(self, net: Net) -> Callable[[Tensor, Tensor], Tensor]:
        """D(y, sigma) -> x1_hat: y (B, C, T) noisy data at noise level sigma (B,) > 0."""
        sd = self.sigma_data

        def denoise(y: Tensor, sigma: Tensor) -> Tensor:
            sigma = batch_time(sigma, y)
            pre = edm_preconditioning(sigma, sd)
            f = call_net(net, pre.c_in[:, None, None] * y, self.network_time(sigma), None)
            return pre.c_skip[:, None, None] * y + pre.c_out[:, None, None] * f

        return denoise

    # ------------------------------------------------------------------ objective
    def loss(self, net: Net, x1: Tensor, mask: Optional[Tensor] = None,
             generator: Optional[torch.Generator] = None) -> LossOutput:
        """Weighted masked MSE of D(x1 + sigma n; sigma) against x1 (B, C, T)."""
        x1 = clean_padding(x1, mask)
        sigma = self.sample_sigma(x1.shape[0], generator=generator, device=x1.device, dtype=x1.dtype)
        noise = draw_normal(x1, generator)
        x_noisy = x1 + sigma[:, None, None] * noise
        x1_hat = self.denoiser(net)(x_noisy, sigma)
        mse = masked_mean_square(x1_hat - x1, mask)
        weight = edm_loss_weight(sigma, self.weighting, self.sigma_data, self.snr_clip)
        loss = (weight * mse).mean()
        return LossOutput(loss=loss, per_example=mse.detach(), t=sigma_to_time(sigma).detach(),
                          terms={"edm": loss.detach(), "mse": mse.detach().mean(),
                                 "weight_mean": weight.detach().mean()})

    def velocity(self, net: Net) -> VelocityFn:
        """Flow velocity of the probability-flow ODE in this project's time:
        v(x, t) = x (sd^2 t - (1-t)) / q^2 + (sd / q) F(x / q, t_net),
        q^2 = (1-t)^2 + sd^2 t^2; finite for every t in [0, 1]."""
        sd = self.sigma_data
        t_lo, t_hi = 1.0 / (1.0 + self.sigma_max), 1.0 / (1.0 + self.sigma_min)

        def velocity(x: Tensor, t) -> Tensor:
            t = batch_time(t, x)
            q = ((1 - t).square() + (sd * t).square()).sqrt()
            f = call_net(net, x / q[:, None, None], t.clamp(t_lo, t_hi), None)
            coef = (sd * sd * t - (1 - t)) / q.square()
            return coef[:, None, None] * x + (sd / q)[:, None, None] * f

        return velocity
