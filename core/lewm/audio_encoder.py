"""LeWM audio encoder: normalised mel -> latent frames (the JEPA targets).

``AudioEncoder(lewm, n_mels)(x (B, n_mels, T), mel_mask (B, T), generator) -> Posterior``.

A 1-D CNN (a width-5 conv, then log2(f) stride-2 convs, ``f = downsample_factor``)
maps the mel to ``T' = ceil(T / f)`` frames of ``encoder_dim``; ``encoder_layers``
pre-norm transformer layers (rotary positions, key-padding mask, not causal: a latent
frame sees the whole utterance) follow, then linear heads to ``mu`` and, for the ``kl``
regulariser, ``logvar`` (both (B, T', latent_dim)).

``z``: with ``kl`` the reparameterised sample ``mu + exp(logvar / 2) * eps`` in training
mode and ``mu`` in eval mode; with ``sigreg`` (no posterior variance) ``z = mu`` always.
Padded latent frames are zero.  A latent frame ``i`` is real when mel frame ``f * i`` is
(``mask[:, ::f]``).  Every layer zeroes the padding before mixing positions, so a real
frame's latent is the same alone and in a padded batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import LeWMConfig
from ..models.layers import rotary_tables, zero_padding
from ..models.text_encoder import TransformerLayer

__all__ = ["Posterior", "AudioEncoder", "latent_mask", "pad_to_multiple"]


@dataclass
class Posterior:
    """mu, z (B, T', latent_dim); logvar the same shape or None (``sigreg``); mask (B, T') bool."""

    mu: Tensor
    logvar: Optional[Tensor]
    z: Tensor
    mask: Tensor


def latent_mask(mel_mask: Tensor, factor: int) -> Tensor:
    """Mel-frame mask (B, T) -> latent-frame mask (B, ceil(T / factor)): frame i is real
    when mel frame ``factor * i`` is, i.e. ``ceil(length / factor)`` real frames."""
    return mel_mask[:, ::factor]


def pad_to_multiple(x: Tensor, mask: Tensor, factor: int) -> tuple[Tensor, Tensor]:
    """Zero-pad x (B, C, T) and mask (B, T) on the right to a multiple of ``factor`` frames."""
    extra = (-x.shape[-1]) % factor
    if extra:
        x = F.pad(x, (0, extra))
        mask = F.pad(mask, (0, extra), value=False)
    return x, mask


class AudioEncoder(nn.Module):
    """Normalised mel -> :class:`Posterior`; see the module docstring."""

    def __init__(self, lewm: LeWMConfig, n_mels: int) -> None:
        super().__init__()
        c = lewm.encoder_dim
        self.factor = lewm.downsample_factor
        self.n_mels = n_mels
        self.head_dim = c // lewm.encoder_heads
        self.inp = nn.Conv1d(n_mels, c, 5, padding=2)
        self.down = nn.ModuleList(nn.Conv1d(c, c, 4, stride=2, padding=1) for _ in range(int(math.log2(self.factor))))
        self.layers = nn.ModuleList(TransformerLayer(c, lewm.encoder_heads, lewm.ff_mult, lewm.dropout)
                                    for _ in range(lewm.encoder_layers))
        self.norm = nn.LayerNorm(c)
        self.mu = nn.Linear(c, lewm.latent_dim)
        self.logvar = nn.Linear(c, lewm.latent_dim) if lewm.regularizer == "kl" else None

    def forward(self, x: Tensor, mel_mask: Tensor, generator: Optional[torch.Generator] = None) -> Posterior:
        if x.dim() != 3 or x.shape[1] != self.n_mels or mel_mask.shape != (x.shape[0], x.shape[2]):
            raise ValueError(f"mel must be (batch, {self.n_mels}, frames) and mel_mask (batch, frames), got "
                             f"{tuple(x.shape)} and {tuple(mel_mask.shape)}")
        x, mask = pad_to_multiple(x, mel_mask.bool(), self.factor)
        h = F.gelu(self.inp(x * mask[:, None, :].to(x.dtype)))
        for conv in self.down:
            h = h * mask[:, None, :].to(h.dtype)
            mask = mask[:, ::2]
            h = F.gelu(conv(h))
        h = zero_padding(h.transpose(1, 2), mask)
        rope = rotary_tables(h.shape[1], self.head_dim, h.device, h.dtype)
        for layer in self.layers:
            h = layer(h, mask, "sdpa", rope)
        h = self.norm(h)
        mu = zero_padding(self.mu(h), mask)
        if self.logvar is None:
            return Posterior(mu=mu, logvar=None, z=mu, mask=mask)
        logvar = zero_padding(self.logvar(h).clamp(-12.0, 6.0), mask)
        z = mu
        if self.training:
            dev = generator.device if generator is not None else mu.device
            eps = torch.randn(mu.shape, generator=generator, device=dev).to(mu.device, mu.dtype)
            z = zero_padding(mu + torch.exp(0.5 * logvar) * eps, mask)
        return Posterior(mu=mu, logvar=logvar, z=z, mask=mask)
