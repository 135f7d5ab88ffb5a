"""Duration predictor (Glow-TTS style) and the rule that turns predictions into frames.

The predictor sees the text features *detached* (its loss must not shape the encoder)
plus the speaker vector, and predicts ``log d`` per token, where ``d`` is the number of
mel frames monotonic alignment search gave the token.  Because the search gives every
real token at least one frame, ``log d >= 0`` is always finite, so the target is
``log(d)`` (not ``log(1 + d)``); the inverse at inference is then simply ``exp``:

    durations = clamp(round(exp(log_d) * duration_scale), min=1)   for real tokens
    durations = 0                                                  for padding
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import ModelConfig
from .layers import zero_padding

__all__ = ["DurationPredictor", "duration_loss", "durations_from_log"]


class DurationPredictor(nn.Module):
    """``(hidden (B, L, text_dim), mask (B, L), speaker (B, S) | None) -> log_d (B, L)``.

    ``duration_layers`` x [conv1d (k=3), ReLU, LayerNorm, dropout] then a linear head;
    padding is zeroed before every convolution and in the output.
    """

    def __init__(self, model: ModelConfig, kernel_size: int = 3) -> None:
        super().__init__()
        c = model.duration_channels
        self.speaker_proj = nn.Linear(model.speaker_dim, model.text_dim) if model.n_speakers > 1 else None
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        in_ch = model.text_dim
        for _ in range(model.duration_layers):
            self.convs.append(nn.Conv1d(in_ch, c, kernel_size, padding=kernel_size // 2))
            self.norms.append(nn.LayerNorm(c))
            in_ch = c
        self.drop = nn.Dropout(model.dropout)
        self.head = nn.Linear(in_ch, 1)

    def forward(self, hidden: Tensor, mask: Tensor, speaker: Tensor | None = None) -> Tensor:
        x = hidden.detach()
        if self.speaker_proj is not None:
            if speaker is None:
                raise ValueError("this duration predictor has a speaker input: pass speaker (B, speaker_dim)")
            x = x + self.speaker_proj(speaker.detach())[:, None, :]
        for conv, norm in zip(self.convs, self.norms):
            x = zero_padding(x, mask)
            x = conv(x.transpose(1, 2)).transpose(1, 2)
            x = self.drop(norm(torch.relu(x)))
        return self.head(x).squeeze(-1) * mask.to(x.dtype)


def duration_loss(log_d_pred: Tensor, durations: Tensor, mask: Tensor) -> Tensor:
    """Masked MSE between predicted ``log d`` (B, L) and ``log(durations)`` (B, L), scalar.

    ``durations`` are the search's frame counts (>= 1 on real tokens); padding ignored.
    """
    m = mask.to(torch.float32)
    target = torch.log(durations.to(torch.float32).clamp(min=1.0))
    err = (log_d_pred.float() - target) ** 2 * m
    return err.sum() / m.sum().clamp(min=1.0)


def durations_from_log(log_d: Tensor, mask: Tensor, duration_scale: float = 1.0) -> Tensor:
    """Frames per token (B, L) long: ``clamp(round(exp(log_d) * scale), min=1)`` on real
    tokens, 0 on padding.  ``duration_scale`` > 1 speaks slower."""
    if not duration_scale > 0:
        raise ValueError(f"duration_scale must be positive, got {duration_scale}")
    # log_d is capped at 12 (~1.6e5 frames) only so that exp never overflows to inf.
    d = torch.round(torch.exp(log_d.float().clamp(max=12.0)) * duration_scale).clamp(min=1.0)
    return (d * mask.to(d.dtype)).long()
