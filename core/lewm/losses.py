"""LeWM losses, each a small function with its closed form in the docstring.

Shapes: latents (B, T', D) with a frame mask (B, T') bool; mels (B, n_mels, T) with a
frame mask (B, T).  Masked means average over real frames only.

* :func:`prediction_mse` — mean over real frames and dims of ``(pred - target)^2``.
* :func:`copy_baseline_mse` — the same for the predictor that copies the previous frame,
  ``MSE(z_t, z_{t-1})`` over t >= 1: a reference the prediction loss must beat.
* :func:`gaussian_nll` — negative log-likelihood of the target under the predicted
  diagonal Gaussian, ``0.5 (logvar + (target - mean)^2 exp(-logvar) + log 2 pi)`` per
  dimension, averaged over real frames and dims (nats per latent dimension; the
  ``full=True`` form of ``torch.nn.functional.gaussian_nll_loss``).  At ``logvar = 0`` it
  is ``0.5 MSE + 0.5 log 2 pi``.
* :func:`gaussian_kl` — ``KL(N(mu, exp(logvar)) || N(0, 1))`` per dimension,
  ``0.5 (mu^2 + exp(logvar) - 1 - logvar)``, averaged over real frames and dims (nats
  per latent dimension).
* :func:`kl_weight_at` — linear annealing from 0 to the weight over a fraction of training.
* :func:`sigreg` — SIGReg (LeJEPA): the latents of the batch projected on random unit
  directions, each projection's Epps-Pulley statistic against N(0, 1), averaged.
* :func:`mel_l1`, :func:`multi_resolution_spectral_loss` — reconstruction losses.
* :func:`stop_bce` — stop-token BCE with a positive-class weight.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["prediction_mse", "copy_baseline_mse", "gaussian_nll", "gaussian_kl", "kl_weight_at", "epps_pulley", "sigreg",
           "mel_l1", "multi_resolution_spectral_loss", "stop_targets", "stop_bce", "EPPS_PULLEY_T_MAX"]

EPPS_PULLEY_T_MAX = 5.0
"""Upper end of the Epps-Pulley integral over t (the weight exp(-t^2/2) is 4e-6 there)."""


def _frames(mask: Tensor, like: Tensor) -> Tensor:
    return mask.to(like.dtype).unsqueeze(-1)


def prediction_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Masked mean of ``(pred - target)^2`` over real frames and dims; (B, T, D) -> scalar."""
    m = _frames(mask, pred)
    return (((pred - target) ** 2) * m).sum() / (m.sum() * pred.shape[-1]).clamp(min=1)


def copy_baseline_mse(z: Tensor, mask: Tensor) -> Tensor:
    """MSE of predicting frame t by frame t - 1, over t >= 1 where both are real."""
    pair = mask[:, 1:] & mask[:, :-1]
    return prediction_mse(z[:, :-1], z[:, 1:], pair)


def gaussian_nll(mean: Tensor, logvar: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Masked mean of ``0.5 (logvar + (target - mean)^2 exp(-logvar) + log 2 pi)`` over real
    frames and dims; (B, T, D) x 3 -> scalar (nats per dimension)."""
    nll = 0.5 * (logvar + (target - mean) ** 2 * torch.exp(-logvar) + math.log(2.0 * math.pi))
    m = _frames(mask, nll)
    return (nll * m).sum() / (m.sum() * mean.shape[-1]).clamp(min=1)


def gaussian_kl(mu: Tensor, logvar: Tensor, mask: Tensor) -> Tensor:
    """Closed-form KL(N(mu, e^logvar) || N(0, 1)) per dimension, masked mean; (B, T, D) -> scalar."""
    kl = 0.5 * (mu * mu + torch.exp(logvar) - 1.0 - logvar)
    m = _frames(mask, kl)
    return (kl * m).sum() / (m.sum() * mu.shape[-1]).clamp(min=1)


def kl_weight_at(step: int, total_steps: int, weight: float, anneal_fraction: float) -> float:
    """KL weight after ``step`` updates: ``weight * min(1, step / (anneal_fraction * total))``,
    the full weight from the start when ``anneal_fraction`` is 0."""
    ramp = anneal_fraction * total_steps
    if ramp <= 0:
        return float(weight)
    return float(weight) * min(1.0, max(0, step) / ramp)


def epps_pulley(x: Tensor, knots: int = 17, t_max: float = EPPS_PULLEY_T_MAX) -> Tensor:
    """Epps-Pulley distance of each column of ``x`` (N, M) from N(0, 1), divided by N.

    ``D = integral over R of |phi_N(t) - exp(-t^2 / 2)|^2 exp(-t^2 / 2) dt`` with the
    empirical characteristic function ``phi_N(t) = mean_j exp(i t x_j)``; the integrand is
    even, so D = 2 x the trapezoidal rule on ``knots`` points of [0, t_max].  (The test
    statistic is N * D; the loss uses D so its scale does not grow with the batch.)  For
    N(0, 1) samples E[D] = O(1 / N); for the population N(mu, 1),
    ``D = 2 sqrt(pi / 1.5) (1 - exp(-mu^2 / 6))``.  Returns (M,).
    """
    t = torch.linspace(0.0, t_max, knots, device=x.device, dtype=torch.float32)
    xt = x.float()[:, :, None] * t                                    # (N, M, K)
    re, im = torch.cos(xt).mean(0), torch.sin(xt).mean(0)               # (M, K)
    target = torch.exp(-0.5 * t * t)
    integrand = ((re - target) ** 2 + im ** 2) * target
    return 2.0 * torch.trapezoid(integrand, t, dim=-1)


def sigreg(z: Tensor, mask: Tensor, projections: int, knots: int = 17,
           generator: Optional[torch.Generator] = None) -> Tensor:
    """SIGReg of the real latent frames of a batch: the mean :func:`epps_pulley` distance
    of ``projections`` random 1-D projections (directions uniform on the unit sphere,
    drawn from ``generator``) from N(0, 1).  Zero in expectation (up to O(1/N)) exactly
    when every projection is standard normal, i.e. for isotropic N(0, I) latents."""
    flat = z[mask.bool()]                                               # (N, D)
    if flat.shape[0] < 2:
        return z.sum() * 0.0
    dev = generator.device if generator is not None else z.device
    directions = torch.randn(z.shape[-1], projections, generator=generator, device=dev).to(z.device)
    directions = directions / directions.norm(dim=0, keepdim=True)
    return epps_pulley(flat.float() @ directions.float(), knots).mean()


def mel_l1(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Masked mean absolute error of mels (B, C, T) over real frames and bins."""
    m = mask.to(pred.dtype)[:, None, :]
    return ((pred - target).abs() * m).sum() / (m.sum() * pred.shape[1]).clamp(min=1)


def multi_resolution_spectral_loss(pred: Tensor, target: Tensor, mask: Tensor, scales: Sequence[int]) -> Tensor:
    """Mean over ``scales`` s of the L1 distance between the mels (B, C, T) average-pooled
    over s frames and s bins (windows of s x s, stride s; padded frames zeroed and left
    out by a pooled mask).  Coarse scales weigh the spectral envelope and slow dynamics
    that a frame-wise L1 under-weights.  For ``pred = target + c`` it is ``|c|``."""
    if not scales:
        return pred.sum() * 0.0
    m = mask.to(pred.dtype)[:, None, :]
    total = pred.new_zeros(())
    for s in scales:
        k = (min(s, pred.shape[1]), s)
        if pred.shape[-1] < s:
            continue
        # pooled sum of values / pooled count of real frames: the mean over real frames only
        count = F.avg_pool2d(m[:, None].expand(-1, 1, pred.shape[1], -1), k, k)
        p = F.avg_pool2d((pred * m)[:, None], k, k)
        q = F.avg_pool2d((target * m)[:, None], k, k)
        full = count >= 1.0 - 1e-6                                      # windows of real frames only
        diff = ((p - q).abs() / count.clamp(min=1e-6)) * full
        total = total + diff.sum() / full.sum().clamp(min=1)
    return total / len(scales)


def stop_targets(mask: Tensor) -> Tensor:
    """(B, T') float: 1 at each row's last real frame, else 0."""
    lengths = mask.long().sum(1)
    idx = torch.arange(mask.shape[1], device=mask.device)
    return (idx[None, :] == (lengths - 1)[:, None]).float()


def stop_bce(logits: Tensor, mask: Tensor, pos_weight: float) -> Tensor:
    """Masked mean of ``-(w y log s(l) + (1 - y) log(1 - s(l)))`` with y = :func:`stop_targets`."""
    target = stop_targets(mask)
    loss = F.binary_cross_entropy_with_logits(logits.float(), target,
                                              pos_weight=torch.tensor(float(pos_weight), device=logits.device),
                                              reduction="none")
    m = mask.float()
    return (loss * m).sum() / m.sum().clamp(min=1)

