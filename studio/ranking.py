"""Bradley-Terry ranking of conditions from A/B votes, with bootstrap 95 % intervals.

Model: condition ``i`` has a log-strength ``theta_i``; a vote between ``i`` and ``j``
goes to ``i`` with probability ``1 / (1 + exp(theta_j - theta_i))``.  Strengths are
reported centred (mean 0 over the ranked conditions), so only differences mean
anything: ``theta_i - theta_j = log(odds that i is preferred to j)``.

Fitting: the maximum-likelihood estimate from the matrix of win counts, by choix's
iterative Luce spectral ranking (``choix.ilsr_pairwise_dense``) with a small
regularisation ``alpha`` (:data:`BT_ALPHA`: transition rates of choix's Markov chain
start at ``alpha``), which keeps a condition that never won (or never lost) finite
and leaves well-observed strengths practically unchanged.

"No preference" answers (ties), set by ``ties``:

* ``"half"`` (default): a tie counts as half a win for each side, as in the
  Chatbot Arena / TTS Arena rankings (the win matrix takes 0.5 in both cells);
* ``"drop"``: ties are left out, as the binomial test of :mod:`studio.stats` does.

Intervals: ``n_boot`` bootstrap resamples of the votes (drawn with replacement, all
votes alike, from ``numpy.random.default_rng(seed)``; the seed is recorded in the
result), each refitted; the 95 % interval is the 2.5 and 97.5 percentiles of each
condition's centred strength, and ``rank_low`` / ``rank_high`` those of its rank
(1 = best).  Gold (attention) trials must be left out by the caller
(:func:`ab_votes` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np

from studio.results import AB_CHOICES, RatingRecord

__all__ = ["BTCondition", "BTRanking", "bradley_terry", "ab_votes", "TIE_RULES", "BT_ALPHA", "N_BOOT"]

TIE_RULES = ("half", "drop")
BT_ALPHA = 0.01
N_BOOT = 1000


@dataclass(frozen=True)
class BTCondition:
    """One condition's centred log-strength, its bootstrap 95 % interval, its rank
    (1 = best) with the bootstrap 95 % rank interval, and its vote counts."""

    condition: str
    strength: float
    ci95_low: float
    ci95_high: float
    rank: int
    rank_low: int
    rank_high: int
    wins: int
    losses: int
    ties: int


@dataclass(frozen=True)
class BTRanking:
    """Conditions best first; how the votes were counted and resampled."""

    conditions: tuple
    n_votes: int
    ties: str
    n_boot: int
    seed: int
    alpha: float

    def by_condition(self) -> dict:
        return {c.condition: c for c in self.conditions}


def ab_votes(ratings: Iterable[RatingRecord]) -> list[tuple]:
    """``(condition_a, condition_b, choice)`` of every A/B rating that is not a gold
    trial (sides as presented; choice "A", "B" or "none")."""
    return [(r.conditions[0], r.conditions[1], r.choice) for r in ratings if r.test_type == "ab" and r.gold is None]


def _fit(wins: np.ndarray, alpha: float) -> np.ndarray:
    import choix

    theta = np.asarray(choix.ilsr_pairwise_dense(wins, alpha=alpha), dtype=np.float64)
    return theta - theta.mean()


def _ranks(theta: np.ndarray) -> np.ndarray:
    """1 = strongest; equal strengths share the better rank."""
    return np.array([1 + int(np.sum(theta > t + 1e-12)) for t in theta])


def bradley_terry(votes: Sequence[tuple], *, conditions: Optional[Sequence[str]] = None, ties: str = "half",
                  n_boot: int = N_BOOT, seed: int = 0, alpha: float = BT_ALPHA) -> BTRanking:
    """Rank conditions from ``votes`` ``(condition_a, condition_b, choice)`` (choice
    "A", "B" or "none"; see the module doc for ties, fitting and intervals).
    ``conditions`` fixes the set and order of conditions (default: as they appear)."""
    if ties not in TIE_RULES:
        raise ValueError(f"unknown tie rule {ties!r}; valid: {', '.join(TIE_RULES)}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 0:
        raise ValueError(f"n_boot must be an integer >= 0, got {n_boot!r}")
    names = list(conditions) if conditions is not None else []
    for a, b, choice in votes:
        if choice not in AB_CHOICES:
            raise ValueError(f"unknown choice {choice!r}; valid: {', '.join(AB_CHOICES)}")
        if a == b:
            raise ValueError(f"a vote compares {a!r} with itself")
        for c in (a, b):
            if c not in names:
                if conditions is not None:
                    raise ValueError(f"vote names condition {c!r}, not among {names}")
                names.append(c)
    if len(names) < 2:
        raise ValueError("a Bradley-Terry ranking needs votes between at least two conditions")
    index = {c: i for i, c in enumerate(names)}
    # one cell per distinct outcome: (winner, loser, 1.0) or, for a tie, (a, b, 0.5) and (b, a, 0.5)
    cells: dict = {}
    wins = np.zeros(len(names), int)
    losses = np.zeros(len(names), int)
    n_ties = np.zeros(len(names), int)
    for a, b, choice in votes:
        i, j = index[a], index[b]
        if choice == "none":
            n_ties[[i, j]] += 1
            key = (min(i, j), max(i, j), "tie")
        else:
            w, lo = (i, j) if choice == "A" else (j, i)
            wins[w] += 1
            losses[lo] += 1
            key = (w, lo, "win")
        cells[key] = cells.get(key, 0) + 1
    if ties == "drop":
        cells = {k: v for k, v in cells.items() if k[2] != "tie"}
    keys = list(cells)
    counts = np.array([cells[k] for k in keys], dtype=np.float64)
    n = int(counts.sum())
    if n == 0:
        raise ValueError("no votes to rank (every vote was a tie and ties='drop')")

    def matrix(c: np.ndarray) -> np.ndarray:
        m = np.zeros((len(names), len(names)))
        for (i, j, kind), k in zip(keys, c):
            if kind == "win":
                m[i, j] += k
            else:
                m[i, j] += 0.5 * k
                m[j, i] += 0.5 * k
        return m

    theta = _fit(matrix(counts), alpha)
    rank = _ranks(theta)
    rng = np.random.default_rng(seed)
    boots = np.array([_fit(matrix(rng.multinomial(n, counts / n).astype(np.float64)), alpha) for _ in range(n_boot)])
    if n_boot:
        lo, hi = np.percentile(boots, [2.5, 97.5], axis=0)
        boot_ranks = np.array([_ranks(t) for t in boots])
        rlo, rhi = np.percentile(boot_ranks, [2.5, 97.5], axis=0)
    else:
        lo = hi = np.full(len(names), np.nan)
        rlo, rhi = rank, rank
    rows = [BTCondition(c, float(theta[i]), float(lo[i]), float(hi[i]), int(rank[i]), int(np.floor(rlo[i])),
                        int(np.ceil(rhi[i])), int(wins[i]), int(losses[i]), int(n_ties[i]))
            for i, c in enumerate(names)]
    rows.sort(key=lambda r: (r.rank, names.index(r.condition)))
    return BTRanking(tuple(rows), len(list(votes)), ties, n_boot, int(seed), float(alpha))
