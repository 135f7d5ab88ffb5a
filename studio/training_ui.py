"""The training view: loss curves, learning rate and per-timestep loss curves of a run
folder's ``metrics.jsonl``, following a live run.

Rows (written by ``core.train``): training rows ``{"step", "loss", "flow", "mse",
"duration", "prior", "lr", "grad_norm", "examples_per_s", "eta_s", "t_bins"}``,
validation rows ``{"step", "val_loss", "val_t_bins"}`` and events ``{"step", "event":
"bad_step", "reason"}``.  ``t_bins`` holds the flow loss averaged over equal bins of t
(t = 0 noise, t = 1 data), ``None`` for a bin no example fell in.

:class:`core.train.metrics.MetricsTail` (the project's one reader of the file) reads
only what was appended since the last read.  :class:`TrainingView` polls it every ``period_ms`` while
``live`` is on (``pn.state.add_periodic_callback``, started when the page is shown).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Optional

import panel as pn
import param
from bokeh.models import ColumnDataSource
from bokeh.palettes import Greys256

from . import plots
from .config import PathRefused, StudioSettings, find_runs, resolve_inside

from core.train.metrics import MetricsTail  # the one metrics.jsonl reader

__all__ = ["MetricsTail", "TrainingView"]


class TrainingView(pn.viewable.Viewer):
    """Curves of one training run under the configured checkpoint folders."""

    run = param.Selector(default=None, objects={}, allow_None=True, doc="run folder")
    live = param.Boolean(default=True, doc="re-read metrics.jsonl every period while shown")
    last_n = param.Integer(default=5, bounds=(1, 50), doc="t-bin curves of the last N logged steps")
    chosen_steps = param.List(default=[], item_type=int, doc="t-bin curves of these steps (overrides last_n)")
    alert = param.String(default="")
    status = param.String(default="")

    def __init__(self, settings: StudioSettings, *, period_ms: int = 2000, **params):
        super().__init__(**params)
        self.settings, self.period_ms = settings, period_ms
        self.rows: list[dict[str, Any]] = []
        self.tail: Optional[MetricsTail] = None
        self.callback = None
        self.train_source = ColumnDataSource(plots.train_columns([]))
        self.val_source = ColumnDataSource(plots.val_columns([]))
        self.bad_source = ColumnDataSource(plots.bad_step_columns([]))
        empty = plots.t_bin_curves([])
        self.tbin_source = ColumnDataSource(empty)
        self.tbin_val_source = ColumnDataSource(dict(empty))
        self.tbin_points = ColumnDataSource(plots.t_bin_points(empty))
        self.step_choice = pn.widgets.MultiChoice(label="t-bin curves of steps (empty: the last N)", options=[],
                                                  sizing_mode="stretch_width")
        self.step_choice.param.watch(lambda e: setattr(self, "chosen_steps", [int(v) for v in e.new]), "value")
        self.sample = pn.pane.Audio(None, name="latest sample", sizing_mode="stretch_width", visible=False)
        self.refresh_runs()
        self._load_run()

    # ------------------------------------------------------------------ runs
    def refresh_runs(self) -> None:
        """Re-scan the checkpoint folders for runs; keeps the selection if still there."""
        runs = {e.label: str(e.path) for e in find_runs(self.settings)}
        current = self.run
        self.param.run.objects = runs
        if current in runs.values():
            return
        self.run = next(iter(runs.values()), None)

    def open_run(self, path: str | os.PathLike) -> bool:
        """Show the run folder ``path`` (must lie inside the checkpoint folders)."""
        try:
            folder = resolve_inside(path, self.settings.checkpoint_dirs)
        except PathRefused as exc:
            self.alert = str(exc)
            return False
        if not (folder / "metrics.jsonl").is_file():
            self.alert = f"{folder}: not a training run (no metrics.jsonl)"
            return False
        if str(folder) not in self.param.run.objects.values():
            self.param.run.objects = {**self.param.run.objects, folder.name: str(folder)}
        self.run = str(folder)
        return True

    @param.depends("run", watch=True)
    def _load_run(self) -> None:
        self.alert = ""
        self.rows = []
        self.tail = None if self.run is None else MetricsTail(Path(self.run) / "metrics.jsonl")
        self.refresh(force=True)

    # ------------------------------------------------------------------ data
    def refresh(self, force: bool = False) -> int:
        """Read rows appended since the last call and update the plots; returns how many."""
        new, restarted = ([], False) if self.tail is None else self.tail.read_new()
        if restarted:
            self.rows = []
        self.rows.extend(new)
        if new or restarted or force:
            self._update_sources()
        return len(new)

    @param.depends("last_n", "chosen_steps", watch=True)
    def _update_tbins(self) -> None:
        steps = self.chosen_steps or None
        train = plots.t_bin_curves(self.rows, key="t_bins", steps=steps, last=self.last_n)
        # validation: the latest validation curve, or those at the chosen steps
        val = plots.t_bin_curves(self.rows, key="val_t_bins", steps=steps, last=1, palette=Greys256[:200],
                                 prefix="val ")
        self.tbin_source.data = train
        self.tbin_val_source.data = val
        both = {k: train[k] + val[k] for k in ("xs", "ys", "color")}
        self.tbin_points.data = plots.t_bin_points(both)

    def _update_sources(self) -> None:
        self.train_source.data = plots.train_columns(self.rows)
        self.val_source.data = plots.val_columns(self.rows)
        self.bad_source.data = plots.bad_step_columns(self.rows)
        steps = sorted({int(plots.number(r["step"])) for r in self.rows if isinstance(r.get("t_bins"), list)})
        self.step_choice.options = [str(s) for s in steps[-500:]]
        self._update_tbins()
        self._update_status()

    def _update_status(self) -> None:
        if self.run is None:
            self.status = "No training runs found under " + ", ".join(map(str, self.settings.checkpoint_dirs))
            return
        run = Path(self.run)
        train = [r for r in self.rows if "loss" in r and "event" not in r]
        bad = sum(1 for r in self.rows if r.get("event") == "bad_step")
        lines = [f"**{run.name}**: {len(self.rows)} rows"]
        if train:
            last = train[-1]
            eta = plots.number(last.get("eta_s"))
            lines.append(f"step {last.get('step')} · loss {plots.number(last.get('loss')):.4g} · lr "
                         f"{plots.number(last.get('lr')):.3g} · {plots.number(last.get('examples_per_s')):.3g} "
                         f"examples/s" + (f" · ETA {eta / 60:.1f} min" if eta == eta else ""))
        if bad:
            lines.append(f"{bad} bad step(s) skipped (red lines)")
        ckpts = sorted((run / "checkpoints").glob("step_*.pt"))
        if ckpts:
            lines.append(f"checkpoints: {', '.join(p.name for p in ckpts[-3:])}")
        lines.append(f"read {time.strftime('%H:%M:%S')}")
        self.status = " · ".join(lines)
        samples = sorted((run / "samples").glob("*.wav"), key=lambda p: p.stat().st_mtime)
        self.sample.visible = bool(samples)
        if samples:
            self.sample.param.update(object=str(samples[-1]), name=f"latest sample: {samples[-1].name}")

    # ------------------------------------------------------------------ polling + layout
    def _poll(self) -> None:
        if self.live:
            self.refresh()

    def start_polling(self):
        """Start the periodic re-read (once); a no-op outside a served page."""
        if self.callback is None:
            self.callback = pn.state.add_periodic_callback(self._poll, period=self.period_ms)
        return self.callback

    def __panel__(self):
        self.start_polling()
        rescan = pn.widgets.Button(label="Rescan folders")
        rescan.on_click(lambda _: self.refresh_runs())
        follow = pn.widgets.Checkbox.from_param(self.param.live, label=f"follow live run ({self.period_ms / 1000:g} s)")
        last_n = pn.widgets.IntInput.from_param(self.param.last_n, label="last N", width=100)
        controls = pn.Row(pn.widgets.Select.from_param(self.param.run, label="run", width=420), follow, rescan,
                          last_n, self.step_choice, sizing_mode="stretch_width")
        return pn.Column(
            controls, pn.pane.Alert(self.param.alert, alert_type="danger", visible=self.param.alert.rx.bool()),
            pn.pane.Markdown(self.param.status, sizing_mode="stretch_width"), self.sample,
            pn.pane.Bokeh(plots.loss_figure(self.train_source, self.val_source, self.bad_source),
                          sizing_mode="stretch_width"),
            pn.Row(pn.pane.Bokeh(plots.t_bin_figure(self.tbin_source, self.tbin_val_source, self.tbin_points),
                                 sizing_mode="stretch_width"),
                   pn.pane.Bokeh(plots.lr_figure(self.train_source), sizing_mode="stretch_width"),
                   sizing_mode="stretch_width"),
            sizing_mode="stretch_width")
