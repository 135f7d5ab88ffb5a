"""The adversarial part: ``vocos.discriminators``' MultiPeriodDiscriminator and
MultiResolutionDiscriminator (lighter when asked: fewer periods / FFT sizes, fewer
MRD or MPD channels), with ``vocos.loss``' hinge losses and feature matching.

Waveforms ``y`` (real) and ``y_hat`` (generated) are ``(B, samples)``.
"""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from .config import DiscriminatorConfig, LossConfig

__all__ = ["Discriminators", "thin_period_discriminator"]


def thin_period_discriminator(period: int, channels: int) -> nn.Module:
    """vocos' ``DiscriminatorP`` (its forward, reshape to ``(B, 1, T / period, period)``,
    five ``(5, 1)`` convolutions with strides 3, 3, 3, 3, 1, a ``(3, 1)`` output conv)
    with ``channels, 4 channels, 16, 32, 32 x channels`` instead of the fixed
    32-128-512-1024-1024; ``channels`` = 32 is the package's own."""
    from torch.nn import Conv2d
    from vocos.discriminators import DiscriminatorP, weight_norm

    d = DiscriminatorP(period=period)
    if channels == 32:
        return d
    widths = [1, channels, 4 * channels, 16 * channels, 32 * channels, 32 * channels]
    strides = [3, 3, 3, 3, 1]
    d.convs = nn.ModuleList([weight_norm(Conv2d(a, b, (5, 1), (s, 1), padding=(2, 0)))
                             for a, b, s in zip(widths[:-1], widths[1:], strides)])
    d.conv_post = weight_norm(Conv2d(widths[-1], 1, (3, 1), 1, padding=(1, 0)))
    return d


class Discriminators(nn.Module):
    """MPD (``periods``, ``mpd_channels``) and MRD (``fft_sizes``, ``mrd_channels``); either may be absent."""

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        from vocos.discriminators import DiscriminatorR, MultiPeriodDiscriminator, MultiResolutionDiscriminator
        from vocos.loss import DiscriminatorLoss, FeatureMatchingLoss, GeneratorLoss

        self.mpd: Optional[nn.Module] = MultiPeriodDiscriminator(periods=tuple(cfg.periods)) if cfg.periods else None
        if self.mpd is not None and cfg.mpd_channels != 32:
            self.mpd.discriminators = nn.ModuleList(
                [thin_period_discriminator(p, cfg.mpd_channels) for p in cfg.periods])
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
