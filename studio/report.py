"""A one-page HTML report of a listening test, with the information ITU-T P.800.2
("Mean opinion score interpretation and reporting") asks to accompany MOS values.

P.800.2's point is that a MOS is not an absolute number: it depends on the test that
produced it (the method and scale, the range of conditions in the test, the raters and
their number, how the samples were presented).  So beside the scores the page states:

* the kind of score (P.800.1 terminology, e.g. MOS-LQS for listening-quality MOS) and
  the method and rating scale with its labels;
* the stimuli: conditions, sentences, sample rates, loudness normalisation, durations;
* the listening set-up as far as the studio knows it: what the raters were told
  (instructions), whether headphones were asked for and checked, play-to-end;
* the raters: how many started and finished, votes per condition, the test period,
  the screening rules and who was flagged, and the estimates without them;
* the statistics: mean, standard deviation, Student-t 95 % interval and the
  mixed-effects interval (raters and sentences as random effects), agreement
  (Krippendorff's alpha), or the type's own statistics (Bradley-Terry for A/B, share
  found for ABX, WER for intelligibility);
* a plot of the estimates with their intervals, and, when the conditions are
  checkpoints of one run, the scores along training beside that run's loss curve.

:func:`report_html` returns the page (self-contained: inline SVG, no scripts, no
external files); :func:`write_report` writes it atomically.  Plots are drawn here as
plain SVG so the report needs nothing beyond the studio's own packages.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
from pathlib import Path
from typing import Optional, Sequence, Union

import soundfile as sf

from studio.listening import (DCR_LABELS, MOS_LABELS, SMOS_LABELS, TARGET_LUFS, TestDesign)
from studio.results import ResultsStore

__all__ = ["report_html", "write_report", "SCORE_KINDS", "errorbar_svg", "steps_svg", "training_svg", "training_loss"]

# test type -> (P.800.1-style name of the score, method and recommendation, scale)
SCORE_KINDS = {
    "mos": ("MOS-LQS (listening-quality, subjective)", "Absolute Category Rating, ITU-T P.800 Annex B",
            ", ".join(f"{k} {v}" for k, v in sorted(MOS_LABELS.items()))),
    "dcr": ("DMOS (degradation MOS, subjective)", "Degradation Category Rating, ITU-T P.800 Annex D",
            ", ".join(f"{k} {v}" for k, v in sorted(DCR_LABELS.items()))),
    "smos": ("SMOS (speaker-similarity MOS, subjective)", "similarity rating against a reference clip (ACR style)",
             ", ".join(f"{k} {v}" for k, v in sorted(SMOS_LABELS.items()))),
    "mushra": ("MUSHRA score (not a MOS: 0..100 against an open reference)",
               "ITU-R BS.1534-3 (hidden reference, 3.5 kHz low-pass anchor)", "0 bad .. 100 excellent"),
    "ab": ("preference (paired comparison; not a MOS)", "forced-choice A/B with a no-preference option",
           "A, B, no preference (+ optional CMOS -3..+3)"),
    "abx": ("discrimination share (not a MOS)", "ABX: is X the same as A or B", "A or B"),
    "intelligibility": ("word error rate of typed transcripts (not a MOS)", "transcription, each sentence heard once",
                        "free text"),
}
_CSS = """body{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.note{color:#555;font-size:90%}h2{margin-top:1.6em}"""


def _e(x) -> str:
    return html.escape(str(x))


def _num(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _table(header: Sequence[str], rows: Sequence[Sequence], left: int = 1) -> str:
    head = "".join(f"<th class='l'>{_e(h)}</th>" if i < left else f"<th>{_e(h)}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td class='l'>{_e(_num(v))}</td>" if i < left else f"<td>{_e(_num(v))}</td>"
                                    for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


# --------------------------------------------------------------------------- plots (plain SVG)


def errorbar_svg(labels: Sequence[str], values: Sequence[float], lows: Sequence[float], highs: Sequence[float], *,
                 y_range: tuple, y_label: str, width: int = 640, height: int = 280) -> str:
    """Points with 95 % interval bars, one per label, as an SVG element."""
    left, right, top, bottom = 60, 20, 15, 60
    lo, hi = y_range
    n = max(len(labels), 1)

    def y(v: float) -> float:
        return top + (hi - v) / (hi - lo) * (height - top - bottom)

    def x(i: int) -> float:
        return left + (i + 0.5) * (width - left - right) / n

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-size='11'>",
             f"<text x='12' y='{height / 2}' transform='rotate(-90 12 {height / 2})' text-anchor='middle'>"
             f"{_e(y_label)}</text>"]
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        parts.append(f"<line x1='{left}' x2='{width - right}' y1='{y(v):.1f}' y2='{y(v):.1f}' stroke='#ddd'/>"
                     f"<text x='{left - 6}' y='{y(v) + 4:.1f}' text-anchor='end'>{v:g}</text>")
    for i, (label, v, a, b) in enumerate(zip(labels, values, lows, highs)):
        if any(t is None or not math.isfinite(t) for t in (v,)):
            continue
        if a is not None and b is not None and math.isfinite(a) and math.isfinite(b):
            parts.append(f"<line x1='{x(i):.1f}' x2='{x(i):.1f}' y1='{y(a):.1f}' y2='{y(b):.1f}' stroke='#333'/>")
            for t in (a, b):
                parts.append(f"<line x1='{x(i) - 6:.1f}' x2='{x(i) + 6:.1f}' y1='{y(t):.1f}' y2='{y(t):.1f}' "
                             "stroke='#333'/>")
        parts.append(f"<circle cx='{x(i):.1f}' cy='{y(v):.1f}' r='4' fill='#1f77b4'/>")
        parts.append(f"<text x='{x(i):.1f}' y='{height - bottom + 16}' text-anchor='middle'>{_e(label)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def steps_svg(steps: Sequence[float], values: Sequence[float], lows: Sequence[float], highs: Sequence[float],
              y_label: str, loss: Optional[tuple] = None, *, width: int = 640, height: int = 260) -> str:
    """Scores against training step (with interval bars) and, when ``loss`` = (steps,
    values) is given, the run's training loss on a second axis (grey line, right)."""
    left, right, top, bottom = 60, 60, 15, 40
    xs = list(steps) + (list(loss[0]) if loss else [])
    x0, x1 = min(xs), max(xs)
    x1 = x1 if x1 > x0 else x0 + 1
    finite = [v for v in list(lows) + list(highs) + list(values) if v is not None and math.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    pad = (hi - lo) * 0.1 or 0.5
    lo, hi = lo - pad, hi + pad

    def sx(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * (width - left - right)

    def sy(v: float, a: float = lo, b: float = hi) -> float:
        return top + (b - v) / (b - a) * (height - top - bottom)

    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-size='11'>",
             f"<text x='12' y='{height / 2}' transform='rotate(-90 12 {height / 2})' text-anchor='middle' "
             f"fill='#1f77b4'>{_e(y_label)}</text>",
             f"<text x='{width / 2}' y='{height - 6}' text-anchor='middle'>training step</text>",
             f"<line x1='{left}' x2='{width - right}' y1='{height - bottom}' y2='{height - bottom}' stroke='#999'/>"]
    for k in range(5):
        s = x0 + (x1 - x0) * k / 4
        v = lo + (hi - lo) * k / 4
        parts.append(f"<text x='{sx(s):.1f}' y='{height - bottom + 14}' text-anchor='middle'>{s:.0f}</text>"
                     f"<text x='{left - 6}' y='{sy(v) + 4:.1f}' text-anchor='end' fill='#1f77b4'>{v:.2f}</text>")
    if loss and len(loss[0]) > 1:
        lvals = [v for v in loss[1] if math.isfinite(v)]
        la, lb = min(lvals), max(lvals)
        lb = lb if lb > la else la + 1
        pts = " ".join(f"{sx(s):.1f},{sy(v, la, lb):.1f}" for s, v in zip(*loss) if math.isfinite(v))
        parts.append(f"<polyline points='{pts}' fill='none' stroke='#aaa'/>")
        for k in range(3):
            v = la + (lb - la) * k / 2
            parts.append(f"<text x='{width - right + 6}' y='{sy(v, la, lb) + 4:.1f}' fill='#888'>{v:.3g}</text>")
        parts.append(f"<text x='{width - 12}' y='{height / 2}' transform='rotate(90 {width - 12} {height / 2})' "
                     "text-anchor='middle' fill='#888'>training loss</text>")
    order = sorted(range(len(steps)), key=lambda i: steps[i])
    pts = " ".join(f"{sx(steps[i]):.1f},{sy(values[i]):.1f}" for i in order if math.isfinite(values[i]))
    parts.append(f"<polyline points='{pts}' fill='none' stroke='#1f77b4'/>")
    for s, v, a, b in zip(steps, values, lows, highs):
        if a is not None and b is not None and math.isfinite(a) and math.isfinite(b):
            parts.append(f"<line x1='{sx(s):.1f}' x2='{sx(s):.1f}' y1='{sy(a):.1f}' y2='{sy(b):.1f}' stroke='#1f77b4'/>")
        if math.isfinite(v):
            parts.append(f"<circle cx='{sx(s):.1f}' cy='{sy(v):.1f}' r='4' fill='#1f77b4'/>")
    parts.append("</svg>")
    return "".join(parts)


def training_svg(stats: dict) -> str:
    """The along-training plot of a statistics record (MOS, or Bradley-Terry strength for
    A/B, against step, beside the run's training loss); "" when it has no series."""
    series = stats.get("along_training") or {}
    pts = series.get("points") or []
    if not pts:
        return ""
    key = "strength" if stats.get("test_type") == "ab" else "mos"
    return steps_svg([p["step"] for p in pts], [p[key] for p in pts], [p[f"{key}_ci95_low"] for p in pts],
                     [p[f"{key}_ci95_high"] for p in pts], "MOS" if key == "mos" else "Bradley-Terry strength",
                     training_loss(series["run_folder"]))


def training_loss(run_folder: Union[str, Path]) -> Optional[tuple]:
    """(steps, loss) of a run's ``metrics.jsonl`` training rows; None when absent."""
    path = Path(run_folder) / "metrics.jsonl"
    if not path.is_file():
        return None
    steps, values = [], []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line of a running trainer
        if isinstance(row, dict) and "event" not in row and "step" in row and isinstance(row.get("loss"), (int, float)):
            steps.append(float(row["step"]))
            values.append(float(row["loss"]))
    return (steps, values) if steps else None


# --------------------------------------------------------------------------- the page


def _bandwidth(rate: int) -> str:
    """P.800-style bandwidth class of a sample rate (by its Nyquist frequency: narrowband
    3.4 kHz, wideband 7 kHz, super-wideband 14 kHz, fullband 20 kHz)."""
    nyquist = rate / 2
    name = ("fullband" if nyquist >= 20000 else "super-wideband" if nyquist >= 14000 else "wideband"
            if nyquist >= 7000 else "narrowband")
    return f"{name} (up to {nyquist / 1000:g} kHz)"


def _stimulus_facts(store: ResultsStore, test_id: str) -> dict:
    rates, durations, lufs = set(), [], []
    for s in store.stimuli(test_id):
        try:
            info = sf.info(s.path)
        except (OSError, RuntimeError):
            continue
        rates.add(info.samplerate)
        durations.append(info.frames / info.samplerate)
        if s.loudness_lufs is not None and math.isfinite(s.loudness_lufs):
            lufs.append(s.loudness_lufs)
    return {"rates": sorted(rates), "durations": durations, "lufs": lufs}


def _estimates_html(test_type: str, est: dict) -> str:
    if est.get("mos"):
        rows = [(m["condition"], m["n"], m["mean"], m.get("std"), f"{_num(m['t_ci95_low'])} .. {_num(m['t_ci95_high'])}",
                 f"{_num(m['mixed_ci95_low'])} .. {_num(m['mixed_ci95_high'])}") for m in est["mos"]]
        return _table(["condition", "votes", "mean", "std", "t 95 % interval", "mixed-model 95 % interval"], rows)
    bt = (est.get("bradley_terry") or {}).get("conditions")
    if bt:
        rows = [(c["condition"], c["strength"], f"{_num(c['ci95_low'])} .. {_num(c['ci95_high'])}", c["rank"],
                 c["wins"], c["losses"], c["ties"]) for c in bt]
        return _table(["condition", "Bradley-Terry strength", "bootstrap 95 % interval", "rank", "wins", "losses",
                       "ties"], rows)
    if est.get("abx"):
        rows = [(f"{a['first']} vs {a['second']}", a["n"], a["share"], f"{_num(a['ci95_low'])} .. "
                 f"{_num(a['ci95_high'])}", a["p_value"]) for a in est["abx"]]
        return _table(["pair", "trials", "share found", "95 % interval", "p (binomial)"], rows)
    if est.get("intelligibility"):
        rows = [(w["condition"], w["n"], w["human_wer"], w["asr_wer"]) for w in est["intelligibility"]]
        return _table(["condition", "transcripts", "human WER", "ASR WER"], rows)
    return "<p>No ratings yet.</p>"


def _plot(test_type: str, est: dict) -> str:
    if est.get("mos"):
        m = est["mos"]
        y_range = (0, 100) if test_type == "mushra" else (1, 5)
        return errorbar_svg([r["condition"] for r in m], [r["mean"] for r in m], [r["t_ci95_low"] for r in m],
                            [r["t_ci95_high"] for r in m], y_range=y_range, y_label=f"{test_type.upper()} (95 % t)")
    bt = (est.get("bradley_terry") or {}).get("conditions")
    if bt:
        lows = [c["ci95_low"] for c in bt]
        highs = [c["ci95_high"] for c in bt]
        finite = [v for v in lows + highs if v is not None and math.isfinite(v)] or [-1.0, 1.0]
        return errorbar_svg([c["condition"] for c in bt], [c["strength"] for c in bt], lows, highs,
                            y_range=(min(finite) - 0.2, max(finite) + 0.2), y_label="Bradley-Terry strength")
    return ""


def report_html(store: ResultsStore, test_id: str, stats: Optional[dict] = None, **options) -> str:
    """The report page of a test (module doc); ``stats`` is a
    :func:`studio.stats_report.test_statistics` record (computed with ``options`` when None)."""
    from studio.stats_report import test_statistics

    test = store.test(test_id)
    stats = stats if stats is not None else test_statistics(store, test_id, **options)
    design = TestDesign.from_dict(test.design)
    kind, method, scale = SCORE_KINDS[test.test_type]
    ratings = store.ratings(test_id)
    sessions = store.sessions(test_id)
    finished = sum(1 for s in sessions if len(store.answered(s.session_id)) >= len(s.order))
    stamps = sorted(r.timestamp_utc for r in ratings)
    facts = _stimulus_facts(store, test_id)
    flagged = stats.get("flagged_raters") or []
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>Listening test {_e(test_id)}</title>"
           f"<style>{_CSS}</style></head><body>",
           f"<h1>Listening test report: {_e(test.name or test_id)}</h1>",
           f"<p class='note'>Test id {_e(test_id)}; generated "
           f"{_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by the flowtts studio. "
           "The scores below hold for this test only: a MOS depends on the method, the range of conditions "
           "in the test and the raters (ITU-T P.800.2), so compare conditions within the test, not with MOS "
           "values of other tests.</p>",
           "<h2>What was measured</h2>",
           _table(["item", "value"], [
               ("score", kind), ("method", method), ("rating scale", scale),
               ("conditions", ", ".join(c.label for c in design.conditions)
                + (f" (reference: {design.reference})" if design.reference else "")),
               ("sentences", len(design.sentences)),
               ("gold (attention) trials", f"{len(design.gold)} per rater, left out of every estimate"
                if design.gold else "none"),
               ("items per rater", f"{design.items_per_rater} of {design.n_items}"
                + (" (balanced subsets)" if design.subset_per_rater else "")),
           ], left=2),
           "<h2>Stimuli and listening set-up</h2>",
           _table(["item", "value"], [
               ("sample rate", ", ".join(f"{r} Hz" for r in facts["rates"]) or "-"),
               ("audio bandwidth", ", ".join(_bandwidth(r) for r in facts["rates"]) or "-"),
               ("clip durations", f"{min(facts['durations']):.2f} .. {max(facts['durations']):.2f} s"
                if facts["durations"] else "-"),
               ("loudness", f"normalised to {TARGET_LUFS:g} LUFS (ITU-R BS.1770); measured on the clips "
                            f"{min(facts['lufs']):.1f} .. {max(facts['lufs']):.1f} LUFS" if facts["lufs"]
                else f"normalised to {TARGET_LUFS:g} LUFS (ITU-R BS.1770)"),
               ("presentation", "web page, one trial at a time, blind (opaque clip ids), randomised order per rater "
                                "(recorded seed); every clip must be played to the end before answering"),
               ("listening device", "headphones asked for; antiphase headphone check (Woods et al. 2017)"
                if design.headphone_check else "headphones asked for (not checked)"),
               ("instructions to raters", design.instructions or "the default instructions of the test type"),
               ("consent", "asked" if design.consent else "not asked"),
               ("language", "as the sentences (not recorded separately)"),
           ], left=2),
           "<h2>Raters and votes</h2>",
           _table(["item", "value"], [
               ("raters who started", len(sessions)), ("raters who finished", finished),
               ("raters needed (raters_per_item)", design.raters_needed if design.raters_needed else "not set"),
               ("ratings (current, gold and practice included)", len(ratings)),
               ("test period (UTC)", f"{stamps[0]} .. {stamps[-1]}" if stamps else "-"),
               ("raters flagged by screening", ", ".join(flagged) or "none"),
           ], left=2)]
    screening = stats.get("settings", {}).get("screening", {})
    if screening:
        out.append("<p class='note'>Screening rules: " + _e(", ".join(f"{k} = {v}" for k, v in screening.items()))
                   + ". Flagged raters are kept in the first table and left out of the second.</p>")
    rater_rows = [(r["rater_id"], r["n_ratings"], r["n_gold_failed"], r["z"], r["correlation"],
                   r.get("headphone_check") or "-", "; ".join(r["reasons"]) or "-") for r in stats.get("raters", [])]
    if rater_rows:
        out.append(_table(["rater", "ratings", "gold failed", "z", "correlation", "headphone check", "flagged for"],
                          rater_rows))
    for subset, title in (("all_raters", "Results: all raters"), ("excluding_flagged", "Results without flagged "
                                                                                       "raters")):
        est = stats.get(subset)
        if not est:
            continue
        out.append(f"<h2>{title}</h2>")
        out.append(_estimates_html(test.test_type, est))
        if est.get("mixed_model"):
            mm = est["mixed_model"]
            out.append(f"<p class='note'>Mixed model (score ~ condition, random rater and sentence effects): "
                       f"variance rater {_num(mm['var_rater'])}, sentence {_num(mm['var_sentence'])}, residual "
                       f"{_num(mm['var_residual'])}{'; ' + _e(mm['note']) if mm.get('note') else ''}.</p>")
        if est.get("agreement"):
            a = est["agreement"]
            out.append(f"<p class='note'>Krippendorff's alpha ({_e(a['level'])}): {_num(a['alpha'])} over "
                       f"{a['n_units']} units.</p>")
        if subset == "all_raters":
            out.append(_plot(test.test_type, est))
    series = stats.get("along_training")
    if series and series.get("points"):
        loss = training_loss(series["run_folder"])
        out.append("<h2>Along training</h2>")
        out.append(f"<p class='note'>Run {_e(series['run_folder'])}{'; ' + _e(series['note']) if series['note'] else ''}"
                   f"{'' if loss else '; no metrics.jsonl found for its loss curve'}.</p>")
        out.append(training_svg(stats))
    versions = stats.get("packages") or {}
    out.append("<p class='note'>Computed with " + _e(", ".join(f"{k} {v}" for k, v in versions.items())) + "; "
               f"bootstrap seed {stats.get('settings', {}).get('bootstrap_seed')}.</p></body></html>")
    return "\n".join(out)


def write_report(store: ResultsStore, test_id: str, out: Union[str, Path], stats: Optional[dict] = None,
                 **options) -> Path:
    """Write :func:`report_html` to ``out`` (atomically); returns the path."""
    from studio.results import _atomic_text

    out = Path(out)
    _atomic_text(out, report_html(store, test_id, stats, **options))
    return out
