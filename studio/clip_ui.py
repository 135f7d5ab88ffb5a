"""One rendered clip in the page: audio player, mel spectrogram and, with ``detail``,
the time grid, the ODE trajectory (a slider scrubs the states x_k at grid times t_k;
t = 0 noise, t = 1 mel) and the per-step velocity norm; timings, RTF, the settings
and the checkpoint sha256.  :meth:`ClipView.show` fills it from a :class:`Rendered`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource

from . import plots

__all__ = ["Rendered", "ClipView", "int16_audio"]


@dataclass
class Rendered:
    """A finished render: the synthesis, seconds per mel frame, the checkpoint's label
    and its speaker names (index = id)."""

    synthesis: Any
    frame_seconds: float
    checkpoint_label: str
    speakers: list[str]


def int16_audio(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] -> int16 PCM for ``pn.pane.Audio`` (Panel's own float
    conversion multiplies by 32768, which wraps a sample of exactly +1.0 to -32768)."""
    return np.round(np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0) * 32767).astype(np.int16)


class ClipView(pn.viewable.Viewer):
    """One rendered clip; :meth:`show` fills it.  ``state``: trajectory index shown."""

    state = param.Integer(default=0, bounds=(0, None))

    def __init__(self, title: str = "", detail: bool = True, **params):
        super().__init__(**params)
        self.detail, self.rendered = detail, None
        self.audio = pn.pane.Audio(None, sample_rate=24000, name="audio", sizing_mode="stretch_width")
        self.mel = plots.image_plot(f"{title} mel spectrogram (t = 1)".strip())
        self.summary = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.settings = pn.pane.JSON({}, depth=1, name="settings", sizing_mode="stretch_width")
        self.grid_source = ColumnDataSource(plots.time_grid_data([0.0, 1.0]))
        self.velocity_source = ColumnDataSource({"k": [], "t0": [], "t1": [], "norm": []})
        self.grid_marker = ColumnDataSource(plots.point_data(0, 0))
        self.velocity_marker = ColumnDataSource({"x": [], "y": []})
        self.frame = plots.image_plot("trajectory state", height=220)
        self.slider = pn.widgets.IntSlider(label="trajectory state k", start=0, end=1, value=0, disabled=True,
                                           sizing_mode="stretch_width")
        self.slider.param.watch(lambda e: setattr(self, "state", e.new), "value")
        self._limits = (0.0, 1.0)

    def preview_grid(self, times) -> None:
        """Show the time grid the next render will use (t = 0 noise .. 1 data) while no
        clip is shown yet; ``times`` None (settings without a grid) leaves it as it is."""
        if times is None or self.rendered is not None:
            return
        self.grid_source.data = plots.time_grid_data([float(t) for t in times])
        self.grid_marker.data = {"x": [], "y": []}

    def show(self, rendered: Rendered) -> None:
        """Fill the view from a finished render; with ``detail`` and a trajectory also the
        grid, the velocity norms and the slider (on the last state, the mel)."""
        s = rendered.synthesis
        self.rendered = rendered
        self.audio.param.update(object=int16_audio(s.audio), sample_rate=int(s.sample_rate))
        plots.show_image(self.mel, s.mel, rendered.frame_seconds)
        rtf = s.timings["total"] / max(s.duration, 1e-9)
        t = s.timings
        self.summary.object = (
            f"**{rendered.checkpoint_label}** · speaker {s.settings.get('speaker')} · seed {s.settings.get('seed')}"
            f" · vocoder "
            f"{s.settings.get('vocoder')} · NFE {s.nfe} · audio {s.duration:.2f} s\n\n"
            f"timings: acoustic {t['acoustic']:.2f} s, vocoder {t['vocoder']:.2f} s, total {t['total']:.2f} s"
            f" · **RTF {rtf:.3f}** (total time / audio length; below 1 is faster than real time)\n\n"
            f"checkpoint sha256 `{s.settings.get('checkpoint_sha256', '')}`")
        self.settings.object = dict(s.settings)
        if self.detail and s.trajectory is not None:
            self.grid_source.data = plots.time_grid_data(s.times)
            self.velocity_source.data = plots.velocity_norm_data(s.trajectory, s.times)
            self._limits = plots.color_range(s.trajectory)
            last = len(s.times) - 1
            self.slider.param.update(start=0, end=last, value=last, disabled=False)  # sets state
            self._show_state()  # also when the state number did not change

    @param.depends("state", watch=True)
    def _show_state(self) -> None:
        s = None if self.rendered is None else self.rendered.synthesis
        if s is None or s.trajectory is None:
            return
        k = min(self.state, len(s.times) - 1)
        plots.show_image(self.frame, s.trajectory[k], self.rendered.frame_seconds, self._limits)
        self.frame.figure.title.text = f"trajectory state k = {k}, t = {s.times[k]:.3f}"
        self.grid_marker.data = plots.point_data(k, s.times[k])
        norms = self.velocity_source.data["norm"]
        self.velocity_marker.data = (plots.point_data(s.times[k], norms[k]) if k < len(norms)
                                     else {"x": [], "y": []})

    def __panel__(self):
        parts = [self.audio, pn.pane.Bokeh(self.mel.figure, sizing_mode="stretch_width"), self.summary]
        if self.detail:
            parts += [pn.Row(pn.pane.Bokeh(plots.time_grid_figure(self.grid_source, self.grid_marker)),
                             pn.pane.Bokeh(plots.velocity_figure(self.velocity_source, self.velocity_marker)),
                             sizing_mode="stretch_width"),
                      self.slider, pn.pane.Bokeh(self.frame.figure, sizing_mode="stretch_width")]
        parts.append(pn.Card(self.settings, title="settings (re-render with these)", collapsed=not self.detail,
                             sizing_mode="stretch_width"))
        return pn.Column(*parts, sizing_mode="stretch_width")
