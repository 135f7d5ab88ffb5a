"""All statistics of one test in one record, for the Results page and the export.

:func:`test_statistics` computes, from the current ratings of a test (gold trials left
out of every estimate, used only for screening):

* ``raters``: the screening of :mod:`studio.agreement` (gold failures, z, correlation
  or agreement, flags);
* for ``all_raters`` and, when a rater is flagged, again for ``excluding_flagged``:
  MOS per condition with the Student-t interval (:mod:`studio.stats`), the mixed-model
  and rater-clustered intervals (:mod:`studio.mos_model`), the Bradley-Terry ranking of
  A/B tests (:mod:`studio.ranking`) and Krippendorff's alpha;
* MUSHRA, SMOS and DCR are estimated like MOS (per condition; MUSHRA's hidden reference
  and anchors are conditions too; alpha interval for MUSHRA's 0..100); ABX: the share
  found per pair with a binomial test (:mod:`studio.type_stats`); intelligibility: human
  WER per condition beside the ASR WER of the same condition's clips when the Results
  page has transcribed them;
* ``along_training``: MOS / preference per training step when the conditions are
  checkpoints of one run (:mod:`studio.along_training`);
* ``settings``: the bootstrap seed and count, tie rule, screening thresholds, and the
  versions of the packages that computed it.

:func:`export_statistics` writes it beside a CSV export ``x.csv`` as ``x.stats.json``
(that record) and ``x.stats.csv`` (long format, :data:`STATS_CSV_COLUMNS`, documented in
:data:`STATS_CSV_COLUMN_DOCS`, one number per row).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Optional, Sequence, Union

from studio.agreement import ScreeningRules, ab_alpha, mos_alpha, mushra_alpha, screen_raters
from studio.along_training import training_series
from studio.mos_model import clustered_mos, mixed_mos, mos_frame_of
from studio.ranking import BT_ALPHA, N_BOOT, ab_votes, bradley_terry
from studio.results import RatingRecord, ResultsStore
from studio.stats import mos_summary
from studio.type_stats import abx_table, cached_asr_transcripts, intelligibility_table

__all__ = ["test_statistics", "export_statistics", "statistics_rows", "STATS_CSV_COLUMNS", "STATS_CSV_COLUMN_DOCS"]

STATS_CSV_COLUMN_DOCS = {
    "subset": "all_raters, or excluding_flagged (the same statistic without the raters screening flagged); "
              "empty for per-rater and along-training rows",
    "statistic": "mos_t (Student-t interval; the mean score for MOS, SMOS, DCR and MUSHRA alike), mos_mixed (mixed model: crossed rater and sentence intercepts), "
                 "mos_cluster (rater-clustered CR1), bt_strength (Bradley-Terry log-strength, centred; bootstrap "
                 "interval), bt_rank (1 = best; bootstrap interval), krippendorff_alpha, rater_bias, rater_z, "
                 "rater_correlation, rater_agreement, rater_gold_failed, rater_hidden_ref_low (MUSHRA: share of trials with the hidden reference below 90), "
                 "rater_flagged (1 or 0), abx_correct (share of ABX trials where X was found; p-value in note), "
                 "human_wer, asr_wer (intelligibility), step_mos, "
                 "step_strength, step_win_rate",
    "condition": "the condition, where the statistic is per condition",
    "rater_id": "the rater, for rater_* rows",
    "step": "the training step, for step_* rows",
    "value": "the estimate", "ci95_low": "lower end of its 95 % interval (empty when none)",
    "ci95_high": "upper end of its 95 % interval (empty when none)",
    "n": "ratings behind the number", "note": "why a number is missing or approximate",
}
STATS_CSV_COLUMNS = tuple(STATS_CSV_COLUMN_DOCS)


def _clean(obj):
    """JSON-safe: NaN and infinities become None, tuples lists."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _versions() -> dict:
    out = {}
    for name in ("choix", "krippendorff", "statsmodels", "numpy", "scipy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _estimates(ratings: Sequence[RatingRecord], test_type: str, conditions: Sequence[str], *, n_boot: int,
               seed: int, ties: str, asr: Optional[dict] = None, stimuli: Sequence = ()) -> dict:
    out: dict = {"n_ratings": sum(1 for r in ratings if r.gold is None),
                 "n_raters": len({r.rater_id for r in ratings if r.gold is None})}
    if test_type == "abx":
        out["abx"] = [asdict(row) for row in abx_table(ratings, conditions)]
        return out
    if test_type == "intelligibility":
        out["intelligibility"] = [asdict(row) for row in intelligibility_table(ratings, conditions, asr, stimuli)]
        return out
    if test_type in ("mos", "smos", "dcr", "mushra"):
        frame = mos_frame_of(ratings)
        if frame.empty:
            return out
        rows = []
        mixed, cluster = mixed_mos(frame), clustered_mos(frame)
        m, cl = mixed.by_condition(), cluster.by_condition()
        for c in [c for c in conditions if c in set(frame["condition"])]:
            t = mos_summary(frame.loc[frame["condition"] == c, "score"])
            rows.append({"condition": c, "n": t.n, "mean": t.mean, "std": t.std, "t_ci95_low": t.ci95_low,
                         "t_ci95_high": t.ci95_high, "mixed_mean": m[c].mean, "mixed_se": m[c].se,
                         "mixed_ci95_low": m[c].ci95_low, "mixed_ci95_high": m[c].ci95_high,
                         "cluster_se": cl[c].se, "cluster_ci95_low": cl[c].ci95_low,
                         "cluster_ci95_high": cl[c].ci95_high})
        out["mos"] = rows
        out["mixed_model"] = {"var_rater": mixed.var_rater, "var_sentence": mixed.var_sentence,
                              "var_residual": mixed.var_residual, "converged": mixed.converged, "note": mixed.note}
        out["cluster_note"] = cluster.note
        out["agreement"] = asdict(mushra_alpha(ratings) if test_type == "mushra" else mos_alpha(ratings))
    else:
        votes = ab_votes(ratings)
        if not votes:
            return out
        used = [c for c in conditions if any(c in v[:2] for v in votes)]
        try:
            ranking = bradley_terry(votes, conditions=used, ties=ties, n_boot=n_boot, seed=seed)
            out["bradley_terry"] = {"ties": ranking.ties, "n_votes": ranking.n_votes, "n_boot": ranking.n_boot,
                                    "seed": ranking.seed, "alpha": ranking.alpha,
                                    "conditions": [asdict(c) for c in ranking.conditions]}
            out["_ranking"] = ranking
        except ValueError as exc:
            out["bradley_terry"] = {"note": str(exc)}
        out["agreement"] = asdict(ab_alpha(ratings))
    return out


def test_statistics(store: ResultsStore, test_id: str, *, n_boot: int = N_BOOT, seed: int = 0, ties: str = "half",
                    rules: ScreeningRules = ScreeningRules()) -> dict:
    """Every statistic of a test as one JSON-safe dict (module doc)."""
    test = store.test(test_id)
    ratings = store.ratings(test_id)
    conditions = [c.label for c in store.conditions(test_id)]
    headphones = ({s.rater_id: store.headphone_label(s.session_id) for s in store.sessions(test_id)}
                  if test.design.get("headphone_check") else None)
    checks = screen_raters(ratings, rules, headphones)
    extra = {}
    if test.test_type == "intelligibility":
        extra = {"asr": cached_asr_transcripts(store, test_id), "stimuli": store.stimuli(test_id)}
    flagged = [c.rater_id for c in checks if c.flagged]
    result: dict = {
        "test_id": test_id, "test_type": test.test_type, "name": test.name,
        "settings": {"bootstrap_seed": seed, "bootstrap_resamples": n_boot, "bt_ties": ties, "bt_alpha": BT_ALPHA,
                     "screening": asdict(rules), "gold_trials": "left out of every estimate; used for screening"},
        "packages": _versions(),
        "raters": [dict(asdict(c), flagged=c.flagged) for c in checks], "flagged_raters": flagged,
    }
    everyone = _estimates(ratings, test.test_type, conditions, n_boot=n_boot, seed=seed, ties=ties, **extra)
    ranking = everyone.pop("_ranking", None)
    result["all_raters"] = everyone
    if flagged:
        kept = [r for r in ratings if r.rater_id not in set(flagged)]
        rest = _estimates(kept, test.test_type, conditions, n_boot=n_boot, seed=seed, ties=ties, **extra)
        rest.pop("_ranking", None)
        result["excluding_flagged"] = rest
    else:
        result["excluding_flagged"] = None
    series = training_series(test.design, ratings, ranking)
    result["along_training"] = None if series is None else {
        "run_folder": series.run_folder, "note": series.note, "points": [asdict(p) for p in series.points]}
    return _clean(result)


test_statistics.__test__ = False  # not a pytest test


def statistics_rows(stats: dict) -> list[dict]:
    """The long-format rows of :data:`STATS_CSV_COLUMNS` for a :func:`test_statistics` record."""
    rows: list[dict] = []

    def add(**kw):
        row = dict.fromkeys(STATS_CSV_COLUMNS, "")
        row.update({k: ("" if v is None else v) for k, v in kw.items()})
        rows.append(row)

    for subset in ("all_raters", "excluding_flagged"):
        est = stats.get(subset)
        if not est:
            continue
        for m in est.get("mos", []):
            c, n = m["condition"], m["n"]
            add(subset=subset, statistic="mos_t", condition=c, value=m["mean"], ci95_low=m["t_ci95_low"],
                ci95_high=m["t_ci95_high"], n=n)
            add(subset=subset, statistic="mos_mixed", condition=c, value=m["mixed_mean"],
                ci95_low=m["mixed_ci95_low"], ci95_high=m["mixed_ci95_high"], n=n, note=est["mixed_model"]["note"])
            add(subset=subset, statistic="mos_cluster", condition=c, value=m["mean"], ci95_low=m["cluster_ci95_low"],
                ci95_high=m["cluster_ci95_high"], n=n, note=est.get("cluster_note", ""))
        bt = est.get("bradley_terry") or {}
        for c in bt.get("conditions", []):
            n = c["wins"] + c["losses"] + c["ties"]
            add(subset=subset, statistic="bt_strength", condition=c["condition"], value=c["strength"],
                ci95_low=c["ci95_low"], ci95_high=c["ci95_high"], n=n, note=f"ties: {bt['ties']}")
            add(subset=subset, statistic="bt_rank", condition=c["condition"], value=c["rank"], ci95_low=c["rank_low"],
                ci95_high=c["rank_high"], n=n)
        for a in est.get("abx", []):
            add(subset=subset, statistic="abx_correct", condition=f"{a['first']} vs {a['second']}", value=a["share"],
                ci95_low=a["ci95_low"], ci95_high=a["ci95_high"], n=a["n"],
                note=f"one-sided binomial p = {a['p_value']:.4g}")
        for w in est.get("intelligibility", []):
            add(subset=subset, statistic="human_wer", condition=w["condition"], value=w["human_wer"], n=w["n"])
            add(subset=subset, statistic="asr_wer", condition=w["condition"], value=w["asr_wer"], n=w["asr_clips"],
                note="" if w["asr_clips"] else "no automatic transcripts yet (Results page: objective scores)")
        if "agreement" in est:
            a = est["agreement"]
            add(subset=subset, statistic="krippendorff_alpha", value=a["alpha"], n=a["n_units"],
                note=f"{a['level']}{'; ' + a['note'] if a['note'] else ''}")
    for r in stats.get("raters", []):
        for key in ("bias", "z", "correlation", "agreement"):
            if r[key] is not None:
                add(statistic=f"rater_{key}", rater_id=r["rater_id"], value=r[key], n=r["n_ratings"])
        add(statistic="rater_gold_failed", rater_id=r["rater_id"], value=r["n_gold_failed"], n=r["n_gold"])
        if r.get("hidden_ref_low") is not None:
            add(statistic="rater_hidden_ref_low", rater_id=r["rater_id"], value=r["hidden_ref_low"],
                n=r["n_ratings"])
        add(statistic="rater_flagged", rater_id=r["rater_id"], value=int(r["flagged"]), n=r["n_ratings"],
            note="; ".join(r["reasons"]))
    series = stats.get("along_training")
    for p in (series or {}).get("points", []):
        if stats["test_type"] == "mos":
            add(statistic="step_mos", condition=p["condition"], step=p["step"], value=p["mos"],
                ci95_low=p["mos_ci95_low"], ci95_high=p["mos_ci95_high"], n=p["n"])
        else:
            add(statistic="step_strength", condition=p["condition"], step=p["step"], value=p["strength"],
                ci95_low=p["strength_ci95_low"], ci95_high=p["strength_ci95_high"], n=p["n"])
            add(statistic="step_win_rate", condition=p["condition"], step=p["step"], value=p["win_rate"], n=p["n"])
    return rows


def statistics_csv(stats: dict) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=STATS_CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(statistics_rows(stats))
    return buf.getvalue()


def statistics_json(stats: dict) -> str:
    return json.dumps(stats, indent=1, allow_nan=False) + "\n"


def export_statistics(store: ResultsStore, test_id: str, csv_path: Union[str, Path], *,
                      stats: Optional[dict] = None, **options) -> tuple[Path, Path]:
    """Write ``<stem>.stats.json`` and ``<stem>.stats.csv`` beside ``csv_path``
    (atomically); returns their paths.  ``options`` go to :func:`test_statistics`."""
    from studio.results import _atomic_text

    stats = stats if stats is not None else test_statistics(store, test_id, **options)
    csv_path = Path(csv_path)
    j = csv_path.with_name(f"{csv_path.stem}.stats.json")
    c = csv_path.with_name(f"{csv_path.stem}.stats.csv")
    _atomic_text(j, statistics_json(stats))
    _atomic_text(c, statistics_csv(stats))
    return j, c
