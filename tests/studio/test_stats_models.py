"""Rankings, model-based MOS intervals, agreement, rater screening and ratings along
training, checked against closed forms and the reference packages on synthetic votes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from studio.agreement import ScreeningRules, ab_alpha, krippendorff_alpha, mos_alpha, screen_raters
from studio.along_training import checkpoint_step, run_folder_of, training_series
from studio.mos_model import clustered_mos, mixed_mos, mos_frame_of
from studio.ranking import bradley_terry
from studio.results import RatingRecord
from studio.stats import mos_summary


def mos_rec(rater, sentence, cond, score, gold=None):
    return RatingRecord(0, "t", "mos", "sess", rater, 0, sentence, "", ("id",), (cond,), False, gold, score, None,
                        None, (1,), (True,), 1.0, "", False)


def ab_rec(rater, sentence, a, b, choice, gold=None):
    return RatingRecord(0, "t", "ab", "sess", rater, 0, sentence, "", ("i", "j"), (a, b), False, gold, None, choice,
                        None, (1, 1), (True, True), 1.0, "", False)


# --------------------------------------------------------------------------- Bradley-Terry


def test_bt_two_conditions_closed_form():
    # two conditions: the ML log-odds is log(wins / losses); a tie counts half a win each side
    votes = [("x", "y", "A")] * 30 + [("y", "x", "A")] * 10 + [("x", "y", "none")] * 20
    half = bradley_terry(votes, n_boot=0, alpha=0.0).by_condition()
    assert half["x"].strength - half["y"].strength == pytest.approx(math.log((30 + 10) / (10 + 10)), abs=1e-6)
    assert half["x"].strength + half["y"].strength == pytest.approx(0.0, abs=1e-12)  # centred
    drop = bradley_terry(votes, n_boot=0, alpha=0.0, ties="drop").by_condition()
    assert drop["x"].strength - drop["y"].strength == pytest.approx(math.log(30 / 10), abs=1e-6)
    assert (half["x"].wins, half["x"].losses, half["x"].ties) == (30, 10, 20)
    assert (half["x"].rank, half["y"].rank) == (1, 2)


def test_bt_recovers_known_strengths_with_covering_intervals():
    truth = {"a": 1.0, "b": 0.4, "c": 0.0, "d": -1.4}
    names = list(truth)
    centre = np.mean(list(truth.values()))
    rng = np.random.default_rng(0)
    votes = []
    for _ in range(6000):
        i, j = rng.choice(4, size=2, replace=False)
        a, b = names[i], names[j]
        p_a = 1.0 / (1.0 + math.exp(truth[b] - truth[a]))
        votes.append((a, b, "A" if rng.random() < p_a else "B"))
    ranking = bradley_terry(votes, n_boot=200, seed=7)
    assert [c.condition for c in ranking.conditions] == ["a", "b", "c", "d"]
    # the reference: choix's penalised ML by scipy.optimize on the raw votes (no regularisation to speak of)
    import choix

    ml = choix.opt_pairwise(4, [(names.index(a), names.index(b)) if ch == "A" else (names.index(b), names.index(a))
                                for a, b, ch in votes], alpha=1e-9)
    ml -= ml.mean()
    for c in ranking.conditions:
        assert c.strength == pytest.approx(ml[names.index(c.condition)], abs=2e-3)
        assert c.strength == pytest.approx(truth[c.condition] - centre, abs=0.1)
        half = (c.ci95_high - c.ci95_low) / 2
        assert 0.03 < half < 0.2  # about 1.96 standard errors of ~1000 votes per pair
        assert abs(c.strength - (truth[c.condition] - centre)) < 1.5 * half
        assert c.rank_low == c.rank_high == c.rank  # well separated: the rank is certain
    again = bradley_terry(votes, n_boot=200, seed=7)
    assert again == ranking  # the recorded seed reproduces the intervals
    assert bradley_terry(votes, n_boot=200, seed=8).conditions[0].ci95_low != ranking.conditions[0].ci95_low


def test_bt_never_winning_condition_stays_finite_and_bad_input():
    ranking = bradley_terry([("x", "y", "A")] * 5 + [("y", "z", "A")] * 5, n_boot=50, seed=0)
    assert all(math.isfinite(c.strength) and math.isfinite(c.ci95_low) for c in ranking.conditions)
    assert [c.condition for c in ranking.conditions] == ["x", "y", "z"]
    with pytest.raises(ValueError, match="unknown tie rule 'split'; valid: half, drop"):
        bradley_terry([("x", "y", "A")], ties="split")
    with pytest.raises(ValueError, match="unknown choice 'a'"):
        bradley_terry([("x", "y", "a")])
    with pytest.raises(ValueError, match="no votes"):
        bradley_terry([("x", "y", "none")], ties="drop")


# --------------------------------------------------------------------------- MOS intervals


def balanced_mos(rater_sd, sentence_sd=0.3, noise_sd=0.5, raters=10, sentences=12, seed=0):
    rng = np.random.default_rng(seed)
    ru, su = rng.normal(0, rater_sd, raters), rng.normal(0, sentence_sd, sentences)
    rows = [(f"r{r}", f"s{s}", c, mu + ru[r] + su[s] + rng.normal(0, noise_sd))
            for r in range(raters) for s in range(sentences) for c, mu in (("a", 3.0), ("b", 3.6))]
    return pd.DataFrame(rows, columns=["rater", "sentence", "condition", "score"])


def test_mixed_model_is_wider_than_t_when_raters_differ_and_matches_the_balanced_closed_form():
    frame = balanced_mos(rater_sd=1.0)
    fit = mixed_mos(frame)
    assert fit.converged and fit.note == "" and (fit.n_raters, fit.n_sentences) == (10, 12)
    for row in fit.conditions:
        t = mos_summary(frame.loc[frame["condition"] == row.condition, "score"])
        # balanced design: the condition's fixed effect is its plain mean ...
        assert row.mean == pytest.approx(t.mean, abs=1e-6)
        # ... with se^2 = var_rater / R + var_sentence / S + var_residual / (R S)
        se = math.sqrt(fit.var_rater / 10 + fit.var_sentence / 12 + fit.var_residual / 120)
        assert row.se == pytest.approx(se, rel=1e-4)
        assert row.ci95_high - row.ci95_low == pytest.approx(2 * 1.959964 * se, rel=1e-4)
        assert row.ci95_high - row.ci95_low > 2.5 * (t.ci95_high - t.ci95_low)
    assert 0.3 < fit.var_rater < 3.0 and 0.15 < fit.var_residual < 0.4
    # without rater or sentence effects the model's interval is about the t-interval
    plain = balanced_mos(rater_sd=0.0, sentence_sd=0.0, seed=3)
    row = mixed_mos(plain).by_condition()["a"]
    t = mos_summary(plain.loc[plain["condition"] == "a", "score"])
    assert row.ci95_high - row.ci95_low == pytest.approx(t.ci95_high - t.ci95_low, rel=0.15)


def test_clustered_se_closed_form():
    frame = balanced_mos(rater_sd=1.0, seed=2)
    fit = clustered_mos(frame)
    n, g, k = len(frame), 10, 2
    for row in fit.conditions:
        sub = frame[frame["condition"] == row.condition]
        resid = sub["score"] - sub["score"].mean()
        sums = resid.groupby(sub["rater"]).sum()
        # CR1: G/(G-1) * (N-1)/(N-K) * sum_g (sum of residuals)^2 / n_c^2
        se = math.sqrt(g / (g - 1) * (n - 1) / (n - k) * float((sums ** 2).sum()) / len(sub) ** 2)
        assert row.mean == pytest.approx(sub["score"].mean())
        assert row.se == pytest.approx(se, rel=1e-9)
        from scipy import stats as sps

        assert row.ci95_high - row.mean == pytest.approx(sps.t.ppf(0.975, g - 1) * se, rel=1e-9)


def test_model_needs_two_raters():
    frame = mos_frame_of([mos_rec("r1", "s1", "a", 4), mos_rec("r1", "s2", "a", 3), mos_rec("r1", "s1", "b", 2),
                          mos_rec("r1", "s1", "a", 1, gold="score<=2")])
    assert len(frame) == 3  # the gold trial is left out
    for fit in (mixed_mos(frame), clustered_mos(frame)):
        assert "at least two raters" in fit.note and math.isnan(fit.conditions[0].se)
        assert fit.by_condition()["a"].mean == 3.5


# --------------------------------------------------------------------------- agreement


def test_alpha_perfect_agreement_is_one():
    recs = [mos_rec(r, s, c, score) for r in ("r1", "r2", "r3")
            for s, c, score in (("s1", "a", 5), ("s2", "a", 4), ("s1", "b", 2), ("s2", "b", 1))]
    assert mos_alpha(recs).alpha == pytest.approx(1.0)
    ab = [ab_rec(r, s, "x", "y", ch) for r in ("r1", "r2") for s, ch in (("s1", "A"), ("s2", "B"), ("s3", "none"))]
    ab += [ab_rec("r3", "s1", "y", "x", "B")]  # the same preference, sides swapped
    res = ab_alpha(ab)
    assert (res.alpha, res.level, res.n_units, res.n_raters) == (pytest.approx(1.0), "nominal", 3, 3)


def test_alpha_hand_example_and_reference_package():
    import krippendorff

    # two raters, four units: (1,1) (1,2) (2,2) (2,2).  Coincidences: o11 = 2, o12 = o21 = 1, o22 = 4;
    # n1 = 3, n2 = 5, n = 8.  Nominal: D_o = 2/8, D_e = 2 * 3 * 5 / (8 * 7) = 30/56, alpha = 1 - 14/30 = 16/30
    units = {1: {"p": 1, "q": 1}, 2: {"p": 1, "q": 2}, 3: {"p": 2, "q": 2}, 4: {"p": 2, "q": 2}, 5: {"p": 1}}
    res = krippendorff_alpha(units, "nominal")
    assert res.alpha == pytest.approx(16 / 30, abs=1e-12)
    assert res.n_units == 4  # unit 5 has a single rating
    ref = krippendorff.alpha(reliability_data=[[1, 1, 2, 2], [1, 2, 2, 2]], level_of_measurement="nominal")
    assert res.alpha == pytest.approx(ref, abs=1e-12)
    # MOS ordinal: the same as the package on the raters x units matrix
    recs = [mos_rec("r1", "s1", "a", 5), mos_rec("r2", "s1", "a", 4), mos_rec("r3", "s1", "a", 4),
            mos_rec("r1", "s2", "a", 2), mos_rec("r2", "s2", "a", 1),
            mos_rec("r1", "s1", "b", 3), mos_rec("r3", "s1", "b", 3), mos_rec("r2", "s2", "b", 5)]
    nan = np.nan
    data = [[5, 2, 3, nan], [4, 1, nan, 5], [4, nan, 3, nan]]  # units (a,s1) (a,s2) (b,s1) (b,s2)
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal", value_domain=[1, 2, 3, 4, 5])
    assert mos_alpha(recs).alpha == pytest.approx(expected, abs=1e-12)
    assert math.isnan(mos_alpha([mos_rec("r1", "s1", "a", 3)]).alpha)


# --------------------------------------------------------------------------- screening


def simulated_mos(random_rater=True, seed=0):
    rng = np.random.default_rng(seed)
    truth = {"low": 1.8, "mid": 3.2, "high": 4.4}
    recs = []
    for k in range(8):
        for s in range(10):
            for c, mu in truth.items():
                recs.append(mos_rec(f"good{k}", f"s{s}", c, int(np.clip(round(mu + rng.normal(0, 0.5)), 1, 5))))
            recs.append(mos_rec(f"good{k}", f"s{s}", "anchor:low", 1, gold="score<=2"))
    if random_rater:
        for s in range(10):
            for c in truth:
                recs.append(mos_rec("random", f"s{s}", c, int(rng.integers(1, 6))))
            recs.append(mos_rec("random", f"s{s}", "anchor:low", int(rng.integers(1, 6)), gold="score<=2"))
    return recs


def test_screening_flags_a_random_rater_only():
    checks = {c.rater_id: c for c in screen_raters(simulated_mos())}
    assert checks["random"].flagged
    assert abs(checks["random"].correlation) < 0.5
    assert any("correlate" in why for why in checks["random"].reasons)  # flagged by its answers, not only gold
    assert not any(c.flagged for rid, c in checks.items() if rid != "random")
    assert all(c.correlation > 0.8 for rid, c in checks.items() if rid != "random")
    assert checks["good0"].n_gold == 10 and checks["good0"].n_gold_failed == 0


def test_screening_gold_failures_and_bias_z():
    recs = simulated_mos(random_rater=False)
    # a rater who scores everything two points higher (capped at 5) than good0, and fails every gold trial
    recs += [mos_rec("lenient", r.sentence_id, r.conditions[0], min(5, r.score + 2), gold=r.gold)
             for r in recs if r.rater_id == "good0"]
    recs += [mos_rec("careless", f"s{s}", "anchor:low", 5, gold="score<=2") for s in range(4)]
    checks = {c.rater_id: c for c in screen_raters(recs)}
    assert checks["lenient"].z > 2.5 and checks["lenient"].bias > 1.0
    assert any("above the other raters" in why for why in checks["lenient"].reasons)
    assert checks["careless"].reasons == ("failed 4 of 4 gold trials",)
    assert not checks["good1"].flagged
    loose = {c.rater_id: c for c in screen_raters(recs, ScreeningRules(min_bias=3.0, max_gold_fail=1.0))}
    assert not loose["lenient"].flagged and not loose["careless"].flagged


def test_screening_ab_agreement():
    rng = np.random.default_rng(0)
    recs = []
    for k in range(6):
        for s in range(20):
            recs.append(ab_rec(f"g{k}", f"s{s}", "x", "y", "A" if rng.random() < 0.9 else "B"))
    for s in range(20):
        recs.append(ab_rec("random", f"s{s}", "x", "y", ["A", "B", "none"][int(rng.integers(0, 3))]))
    checks = {c.rater_id: c for c in screen_raters(recs)}
    assert checks["random"].flagged
    assert checks["random"].agreement < min(c.agreement for rid, c in checks.items() if rid != "random")
    assert not any(c.flagged for rid, c in checks.items() if rid != "random")


# --------------------------------------------------------------------------- along training


def test_training_series_for_checkpoints_of_one_run(tmp_path):
    run = tmp_path / "run" / "checkpoints"
    design = {"test_type": "mos", "conditions": [
        {"label": "late", "checkpoint": str(run / "step_00000300.pt"), "settings": {"steps": 8}},
        {"label": "early", "checkpoint": str(run / "step_00000100.pt"), "settings": {"steps": 8}},
        {"label": "wavs", "folder": str(tmp_path / "w"), "settings": {}}]}
    recs = [mos_rec("r1", "s1", "early", 2), mos_rec("r2", "s1", "early", 3),
            mos_rec("r1", "s1", "late", 4), mos_rec("r2", "s1", "late", 5), mos_rec("r1", "s2", "wavs", 5)]
    series = training_series(design, recs)
    assert series.run_folder == str((tmp_path / "run").resolve()) and series.note == ""
    assert [(p.step, p.condition, p.n, p.mos) for p in series.points] == [(100, "early", 2, 2.5), (300, "late", 2, 4.5)]
    assert series.points[0].mos_ci95_low == pytest.approx(mos_summary([2, 3]).ci95_low)
    assert checkpoint_step("/x/step_00001234.pt") == 1234
    assert run_folder_of(str(run / "a.pt")) == (tmp_path / "run").resolve()
    # one checkpoint per run, or the same step: no series
    design["conditions"][0]["checkpoint"] = str(tmp_path / "other" / "step_00000300.pt")
    assert training_series(design, recs) is None


def test_training_series_ab_uses_the_ranking(tmp_path):
    run = tmp_path / "r" / "checkpoints"
    design = {"test_type": "ab", "conditions": [
        {"label": "s100", "checkpoint": str(run / "step_00000100.pt"), "settings": {"steps": 8}},
        {"label": "s200", "checkpoint": str(run / "step_00000200.pt"), "settings": {"steps": 16}}]}
    recs = [ab_rec("r1", "s1", "s100", "s200", "B"), ab_rec("r2", "s1", "s200", "s100", "A"),
            ab_rec("r3", "s1", "s100", "s200", "none"), ab_rec("r3", "s2", "s100", "s200", "A")]
    ranking = bradley_terry([(r.conditions[0], r.conditions[1], r.choice) for r in recs], n_boot=20)
    series = training_series(design, recs, ranking)
    assert "differ in sampler settings" in series.note
    first, second = series.points
    assert (first.step, first.win_rate, second.win_rate) == (100, pytest.approx(1.5 / 4), pytest.approx(2.5 / 4))
    assert second.strength == ranking.by_condition()["s200"].strength > first.strength


# --------------------------------------------------------------------------- the report and its export


def store_with_ratings(folder, test_type, answers):
    """A store with conditions x, y (+ anchor:x), sentences s0..s3; ``answers[rater]``
    lists (trial, answer) with trials built by the caller's keys."""
    from studio.results import ResultsStore, Trial

    store = ResultsStore(folder)
    tid = store.create_test(test_type, test_id="t")
    ids = {}
    for label in ("x", "y", "anchor:x"):
        cid = store.add_condition(tid, label, "anchor" if ":" in label else "checkpoint")
        for s in range(4):
            ids[label, f"s{s}"] = store.add_stimulus(tid, cid, f"s{s}", "text", folder / f"{label}{s}.wav")
    for rater, items in answers.items():
        order = []
        for key, _ in items:
            if test_type == "mos":
                label, sid, gold = key
                order.append(Trial("mos", sid, "text", (ids[label, sid],), gold=gold))
            else:
                a, b, sid = key
                order.append(Trial("ab", sid, "text", (ids[a, sid], ids[b, sid]), swapped=a == "y"))
        session = store.start_or_resume_session(tid, rater, make_order=lambda s, i, order=order: order)
        n = 1 if test_type == "mos" else 2
        for i, (_, answer) in enumerate(items):
            store.record_rating(session.session_id, i, play_counts=[1] * n, listened_to_end=[True] * n,
                                response_time_s=1.0, **answer)
    return store, tid


def test_statistics_record_and_export(tmp_path):
    import csv
    import json

    from studio.stats_report import STATS_CSV_COLUMNS, export_statistics, test_statistics

    base = {"x": 4, "y": 2}
    answers = {}
    for k, shift in enumerate((0, 0, 0, -1)):
        items = [((c, f"s{s}", None), {"score": max(1, min(5, base[c] + shift + (s % 2)))})
                 for c in ("x", "y") for s in range(4)]
        gold_score = 5 if k == 3 else 1  # the fourth rater fails the gold trial
        answers[f"r{k}"] = items + [(("anchor:x", "s0", "score<=2"), {"score": gold_score})]
    store, tid = store_with_ratings(tmp_path, "mos", answers)
    stats = test_statistics(store, tid, n_boot=10)
    assert stats["flagged_raters"] == ["r3"]
    everyone, kept = stats["all_raters"], stats["excluding_flagged"]
    assert [m["condition"] for m in everyone["mos"]] == ["x", "y"]
    x = everyone["mos"][0]
    assert (x["n"], everyone["n_ratings"], everyone["n_raters"]) == (16, 32, 4)
    assert x["mean"] == pytest.approx(np.mean([max(1, min(5, 4 + sh + s % 2)) for sh in (0, 0, 0, -1)
                                               for s in range(4)]))
    assert kept["n_raters"] == 3 and kept["mos"][0]["n"] == 12
    assert everyone["agreement"]["level"] == "ordinal"
    assert stats["along_training"] is None and stats["settings"]["bootstrap_resamples"] == 10
    out = tmp_path / "export" / "t.csv"
    out.parent.mkdir()
    j, c = export_statistics(store, tid, out, stats=stats)
    assert (j.name, c.name) == ("t.stats.json", "t.stats.csv")
    assert json.loads(j.read_text())["flagged_raters"] == ["r3"]  # strict JSON: NaN written as null
    rows = list(csv.DictReader(c.open()))
    assert tuple(rows[0]) == STATS_CSV_COLUMNS
    stat_names = {r["statistic"] for r in rows}
    assert {"mos_t", "mos_mixed", "mos_cluster", "krippendorff_alpha", "rater_flagged", "rater_z"} <= stat_names
    assert {r["subset"] for r in rows if r["statistic"] == "mos_mixed"} == {"all_raters", "excluding_flagged"}
    flagged = [r for r in rows if r["statistic"] == "rater_flagged" and r["value"] == "1"]
    assert [r["rater_id"] for r in flagged] == ["r3"] and "gold" in flagged[0]["note"]


def test_statistics_of_an_ab_test(tmp_path):
    from studio.stats_report import statistics_rows, test_statistics

    answers = {f"r{k}": [(("x", "y", f"s{s}") if s % 2 else ("y", "x", f"s{s}"),
                          {"choice": ("A" if s % 2 else "B") if (k + s) % 4 else "none"}) for s in range(4)]
               for k in range(3)}
    store, tid = store_with_ratings(tmp_path, "ab", answers)
    stats = test_statistics(store, tid, n_boot=20, seed=3)
    bt = stats["all_raters"]["bradley_terry"]
    assert (bt["seed"], bt["n_boot"], bt["ties"], bt["n_votes"]) == (3, 20, "half", 12)
    assert [c["condition"] for c in bt["conditions"]] == ["x", "y"]  # x always preferred unless a tie
    assert stats["all_raters"]["agreement"]["level"] == "nominal"
    assert {r["statistic"] for r in statistics_rows(stats)} >= {"bt_strength", "bt_rank", "krippendorff_alpha"}
