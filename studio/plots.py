"""Bokeh figures and their data, built from plain numbers (no Panel, no app state), so
a notebook dashboard can reuse them.

Two kinds of functions:

* ``*_data`` / ``*_columns`` / :func:`velocity_norms` -- pure: numbers in, a dict of
  columns (for ``ColumnDataSource.data``) or an array out.  Updating a plot means
  ``source.data = <new columns>``.
* ``*_figure`` / :func:`image_plot` -- build a figure around given sources.

Time convention: a trajectory's state ``k`` sits at grid time ``t_k``; ``t = 0`` is
noise, ``t = 1`` the mel.  Mel arrays are ``(n_mels, frames)``; trajectories
``(steps + 1, n_mels, frames)``.  Metric rows are those of a run's ``metrics.jsonl``
(non-finite numbers may appear as the strings ``"nan"`` / ``"inf"``; missing values as
``None``: both plot as gaps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

import numpy as np
from bokeh.core.properties import field
from bokeh.models import ColumnDataSource, Legend, LegendItem, LinearColorMapper
from bokeh.palettes import Category10_10, Magma256, Viridis256
from bokeh.plotting import figure

__all__ = ["ImagePlot", "image_plot", "mel_image_data", "show_image", "color_range", "time_grid_data",
           "time_grid_figure", "velocity_norms", "velocity_norm_data", "velocity_figure", "number",
           "train_columns", "val_columns", "bad_step_columns", "loss_figure", "lr_figure", "t_bin_centres",
           "t_bin_curves", "t_bin_points", "t_bin_figure", "point_data", "LOSS_KEYS"]

LOSS_KEYS = ("loss", "flow", "mse", "duration", "prior")
TOOLS = "pan,wheel_zoom,box_zoom,reset,save"


# --------------------------------------------------------------------------- mel images


@dataclass
class ImagePlot:
    """A spectrogram figure: ``source`` holds one image, ``mapper`` its colour range."""

    figure: Any
    source: ColumnDataSource
    mapper: LinearColorMapper


def mel_image_data(mel: np.ndarray, frame_seconds: float) -> dict[str, list]:
    """Columns of a ``(n_mels, frames)`` image placed at x in seconds, y in mel bins."""
    mel = np.asarray(mel, dtype=np.float32)
    if mel.ndim != 2:
        raise ValueError(f"mel must be (n_mels, frames), got shape {mel.shape}")
    return {"image": [mel], "x": [0.0], "y": [0.0], "dw": [mel.shape[1] * float(frame_seconds)],
            "dh": [float(mel.shape[0])]}


def color_range(values: np.ndarray, lo_pct: float = 1.0, hi_pct: float = 99.5) -> tuple[float, float]:
    """Robust (low, high) colour limits: percentiles of the finite values."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(v, [lo_pct, hi_pct])
    return float(lo), float(hi if hi > lo else lo + 1.0)


def image_plot(title: str, *, height: int = 240, palette: Sequence[str] = Magma256) -> ImagePlot:
    """An empty spectrogram figure (x: seconds, y: mel bin); fill it with :func:`show_image`."""
    source = ColumnDataSource({"image": [], "x": [], "y": [], "dw": [], "dh": []})
    mapper = LinearColorMapper(palette=list(palette), low=-10.0, high=2.0)
    fig = figure(title=title, height=height, sizing_mode="stretch_width", tools=TOOLS,
                 x_axis_label="time (s)", y_axis_label="mel bin", x_range=(0, 1), y_range=(0, 100))
    fig.image(image="image", x="x", y="y", dw="dw", dh="dh", source=source, color_mapper=mapper)
    return ImagePlot(fig, source, mapper)


def show_image(plot: ImagePlot, mel: np.ndarray, frame_seconds: float,
               limits: Optional[tuple[float, float]] = None) -> None:
    """Put ``mel`` (n_mels, frames) into ``plot``; ``limits`` fixes the colour range
    (default: :func:`color_range` of ``mel``)."""
    data = mel_image_data(mel, frame_seconds)
    low, high = limits if limits is not None else color_range(data["image"][0])
    plot.source.data = data
    plot.mapper.update(low=low, high=high)
    plot.figure.x_range.update(start=0.0, end=max(data["dw"][0], 1e-3))
    plot.figure.y_range.update(start=0.0, end=data["dh"][0])


# --------------------------------------------------------------------------- time grid and trajectory


def time_grid_data(times: Sequence[float]) -> dict[str, np.ndarray]:
    """Columns ``k`` (step index 0..N), ``t`` (grid time) and ``linear`` (k / N)."""
    t = np.asarray(times, dtype=np.float64)
    n = len(t) - 1
    k = np.arange(len(t), dtype=np.float64)
    return {"k": k, "t": t, "linear": k / max(n, 1)}


def point_data(x: float, y: float) -> dict[str, list[float]]:
    """A one-point source (the marker of the selected trajectory step)."""
    return {"x": [float(x)], "y": [float(y)]}


def time_grid_figure(source: ColumnDataSource, marker: ColumnDataSource, *, height: int = 220):
    """Grid time t_k against step k (dashed: the linear grid); ``marker``: selected step."""
    fig = figure(title="time grid (t = 0 noise, t = 1 data)", height=height, sizing_mode="stretch_width",
                 tools=TOOLS, x_axis_label="step k", y_axis_label="t_k", y_range=(-0.02, 1.02))
    fig.line("k", "linear", source=source, line_dash="dashed", color="gray", legend_label="linear")
    fig.line("k", "t", source=source, color=Category10_10[0], legend_label="schedule")
    fig.scatter("k", "t", source=source, color=Category10_10[0], size=6)
    fig.scatter("x", "y", source=marker, color=Category10_10[3], size=12, marker="circle_x",
                fill_alpha=0.2, legend_label="shown state")
    legend = fig.legend[0]
    fig.center.remove(legend)  # beside the plot: inside, it covered the curve
    fig.add_layout(legend, "right")
    return fig


def velocity_norms(trajectory: np.ndarray, times: Sequence[float]) -> np.ndarray:
    """Per-step velocity norm ``RMS(x_{k+1} - x_k) / (t_{k+1} - t_k)``, shape (N,).

    trajectory: (N + 1, ...) states at ``times`` (N + 1,).  RMS is the root mean square
    over all elements (mel bins and frames), so clips of different length compare; for
    a straight path ``x_k = (1 - t_k) a + t_k b`` every entry is ``RMS(b - a)``.
    """
    traj = np.asarray(trajectory, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    if traj.shape[0] != t.shape[0] or t.shape[0] < 2:
        raise ValueError(f"trajectory has {traj.shape[0]} states but times has {t.shape[0]} points (need >= 2)")
    diffs = np.diff(traj, axis=0).reshape(traj.shape[0] - 1, -1)
    return np.sqrt(np.mean(diffs ** 2, axis=1)) / np.diff(t)


def velocity_norm_data(trajectory: np.ndarray, times: Sequence[float]) -> dict[str, np.ndarray]:
    """Columns ``k`` (step 0..N-1), ``t0``/``t1`` (its interval) and ``norm``."""
    t = np.asarray(times, dtype=np.float64)
    norms = velocity_norms(trajectory, t)
    return {"k": np.arange(len(norms), dtype=np.float64), "t0": t[:-1], "t1": t[1:], "norm": norms}


def velocity_figure(source: ColumnDataSource, marker: ColumnDataSource, *, height: int = 220):
    """Velocity norm per step (x: the step's start time t_k); ``marker``: selected step."""
    fig = figure(title="velocity norm per step: RMS(xₖ₊₁ − xₖ) / (tₖ₊₁ − tₖ)", height=height,
                 sizing_mode="stretch_width", tools=TOOLS, x_axis_label="t_k (start of step)",
                 y_axis_label="velocity RMS")
    fig.line("t0", "norm", source=source, color=Category10_10[1])
    fig.scatter("t0", "norm", source=source, color=Category10_10[1], size=6)
    fig.scatter("x", "y", source=marker, color=Category10_10[3], size=12, marker="circle_x", fill_alpha=0.2)
    return fig


# --------------------------------------------------------------------------- training metrics


def number(value: Any) -> float:
    """A metrics value as float: None, booleans and unreadable strings become NaN;
    the strings ``"nan"``/``"inf"`` (how the log writes non-finite numbers) parse."""
    if value is None or isinstance(value, bool):
        return math.nan
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return math.nan
    return math.nan


def _is_train(row: dict) -> bool:
    return "event" not in row and "val_loss" not in row and "step" in row


def train_columns(rows: Iterable[dict]) -> dict[str, np.ndarray]:
    """Training rows -> columns ``step``, the :data:`LOSS_KEYS`, ``lr``, ``grad_norm``."""
    train = [r for r in rows if _is_train(r)]
    keys = ("step",) + LOSS_KEYS + ("lr", "grad_norm")
    return {k: np.array([number(r.get(k)) for r in train], dtype=np.float64) for k in keys}


def val_columns(rows: Iterable[dict]) -> dict[str, np.ndarray]:
    """Validation rows -> columns ``step``, ``val_loss``."""
    val = [r for r in rows if "val_loss" in r and "step" in r]
    return {k: np.array([number(r.get(k)) for r in val], dtype=np.float64) for k in ("step", "val_loss")}


def bad_step_columns(rows: Iterable[dict]) -> dict[str, list]:
    """Event rows ``{"event": "bad_step"}`` -> columns ``step``, ``reason``."""
    bad = [r for r in rows if r.get("event") == "bad_step"]
    return {"step": [number(r.get("step")) for r in bad], "reason": [str(r.get("reason", "")) for r in bad]}


def loss_figure(train: ColumnDataSource, val: ColumnDataSource, bad: ColumnDataSource, *, height: int = 300):
    """Losses against step; validation loss as points + dashed line; bad steps as red
    vertical lines.  Click a legend entry to hide a curve."""
    fig = figure(title="loss", height=height, sizing_mode="stretch_width", tools=TOOLS,
                 x_axis_label="step", y_axis_label="loss")
    fig.add_layout(Legend(click_policy="hide"), "right")  # outside the curves; glyphs below fill it
    for key, color in zip(LOSS_KEYS, Category10_10):
        # mse is dashed and drawn over flow: with no loss weighting the two are equal
        style = {"line_dash": "dashed", "line_width": 2.5} if key == "mse" else {"line_width": 1.5}
        fig.line("step", key, source=train, color=color, legend_label=key, **style)
    fig.line("step", "val_loss", source=val, color="black", line_dash="dashed", legend_label="val_loss")
    fig.scatter("step", "val_loss", source=val, color="black", size=6, legend_label="val_loss")
    spans = fig.vspan(x="step", source=bad, line_color="red", line_alpha=0.6, line_width=2)
    # a vspan draws no legend glyph: an empty red line lends it one, and hides with it
    swatch = fig.line(x=[], y=[], line_color="red", line_alpha=0.6, line_width=2)
    fig.legend[0].items.append(LegendItem(label="bad step", renderers=[swatch, spans]))
    return fig


def lr_figure(train: ColumnDataSource, *, height: int = 200):
    """Learning rate against step."""
    fig = figure(title="learning rate", height=height, sizing_mode="stretch_width", tools=TOOLS,
                 x_axis_label="step", y_axis_label="lr")
    fig.line("step", "lr", source=train, color=Category10_10[4])
    return fig


def t_bin_centres(n: int) -> np.ndarray:
    """Centres of ``n`` equal bins of t in [0, 1]: (i + 0.5) / n."""
    return (np.arange(n) + 0.5) / n


def t_bin_curves(rows: Sequence[dict], *, key: str = "t_bins", steps: Optional[Iterable[int]] = None,
                 last: int = 5, palette: Sequence[str] = Viridis256, prefix: str = "") -> dict[str, list]:
    """Per-timestep loss curves of the rows holding ``key`` (``t_bins`` or ``val_t_bins``):
    those at ``steps`` if given, else the ``last`` ones.  Columns ``xs`` (centres of the
    bins that hold a value), ``ys`` (their means: an empty bin, common with small
    batches, is left out so the line runs on instead of breaking into fragments),
    ``step``, ``label``, ``color`` (older rows darker, newer brighter); labels read
    ``"<prefix>step <n>"``."""
    have = [r for r in rows if isinstance(r.get(key), list) and r[key] and "step" in r]
    if steps is not None:
        wanted = {int(s) for s in steps}
        have = [r for r in have if int(number(r["step"])) in wanted]
    elif last > 0:
        have = have[-last:]
    else:
        have = []
    n = len(have)
    colors = [palette[int(round(i * (len(palette) - 1) * 0.9 / max(n - 1, 1)))] for i in range(n)]
    means = [np.array([number(v) for v in r[key]], dtype=np.float64) for r in have]
    return {"xs": [t_bin_centres(len(m))[np.isfinite(m)] for m in means],
            "ys": [m[np.isfinite(m)] for m in means],
            "step": [int(number(r["step"])) for r in have],
            "label": [f"{prefix}step {int(number(r['step']))}" for r in have], "color": colors}


def t_bin_points(curves: dict[str, list]) -> dict[str, list]:
    """The finite points of :func:`t_bin_curves` flattened (``x``, ``y``, ``color``), drawn
    as markers so a bin between two empty bins still shows."""
    x, y, color = [], [], []
    for xs, ys, c in zip(curves["xs"], curves["ys"], curves["color"]):
        for a, b in zip(xs, ys):
            if math.isfinite(b):
                x.append(float(a))
                y.append(float(b))
                color.append(c)
    return {"x": x, "y": y, "color": color}


def t_bin_figure(train: ColumnDataSource, val: ColumnDataSource, points: ColumnDataSource, *,
                 height: int = 300):
    """Loss per t-bin against the bin centre (t = 0 noise, t = 1 data); one line per
    logged step (``train``), validation dashed (``val``); ``points``: the finite bin
    means of both as markers (:func:`t_bin_points`)."""
    fig = figure(title="loss per timestep bin", height=height, sizing_mode="stretch_width", tools=TOOLS,
                 x_axis_label="t (bin centre; 0 = noise, 1 = data)", y_axis_label="flow loss", x_range=(0, 1))
    lines = fig.multi_line("xs", "ys", source=train, line_color="color", line_width=2)
    dashed = fig.multi_line("xs", "ys", source=val, line_color="color", line_width=2, line_dash="dashed")
    fig.scatter("x", "y", source=points, color="color", size=6)
    # one legend item per source (legend_field would merge both renderers into one item)
    fig.add_layout(Legend(items=[LegendItem(label=field("label"), renderers=[lines]),
                                 LegendItem(label=field("label"), renderers=[dashed])]), "right")
    return fig
