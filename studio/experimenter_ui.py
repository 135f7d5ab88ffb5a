"""The experimenter's page: define a MOS or A/B test, render its stimuli, share rater links.

A condition is a checkpoint found under the configured folders (or the bundled demo)
with sampler settings -- steps, solver, time-grid schedule and sway, guidance (cfg),
duration scale, temperature, vocoder, speaker, seed -- or a folder of existing
``<sentence id>.wav`` files inside the configured folders (paths elsewhere are
refused).  Sentences are typed one per line; ids ``s01``, ``s02``, ... are given in
order, or written as ``id|text`` (folder conditions read ``<id>.wav``).  Gold
(attention) trials are optional: the chosen kinds on the first N sentences, built from
one reference condition (see :mod:`studio.listening`).

"Render stimuli" runs :func:`studio.listening.render_stimuli` off the page's thread (one
job at a time) with a progress bar; the test then gets an opaque random id and appears
in the list with its rater link ``?test=<id>``.  Neither the id nor the link says
anything about the conditions; the test's name is shown to experimenters only.
"""

from __future__ import annotations

import itertools
import re
import secrets
from pathlib import Path
from typing import Callable, Optional

import panel as pn
import param

from core import CheckpointError, ConfigError
from core.sampling import FIXED_STEP_SOLVERS, SCHEDULES, SWAY_RANGE
from studio.config import PathRefused, StudioSettings, find_checkpoints, resolve_inside
from studio.jobs import JobOutcome, JobRunner
from studio.listening import (GOLD_KINDS, Condition, GoldTrial, ListeningError, Sentence, TestDesign, build_trials,
                              render_stimuli)
from studio.render import synthesis_options
from studio.results import ResultsStore

__all__ = ["ConditionForm", "ExperimenterView", "parse_sentences", "test_ready", "rater_link", "page_address",
           "VOCODER_WORDS"]

VOCODER_WORDS = ("auto", "griffin-lim")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
Render = Callable[[Condition, str, int], object]


def parse_sentences(text: str) -> tuple[Sentence, ...]:
    """Sentences from a textarea: one per non-blank line, ``id|text`` or just text (ids
    ``s01``, ``s02``, ... by line order, wider when there are 100 or more)."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        raise ListeningError("type at least one sentence (one per line)")
    width = max(2, len(str(len(lines))))
    out = []
    for k, line in enumerate(lines, 1):
        sid, sep, rest = line.partition("|")
        if sep and _ID.match(sid.strip()):
            out.append(Sentence(sid.strip(), rest.strip()))
        else:
            out.append(Sentence(f"s{k:0{width}d}", line))
    return tuple(out)


def test_ready(design: TestDesign, store: ResultsStore) -> bool:
    """Whether every stimulus of the test exists (a rater order can be built)."""
    try:
        build_trials(design, store.stimuli(design.test_id), 0)
    except ListeningError:
        return False
    return True


def page_address() -> str:
    """This page's address without the query (empty outside a server session)."""
    loc = pn.state.location
    if loc is None or not loc.pathname:
        return ""
    host = f"{loc.protocol}//{loc.hostname}{':' + loc.port if loc.port else ''}" if loc.hostname else ""
    return host + loc.pathname


def rater_link(test_id: str, base: str = "") -> str:
    """The rater URL of a test: ``base`` (the page's address) with ``?test=<id>``."""
    return f"{base}?test={test_id}"


def _on_page(doc, fn: Callable[[], None]) -> None:
    """Run ``fn`` on the page's thread (a server session) or right away (no server)."""
    if doc is not None:
        doc.add_next_tick_callback(fn)
    else:
        fn()


class ConditionForm(param.Parameterized):
    """The condition being defined; :meth:`condition` turns it into a checked :class:`Condition`."""

    label = param.String(default="", doc="experimenter's name for it (never shown to raters)")
    source = param.Selector(default="checkpoint", objects=["checkpoint", "folder"])
    checkpoint = param.Selector(default=None, objects=[], allow_None=True, doc="a found checkpoint")
    folder = param.String(default="", doc="folder of <sentence id>.wav files, inside the configured folders")
    steps = param.Integer(default=10, bounds=(1, 1000))
    solver = param.Selector(default="euler", objects=list(FIXED_STEP_SOLVERS))
    schedule = param.Selector(default="sway", objects=list(SCHEDULES))
    sway = param.Number(default=-1.0, bounds=SWAY_RANGE)
    cfg = param.Number(default=0.0, bounds=(0.0, 20.0))
    duration_scale = param.Number(default=1.0, bounds=(0.1, 10.0))
    temperature = param.Number(default=1.0, bounds=(0.0, 10.0))
    vocoder = param.String(default="auto", doc="auto, griffin-lim, hub:<owner/name> or a Vocos folder")
    speaker = param.String(default="", doc="name or index; empty: the first speaker")
    seed = param.Integer(default=0, bounds=(0, 2 ** 31 - 1))

    def __init__(self, settings: StudioSettings, **params):
        super().__init__(**params)
        self.settings = settings
        self.refresh_checkpoints()

    def refresh_checkpoints(self) -> None:
        found = {e.label: str(e.path) for e in find_checkpoints(self.settings)}
        self.param.checkpoint.objects = found
        if self.checkpoint not in found.values():
            self.checkpoint = next(iter(found.values()), None)

    def _vocoder(self) -> str:
        spec = self.vocoder.strip() or "auto"
        if spec in VOCODER_WORDS or spec.startswith("hub:"):
            return spec
        return str(resolve_inside(spec, self.settings.roots))

    def condition(self, label: str) -> Condition:
        """The condition (``label`` used when the form's label is blank); raises
        ListeningError / ConfigError / PathRefused with a message for the page."""
        label = self.label.strip() or label
        if self.source == "folder":
            if not self.folder.strip():
                raise ListeningError("give the folder of WAV files for this condition")
            folder = resolve_inside(self.folder.strip(), self.settings.roots)
            if not folder.is_dir():
                raise ListeningError(f"{self.folder}: not a folder")
            return Condition(label, folder=str(folder))
        allowed = {str(e.path) for e in find_checkpoints(self.settings)}
        if self.checkpoint is None or self.checkpoint not in allowed:
            raise ListeningError("choose a checkpoint (none found under the configured folders?)")
        settings = {"steps": self.steps, "solver": self.solver, "schedule": self.schedule, "sway": self.sway,
                    "cfg": self.cfg, "duration_scale": self.duration_scale, "temperature": self.temperature,
                    "vocoder": self._vocoder()}
        if self.speaker.strip():
            settings["speaker"] = self.speaker.strip()
        synthesis_options(settings)
        return Condition(label, checkpoint=self.checkpoint, settings=settings, seed=self.seed)


class ExperimenterView(pn.viewable.Viewer):
    """Define a test, render it, list the tests.  Drive it without a browser: set the
    form's parameters, :meth:`add_condition`, set ``sentences`` /
    ``test_name`` / ``test_type`` / gold options, :meth:`render` (then ``runner.wait()``)."""

    test_type = param.Selector(default="mos", objects=["mos", "ab"], doc="MOS (ACR 1-5) or A/B preference")
    test_name = param.String(default="", doc="for experimenters only; raters never see it")
    sentences = param.String(default="", doc="one per line; 'id|text' names the id")
    conditions = param.List(default=[], item_type=Condition)
    gold_kinds = param.ListSelector(default=[], objects=list(GOLD_KINDS["mos"]))
    gold_reference = param.Selector(default=None, objects=[], allow_None=True)
    gold_sentences = param.Integer(default=1, bounds=(1, None), doc="gold trials on the first N sentences")
    message = param.String(default="")
    progress = param.Integer(default=0, bounds=(0, 100))
    last_test = param.String(default="", doc="id of the test rendered last")

    def __init__(self, settings: StudioSettings, store: ResultsStore, render: Render, **params):
        super().__init__(**params)
        self.settings, self.store, self.render_clip = settings, store, render
        self.link_base = page_address()
        self.form = ConditionForm(settings)
        self.runner = JobRunner(expected=(ValueError, CheckpointError, OSError))
        self.tests_pane = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.conditions_pane = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.param.watch(self._type_changed, "test_type")
        self.param.watch(self._conditions_changed, "conditions")
        self._conditions_changed()
        self.refresh_tests()

    # ------------------------------------------------------------------ conditions

    def _type_changed(self, event=None) -> None:
        self.param.gold_kinds.objects = list(GOLD_KINDS[self.test_type])
        self.gold_kinds = [k for k in self.gold_kinds if k in GOLD_KINDS[self.test_type]]

    def _conditions_changed(self, event=None) -> None:
        labels = [c.label for c in self.conditions]
        self.param.gold_reference.objects = labels
        if self.gold_reference not in labels:
            self.gold_reference = labels[0] if labels else None
        rows = ["| label | source | settings | seed |", "|---|---|---|---|"]
        for c in self.conditions:
            where = Path(c.checkpoint).name if c.checkpoint else f"{Path(c.folder).name}/ (WAVs)"
            settings = ", ".join(f"{k}={v}" for k, v in c.settings.items()) or "-"
            rows.append(f"| {_cell(c.label)} | {_cell(where)} | {_cell(settings)} | "
                        f"{c.seed if c.checkpoint else '-'} |")
        self.conditions_pane.object = "\n".join(rows) if self.conditions else "*No conditions yet.*"

    def add_condition(self) -> Optional[Condition]:
        """Add the form's condition; None (with a message) when it is not valid."""
        taken = {c.label for c in self.conditions}
        auto = next(f"c{k}" for k in itertools.count(1) if f"c{k}" not in taken)
        try:
            cond = self.form.condition(auto)
        except (ListeningError, ConfigError, PathRefused) as exc:
            self.message = f"Condition not added: {exc}"
            return None
        if cond.label in taken:
            self.message = f"Condition not added: the label {cond.label!r} is taken; choose another"
            return None
        self.conditions = [*self.conditions, cond]
        self.form.label = ""
        self.message = f"Added condition {cond.label!r}."
        return cond

    def remove_condition(self, label: str) -> None:
        self.conditions = [c for c in self.conditions if c.label != label]

    # ------------------------------------------------------------------ the test

    def design(self, test_id: str) -> TestDesign:
        """The test as designed on the page; raises ListeningError with what to fix."""
        sentences = parse_sentences(self.sentences)
        for c in self.conditions:
            if c.folder is not None:
                missing = [f"{s.id}.wav" for s in sentences if not (Path(c.folder) / f"{s.id}.wav").is_file()]
                if missing:
                    raise ListeningError(f"condition {c.label!r}: its folder lacks {', '.join(missing[:5])}"
                                         f"{' ...' if len(missing) > 5 else ''} (write sentences as 'id|text')")
        gold = []
        if self.gold_kinds:
            if self.gold_reference is None:
                raise ListeningError("gold trials need a reference condition")
            gold = [GoldTrial(kind, self.gold_reference, s.id)
                    for kind in self.gold_kinds for s in sentences[:self.gold_sentences]]
        return TestDesign(test_id, self.test_type, tuple(self.conditions), sentences, tuple(gold),
                          self.test_name.strip() or f"{self.test_type} test {test_id}")

    def render(self) -> bool:
        """Start rendering the designed test in the background; False (with a message)
        when the design is invalid or a job is already running."""
        try:
            design = self.design(secrets.token_hex(4))
        except (ListeningError, ConfigError) as exc:
            self.message = f"Cannot render: {exc}"
            return False
        total = max(1, sum(c.kind == "checkpoint" for c in design.conditions) * len(design.sentences))
        doc = pn.state.curdoc if pn.state.curdoc is not None and pn.state.curdoc.session_context else None
        counter = itertools.count(1)

        def render_one(condition, text, seed):
            clip = self.render_clip(condition, text, seed)
            done = next(counter)
            _on_page(doc, lambda: self.param.update(progress=min(100, round(100 * done / total))))
            return clip

        def finished(outcome: JobOutcome) -> None:
            if outcome.ok:
                self.param.update(progress=100, last_test=design.test_id,
                                  message=f"Rendered {len(outcome.value)} stimuli in {outcome.seconds:.1f} s. "
                                          f"Test {design.test_id} is open: share {link}")
            else:
                self.message = f"Rendering failed: {outcome.error}"
            self.refresh_tests()

        link = rater_link(design.test_id, self.link_base)
        self.progress = 0
        started = self.runner.submit(lambda: render_stimuli(design, self.store, self.settings.results_dir,
                                                            render_one), finished, label="rendering stimuli")
        if not started:
            self.message = "Stimuli are being rendered already; wait until that job is done."
            return False
        self.message = f"Rendering {design.test_id} ..."
        return True

    def refresh_tests(self) -> None:
        """The list of tests: id, name, type, conditions (+ the vocoder that made them),
        size, state, ratings and the rater link."""
        rows = ["| test | name | type | conditions | sentences | stimuli | state | raters | ratings | rater link |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for t in reversed(self.store.tests()):
            try:
                design = TestDesign.from_dict(t.design)
            except (ListeningError, ConfigError, TypeError):
                rows.append(f"| {t.test_id} | {_cell(t.name)} | {t.test_type} | (unreadable design) |||||||")
                continue
            stimuli = self.store.stimuli(t.test_id)
            made = {}
            for s in stimuli:
                made.setdefault(s.condition, set()).add(str(s.provenance.get("vocoder") or "-"))
            conds = ", ".join(f"{c.label} [{'/'.join(sorted(made.get(c.label, {'?'})))}]" for c in design.conditions)
            ratings = self.store.ratings(t.test_id)
            ready = test_ready(design, self.store)
            url = rater_link(t.test_id, self.link_base)
            link = f"[{url}]({url})" if ready else "-"
            rows.append(f"| {t.test_id} | {_cell(t.name)} | {t.test_type} | {_cell(conds)} | {len(design.sentences)} "
                        f"| {len(stimuli)} | {'ready' if ready else 'incomplete: render again'} "
                        f"| {len({r.rater_id for r in ratings})} | {len(ratings)} | {link} |")
        self.tests_pane.object = "\n".join(rows) if len(rows) > 2 else "*No tests yet.*"

    # ------------------------------------------------------------------ layout

    def __panel__(self):
        if getattr(self, "_layout", None) is None:
            self._layout = self._build_layout()
        return self._layout

    def _build_layout(self):
        f = self.form
        source = pn.widgets.RadioButtonGroup.from_param(f.param.source)
        ck = pn.Column(pn.widgets.Select.from_param(f.param.checkpoint, label="Checkpoint", width=420),
                       pn.Row(*(pn.widgets.IntInput.from_param(f.param[n], width=110) for n in ("steps", "seed")),
                              pn.widgets.Select.from_param(f.param.solver, width=110),
                              pn.widgets.Select.from_param(f.param.schedule, width=110)),
                       pn.Row(*(pn.widgets.FloatInput.from_param(f.param[n], width=110)
                                for n in ("sway", "cfg", "duration_scale", "temperature"))),
                       pn.Row(pn.widgets.TextInput.from_param(f.param.vocoder, width=220),
                              pn.widgets.TextInput.from_param(f.param.speaker, width=160)),
                       visible=pn.bind(lambda s: s == "checkpoint", f.param.source))
        folder = pn.widgets.TextInput.from_param(f.param.folder, label="WAV folder", width=420,
                                                 visible=pn.bind(lambda s: s == "folder", f.param.source))
        add = pn.widgets.Button(label="Add condition", color="primary")
        add.on_click(lambda _: self.add_condition())
        rescan = pn.widgets.Button(label="Rescan checkpoints")
        rescan.on_click(lambda _: f.refresh_checkpoints())
        remove_choice = pn.widgets.Select(label="Condition", options=pn.bind(lambda cs: [c.label for c in cs],
                                                                              self.param.conditions), width=200)
        remove = pn.widgets.Button(label="Remove")
        remove.on_click(lambda _: self.remove_condition(remove_choice.value) if remove_choice.value else None)
        render = pn.widgets.Button(label="Render stimuli", color="success",
                                   disabled=self.runner.param.busy)
        render.on_click(lambda _: self.render())
        refresh = pn.widgets.Button(label="Refresh list")
        refresh.on_click(lambda _: self.refresh_tests())
        alert = pn.pane.Alert(self.param.message, alert_type="info",
                              visible=pn.bind(bool, self.param.message))
        return pn.Column(
            "## New listening test",
            pn.Row(pn.widgets.RadioButtonGroup.from_param(self.param.test_type),
                   pn.widgets.TextInput.from_param(self.param.test_name, label="Name (experimenters only)", width=320)),
            "### Conditions", self.conditions_pane, pn.Row(remove_choice, remove),
            pn.Row(pn.widgets.TextInput.from_param(f.param.label, label="Label", width=200), source, rescan),
            ck, folder, add,
            "### Sentences",
            pn.widgets.TextAreaInput.from_param(self.param.sentences, label="One per line ('id|text' names the id)",
                                                height=140, sizing_mode="stretch_width"),
            "### Gold (attention) trials (optional)",
            pn.Row(pn.widgets.CheckButtonGroup.from_param(self.param.gold_kinds),
                   pn.widgets.Select.from_param(self.param.gold_reference, label="Reference condition", width=200),
                   pn.widgets.IntInput.from_param(self.param.gold_sentences, label="On the first N sentences",
                                                  width=160)),
            pn.Row(render, pn.indicators.Progress(value=self.param.progress, max=100, width=300)),
            alert, "## Tests", refresh, self.tests_pane, sizing_mode="stretch_width")


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")
