"""Inter-rater agreement (Krippendorff's alpha) and rater screening.

Agreement, with the ``krippendorff`` package, over the non-gold ratings:

* MOS (SMOS, DCR alike): one unit per (condition, sentence), values 1..5, **ordinal** metric;
* MUSHRA: one unit per (condition, sentence), the slider values 0..100, **interval** metric;
* A/B: one unit per (condition pair, sentence) with the pair in a fixed order, the
  value the preferred condition or "no preference", **nominal** metric.

Units rated by one rater only carry no information about agreement and drop out (the
package's rule).  Alpha is 1 for perfect agreement, about 0 for chance; NaN (with a
note) when no unit has two ratings or every rating is the same value.

Screening (:func:`screen_raters`), per rater, with :class:`ScreeningRules`:

* gold (attention) trials failed: flagged when the failed share exceeds
  ``max_gold_fail``;
* MOS ``bias``: the mean over the rater's clips of d = (score - mean score of the
  other raters on the same clip); ``z = bias / (std(d) / sqrt(n))``, how many standard
  errors the rater's mean lies from the others' (needs 3 shared clips); flagged when
  ``|z| > max_abs_z`` and ``|bias| > min_bias`` (clearly and noticeably off: with many
  clips a harmless 0.2-point lean is "clear" too);
* MOS ``correlation``: Pearson r between the rater's scores and the other raters' mean
  on the same clips (ITU-T P.913's screening statistic, which uses 0.75 for ACR; the
  default here is ``min_correlation`` = 0.5, as conditions in TTS tests are often close);
  flagged below it.  A rater answering at random has r near 0;
* MUSHRA ``hidden_ref_low``: the share of the rater's MUSHRA trials in which the hidden
  reference got less than ``mushra_hidden_ref_min`` (90); flagged when it exceeds
  ``mushra_max_low_share`` (15 %), the post-screening rule of ITU-R BS.1534-3;
* SMOS and DCR scores (1..5, the rated clip) are screened like MOS;
* A/B ``agreement``: the share of the rater's answers that match the other raters'
  majority answer on the same pair and sentence (pairs without a strict majority left
  out); ``z`` as above; flagged when ``z < -max_abs_z``;
* the headphone check (:mod:`studio.headphone_check`), when the test has one: flagged
  when the rater failed it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np

from studio.results import SCORE_TYPES, RatingRecord, rated_scores

__all__ = ["AlphaResult", "RaterCheck", "ScreeningRules", "krippendorff_alpha", "mos_alpha", "ab_alpha", "mushra_alpha",
           "hidden_reference_low",
           "screen_raters", "gold_passed"]


@dataclass(frozen=True)
class AlphaResult:
    alpha: float
    level: str
    n_units: int  # units with two ratings or more
    n_raters: int
    note: str = ""


@dataclass(frozen=True)
class ScreeningRules:
    max_gold_fail: float = 0.25
    max_abs_z: float = 2.5
    min_bias: float = 0.5
    min_correlation: float = 0.5
    mushra_hidden_ref_min: float = 90.0
    mushra_max_low_share: float = 0.15


@dataclass(frozen=True)
class RaterCheck:
    """One rater's screening numbers (NaN where not defined) and why it is flagged."""

    rater_id: str
    n_ratings: int
    n_gold: int
    n_gold_failed: int
    bias: float = math.nan
    z: float = math.nan
    correlation: float = math.nan
    agreement: float = math.nan
    hidden_ref_low: float = math.nan  # MUSHRA: share of trials with the hidden reference below the minimum
    reasons: tuple = field(default=())
    headphone_check: str = ""  # passed, failed, incomplete; "" when the test has none

    @property
    def flagged(self) -> bool:
        return bool(self.reasons)


def gold_passed(r: RatingRecord) -> bool:
    """Whether a gold trial's answer meets its expectation."""
    if r.gold == "score<=2":
        return r.score is not None and r.score <= 2
    if r.gold.startswith("choice="):
        return r.choice == r.gold[len("choice="):]
    raise ValueError(f"unknown gold expectation {r.gold!r}")


def krippendorff_alpha(units: dict, level: str, *, value_domain: Sequence = None) -> AlphaResult:
    """Alpha of ``units``: ``{unit: {rater: value}}`` (numeric values) at ``level``
    ("nominal", "ordinal", "interval", "ratio")."""
    import krippendorff

    raters = sorted({r for values in units.values() for r in values})
    pairable = [u for u, values in units.items() if len(values) >= 2]
    if not pairable:
        return AlphaResult(math.nan, level, 0, len(raters), "no clip or pair was rated by two raters")
    data = np.full((len(raters), len(pairable)), np.nan)
    col = {r: i for i, r in enumerate(raters)}
    for j, u in enumerate(pairable):
        for r, v in units[u].items():
            data[col[r], j] = v
    if len(np.unique(data[~np.isnan(data)])) < 2:
        return AlphaResult(math.nan, level, len(pairable), len(raters), "every rating has the same value")
    kwargs = {"value_domain": list(value_domain)} if value_domain is not None else {}
    a = float(krippendorff.alpha(reliability_data=data, level_of_measurement=level, **kwargs))
    return AlphaResult(a, level, len(pairable), len(raters))


def _current(ratings: Iterable[RatingRecord], kind: str) -> list:
    kinds = SCORE_TYPES if kind == "mos" else (kind,)  # SMOS and DCR are scored like MOS
    return [r for r in ratings if r.test_type in kinds and r.gold is None]


def _ab_unit(r: RatingRecord) -> tuple:
    """((first, second, sentence), value) with the pair sorted by name; value 0 = first
    preferred, 1 = second, 2 = no preference."""
    a, b = r.conditions
    first, second = sorted((a, b))
    value = 2 if r.choice == "none" else (0 if (a if r.choice == "A" else b) == first else 1)
    return (first, second, r.sentence_id), value


def mos_alpha(ratings: Iterable[RatingRecord]) -> AlphaResult:
    """Ordinal alpha of the MOS (SMOS, DCR) ratings, one unit per (condition, sentence)."""
    units: dict = {}
    for r in _current(ratings, "mos"):
        for c, v in rated_scores(r):
            units.setdefault((c, r.sentence_id), {})[r.rater_id] = float(v)
    return krippendorff_alpha(units, "ordinal", value_domain=[1, 2, 3, 4, 5])


def mushra_alpha(ratings: Iterable[RatingRecord]) -> AlphaResult:
    """Interval alpha of the MUSHRA sliders, one unit per (condition, sentence)."""
    units: dict = {}
    for r in _current(ratings, "mushra"):
        for c, v in rated_scores(r):
            units.setdefault((c, r.sentence_id), {})[r.rater_id] = float(v)
    return krippendorff_alpha(units, "interval")


def hidden_reference_low(ratings: Iterable[RatingRecord], minimum: float = 90.0) -> dict:
    """Per rater: ``(MUSHRA trials, trials whose hidden reference scored below minimum)``."""
    out: dict = {}
    for r in _current(ratings, "mushra"):
        reference = r.conditions[0]  # the open reference; the hidden one is the same condition
        low = any(v < minimum for c, v in rated_scores(r) if c == reference)
        n, k = out.get(r.rater_id, (0, 0))
        out[r.rater_id] = (n + 1, k + int(low))
    return out


def ab_alpha(ratings: Iterable[RatingRecord]) -> AlphaResult:
    """Nominal alpha of the A/B answers, one unit per (pair, sentence)."""
    units: dict = {}
    for r in _current(ratings, "ab"):
        unit, value = _ab_unit(r)
        units.setdefault(unit, {})[r.rater_id] = float(value)
    return krippendorff_alpha(units, "nominal")


def _loo_z(values: dict) -> dict:
    """Each rater's value against the others': (x - mean of others) / std of others."""
    out = {}
    for rid, x in values.items():
        others = np.array([v for k, v in values.items() if k != rid and math.isfinite(v)])
        if not math.isfinite(x) or others.size < 2:
            out[rid] = math.nan
            continue
        sd = float(others.std(ddof=1))
        diff = x - float(others.mean())
        out[rid] = math.nan if sd == 0 and diff == 0 else (math.copysign(math.inf, diff) if sd == 0 else diff / sd)
    return out


def screen_raters(ratings: Sequence[RatingRecord], rules: ScreeningRules = ScreeningRules(),
                  headphones: Optional[dict] = None) -> list[RaterCheck]:
    """One :class:`RaterCheck` per rater (sorted by id); see the module doc.
    ``headphones``: rater id -> headphone check label (:mod:`studio.headphone_check`);
    a rater who failed it is flagged."""
    headphones = headphones or {}
    ratings = list(ratings)
    raters = sorted({r.rater_id for r in ratings})
    gold = {rid: [0, 0] for rid in raters}
    for r in ratings:
        if r.gold is not None:
            gold[r.rater_id][0] += 1
            gold[r.rater_id][1] += int(not gold_passed(r))
    mos, ab = _current(ratings, "mos"), _current(ratings, "ab")
    bias, corr, agree, z = {}, {}, {}, {}
    if mos:
        items: dict = {}
        for r in mos:
            for c, v in rated_scores(r):
                items.setdefault((c, r.sentence_id), {})[r.rater_id] = float(v)
        for rid in raters:
            own, others = [], []
            for scores in items.values():
                if rid in scores and len(scores) > 1:
                    own.append(scores[rid])
                    others.append((sum(scores.values()) - scores[rid]) / (len(scores) - 1))
            own_a, oth_a = np.array(own), np.array(others)
            d = own_a - oth_a
            bias[rid] = float(np.mean(d)) if own else math.nan
            sd = float(d.std(ddof=1)) if d.size >= 3 else math.nan
            z[rid] = (math.nan if not d.size >= 3 or (sd == 0 and bias[rid] == 0)
                      else math.copysign(math.inf, bias[rid]) if sd == 0 else bias[rid] / (sd / math.sqrt(d.size)))
            ok = len(own) >= 3 and own_a.std() > 0 and oth_a.std() > 0
            corr[rid] = float(np.corrcoef(own_a, oth_a)[0, 1]) if ok else math.nan
    if ab:
        units: dict = {}
        for r in ab:
            unit, value = _ab_unit(r)
            units.setdefault(unit, {})[r.rater_id] = value
        for rid in raters:
            hits = []
            for answers in units.values():
                if rid not in answers:
                    continue
                counts = np.bincount([v for k, v in answers.items() if k != rid], minlength=3)
                if counts.sum() and np.sum(counts == counts.max()) == 1:
                    hits.append(answers[rid] == int(np.argmax(counts)))
            agree[rid] = float(np.mean(hits)) if hits else math.nan
        z = _loo_z(agree)
    hidden = hidden_reference_low(ratings, rules.mushra_hidden_ref_min)
    out = []
    for rid in raters:
        n_gold, failed = gold[rid]
        n_mushra, n_low = hidden.get(rid, (0, 0))
        low_share = n_low / n_mushra if n_mushra else math.nan
        reasons = []
        if n_gold and failed / n_gold > rules.max_gold_fail:
            reasons.append(f"failed {failed} of {n_gold} gold trials")
        zr = z.get(rid, math.nan)
        if mos and abs(zr) > rules.max_abs_z and abs(bias[rid]) > rules.min_bias:  # False for NaN
            reasons.append(f"scores {'above' if zr > 0 else 'below'} the other raters (z = {zr:.2f})")
        if mos and math.isfinite(corr.get(rid, math.nan)) and corr[rid] < rules.min_correlation:
            reasons.append(f"scores correlate with the other raters' at r = {corr[rid]:.2f}")
        if ab and not mos and zr < -rules.max_abs_z:
            reasons.append(f"agrees with the other raters' majority less than the others (z = {zr:.2f})")
        if n_mushra and low_share > rules.mushra_max_low_share:
            reasons.append(f"scored the hidden reference below {rules.mushra_hidden_ref_min:g} in {n_low} of "
                           f"{n_mushra} MUSHRA trials")
        if headphones.get(rid) == "failed":
            reasons.append("failed the headphone check")
        n = sum(1 for r in ratings if r.rater_id == rid)
        out.append(RaterCheck(rid, n, n_gold, failed, bias.get(rid, math.nan), zr, corr.get(rid, math.nan),
                              agree.get(rid, math.nan), low_share, tuple(reasons), headphones.get(rid, "")))
    return out
