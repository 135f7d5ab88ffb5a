"""A single-worker background runner: slow work (loading a model, synthesis) runs off
the UI thread, one job at a time; a job submitted while another runs is refused, not
queued.

Results come back on the page's thread: under ``panel serve`` the ``done`` callback is
scheduled with ``Document.add_next_tick_callback`` (the one thread-safe Bokeh document
method), so it may update widgets and plots directly; without a server (tests, a
notebook) it runs on the worker thread right after the work.  Exceptions of the work
are caught and handed to ``done`` as :class:`JobOutcome` ``error``; those in
``expected`` become their message alone (for the page), anything else is logged with
its traceback and shown as ``"internal error: <type>: <message>"``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import panel as pn
import param

__all__ = ["JobOutcome", "JobRunner", "on_page_load"]

log = logging.getLogger(__name__)


def on_page_load(callback: Callable[[], None]) -> None:
    """Run ``callback`` once this session's page is loaded in the browser (under
    ``panel serve``), or right away without a server (tests, notebooks).  Background
    jobs must not start while the page is still being built: Bokeh makes the server
    session only after the page function returns, and a job finishing in between may
    find no session to hand its result to."""
    doc = pn.state.curdoc
    if doc is not None and doc.session_context is not None:
        pn.state.onload(callback)
    else:
        callback()


@dataclass
class JobOutcome:
    """What a job produced: ``value`` on success, else ``error`` (a message for users)."""

    label: str
    value: Any = None
    error: Optional[str] = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


class JobRunner(param.Parameterized):
    """Runs one job at a time on a background thread.

    ``busy`` is True from :meth:`submit` until the job's ``done`` callback has run;
    ``label`` says what is running (for a busy indicator).
    """

    busy = param.Boolean(default=False, doc="a job is running")
    label = param.String(default="", doc="what the running job does")

    def __init__(self, expected: tuple[type[BaseException], ...] = (ValueError,), **params):
        super().__init__(**params)
        self._expected = expected
        # held while the busy state changes (and the watchers of ``busy`` run, which may
        # submit a follow-up job), so ``wait`` never sees a half-finished hand-over
        self._lock = threading.RLock()
        self._idle = threading.Event()
        self._idle.set()
        self._doc = None

    def submit(self, work: Callable[[], Any], done: Callable[[JobOutcome], None], label: str = "working") -> bool:
        """Start ``work()`` in the background and call ``done(outcome)`` afterwards.
        Returns False (and does nothing) when a job is already running."""
        with self._lock:
            if not self._idle.is_set():
                return False
            self._idle.clear()
            doc = pn.state.curdoc
            if doc is not None and doc.session_context is not None:
                self._doc = doc  # a follow-up submitted from a watcher may not see curdoc
            doc = self._doc
            self.param.update(busy=True, label=label)
        self._start(work, done, label, doc)
        return True

    def _start(self, work, done, label: str, doc) -> None:
        """Run the job on a new daemon thread (tests replace this to run it inline)."""
        threading.Thread(target=self._run, args=(work, done, label, doc), daemon=True,
                         name=f"studio-job-{label}").start()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until no job runs, ``done`` callbacks and follow-up jobs they started
        included; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._idle.wait(remaining):
                return False
            with self._lock:
                if self._idle.is_set() and not self.busy:
                    return True

    def _run(self, work, done, label: str, doc) -> None:
        start = time.perf_counter()
        try:
            outcome = JobOutcome(label, value=work())
        except self._expected as exc:
            outcome = JobOutcome(label, error=str(exc) or type(exc).__name__)
        except Exception as exc:  # shown without a traceback; the server log has it
            log.exception("studio job %r failed", label)
            outcome = JobOutcome(label, error=f"internal error: {type(exc).__name__}: {exc}")
        outcome.seconds = time.perf_counter() - start
        once = threading.Lock()  # a hand-over that failed half-way may still run: finish once only

        def finish() -> None:
            if once.acquire(blocking=False):
                self._finish(done, outcome)

        if doc is None or not self._hand_over(doc, finish):
            finish()

    @staticmethod
    def _hand_over(doc, callback, tries: int = 50, pause: float = 0.1) -> bool:
        """Schedule ``callback`` on the page's thread; False if the document refuses for
        ``tries`` x ``pause`` seconds (a session being built, or destroyed because the
        browser left).  The caller then finishes on this thread, so the runner never
        stays busy with nobody to call back (the studio's stuck "reading checkpoint")."""
        for attempt in range(tries):
            try:
                doc.add_next_tick_callback(callback)
                return True
            except Exception as exc:  # RuntimeError (destroyed), AttributeError (half-made session)
                if attempt == tries - 1:
                    log.warning("studio job: the page did not take the result (%s: %s); finishing here",
                                type(exc).__name__, exc)
                time.sleep(pause)
        return False

    def _finish(self, done, outcome: JobOutcome) -> None:
        try:
            done(outcome)
        except Exception:
            log.exception("studio job %r: updating the page failed", outcome.label)
        finally:
            with self._lock:
                self._idle.set()
                self.param.update(busy=False, label="")  # watchers may submit the next job
