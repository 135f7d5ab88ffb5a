"""Statistics of listening tests: MOS with a Student-t 95 % interval, A/B preference
shares with a two-sided exact binomial test, CMOS, and per-condition tables read from a
:class:`~studio.results.ResultsStore`.

Conventions:

* Standard deviations are sample standard deviations (``ddof=1``); the 95 % interval is
  ``mean -+ t_{0.975, n-1} * s / sqrt(n)``.  With one value the std and interval are NaN.
* A/B shares are fractions of all ratings, "none" included (``share_a + share_b +
  n_none / n = 1``); the p-value is ``binomtest(n_a, n_a + n_b, 0.5)`` two-sided, so
  "no preference" answers are left out of the test (NaN when nobody preferred a side).
* CMOS values are "how much better the second clip is than the first", -3..+3.  Tables
  orient every pair as (first, second) in the test design's condition order, flipping
  the A/B sides of swapped trials.
* Tables leave gold (attention) trials out unless ``include_gold=True``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np
from scipy import stats as _sps

from studio.agreement import gold_passed
from studio.results import AB_CHOICES, RatingRecord, ResultsStore, rated_scores

__all__ = ["MOSSummary", "CMOSSummary", "ABSummary", "ConditionMOS", "PairPreference", "RaterGold", "RatingCounts",
           "mos_summary", "cmos_summary", "ab_summary", "mos_table", "ab_table", "gold_table", "rating_counts"]


@dataclass(frozen=True)
class MOSSummary:
    """Mean opinion score with its Student-t 95 % confidence interval."""

    mean: float
    std: float
    n: int
    ci95_low: float
    ci95_high: float


@dataclass(frozen=True)
class CMOSSummary(MOSSummary):
    """Comparative MOS (second vs first, -3..+3) with its Student-t 95 % interval."""


@dataclass(frozen=True)
class ABSummary:
    """Preference counts, shares of all ratings, and the two-sided exact binomial p-value
    of A vs B (ties, "none", excluded)."""

    n_a: int
    n_b: int
    n_none: int
    share_a: float
    share_b: float
    p_value: float


def _mean_ci(values: Sequence[float], what: str):
    x = np.asarray(list(values), dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{what} needs at least one value")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} values must be finite")
    n = int(x.size)
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, n, math.nan, math.nan
    std = float(x.std(ddof=1))
    half = float(_sps.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return mean, std, n, mean - half, mean + half


def mos_summary(scores: Iterable[float]) -> MOSSummary:
    """Mean, sample std, count and Student-t 95 % interval of MOS scores (1..5)."""
    return MOSSummary(*_mean_ci(list(scores), "mos_summary"))


def cmos_summary(values: Iterable[float]) -> CMOSSummary:
    """Mean, sample std, count and Student-t 95 % interval of CMOS values (-3..+3)."""
    return CMOSSummary(*_mean_ci(list(values), "cmos_summary"))


def ab_summary(choices: Iterable[str]) -> ABSummary:
    """Counts and shares of "A", "B", "none"; exact two-sided binomial p-value of A vs B."""
    counts = {c: 0 for c in AB_CHOICES}
    for c in choices:
        if c not in counts:
            raise ValueError(f"unknown choice {c!r}; valid: {', '.join(AB_CHOICES)}")
        counts[c] += 1
    n_a, n_b, n_none = counts["A"], counts["B"], counts["none"]
    total = n_a + n_b + n_none
    if total == 0:
        raise ValueError("ab_summary needs at least one choice")
    p = float(_sps.binomtest(n_a, n_a + n_b, 0.5, alternative="two-sided").pvalue) if n_a + n_b else math.nan
    return ABSummary(n_a, n_b, n_none, n_a / total, n_b / total, p)


# --------------------------------------------------------------------------- tables from a store


@dataclass(frozen=True)
class ConditionMOS:
    condition: str
    summary: MOSSummary
    n_raters: int


@dataclass(frozen=True)
class PairPreference:
    """Preference between ``first`` and ``second`` (design order): ``summary.n_a`` counts
    choices of ``first``; ``cmos`` (None without CMOS answers) is second vs first."""

    first: str
    second: str
    summary: ABSummary
    cmos: Optional[CMOSSummary]
    n_raters: int


@dataclass(frozen=True)
class RaterGold:
    rater_id: str
    n_gold: int
    n_passed: int


@dataclass(frozen=True)
class RatingCounts:
    n_raters: int
    n_ratings: int
    n_sessions_done: int


def _current(store: ResultsStore, test_id: str, include_gold: bool) -> list[RatingRecord]:
    return [r for r in store.ratings(test_id) if include_gold or r.gold is None]


def _condition_order(store: ResultsStore, test_id: str) -> dict:
    return {c.label: i for i, c in enumerate(store.conditions(test_id))}


def mos_table(store: ResultsStore, test_id: str, *, include_gold: bool = False) -> list[ConditionMOS]:
    """One row per condition that has MOS ratings, in the order conditions were added."""
    groups: dict = {}
    for r in _current(store, test_id, include_gold):
        for label, score in rated_scores(r):  # MOS; SMOS, DCR and MUSHRA sliders alike
            groups.setdefault(label, []).append((score, r.rater_id))
    order = _condition_order(store, test_id)
    return [ConditionMOS(label, mos_summary(v for v, _ in rs), len({rid for _, rid in rs}))
            for label, rs in sorted(groups.items(), key=lambda kv: order[kv[0]])]


def ab_table(store: ResultsStore, test_id: str, *, include_gold: bool = False) -> list[PairPreference]:
    """One row per condition pair with A/B ratings, oriented (first, second) in design order."""
    groups: dict = {}
    for r in _current(store, test_id, include_gold):
        if r.test_type != "ab":
            continue
        a, b = r.conditions
        first, second = (b, a) if r.swapped else (a, b)
        side_of_first = "B" if r.swapped else "A"
        choice = "none" if r.choice == "none" else ("A" if r.choice == side_of_first else "B")
        cmos = None if r.cmos is None else (-r.cmos if r.swapped else r.cmos)
        groups.setdefault((first, second), []).append((choice, cmos, r.rater_id))
    order = _condition_order(store, test_id)
    rows = []
    for (first, second), items in sorted(groups.items(), key=lambda kv: (order[kv[0][0]], order[kv[0][1]])):
        cmos = [c for _, c, _ in items if c is not None]
        rows.append(PairPreference(first, second, ab_summary(ch for ch, _, _ in items),
                                   cmos_summary(cmos) if cmos else None, len({rid for _, _, rid in items})))
    return rows


def gold_table(store: ResultsStore, test_id: str) -> list[RaterGold]:
    """Per rater: gold (attention) trials answered and how many met their expectation."""
    per: dict = {}
    for r in store.ratings(test_id):
        if r.gold is not None:
            n, ok = per.get(r.rater_id, (0, 0))
            per[r.rater_id] = (n + 1, ok + int(gold_passed(r)))
    return [RaterGold(rid, n, ok) for rid, (n, ok) in sorted(per.items())]


def rating_counts(store: ResultsStore, test_id: str) -> RatingCounts:
    """Raters with at least one rating, current ratings, and sessions with every trial rated."""
    ratings = store.ratings(test_id)
    done = sum(1 for s in store.sessions(test_id) if s.position >= len(s.order))
    return RatingCounts(len({r.rater_id for r in ratings}), len(ratings), done)

