"""Batched autoregressive generation of LeWM latents with the KV cache, then decoding.

Each row ``b`` runs until its stop head says stop (probability > ``STOP_THRESHOLD``) at
or after its minimum length, or reaches its maximum length; the loop ends when every row
has ended, so it never runs more than ``max(max_steps)`` predictor steps.  Lengths are
in latent frames: ``min_steps = ceil(min_length_ratio * tokens / f)`` and
``max_steps = max(1, ceil(max_length_ratio * tokens / f))``, ``f`` the downsample factor
(the ratios are mel frames per text token), capped at :data:`MAX_LATENT_STEPS`.

Attention stop (``attention_stop``, a margin in text tokens, None = off): a row also
ends, at or after its minimum length, once its cross-attention has reached the end of
the text: the expected token position under the mean attention of the guided heads
(the first ``lewm.guided_attention_heads`` heads of the last ``guided_attention_layers``
layers, those :mod:`core.lewm.alignment` pulls onto the diagonal) of the newest frame is
at least ``n_tokens - 1 - attention_stop``.  Such a row counts as ``stopped`` (it ended
before its maximum length) and is flagged in ``by_attention``.

Randomness, all from ``generators`` (one CPU ``torch.Generator`` per row, so a row
generates the same alone as in a batch), and what ``temperature`` means, by the
predictor's head (``lewm.predictor_head``):

* ``point``: ``temperature`` x N(0, I) is added to each predicted latent before it is fed
  back; the decoded latent is the prediction itself.
* ``gaussian``: each frame is sampled from the predicted distribution,
  ``mean + temperature * exp(logvar / 2) * eps`` (:func:`core.lewm.gaussian_head.sample_latents`),
  and that sample is both decoded and fed back; temperature 0 gives the mean.

In both, a row draws its normals (one (latent_dim,) vector per step, only when
``temperature > 0``) and then, when ``prenet_dropout`` is on (Tacotron 2 keeps it at
inference), its prenet dropout masks.

Text guidance (``cfg`` > 0, a model trained with ``lewm.text_drop_prob`` > 0): the
predictor runs on 2B rows, rows ``[B, 2B)`` fed the same inputs with the text features
zeroed (as the dropped rows in training), and each frame is ``cond + cfg * (cond -
uncond)`` (:func:`core.sampling.guidance.combine_guidance`), which is what is sampled
from, decoded and fed back to both halves.  The stop head, the Gaussian head's variance
and the attention stop read the conditional rows.

Voice prompt (``prefix``): latents of a reference clip (from the audio encoder, see
:func:`encode_prompt`), shape (P, latent_dim) shared by every row or (B, P, latent_dim),
are fed after the start vector in one cached predictor call before the first generated
frame, so generation continues the reference.  The reference's transcript is part of
``tokens`` (placed before the text by the caller); ``prefix_tokens`` gives, per row, how
many leading tokens are that transcript, and the length limits count only the tokens
after them.  The output holds the generated frames only: ``latents``/``lengths`` exclude
the prefix, and the mel is decoded with the prefix as left context (the decoder's
convolutions see it), then its ``f * P`` frames are cut off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor

from ..sampling.guidance import check_cfg, combine_guidance
from .gaussian_head import sample_latents
from .model import LeWMModel

__all__ = ["Generated", "generate", "encode_prompt", "length_limits", "STOP_THRESHOLD", "MAX_LATENT_STEPS",
           "MAX_PREFIX_STEPS"]

STOP_THRESHOLD = 0.5
MAX_LATENT_STEPS = 4096  # 87 s of audio at factor 2: a hard cap whatever the ratios say
MAX_PREFIX_STEPS = 1024  # latent frames of a voice prompt (22 s at factor 2)


@dataclass
class Generated:
    """latents (B, T', latent_dim) padded with zeros; lengths (B,) latent frames;
    mel (B, n_mels, f T') log-mel (denormalised), padded frames zero; mel_lengths (B,)
    = f * lengths; stopped (B,) bool: the row ended before its maximum length (by the
    stop head, or by the attention stop); steps: predictor steps taken; by_attention (B,)
    bool: the attention stop ended the row (None when it was off)."""

    latents: Tensor
    lengths: Tensor
    mel: Tensor
    mel_lengths: Tensor
    stopped: Tensor
    steps: int
    by_attention: Optional[Tensor] = None


def length_limits(token_counts: Sequence[int], factor: int, min_ratio: float, max_ratio: float) -> tuple[list[int], list[int]]:
    """(min_steps, max_steps) per row in latent frames; see the module docstring."""
    if not 0.0 <= min_ratio < max_ratio:
        raise ValueError(f"length ratios must satisfy 0 <= min < max, got {min_ratio}, {max_ratio}")
    hi = [min(MAX_LATENT_STEPS, max(1, math.ceil(max_ratio * n / factor))) for n in token_counts]
    lo = [min(h, math.ceil(min_ratio * n / factor)) for n, h in zip(token_counts, hi)]
    return lo, hi


@torch.no_grad()
def encode_prompt(model: LeWMModel, mel: Tensor) -> Tensor:
    """Log-mel (n_mels, T) of a reference clip -> its latents (ceil(T / f), latent_dim):
    the audio encoder's means ``mu`` (what the predictor is fed in training)."""
    if mel.dim() != 2 or mel.shape[0] != model.n_mels or mel.shape[1] < 1:
        raise ValueError(f"prompt mel must be ({model.n_mels}, frames) with frames >= 1, got {tuple(mel.shape)}")
    was_training = model.audio_encoder.training
    model.audio_encoder.eval()
    try:
        post = model.encode_audio(model.normalize_mel(mel[None]), torch.ones(1, mel.shape[1], dtype=torch.bool,
                                                                              device=mel.device))
    finally:
        model.audio_encoder.train(was_training)
    return post.mu[0]


def _check_prefix(prefix: Tensor, batch: int, latent_dim: int) -> Tensor:
    """(P, D) or (B, P, D) -> (B, P, D), checked."""
    if prefix.dim() == 2:
        prefix = prefix[None].expand(batch, -1, -1)
    if prefix.dim() != 3 or prefix.shape[0] != batch or prefix.shape[2] != latent_dim or prefix.shape[1] < 1:
        raise ValueError(f"prefix must be (frames, {latent_dim}) or ({batch}, frames, {latent_dim}) with "
                         f"frames >= 1, got {tuple(prefix.shape)}")
    if prefix.shape[1] > MAX_PREFIX_STEPS:
        raise ValueError(f"prefix is {prefix.shape[1]} latent frames, over the limit of {MAX_PREFIX_STEPS}; "
                         "use a shorter voice prompt")
    return prefix


@torch.no_grad()
def generate(model: LeWMModel, tokens: Tensor, token_mask: Tensor, speakers: Optional[Tensor] = None, *,
             generators: Sequence[torch.Generator], temperature: float = 0.0, min_length_ratio: float = 1.0,
             max_length_ratio: float = 25.0, prenet_dropout: Optional[bool] = None,
             prefix: Optional[Tensor] = None, prefix_tokens: Optional[Sequence[int]] = None,
             attention_stop: Optional[float] = None, cfg: float = 0.0) -> Generated:
    """Generate latents and mels for tokens (B, L); see the module docstring.
    ``prenet_dropout`` None takes ``lewm.prenet_dropout_at_inference``.  ``prefix``:
    voice-prompt latents; ``prefix_tokens``: per row, the leading tokens that are its
    transcript (default none); ``attention_stop``: the attention stop's margin in
    tokens (None: off); ``cfg``: text guidance strength (0: off; see
    :func:`core.sampling.guidance.combine_guidance`), which runs the predictor on 2B rows,
    the second B with the text features zeroed (a model trained with
    ``lewm.text_drop_prob`` > 0)."""
    b = tokens.shape[0]
    if len(generators) != b:
        raise ValueError(f"need one generator per row: {b} rows, {len(generators)} generators")
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if attention_stop is not None and not attention_stop >= 0:
        raise ValueError(f"attention_stop (tokens) must be >= 0, got {attention_stop}")
    strength = check_cfg(cfg)
    cfg = model.config
    use_dropout = cfg.prenet_dropout_at_inference if prenet_dropout is None else prenet_dropout
    use_dropout = use_dropout and cfg.prenet_dropout > 0
    dev = tokens.device
    token_mask = token_mask.bool()
    counts = token_mask.sum(1).tolist()
    skip = [0] * b if prefix_tokens is None else [int(n) for n in prefix_tokens]
    if len(skip) != b or any(not 0 <= s < n for s, n in zip(skip, counts)):
        raise ValueError(f"prefix_tokens must give, per row, fewer leading tokens than the row has: {skip} "
                         f"for rows of {counts} tokens")
    if strength > 0 and not cfg.text_drop_prob > 0:
        raise ValueError(f"cfg {strength} needs the unconditional predictor, which only a model trained with "
                         "lewm.text_drop_prob > 0 has")
    memory = model.encode_text(tokens, token_mask, speakers)
    lo, hi = length_limits([n - s for n, s in zip(counts, skip)], model.factor, min_length_ratio, max_length_ratio)
    min_steps, max_steps = torch.tensor(lo, device=dev), torch.tensor(hi, device=dev)
    predictor = model.predictor
    guided = strength > 0
    both = (lambda t: torch.cat([t, t])) if guided else (lambda t: t)   # rows [B, 2B): the same inputs, no text
    all_memory = torch.cat([memory, torch.zeros_like(memory)]) if guided else memory
    all_mask = both(token_mask)
    cache = predictor.begin(all_memory)
    x = predictor.start_inputs(b, memory.dtype)
    n_prefix = 0
    if prefix is not None:
        prefix = _check_prefix(prefix, b, cfg.latent_dim).to(dev, memory.dtype)
        n_prefix = prefix.shape[1]
        masks = None
        if use_dropout:   # one mask per prefix frame, drawn in order from each row's generator
            drawn = [predictor.prenet.draw_masks(list(generators), dev) for _ in range(n_prefix)]
            masks = (torch.cat([m[0] for m in drawn], 1), torch.cat([m[1] for m in drawn], 1))
        x = torch.cat([x, predictor.inputs(prefix, with_start=False, masks=masks)], dim=1)
    lengths = max_steps.clone()
    done = torch.zeros(b, dtype=torch.bool, device=dev)
    stopped = torch.zeros(b, dtype=torch.bool, device=dev)
    by_attention = torch.zeros(b, dtype=torch.bool, device=dev)
    watched = range(-cfg.guided_attention_layers, 0) if attention_stop is not None else ()
    if attention_stop is not None:
        token_pos = torch.arange(tokens.shape[1], device=dev, dtype=torch.float32)
        end_pos = torch.tensor(counts, device=dev, dtype=torch.float32) - 1.0 - float(attention_stop)
    out: list[Tensor] = []
    step = 0
    while True:
        res = predictor(both(x), all_memory, all_mask, cache, attention_layers=watched)
        z = res.pred[:b, -1]                                             # (B, latent_dim)
        if guided:
            z = combine_guidance(z, res.pred[b:, -1], strength)
        if res.logvar is not None and temperature > 0:                   # Gaussian head: sample the frame
            z = sample_latents(z, res.logvar[:b, -1], temperature, _row_normals(generators, z))
        out.append(z)
        step += 1
        prob = torch.sigmoid(res.stop_logits[:b, -1].float())
        by_head = (prob > STOP_THRESHOLD) & (step >= min_steps) & ~done
        if attention_stop is not None:
            heads = cfg.guided_attention_heads
            att = torch.stack([w[:b, :heads, -1].float() for w in res.cross_attention]).mean((0, 2))  # (B, L)
            at_end = (att * token_pos).sum(-1) >= end_pos
            by_att = at_end & (step >= min_steps) & ~done & ~by_head
            by_attention |= by_att
            by_head = by_head | by_att
        by_limit = (step >= max_steps) & ~done & ~by_head
        ending = by_head | by_limit
        lengths = torch.where(ending, torch.full_like(lengths, step), lengths)
        stopped |= by_head
        done |= ending
        if bool(done.all()):
            break
        fed = z
        if temperature > 0 and res.logvar is None:                       # point head: noise on the fed latent
            fed = z + temperature * _row_normals(generators, z)
        masks = predictor.prenet.draw_masks(list(generators), dev) if use_dropout else None
        x = predictor.inputs(fed[:, None], with_start=False, masks=masks)
    latents = torch.stack(out, dim=1)
    mask = torch.arange(latents.shape[1], device=dev)[None, :] < lengths[:, None]
    latents = latents * mask[..., None].to(latents.dtype)
    if n_prefix:
        ones = torch.ones(b, n_prefix, dtype=torch.bool, device=dev)
        full = model.decode(torch.cat([prefix.to(latents.dtype), latents], 1), torch.cat([ones, mask], 1))
        mel = model.denormalize_mel(full[:, :, n_prefix * model.factor:])
    else:
        mel = model.denormalize_mel(model.decode(latents, mask))
    mel_mask = mask.repeat_interleave(model.factor, dim=1)
    mel = mel * mel_mask[:, None, :].to(mel.dtype)
    return Generated(latents=latents, lengths=lengths, mel=mel, mel_lengths=lengths * model.factor,
                     stopped=stopped, steps=step, by_attention=by_attention if attention_stop is not None else None)


def _row_normals(generators: Sequence[torch.Generator], like: Tensor) -> Tensor:
    """(B, D) standard normals, row b drawn from ``generators[b]`` (CPU), as ``like``."""
    return torch.stack([torch.randn(like.shape[-1], generator=g) for g in generators]).to(like.device, like.dtype)
