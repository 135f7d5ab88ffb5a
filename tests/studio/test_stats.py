"""Listening-test statistics against values worked out by hand, and tables from a store."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from studio.results import ResultsStore, Trial
from studio.stats import ab_summary, ab_table, cmos_summary, gold_table, mos_summary, mos_table, rating_counts


def test_mos_summary_by_hand():
    # scores 1..5: mean 3, s^2 = (4+1+0+1+4)/4 = 2.5, s = 1.5811388; t_{0.975,4} = 2.776445 (t table);
    # half width = 2.776445 * 1.5811388 / sqrt(5) = 2.776445 * 0.7071068 = 1.963243
    s = mos_summary([1, 2, 3, 4, 5])
    assert (s.n, s.mean) == (5, 3.0)
    assert s.std == pytest.approx(1.5811388, abs=1e-7)
    assert (s.ci95_low, s.ci95_high) == (pytest.approx(1.036757, abs=1e-6), pytest.approx(4.963243, abs=1e-6))
    # all equal: no spread, zero-width interval
    flat = mos_summary([4, 4, 4])
    assert (flat.mean, flat.std, flat.ci95_low, flat.ci95_high) == (4.0, 0.0, 4.0, 4.0)
    one = mos_summary([2])
    assert one.mean == 2.0 and math.isnan(one.std) and math.isnan(one.ci95_low)
    with pytest.raises(ValueError, match="at least one"):
        mos_summary([])


def test_cmos_summary_by_hand():
    # -1, 0, 2, 3: mean 1, deviations -2 -1 1 2, s^2 = 10/3, s = 1.8257419; t_{0.975,3} = 3.182446 (t table);
    # half width = 3.182446 * 1.8257419 / 2 = 2.905163
    s = cmos_summary([-1, 0, 2, 3])
    assert (s.n, s.mean) == (4, 1.0)
    assert s.std == pytest.approx(1.8257419, abs=1e-7)
    assert (s.ci95_low, s.ci95_high) == (pytest.approx(-1.905163, abs=1e-6), pytest.approx(3.905163, abs=1e-6))


def test_ab_summary_by_hand():
    # 7 A, 3 B (2 none left out of the test): p = 2 * P(X <= 3 | n=10, 1/2) = 2 * (1 + 10 + 45 + 120) / 1024
    s = ab_summary(["A"] * 7 + ["B"] * 3 + ["none"] * 2)
    assert (s.n_a, s.n_b, s.n_none) == (7, 3, 2)
    assert (s.share_a, s.share_b) == (pytest.approx(7 / 12), pytest.approx(3 / 12))
    assert s.p_value == pytest.approx(352 / 1024, rel=1e-12)
    # 1 A, 9 B: p = 2 * (1 + 10) / 1024
    assert ab_summary(["A"] + ["B"] * 9).p_value == pytest.approx(22 / 1024, rel=1e-12)
    # balanced: p = 1
    assert ab_summary(["A", "B"] * 3).p_value == pytest.approx(1.0)
    assert math.isnan(ab_summary(["none", "none"]).p_value)
    with pytest.raises(ValueError, match="unknown choice 'a'; valid: A, B, none"):
        ab_summary(["a"])


def _store(folder: Path, test_type: str):
    store = ResultsStore(folder)
    tid = store.create_test(test_type, test_id="t")
    ids = {}
    for label in ("x", "y", "anchor:x"):
        cid = store.add_condition(tid, label, "anchor" if ":" in label else "checkpoint")
        ids[label] = store.add_stimulus(tid, cid, "s1", "hello", folder / f"{label}.wav")
    return store, tid, ids


def _answer(store, sid, i, n_clips, **answer):
    store.record_rating(sid, i, play_counts=[1] * n_clips, listened_to_end=[True] * n_clips, response_time_s=1.0,
                        **answer)


def test_mos_table_and_gold(tmp_path):
    store, tid, ids = _store(tmp_path, "mos")
    order = [Trial("mos", "s1", "hello", (ids["y"],)), Trial("mos", "s1", "hello", (ids["x"],)),
             Trial("mos", "s1", "hello", (ids["anchor:x"],), gold="score<=2")]
    scores = {"r1": (2, 5, 1), "r2": (3, 4, 4)}
    for rater, answers in scores.items():
        sid = store.start_or_resume_session(tid, rater, make_order=lambda s, i: order).session_id
        for i, score in enumerate(answers):
            _answer(store, sid, i, 1, score=score)
    table = mos_table(store, tid)
    assert [(row.condition, row.summary.mean, row.summary.n, row.n_raters) for row in table] == [
        ("x", 4.5, 2, 2), ("y", 2.5, 2, 2)]  # x: (5+4)/2, y: (2+3)/2; anchor left out
    assert [row.condition for row in mos_table(store, tid, include_gold=True)] == ["x", "y", "anchor:x"]
    assert [(g.rater_id, g.n_gold, g.n_passed) for g in gold_table(store, tid)] == [("r1", 1, 1), ("r2", 1, 0)]
    counts = rating_counts(store, tid)
    assert (counts.n_raters, counts.n_ratings, counts.n_sessions_done) == (2, 6, 2)


def test_ab_table_orients_swapped_pairs(tmp_path):
    store, tid, ids = _store(tmp_path, "ab")
    plain = Trial("ab", "s1", "hello", (ids["x"], ids["y"]), swapped=False)
    swapped = Trial("ab", "s1", "hello", (ids["y"], ids["x"]), swapped=True)
    gold = Trial("ab", "s1", "hello", (ids["x"], ids["anchor:x"]), gold="choice=A")
    sid = store.start_or_resume_session(tid, "r1", make_order=lambda s, i: [plain, swapped, plain, gold]).session_id
    _answer(store, sid, 0, 2, choice="B", cmos=2)  # prefers y (side B), y better by 2
    _answer(store, sid, 1, 2, choice="A", cmos=-1)  # prefers y (side A), y better by 1
    _answer(store, sid, 2, 2, choice="none")
    _answer(store, sid, 3, 2, choice="A")
    (row,) = ab_table(store, tid)
    assert (row.first, row.second, row.n_raters) == ("x", "y", 1)
    assert (row.summary.n_a, row.summary.n_b, row.summary.n_none) == (0, 2, 1)
    assert row.summary.p_value == pytest.approx(0.5)  # 2 * P(X <= 0 | n=2) = 2 / 4
    assert (row.cmos.n, row.cmos.mean) == (2, 1.5)  # second vs first: +2 and +1
    assert len(ab_table(store, tid, include_gold=True)) == 2
    assert [(g.n_gold, g.n_passed) for g in gold_table(store, tid)] == [(1, 1)]
