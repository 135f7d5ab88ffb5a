"""The studio: ``panel serve studio/app.py [--args --checkpoints DIR1,DIR2 --results DIR]``.

:func:`create_app` builds one page per browser session (``panel serve`` runs this file
for each session; nothing here holds state between sessions).  Tabs: Explorer, Compare,
Training, then the listening-test tabs.  Folders: see :mod:`studio.config`.

Hook for the listening tests: if the module ``studio.listening_ui`` exists, its
``build_listening_tabs(settings: StudioSettings) -> list[tuple[str, Viewable]]`` gives
the tabs (title, content) appended after Training; until then "Listening tests" and
"Results" say they are coming.

Importing this module has no side effects; the page is made servable only when Bokeh
runs the file (``__name__`` starts with ``bokeh``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Mapping, Optional, Sequence

import panel as pn

from studio.config import StudioConfigError, StudioSettings, parse_settings

__all__ = ["create_app", "build_tabs", "listening_tabs", "LISTENING_MODULE", "TITLE"]

TITLE = "flowtts studio"
LISTENING_MODULE = "studio.listening_ui"


def listening_tabs(settings: StudioSettings) -> list[tuple[str, pn.viewable.Viewable]]:
    """The listening-test tabs from :data:`LISTENING_MODULE`, or "coming soon" pages."""
    if importlib.util.find_spec(LISTENING_MODULE) is not None:
        module = importlib.import_module(LISTENING_MODULE)
        return list(module.build_listening_tabs(settings))
    soon = "Blind MOS and A/B listening tests arrive with the listening-test UI (coming soon)."
    return [("Listening tests", pn.pane.Markdown(f"### Listening tests\n\n{soon}")),
            ("Results", pn.pane.Markdown(f"### Results\n\n{soon} Results will be stored in "
                                         f"`{settings.results_dir}`."))]


def build_tabs(settings: StudioSettings) -> pn.Tabs:
    """Explorer, Compare, Training and the listening-test tabs for one session."""
    from studio.explorer import CompareView, Explorer, SynthesisService
    from studio.training_view import TrainingView

    service = SynthesisService(settings)
    return pn.Tabs(("Explorer", Explorer(service)), ("Compare", CompareView(service)),
                   ("Training", TrainingView(settings)), *listening_tabs(settings),
                   dynamic=False, sizing_mode="stretch_width")


def _footer(settings: StudioSettings) -> str:
    folders = ", ".join(f"`{d}`" for d in settings.checkpoint_dirs)
    return (f"Checkpoint folders: {folders} · results: `{settings.results_dir}` · device: {settings.device} · "
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
    if importlib.util.find_spec(LISTENING_MODULE) is not None:
        listening = importlib.import_module(LISTENING_MODULE)
        if listening.is_rater_page():
            # A rater sees the Rate page alone: no explorer, no folder paths, nothing
            # that could name a condition.
            (_, rate), = listening.build_listening_tabs(settings)
            return pn.Column(pn.pane.Markdown(f"## {TITLE}"), rate, sizing_mode="stretch_width")
    return pn.Column(pn.pane.Markdown(f"## {TITLE}"), build_tabs(settings),
                     pn.pane.Markdown(_footer(settings), styles={"font-size": "small", "color": "#666"}),
                     sizing_mode="stretch_width")


if __name__.startswith("bokeh"):
    create_app().servable(title=TITLE)
