"""LeWM JEPA predictor: a transformer decoder over latent frames with a KV cache.

Step ``t`` of a sequence reads the latent fed at that step and predicts latent frame
``t`` and whether frame ``t`` is the last one.  Input 0 is a learned start vector;
input ``t >= 1`` is the prenet of latent ``t - 1`` (the teacher's in training, the
model's own in generation).  So ``forward`` maps inputs (B, T, D) to predictions of
frames ``0 .. T-1``.

Each layer (pre-norm): causal self-attention over the inputs so far, cross-attention to
the text features (key-padding mask), a feed-forward block.  Positions: sinusoidal
absolute positions with a learned scale added to the inputs and, separately, to the
text features (Transformer-TTS), so cross-attention can find its place in the text.

KV cache (:class:`KVCache`): the self-attention keys and values of every step so far,
and the text's cross-attention keys and values computed once; feeding one step at a
time gives the same outputs as one causal forward over the whole sequence (tested).

Output heads: ``out`` maps the final features to the predicted latent (the mean, with
the Gaussian head); ``stop`` to the stop logit; with ``lewm.predictor_head = "gaussian"``,
``logvar`` (:class:`core.lewm.gaussian_head.GaussianHead`) to a bounded log-variance
per latent dimension.  A ``point`` predictor has no ``logvar`` module, so checkpoints
written before the Gaussian head load unchanged.

Prenet: two ReLU layers with dropout then a linear map to ``predictor_dim``.  Dropout
masks may be passed explicitly (generation draws them from per-row generators, and
keeps them on at inference when ``prenet_dropout_at_inference``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import LeWMConfig
from ..models.layers import FeedForward, sinusoidal_embedding
from .gaussian_head import GaussianHead

__all__ = ["Prenet", "KVCache", "PredictorLayer", "JEPAPredictor", "PredictorOutput", "positions"]


def positions(start: int, length: int, dim: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Sinusoidal absolute positions ``start .. start + length - 1`` -> (length, dim)."""
    idx = torch.arange(start, start + length, device=device, dtype=torch.float32)
    return sinusoidal_embedding(idx, dim, scale=1.0).to(dtype)


class Prenet(nn.Module):
    """(…, latent_dim) -> (…, out_dim): Linear, ReLU, dropout, Linear, ReLU, dropout, Linear.

    ``masks``: two tensors broadcastable to (…, prenet_dim) of 0 or ``1 / (1 - p)`` (see
    :meth:`draw_masks`); without them dropout acts only in training mode.
    """

    def __init__(self, latent_dim: int, hidden: int, out_dim: int, p: float) -> None:
        super().__init__()
        self.p = p
        self.hidden = hidden
        self.fc1 = nn.Linear(latent_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.proj = nn.Linear(hidden, out_dim)

    def draw_masks(self, generators: list[torch.Generator], device: torch.device) -> tuple[Tensor, Tensor]:
        """Dropout masks (B, 1, prenet_dim) x 2, row b drawn from ``generators[b]`` (CPU)."""
        keep = 1.0 - self.p
        masks = []
        for _ in range(2):
            u = torch.stack([torch.rand(1, self.hidden, generator=g) for g in generators])
            masks.append(((u < keep).float() / keep).to(device))
        return masks[0], masks[1]

    def forward(self, x: Tensor, masks: Optional[tuple[Tensor, Tensor]] = None) -> Tensor:
        h = F.relu(self.fc1(x))
        h = h * masks[0].to(h.dtype) if masks is not None else F.dropout(h, self.p, self.training)
        h = F.relu(self.fc2(h))
        h = h * masks[1].to(h.dtype) if masks is not None else F.dropout(h, self.p, self.training)
        return self.proj(h)


@dataclass
class KVCache:
    """Per layer: self-attention keys/values (B, H, t, head_dim) of the ``length`` steps
    fed so far, and the text's cross-attention keys/values (B, H, L, head_dim)."""

    self_kv: list[Optional[tuple[Tensor, Tensor]]] = field(default_factory=list)
    cross_kv: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    length: int = 0


class _Attention(nn.Module):
    """Multi-head attention projections; ``attend`` does masked SDPA."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def split(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.head_dim).transpose(1, 2)

    def keys_values(self, x: Tensor) -> tuple[Tensor, Tensor]:
        k, v = self.kv(x).chunk(2, dim=-1)
        return self.split(k), self.split(v)

    def attend(self, x: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
        """x (B, Tq, D) queries; k, v (B, H, Tk, hd); mask broadcastable to (B, H, Tq, Tk), True = attend."""
        b, n, d = x.shape
        y = F.scaled_dot_product_attention(self.split(self.q(x)), k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, n, d))

    def attend_with_weights(self, x: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """As :meth:`attend` (the same numbers up to rounding), computed explicitly so the
        attention weights (B, H, Tq, Tk) come back too (for the guided-attention loss)."""
        b, n, d = x.shape
        q = self.split(self.q(x))
        scores = (q @ k.transpose(-2, -1)) * self.head_dim ** -0.5
        weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)
        y = weights @ v
        return self.out(y.transpose(1, 2).reshape(b, n, d)), weights


class PredictorLayer(nn.Module):
    """Pre-norm decoder layer on (B, T, D): causal self-attention, cross-attention, MLP."""

    def __init__(self, dim: int, heads: int, ff_mult: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.self_attn = nn.LayerNorm(dim), _Attention(dim, heads)
        self.norm2, self.cross_attn = nn.LayerNorm(dim), _Attention(dim, heads)
        self.norm3, self.ff = nn.LayerNorm(dim), FeedForward(dim, ff_mult, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, past: Optional[tuple[Tensor, Tensor]], cross: tuple[Tensor, Tensor],
                memory_mask: Tensor, need_weights: bool = False
                ) -> tuple[Tensor, tuple[Tensor, Tensor], Optional[Tensor]]:
        """x (B, T, D) the new steps; past: cached (k, v) of earlier steps or None.
        Returns the output, the (k, v) of all steps so far and, with ``need_weights``, the
        cross-attention weights (B, H, T, L) (else None)."""
        h = self.norm1(x)
        k, v = self.self_attn.keys_values(h)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        n_new, n_all = x.shape[1], k.shape[2]
        q_pos = torch.arange(n_all - n_new, n_all, device=x.device)
        causal = torch.arange(n_all, device=x.device)[None, :] <= q_pos[:, None]        # (Tq, Tk)
        x = x + self.drop(self.self_attn.attend(h, k, v, causal))
        cross_mask = memory_mask[:, None, None, :]
        weights = None
        if need_weights:
            y, weights = self.cross_attn.attend_with_weights(self.norm2(x), cross[0], cross[1], cross_mask)
        else:
            y = self.cross_attn.attend(self.norm2(x), cross[0], cross[1], cross_mask)
        x = x + self.drop(y)
        x = x + self.drop(self.ff(self.norm3(x)))
        return x, (k, v), weights


@dataclass
class PredictorOutput:
    """pred (B, T, latent_dim) predicted latents (the mean, with the Gaussian head);
    stop_logits (B, T): logit that the predicted frame is the last one; hidden (B, T,
    predictor_dim) final features; logvar (B, T, latent_dim) the bounded log-variance of
    the Gaussian head, None for the point head; cross_attention: for each layer asked for
    (``attention_layers``), its cross-attention weights (B, H, T, L), in that order."""

    pred: Tensor
    stop_logits: Tensor
    hidden: Tensor
    logvar: Optional[Tensor] = None
    cross_attention: list = field(default_factory=list)


class JEPAPredictor(nn.Module):
    """Latent-frame predictor; see the module docstring."""

    def __init__(self, lewm: LeWMConfig) -> None:
        super().__init__()
        d = lewm.predictor_dim
        self.dim = d
        self.latent_dim = lewm.latent_dim
        self.prenet = Prenet(lewm.latent_dim, lewm.prenet_dim, d, lewm.prenet_dropout)
        self.start = nn.Parameter(torch.randn(d) * 0.02)
        self.input_pos_scale = nn.Parameter(torch.ones(1))
        self.memory_proj = nn.Linear(lewm.text_dim, d)
        self.memory_pos_scale = nn.Parameter(torch.ones(1))
        self.layers = nn.ModuleList(PredictorLayer(d, lewm.predictor_heads, lewm.ff_mult, lewm.dropout)
                                    for _ in range(lewm.predictor_layers))
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, lewm.latent_dim)
        self.stop = nn.Linear(d, 1)
        self.logvar = GaussianHead(d, lewm.latent_dim) if lewm.predictor_head == "gaussian" else None

    # ------------------------------------------------------------------ inputs
    def inputs(self, fed: Tensor, with_start: bool, masks: Optional[tuple[Tensor, Tensor]] = None) -> Tensor:
        """Fed latents (B, T, latent_dim) -> predictor inputs (B, T (+1), D): the prenet of
        each, preceded by the start vector when ``with_start``."""
        x = self.prenet(fed, masks)
        if with_start:
            x = torch.cat([self.start.to(x.dtype).expand(x.shape[0], 1, -1), x], dim=1)
        return x

    def start_inputs(self, batch: int, dtype: torch.dtype = torch.float32) -> Tensor:
        """The start vector as (batch, 1, D) inputs."""
        return self.start.to(dtype).expand(batch, 1, -1)

    # ------------------------------------------------------------------ the network
    def begin(self, memory: Tensor) -> KVCache:
        """An empty cache for text features ``memory`` (B, L, text_dim)."""
        mem = self.memory_proj(memory)
        mem = mem + self.memory_pos_scale * positions(0, mem.shape[1], self.dim, mem.device, mem.dtype)
        return KVCache(self_kv=[None] * len(self.layers),
                       cross_kv=[layer.cross_attn.keys_values(mem) for layer in self.layers], length=0)

    def forward(self, x: Tensor, memory: Tensor, memory_mask: Tensor,
                cache: Optional[KVCache] = None, attention_layers: Sequence[int] = ()) -> PredictorOutput:
        """x (B, T, D) inputs (from :meth:`inputs`) at positions ``cache.length ..`` (0 ..
        without a cache); memory (B, L, text_dim), memory_mask (B, L) bool.  With a cache
        the new keys/values are appended to it (generation: T = 1 per call).
        ``attention_layers``: indices of layers whose cross-attention weights to return."""
        if cache is None:
            cache = self.begin(memory)
        memory_mask = memory_mask.bool()
        wanted = {i % len(self.layers) for i in attention_layers}
        weights = {}
        h = x + self.input_pos_scale * positions(cache.length, x.shape[1], self.dim, x.device, x.dtype)
        for i, layer in enumerate(self.layers):
            h, cache.self_kv[i], w = layer(h, cache.self_kv[i], cache.cross_kv[i], memory_mask, i in wanted)
            if w is not None:
                weights[i] = w
        cache.length += x.shape[1]
        h = self.norm(h)
        return PredictorOutput(pred=self.out(h), stop_logits=self.stop(h).squeeze(-1), hidden=h,
                               logvar=None if self.logvar is None else self.logvar(h),
                               cross_attention=[weights[i % len(self.layers)] for i in attention_layers])
