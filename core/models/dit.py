"""DiT velocity network over mel frames, conditioned through adaLN-Zero.

``VelocityDiT.forward(x, t, cond, mask, speaker=None, r=None, drop=None, attention="sdpa")``

* ``x`` (B, n_mels, T): the state; ``t`` (B,) (or a 0-d tensor) flow time in [0, 1],
  t = 0 Gaussian noise, t = 1 data (normalised mel).
* ``cond`` (B, T, text_dim): text features expanded to frames by the alignment.
* ``mask`` (B, T) bool, True = real frame (right-padded).
* returns (B, n_mels, T) in ``x``'s dtype, padded frames zero.

Plain model: the output is the velocity ``v(x, t)``; ``r`` must be None (a plain model
given ``r`` raises, so a MeanFlow objective cannot silently train the wrong network).
MeanFlow model (``meanflow=True``): ``x`` is the state ``z`` at the earlier time ``r`` and
the output is the average velocity ``u(z, r, t)`` over ``[r, t]`` (``z_t = z + (t-r) u``).
The conditioning vector is ``c = time_embed(r) + interval_embed(t - r)`` — the main
time embedding always sees the time of the input state, so ``r = t`` (the default when
``r`` is None) has the same form as the plain model's ``time_embed(t)``.

Conditioning vector ``c`` also gets a projected speaker vector (multi-speaker models).
Each block: ``h += gate * attn(modulate(LN(h), shift, scale))`` then the same with the
MLP, where (shift, scale, gate) come from a zero-initialised linear map of ``silu(c)``
(adaLN-Zero: every block starts as the identity and the output layer starts at zero).

Positions: a masked convolutional position embedding at the input (two grouped
convolutions, kernel 31, as in F5-TTS) for local context, and rotary positions in
attention (relative, any length).

Classifier-free guidance: rows with ``drop[b] = True`` replace every frame of ``cond``
by a learned null vector (the speaker is kept, so the unconditional model is
"this speaker, no text").

Layout (``model.velocity``): ``dit`` runs every block at the mel frame rate.  ``udit``
runs the first and last ``udit_outer`` blocks there and the middle blocks at half the
frame rate: the hidden state ``s`` (B, T, D) after the first blocks is pooled over frame
pairs (a mask-weighted mean; an odd last frame pairs with padding), the middle blocks
map the pooled ``p`` to ``m``, and the full-rate state continues as
``s + repeat2(m - p)`` (each half-rate frame's change added to both of its frames).
Middle blocks start as the identity (adaLN-Zero), so ``m - p = 0`` and a new ``udit``
network computes what a ``dit`` network of the same weights does.  Same parameters;
attention in the middle blocks costs a quarter, the rest half.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ModelConfig
from .layers import FeedForward, SelfAttention, TimeEmbedding, check_attention, rotary_tables, zero_padding

__all__ = ["VelocityDiT", "DiTBlock", "ConvPositionEmbedding"]


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """x (B, T, D) with per-example shift/scale (B, D)."""
    return x * (1 + scale[:, None, :]) + shift[:, None, :]


def _batch_time(t: Tensor | float, batch: int, like: Tensor) -> Tensor:
    """A time given as a float, 0-d or (B,) tensor -> (B,) tensor on ``like``'s device."""
    t = torch.as_tensor(t, device=like.device)
    if not t.is_floating_point():
        t = t.to(like.dtype if like.is_floating_point() else torch.float32)
    if t.dim() == 0:
        return t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"time must be a scalar or have shape ({batch},), got {tuple(t.shape)}")
    return t


class ConvPositionEmbedding(nn.Module):
    """(B, T, D), mask (B, T) -> (B, T, D): two grouped convolutions (k=31) with GELU,
    padding zeroed before each convolution and in the output."""

    def __init__(self, dim: int, kernel_size: int = 31, groups: int = 16) -> None:
        super().__init__()
        groups = math.gcd(dim, groups)
        self.conv1 = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=groups)
        self.conv2 = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=groups)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        h = zero_padding(x, mask).transpose(1, 2)
        h = F.gelu(self.conv1(h))
        h = h * mask[:, None, :].to(h.dtype)
        h = F.gelu(self.conv2(h))
        return zero_padding(h.transpose(1, 2), mask)


class DiTBlock(nn.Module):
    """Pre-norm self-attention + MLP with adaLN-Zero modulation from ``c`` (B, D)."""

    def __init__(self, dim: int, heads: int, ff_mult: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ff = FeedForward(dim, ff_mult, dropout)
        self.drop = nn.Dropout(dropout)
        self.modulation = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, x: Tensor, c_act: Tensor, mask: Tensor, attention: str = "sdpa",
                rope: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """x (B, T, D), c_act = silu(c) (B, D), mask (B, T) -> (B, T, D)."""
        sh1, sc1, g1, sh2, sc2, g2 = self.modulation(c_act).chunk(6, dim=-1)
        h = self.attn(_modulate(self.norm1(x), sh1, sc1), mask, attention, rope)
        x = x + g1[:, None, :] * self.drop(h)
        return x + g2[:, None, :] * self.drop(self.ff(_modulate(self.norm2(x), sh2, sc2)))


class VelocityDiT(nn.Module):
    """The velocity (or MeanFlow average-velocity) network; see the module docstring."""

    # output-side layers of additive branches: zeroed when a run starts from a checkpoint
    # that lacks them (core.train.init_from), so the branch adds nothing at first.  The
    # interval embedding's last linear layer: c = time_embed(r) + 0, u(z, r, t) = v(z, r).
    ZERO_WHEN_NEW = ("interval_embed.mlp.2",)

    def __init__(self, model: ModelConfig, n_mels: int = 100, meanflow: bool = False) -> None:
        super().__init__()
        dim = model.dim
        self.n_mels = n_mels
        self.text_dim = model.text_dim
        self.meanflow = meanflow
        self.head_dim = dim // model.heads
        self.in_proj = nn.Linear(n_mels + model.text_dim, dim)
        self.conv_pos = ConvPositionEmbedding(dim)
        self.time_embed = TimeEmbedding(dim)
        self.interval_embed = TimeEmbedding(dim) if meanflow else None
        self.speaker_proj = nn.Linear(model.speaker_dim, dim) if model.n_speakers > 1 else None
        self.null_cond = nn.Parameter(torch.randn(model.text_dim) * 0.02)
        self.blocks = nn.ModuleList(DiTBlock(dim, model.heads, model.ff_mult, model.dropout)
                                    for _ in range(model.depth))
        self.outer = model.udit_outer if model.velocity == "udit" else None  # None: every block at full rate
        self.final_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.final_modulation = nn.Linear(dim, 2 * dim)
        self.out_proj = nn.Linear(dim, n_mels)
        for layer in (self.final_modulation, self.out_proj):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def _u_blocks(self, h: Tensor, c_act: Tensor, mask: Tensor, attention: str, rope: tuple) -> Tensor:
        """The ``udit`` layout (module doc): h (B, T, D) -> (B, T, D)."""
        k = self.outer
        for block in self.blocks[:k]:
            h = block(h, c_act, mask, attention, rope)
        b, n, d = h.shape
        pad = n % 2
        hp = F.pad(h, (0, 0, 0, pad))                                    # (B, T', D), T' even
        w = F.pad(mask, (0, pad)).to(h.dtype)                            # (B, T')
        pairs_w = w.reshape(b, -1, 2)                                    # (B, T'/2, 2)
        count = pairs_w.sum(-1)                                          # (B, T'/2)
        pooled = (hp.reshape(b, -1, 2, d) * pairs_w[..., None]).sum(2) / count.clamp(min=1)[..., None]
        half_mask = count > 0
        half_rope = rotary_tables(pooled.shape[1], self.head_dim, h.device, h.dtype)
        m = pooled
        for block in self.blocks[k:len(self.blocks) - k]:
            m = block(m, c_act, half_mask, attention, half_rope)
        delta = (m - pooled).repeat_interleave(2, dim=1)[:, :n]          # (B, T, D)
        h = h + zero_padding(delta, mask)
        for block in self.blocks[len(self.blocks) - k:]:
            h = block(h, c_act, mask, attention, rope)
        return h

    def conditioning_vector(self, t: Tensor, r: Tensor | None, speaker: Tensor | None) -> Tensor:
        """c (B, dim) from the times (B,) and the speaker vector (B, S)."""
        if self.interval_embed is not None:
            r = t if r is None else r
            c = self.time_embed(r) + self.interval_embed(t - r)
        else:
            if r is not None:
                raise ValueError("this is not a MeanFlow model: it takes no second time r "
                                 "(build TTSModel(..., meanflow=True) to train u(z, r, t))")
            c = self.time_embed(t)
        if self.speaker_proj is not None:
            if speaker is None:
                raise ValueError("this velocity network has a speaker input: pass speaker (B, speaker_dim)")
            c = c + self.speaker_proj(speaker)
        return c

    def forward(self, x: Tensor, t: Tensor | float, cond: Tensor, mask: Tensor, speaker: Tensor | None = None,
                r: Tensor | float | None = None, drop: Tensor | None = None, attention: str = "sdpa") -> Tensor:
        check_attention(attention)
        if x.dim() != 3 or x.shape[1] != self.n_mels:
            raise ValueError(f"x must be (batch, {self.n_mels}, frames), got {tuple(x.shape)}")
        b, _, n = x.shape
        if cond.shape != (b, n, self.text_dim):
            raise ValueError(f"cond must be ({b}, {n}, {self.text_dim}) to match x, got {tuple(cond.shape)}")
        if mask.shape != (b, n):
            raise ValueError(f"mask must be ({b}, {n}) to match x, got {tuple(mask.shape)}")
        mask = mask.to(torch.bool)
        t = _batch_time(t, b, x)
        r = None if r is None else _batch_time(r, b, x)
        c_act = F.silu(self.conditioning_vector(t, r, speaker))
        cond = cond.to(x.dtype)  # e.g. features made under autocast, used outside it
        if drop is not None:
            if drop.shape != (b,):
                raise ValueError(f"drop must be a ({b},) bool tensor, got {tuple(drop.shape)}")
            null = self.null_cond.to(x.dtype).expand_as(cond)
            cond = torch.where(drop.to(torch.bool)[:, None, None], null, cond)
        h = self.in_proj(torch.cat([x.transpose(1, 2), cond], dim=-1))
        h = h + self.conv_pos(h, mask)
        rope = rotary_tables(n, self.head_dim, x.device, x.dtype)
        if self.outer is None:
            for block in self.blocks:
                h = block(h, c_act, mask, attention, rope)
        else:
            h = self._u_blocks(h, c_act, mask, attention, rope)
        shift, scale = self.final_modulation(c_act).chunk(2, dim=-1)
        out = self.out_proj(_modulate(self.final_norm(h), shift, scale))
        return zero_padding(out, mask).transpose(1, 2).to(x.dtype)
