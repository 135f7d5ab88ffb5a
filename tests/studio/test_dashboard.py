"""The notebook dashboard's data logic, without a browser: feed hooks, read the Bokeh
sources and the state."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from studio.dashboard_ui import RunViewer, TrainingDashboard, format_eta, listening_view


class StubTrainer:
    """What the dashboard reads of a Trainer: config.training.{steps, sample_every},
    step, out, callbacks, request_stop()."""

    def __init__(self, out: Path, steps: int = 100, sample_every: int = 0):
        self.config = SimpleNamespace(training=SimpleNamespace(steps=steps, sample_every=sample_every))
        self.step = 0
        self.out = out
        self.callbacks = []
        self.stop_calls = 0

    def request_stop(self):
        self.stop_calls += 1


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def row(step, loss=1.0, bins=None, **extra):
    r = {"step": step, "epoch": 0, "lr": 1e-3 * step, "examples_per_s": 10.0, "eta_s": 125.0, "bad_steps": 0,
         "loss": loss, "flow": 0.5, "mse": 0.5, "duration": 0.25, "prior": 0.125, "grad_norm": 1.0,
         "t_bins": bins if bins is not None else [float(step)] * 10}
    r.update(extra)
    return r


def test_rows_reach_the_plot_sources(tmp_path):
    dash = TrainingDashboard(refresh_s=0.0, t_bin_history=3)
    trainer = StubTrainer(tmp_path)
    dash.on_train_start(trainer)
    for step in range(1, 6):
        dash.on_log(trainer, row(step, loss=10.0 / step))
    dash.on_validation(trainer, 5, 0.75)  # no metrics.jsonl: the row is built from the hook
    dash.on_bad_step(trainer, 4, "loss is nan")
    loss = dash.loss_source.data
    np.testing.assert_array_equal(loss["step"], [1, 2, 3, 4, 5])
    np.testing.assert_allclose(loss["loss"], [10.0, 5.0, 10 / 3, 2.5, 2.0])
    np.testing.assert_allclose(loss["lr"], [1e-3, 2e-3, 3e-3, 4e-3, 5e-3])
    for key, value in (("flow", 0.5), ("mse", 0.5), ("duration", 0.25), ("prior", 0.125)):
        np.testing.assert_array_equal(loss[key], [value] * 5)
    np.testing.assert_array_equal(dash.val_source.data["val_loss"], [0.75])
    assert dash.plots.bad_source.data == {"step": [4.0], "reason": ["loss is nan"]}
    # t-bin curves: the last 3 logged steps, at the bin centres (i + 0.5) / 10
    tb = dash.t_bin_source.data
    assert tb["step"] == [3, 4, 5]
    np.testing.assert_allclose(tb["xs"][0], np.arange(10) / 10 + 0.05)
    np.testing.assert_allclose(tb["ys"][2], [5.0] * 10)
    assert len(dash.plots.t_bin_point_source.data["x"]) == 30
    # status text: step / total, rate, ETA (125 s)
    assert dash.status == "step 5 / 100 · 10.0 examples/s · ETA 0:02:05 · running"


def test_nan_losses_are_gaps_and_empty_t_bins_are_skipped(tmp_path):
    dash = TrainingDashboard(refresh_s=0.0)
    trainer = StubTrainer(tmp_path)
    dash.on_log(trainer, row(1, loss="nan", bins=[None, 2.0] + [None] * 8))
    assert math.isnan(dash.loss_source.data["loss"][0])
    # the t-bin line runs through the bins that hold a value (no fragments on small batches)
    assert list(dash.t_bin_source.data["ys"][0]) == [2.0] and list(dash.t_bin_source.data["xs"][0]) == [0.15]
    assert dash.plots.t_bin_point_source.data["x"] == [0.15]  # only the finite bin as a marker


def test_validation_row_with_t_bins_is_read_from_the_run_log(tmp_path):
    dash = TrainingDashboard(refresh_s=0.0)
    trainer = StubTrainer(tmp_path)
    with open(tmp_path / "metrics.jsonl", "w") as f:
        f.write(json.dumps(row(10)) + "\n")
        f.write(json.dumps({"step": 10, "val_loss": 0.5, "val_t_bins": [0.1] * 10}) + "\n")
    dash.on_validation(trainer, 10, 0.5)
    val = dash.plots.val_t_bin_source.data
    assert val["label"] == ["val step 10"]
    np.testing.assert_allclose(val["ys"][0], [0.1] * 10)


def test_refresh_is_throttled_by_wall_time(tmp_path):
    clock = Clock()
    dash = TrainingDashboard(refresh_s=2.0, clock=clock)
    trainer = StubTrainer(tmp_path)
    dash.on_train_start(trainer)  # forced redraw
    assert dash.refresh_count == 1
    for step in range(1, 11):  # ten logs within 1.9 s: no redraw, rows still collected
        clock.now = 0.19 * step
        dash.on_log(trainer, row(step))
    assert dash.refresh_count == 1 and len(dash.rows) == 10
    assert len(dash.loss_source.data["step"]) == 0  # drawn before any row arrived
    clock.now = 2.0
    dash.on_log(trainer, row(11))
    assert dash.refresh_count == 2
    assert len(dash.loss_source.data["step"]) == 11
    clock.now = 2.5
    trainer.step = 100
    dash.on_train_end(trainer)  # the end is always drawn
    assert dash.refresh_count == 3 and dash.state == "finished"


def test_stop_asks_the_trainer_once_and_ends_as_stopped(tmp_path):
    dash = TrainingDashboard(refresh_s=0.0)
    trainer = StubTrainer(tmp_path)
    dash.on_train_start(trainer)
    dash.stop()
    assert trainer.stop_calls == 1 and dash.state == "stopping"
    dash.stop()  # a second click does not ask again
    assert trainer.stop_calls == 1
    trainer.step = 7
    dash.on_train_end(trainer)
    assert dash.state == "stopped" and dash.status.endswith("stopped")


def test_stop_before_start_is_passed_on_at_start(tmp_path):
    dash = TrainingDashboard()
    dash.stop()
    trainer = StubTrainer(tmp_path)
    dash.on_train_start(trainer)
    assert trainer.stop_calls == 1 and dash.state == "stopping"


def test_stop_button_is_wired(tmp_path):
    dash = TrainingDashboard(refresh_s=0.0)
    trainer = StubTrainer(tmp_path)
    dash.panel()
    dash.on_train_start(trainer)
    assert not dash._stop_button.disabled
    dash._stop_button.clicks += 1  # what a click in the browser does
    assert trainer.stop_calls == 1
    assert dash._stop_button.disabled  # refresh after the click greys it out


@pytest.mark.parametrize("kwargs, message", [({"refresh_s": -1}, "refresh_s"), ({"sample_every": -2}, "sample_every"),
                                             ({"t_bin_history": 0}, "t_bin_history")])
def test_bad_options_are_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainingDashboard(**kwargs)


def test_format_eta():
    assert format_eta(3725.4) == "1:02:05"
    assert format_eta(0) == "0:00:00"
    assert format_eta(None) == format_eta(math.nan) == format_eta(-1) == "?"


def test_start_requires_the_dashboard_on_the_trainer(tmp_path):
    with pytest.raises(ValueError, match="callbacks"):
        TrainingDashboard().start(StubTrainer(tmp_path))


def test_background_error_is_raised_by_wait(tmp_path):
    dash = TrainingDashboard()
    trainer = StubTrainer(tmp_path)
    trainer.callbacks.append(dash)

    def fit():
        raise RuntimeError("boom")
    trainer.fit = fit
    dash.start(trainer)
    with pytest.raises(RuntimeError, match="boom"):
        dash.wait(timeout=30)
    assert dash.state == "failed"


def test_real_training_stop_writes_a_checkpoint_and_samples(tiny_corpus, tmp_path):
    """Trainer + dashboard on the tiny config: a sample every 2 steps from the dashboard,
    Stop pressed after step 3 (in the background thread's hook, as a click would) ->
    the run ends at step 3 with a checkpoint of step 3."""
    from core.train import Callback, Trainer
    from tests.conftest import tiny_config

    dash = TrainingDashboard(refresh_s=0.0, sample_every=2)

    class PressStop(Callback):
        def on_step_end(self, trainer, step, losses):
            if step == 3:
                dash.stop()

    cfg = tiny_config(tiny_corpus, steps=20, checkpoint_every=0, val_every=0)
    trainer = Trainer(cfg, tmp_path / "run", device="cpu", progress=False, callbacks=[dash, PressStop()])
    dash.panel()
    dash.start(trainer)
    checkpoint = dash.wait(timeout=120)
    assert checkpoint.name == "step_00000003.pt" and checkpoint.exists()
    assert trainer.step == 3 and dash.state == "stopped"
    np.testing.assert_array_equal(dash.loss_source.data["step"], [1, 2, 3])
    assert [s.step for s in dash.samples] == [2]
    sample = dash.samples[0]
    assert sample.mel.shape[0] == 100 and sample.mel.shape[1] == len(sample.audio) // 256 + 1  # center=True frames
    assert dash.sample_plot.source.data["image"][0].shape == sample.mel.shape
    assert dash._audio.object is sample.audio

    viewer = RunViewer(tmp_path / "run")
    np.testing.assert_array_equal(viewer.plots.loss_source.data["step"], [1, 2, 3])
    assert sorted(viewer.sample_paths) == [2] and viewer.sample.step == 2


def test_run_viewer_reads_a_metrics_file(tmp_path):
    rows = [row(1, loss=3.0), row(2, loss=2.0), {"step": 2, "val_loss": 2.5, "val_t_bins": [1.0] * 10},
            {"step": 3, "event": "bad_step", "reason": "spike"}, row(4, loss=1.0)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 5, "lo')
    viewer = RunViewer(tmp_path)  # the torn last line is ignored
    np.testing.assert_array_equal(viewer.plots.loss_source.data["step"], [1, 2, 4])
    np.testing.assert_allclose(viewer.plots.loss_source.data["loss"], [3.0, 2.0, 1.0])
    np.testing.assert_array_equal(viewer.plots.val_source.data["val_loss"], [2.5])
    assert viewer.plots.bad_source.data["reason"] == ["spike"]
    assert viewer.sample_paths == {} and viewer.panel() is viewer.panel()
    with pytest.raises(KeyError, match="no sample"):
        viewer.show_sample(1)


def test_run_viewer_refuses_a_folder_without_metrics(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        RunViewer(tmp_path)


def test_listening_view_embeds_the_studio_tabs(tmp_path, monkeypatch):
    monkeypatch.delenv("FLOWTTS_EXPERIMENTERS", raising=False)
    tabs = listening_view(tmp_path / "results", checkpoint_dirs=[tmp_path])
    assert [tabs._names[i] for i in range(len(tabs))] == ["Experimenter", "Rate", "Results"]
    assert (tmp_path / "results" / "results.sqlite").exists()
