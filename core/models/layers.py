"""Shared building blocks: masked self-attention (SDPA or explicit math), rotary
positions, feed-forward, sinusoidal time embedding and padding helpers.

Shapes: sequences are ``(B, T, D)`` with a key-padding ``mask`` ``(B, T)`` bool,
True = real position.  Sequences are right-padded, so a real position's index is the
same alone and in a padded batch (rotary positions rely on this).

Attention modes (``ATTENTION_MODES``):

* ``"sdpa"``: ``torch.nn.functional.scaled_dot_product_attention`` with the key mask;
  fused kernels on GPU, but no forward-mode AD.
* ``"math"``: ``softmax(Q K^T / sqrt(d) + mask) V`` written out, so ``torch.func.jvp``
  (MeanFlow) and float64 gradient checks go through it.

Both give the same numbers up to float rounding.  Attention has no dropout on the
weights (only on the residual branches), so the two paths agree in training too.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import choice_error

__all__ = [
    "ATTENTION_MODES",
    "check_attention",
    "zero_padding",
    "rotary_tables",
    "apply_rotary",
    "SelfAttention",
    "FeedForward",
    "sinusoidal_embedding",
    "TimeEmbedding",
    "TIME_SCALE",
]

ATTENTION_MODES = ("sdpa", "math")

#: Flow time t in [0, 1] is multiplied by this before the sinusoidal embedding, so the
#: frequencies (periods 2*pi .. 2*pi*10000) resolve steps of ~1e-3 in t, as in DiT/F5-TTS.
TIME_SCALE = 1000.0


def check_attention(mode: str) -> str:
    """Return ``mode`` if it names an attention path, else raise the standard error."""
    if mode not in ATTENTION_MODES:
        raise choice_error("attention", mode, ATTENTION_MODES)
    return mode


def zero_padding(x: Tensor, mask: Tensor) -> Tensor:
    """Zero the padded positions of ``x`` (B, T, D) where ``mask`` (B, T) is False."""
    return x * mask.unsqueeze(-1).to(x.dtype)


# --------------------------------------------------------------------------- rotary positions


def rotary_tables(length: int, head_dim: int, device: torch.device, dtype: torch.dtype,
                  base: float = 10000.0) -> tuple[Tensor, Tensor]:
    """cos/sin tables ``(length, head_dim)`` for rotary position embedding (RoPE).

    Pairs of channels ``(i, i + head_dim/2)`` rotate by ``pos * base^(-2i/head_dim)``.
    Computed in float32 (float64 when ``dtype`` is float64) and cast to ``dtype``.
    """
    work = torch.float64 if dtype == torch.float64 else torch.float32
    half = head_dim // 2
    inv_freq = base ** (-torch.arange(half, device=device, dtype=work) / half)
    angles = torch.arange(length, device=device, dtype=work)[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate ``x`` (B, H, T, d) by the tables (T, d) from :func:`rotary_tables`."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


# --------------------------------------------------------------------------- attention


class SelfAttention(nn.Module):
    """Multi-head self-attention with a key-padding mask and rotary positions.

    ``forward(x (B, T, D), mask (B, T) bool, attention) -> (B, T, D)``.  Every row must
    have at least one real position (a fully masked row has no defined softmax).
    """

    def __init__(self, dim: int, heads: int, rotary: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.head_dim = dim // heads
        if rotary and self.head_dim % 2:
            raise ValueError(f"rotary positions need an even head width, got {self.head_dim} "
                             f"(width {dim} / {heads} heads)")
        self.rotary = rotary
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor, attention: str = "sdpa",
                rope: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """``rope``: precomputed :func:`rotary_tables` for this length and head width
        (a network computes them once per forward); computed here when None."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.rotary:
            cos, sin = rope if rope is not None else rotary_tables(n, self.head_dim, x.device, q.dtype)
            cos, sin = cos.to(q.dtype), sin.to(q.dtype)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        key_mask = mask[:, None, None, :]  # (B, 1, 1, T): broadcast over heads and queries
        if attention == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        elif attention == "math":
            scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
            scores = scores.masked_fill(~key_mask, float("-inf"))
            y = torch.softmax(scores, dim=-1).to(v.dtype) @ v
        else:
            raise choice_error("attention", attention, ATTENTION_MODES)
        return self.out(y.transpose(1, 2).reshape(b, n, d))


class FeedForward(nn.Module):
    """Position-wise MLP ``(…, D) -> (…, D)``: Linear, GELU (tanh), dropout, Linear."""

    def __init__(self, dim: int, mult: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim * mult), nn.GELU(approximate="tanh"),
                                 nn.Dropout(dropout), nn.Linear(dim * mult, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


# --------------------------------------------------------------------------- time embedding


def sinusoidal_embedding(t: Tensor, dim: int, scale: float = TIME_SCALE) -> Tensor:
    """Sinusoidal features of ``scale * t``: ``t`` (B,) -> (B, dim) as [cos | sin].

    Frequencies ``10000^(-i/(dim/2))``; computed in float32 (float64 if ``t`` is float64),
    autocast disabled, so bf16 runs keep an exact time signal.
    """
    work = torch.float64 if t.dtype == torch.float64 else torch.float32
    half = dim // 2
    with torch.autocast(device_type=t.device.type, enabled=False):
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=work) / half)
        args = (scale * t.to(work))[:, None] * freqs[None, :]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimeEmbedding(nn.Module):
    """``t`` (B,) in [0, 1] -> (B, dim): sinusoidal features of ``1000 t`` then an MLP."""

    def __init__(self, dim: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        feats = sinusoidal_embedding(t, self.freq_dim)
        return self.mlp(feats.to(self.mlp[0].weight.dtype))
