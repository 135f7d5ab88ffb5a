"""The mel normalisation both model families share: scalar buffers ``mel_mean`` and
``mel_std`` (set by the trainer from the training set's statistics, stored in the
checkpoint), and the maps between log-mel and network space."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MelScaled(nn.Module):
    """Base class of a model that works on normalised log-mels ``(mel - mel_mean) / mel_std``."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mel_mean", torch.tensor(0.0))
        self.register_buffer("mel_std", torch.tensor(1.0))

    def normalize_mel(self, mel: Tensor) -> Tensor:
        """Log-mel (B, n_mels, T) -> network space ``(mel - mel_mean) / mel_std``."""
        return (mel - self.mel_mean) / self.mel_std

    def denormalize_mel(self, x: Tensor) -> Tensor:
        """Network space (B, n_mels, T) -> log-mel ``x * mel_std + mel_mean``."""
        return x * self.mel_std + self.mel_mean

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
