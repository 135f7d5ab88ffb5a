"""The rater's state machine: one rater in one test, bound to by the rater's page.

:class:`RaterSession` walks one rater through their trial order
(:func:`studio.listening.build_trials`, made once and stored by the results store): a
rating is accepted only after every clip of the trial was played to the end; play
counts and the response time (first play to submit) are recorded; a new session object
for the same rater resumes at the first unanswered trial.  Before the first trial it
holds what the test asks first: consent (committed with the consent text's sha256) and
the headphone check (:mod:`studio.headphone_check`), each answer committed when given.
No UI here: :mod:`studio.rater_ui` and :mod:`studio.intro_ui` bind to it.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import param

from studio.headphone_check import HeadphoneResult, HeadphoneTrial, headphone_trials, score_answers
from studio.listening import (DEFAULT_INSTRUCTIONS, ListeningError, TestClosedError, TestDesign, TestNotReadyError,
                              build_trials)
from studio.results import DuplicateRatingError, RatingError, RatingRecord, ResultsStore, clip_names, completion_code

__all__ = ["RaterSession", "Clip", "TrialView"]


@dataclass(frozen=True)
class Clip:
    """A clip as the rater's page sees it: side ``name`` ("A", "B"; "clip" for MOS), the
    opaque ``stimulus_id``, the file ``path`` and ``url`` (``url_prefix`` + file name)."""

    name: str
    stimulus_id: str
    path: str
    url: str


@dataclass(frozen=True)
class TrialView:
    """The current trial for the page: 1-based ``number`` of ``total`` (practice trials
    not counted; ``practice``: this is one), kind, text, clips."""

    number: int
    total: int
    kind: str
    text: str
    clips: tuple
    practice: bool = False


class RaterSession(param.Parameterized):
    """One rater in one test (bind a page to its parameters; read-only from outside).

    ``mark_played(clip, to_end)`` after each playback (``play_started`` optionally when
    one starts; the response time runs from the first start, or first ``mark_played``,
    to ``submit``).  ``submit`` raises :class:`~studio.results.RatingError` with a message
    for the rater until every clip was played to the end, or for an invalid answer.
    Play state of an unanswered trial is not persisted: after a resume it is heard again.
    """

    rater_id = param.String(default="", constant=True)
    test_id = param.String(default="", constant=True)
    test_type = param.String(default="", constant=True)
    session_id = param.String(default="", constant=True)
    position = param.Integer(default=0, constant=True, doc="index of the current trial (total when done)")
    total = param.Integer(default=0, constant=True)
    answered = param.Integer(default=0, constant=True)
    progress = param.Number(default=0.0, bounds=(0.0, 1.0), constant=True, doc="answered / total")
    done = param.Boolean(default=False, constant=True)
    ready = param.Boolean(default=False, constant=True, doc="every clip played to the end: submit allowed")

    def __init__(self, store: ResultsStore, test_id: str, rater_id: str, *, url_prefix: str = "",
                 clock: Callable[[], float] = time.monotonic, seed: Optional[int] = None):
        record = store.test(test_id)
        if record.archived:
            raise TestClosedError(f"test {test_id!r} is archived; restore it to let raters in")
        try:
            design = TestDesign.from_dict(record.design)
        except (ListeningError, TypeError, KeyError) as exc:
            raise TestNotReadyError(f"test {test_id!r} has no readable design ({exc}); define and render it again")
        stimuli = store.stimuli(test_id)
        if not stimuli:
            raise TestNotReadyError(f"test {test_id!r} has no stimuli yet; render them first")
        rater = rater_id.strip() if isinstance(rater_id, str) else rater_id
        record = store.start_or_resume_session(test_id, rater, seed=seed,
                                               make_order=lambda s, i: build_trials(design, stimuli, s, i))
        super().__init__(rater_id=rater, test_id=test_id, test_type=design.test_type,
                         session_id=record.session_id, total=len(record.order))
        self._store, self._order, self._clock, self._design = store, record.order, clock, design
        self._seed = record.seed
        self._hp_trials = headphone_trials(record.seed) if design.headphone_check else []
        self._hp_heard = False
        self._paths = {s.stimulus_id: s.path for s in stimuli}
        self._prefix = url_prefix.rstrip("/")
        self._sync()

    def _sync(self) -> None:
        done = self._store.answered(self.session_id)
        position = next((i for i in range(self.total) if i not in done), self.total)
        with param.edit_constant(self):
            self.param.update(position=position, answered=len(done), done=position >= self.total,
                              progress=len(done) / self.total if self.total else 1.0, ready=False)
        self._plays = {sid: [0, False] for sid in (self._order[position].stimulus_ids if position < self.total else ())}
        self._started: Optional[float] = None

    @property
    def completion_code(self) -> str:
        """The code to show after the last trial (empty until then); see
        :func:`studio.results.completion_code`."""
        return completion_code(self.session_id) if self.done else ""

    @property
    def current(self) -> Optional[TrialView]:
        """The trial to answer, or None when done."""
        if self.done:
            return None
        trial = self._order[self.position]
        names = clip_names(trial.kind, len(trial.stimulus_ids))
        clips = []
        for name, sid in zip(names, trial.stimulus_ids):
            path = self._paths[sid]
            clips.append(Clip(name, sid, path, f"{self._prefix}/{Path(path).name}" if self._prefix else ""))
        text = "" if trial.kind == "intelligibility" else trial.text  # the rater types what they heard
        before = sum(t.practice for t in self._order[:self.position])
        return TrialView(self.position + 1 - before, self.total - self.n_practice, trial.kind, text, tuple(clips),
                         trial.practice)

    @property
    def design(self) -> TestDesign:
        """The test's design."""
        return self._design

    # ---- before the trials: instructions, consent, headphone check

    @property
    def instructions(self) -> str:
        """The test's instructions (markdown), or the type's default."""
        return self._design.instructions or DEFAULT_INSTRUCTIONS[self.test_type]

    @property
    def consent_text(self) -> str:
        """The consent text the rater must agree to ("" when the test asks none)."""
        return self._design.consent

    @property
    def consent_needed(self) -> bool:
        """The test asks for consent and this rater has not given it yet."""
        return bool(self._design.consent) and ("consent", 0) not in self._store.checks(self.session_id)

    def give_consent(self) -> None:
        """The rater agrees to the consent text (committed at once, with the text's sha256)."""
        if not self._design.consent:
            raise ListeningError("this test asks for no consent")
        digest = hashlib.sha256(self._design.consent.encode("utf-8")).hexdigest()
        self._store.record_check(self.session_id, "consent", 0, {"sha256": digest})

    def _hp_answers(self) -> dict:
        return {item: value for (kind, item), (value, _) in self._store.checks(self.session_id).items()
                if kind == "headphones"}

    @property
    def headphone_position(self) -> Optional[int]:
        """0-based index of the headphone-check trial to answer next; None when the
        test has no check or it is finished."""
        if not self._hp_trials:
            return None
        answers = self._hp_answers()
        return next((i for i in range(len(self._hp_trials)) if i not in answers), None)

    @property
    def headphone_trial(self) -> Optional[HeadphoneTrial]:
        i = self.headphone_position
        return None if i is None else self._hp_trials[i]

    @property
    def headphone_result(self) -> Optional[HeadphoneResult]:
        """Correct answers so far and, once finished, pass or fail (None without a check)."""
        if not self._hp_trials:
            return None
        return score_answers(self._hp_trials, self._hp_answers())

    def mark_headphone_played(self, to_end: bool) -> None:
        """A playback of the current headphone-check clip ended (``to_end``: reached its end)."""
        if self.headphone_position is None:
            raise ListeningError("there is no headphone check to play")
        self._hp_heard = self._hp_heard or bool(to_end)

    def answer_headphone(self, choice: int) -> bool:
        """Which tone (1, 2 or 3) was the softest; committed at once; True when right."""
        i = self.headphone_position
        if i is None:
            raise RatingError("there is no headphone check to answer")
        if self.consent_needed:
            raise RatingError("please agree to the consent text first")
        if not self._hp_heard:
            raise RatingError("please play the three tones to the end before answering")
        if isinstance(choice, bool) or choice not in (1, 2, 3):
            raise RatingError(f"say which tone was the softest: 1, 2 or 3, got {choice!r}")
        self._store.record_check(self.session_id, "headphones", i, int(choice))
        self._hp_heard = False
        return self._hp_trials[i].answer == choice

    @property
    def before_trials(self) -> bool:
        """Consent or the headphone check is still to do; trials cannot be rated yet."""
        return self.consent_needed or self.headphone_position is not None

    @property
    def n_practice(self) -> int:
        """Practice trials in this rater's order."""
        return sum(t.practice for t in self._order)

    def _clip_id(self, clip: Union[Clip, str]) -> str:
        if self.done:
            raise RatingError("the test is finished: there is nothing left to play")
        sid = clip.stimulus_id if isinstance(clip, Clip) else clip
        if sid not in self._plays:
            raise ListeningError(f"clip {sid!r} is not part of the current trial")
        return sid

    def play_started(self, clip: Union[Clip, str]) -> None:
        """A playback of ``clip`` (a :class:`Clip` or stimulus id) began."""
        self._clip_id(clip)
        if self._started is None:
            self._started = self._clock()

    def mark_played(self, clip: Union[Clip, str], to_end: bool) -> None:
        """A playback of ``clip`` ended, ``to_end`` if it reached the end; counts one play."""
        sid = self._clip_id(clip)
        if self._started is None:
            self._started = self._clock()
        self._plays[sid][0] += 1
        self._plays[sid][1] = self._plays[sid][1] or bool(to_end)
        with param.edit_constant(self):
            self.ready = all(heard for _, heard in self._plays.values())

    def submit(self, score: Optional[int] = None, choice: Optional[str] = None, cmos: Optional[int] = None, *,
               scores: Optional[Sequence[Optional[int]]] = None, transcript: Optional[str] = None) -> RatingRecord:
        """Record the answer to the current trial and move to the next unanswered one:
        ``score`` (MOS, SMOS, DCR), ``choice`` (+ ``cmos``) for A/B, ``choice`` "A"/"B"
        for ABX, ``scores`` (one per clip after the reference) for MUSHRA,
        ``transcript`` for intelligibility."""
        view = self.current
        if view is None:
            raise RatingError("the test is finished: every trial has been answered")
        if self.consent_needed:
            raise RatingError("please agree to the consent text before the first trial")
        if self.headphone_position is not None:
            raise RatingError("please finish the headphone check before the first trial")
        missing = [c.name for c in view.clips if not self._plays[c.stimulus_id][1]]
        if missing:
            which = " and ".join(missing)
            raise RatingError(f"please play {'the clip' if missing == ['clip'] else 'clip ' + which} "
                              "to the end before rating")
        ids = [c.stimulus_id for c in view.clips]
        try:
            rating = self._store.record_rating(
                self.session_id, self.position, score=score, choice=choice, cmos=cmos, scores=scores,
                transcript=transcript,
                play_counts=[self._plays[s][0] for s in ids], listened_to_end=[self._plays[s][1] for s in ids],
                response_time_s=max(0.0, self._clock() - self._started))
        except DuplicateRatingError:  # answered in another window: move on, then tell the page
            self._sync()
            raise
        self._sync()
        return rating
