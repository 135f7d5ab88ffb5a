"""The rater's page: one blind trial at a time, bound to a :class:`studio.rater_session.RaterSession`.

What the page shows and sends never names a condition: the test is picked by its
opaque id (never its name, which may name systems), clips are embedded as ``data:``
URLs of the stimulus WAV bytes (the files are loudness-normalised copies under random
names, so neither URL nor bytes carry a label), and the players are called "A" / "B"
(or "the clip" for MOS).

Per test type: MOS, SMOS and DCR answer with five buttons (SMOS and DCR after a
reference clip, with their own labels); A/B with A / B / no preference (+ optional
CMOS); ABX with "X is A" / "X is B"; MUSHRA with a slider 0..100 under every clip after
the open reference (each must be moved, the hidden reference's too, before "Submit
ratings" is taken); intelligibility with a text box (the sentence is not shown).

Keyboard (:class:`KeyShortcuts`): A, B, X and R play clip A, B, X and the reference,
P the single clip of a MOS or intelligibility trial; 1-5 give that score in MOS, SMOS
and DCR trials (only once the buttons are enabled).  Keys typed into a text box are
left alone.  After the last trial the page shows the session's completion code
(:func:`studio.results.completion_code`).

Play tracking: :class:`ClipPlayer` is a small HTML ``<audio>`` component that reports
``play`` and ``ended`` events with how much of the clip was actually played (the
element's ``played`` time ranges).  A clip counts as heard to the end when ``ended``
fired and at least :data:`MIN_HEARD_FRACTION` of it was played, so seeking to the
end does not count.  Answer buttons stay disabled until every clip of the trial was
heard; the server-side check in ``RaterSession.submit`` stays the authority and its
message is shown when it refuses.

Rater id: the ``panel serve --basic-auth`` user (``pn.state.user``) when there is
one, else typed in.  The same id continues the same session (order and answers) after
the browser was closed.
"""

from __future__ import annotations

import base64
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import panel as pn
import param
from panel.custom import JSComponent

from studio.intro_ui import IntroPanel, intro_needed
from studio.listening import CMOS_LABELS, DCR_LABELS, MOS_LABELS, SMOS_LABELS, ListeningError, rater_message
from studio.rater_session import RaterSession
from studio.results import DuplicateRatingError, ResultsError, ResultsStore

__all__ = ["ClipPlayer", "PlayEvent", "RaterView", "MIN_HEARD_FRACTION", "clip_data_url", "rater_tests"]

log = logging.getLogger(__name__)

MIN_HEARD_FRACTION = 0.9
PLAY_EVENTS = ("play", "ended")
SKIPPED = "Please listen to the whole clip without skipping ahead."
SCORE_LABELS = {"mos": MOS_LABELS, "smos": SMOS_LABELS, "dcr": DCR_LABELS}
QUESTIONS = {
    "mos": "How good is the overall quality of this clip?",
    "smos": "How similar is the voice of the clip to the voice of the reference? (ignore the words and the quality)",
    "dcr": "Compared with the reference, how annoying is the degradation in the clip?",
    "ab": "Which clip sounds better?",
    "abx": "Is X the same as A or the same as B?",
    "mushra": "Rate every numbered clip against the reference, 0 (bad) .. 100 (excellent). One of them is the "
              "reference itself: rate it too. Move every slider, then submit.",
    "intelligibility": "Type the words you heard (you may play the clip again).",
}


def clip_data_url(path: str | Path) -> str:
    """The WAV file as a ``data:audio/wav;base64,...`` URL (reveals no file name)."""
    return "data:audio/wav;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


@dataclass(frozen=True)
class PlayEvent:
    """A playback event from the browser: ``kind`` "play" or "ended", the player's
    ``token`` when it was sent, seconds of the clip played (``heard_s``) and its length."""

    kind: str
    token: int
    heard_s: float = 0.0
    duration_s: float = 0.0

    @property
    def to_end(self) -> bool:
        return (self.kind == "ended" and self.duration_s > 0
                and self.heard_s >= MIN_HEARD_FRACTION * self.duration_s)

    @classmethod
    def from_message(cls, data) -> Optional["PlayEvent"]:
        """Parse a browser message; None when it is malformed (it is then ignored)."""
        if not isinstance(data, dict) or data.get("event") not in PLAY_EVENTS:
            return None
        try:
            token, heard, duration = int(data.get("token")), float(data.get("heard", 0)), float(data.get("duration", 0))
        except (TypeError, ValueError):
            return None
        if not (math.isfinite(heard) and math.isfinite(duration)):
            return None
        return cls(data["event"], token, max(heard, 0.0), max(duration, 0.0))


class KeyShortcuts(JSComponent):
    """Sends the rater's shortcut keys (see module doc) to ``on_key(key)``; nothing visible."""

    _esm = """
    export function render({ model }) {
      const keys = ["1", "2", "3", "4", "5", "a", "b", "x", "r", "p"];
      const onKey = (e) => {
        if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) { return; }
        const target = e.composedPath()[0];
        if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.isContentEditable)) {
          return;
        }
        const key = (e.key || "").toLowerCase();
        if (keys.includes(key)) { model.send_msg({key: key}); }
      };
      document.addEventListener("keydown", onKey);
      model.on("remove", () => document.removeEventListener("keydown", onKey));
      const el = document.createElement("div");
      el.style.display = "none";
      return el;
    }
    """

    def __init__(self, on_key: Optional[Callable[[str], None]] = None, **params):
        super().__init__(**params)
        self._on_key = on_key

    def _handle_msg(self, data) -> None:
        key = data.get("key") if isinstance(data, dict) else None
        if isinstance(key, str) and self._on_key is not None:
            self._on_key(key)


class ClipPlayer(JSComponent):
    """An ``<audio>`` player that reports ``play`` / ``ended`` to ``on_event(PlayEvent)``.

    ``src`` is a ``data:`` URL; ``token`` changes with every new clip so that a late
    event of the previous clip is recognised (the page ignores stale tokens).
    """

    src = param.String(default="", doc="the clip as a data: URL")
    token = param.Integer(default=0, doc="echoed in every event")
    play_request = param.Integer(default=0, doc="each increment starts playback (keyboard shortcuts)")

    _esm = """
    export function render({ model }) {
      const audio = document.createElement("audio");
      audio.controls = true;
      audio.preload = "auto";
      audio.setAttribute("controlsList", "nodownload noplaybackrate");
      audio.className = "rater-clip";
      audio.style.width = "100%";
      const heard = () => {
        let s = 0;
        for (let i = 0; i < audio.played.length; i++) { s += audio.played.end(i) - audio.played.start(i); }
        return s;
      };
      const send = (event) => model.send_msg({event: event, token: model.token, heard: heard(),
                                              duration: isFinite(audio.duration) ? audio.duration : 0});
      audio.addEventListener("play", () => send("play"));
      audio.addEventListener("ended", () => send("ended"));
      const load = () => {
        audio.pause();
        if (model.src) { audio.src = model.src; } else { audio.removeAttribute("src"); }
        audio.load();
      };
      model.on("src", load);
      model.on("play_request", () => { if (model.src) { audio.play().catch(() => {}); } });
      load();
      return audio;
    }
    """

    def __init__(self, on_event: Optional[Callable[[PlayEvent], None]] = None, **params):
        super().__init__(**params)
        self._on_event = on_event

    def _handle_msg(self, data) -> None:
        event = PlayEvent.from_message(data)
        if event is None:
            log.warning("ignoring a malformed player message: %r", data)
        elif self._on_event is not None:
            self._on_event(event)


def _title(name: str) -> str:
    """A clip's name on the page: "Reference", "Clip", "A", "Clip 3"."""
    return f"Clip {name}" if name.isdigit() else (name if len(name) == 1 else name.capitalize())


def rater_tests(store: ResultsStore) -> list[str]:
    """Ids of the tests a rater may pick (open ones with stimuli), in creation order."""
    return [t.test_id for t in store.tests(include_archived=False) if store.stimuli(t.test_id)]


class RaterView(pn.viewable.Viewer):
    """The rater's page.  ``user``: the signed-in user (fixes the rater id); ``test_id``:
    the test from the URL (fixes the test).  Drive it with :meth:`start`, the players'
    events (:meth:`player_event`), :meth:`rate` (MOS) and :meth:`choose` (A/B)."""

    message = param.String(default="", doc="feedback for the rater (refusals, errors)")
    status = param.String(default="", doc="the trial header, e.g. 'Trial 3 of 12'")

    def __init__(self, store: ResultsStore, *, user: Optional[str] = None, test_id: Optional[str] = None, **params):
        super().__init__(**params)
        self.store, self.session = store, None
        self._token = 0
        self._clip_ids: list = []
        self._heard: list = []
        self.user = user or None
        self.fixed_test = test_id or None
        self.rater_input = pn.widgets.TextInput(label="Your rater id", value=self.user or "",
                                                disabled=self.user is not None, placeholder="e.g. your initials")
        self.test_select = pn.widgets.Select(label="Test", visible=self.fixed_test is None)
        self.start_button = pn.widgets.Button(label="Start / continue", color="primary")
        self.start_button.on_click(lambda _: self.start())
        self.refresh_tests()
        self.progress = pn.indicators.Progress(value=0, max=1, width=300, visible=False)
        self.text_pane = pn.pane.Markdown("", visible=False)
        self.players, self.player_titles, self.player_status, self.player_boxes = [], [], [], []
        self.sliders: list = []
        self._touched: list = []
        self._resetting = False
        self.players_row = pn.FlexBox()
        self._ensure_players(2)
        self.mos_buttons = {score: pn.widgets.Button(label=f"{score} {MOS_LABELS[score]}", disabled=True, width=150)
                            for score in sorted(MOS_LABELS, reverse=True)}
        for score, button in self.mos_buttons.items():
            button.on_click(lambda _, s=score: self.rate(s))
        self.ab_buttons = {choice: pn.widgets.Button(label=name, disabled=True, width=130)
                           for choice, name in (("A", "A"), ("B", "B"), ("none", "No preference"))}
        for choice, button in self.ab_buttons.items():
            button.on_click(lambda _, c=choice: self.choose(c))
        self.cmos_toggle = pn.widgets.Checkbox(label="Also say how much better (optional)", value=False)
        self.cmos_slider = pn.widgets.IntSlider(label="Comparison", start=-3, end=3, value=0, width=360,
                                                disabled=True)
        self.cmos_label = pn.pane.Markdown(f"*{CMOS_LABELS[0]}*")
        self.cmos_toggle.param.watch(lambda e: setattr(self.cmos_slider, "disabled", not e.new), "value")
        self.cmos_slider.param.watch(lambda e: setattr(self.cmos_label, "object", f"*{CMOS_LABELS[e.new]}*"), "value")
        self.question = pn.pane.Markdown(QUESTIONS["mos"])
        self.mos_box = pn.Column(self.question, pn.Row(*self.mos_buttons.values()), visible=False)
        self.abx_buttons = {side: pn.widgets.Button(label=f"X is {side}", disabled=True, width=130)
                            for side in ("A", "B")}
        for side, button in self.abx_buttons.items():
            button.on_click(lambda _, c=side: self.choose(c))
        self.abx_box = pn.Column(pn.pane.Markdown(QUESTIONS["abx"]), pn.Row(*self.abx_buttons.values()),
                                 visible=False)
        self.mushra_button = pn.widgets.Button(label="Submit ratings", disabled=True, width=160)
        self.mushra_button.on_click(lambda _: self.submit_mushra())
        self.mushra_box = pn.Column(pn.pane.Markdown(QUESTIONS["mushra"]), self.mushra_button, visible=False)
        self.transcript_input = pn.widgets.TextInput(label="What you heard", placeholder="type the words here",
                                                     width=480)
        self.transcript_button = pn.widgets.Button(label="Submit text", disabled=True, width=140)
        self.transcript_button.on_click(lambda _: self.submit_transcript())
        self.intelligibility_box = pn.Column(pn.pane.Markdown(QUESTIONS["intelligibility"]),
                                             pn.Row(self.transcript_input, self.transcript_button), visible=False)
        self.ab_box = pn.Column(pn.pane.Markdown("Which clip sounds better?"), pn.Row(*self.ab_buttons.values()),
                                self.cmos_toggle, pn.Row(self.cmos_slider, self.cmos_label), visible=False)
        self.message_pane = pn.pane.Alert("", alert_type="warning", visible=False)
        self.intro_area = pn.Column(visible=False)  # studio.intro_ui before the first trial, when the test has one
        self.intro: Optional[IntroPanel] = None
        self.keys = KeyShortcuts(on_key=self.shortcut, width=0, height=0, margin=0)
        self.param.watch(self._show_message, "message")
        self._layout = pn.Column(
            pn.pane.Markdown("## Listening test\nListen to each clip to the end, then answer. "
                             "Use headphones in a quiet place."),
            pn.Row(self.rater_input, self.test_select, self.start_button), self.intro_area,
            pn.pane.Markdown(self.param.status), self.progress, self.text_pane,
            self.players_row, self.mos_box, self.ab_box, self.abx_box, self.mushra_box, self.intelligibility_box,
            self.message_pane, self.keys,
            pn.pane.Markdown("*Keys: A, B, X, R play clip A, B, X, the reference (P a single clip); "
                             "1-5 answer with that score.*"),
            sizing_mode="stretch_width")

    def __panel__(self):
        return self._layout

    # ------------------------------------------------------------------ setup

    def _ensure_players(self, n: int) -> None:
        """At least ``n`` players (MUSHRA shows the reference and every rated clip)."""
        while len(self.players) < n:
            i = len(self.players)
            player = ClipPlayer(on_event=lambda e, i=i: self.player_event(i, e), width=300, height=60)
            slider = pn.widgets.IntSlider(label=f"Score {i}", start=0, end=100, value=0, width=280, visible=False)
            slider.param.watch(lambda e, i=i: self._slider_moved(i), "value")
            title, status = pn.pane.Markdown(""), pn.pane.Markdown("")
            self.players.append(player)
            self.player_titles.append(title)
            self.player_status.append(status)
            self.sliders.append(slider)
            self._touched.append(False)
            box = pn.Column(title, player, status, slider, visible=False, width=320)
            self.player_boxes.append(box)
            self.players_row.append(box)

    def refresh_tests(self) -> None:
        """Offer the tests that have stimuli, by id only (names may name systems)."""
        if self.fixed_test is None:
            ids = rater_tests(self.store)
            self.test_select.options = {f"Test {tid}": tid for tid in ids}

    def _show_message(self, event) -> None:
        self.message_pane.object = event.new
        self.message_pane.visible = bool(event.new)

    def start(self, rater_id: Optional[str] = None, test_id: Optional[str] = None) -> bool:
        """Start (or resume) the rater's session; False with a message when it cannot."""
        rater = (self.user or (rater_id if rater_id is not None else self.rater_input.value) or "").strip()
        test = self.fixed_test or test_id or self.test_select.value
        if not rater:
            self.message = "Please enter your rater id first."
            return False
        if not test:
            self.message = "No listening test is open yet."
            return False
        try:
            self.session = RaterSession(self.store, test, rater)
        except (ListeningError, ResultsError) as exc:
            # the rater reads a plain sentence; the detail (ids, paths) goes to the server log
            log.warning("rater %r could not start test %r: %s", rater, test, exc)
            self.message = f"Cannot start the test. {rater_message(exc)}"
            return False
        with pn.io.hold():
            self._started_page(rater)
        return True

    def _started_page(self, rater: str) -> None:
        self.rater_input.value = rater
        self.rater_input.disabled = self.test_select.disabled = self.start_button.disabled = True
        self.message = ""
        if intro_needed(self.session):
            self.intro = IntroPanel(self.session, on_begin=self.begin_trials)
            self.intro_area.objects = [self.intro]
            self.intro_area.visible = True
            return
        self._show_trial()

    def begin_trials(self) -> None:
        """Leave the intro page (instructions, consent, headphone check) for the trials."""
        with pn.io.hold():
            self.intro_area.visible = False
            self._show_trial()

    # ------------------------------------------------------------------ trials

    def _show_trial(self) -> None:
        s = self.session
        view = s.current
        # one at a time, value last: the bar checks value against the max it has *now*
        # (a bar made with max=1 refused value=3 on resume), so clear value, set max, then value
        self.progress.value = 0
        self.progress.max = max(s.total, 1)
        self.progress.param.update(value=min(s.answered, s.total), visible=True)
        self._token += 1
        if view is None:
            self.status = (f"### All {s.total - s.n_practice} trials are rated -- thank you!\n"
                           f"Your completion code: **{s.completion_code}**")
            self._clip_ids, self._heard = [], []
            for box in self._answer_boxes():
                box.visible = False
            self.text_pane.visible = False
            for box, player in zip(self.player_boxes, self.players):
                box.visible = False
                player.param.update(src="", token=self._token)
            return
        self.status = ("### Practice trial (not counted): try the players and the answer" if view.practice
                       else f"### Trial {view.number} of {view.total}")
        self.text_pane.param.update(object=f"Sentence: *{view.text}*", visible=bool(view.text))
        self._clip_ids = [c.stimulus_id for c in view.clips]
        self._heard = [False] * len(view.clips)
        self._ensure_players(len(view.clips))
        self._resetting = True
        for i, (box, player) in enumerate(zip(self.player_boxes, self.players)):
            self.sliders[i].param.update(value=0, visible=view.kind == "mushra" and 0 < i < len(view.clips))
            self._touched[i] = False
            if i < len(view.clips):
                self.player_titles[i].object = f"**{_title(view.clips[i].name)}**"
                player.param.update(src=clip_data_url(view.clips[i].path), token=self._token)
                box.visible = True
            else:
                player.param.update(src="", token=self._token)
                box.visible = False
        self._resetting = False
        if view.kind in SCORE_LABELS:
            self.question.object = QUESTIONS[view.kind]
            for score, button in self.mos_buttons.items():
                button.label = f"{score} {SCORE_LABELS[view.kind][score]}"
        self.mos_box.visible = view.kind in SCORE_LABELS
        self.ab_box.visible = view.kind == "ab"
        self.abx_box.visible = view.kind == "abx"
        self.mushra_box.visible = view.kind == "mushra"
        self.intelligibility_box.visible = view.kind == "intelligibility"
        self.transcript_input.param.update(value="", value_input="")
        self.cmos_toggle.value = False
        self.cmos_slider.value = 0
        self._update_ready()

    def _answer_boxes(self) -> tuple:
        return self.mos_box, self.ab_box, self.abx_box, self.mushra_box, self.intelligibility_box

    def _slider_moved(self, index: int) -> None:
        if not self._resetting and index < len(self._touched):
            self._touched[index] = True
            self._update_ready()

    def _update_ready(self) -> None:
        mushra = self.session is not None and self.session.current is not None and \
            self.session.current.kind == "mushra"
        for i, (status, heard) in enumerate(zip(self.player_status, self._heard)):
            status.object = "heard to the end" if heard else "*play it to the end*"
            if mushra and i > 0:
                status.object += f" -- score: {self.sliders[i].value}" if self._touched[i] else " -- *not rated yet*"
        self._enable_answers(self.session is not None and not self.session.done and self.session.ready)

    def _enable_answers(self, allowed: bool) -> None:
        for button in (*self.mos_buttons.values(), *self.ab_buttons.values(), *self.abx_buttons.values(),
                       self.mushra_button, self.transcript_button):
            button.disabled = not allowed

    def player_event(self, index: int, event: PlayEvent) -> None:
        """A play/ended event of player ``index`` (0: the clip or A, 1: B)."""
        if self.session is None or event.token != self._token or index >= len(self._clip_ids):
            return  # a late event of a clip no longer shown
        sid = self._clip_ids[index]
        try:
            if event.kind == "play":
                self.session.play_started(sid)
            else:
                self.session.mark_played(sid, to_end=event.to_end)
        except (ListeningError, ResultsError) as exc:
            self.message = str(exc)
            return
        if event.kind == "ended":
            self._heard[index] = self._heard[index] or event.to_end
            if not event.to_end:
                self.message = SKIPPED
            elif self.session.ready:
                self.message = ""  # earlier refusals no longer apply
        self._update_ready()

    def _submit(self, **answer) -> bool:
        with pn.io.hold():  # the next trial's header, players and buttons reach the browser together
            return self._submit_now(**answer)

    def _submit_now(self, **answer) -> bool:
        if self.session is None:
            self.message = "Start the test first."
            return False
        # buttons first: with a threaded server each change travels on its own, in order,
        # so the browser never shows the next trial with answer buttons still enabled
        self._enable_answers(False)
        try:
            self.session.submit(**answer)
        except DuplicateRatingError:
            self.message = "That trial was already answered (in another window); here is the next one."
        except (ListeningError, ResultsError) as exc:
            self.message = f"Not recorded: {exc}"
            self._update_ready()
            return False
        else:
            self.message = ""
        self._show_trial()
        return True

    def rate(self, score: int) -> bool:
        """Answer the current MOS, SMOS or DCR trial with ``score`` 1..5; False (with a message) if refused."""
        return self._submit(score=score)

    def choose(self, choice: str) -> bool:
        """Answer the current A/B trial: "A", "B" or "none" (+ the CMOS slider when
        switched on); or the ABX trial: "A" or "B"."""
        if self.session is not None and self.session.current is not None and self.session.current.kind == "abx":
            return self._submit(choice=choice)
        return self._submit(choice=choice, cmos=self.cmos_slider.value if self.cmos_toggle.value else None)

    def shortcut(self, key: str) -> bool:
        """A shortcut key (module doc); True when it did something."""
        view = self.session.current if self.session is not None else None
        if view is None or self.intro_area.visible:
            return False
        if key in "12345" and len(key) == 1:
            if view.kind in SCORE_LABELS and not self.mos_buttons[int(key)].disabled:
                return self.rate(int(key))
            return False
        name = {"a": "A", "b": "B", "x": "X", "r": "reference", "p": "clip"}.get(key)
        for i, clip in enumerate(view.clips):
            if clip.name == name:
                self.players[i].play_request += 1
                return True
        return False

    def submit_mushra(self) -> bool:
        """Answer the current MUSHRA trial with the sliders (an unmoved slider is unrated:
        refused with a message)."""
        n = len(self._clip_ids)
        return self._submit(scores=[self.sliders[i].value if self._touched[i] else None for i in range(1, n)])

    def submit_transcript(self) -> bool:
        """Answer the current intelligibility trial with the typed text."""
        return self._submit(transcript=self.transcript_input.value_input or self.transcript_input.value)
