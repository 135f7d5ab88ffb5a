"""Notebook views of training: a live dashboard attached to a Trainer, a viewer for any
run folder after the fact, and the listening-test tabs embedded in a notebook.

Rendering: Panel panes around the Bokeh figures of :mod:`studio.plots`.  Call
``pn.extension(inline=True)`` once in the notebook (inline: the JavaScript comes from the
installed packages, so it works offline); ``pyviz_comms`` carries the live updates to
JupyterLab (checked in JupyterLab 4 with chromium: plots update while training runs in
the background thread, and Stop ends the run).
The data logic does not need a browser: the plotted numbers live in Bokeh
``ColumnDataSource`` objects (``loss_source``, ``val_source``, ``t_bin_source`` ...)
that tests read directly.

Time convention of the t-bin curves: t = 0 is noise, t = 1 is data (the mel).

Live training and the Stop button: the kernel handles a button click only while it is
not busy running a cell, so :meth:`TrainingDashboard.start` runs ``trainer.fit()`` in a
background thread and returns at once; :meth:`TrainingDashboard.wait` blocks until the
run ends (run it after pressing Stop, or to wait for the end).  Stop calls
``trainer.request_stop()``: the loop ends after the current step and writes a checkpoint.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
from bokeh.models import ColumnDataSource

from core.train.callbacks import Callback
from core.train.metrics import last_row, read_metrics

from . import plots

__all__ = ["MetricsPlots", "Sample", "load_sample", "TrainingDashboard", "RunViewer", "listening_view",
           "format_eta"]


def format_eta(seconds: Optional[float]) -> str:
    """``h:mm:ss`` for a number of seconds; ``"?"`` when unknown or not finite."""
    if seconds is None or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


@dataclass
class Sample:
    """An audio sample written during training: ``audio`` float32 (samples,),
    ``mel`` float32 (n_mels, frames) computed from the audio with the project's mel
    front end; ``frame_seconds`` = hop / sample rate."""

    step: int
    path: Path
    audio: np.ndarray
    sample_rate: int
    mel: np.ndarray
    frame_seconds: float


def load_sample(path: str | Path, step: int) -> Sample:
    """Read a sample wav and compute its log-mel spectrogram (Vocos settings, 24 kHz)."""
    import torch

    from core.audio import load_wav_with_rate, mel_spectrogram, resample
    from core.config import AudioConfig

    clip = load_wav_with_rate(path)
    cfg = AudioConfig()
    wav = torch.from_numpy(np.asarray(clip.samples, dtype=np.float32))[None]
    if clip.sample_rate != cfg.sample_rate:
        wav = resample(wav, clip.sample_rate, cfg.sample_rate)
    mel = mel_spectrogram(wav, cfg)[0].numpy()
    return Sample(step=int(step), path=Path(path), audio=np.asarray(clip.samples, dtype=np.float32),
                  sample_rate=int(clip.sample_rate), mel=mel, frame_seconds=cfg.hop_length / cfg.sample_rate)


class MetricsPlots:
    """Sources and figures for a list of ``metrics.jsonl`` rows: losses (loss, flow, mse,
    duration, prior, val_loss), learning rate and the t-bin curves of the last
    ``t_bin_history`` logged steps (validation t-bins dashed).  :meth:`update` recomputes
    every source from :attr:`rows`."""

    def __init__(self, t_bin_history: int = 5):
        if not isinstance(t_bin_history, int) or t_bin_history < 1:
            raise ValueError(f"t_bin_history must be a positive integer, got {t_bin_history!r}")
        self.t_bin_history = t_bin_history
        self.rows: list[dict[str, Any]] = []
        self.loss_source = ColumnDataSource(plots.train_columns([]))
        self.val_source = ColumnDataSource(plots.val_columns([]))
        self.bad_source = ColumnDataSource(plots.bad_step_columns([]))
        self.t_bin_source = ColumnDataSource(plots.t_bin_curves([], last=t_bin_history))
        self.val_t_bin_source = ColumnDataSource(plots.t_bin_curves([], key="val_t_bins", last=t_bin_history))
        self.t_bin_point_source = ColumnDataSource(plots.t_bin_points(self.t_bin_source.data))
        self.loss_figure = plots.loss_figure(self.loss_source, self.val_source, self.bad_source)
        self.lr_figure = plots.lr_figure(self.loss_source)
        self.t_bin_figure = plots.t_bin_figure(self.t_bin_source, self.val_t_bin_source, self.t_bin_point_source)

    def update(self) -> None:
        rows = self.rows
        self.loss_source.data = plots.train_columns(rows)
        self.val_source.data = plots.val_columns(rows)
        self.bad_source.data = plots.bad_step_columns(rows)
        train = plots.t_bin_curves(rows, last=self.t_bin_history)
        val = plots.t_bin_curves(rows, key="val_t_bins", last=1, prefix="val ")
        self.t_bin_source.data = train
        self.val_t_bin_source.data = val
        points = plots.t_bin_points(train)
        for k, v in plots.t_bin_points(val).items():
            points[k] = points[k] + v
        self.t_bin_point_source.data = points


def _push(*panes) -> None:
    """Send changed Bokeh models to a notebook where the panes are shown (no-op elsewhere)."""
    try:
        import panel as pn

        pn.io.push_notebook(*panes)
    except Exception:  # not shown in a notebook, or no comm: nothing to send
        pass


class TrainingDashboard(Callback):
    """Live training view: ``Trainer(config, out, callbacks=[dash])``, then
    ``dash.display()`` and ``dash.start(trainer)`` (background thread) or
    ``trainer.fit()`` (foreground; Stop then only works between cells).

    refresh_s: at most one redraw per ``refresh_s`` seconds of wall time (rows are
        collected at every log; the last one is always drawn at the end of training).
    sample_every: every N steps ask ``trainer.write_sample()`` for an audio sample of the
        current EMA weights (0: only the samples the trainer's own ``sample_every`` writes).
    t_bin_history: how many logged steps' t-bin curves to draw.
    """

    def __init__(self, *, refresh_s: float = 2.0, sample_every: int = 0, t_bin_history: int = 5,
                 clock: Callable[[], float] = time.monotonic):
        if not (isinstance(refresh_s, (int, float)) and refresh_s >= 0):
            raise ValueError(f"refresh_s must be a number >= 0, got {refresh_s!r}")
        if not isinstance(sample_every, int) or sample_every < 0:
            raise ValueError(f"sample_every must be an integer >= 0, got {sample_every!r}")
        self.refresh_s = float(refresh_s)
        self.sample_every = sample_every
        self.plots = MetricsPlots(t_bin_history)
        self.samples: list[Sample] = []
        self.sample_plot = plots.image_plot("latest sample (log-mel)")
        self.status = "waiting for training to start"
        self.state = "idle"  # idle -> running -> stopping -> finished / failed
        self.total_steps: Optional[int] = None
        self.step = 0
        self.examples_per_s: Optional[float] = None
        self.eta_s: Optional[float] = None
        self.stop_requested = False
        self.refresh_count = 0
        self.error: Optional[BaseException] = None
        self.result: Optional[Path] = None
        self._clock = clock
        self._last_refresh: Optional[float] = None
        self._trainer = None
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.RLock()  # hooks (training thread) vs Stop clicks (kernel thread)
        self._layout = None

    # sources, exposed for tests and custom layouts
    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.plots.rows

    @property
    def loss_source(self) -> ColumnDataSource:
        return self.plots.loss_source

    @property
    def val_source(self) -> ColumnDataSource:
        return self.plots.val_source

    @property
    def t_bin_source(self) -> ColumnDataSource:
        return self.plots.t_bin_source

    # ------------------------------------------------------------------ hooks
    def on_train_start(self, trainer) -> None:
        self._trainer = trainer
        self.total_steps = int(trainer.config.training.steps)
        self.step = int(trainer.step)
        self.state = "running"
        if self.stop_requested:  # Stop pressed before the run started
            trainer.request_stop()
            self.state = "stopping"
        self._set_status()
        self.refresh(force=True)

    def on_step_end(self, trainer, step: int, result) -> None:
        self.step = int(step)
        own = trainer.config.training.sample_every
        if self.sample_every and step % self.sample_every == 0 and not (own and step % own == 0):
            trainer.write_sample()  # emits on_sample

    def on_log(self, trainer, row: dict[str, Any]) -> None:
        with self._lock:
            self.plots.rows.append(dict(row))
        self.step = int(plots.number(row.get("step", self.step)))
        self.examples_per_s = plots.number(row.get("examples_per_s"))
        self.eta_s = plots.number(row.get("eta_s"))
        self._set_status()
        self.refresh()

    def on_validation(self, trainer, step: int, val_loss: float) -> None:
        row = last_row(Path(trainer.out) / "metrics.jsonl")  # the trainer logged it with val_t_bins
        if not (row and "val_loss" in row and int(plots.number(row.get("step"))) == int(step)):
            row = {"step": int(step), "val_loss": val_loss}
        with self._lock:
            self.plots.rows.append(row)
        self.refresh()

    def on_bad_step(self, trainer, step: int, reason: str) -> None:
        with self._lock:
            self.plots.rows.append({"step": int(step), "event": "bad_step", "reason": reason})
        self.refresh()

    def on_sample(self, trainer, step: int, path) -> None:
        try:
            sample = load_sample(path, step)
        except Exception as exc:  # a display problem must not end the training run
            self.status = f"{self.status} · sample at step {step} unreadable: {exc}"
            return
        self.samples.append(sample)
        plots.show_image(self.sample_plot, sample.mel, sample.frame_seconds)
        if self._layout is not None:
            self._show_audio(sample)
        self.refresh(force=True)

    def _show_audio(self, sample: Sample) -> None:
        self._audio.sample_rate = sample.sample_rate
        self._audio.object = sample.audio
        self._sample_title.object = f"**sample at step {sample.step}** (`{sample.path.name}`, EMA weights)"

    def on_train_end(self, trainer) -> None:
        self.state = "stopped" if self.stop_requested else "finished"
        if self.total_steps is not None and trainer.step < self.total_steps and not self.stop_requested:
            self.state = "failed"
        self._set_status()
        self.refresh(force=True)

    # ------------------------------------------------------------------ control
    def stop(self, *_event) -> None:
        """Ask the trainer to end after the current step (it then writes a checkpoint)."""
        self.stop_requested = True
        if self._trainer is not None and self.state == "running":
            self._trainer.request_stop()
            self.state = "stopping"
        self._set_status()
        self.refresh(force=True)

    def start(self, trainer) -> threading.Thread:
        """Run ``trainer.fit()`` in a background thread (the notebook stays responsive, so
        Stop works); the checkpoint path lands in :attr:`result`, an error in :attr:`error`."""
        if self not in trainer.callbacks:
            raise ValueError("this dashboard is not attached to the trainer: "
                             "pass callbacks=[dashboard] to Trainer(...)")
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("training is already running")

        def run():
            try:
                self.result = trainer.fit()
            except BaseException as exc:  # kept for wait(); the thread must not die silently
                self.error = exc
                self.state = "failed"
                self.status = f"training failed: {exc}"
                self.refresh(force=True)

        self._thread = threading.Thread(target=run, name="training", daemon=True)
        self._thread.start()
        return self._thread

    def wait(self, timeout: Optional[float] = None) -> Optional[Path]:
        """Block until the background run ends; returns its last checkpoint, re-raises its error."""
        if self._thread is None:
            raise RuntimeError("nothing to wait for: call start(trainer) first")
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"training still running after {timeout} s")
        if self.error is not None:
            raise self.error
        return self.result

    # ------------------------------------------------------------------ drawing
    def _set_status(self) -> None:
        total = "?" if self.total_steps is None else str(self.total_steps)
        rate = self.examples_per_s
        rate_text = "?" if rate is None or not math.isfinite(rate) else f"{rate:.1f}"
        self.status = (f"step {self.step} / {total} · {rate_text} examples/s · "
                       f"ETA {format_eta(self.eta_s)} · {self.state}")

    def refresh(self, force: bool = False) -> bool:
        """Redraw from the collected rows unless the last redraw was under ``refresh_s``
        ago (``force`` ignores that).  Returns whether it redrew."""
        now = self._clock()
        if not force and self._last_refresh is not None and now - self._last_refresh < self.refresh_s:
            return False
        with self._lock:
            self._last_refresh = now
            self.plots.update()
            self.refresh_count += 1
            if self._layout is not None:
                self._status_pane.object = f"**{self.status}**"
                self._stop_button.disabled = self.state not in ("idle", "running")
                _push(*self._figure_panes)
        return True

    def panel(self):
        """The Panel layout (built once): status line, Stop button, loss / lr / t-bin plots,
        the latest audio sample and its mel image."""
        if self._layout is None:
            import panel as pn

            self._status_pane = pn.pane.Markdown(f"**{self.status}**")
            self._stop_button = pn.widgets.Button(label="Stop (save a checkpoint)", color="danger", width=220)
            self._stop_button.on_click(self.stop)
            self._audio = pn.pane.Audio(None, sample_rate=24000)
            self._sample_title = pn.pane.Markdown("*no audio sample yet*")
            self._figure_panes = [pn.pane.Bokeh(f, sizing_mode="stretch_width") for f in
                                  (self.plots.loss_figure, self.plots.t_bin_figure, self.plots.lr_figure,
                                   self.sample_plot.figure)]
            loss, t_bin, lr, mel = self._figure_panes
            self._layout = pn.Column(pn.Row(self._status_pane, self._stop_button), loss, t_bin, lr,
                                     self._sample_title, self._audio, mel, sizing_mode="stretch_width")
            if self.samples:
                self._show_audio(self.samples[-1])
        return self._layout

    def display(self):
        """Show the dashboard in the notebook (returns the layout)."""
        from IPython.display import display

        layout = self.panel()
        display(layout)
        return layout


class RunViewer:
    """A finished (or running) run folder: the dashboard's plots from ``metrics.jsonl``
    and the audio samples under ``samples/`` (pick one by step).  :meth:`reload` rereads."""

    def __init__(self, run_dir: str | Path, *, t_bin_history: int = 5):
        self.run_dir = Path(run_dir)
        if not (self.run_dir / "metrics.jsonl").is_file():
            raise FileNotFoundError(f"{self.run_dir} is not a run folder: it has no metrics.jsonl")
        self.plots = MetricsPlots(t_bin_history)
        self.sample_plot = plots.image_plot("sample (log-mel)")
        self.sample_paths: dict[int, Path] = {}
        self.sample: Optional[Sample] = None
        self._layout = None
        self.reload()

    def reload(self) -> None:
        self.plots.rows = read_metrics(self.run_dir / "metrics.jsonl")
        self.plots.update()
        self.sample_paths = {int(p.stem.split("_")[-1]): p for p in sorted((self.run_dir / "samples").glob("step_*.wav"))
                             if p.stem.split("_")[-1].isdigit()}
        if self.sample_paths:
            self.show_sample(max(self.sample_paths))
        if self._layout is not None:
            self._select.options = sorted(self.sample_paths)

    def show_sample(self, step: int) -> Sample:
        if step not in self.sample_paths:
            raise KeyError(f"no sample at step {step}; samples exist at steps {sorted(self.sample_paths)}")
        self.sample = load_sample(self.sample_paths[step], step)
        plots.show_image(self.sample_plot, self.sample.mel, self.sample.frame_seconds)
        if self._layout is not None:
            self._audio.object = self.sample.audio
            self._audio.sample_rate = self.sample.sample_rate
        return self.sample

    def panel(self):
        if self._layout is None:
            import panel as pn

            steps = sorted(self.sample_paths)
            self._select = pn.widgets.Select(label="sample at step", options=steps, value=steps[-1] if steps else None)
            self._select.param.watch(lambda e: e.new is not None and self.show_sample(e.new), "value")
            self._audio = pn.pane.Audio(None if self.sample is None else self.sample.audio,
                                        sample_rate=24000 if self.sample is None else self.sample.sample_rate)
            self._layout = pn.Column(f"### Run `{self.run_dir}`",
                                     *[pn.pane.Bokeh(f, sizing_mode="stretch_width") for f in
                                       (self.plots.loss_figure, self.plots.t_bin_figure, self.plots.lr_figure)],
                                     self._select, self._audio, pn.pane.Bokeh(self.sample_plot.figure),
                                     sizing_mode="stretch_width")
        return self._layout

    def display(self):
        from IPython.display import display

        layout = self.panel()
        display(layout)
        return layout


def listening_view(results_dir: str | Path, *, checkpoint_dirs: Sequence[str | Path] = (), device: str = "cpu",
                   user: Optional[str] = None, test_id: Optional[str] = None):
    """The studio's listening-test tabs (Experimenter, Rate, Results) as one ``pn.Tabs``
    for a notebook (call ``pn.extension(inline=True)`` first).  Ratings go to the same SQLite
    results database in ``results_dir`` as the served studio uses."""
    import panel as pn

    from .config import StudioSettings
    from .listening_ui import build_listening_tabs

    settings = StudioSettings(checkpoint_dirs=tuple(Path(d).resolve() for d in checkpoint_dirs),
                              results_dir=Path(results_dir).resolve(), device=device)
    settings.results_dir.mkdir(parents=True, exist_ok=True)
    return pn.Tabs(*build_listening_tabs(settings, user=user, test_id=test_id))
