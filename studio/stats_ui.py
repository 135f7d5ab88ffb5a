"""The statistics part of the Results page (see :mod:`studio.stats_report`).

"Compute statistics" runs :func:`studio.stats_report.test_statistics` off the page's
thread (the bootstrap of an A/B ranking takes seconds) and shows:

* MOS per condition: the Student-t interval beside the mixed-model (crossed rater and
  sentence intercepts) and rater-clustered intervals; A/B: the Bradley-Terry ranking
  with bootstrap intervals of strength and rank;
* Krippendorff's alpha;
* rater screening (gold failures, z, correlation / agreement, why flagged);
* the same estimates without the flagged raters, when any is flagged;
* MOS / preference per training step when the conditions are checkpoints of one run.

"Statistics (JSON)" and "Statistics (CSV)" download what is shown.  New ratings make
the shown numbers stale (the note says so) until computed again.
"""

from __future__ import annotations

import io
from typing import Optional

import pandas as pd
import panel as pn
import param

from studio.jobs import JobOutcome, JobRunner
from studio.report import report_html, training_svg
from studio.results import ResultsStore
from studio.stats_report import statistics_csv, statistics_json, test_statistics

__all__ = ["StatisticsPanel", "estimate_frame", "raters_frame", "training_frame"]

MOS_COLUMNS = ["subset", "condition", "n", "mean", "t_ci95_low", "t_ci95_high", "mixed_mean", "mixed_ci95_low",
               "mixed_ci95_high", "cluster_ci95_low", "cluster_ci95_high"]
ABX_COLUMNS = ["subset", "first", "second", "n", "correct", "share", "ci95_low", "ci95_high", "p_value", "n_raters"]
WER_COLUMNS = ["subset", "condition", "n", "human_wer", "asr_wer", "asr_clips", "n_raters"]
BT_COLUMNS = ["subset", "condition", "strength", "ci95_low", "ci95_high", "rank", "rank_low", "rank_high", "wins",
              "losses", "ties"]


def estimate_frame(stats: dict) -> pd.DataFrame:
    """Per-condition rows of the test's type (mean scores; Bradley-Terry for A/B; share
    found for ABX; WER for intelligibility), all raters first, then without the flagged ones."""
    rows = []
    for subset in ("all_raters", "excluding_flagged"):
        est = stats.get(subset) or {}
        rows += [dict(m, subset=subset) for m in est.get("mos", [])]
        rows += [dict(c, subset=subset) for c in (est.get("bradley_terry") or {}).get("conditions", [])]
        rows += [dict(a, subset=subset) for a in est.get("abx", [])]
        rows += [dict(w, subset=subset) for w in est.get("intelligibility", [])]
    cols = {"ab": BT_COLUMNS, "abx": ABX_COLUMNS, "intelligibility": WER_COLUMNS}.get(stats.get("test_type"),
                                                                                      MOS_COLUMNS)
    return pd.DataFrame(rows, columns=cols)


def raters_frame(stats: dict) -> pd.DataFrame:
    cols = ["rater_id", "n_ratings", "n_gold", "n_gold_failed", "bias", "z", "correlation", "agreement",
            "hidden_ref_low", "headphone_check", "flagged", "reasons"]
    return pd.DataFrame([dict(r, reasons="; ".join(r["reasons"])) for r in stats.get("raters", [])], columns=cols)


def training_frame(stats: dict) -> pd.DataFrame:
    series = stats.get("along_training") or {}
    cols = ["step", "condition", "n", "mos", "mos_ci95_low", "mos_ci95_high", "strength", "strength_ci95_low",
            "strength_ci95_high", "win_rate"]
    return pd.DataFrame(series.get("points", []), columns=cols)


def _agreement_text(stats: dict) -> str:
    parts = []
    for subset, title in (("all_raters", "all raters"), ("excluding_flagged", "without flagged raters")):
        a = (stats.get(subset) or {}).get("agreement")
        if a:
            value = "n/a" if a["alpha"] is None else f"{a['alpha']:.3f}"
            parts.append(f"{title}: **{value}** ({a['level']}, {a['n_units']} units"
                         f"{', ' + a['note'] if a['note'] else ''})")
    return "Krippendorff's alpha -- " + "; ".join(parts) if parts else ""


class StatisticsPanel(pn.viewable.Viewer):
    """Compute and show the statistics of one test; ``stats`` holds the last record."""

    note = param.String(default="")

    def __init__(self, store: ResultsStore, *, n_boot: int = 1000, seed: int = 0, **params):
        super().__init__(**params)
        self.store, self.n_boot, self.seed = store, n_boot, seed
        self.runner = JobRunner(expected=(ValueError, OSError, ImportError))
        self.test_id: Optional[str] = None
        self.stats: Optional[dict] = None
        self._revision = None
        fmt = "{:.3f}".format
        self.estimates_pane = pn.pane.DataFrame(index=False, float_format=fmt, visible=False)
        self.agreement_pane = pn.pane.Markdown("", visible=False)
        self.raters_pane = pn.pane.DataFrame(index=False, float_format="{:.2f}".format, visible=False)
        self.training_pane = pn.pane.DataFrame(index=False, float_format=fmt, visible=False)
        self.training_plot = pn.pane.HTML("", visible=False)  # scores against step beside the run's loss
        self.button = pn.widgets.Button(label="Compute statistics", disabled=self.runner.param.busy)
        self.button.on_click(lambda _: self.compute())
        self.json_download = pn.widgets.FileDownload(callback=lambda: io.BytesIO(statistics_json(self.stats).encode()),
                                                     filename="statistics.json", label="Statistics (JSON)",
                                                     disabled=True)
        self.csv_download = pn.widgets.FileDownload(callback=lambda: io.BytesIO(statistics_csv(self.stats).encode()),
                                                    filename="statistics.csv", label="Statistics (CSV)",
                                                    disabled=True)
        self.report_download = pn.widgets.FileDownload(
            callback=lambda: io.BytesIO(report_html(self.store, self.stats["test_id"], self.stats).encode()),
            filename="report.html", label="Report (HTML)", disabled=True)

    def show_test(self, test_id: Optional[str]) -> None:
        """Follow the Results page: another test clears the numbers; new ratings mark them stale."""
        if test_id != self.test_id:
            self.test_id, self.stats = test_id, None
            self._show()
            return
        if self.stats is not None and self.store.revision() != self._revision:
            self.note = "New ratings since these statistics were computed: compute them again."

    def compute(self) -> bool:
        """Compute the picked test's statistics in the background."""
        tid = self.test_id
        if tid is None:
            self.note = "Pick a test first."
            return False
        revision = self.store.revision()

        def done(outcome: JobOutcome) -> None:
            if not outcome.ok:
                self.note = f"Statistics failed: {outcome.error}"
            elif tid == self.test_id:
                self.stats, self._revision = outcome.value, revision
                self._show()
                self.note = (f"Computed in {outcome.seconds:.1f} s ({self.n_boot} bootstrap resamples, "
                             f"seed {self.seed}).")

        work = lambda: test_statistics(self.store, tid, n_boot=self.n_boot, seed=self.seed)  # noqa: E731
        self.note = "Computing statistics ..."  # before submit: ``done`` may run before it returns
        if not self.runner.submit(work, done, label="statistics"):
            self.note = "Statistics are being computed already."
            return False
        return True

    def _show(self) -> None:
        s = self.stats
        for d in (self.json_download, self.csv_download, self.report_download):
            d.disabled = s is None
        if s is None:
            for pane in (self.estimates_pane, self.agreement_pane, self.raters_pane, self.training_pane,
                         self.training_plot):
                pane.visible = False
            self.note = ""
            return
        self.json_download.filename = f"{s['test_id']}.stats.json"
        self.csv_download.filename = f"{s['test_id']}.stats.csv"
        self.report_download.filename = f"{s['test_id']}.report.html"
        estimates, raters, training = estimate_frame(s), raters_frame(s), training_frame(s)
        self.estimates_pane.param.update(object=estimates, visible=not estimates.empty)
        text = _agreement_text(s)
        flagged = s.get("flagged_raters") or []
        if flagged:
            text += f"\n\nFlagged raters: {', '.join(flagged)} (rows `excluding_flagged` leave them out)."
        self.agreement_pane.param.update(object=text, visible=bool(text))
        self.raters_pane.param.update(object=raters, visible=not raters.empty)
        self.training_pane.param.update(object=training, visible=not training.empty)
        self.training_plot.param.update(object=training_svg(s), visible=not training.empty)

    def __panel__(self):
        if getattr(self, "_layout", None) is None:
            self._layout = pn.Column(
                "#### Statistics (gold trials left out; mixed model: crossed rater and sentence intercepts; "
                "Bradley-Terry: ties count half, bootstrap 95 % intervals)",
                pn.Row(self.button, self.json_download, self.csv_download, self.report_download),
                pn.pane.Markdown(self.param.note),
                self.estimates_pane, self.agreement_pane,
                pn.Column("##### Rater screening", self.raters_pane, visible=self.raters_pane.param.visible),
                pn.Column("##### Along training (conditions are checkpoints of one run; grey: the run's "
                          "training loss)", pn.Row(self.training_plot, self.training_pane),
                          visible=self.training_pane.param.visible),
                sizing_mode="stretch_width")
        return self._layout
