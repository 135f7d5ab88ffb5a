"""Text encoder: token embedding, ConvNeXt-V2 1-D blocks and pre-norm transformer layers.

``TextEncoder(model).forward(tokens (B, L) long, mask (B, L) bool, speaker (B, S) | None)
-> (B, L, text_dim)``, padded positions zeroed.  Token id 0 is padding.  Sequences are
right-padded; every block zeroes the padding before anything that mixes positions
(depthwise convolution, the GRN norm over time, attention keys), so a real token's
output does not depend on how much padding follows it.

Positions: the convolutions give local order, the transformer layers use rotary
positions (relative, so they behave the same for any length).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import ModelConfig
from .layers import FeedForward, SelfAttention, rotary_tables, zero_padding

__all__ = ["GRN", "ConvNeXtBlock", "TransformerLayer", "TextEncoder"]


class GRN(nn.Module):
    """Global response normalisation (ConvNeXt-V2) over time, masked.

    ``x`` (B, L, C): ``G_c = ||x_c||_2`` over real positions, ``N_c = G_c / mean_c G``,
    ``y = gamma * (x * N) + beta + x``.  gamma and beta start at zero (identity).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = zero_padding(x, mask)
        g = x.norm(p=2, dim=1, keepdim=True)                       # (B, 1, C)
        n = g / (g.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * n) + self.beta + x


class ConvNeXtBlock(nn.Module):
    """ConvNeXt-V2 block on (B, L, C): depthwise conv (k=7), LayerNorm, Linear C->hidden,
    GELU, GRN (optional), Linear hidden->C, dropout, residual."""

    def __init__(self, channels: int, hidden: int, kernel_size: int = 7, grn: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.pw1 = nn.Linear(channels, hidden)
        self.act = nn.GELU()
        self.grn = GRN(hidden) if grn else None
        self.pw2 = nn.Linear(hidden, channels)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        h = zero_padding(x, mask)
        h = self.dwconv(h.transpose(1, 2)).transpose(1, 2)
        h = self.act(self.pw1(self.norm(h)))
        if self.grn is not None:
            h = self.grn(h, mask)
        return x + self.drop(self.pw2(h))


class TransformerLayer(nn.Module):
    """Pre-norm transformer layer on (B, L, C) with a key-padding mask and rotary positions."""

    def __init__(self, channels: int, heads: int, ff_mult: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(channels)
        self.attn = SelfAttention(channels, heads)
        self.norm2 = nn.LayerNorm(channels)
        self.ff = FeedForward(channels, ff_mult, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor, attention: str = "sdpa",
                rope: tuple[Tensor, Tensor] | None = None) -> Tensor:
        x = x + self.drop(self.attn(self.norm1(x), mask, attention, rope))
        return x + self.drop(self.ff(self.norm2(x)))


class TextEncoder(nn.Module):
    """Tokens -> hidden text features (B, L, text_dim), padded positions zero.

    The speaker vector (B, speaker_dim), when the model has several speakers, is
    projected to text_dim and added to every token embedding before the blocks.
    ConvNeXt hidden width is 2 * text_dim (as in F5-TTS); the transformer layers use
    ``model.ff_mult``.
    """

    def __init__(self, model: ModelConfig) -> None:
        super().__init__()
        d = model.text_dim
        self.head_dim = d // model.text_heads
        self.embed = nn.Embedding(model.vocab_size, d, padding_idx=0)
        self.speaker_proj = nn.Linear(model.speaker_dim, d) if model.n_speakers > 1 else None
        self.convnext = nn.ModuleList(ConvNeXtBlock(d, 2 * d, dropout=model.dropout)
                                      for _ in range(model.text_convnext_layers))
        self.transformer = nn.ModuleList(TransformerLayer(d, model.text_heads, model.ff_mult, model.dropout)
                                         for _ in range(model.text_transformer_layers))
        self.norm = nn.LayerNorm(d)

    def forward(self, tokens: Tensor, mask: Tensor, speaker: Tensor | None = None,
                attention: str = "sdpa") -> Tensor:
        """tokens (B, L) long, mask (B, L) bool, speaker (B, S) or None -> (B, L, text_dim)."""
        mask = mask.to(torch.bool)
        x = self.embed(tokens)
        if self.speaker_proj is not None:
            if speaker is None:
                raise ValueError("this text encoder has a speaker embedding: pass speaker (B, speaker_dim)")
            x = x + self.speaker_proj(speaker)[:, None, :]
        for block in self.convnext:
            x = block(x, mask)
        x = zero_padding(x, mask)
        rope = rotary_tables(x.shape[1], self.head_dim, x.device, x.dtype)
        for layer in self.transformer:
            x = layer(x, mask, attention, rope)
        return zero_padding(self.norm(x), mask)
