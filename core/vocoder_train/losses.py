"""Losses of vocoder training.

* :class:`MultiResolutionSTFTLoss` (written here; Parallel WaveGAN's form): per
  resolution, spectral convergence ``||S - S_hat||_F / ||S||_F`` plus the mean
  ``|log S - log S_hat|`` of the magnitudes (clamped at 1e-7), averaged over resolutions.
* the mel L1 is ``vocos.loss.MelSpecReconstructionLoss`` (its mel is this project's mel
  for the Vocos settings); the adversarial terms are ``vocos.loss.GeneratorLoss``,
  ``DiscriminatorLoss`` and ``FeatureMatchingLoss`` (hinge losses), combined in
  :class:`Discriminators` (``core.vocoder_train.discriminators``).
* :class:`PhaseLoss` (written here from APNet's definitions, Ai & Ling 2023): the
  instantaneous phase, group delay and instantaneous angular frequency errors of one
  STFT, each through the anti-wrapping function, optionally weighted by magnitude.

Waveforms are ``(B, samples)`` float tensors.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["MultiResolutionSTFTLoss", "PhaseLoss", "anti_wrap", "MAG_CLIP"]

MAG_CLIP = 1e-7


def _stft(x: Tensor, n_fft: int, hop: int, win: int, window: Tensor) -> Tensor:
    """``(B, samples)`` -> complex ``(B, n_fft // 2 + 1, frames)``: Hann window of ``win``
    samples, ``center=True`` (reflect), in float32.  Every loss here reads this STFT."""
    return torch.stft(x.float(), n_fft, hop, win, window=window, center=True, pad_mode="reflect",
                      return_complex=True)


class MultiResolutionSTFTLoss(nn.Module):
    """``(y_hat, y)`` ``(B, samples)`` each -> ``(loss, {"sc": ..., "mag": ...})``, scalars.

    ``resolutions``: ``[[n_fft, hop, win], ...]``; Hann window of ``win`` samples,
    ``center=True`` (reflect).  With ``y_hat = a * y`` (a > 0) the spectral convergence
    is ``|1 - a|`` and the log-magnitude term ``|log a|`` where no bin is clamped."""

    def __init__(self, resolutions):
        super().__init__()
        self.resolutions = [tuple(int(v) for v in r) for r in resolutions]
        for i, (_, _, win) in enumerate(self.resolutions):
            self.register_buffer(f"window{i}", torch.hann_window(win), persistent=False)

    def _magnitude(self, x: Tensor, i: int) -> Tensor:
        return _stft(x, *self.resolutions[i], getattr(self, f"window{i}")).abs().clamp(min=MAG_CLIP)

    def forward(self, y_hat: Tensor, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        if y_hat.shape != y.shape or y.dim() != 2:
            raise ValueError(f"y_hat and y must both be (batch, samples), got {tuple(y_hat.shape)} and {tuple(y.shape)}")
        if not self.resolutions:
            zero = y_hat.new_zeros(())
            return zero, {"sc": zero, "mag": zero}
        sc, mag = y_hat.new_zeros(()), y_hat.new_zeros(())
        for i in range(len(self.resolutions)):
            s_hat, s = self._magnitude(y_hat, i), self._magnitude(y, i)
            sc = sc + torch.linalg.vector_norm(s - s_hat) / torch.linalg.vector_norm(s).clamp(min=MAG_CLIP)
            mag = mag + (torch.log(s) - torch.log(s_hat)).abs().mean()
        n = len(self.resolutions)
        sc, mag = sc / n, mag / n
        return sc + mag, {"sc": sc.detach(), "mag": mag.detach()}


def anti_wrap(x: Tensor) -> Tensor:
    """``|x - 2 pi round(x / 2 pi)|``: the distance from ``x`` to the nearest multiple of
    2 pi, in [0, pi]; so a phase error of ``d + 2 pi k`` costs ``|d|`` (|d| <= pi)."""
    return (x - 2 * math.pi * torch.round(x / (2 * math.pi))).abs()


def _safe_angle(spec: Tensor, eps: float = 1e-6) -> Tensor:
    """``angle(spec)`` whose gradient stays finite: a bin with magnitude below ``eps`` (no
    defined phase) is read as ``eps + 0j``, a constant, so it passes no gradient."""
    re, im = spec.real, spec.imag
    small = re * re + im * im < eps * eps
    return torch.atan2(torch.where(small, torch.zeros_like(im), im), torch.where(small, torch.full_like(re, eps), re))


class PhaseLoss(nn.Module):
    """``(y_hat, y)`` ``(B, samples)`` each -> ``(loss, {"ip": ..., "gd": ..., "iaf": ...})``.

    On the STFT at ``resolution`` ``[n_fft, hop, win]`` (Hann, ``center=True``, reflect)
    with phases ``p_hat``, ``p`` of shape ``(B, F, frames)``:

    * ``ip``  = mean ``anti_wrap(p_hat - p)`` (instantaneous phase);
    * ``gd``  = mean ``anti_wrap(diff_F p_hat - diff_F p)`` (group delay: along frequency);
    * ``iaf`` = mean ``anti_wrap(diff_t p_hat - diff_t p)`` (instantaneous angular
      frequency: along time);

    ``loss = ip + gd + iaf``.  ``weighting``: ``none`` takes plain means over all bins
    (APNet); ``magnitude`` weighs each bin by the reference's magnitude ``|S|`` (a
    difference by the smaller of its two bins' magnitudes: both need a phase),
    normalised to sum to 1, so bins where the reference is silent (its phase is noise)
    count for nothing.  Closed forms: ``y_hat = a * y`` (a > 0) gives 0 for all three;
    ``y_hat = -y`` gives ``ip = pi`` and ``gd = iaf = 0``."""

    def __init__(self, resolution, weighting: str = "magnitude"):
        super().__init__()
        from ..config import choice_error
        from .config import PHASE_WEIGHTINGS

        if weighting not in PHASE_WEIGHTINGS:
            raise choice_error("phase weighting", weighting, PHASE_WEIGHTINGS)
        self.n_fft, self.hop, self.win = (int(v) for v in resolution)
        self.weighting = weighting
        self.register_buffer("window", torch.hann_window(self.win), persistent=False)

    def _spec(self, x: Tensor) -> Tensor:
        return _stft(x, self.n_fft, self.hop, self.win, self.window)  # (B, F, frames)

    def _mean(self, err: Tensor, w: Tensor | None) -> Tensor:
        if w is None:
            return err.mean()
        return (err * w).sum() / w.sum().clamp(min=MAG_CLIP)

    def forward(self, y_hat: Tensor, y: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        if y_hat.shape != y.shape or y.dim() != 2:
            raise ValueError(f"y_hat and y must both be (batch, samples), got {tuple(y_hat.shape)} and {tuple(y.shape)}")
        s_hat, s = self._spec(y_hat), self._spec(y)
        p_hat, p = _safe_angle(s_hat), _safe_angle(s).detach()
        w = wf = wt = None
        if self.weighting == "magnitude":
            w = s.abs().detach()
            wf = torch.minimum(w[:, 1:, :], w[:, :-1, :])
            wt = torch.minimum(w[:, :, 1:], w[:, :, :-1])
        ip = self._mean(anti_wrap(p_hat - p), w)
        gd = self._mean(anti_wrap(torch.diff(p_hat, dim=1) - torch.diff(p, dim=1)), wf)
        iaf = self._mean(anti_wrap(torch.diff(p_hat, dim=2) - torch.diff(p, dim=2)), wt)
        return ip + gd + iaf, {"ip": ip.detach(), "gd": gd.detach(), "iaf": iaf.detach()}
