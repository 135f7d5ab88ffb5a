"""Losses of vocoder training.

* :class:`MultiResolutionSTFTLoss` (written here; Parallel WaveGAN's form): per
  resolution, spectral convergence ``||S - S_hat||_F / ||S||_F`` plus the mean
  ``|log S - log S_hat|`` of the magnitudes (clamped at 1e-7), averaged over resolutions.
* the mel L1 is ``vocos.loss.MelSpecReconstructionLoss`` (its mel is this project's mel
  for the Vocos settings); the adversarial terms are ``vocos.loss.GeneratorLoss``,
  ``DiscriminatorLoss`` and ``FeatureMatchingLoss`` (hinge losses), combined in
  :class:`Discriminators` (``core.vocoder_train.discriminators``).

Waveforms are ``(B, samples)`` float tensors.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["MultiResolutionSTFTLoss", "MAG_CLIP"]

MAG_CLIP = 1e-7


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
        n_fft, hop, win = self.resolutions[i]
        spec = torch.stft(x.float(), n_fft, hop, win, window=getattr(self, f"window{i}"), center=True,
                          pad_mode="reflect", return_complex=True)
        return spec.abs().clamp(min=MAG_CLIP)  # (B, n_fft // 2 + 1, frames)

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
