"""The adversarial part: ``vocos.discriminators``' MultiPeriodDiscriminator and
MultiResolutionDiscriminator (lighter when asked: fewer periods / FFT sizes, fewer
MRD channels), with ``vocos.loss``' hinge losses and feature matching.

Waveforms ``y`` (real) and ``y_hat`` (generated) are ``(B, samples)``.
"""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from .config import DiscriminatorConfig, LossConfig

__all__ = ["Discriminators"]


class Discriminators(nn.Module):
    """MPD (``periods``) and MRD (``fft_sizes``, ``mrd_channels``); either may be absent."""

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        from vocos.discriminators import DiscriminatorR, MultiPeriodDiscriminator, MultiResolutionDiscriminator
        from vocos.loss import DiscriminatorLoss, FeatureMatchingLoss, GeneratorLoss

        self.mpd: Optional[nn.Module] = MultiPeriodDiscriminator(periods=tuple(cfg.periods)) if cfg.periods else None
        self.mrd: Optional[nn.Module] = None
        if cfg.fft_sizes:
            mrd = MultiResolutionDiscriminator(fft_sizes=tuple(cfg.fft_sizes))
            if cfg.mrd_channels != 32:  # the package's MRD builds DiscriminatorR with its default 32 channels
                mrd.discriminators = nn.ModuleList(
                    [DiscriminatorR(window_length=w, channels=cfg.mrd_channels) for w in cfg.fft_sizes])
            self.mrd = mrd
        self.gen_loss, self.disc_loss, self.fm_loss = GeneratorLoss(), DiscriminatorLoss(), FeatureMatchingLoss()

    def _parts(self, mrd_weight: float):
        return [(d, w) for d, w in ((self.mpd, 1.0), (self.mrd, mrd_weight)) if d is not None]

    def discriminator_loss(self, y: Tensor, y_hat: Tensor, mrd_weight: float) -> Tensor:
        """Hinge loss of the discriminators on real ``y`` and detached fake ``y_hat``:
        ``sum_d w_d * mean(relu(1 - D(y))) + mean(relu(1 + D(y_hat)))`` (vocos weights
        the MRD term by ``mrd_weight`` too)."""
        total = y.new_zeros(())
        for d, w in self._parts(mrd_weight):
            real, fake, _, _ = d(y=y, y_hat=y_hat.detach())
            loss, _, _ = self.disc_loss(disc_real_outputs=real, disc_generated_outputs=fake)
            total = total + w * loss / len(real)
        return total

    def generator_losses(self, y: Tensor, y_hat: Tensor, loss: LossConfig) -> dict[str, Tensor]:
        """``adv``: hinge generator loss, ``fm``: feature matching, each summed over the
        discriminators with weight 1 (MPD) and ``mrd_weight`` (MRD), averaged over
        sub-discriminators as vocos does."""
        adv, fm = y.new_zeros(()), y.new_zeros(())
        for d, w in self._parts(loss.mrd_weight):
            _, fake, fmap_r, fmap_g = d(y=y, y_hat=y_hat)
            g, _ = self.gen_loss(disc_outputs=fake)
            adv = adv + w * g / len(fake)
            fm = fm + w * self.fm_loss(fmap_r=fmap_r, fmap_g=fmap_g) / len(fmap_r)
        return {"adv": adv, "fm": fm}
