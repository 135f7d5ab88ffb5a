"""A headphone check for raters: the antiphase loudness test of Woods et al. (2017,
"Headphone screening to facilitate web-based auditory experiments", Attention,
Perception & Psychophysics 79).

Each trial is one stereo clip of three 200 Hz tones in a row; the rater says which of
the three was the softest.  One tone is :data:`QUIET_DB` (6 dB) softer than the others;
one is as loud as the standard but with the right channel in antiphase (R = -L).  On
headphones the antiphase tone sounds as loud as the standard, so the quiet one is easy
to find; over loudspeakers the two channels of the antiphase tone cancel in the air
and it sounds softest, so a loudspeaker listener picks it.  :data:`TRIALS` trials;
passing needs :data:`PASS_CORRECT` correct (the paper's criterion, 5 of 6).

The order of the three tones in each trial is drawn from the rater's session seed, so
a resumed session sees the same trials.  Nothing here decides what a failure means:
the rater may go on, and the export marks the session (``headphone_check`` column).
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import soundfile as sf

__all__ = ["HeadphoneTrial", "HeadphoneResult", "TRIALS", "PASS_CORRECT", "QUIET_DB", "TONE_HZ", "SAMPLE_RATE",
           "TONE_S", "GAP_S", "RAMP_S", "LEVEL", "KINDS", "headphone_trials", "trial_audio", "trial_wav_bytes",
           "score_answers"]

TRIALS = 6
PASS_CORRECT = 5
QUIET_DB = 6.0
TONE_HZ = 200.0
SAMPLE_RATE = 16000
TONE_S = 1.0
GAP_S = 0.5
RAMP_S = 0.1
LEVEL = 0.2  # peak amplitude of the standard tone
KINDS = ("standard", "antiphase", "quiet")


@dataclass(frozen=True)
class HeadphoneTrial:
    """One trial: ``order`` is the three tone kinds (:data:`KINDS`) in play order;
    ``answer`` the 1-based position of the quiet tone."""

    order: tuple

    @property
    def answer(self) -> int:
        return self.order.index("quiet") + 1


@dataclass(frozen=True)
class HeadphoneResult:
    """``correct`` of ``answered`` answers so far (of :data:`TRIALS`); ``passed`` is None
    until every trial is answered."""

    correct: int
    answered: int

    @property
    def done(self) -> bool:
        return self.answered >= TRIALS

    @property
    def passed(self):
        return (self.correct >= PASS_CORRECT) if self.done else None

    @property
    def label(self) -> str:
        """``passed``, ``failed`` or ``incomplete`` (the export's word)."""
        return "incomplete" if not self.done else ("passed" if self.passed else "failed")


def headphone_trials(seed: int) -> list:
    """The :data:`TRIALS` trials of a session with this seed (tone order shuffled)."""
    rng = random.Random(f"headphone-check/{int(seed)}")
    trials = []
    for _ in range(TRIALS):
        order = list(KINDS)
        rng.shuffle(order)
        trials.append(HeadphoneTrial(tuple(order)))
    return trials


def _tone() -> np.ndarray:
    n = int(round(TONE_S * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    tone = LEVEL * np.sin(2 * np.pi * TONE_HZ * t)
    ramp = int(round(RAMP_S * SAMPLE_RATE))
    window = np.ones(n)
    rise = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)  # raised-cosine on- and offset
    window[:ramp], window[n - ramp:] = rise, rise[::-1]
    return tone * window


def trial_audio(trial: HeadphoneTrial) -> np.ndarray:
    """The trial's stereo clip, float32 (samples, 2) at :data:`SAMPLE_RATE`: the three
    tones with :data:`GAP_S` of silence between them."""
    tone = _tone()
    gap = np.zeros((int(round(GAP_S * SAMPLE_RATE)), 2))
    parts = []
    for k, kind in enumerate(trial.order):
        if kind == "standard":
            left, right = tone, tone
        elif kind == "antiphase":
            left, right = tone, -tone
        else:
            quiet = tone * 10.0 ** (-QUIET_DB / 20.0)
            left, right = quiet, quiet
        if k:
            parts.append(gap)
        parts.append(np.stack([left, right], axis=1))
    return np.concatenate(parts).astype(np.float32)


def trial_wav_bytes(trial: HeadphoneTrial) -> bytes:
    """:func:`trial_audio` as a 16-bit stereo WAV file's bytes."""
    buf = io.BytesIO()
    sf.write(buf, trial_audio(trial), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def score_answers(trials: Sequence[HeadphoneTrial], answers: dict) -> HeadphoneResult:
    """Score ``answers`` ({trial index: chosen position 1..3}) against ``trials``."""
    correct = sum(1 for i, choice in answers.items() if 0 <= i < len(trials) and trials[i].answer == choice)
    return HeadphoneResult(correct, len(answers))
