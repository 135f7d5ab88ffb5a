"""The results page: human scores per condition, rater checks, objective scores, CSV export.

For the picked test (experimenters only: condition names are revealed here):

* MOS: mean, sample std and Student-t 95 % interval per condition (table + Bokeh
  error-bar plot); A/B: preference shares per condition pair with the two-sided exact
  binomial p-value (ties left out of the test) and the CMOS mean when raters gave one
  (see :mod:`studio.stats`).  Gold (attention) trials are left out of these tables.
* Raters, ratings and finished sessions; gold-trial pass rate per rater.
* Objective scores beside the human ones when ``core.eval`` and the ``eval`` extra are
  importable: DNSMOS P.835 OVRL (mean over the condition's clips) and the WER of
  pocketsphinx transcripts against the sentences, computed on demand off the page's
  thread and cached per stimulus in ``<results>/objective/<test id>.json``.
* Statistics (:mod:`studio.stats_ui`): mixed-model and rater-clustered MOS intervals,
  the Bradley-Terry ranking of A/B tests, Krippendorff's alpha, rater screening with
  the estimates recomputed without flagged raters, ratings along training; computed on
  demand and downloadable as JSON / CSV.
* "Export CSV": the store's CSV (one row per current rating, :data:`studio.results.CSV_COLUMNS`)
  and "Columns (JSON)": what each column holds (:data:`studio.results.CSV_COLUMN_DOCS`).

The page follows the store by itself: every ``POLL_MS`` while it is open it compares
:meth:`studio.results.ResultsStore.revision` and re-reads the tests and tables when a
test was created, archived or rendered or a rating arrived.  Archived tests are not
listed; the test shown first is the newest one with ratings, else the newest with
stimuli (never a half-rendered one just because it is newer).
"""

from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource, Whisker
from bokeh.plotting import figure

from studio.jobs import JobOutcome, JobRunner, on_page_load
from studio.results import ResultsStore, StimulusRecord, columns_json
from studio.stats import ab_table, gold_table, mos_table, rating_counts
from studio.type_stats import OBJECTIVE_DIR
from studio.stats_ui import StatisticsPanel

__all__ = ["ResultsView", "ObjectiveRow", "objective_scores", "eval_available", "mos_frame", "ab_frame",
           "gold_frame", "mos_figure"]

POLL_MS = 2000


def _num(x) -> Optional[float]:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def mos_frame(store: ResultsStore, test_id: str) -> pd.DataFrame:
    """One row per condition: condition, n, mean, std, ci95_low, ci95_high, raters."""
    rows = [{"condition": r.condition, "n": r.summary.n, "mean": r.summary.mean, "std": r.summary.std,
             "ci95_low": r.summary.ci95_low, "ci95_high": r.summary.ci95_high, "raters": r.n_raters}
            for r in mos_table(store, test_id)]
    return pd.DataFrame(rows, columns=["condition", "n", "mean", "std", "ci95_low", "ci95_high", "raters"])


def ab_frame(store: ResultsStore, test_id: str) -> pd.DataFrame:
    """One row per condition pair (design order): counts of each preference, shares of
    all answers, the binomial p-value, CMOS (second vs first) mean and n, raters."""
    cols = ["first", "second", "prefer_first", "prefer_second", "no_preference", "share_first", "share_second",
            "p_value", "cmos_mean", "cmos_n", "raters"]
    rows = [{"first": r.first, "second": r.second, "prefer_first": r.summary.n_a, "prefer_second": r.summary.n_b,
             "no_preference": r.summary.n_none, "share_first": r.summary.share_a, "share_second": r.summary.share_b,
             "p_value": r.summary.p_value, "cmos_mean": r.cmos.mean if r.cmos else math.nan,
             "cmos_n": r.cmos.n if r.cmos else 0, "raters": r.n_raters} for r in ab_table(store, test_id)]
    return pd.DataFrame(rows, columns=cols)


def gold_frame(store: ResultsStore, test_id: str) -> pd.DataFrame:
    rows = [{"rater": g.rater_id, "gold_trials": g.n_gold, "passed": g.n_passed,
             "pass_rate": g.n_passed / g.n_gold} for g in gold_table(store, test_id)]
    return pd.DataFrame(rows, columns=["rater", "gold_trials", "passed", "pass_rate"])


def mos_figure(frame: pd.DataFrame, test_type: str = "mos"):
    """Means with 95 % interval whiskers per condition (a condition with one rating has
    no interval and shows the mean alone); MUSHRA on its 0..100 scale."""
    conds = [str(c) for c in frame["condition"]]
    data = {"condition": conds, "mean": list(frame["mean"]),
            "low": [m if math.isnan(lo) else lo for m, lo in zip(frame["mean"], frame["ci95_low"])],
            "high": [m if math.isnan(hi) else hi for m, hi in zip(frame["mean"], frame["ci95_high"])]}
    source = ColumnDataSource(data)
    mushra = test_type == "mushra"
    name = {"mos": "MOS", "smos": "SMOS", "dcr": "DMOS", "mushra": "MUSHRA score"}.get(test_type, "mean score")
    fig = figure(x_range=conds or ["-"], y_range=(-4, 104) if mushra else (0.8, 5.2), height=280,
                 width=max(300, 120 * len(conds)), title=f"{name} with 95 % t-interval", toolbar_location=None,
                 y_axis_label=name)
    fig.add_layout(Whisker(source=source, base="condition", upper="high", lower="low", line_width=2))
    fig.scatter("condition", "mean", source=source, size=10)
    return fig


# --------------------------------------------------------------------------- objective scores


def eval_available() -> Optional[str]:
    """None when DNSMOS and ASR can run, else a note saying what is missing."""
    try:
        from core import eval as core_eval
    except ImportError as exc:
        return f"objective scores need core.eval, which is not importable here ({exc})"
    for module in ("pocketsphinx", "speechmos", "onnxruntime", "librosa"):
        try:
            __import__(module)
        except ImportError:
            return f'objective scores need the eval extra ({module} missing): pip install -e ".[eval]"'
    return None if hasattr(core_eval, "DNSMOS") else "core.eval has no DNSMOS"


@dataclass(frozen=True)
class ObjectiveRow:
    """Mean DNSMOS OVRL over a condition's clips and the WER of their transcripts."""

    condition: str
    clips: int
    dnsmos_ovrl: float
    wer: float


def _cache_path(store: ResultsStore, test_id: str) -> Path:
    return store.folder / OBJECTIVE_DIR / f"{test_id}.json"


def objective_scores(store: ResultsStore, test_id: str, *, compute: bool = True) -> list[ObjectiveRow]:
    """Per condition (anchors and gold copies left out): DNSMOS OVRL mean and WER.
    Scores per stimulus are cached; with ``compute=False`` only cached ones are used.
    Raises ImportError (``core.eval.MissingEvalExtra``) without the eval extra."""
    path = _cache_path(store, test_id)
    cache = json.loads(path.read_text()) if path.is_file() else {}
    stimuli = [s for s in store.stimuli(test_id) if s.variant == "" and s.provenance.get("condition_kind") != "anchor"]
    todo = [s for s in stimuli if s.stimulus_id not in cache]
    if todo and compute:
        from core import audio as core_audio
        from core import eval as core_eval

        scorer, recognizer = core_eval.DNSMOS(threads=1), core_eval.Recognizer()
        for s in todo:
            clip = core_audio.load_wav_with_rate(s.path)
            cache[s.stimulus_id] = {"dnsmos_ovrl": scorer(clip.samples, clip.sample_rate).ovrl,
                                    "transcript": recognizer.transcribe(clip.samples, clip.sample_rate)}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
        os.replace(tmp, path)
    groups: dict[str, list[StimulusRecord]] = {}
    for s in stimuli:
        if s.stimulus_id in cache:
            groups.setdefault(s.condition, []).append(s)
    rows = []
    if groups:
        from core.eval import wer

        for label, items in groups.items():
            scores = [cache[s.stimulus_id]["dnsmos_ovrl"] for s in items]
            w = wer([s.text for s in items], [cache[s.stimulus_id]["transcript"] for s in items]).wer
            rows.append(ObjectiveRow(label, len(items), sum(scores) / len(scores), w))
    return rows


# --------------------------------------------------------------------------- the page


def _section(title: str, *panes) -> pn.Column:
    """A heading and panes, shown while the first pane is."""
    return pn.Column(f"#### {title}", *panes, visible=panes[0].param.visible)


class ResultsView(pn.viewable.Viewer):
    """Pick a test (``test_id``) and see its results; :meth:`refresh` re-reads the store.
    The last tables are kept as ``mos``, ``ab``, ``gold`` DataFrames and ``counts``."""

    test_id = param.Selector(default=None, objects=[], allow_None=True)
    note = param.String(default="")

    def __init__(self, store: ResultsStore, **params):
        super().__init__(**params)
        self.store = store
        self.runner = JobRunner(expected=(ValueError, OSError, ImportError))
        self.mos = self.ab = self.gold = pd.DataFrame()
        self.counts = None
        self.objective: list[ObjectiveRow] = []
        self.summary_pane = pn.pane.Markdown("")
        self.mos_pane = pn.pane.DataFrame(index=False, float_format="{:.3f}".format, visible=False)
        self.plot_pane = pn.pane.Bokeh(visible=False)
        self.ab_pane = pn.pane.DataFrame(index=False, float_format="{:.3g}".format, visible=False)
        self.gold_pane = pn.pane.DataFrame(index=False, float_format="{:.2f}".format, visible=False)
        self.objective_pane = pn.pane.DataFrame(index=False, float_format="{:.3f}".format, visible=False)
        self.eval_missing = eval_available()
        self.objective_button = pn.widgets.Button(label="Compute DNSMOS / WER", disabled=self.eval_missing is not None)
        self.objective_button.on_click(lambda _: self.compute_objective())
        self.download = pn.widgets.FileDownload(callback=self.csv_file, filename="results.csv", label="Export CSV",
                                                color="primary", disabled=True)
        self.statistics = StatisticsPanel(store)
        self.columns_download = pn.widgets.FileDownload(callback=lambda: io.BytesIO(columns_json().encode()),
                                                        filename="results.columns.json", label="Columns (JSON)")
        self._revision = None
        self.refresh_tests()
        self.param.watch(lambda _: self.refresh(), "test_id")
        self.refresh()
        self._revision = store.revision()
        self._poller = None

    def poll(self) -> bool:
        """Re-read everything if the store changed since the last look; True if it did."""
        revision = self.store.revision()
        if revision == self._revision:
            return False
        self._revision = revision
        shown = self.test_id
        self.refresh_tests()
        if self.test_id == shown:  # a changed selection already refreshed through its watcher
            self.refresh()
        return True

    def start_polling(self) -> None:
        """Poll every :data:`POLL_MS` while the page is served (a no-op without a server)."""
        if self._poller is None and pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            self._poller = pn.state.add_periodic_callback(self.poll, period=POLL_MS)

    def refresh_tests(self) -> None:
        """List the open tests, newest first; keep the shown one if it is still there,
        else show the newest with ratings (or with stimuli)."""
        tests = self.store.tests(include_archived=False)
        self.param.test_id.objects = {f"{t.name} ({t.test_id}, {t.test_type})": t.test_id for t in reversed(tests)}
        if self.test_id not in [t.test_id for t in tests]:
            rated = [t for t in tests if self.store.ratings(t.test_id)]
            rendered = [t for t in tests if self.store.stimuli(t.test_id)]
            pick = (rated or rendered or tests)
            self.test_id = pick[-1].test_id if pick else None

    def refresh(self) -> None:
        """Re-read the picked test's ratings and redraw every table."""
        tid = self.test_id
        self.download.disabled = tid is None
        self.statistics.show_test(tid)
        if tid is None:
            self.summary_pane.object = "*No tests yet.*"
            for pane in (self.mos_pane, self.plot_pane, self.ab_pane, self.gold_pane, self.objective_pane):
                pane.visible = False
            return
        test = self.store.test(tid)
        self.download.filename = f"{tid}.csv"
        self.counts = rating_counts(self.store, tid)
        self.summary_pane.object = (f"### {test.name}\nTest `{tid}` ({test.test_type.upper()}): "
                                    f"**{self.counts.n_raters}** raters, **{self.counts.n_ratings}** ratings, "
                                    f"**{self.counts.n_sessions_done}** finished sessions.")
        self.mos = mos_frame(self.store, tid)
        self.ab = ab_frame(self.store, tid)
        self.gold = gold_frame(self.store, tid)
        self.mos_pane.param.update(object=self.mos, visible=not self.mos.empty)
        if not self.mos.empty:
            self.plot_pane.param.update(object=mos_figure(self.mos, test.test_type), visible=True)
        else:
            self.plot_pane.visible = False
        self.ab_pane.param.update(object=self.ab, visible=not self.ab.empty)
        self.gold_pane.param.update(object=self.gold, visible=not self.gold.empty)
        self.objective = objective_scores(self.store, tid, compute=False) if self.eval_missing is None else []
        self._show_objective()

    def _show_objective(self) -> None:
        frame = pd.DataFrame([vars(r) for r in self.objective], columns=["condition", "clips", "dnsmos_ovrl", "wer"])
        self.objective_pane.param.update(object=frame, visible=not frame.empty)
        if self.eval_missing is not None:
            self.note = f"Objective scores skipped: {self.eval_missing}"

    def compute_objective(self) -> bool:
        """Score the picked test's clips with DNSMOS and ASR in the background."""
        if self.eval_missing is not None or self.test_id is None:
            self.note = f"Objective scores skipped: {self.eval_missing or 'no test picked'}"
            return False
        tid = self.test_id

        def done(outcome: JobOutcome) -> None:
            if outcome.ok:
                if tid == self.test_id:
                    self.objective = outcome.value
                    self._show_objective()
                self.note = f"Objective scores computed in {outcome.seconds:.1f} s."
            else:
                self.note = f"Objective scores failed: {outcome.error}"

        # the note is set first: without a server ``done`` runs on the worker thread and
        # may finish before ``submit`` returns
        self.note = "Computing DNSMOS and WER ..."
        if not self.runner.submit(lambda: objective_scores(self.store, tid), done, label="objective scores"):
            self.note = "Objective scores are being computed already."
            return False
        return True

    def csv_text(self) -> str:
        buf = io.StringIO()
        if self.test_id is not None:
            self.store.export_csv(self.test_id, buf)
        return buf.getvalue()

    def csv_file(self) -> io.BytesIO:
        """The FileDownload callback: the picked test's CSV."""
        return io.BytesIO(self.csv_text().encode("utf-8"))

    def __panel__(self):
        if getattr(self, "_layout", None) is None:
            on_page_load(self.start_polling)
            refresh = pn.widgets.Button(label="Refresh")
            refresh.on_click(lambda _: (self.refresh_tests(), self.refresh()))
            self._layout = pn.Column(
                pn.Row(pn.widgets.Select.from_param(self.param.test_id, label="Results of test", width=420), refresh,
                       self.download, self.columns_download),
                self.summary_pane,
                _section("MOS per condition (gold trials left out)", self.mos_pane, self.plot_pane),
                _section("A/B preference per pair (p: two-sided binomial test, ties left out)", self.ab_pane),
                _section("Gold (attention) trials per rater", self.gold_pane),
                self.statistics,
                "#### Objective scores (DNSMOS P.835 OVRL, ASR WER)", pn.Row(self.objective_button),
                pn.pane.Markdown(self.param.note), self.objective_pane, sizing_mode="stretch_width")
        return self._layout
