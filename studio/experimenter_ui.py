"""The experimenter's page: define a listening test (MOS, A/B, MUSHRA, ABX, SMOS, DCR,
intelligibility; see :mod:`studio.listening`), render its stimuli, share rater links.

MUSHRA, SMOS and DCR need a reference condition (picked among the conditions); MUSHRA
may add the 7 kHz anchor to the 3.5 kHz one.

A condition is a checkpoint with the settings of its model family, or a folder of WAV
files (:class:`studio.condition_form.ConditionForm`, which shows only the family's
controls).  Sentences are typed one per line; ids ``s01``, ``s02``, ... are given in
order, or written as ``id|text`` (folder conditions read ``<id>.wav``).  Gold
(attention) trials are optional: the chosen kinds on the first N sentences, built from
one reference condition (see :mod:`studio.listening`).

"Save design as YAML" downloads the designed test as a test file for
``python -m studio test create`` (:mod:`studio.design_file`).

"Render stimuli" runs :func:`studio.listening.render_stimuli` off the page's thread (one
job at a time) with a progress bar; the test then gets an opaque random id and appears
in the list with its rater link ``?test=<id>``.  Neither the id nor the link says
anything about the conditions; the test's name is shown to experimenters only.
"""

from __future__ import annotations

import io
import itertools
import secrets
import threading
from pathlib import Path
from typing import Callable, Optional

import panel as pn
import param

from core import CheckpointError, ConfigError
from studio.condition_form import FIRST_SPEAKER, FORM_CONTROLS, ConditionForm
from studio.config import PathRefused, StudioSettings
from studio.design_file import design_to_yaml
from studio.jobs import JobOutcome, JobRunner
from studio.listening import (GOLD_KINDS, ID_PATTERN, REFERENCE_TYPES, Condition, GoldTrial, ListeningError, Sentence, TestDesign,
                              build_trials, render_stimuli)
from studio.results import TEST_TYPES, ResultsError, ResultsStore

__all__ = ["ConditionForm", "ExperimenterView", "parse_sentences", "test_ready", "rater_link", "page_address",
           "FIRST_SPEAKER", "FORM_CONTROLS"]

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
        if sep and ID_PATTERN.match(sid.strip()):
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


class ExperimenterView(pn.viewable.Viewer):
    """Define a test, render it, list the tests.  Drive it without a browser: set the
    form's parameters, :meth:`add_condition`, set ``sentences`` /
    ``test_name`` / ``test_type`` / gold options, :meth:`render` (then ``runner.wait()``)."""

    test_type = param.Selector(default="mos", objects=list(TEST_TYPES),
                               doc="MOS (ACR 1-5), A/B preference, MUSHRA, ABX, SMOS, DCR or intelligibility")
    reference = param.Selector(default=None, objects=[], allow_None=True,
                               doc="MUSHRA, SMOS, DCR: the reference condition")
    anchor_7khz = param.Boolean(default=False, doc="MUSHRA: add the 7 kHz low-pass anchor")
    practice = param.Boolean(default=False, doc="start every rater with a practice trial (not counted)")
    subset_per_rater = param.Integer(default=0, bounds=(0, None),
                                     doc="items each rater gets (0: every item); balanced over raters")
    raters_per_item = param.Integer(default=0, bounds=(0, None), doc="raters each item should get (0: not set)")
    instructions = param.String(default="", doc="shown before the first trial (empty: the type's default)")
    consent = param.String(default="", doc="raters must agree to this text first (empty: none asked)")
    headphone_check = param.Boolean(default=False, doc="raters take the antiphase headphone check first")
    test_name = param.String(default="", doc="for experimenters only; raters never see it")
    sentences = param.String(default="", doc="one per line; 'id|text' names the id")
    conditions = param.List(default=[], item_type=Condition)
    gold_kinds = param.ListSelector(default=[], objects=list(GOLD_KINDS["mos"]))
    gold_reference = param.Selector(default=None, objects=[], allow_None=True)
    gold_sentences = param.Integer(default=1, bounds=(1, None), doc="gold trials on the first N sentences")
    message = param.String(default="")
    progress = param.Integer(default=0, bounds=(0, 100))
    last_test = param.String(default="", doc="id of the test rendered last")
    picked_test = param.Selector(default=None, objects={}, allow_None=True,
                                 doc="a test of the list, to render again (in place) or archive")

    def __init__(self, settings: StudioSettings, store: ResultsStore, render: Render, **params):
        super().__init__(**params)
        self.settings, self.store, self.render_clip = settings, store, render
        self.link_base = page_address()
        self.form = ConditionForm(settings)
        self.runner = JobRunner(expected=(ValueError, CheckpointError, OSError))
        self._cancel = threading.Event()
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
        self.param.reference.objects = labels
        if self.reference not in labels:
            self.reference = labels[0] if labels else None
        rows = ["| label | source | settings | seed |", "|---|---|---|---|"]
        for c in self.conditions:
            where = Path(c.checkpoint).name if c.checkpoint else f"{Path(c.folder).name}/ (WAVs)"
            settings = ", ".join(f"{k}={v}" for k, v in c.settings.items()) or "-"
            # file names as code: a bare "demo.pt" would be auto-linked to a web site
            rows.append(f"| {_cell(c.label)} | {_code(where)} | {_cell(settings)} | "
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
        reference = (self.reference or "") if self.test_type in REFERENCE_TYPES else ""
        return TestDesign(test_id, self.test_type, tuple(self.conditions), sentences, tuple(gold),
                          self.test_name.strip() or f"{self.test_type} test {test_id}", reference,
                          self.anchor_7khz and self.test_type == "mushra", self.practice,
                          self.raters_per_item, self.subset_per_rater, self.instructions.strip(),
                          self.consent.strip(), self.headphone_check)

    def design_yaml(self) -> str:
        """The designed test as a YAML test file for ``python -m studio test create``
        (:mod:`studio.design_file`); empty, with a message, when the design is not valid."""
        try:
            text = design_to_yaml(self.design("draft"))
        except (ListeningError, ConfigError) as exc:
            self.message = f"Cannot save the design: {exc}"
            return ""
        self.message = "Design saved as YAML: python -m studio test create --config <file> --results <folder>"
        return text

    def render(self) -> bool:
        """Start rendering the designed test in the background; False (with a message)
        when the design is invalid or a job is already running."""
        try:
            design = self.design(secrets.token_hex(4))
        except (ListeningError, ConfigError) as exc:
            self.message = f"Cannot render: {exc}"
            return False
        return self._start_render(design)

    def render_again(self, test_id: Optional[str] = None) -> bool:
        """Render a listed test again in place (same id, same rater link): only the
        missing stimuli are made, e.g. after a failed or cancelled render."""
        tid = test_id or self.picked_test
        try:
            if tid is None:
                raise ListeningError("pick a test in the list first")
            design = TestDesign.from_dict(self.store.test(tid).design)
        except (ListeningError, ResultsError, ConfigError, TypeError) as exc:
            self.message = f"Cannot render again: {exc}"
            return False
        return self._start_render(design)

    def cancel(self) -> bool:
        """Stop the running render before its next clip (what is made is kept)."""
        if not self.runner.busy:
            self.message = "No render is running."
            return False
        self._cancel.set()
        self.message = "Cancelling after the current clip ..."
        return True

    def archive(self, test_id: Optional[str] = None, archived: bool = True) -> bool:
        """Archive (or restore) a test: raters can no longer open it, the lists hide it;
        its stimuli and ratings stay."""
        tid = test_id or self.picked_test
        if tid is None:
            self.message = "Pick a test in the list first."
            return False
        try:
            self.store.archive_test(tid, archived)
        except ResultsError as exc:
            self.message = f"Cannot archive: {exc}"
            return False
        self.message = f"Test {tid} {'archived' if archived else 'restored'}."
        self.refresh_tests()
        return True

    def _start_render(self, design: TestDesign) -> bool:
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
                self.message = (f"Rendering of {design.test_id} stopped: {outcome.error}. Pick it in the list "
                                "and press 'Render again' to finish it in place, or archive it.")
            self.refresh_tests()

        link = rater_link(design.test_id, self.link_base)
        busy = "Stimuli are being rendered already; wait until that job is done."
        if self.runner.busy:  # before touching the running job's progress and cancel flag
            self.message = busy
            return False
        self.progress = 0
        self._cancel.clear()
        # the message is set first: without a server ``finished`` runs on the worker
        # thread and may be done before ``submit`` returns
        self.message = f"Rendering {design.test_id} ..."
        started = self.runner.submit(lambda: render_stimuli(design, self.store, self.settings.results_dir,
                                                            render_one, cancel=self._cancel),
                                     finished, label="rendering stimuli")
        if not started:
            self.message = busy
            return False
        return True

    def refresh_tests(self) -> None:
        """The list of tests: id, name, type, conditions (+ the vocoder that made them),
        size, state, ratings and the rater link."""
        rows = ["| test | name | type | conditions | sentences | stimuli | state | raters | ratings | rater link |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        tests = list(reversed(self.store.tests(include_archived=False)))
        self.param.picked_test.objects = {f"{t.test_id} ({t.name})": t.test_id for t in tests}
        if self.picked_test not in [t.test_id for t in tests]:
            self.picked_test = tests[0].test_id if tests else None
        for t in tests:
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
            rows.append(f"| {t.test_id} | {_cell(t.name)} | {t.test_type} | {_code(conds)} | {len(design.sentences)} "
                        f"| {len(stimuli)} | {'ready' if ready else 'incomplete: render again'} "
                        f"| {len({r.rater_id for r in ratings})} | {len(ratings)} | {link} |")
        self.tests_pane.object = "\n".join(rows) if len(rows) > 2 else "*No tests yet.*"

    # ------------------------------------------------------------------ layout

    def __panel__(self):
        if getattr(self, "_layout", None) is None:
            self._layout = self._build_layout()
        return self._layout

    def _build_layout(self):
        f, w = self.form, pn.widgets
        ck = f.checkpoint_controls()
        folder = w.TextInput.from_param(f.param.folder, label="WAV folder", width=420,
                                        visible=pn.bind(lambda s: s == "folder", f.param.source))
        add = w.Button(label="Add condition", color="primary")
        add.on_click(lambda _: self.add_condition())
        rescan = w.Button(label="Rescan checkpoints")
        rescan.on_click(lambda _: f.refresh_checkpoints())
        remove_choice = w.Select(label="Condition", options=pn.bind(lambda cs: [c.label for c in cs],
                                                                     self.param.conditions), width=200)
        remove = w.Button(label="Remove")
        remove.on_click(lambda _: self.remove_condition(remove_choice.value) if remove_choice.value else None)
        save = w.FileDownload(callback=lambda: io.BytesIO(self.design_yaml().encode("utf-8")),
                              filename="listening-test.yaml", label="Save design as YAML")
        render = w.Button(label="Render stimuli", color="success", disabled=self.runner.param.busy)
        render.on_click(lambda _: self.render())
        cancel = w.Button(label="Cancel render", disabled=self.runner.param.busy.rx.not_())
        cancel.on_click(lambda _: self.cancel())
        refresh = w.Button(label="Refresh list")
        refresh.on_click(lambda _: self.refresh_tests())
        again = w.Button(label="Render again", disabled=self.runner.param.busy)
        again.on_click(lambda _: self.render_again())
        archive = w.Button(label="Archive")
        archive.on_click(lambda _: self.archive())
        alert = pn.pane.Alert(self.param.message, alert_type="info", visible=pn.bind(bool, self.param.message))
        return pn.Column(
            "## New listening test",
            pn.Row(w.RadioButtonGroup.from_param(self.param.test_type),
                   w.TextInput.from_param(self.param.test_name, label="Name (experimenters only)", width=320),
                   w.Checkbox.from_param(self.param.practice, label="Start with a practice trial")),
            pn.Row(w.IntInput.from_param(self.param.subset_per_rater, label="Items per rater (0: all)", width=180),
                   w.IntInput.from_param(self.param.raters_per_item, label="Raters per item (0: not set)",
                                         width=180),
                   w.Checkbox.from_param(self.param.headphone_check, label="Headphone check first")),
            pn.Row(w.TextAreaInput.from_param(self.param.instructions, label="Instructions (empty: the default)",
                                              width=400, height=80),
                   w.TextAreaInput.from_param(self.param.consent, label="Consent text (empty: none asked)",
                                              width=400, height=80)),
            pn.Row(w.Select.from_param(self.param.reference, label="Reference condition", width=220),
                   w.Checkbox.from_param(self.param.anchor_7khz, label="Add the 7 kHz anchor",
                                         visible=self.param.test_type.rx() == "mushra"),
                   visible=self.param.test_type.rx().rx.in_(list(REFERENCE_TYPES))),
            "### Conditions", self.conditions_pane, pn.Row(remove_choice, remove),
            pn.Row(w.TextInput.from_param(f.param.label, label="Label", width=200),
                   w.RadioButtonGroup.from_param(f.param.source), rescan),
            ck, folder, add,
            "### Sentences",
            w.TextAreaInput.from_param(self.param.sentences, label="One per line ('id|text' names the id)",
                                       height=140, sizing_mode="stretch_width"),
            "### Gold (attention) trials (optional)",
            pn.Row(w.CheckButtonGroup.from_param(self.param.gold_kinds),
                   w.Select.from_param(self.param.gold_reference, label="Reference condition", width=200),
                   w.IntInput.from_param(self.param.gold_sentences, label="On the first N sentences", width=160)),
            pn.Row(render, cancel, pn.indicators.Progress(value=self.param.progress, max=100, width=300), save),
            alert, "## Tests",
            pn.Row(w.Select.from_param(self.param.picked_test, label="Test", width=320), again, archive, refresh),
            self.tests_pane, sizing_mode="stretch_width")


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    """Text as code inside a Markdown table cell (never turned into a link)."""
    return "`" + _cell(text).replace("`", "'") + "`"
