"""Monotonic alignment search: brute-force optimality, structural properties, errors, speed."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
import torch

from core.models.alignment import AlignmentError, mas_numpy, monotonic_alignment_search


def brute_force_best(log_p: np.ndarray) -> tuple[float, np.ndarray]:
    """Enumerate every monotonic alignment of L tokens to T frames (each token a
    contiguous run of >= 1 frames, in order, covering all frames) and return the best
    total log-likelihood and its path.  Alignments <-> choices of L-1 cut points among
    the T-1 gaps between frames."""
    n_l, n_t = log_p.shape
    best, best_path = -np.inf, None
    for cuts in itertools.combinations(range(1, n_t), n_l - 1):
        bounds = (0, *cuts, n_t)
        path = np.zeros((n_l, n_t), dtype=np.float32)
        for l in range(n_l):
            path[l, bounds[l]:bounds[l + 1]] = 1
        score = float((path * log_p).sum())
        if score > best:
            best, best_path = score, path
    return best, best_path


def test_matches_brute_force_on_all_small_shapes():
    rng = np.random.default_rng(0)
    checked = 0
    for n_l in range(1, 4):
        for n_t in range(n_l, 7):
            for _ in range(8):
                log_p = rng.standard_normal((n_l, n_t))
                best, best_path = brute_force_best(log_p)
                path = mas_numpy(log_p[None], np.array([n_l]), np.array([n_t]))[0]
                assert float((path * log_p).sum()) == pytest.approx(best, abs=1e-9)
                np.testing.assert_array_equal(path, best_path)  # continuous random scores: unique optimum
                checked += 1
    assert checked == 8 * (6 + 5 + 4)


def test_padded_batch_equals_items_alone():
    rng = np.random.default_rng(1)
    lengths = [(3, 6), (2, 5), (1, 2), (3, 3)]
    log_p = rng.standard_normal((len(lengths), 3, 6)).astype(np.float32)
    tl = np.array([l for l, _ in lengths])
    ml = np.array([t for _, t in lengths])
    batch = mas_numpy(log_p, tl, ml)
    for b, (n_l, n_t) in enumerate(lengths):
        _, best_path = brute_force_best(log_p[b, :n_l, :n_t].astype(np.float64))
        np.testing.assert_array_equal(batch[b, :n_l, :n_t], best_path)
        assert batch[b, n_l:].sum() == 0 and batch[b, :, n_t:].sum() == 0


def _check_properties(attn: torch.Tensor, tl: torch.Tensor, ml: torch.Tensor) -> None:
    for b in range(attn.shape[0]):
        a = attn[b, : tl[b], : ml[b]]
        assert set(torch.unique(attn[b]).tolist()) <= {0.0, 1.0}
        assert torch.all(a.sum(0) == 1), "every real frame belongs to exactly one token"
        assert torch.all(a.sum(1) >= 1), "every real token gets at least one frame"
        token_of_frame = a.argmax(0)
        steps = token_of_frame[1:] - token_of_frame[:-1]
        assert torch.all((steps == 0) | (steps == 1)), "monotonic, no token skipped"
        assert token_of_frame[0] == 0 and token_of_frame[-1] == tl[b] - 1
        assert attn[b].sum() == ml[b], "nothing outside the real block"


def test_properties_on_bigger_inputs_and_device_dtype_roundtrip():
    g = torch.Generator().manual_seed(2)
    tl = torch.tensor([40, 17, 1, 60])
    ml = torch.tensor([90, 200, 33, 60])
    log_p = torch.randn(4, 60, 200, generator=g, dtype=torch.float64, requires_grad=True)
    attn = monotonic_alignment_search(log_p, tl, ml)
    assert attn.dtype == torch.float64 and not attn.requires_grad and attn.shape == (4, 60, 200)
    _check_properties(attn, tl, ml)
    # float32 input gives the same path here (no near-ties at this size with this seed)
    attn32 = monotonic_alignment_search(log_p.detach().float(), tl, ml)
    assert attn32.dtype == torch.float32
    torch.testing.assert_close(attn32.double(), attn)


def test_follows_an_obvious_diagonal():
    # log_p peaked on a known staircase: token l owns frames [3l, 3l + 3)
    n_l, n_t = 5, 15
    log_p = torch.full((1, n_l, n_t), -10.0)
    for l in range(n_l):
        log_p[0, l, 3 * l: 3 * l + 3] = 0.0
    attn = monotonic_alignment_search(log_p, torch.tensor([n_l]), torch.tensor([n_t]))
    torch.testing.assert_close(attn, (log_p == 0).float())


def test_errors_are_clear():
    log_p = torch.zeros(2, 4, 5)
    with pytest.raises(AlignmentError, match=r"item 1: 3 mel frames cannot be aligned to 4 tokens"):
        monotonic_alignment_search(log_p, torch.tensor([2, 4]), torch.tensor([5, 3]))
    with pytest.raises(AlignmentError, match="token length 0"):
        monotonic_alignment_search(log_p, torch.tensor([0, 4]), torch.tensor([5, 5]))
    with pytest.raises(AlignmentError, match="mel length 6"):
        monotonic_alignment_search(log_p, torch.tensor([2, 4]), torch.tensor([5, 6]))
    with pytest.raises(AlignmentError, match="2 entries"):
        monotonic_alignment_search(log_p, torch.tensor([2]), torch.tensor([5, 5]))
    assert issubclass(AlignmentError, ValueError)


def test_speed_b16_l150_t800():
    g = torch.Generator().manual_seed(3)
    log_p = torch.randn(16, 150, 800, generator=g)
    tl = torch.full((16,), 150)
    ml = torch.full((16,), 800)
    monotonic_alignment_search(log_p[:1, :5, :10], tl[:1] * 0 + 5, ml[:1] * 0 + 10)  # compile / load cache
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        attn = monotonic_alignment_search(log_p, tl, ml)
        times.append(time.perf_counter() - t0)
    best = min(times)
    print(f"\nMAS B=16 L=150 T=800: {best * 1e3:.1f} ms (best of 3, incl. torch<->numpy copies)")
    _check_properties(attn[:2], tl[:2], ml[:2])
    assert best < 0.25, f"MAS took {best * 1e3:.0f} ms; it must stay far below a CPU training step"
