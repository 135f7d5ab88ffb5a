"""Guided attention: a penalty that pulls the predictor's cross-attention onto the diagonal.

Text-to-speech attention is nearly diagonal: latent frame ``t`` of ``T`` reads text
token ``n`` of ``N`` near ``n / N = t / T``.  A freshly initialised decoder does not know
this, and one trained by prediction loss alone may never find it (it can lower the loss
by copying the previous frame instead).  DC-TTS (Tachibana et al. 2018, "Efficiently
trainable text-to-speech system based on deep convolutional networks with guided
attention") penalises the attention mass far from the diagonal with

    W[t, n] = 1 - exp(-(n / N - t / T)^2 / (2 g^2))

and Transformer-TTS recipes apply the same penalty to a few heads of the last decoder
layers' source attention, leaving the other heads free.

Here (:func:`guided_attention_loss`) each valid query row contributes
``sum_n W[t, n] A[t, n]``, the expected penalty under its attention distribution (in
``[0, 1)``; 0 when all mass sits on the diagonal), averaged over valid rows, the chosen
heads and layers.  Averaging per row rather than per (t, n) entry keeps the value
independent of the text length, so it doubles as a diagonality score: it is logged as
``align`` whether or not it is trained on (weight ``lewm.guided_attention_weight``).

Shapes: attention (B, H, T, N), rows sum to 1 over the valid tokens; frame_mask (B, T)
and token_mask (B, N) bool, True = real, right-padded.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

__all__ = ["guided_attention_weights", "guided_attention_loss"]


def guided_attention_weights(frame_mask: Tensor, token_mask: Tensor, sigma: float) -> Tensor:
    """The DC-TTS penalty ``W`` (B, T, N): ``1 - exp(-(n/N_b - t/T_b)^2 / (2 sigma^2))``
    with each example's own valid lengths ``T_b``, ``N_b``; 0 at padded rows or columns."""
    if not sigma > 0:
        raise ValueError(f"guided attention sigma must be positive, got {sigma}")
    frames = frame_mask.sum(1).clamp_min(1).to(torch.float32)           # (B,)
    tokens = token_mask.sum(1).clamp_min(1).to(torch.float32)
    t = torch.arange(frame_mask.shape[1], device=frame_mask.device, dtype=torch.float32)
    n = torch.arange(token_mask.shape[1], device=token_mask.device, dtype=torch.float32)
    diff = n[None, None, :] / tokens[:, None, None] - t[None, :, None] / frames[:, None, None]
    w = 1.0 - torch.exp(-diff.square() / (2.0 * sigma * sigma))
    return w * (frame_mask[:, :, None] & token_mask[:, None, :]).to(w.dtype)


def guided_attention_loss(attention: Sequence[Tensor], frame_mask: Tensor, token_mask: Tensor,
                          sigma: float, heads: int) -> Tensor:
    """Mean over the given layers' first ``heads`` heads and the valid query rows of
    ``sum_n W[t, n] A[t, n]`` (see the module docstring).  ``attention``: one (B, H, T, N)
    tensor per layer.  Returns a scalar (0 for an empty list)."""
    if len(attention) == 0:
        return frame_mask.new_zeros((), dtype=torch.float32)
    w = guided_attention_weights(frame_mask, token_mask, sigma)             # (B, T, N)
    rows = frame_mask.to(torch.float32)                                     # (B, T)
    total = rows.new_zeros(())
    for a in attention:
        penalty = (a[:, :heads].float() * w[:, None]).sum(-1)              # (B, h, T)
        total = total + (penalty * rows[:, None]).sum() / (rows.sum().clamp_min(1) * penalty.shape[1])
    return total / len(attention)
