"""The studio: ``panel serve studio/app.py [--args --checkpoints DIR1,DIR2 --results DIR]``.

:func:`create_app` builds one page per browser session (``panel serve`` runs this file
for each session; nothing here holds state between sessions).  Tabs: Explorer, Compare,
Training, then the listening-test tabs.  Folders: see :mod:`studio.config`.

The listening-test tabs (Experimenter, Rate, Results) come from
:func:`studio.listening_ui.build_listening_tabs`; a rater link shows the Rate page alone.
The server sets torch's CPU threads once (``--threads``, see :mod:`core.threads`).

Importing this module has no side effects; the page is made servable only when Bokeh
runs the file (``__name__`` starts with ``bokeh``).
"""

from __future__ import annotations

import sys
from typing import Mapping, Optional, Sequence

import panel as pn
import torch

from studio.config import StudioConfigError, StudioSettings, parse_settings

__all__ = ["create_app", "build_tabs", "TITLE"]

TITLE = "flowtts studio"


def build_tabs(settings: StudioSettings) -> pn.Tabs:
    """Explorer, Compare, Training and the listening-test tabs for one session."""
    from studio.explorer_ui import CompareView, Explorer, SynthesisService
    from studio.listening_ui import build_listening_tabs
    from studio.training_ui import TrainingView

    service = SynthesisService(settings)
    return pn.Tabs(("Explorer", Explorer(service)), ("Compare", CompareView(service)),
                   ("Training", TrainingView(settings)), *build_listening_tabs(settings),
                   dynamic=False, sizing_mode="stretch_width")


def _footer(settings: StudioSettings) -> str:
    folders = ", ".join(f"`{d}`" for d in settings.checkpoint_dirs)
    return (f"Checkpoint folders: {folders} · results: `{settings.results_dir}` · device: {settings.device} · "
            f"torch threads: {torch.get_num_threads()} · "
            "set with `panel serve studio/app.py --args --checkpoints DIR1,DIR2 --results DIR`")


def create_app(argv: Optional[Sequence[str]] = None, env: Optional[Mapping[str, str]] = None) -> pn.viewable.Viewable:
    """The studio page for one session.  ``argv``: the ``--args`` options (default
    ``sys.argv[1:]``, which ``panel serve`` sets); ``env``: default ``os.environ``.
    A bad option gives a page saying what is wrong instead of the studio."""
    pn.extension()
    try:
        settings = parse_settings(sys.argv[1:] if argv is None else argv, env)
    except StudioConfigError as exc:
        return pn.Column(pn.pane.Markdown(f"# {TITLE}"), pn.pane.Alert(str(exc), alert_type="danger"),
                         sizing_mode="stretch_width")
    from core.threads import configure_threads

    configure_threads(settings.threads)  # the server shares the cores: see core.threads
    from studio import listening_ui

    if listening_ui.is_rater_page():
        # A rater sees the Rate page alone: no explorer, no folder paths, nothing that
        # could name a condition.
        (_, rate), = listening_ui.build_listening_tabs(settings)
        return pn.Column(pn.pane.Markdown(f"## {TITLE}"), rate, sizing_mode="stretch_width")
    return pn.Column(pn.pane.Markdown(f"## {TITLE}"), build_tabs(settings),
                     pn.pane.Markdown(_footer(settings), styles={"font-size": "small", "color": "#666"}),
                     sizing_mode="stretch_width")


if __name__.startswith("bokeh"):
    create_app().servable(title=TITLE)
