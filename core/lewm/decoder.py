"""LeWM mel decoder: latent frames -> normalised log-mel.

``MelDecoder(lewm, n_mels)(z (B, T', latent_dim), mask (B, T')) -> (B, n_mels, f T')``
with ``f = downsample_factor``: Linear latent -> ``decoder_dim``; log2(f) transposed
convolutions (kernel 4, stride 2, padding 1: exactly doubling the length); ``decoder_blocks``
residual conv blocks (per-frame LayerNorm, GELU, width-5 convs); a 1x1 conv to ``n_mels``
and a residual width-5 refinement conv on the mel (a small postnet).  The output is in the
model's normalised mel space (``(mel - mel_mean) / mel_std``); padded frames are zero.
Every layer zeroes the padding first, so a real frame decodes the same alone and in a
padded batch.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from ..config import LeWMConfig

__all__ = ["MelDecoder", "ResidualConvBlock"]


def _masked(h: Tensor, mask: Tensor) -> Tensor:
    """h (B, C, T) with frames where mask (B, T) is False set to zero."""
    return h * mask[:, None, :].to(h.dtype)


class ResidualConvBlock(nn.Module):
    """(B, C, T) -> (B, C, T): x + conv(GELU(conv(GELU(LayerNorm(x))))), width-5 convs."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.conv1 = nn.Conv1d(channels, channels, 5, padding=2)
        self.conv2 = nn.Conv1d(channels, channels, 5, padding=2)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        h = _masked(F.gelu(self.norm(x.transpose(1, 2)).transpose(1, 2)), mask)
        h = _masked(F.gelu(self.conv1(h)), mask)
        return x + _masked(self.conv2(h), mask)


class MelDecoder(nn.Module):
    """Latents -> normalised mel; see the module docstring."""

    def __init__(self, lewm: LeWMConfig, n_mels: int) -> None:
        super().__init__()
        d = lewm.decoder_dim
        self.factor = lewm.downsample_factor
        self.latent_dim = lewm.latent_dim
        self.inp = nn.Linear(lewm.latent_dim, d)
        self.up = nn.ModuleList(nn.ConvTranspose1d(d, d, 4, stride=2, padding=1)
                                for _ in range(int(math.log2(self.factor))))
        self.blocks = nn.ModuleList(ResidualConvBlock(d) for _ in range(lewm.decoder_blocks))
        self.out = nn.Conv1d(d, n_mels, 1)
        self.refine = nn.Conv1d(n_mels, n_mels, 5, padding=2)

    def forward(self, z: Tensor, mask: Tensor) -> Tensor:
        if z.dim() != 3 or z.shape[-1] != self.latent_dim or mask.shape != z.shape[:2]:
            raise ValueError(f"latents must be (batch, frames, {self.latent_dim}) and mask (batch, frames), got "
                             f"{tuple(z.shape)} and {tuple(mask.shape)}")
        mask = mask.bool()
        h = _masked(self.inp(z).transpose(1, 2), mask)
        for up in self.up:
            mask = mask.repeat_interleave(2, dim=1)
            h = _masked(F.gelu(up(h)), mask)
        for block in self.blocks:
            h = block(h, mask)
        coarse = _masked(self.out(h), mask)
        return _masked(coarse + self.refine(coarse), mask)
