"""The listening-test tabs of the studio: Experimenter, Rate, Results.

``build_listening_tabs(settings) -> list[(title, viewable)]`` is the hook
``studio/app.py`` calls once per browser session.  It gives

* ``[("Experimenter", ...), ("Rate", ...), ("Results", ...)]`` to experimenters, and
* ``[("Rate", ...)]`` alone on a rater page (:func:`rater_mode`, :func:`is_rater_page`),
  so that nothing a rater can open names a condition.  The app shell should then show
  this page alone (no explorer tabs, no footer with folder names).

Who is who:

* A page opened with ``?test=<id>`` (the rater link the Experimenter tab shares) is a
  rater page; the Rate tab then runs that test.
* With ``panel serve ... --basic-auth users.json`` the signed-in user
  (``pn.state.user``) is the rater id.  Signed-in users are raters unless listed in the
  environment variable ``FLOWTTS_EXPERIMENTERS`` (user names separated by commas):
  only those see the Experimenter and Results tabs.
* Without basic auth everybody may experiment (a local, single-user studio), and
  raters type their id.

State: one :class:`~studio.results.ResultsStore` per results folder and one
:class:`~studio.stimulus_renderer.StimulusRenderer` per server process are shared by all sessions
(both are thread-safe); every view object belongs to one session.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Mapping, Optional

import panel as pn

from studio.config import StudioSettings
from studio.experimenter_ui import ExperimenterView
from studio.rater_ui import RaterView
from studio.stimulus_renderer import StimulusRenderer
from studio.results import ResultsStore
from studio.results_ui import ResultsView
from studio.synthesis import shared_pool

__all__ = ["build_listening_tabs", "rater_mode", "is_rater_page", "page_user", "page_test", "experimenters",
           "shared_store", "shared_renderer", "ENV_EXPERIMENTERS"]

ENV_EXPERIMENTERS = "FLOWTTS_EXPERIMENTERS"


@functools.lru_cache(maxsize=None)
def shared_store(results_dir: Path) -> ResultsStore:
    """The results store of a folder, one per server process."""
    return ResultsStore(results_dir)


@functools.lru_cache(maxsize=None)
def shared_renderer(device: str, prompt_roots: tuple[Path, ...] = ()) -> StimulusRenderer:
    """The stimulus renderer (and its loaded models), one per device (and set of folders a
    voice prompt may lie in) per server process."""
    return StimulusRenderer(pool=shared_pool(device), prompt_roots=prompt_roots)


def page_user() -> Optional[str]:
    """The signed-in user of this session (``--basic-auth``), else None."""
    user = pn.state.user if pn.state.curdoc is not None else None
    return str(user) if user else None


def page_test() -> Optional[str]:
    """The ``test`` query parameter of this page's URL, else None."""
    loc = pn.state.location if pn.state.curdoc is not None else None
    if loc is None:
        return None
    value = loc.query_params.get("test")
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    if value is None:
        return None
    return str(value).strip() or None


def experimenters(env: Optional[Mapping[str, str]] = None) -> set[str]:
    """User names allowed to experiment when basic auth is on (``FLOWTTS_EXPERIMENTERS``)."""
    env = os.environ if env is None else env
    return {u.strip() for u in env.get(ENV_EXPERIMENTERS, "").split(",") if u.strip()}


def rater_mode(user: Optional[str] = None, test_id: Optional[str] = None,
               env: Optional[Mapping[str, str]] = None) -> bool:
    """True when the page must show the Rate tab alone: a rater link (``test_id``) or a
    signed-in ``user`` who is not an experimenter (see module doc)."""
    if test_id:
        return True
    return user is not None and user not in experimenters(env)


def is_rater_page(env: Optional[Mapping[str, str]] = None) -> bool:
    """Whether this session's page must show the Rate page alone (see :func:`rater_mode`):
    the app shell then shows nothing else -- no explorer, no folder names."""
    return rater_mode(page_user(), page_test(), env)


def build_listening_tabs(settings: StudioSettings, *, user: Optional[str] = None, test_id: Optional[str] = None,
                         env: Optional[Mapping[str, str]] = None) -> list[tuple[str, pn.viewable.Viewable]]:
    """The listening-test tabs for one session (see module doc).  ``user`` and
    ``test_id`` default to this page's signed-in user and ``?test=`` parameter."""
    user = page_user() if user is None else user
    test_id = page_test() if test_id is None else test_id
    store = shared_store(settings.results_dir)
    rate = RaterView(store, user=user, test_id=test_id)
    if rater_mode(user, test_id, env):
        return [("Rate", rate)]
    experimenter = ExperimenterView(settings, store, shared_renderer(settings.device, settings.roots))
    return [("Experimenter", experimenter), ("Rate", rate), ("Results", ResultsView(store))]
