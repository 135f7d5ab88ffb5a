"""Batched autoregressive generation of LeWM latents with the KV cache, then decoding.

Each row ``b`` runs until its stop head says stop (probability > ``STOP_THRESHOLD``) at
or after its minimum length, or reaches its maximum length; the loop ends when every row
has ended, so it never runs more than ``max(max_steps)`` predictor steps.  Lengths are
in latent frames: ``min_steps = ceil(min_length_ratio * tokens / f)`` and
``max_steps = max(1, ceil(max_length_ratio * tokens / f))``, ``f`` the downsample factor
(the ratios are mel frames per text token), capped at :data:`MAX_LATENT_STEPS`.

Randomness, all from ``generators`` (one CPU ``torch.Generator`` per row, so a row
generates the same alone as in a batch): ``temperature`` x N(0, I) added to each predicted
latent before it is fed back (the decoded latent is the prediction itself), and the
prenet dropout masks when ``prenet_dropout`` is on (Tacotron 2 keeps it at inference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor

from .model import LeWMModel

__all__ = ["Generated", "generate", "length_limits", "STOP_THRESHOLD", "MAX_LATENT_STEPS"]

STOP_THRESHOLD = 0.5
MAX_LATENT_STEPS = 4096  # 87 s of audio at factor 2: a hard cap whatever the ratios say


@dataclass
class Generated:
    """latents (B, T', latent_dim) padded with zeros; lengths (B,) latent frames;
    mel (B, n_mels, f T') log-mel (denormalised), padded frames zero; mel_lengths (B,)
    = f * lengths; stopped (B,) bool: the stop head ended the row (else its maximum
    length did); steps: predictor steps taken."""

    latents: Tensor
    lengths: Tensor
    mel: Tensor
    mel_lengths: Tensor
    stopped: Tensor
    steps: int


def length_limits(token_counts: Sequence[int], factor: int, min_ratio: float, max_ratio: float) -> tuple[list[int], list[int]]:
    """(min_steps, max_steps) per row in latent frames; see the module docstring."""
    if not 0.0 <= min_ratio < max_ratio:
        raise ValueError(f"length ratios must satisfy 0 <= min < max, got {min_ratio}, {max_ratio}")
    hi = [min(MAX_LATENT_STEPS, max(1, math.ceil(max_ratio * n / factor))) for n in token_counts]
    lo = [min(h, math.ceil(min_ratio * n / factor)) for n, h in zip(token_counts, hi)]
    return lo, hi


@torch.no_grad()
def generate(model: LeWMModel, tokens: Tensor, token_mask: Tensor, speakers: Optional[Tensor] = None, *,
             generators: Sequence[torch.Generator], temperature: float = 0.0, min_length_ratio: float = 1.0,
             max_length_ratio: float = 25.0, prenet_dropout: Optional[bool] = None) -> Generated:
    """Generate latents and mels for tokens (B, L); see the module docstring.
    ``prenet_dropout`` None takes ``lewm.prenet_dropout_at_inference``."""
    b = tokens.shape[0]
    if len(generators) != b:
        raise ValueError(f"need one generator per row: {b} rows, {len(generators)} generators")
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    cfg = model.config
    use_dropout = cfg.prenet_dropout_at_inference if prenet_dropout is None else prenet_dropout
    use_dropout = use_dropout and cfg.prenet_dropout > 0
    dev = tokens.device
    token_mask = token_mask.bool()
    memory = model.encode_text(tokens, token_mask, speakers)
    lo, hi = length_limits(token_mask.sum(1).tolist(), model.factor, min_length_ratio, max_length_ratio)
    min_steps, max_steps = torch.tensor(lo, device=dev), torch.tensor(hi, device=dev)
    predictor = model.predictor
    cache = predictor.begin(memory)
    x = predictor.start_inputs(b, memory.dtype)
    lengths = max_steps.clone()
    done = torch.zeros(b, dtype=torch.bool, device=dev)
    stopped = torch.zeros(b, dtype=torch.bool, device=dev)
    out: list[Tensor] = []
    step = 0
    while True:
        res = predictor(x, memory, token_mask, cache)
        z = res.pred[:, -1]                                              # (B, latent_dim)
        out.append(z)
        step += 1
        prob = torch.sigmoid(res.stop_logits[:, -1].float())
        by_head = (prob > STOP_THRESHOLD) & (step >= min_steps) & ~done
        by_limit = (step >= max_steps) & ~done & ~by_head
        ending = by_head | by_limit
        lengths = torch.where(ending, torch.full_like(lengths, step), lengths)
        stopped |= by_head
        done |= ending
        if bool(done.all()):
            break
        fed = z
        if temperature > 0:
            noise = torch.stack([torch.randn(z.shape[-1], generator=g) for g in generators]).to(dev, z.dtype)
            fed = z + temperature * noise
        masks = predictor.prenet.draw_masks(list(generators), dev) if use_dropout else None
        x = predictor.inputs(fed[:, None], with_start=False, masks=masks)
    latents = torch.stack(out, dim=1)
    mask = torch.arange(latents.shape[1], device=dev)[None, :] < lengths[:, None]
    latents = latents * mask[..., None].to(latents.dtype)
    mel = model.denormalize_mel(model.decode(latents, mask))
    mel_mask = mask.repeat_interleave(model.factor, dim=1)
    mel = mel * mel_mask[:, None, :].to(mel.dtype)
    return Generated(latents=latents, lengths=lengths, mel=mel, mel_lengths=lengths * model.factor,
                     stopped=stopped, steps=step)
