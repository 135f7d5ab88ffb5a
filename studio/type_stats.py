"""Statistics of the ABX and intelligibility tests (score-based types -- MOS, SMOS, DCR,
MUSHRA -- go through :mod:`studio.stats` and :mod:`studio.mos_model`).

* :func:`abx_table`: per condition pair (design order), the share of ABX trials in
  which the rater found X, with the exact one-sided binomial p-value against chance
  (H0: p = 1/2, H1: p > 1/2, i.e. the pair can be told apart) and the Clopper-Pearson
  95 % interval.
* :func:`intelligibility_table`: per condition, the human WER (:func:`core.eval.wer`
  over every transcript typed for it: errors summed, divided by the reference words)
  next to the ASR WER of the same clips when their automatic transcripts are known
  (the Results page's objective scores cache them).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from studio.results import RatingRecord, ResultsStore, StimulusRecord

__all__ = ["ABXRow", "WERRow", "abx_table", "intelligibility_table", "cached_asr_transcripts", "OBJECTIVE_DIR"]

OBJECTIVE_DIR = "objective"  # where the Results page caches DNSMOS scores and ASR transcripts per test


@dataclass(frozen=True)
class ABXRow:
    first: str
    second: str
    n: int
    correct: int
    share: float
    ci95_low: float
    ci95_high: float
    p_value: float  # one-sided, against guessing
    n_raters: int


@dataclass(frozen=True)
class WERRow:
    condition: str
    n: int  # transcripts typed
    human_wer: float
    asr_wer: float  # NaN when the clips have no automatic transcript
    asr_clips: int
    n_raters: int


def abx_table(ratings: Sequence[RatingRecord], conditions: Sequence[str] = ()) -> list[ABXRow]:
    """One row per condition pair with ABX answers (see module doc)."""
    from scipy import stats

    order = {c: i for i, c in enumerate(conditions)}
    groups: dict = {}
    for r in ratings:
        if r.test_type != "abx" or r.gold is not None:
            continue
        pair = tuple(sorted(r.conditions[:2], key=lambda c: (order.get(c, len(order)), c)))
        groups.setdefault(pair, []).append((r.choice == r.key, r.rater_id))
    rows = []
    for (first, second), items in sorted(groups.items(), key=lambda kv: [order.get(c, len(order)) for c in kv[0]]):
        n, k = len(items), sum(ok for ok, _ in items)
        test = stats.binomtest(k, n, 0.5, alternative="greater")
        ci = stats.binomtest(k, n, 0.5).proportion_ci(0.95, method="exact")
        rows.append(ABXRow(first, second, n, k, k / n, float(ci.low), float(ci.high), float(test.pvalue),
                           len({rid for _, rid in items})))
    return rows


def intelligibility_table(ratings: Sequence[RatingRecord], conditions: Sequence[str] = (),
                          asr: Optional[Mapping[str, str]] = None,
                          stimuli: Sequence[StimulusRecord] = ()) -> list[WERRow]:
    """Per condition: the human WER, and the ASR WER over the condition's ``stimuli``
    that have an automatic transcript in ``asr`` (stimulus id -> text), where any do."""
    from core.eval import wer

    order = {c: i for i, c in enumerate(conditions)}
    groups: dict = {}
    for r in ratings:
        if r.test_type != "intelligibility" or r.gold is not None or r.transcript is None:
            continue
        groups.setdefault(r.conditions[0], []).append((r.text, r.transcript, r.rater_id))
    rows = []
    for label, items in sorted(groups.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])):
        human = wer([t for t, _, _ in items], [h for _, h, _ in items]).wer
        known = [s for s in stimuli if s.condition == label and s.variant == "" and s.stimulus_id in (asr or {})]
        asr_wer = wer([s.text for s in known], [asr[s.stimulus_id] for s in known]).wer if known else math.nan
        rows.append(WERRow(label, len(items), human, asr_wer, len(known), len({rid for _, _, rid in items})))
    return rows


def cached_asr_transcripts(store: ResultsStore, test_id: str) -> dict:
    """Automatic transcripts (stimulus id -> text) cached by the Results page's objective
    scores (``<results>/objective/<test id>.json``); empty when none were computed."""
    path = store.folder / OBJECTIVE_DIR / f"{test_id}.json"
    try:
        cache = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {sid: v["transcript"] for sid, v in cache.items() if isinstance(v, dict) and "transcript" in v}
