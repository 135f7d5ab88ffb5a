"""The training view reads metrics.jsonl incrementally and plots what it holds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from studio.config import BundledVoice, StudioSettings
from studio.training_ui import MetricsTail, TrainingView


def _row(step: int, loss: float) -> dict:
    # the training-row format core.train writes (see tests/studio/test_plots.py)
    return {"step": step, "epoch": 0, "lr": 1e-3 / step, "examples_per_s": 2.0, "eta_s": 60.0 * (10 - step),
            "bad_steps": 0, "loss": loss, "flow": loss / 2, "mse": loss / 2, "duration": 0.3, "prior": 0.2,
            "grad_norm": 1.5, "t_bins": [loss + i / 10 for i in range(10)]}


def _write(path: Path, rows: list[dict], mode: str = "a") -> None:
    with open(path, mode, encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))


def test_tail_reads_only_appended_complete_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tail = MetricsTail(path)
    assert tail.read_new() == ([], False)  # not there yet
    _write(path, [_row(1, 4.0), _row(2, 3.0)])
    rows, restarted = tail.read_new()
    assert [r["step"] for r in rows] == [1, 2] and not restarted
    assert tail.read_new() == ([], False)
    with open(path, "a") as f:  # a torn line (writer mid-flush) waits for its newline
        f.write('{"step": 3, "lo')
    assert tail.read_new() == ([], False)
    with open(path, "a") as f:
        f.write('ss": 2.5}\nnot json\n')
    rows, _ = tail.read_new()
    assert rows == [{"step": 3, "loss": 2.5}]  # the junk line is skipped


def test_tail_rereads_a_replaced_or_shortened_file(tmp_path):
    path = tmp_path / "metrics.jsonl"
    _write(path, [_row(s, 5.0 - s) for s in (1, 2, 3)])
    tail = MetricsTail(path)
    assert len(tail.read_new()[0]) == 3
    tmp = tmp_path / "new.jsonl"  # what a resume does: truncate_after + os.replace
    _write(tmp, [_row(1, 4.0)])
    os.replace(tmp, path)
    rows, restarted = tail.read_new()
    assert restarted and [r["step"] for r in rows] == [1]
    _write(path, [], mode="w")  # shortened in place
    assert tail.read_new() == ([], True)


def _settings(tmp_path: Path) -> StudioSettings:
    return StudioSettings(checkpoint_dirs=(tmp_path / "runs",), results_dir=tmp_path / "res",
                          bundled_voices=(BundledVoice("demo", tmp_path / "no_demo.pt", "demo voice (bundled)"),))


def _run(tmp_path: Path, name: str = "tiny") -> Path:
    run = tmp_path / "runs" / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "step_00000002.pt").write_bytes(b"x")
    _write(run / "metrics.jsonl", [_row(1, 4.0), _row(2, 3.0),
                                   {"step": 2, "val_loss": 3.5, "val_t_bins": [3.0] * 10},
                                   {"step": 3, "event": "bad_step", "reason": "loss spike"}])
    return run


def test_view_plots_a_run_and_follows_appends(tmp_path):
    run = _run(tmp_path)
    view = TrainingView(_settings(tmp_path))
    assert view.run == str(run.resolve())
    np.testing.assert_array_equal(view.train_source.data["step"], [1, 2])
    np.testing.assert_allclose(view.train_source.data["loss"], [4.0, 3.0])
    np.testing.assert_allclose(view.train_source.data["lr"], [1e-3, 5e-4])
    np.testing.assert_allclose(view.val_source.data["val_loss"], [3.5])
    assert view.bad_source.data["step"] == [3.0]
    assert view.tbin_source.data["label"] == ["step 1", "step 2"]
    assert view.tbin_val_source.data["label"] == ["val step 2"]
    assert "1 bad step" in view.status and "step_00000002.pt" in view.status and "step 2" in view.status
    assert view.step_choice.options == ["1", "2"]

    _write(run / "metrics.jsonl", [_row(s, 3.0 - s / 10) for s in (4, 5, 6, 7, 8, 9)])
    view.live = False
    view._poll()  # not following: nothing read
    assert len(view.train_source.data["step"]) == 2
    view.live = True
    view._poll()
    np.testing.assert_array_equal(view.train_source.data["step"], [1, 2, 4, 5, 6, 7, 8, 9])
    assert view.tbin_source.data["step"] == [5, 6, 7, 8, 9]  # the last N = 5 rows
    assert view.refresh() == 0

    view.last_n = 2
    assert view.tbin_source.data["step"] == [8, 9]
    view.step_choice.value = ["1", "6"]
    assert view.chosen_steps == [1, 6]
    assert view.tbin_source.data["step"] == [1, 6]
    np.testing.assert_allclose(view.tbin_source.data["ys"][0], [4.0 + i / 10 for i in range(10)])
    assert len(view.tbin_points.data["x"]) == 20
    view.__panel__().get_root()  # the layout builds into Bokeh models


def test_view_refuses_folders_outside_and_non_runs(tmp_path):
    _run(tmp_path)
    view = TrainingView(_settings(tmp_path))
    before = view.run
    assert not view.open_run(tmp_path / "runs" / ".." / "res")
    assert "outside the folders" in view.alert and view.run == before
    (tmp_path / "runs" / "empty").mkdir()
    assert not view.open_run(tmp_path / "runs" / "empty")
    assert "no metrics.jsonl" in view.alert

    second = _run(tmp_path, "second")
    assert view.open_run(second) and view.run == str(second.resolve())
    view.refresh_runs()  # rescanning keeps the selection
    assert view.run == str(second.resolve()) and len(view.param.run.objects) == 2


def test_view_without_runs_says_so(tmp_path):
    view = TrainingView(_settings(tmp_path))
    assert view.run is None and "No training runs found" in view.status
    assert view.refresh() == 0
    assert view.start_polling() is view.start_polling()  # one periodic callback, idle outside a server
