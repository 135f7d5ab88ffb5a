"""The page a rater sees before the first trial: instructions, consent, headphone check.

:class:`IntroPanel` is bound to a :class:`studio.rater_session.RaterSession`.  It shows the
test's instructions (the type's default unless the design gives its own), the consent
text with an "I agree" box when the design has one, and the antiphase headphone check
(:mod:`studio.headphone_check`) when the design asks for it: one clip of three tones per
check trial, three answer buttons enabled once the clip was heard to the end.  Every
answer is committed when given, so a rater who closes the page resumes where they were;
"Begin the test" is enabled once nothing is left to do.  Whether the check passed is
not shown to the rater; the export and the screening carry it.
"""

from __future__ import annotations

import base64
from typing import Callable, Optional

import panel as pn
import param

from studio.headphone_check import TRIALS, trial_wav_bytes
from studio.listening import ListeningError
from studio.rater_session import RaterSession
from studio.results import ResultsError

__all__ = ["IntroPanel", "intro_needed"]

HEADPHONE_QUESTION = ("**Headphone check.** Play the clip: you will hear three tones. Which one was the *softest*? "
                      "Set a comfortable volume first; answer each of the six checks.")


def intro_needed(session: RaterSession) -> bool:
    """The rater sees the intro page: the design gives instructions, consent or a
    headphone check, and either something is left to do or no trial was answered yet."""
    design = session.design
    asks = bool(design.instructions or design.consent or design.headphone_check)
    return asks and (session.before_trials or session.answered == 0)


class IntroPanel(pn.viewable.Viewer):
    """The intro for ``session``; ``on_begin`` is called when the rater begins the test.
    Drive it without a browser: :meth:`agree`, :meth:`player_event` (via ``heard``),
    :meth:`answer`, :meth:`begin`."""

    message = param.String(default="")

    def __init__(self, session: RaterSession, on_begin: Callable[[], None], **params):
        super().__init__(**params)
        from studio.rater_ui import ClipPlayer  # the page's own player (play tracking)

        self.session, self._on_begin = session, on_begin
        self._token = 0
        self.instructions = pn.pane.Markdown(f"### Before you start\n{session.instructions}")
        self.consent_text = pn.pane.Markdown(session.consent_text, visible=bool(session.consent_text))
        self.consent_box = pn.widgets.Checkbox(label="I agree", value=not session.consent_needed,
                                               disabled=not session.consent_needed,
                                               visible=bool(session.consent_text))
        self.consent_box.param.watch(lambda e: self.agree() if e.new else None, "value")
        self.player = ClipPlayer(on_event=self._player_event, width=300, height=60)
        self.hp_status = pn.pane.Markdown("")
        self.hp_buttons = {k: pn.widgets.Button(label=f"Tone {k}", disabled=True, width=110) for k in (1, 2, 3)}
        for k, button in self.hp_buttons.items():
            button.on_click(lambda _, k=k: self.answer(k))
        self.hp_box = pn.Column(pn.pane.Markdown(HEADPHONE_QUESTION), self.player, self.hp_status,
                                pn.Row(*self.hp_buttons.values()), visible=session.headphone_result is not None)
        self.begin_button = pn.widgets.Button(label="Begin the test", color="primary", width=180)
        self.begin_button.on_click(lambda _: self.begin())
        self.message_pane = pn.pane.Alert("", alert_type="warning", visible=False)
        self.param.watch(self._show_message, "message")
        self._layout = pn.Column(self.instructions, self.consent_text, self.consent_box, self.hp_box,
                                 self.message_pane, self.begin_button)
        self._refresh()

    def __panel__(self):
        return self._layout

    def _show_message(self, event) -> None:
        self.message_pane.object = event.new
        self.message_pane.visible = bool(event.new)

    def _refresh(self) -> None:
        s = self.session
        position = s.headphone_position
        self._token += 1
        for button in self.hp_buttons.values():
            button.disabled = True
        if position is None:
            if s.headphone_result is not None:
                self.hp_status.object = "Headphone check done -- thank you."
                self.player.param.update(src="", token=self._token)
        else:
            data = base64.b64encode(trial_wav_bytes(s.headphone_trial)).decode("ascii")
            self.player.param.update(src=f"data:audio/wav;base64,{data}", token=self._token)
            self.hp_status.object = f"Check {position + 1} of {TRIALS}: *play the clip to the end*"
        self.begin_button.disabled = s.before_trials

    def agree(self) -> bool:
        """The rater ticked "I agree"."""
        try:
            self.session.give_consent()
        except (ListeningError, ResultsError) as exc:
            self.message = str(exc)
            return False
        self.consent_box.disabled = True
        self.message = ""
        self._refresh()
        return True

    def _player_event(self, event) -> None:
        if event.token != self._token or event.kind != "ended":
            return
        self.heard(event.to_end)

    def heard(self, to_end: bool) -> None:
        """The check clip finished playing (``to_end``: heard to its end)."""
        if self.session.headphone_position is None:
            return
        self.session.mark_headphone_played(to_end)
        if to_end:
            for button in self.hp_buttons.values():
                button.disabled = False
            self.hp_status.object = self.hp_status.object.replace("*play the clip to the end*", "which was softest?")
        else:
            self.message = "Please listen to the whole clip without skipping ahead."

    def answer(self, choice: int) -> bool:
        """The rater says tone ``choice`` (1..3) was the softest."""
        try:
            self.session.answer_headphone(choice)
        except (ListeningError, ResultsError) as exc:
            self.message = str(exc)
            return False
        self.message = ""
        self._refresh()
        return True

    def begin(self) -> Optional[bool]:
        """Leave the intro for the first trial (refused with a message while consent or
        the check is missing)."""
        if self.session.consent_needed:
            self.message = "Please read the consent text and tick \"I agree\" to take part."
            return False
        if self.session.headphone_position is not None:
            self.message = "Please finish the headphone check first."
            return False
        self._on_begin()
        return True
