"""The Gaussian output head of the LeWM predictor: a distribution over the next latent frame.

With ``lewm.predictor_head = "gaussian"`` the predictor returns, per step, the mean of the
next latent (its ``out`` projection, as the point head) and a log-variance per latent
dimension (:class:`GaussianHead`), a diagonal Gaussian ``N(mean, exp(logvar))``.

* Training (:func:`core.lewm.losses.gaussian_nll`): the negative log-likelihood of the
  encoder's latents under that Gaussian.  How it sits beside the point head's MSE is in
  :mod:`core.lewm.learner`.
* Generation (:func:`sample_latents`): ``mean + temperature * exp(logvar / 2) * eps`` with
  ``eps ~ N(0, I)`` drawn from each row's own generator; temperature 0 gives the mean, 1 a
  sample of the predicted distribution.  The sample is the generated frame: it is decoded
  and fed back.

Log-variance bounds (:func:`bounded_logvar`): a free log-variance lets the NLL run to
minus infinity on a frame that the predictor fits exactly, and one sample from a huge
variance derails generation.  The head keeps it inside
``[LOGVAR_MIN, LOGVAR_MAX]`` = [-8, 2] (std 0.018 to 2.7; the latents are of unit scale
under KL or SIGReg) with the smooth clamp of PETS (Chua et al. 2018)::

    h      = LOGVAR_MAX - softplus(LOGVAR_MAX - raw)
    logvar = LOGVAR_MIN + softplus(h - LOGVAR_MIN)

which is close to the identity well inside the bounds and, unlike a hard clamp, never
stops the gradient.  Its range is ``(LOGVAR_MIN, LOGVAR_MIN + softplus(LOGVAR_MAX -
LOGVAR_MIN))``: the upper end lies ``log(1 + e^-10)`` = 4.5e-5 above ``LOGVAR_MAX``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["GaussianHead", "bounded_logvar", "sample_latents", "LOGVAR_MIN", "LOGVAR_MAX"]

LOGVAR_MIN = -8.0
LOGVAR_MAX = 2.0


def bounded_logvar(raw: Tensor, low: float = LOGVAR_MIN, high: float = LOGVAR_MAX) -> Tensor:
    """Soft clamp of ``raw`` (any shape) to about [low, high]; see the module docstring."""
    h = high - F.softplus(high - raw)
    return low + F.softplus(h - low)


class GaussianHead(nn.Module):
    """Predictor features (B, T, dim) -> bounded log-variance (B, T, latent_dim)."""

    def __init__(self, dim: int, latent_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, latent_dim)

    def forward(self, h: Tensor) -> Tensor:
        return bounded_logvar(self.proj(h))


def sample_latents(mean: Tensor, logvar: Tensor, temperature: float, eps: Tensor) -> Tensor:
    """``mean + temperature * exp(logvar / 2) * eps``; all (B, D), ``eps`` standard normal."""
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return mean
    return mean + temperature * (0.5 * logvar).exp() * eps.to(mean.dtype)
