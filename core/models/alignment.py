"""Monotonic alignment search (Glow-TTS / Matcha-TTS) between tokens and mel frames.

Given ``log_p[b, l, t]``, the log-likelihood of mel frame ``t`` under token ``l``, find
the alignment ``A`` (0/1, ``(L, T)``) that maximises ``sum_{l,t} A[l, t] log_p[l, t]``
among the monotonic ones: every frame belongs to exactly one token, frame 0 to token
0, the last frame to the last token, and from one frame to the next the token index
stays or moves on by one — so every token gets at least one frame, which needs
``T >= L``.

Dynamic programme (Viterbi): ``Q[l, t] = log_p[l, t] + max(Q[l, t-1], Q[l-1, t-1])``
with ``Q[0, 0] = log_p[0, 0]``, only over cells that can still reach ``(L-1, T-1)``;
then backtrack from ``(L-1, T-1)``.  Ties are broken towards staying on the same token.
The DP runs in numba (compiled once, cached on disk) in float64, one item after
another: ``B=16, L=150, T=800`` takes a few milliseconds on one core, so there is no
thread pool to fight with the torch threads.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from torch import Tensor

__all__ = ["monotonic_alignment_search", "mas_numpy", "AlignmentError"]


class AlignmentError(ValueError):
    """The inputs cannot be aligned (e.g. fewer mel frames than tokens)."""


@numba.njit(cache=True, nogil=True)
def _mas_one(log_p, n_tokens, n_frames, path):  # pragma: no cover - compiled
    """Best monotonic path for one item: log_p (Lmax, Tmax), writes 1s into path."""
    neg = -np.inf
    score = np.full((n_tokens, n_frames), neg, dtype=np.float64)
    score[0, 0] = log_p[0, 0]
    for t in range(1, n_frames):
        lo = max(0, n_tokens - (n_frames - t))   # later tokens still need a frame each
        hi = min(n_tokens - 1, t)                # token l needs l frames before it
        for l in range(lo, hi + 1):
            stay = score[l, t - 1]
            move = score[l - 1, t - 1] if l > 0 else neg
            score[l, t] = (stay if stay >= move else move) + log_p[l, t]
    l = n_tokens - 1
    for t in range(n_frames - 1, -1, -1):
        path[l, t] = 1.0
        if t > 0 and l > 0 and (l == t or score[l - 1, t - 1] > score[l, t - 1]):
            l -= 1


@numba.njit(cache=True, nogil=True)
def _mas_batch(log_p, token_lengths, mel_lengths, path):  # pragma: no cover - compiled
    for b in range(log_p.shape[0]):
        _mas_one(log_p[b], token_lengths[b], mel_lengths[b], path[b])


def mas_numpy(log_p: np.ndarray, token_lengths: np.ndarray, mel_lengths: np.ndarray) -> np.ndarray:
    """Numpy entry point: ``log_p`` (B, L, T) float32/float64 -> path (B, L, T) float32 0/1.

    Cells outside ``[:token_lengths[b], :mel_lengths[b]]`` are ignored and 0 in the path.
    """
    log_p = np.ascontiguousarray(log_p)
    if log_p.ndim != 3:
        raise AlignmentError(f"log_p must be (batch, tokens, frames), got shape {log_p.shape}")
    if log_p.dtype not in (np.float32, np.float64):
        log_p = log_p.astype(np.float32)
    b, n_l, n_t = log_p.shape
    tl = np.ascontiguousarray(token_lengths, dtype=np.int64).reshape(-1)
    ml = np.ascontiguousarray(mel_lengths, dtype=np.int64).reshape(-1)
    if tl.shape[0] != b or ml.shape[0] != b:
        raise AlignmentError(f"token_lengths and mel_lengths must have {b} entries (the batch size), "
                             f"got {tl.shape[0]} and {ml.shape[0]}")
    for i in range(b):
        if not 1 <= tl[i] <= n_l:
            raise AlignmentError(f"item {i}: token length {tl[i]} must be in [1, {n_l}]")
        if not 1 <= ml[i] <= n_t:
            raise AlignmentError(f"item {i}: mel length {ml[i]} must be in [1, {n_t}]")
        if ml[i] < tl[i]:
            raise AlignmentError(f"item {i}: {ml[i]} mel frames cannot be aligned to {tl[i]} tokens; "
                                 "monotonic alignment needs at least one frame per token "
                                 "(drop this utterance or use fewer tokens)")
    path = np.zeros((b, n_l, n_t), dtype=np.float32)
    _mas_batch(log_p, tl, ml, path)
    return path


def monotonic_alignment_search(log_p: Tensor, token_lengths: Tensor, mel_lengths: Tensor) -> Tensor:
    """Hard monotonic alignment maximising the total log-likelihood.

    Args:
        log_p: (B, L, T) float, log-likelihood of frame t under token l (no gradient used).
        token_lengths: (B,) int, real tokens per item (right-padded).
        mel_lengths: (B,) int, real frames per item; must be >= token_lengths.

    Returns:
        (B, L, T) 0/1 tensor in ``log_p``'s dtype (float32 for non-float input) on
        ``log_p``'s device: ``attn[b, l, t] = 1`` iff frame t belongs to token l; each real
        frame has exactly one token, padding rows/columns are 0.

    Raises:
        AlignmentError: a length is out of range or an item has fewer frames than tokens.
    """
    x = log_p.detach()
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    path = mas_numpy(x.cpu().numpy(), token_lengths.detach().cpu().numpy(),
                     mel_lengths.detach().cpu().numpy())
    out_dtype = log_p.dtype if log_p.is_floating_point() else torch.float32
    return torch.from_numpy(path).to(device=log_p.device, dtype=out_dtype)
