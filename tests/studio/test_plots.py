"""Plot data from numbers: closed forms for the velocity norms, hand-made metric rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bokeh.core.validation import check_integrity
from bokeh.models import ColumnDataSource

from studio import plots


def _no_integrity_errors(fig) -> None:
    issues = check_integrity(list(fig.references()))
    assert not issues.error, issues.error


def test_mel_image_data_and_show_image():
    mel = np.arange(100 * 7, dtype=np.float32).reshape(100, 7)
    data = plots.mel_image_data(mel, 256 / 24000)
    assert data["image"][0].shape == (100, 7)
    assert data["dw"] == [pytest.approx(7 * 256 / 24000)] and data["dh"] == [100.0]
    with pytest.raises(ValueError, match="n_mels, frames"):
        plots.mel_image_data(np.zeros(5), 0.01)

    plot = plots.image_plot("mel")
    plots.show_image(plot, mel, 0.5)
    assert plot.source.data["image"][0].shape == (100, 7)
    assert (plot.figure.x_range.end, plot.figure.y_range.end) == (3.5, 100.0)
    assert (plot.mapper.low, plot.mapper.high) == plots.color_range(mel)
    plots.show_image(plot, mel, 0.5, limits=(-1.0, 2.0))
    assert (plot.mapper.low, plot.mapper.high) == (-1.0, 2.0)
    _no_integrity_errors(plot.figure)


def test_color_range_percentiles_ignore_non_finite():
    values = np.concatenate([np.arange(101.0), [np.nan, np.inf]])
    # np.percentile of 0..100 at 1 and 99.5 is exactly 1 and 99.5 (linear interpolation)
    assert plots.color_range(values) == (1.0, 99.5)
    assert plots.color_range(np.full(4, 3.0)) == (3.0, 4.0)
    assert plots.color_range(np.array([np.nan])) == (0.0, 1.0)


def test_time_grid_data():
    d = plots.time_grid_data([0.0, 0.1, 0.5, 1.0])
    np.testing.assert_allclose(d["k"], [0, 1, 2, 3])
    np.testing.assert_allclose(d["linear"], [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(d["t"], [0.0, 0.1, 0.5, 1.0])


def test_velocity_norm_of_a_straight_path_is_constant():
    # x_t = (1 - t) a + t b  =>  (x_{k+1} - x_k) / (t_{k+1} - t_k) = b - a for every step
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 9)), rng.normal(size=(6, 9))
    t = np.array([0.0, 0.02, 0.1, 0.45, 1.0])
    traj = np.stack([(1 - tk) * a + tk * b for tk in t])
    expected = np.sqrt(np.mean((b - a) ** 2))
    np.testing.assert_allclose(plots.velocity_norms(traj, t), np.full(4, expected), rtol=1e-12)


def test_velocity_norm_of_a_quadratic_path():
    # x_t = t^2 c  =>  (t_{k+1}^2 - t_k^2) / (t_{k+1} - t_k) = t_{k+1} + t_k, times RMS(c)
    c = np.linspace(-1.0, 2.0, 12).reshape(3, 4)
    t = np.array([0.0, 0.25, 0.5, 1.0])
    traj = np.stack([tk ** 2 * c for tk in t])
    rms = np.sqrt(np.mean(c ** 2))
    d = plots.velocity_norm_data(traj, t)
    np.testing.assert_allclose(d["norm"], (t[1:] + t[:-1]) * rms, rtol=1e-12)
    np.testing.assert_allclose(d["t0"], t[:-1])
    np.testing.assert_allclose(d["k"], [0, 1, 2])
    with pytest.raises(ValueError, match="4 states but times has 3"):
        plots.velocity_norms(traj, t[:3])


def test_time_grid_and_velocity_figures_build():
    src = ColumnDataSource(plots.time_grid_data([0, 0.5, 1]))
    marker = ColumnDataSource(plots.point_data(1, 0.5))
    assert marker.data == {"x": [1.0], "y": [0.5]}
    _no_integrity_errors(plots.time_grid_figure(src, marker))
    vel = ColumnDataSource(plots.velocity_norm_data(np.zeros((3, 2, 2)), [0, 0.5, 1]))
    _no_integrity_errors(plots.velocity_figure(vel, marker))


def test_number_reads_logged_values():
    assert math.isnan(plots.number(None)) and math.isnan(plots.number("nan")) and math.isnan(plots.number(True))
    assert plots.number("inf") == math.inf and plots.number(3) == 3.0 and math.isnan(plots.number("x"))
    assert math.isnan(plots.number([1]))


# rows in the format core.train writes (copied from a tiny run's metrics.jsonl, shortened)
ROWS = [
    {"step": 1, "epoch": 0, "lr": 0.001, "examples_per_s": 0.7, "eta_s": 17.8, "bad_steps": 0, "loss": 4.93,
     "flow": 1.99, "mse": 1.99, "duration": 2.35, "prior": 0.59, "grad_norm": 12.7,
     "t_bins": [None, None, None, 1.94, 2.02, None, 1.97, None, 2.05, None]},
    {"step": 2, "epoch": 0, "lr": 0.001, "loss": "nan", "flow": 1.98, "mse": 1.98, "duration": 2.01,
     "prior": 0.58, "grad_norm": 15.1, "t_bins": [None, 2.01, None, None, None, None, None, 1.96, None, None]},
    {"step": 2, "val_loss": 4.5, "val_t_bins": [None] * 8 + [1.95, 1.94]},
    {"step": 3, "event": "bad_step", "reason": "non-finite loss"},
    {"step": 4, "epoch": 1, "lr": 0.0, "loss": 3.83, "flow": 1.97, "mse": 1.97, "duration": 1.35, "prior": 0.52,
     "grad_norm": 8.8, "t_bins": [1.0] * 10},
    {"step": 4, "val_loss": 4.36, "val_t_bins": [2.0] * 10},
]


def test_metric_columns_separate_train_val_and_events():
    train = plots.train_columns(ROWS)
    np.testing.assert_array_equal(train["step"], [1, 2, 4])
    np.testing.assert_allclose(train["loss"], [4.93, np.nan, 3.83])  # "nan" string -> gap
    np.testing.assert_allclose(train["lr"], [0.001, 0.001, 0.0])
    assert set(train) == {"step", "loss", "flow", "mse", "duration", "prior", "lr", "grad_norm"}
    val = plots.val_columns(ROWS)
    np.testing.assert_allclose(val["step"], [2, 4]) and np.testing.assert_allclose(val["val_loss"], [4.5, 4.36])
    assert plots.bad_step_columns(ROWS) == {"step": [3.0], "reason": ["non-finite loss"]}
    empty = plots.train_columns([])
    assert all(len(v) == 0 for v in empty.values())


def test_t_bin_curves_pick_rows_and_run_across_empty_bins():
    np.testing.assert_allclose(plots.t_bin_centres(10), np.arange(0.05, 1.0, 0.1))
    last2 = plots.t_bin_curves(ROWS, last=2)
    assert last2["step"] == [2, 4] and last2["label"] == ["step 2", "step 4"]
    # step 2 has values in bins 1 and 7 only: one line through both, no NaN to break it
    assert list(last2["ys"][0]) == [2.01, 1.96] and last2["xs"][0] == pytest.approx([0.15, 0.75])
    assert last2["color"][0] != last2["color"][1]
    chosen = plots.t_bin_curves(ROWS, steps=[1])
    assert chosen["step"] == [1] and len(chosen["ys"][0]) == len(chosen["xs"][0]) == 4
    assert np.isfinite(chosen["ys"][0]).all()
    val = plots.t_bin_curves(ROWS, key="val_t_bins", last=1, prefix="val ")
    assert val["label"] == ["val step 4"] and list(val["ys"][0]) == [2.0] * 10
    assert plots.t_bin_curves(ROWS, last=0)["step"] == []
    points = plots.t_bin_points(last2)
    assert len(points["x"]) == 2 + 10 and points["y"][:2] == [2.01, 1.96]
    assert points["x"][:2] == pytest.approx([0.15, 0.75])


def test_training_figures_build_without_integrity_errors():
    train = ColumnDataSource(plots.train_columns(ROWS))
    val = ColumnDataSource(plots.val_columns(ROWS))
    bad = ColumnDataSource(plots.bad_step_columns(ROWS))
    fig = plots.loss_figure(train, val, bad)
    items = fig.legend[0].items
    labels = [item.label["value"] for item in items]
    assert labels == ["loss", "flow", "mse", "duration", "prior", "val_loss", "bad step"]
    bad_item = items[-1]  # its first renderer is a line, so the legend draws a red glyph
    assert bad_item.renderers[0].glyph.line_color == "red" and len(bad_item.renderers) == 2
    mse = next(i for i in items if i.label["value"] == "mse").renderers[0].glyph
    assert mse.line_dash == [6] or mse.line_dash == "dashed"  # visible on top of an equal flow curve
    _no_integrity_errors(fig)
    _no_integrity_errors(plots.lr_figure(train))
    curves = plots.t_bin_curves(ROWS)
    vcurves = plots.t_bin_curves(ROWS, key="val_t_bins", last=1)
    tfig = plots.t_bin_figure(ColumnDataSource(curves), ColumnDataSource(vcurves),
                              ColumnDataSource(plots.t_bin_points(curves)))
    assert len(tfig.legend[0].items) == 2  # one item per source, not merged
    _no_integrity_errors(tfig)
