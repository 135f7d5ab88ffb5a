"""Blind listening tests: designs, stimulus rendering and per-rater trial orders.  The
rater's state machine is :class:`studio.rater_session.RaterSession`; no UI here.

* A :class:`TestDesign` names the test type (:data:`~studio.results.TEST_TYPES`: MOS,
  A/B, MUSHRA, ABX, SMOS, DCR, intelligibility; see "Test types" below), its conditions
  (a checkpoint + sampler settings, or a folder of ``<sentence_id>.wav`` files), its
  sentences and optional gold (attention) trials.
* :func:`render_stimuli` renders each (condition, sentence) once through a callable,
  normalises it to -23 LUFS (ITU-R BS.1770 via ``core.audio``) and writes
  ``<folder>/stimuli/<random hex>.wav``: file names and URLs reveal nothing about the
  condition.  Provenance (checkpoint sha256, settings, seed, vocoder, code version,
  loudness gain) is recorded in the :class:`~studio.results.ResultsStore`.  Existing
  stimuli are reused.
* :func:`build_trials` randomises a rater's order from a recorded seed: MOS presents
  every stimulus once; A/B presents every pair of conditions per sentence with the
  sides drawn at random.
  With ``subset_per_rater`` each rater gets a balanced subset (:mod:`studio.assignment`).

Test types beyond MOS and A/B (``reference`` names the reference condition where one is
needed; it must be one of the conditions):

* ``mushra`` (ITU-R BS.1534): one trial per sentence on one page: the open reference
  and, in random order, every other condition, the hidden reference (a byte copy of the
  reference clip under another opaque id) and the low-pass anchors rendered from the
  reference clip (3.5 kHz always, 7 kHz with ``anchor_7khz``; :func:`lowpass`),
  conditions ``"anchor:lp3500"`` / ``"anchor:lp7000"``.  A slider 0..100 for each.
* ``abx``: every pair of conditions per sentence, sides random, and X a copy of A or B
  at random (the trial's ``key``).  The rater says whether X is A or B.
* ``smos`` / ``dcr``: every other condition x sentence, each after the reference
  condition's clip of the same sentence; 1..5 speaker similarity (SMOS) or degradation
  category (DCR, ITU-T P.800 Annex D: 5 inaudible .. 1 very annoying).
* ``intelligibility``: the rater hears each sentence **once** (hearing it again from
  another condition would teach them the words) and types it; the text is not shown.
  Conditions rotate over sentences Latin-square style, the rotation drawn from the
  rater's seed, so that over many raters every condition meets every sentence about
  equally often.

Practice: with ``practice`` set, every rater's order starts with one practice trial, a
repeat of one of the test's trials drawn from the rater's seed; its answer is stored and
exported (``trial_type`` practice) but never counted.

Gold trials: MOS ``"anchor"`` presents a degraded copy of the reference condition's
clip (low-passed at 1 kHz, white noise at 10 dB SNR, re-normalised), expected to score
<= 2.  A/B ``"identical"`` pairs the reference clip with a byte copy under another
opaque id (expected "none"); ``"obvious"`` pairs it with its degraded anchor (expected:
the reference side).  Anchors form a condition labelled ``"anchor:<reference>"``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import re
import secrets
import shutil
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
from scipy import signal

import core
from core import audio as core_audio
from core.config import choice_error
from studio.assignment import rater_cells, raters_needed
from studio.results import TEST_TYPES, ResultsStore, StimulusRecord, Trial

__all__ = ["Condition", "Sentence", "GoldTrial", "TestDesign", "RenderedClip", "render_stimuli", "degrade_for_anchor",
           "build_trials", "ListeningError", "TestNotReadyError",
           "TestClosedError", "rater_message", "RenderCancelled", "Trial", "MOS_LABELS",
           "CMOS_LABELS", "SETTING_NAMES", "TARGET_LUFS", "lowpass", "lowpass_response", "SMOS_LABELS",
           "DCR_LABELS", "REFERENCE_TYPES", "MUSHRA_ANCHORS_HZ", "mushra_anchor_label"]

TARGET_LUFS = -23.0
SETTING_NAMES = ("steps", "solver", "schedule", "sway", "cfg", "duration_scale", "temperature", "min_length_ratio",
                 "max_length_ratio", "prompt_audio", "prompt_text", "vocoder", "speaker")
GOLD_KINDS = {"mos": ("anchor",), "ab": ("identical", "obvious"), "mushra": (), "abx": (), "smos": (), "dcr": (),
              "intelligibility": ()}
REFERENCE_TYPES = ("mushra", "smos", "dcr")  # test types that need a reference condition
MAX_PAGE_TEXT = 20000  # characters of a design's instructions or consent text
_COMMON = ("Use headphones in a quiet place and set a comfortable volume before the first trial; do not change it "
           "during the test. Play every clip to the end before answering. Your answers are saved as you give them: "
           "if you close the page, come back with the same rater id to continue.")
DEFAULT_INSTRUCTIONS = {  # what a rater reads before the first trial when the design gives no instructions
    "mos": "You will hear short spoken sentences, one at a time. Rate the overall quality of each: how natural and "
           "clear it sounds, from 1 (bad) to 5 (excellent). " + _COMMON,
    "ab": "You will hear pairs of clips, A and B, of the same sentence. Say which sounds better, or that you have no "
          "preference. " + _COMMON,
    "mushra": "Each page has a reference clip and several numbered clips of the same sentence. Rate each numbered "
              "clip against the reference from 0 (bad) to 100 (excellent). One numbered clip is the reference "
              "itself: find it and rate it 100. " + _COMMON,
    "abx": "You will hear three clips, A, B and X. X is the same as A or as B: say which. " + _COMMON,
    "smos": "You will hear a reference clip and then another clip. Rate how similar the two voices are, from 1 (not "
            "at all similar) to 5 (extremely similar); ignore the words and the sound quality. " + _COMMON,
    "dcr": "You will hear a reference clip and then a processed clip. Rate how annoying the degradation in the second "
           "clip is, from 1 (very annoying) to 5 (inaudible). " + _COMMON,
    "intelligibility": "You will hear sentences, each once. Type the words you heard; you may play a clip again "
                       "before you submit. " + _COMMON,
}
MUSHRA_ANCHORS_HZ = (3500.0, 7000.0)  # ITU-R BS.1534-3 low (LPA) and mid (MPA) anchors
LOWPASS_ORDER = 8
SMOS_LABELS = {1: "Not at all similar", 2: "Slightly similar", 3: "Moderately similar", 4: "Very similar",
               5: "Extremely similar"}
DCR_LABELS = {1: "Very annoying", 2: "Annoying", 3: "Slightly annoying", 4: "Audible, not annoying",
              5: "Inaudible"}
ANCHOR_PREFIX = "anchor:"
ANCHOR_LOWPASS_HZ = 1000.0
ANCHOR_SNR_DB = 10.0
MOS_LABELS = {1: "Bad", 2: "Poor", 3: "Fair", 4: "Good", 5: "Excellent"}
CMOS_LABELS = {-3: "A much better", -2: "A better", -1: "A slightly better", 0: "About the same",
               1: "B slightly better", 2: "B better", 3: "B much better"}
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""Sentence and test ids: 1-64 letters, digits, "_", ".", "-", starting with a letter or digit."""
PathLike = Union[str, Path]


class ListeningError(ValueError):
    """A test design or rendering problem; the message says what to fix."""


class TestNotReadyError(ListeningError):
    """The test's stimuli are missing or incomplete (render it, or render it again)."""

    __test__ = False  # not a pytest test class


class RenderCancelled(ListeningError):
    """Rendering was stopped on request; the stimuli made so far are kept and a later
    render of the same test carries on from there."""


class TestClosedError(ListeningError):
    """The test was archived: raters can no longer open it."""

    __test__ = False


RATER_MESSAGES = {
    "UnknownTestError": "This test link is not valid. Please check the link with the person who sent it.",
    "TestNotReadyError": "This test is not ready yet. Please try again later, or ask the person who sent the link.",
    "TestClosedError": "This test is closed. Thank you for your interest.",
}
OTHER_RATER_MESSAGE = "This test cannot be opened right now. Please tell the person who sent you the link."


def rater_message(exc: Exception) -> str:
    """A plain sentence for a rater about why a test cannot start; the detail (paths,
    ids, what to run) is for the experimenter and the server log only.  Only a problem
    with the rater's own input (their id) is shown as it is."""
    for cls in type(exc).__mro__:
        if cls.__name__ in RATER_MESSAGES:
            return RATER_MESSAGES[cls.__name__]
        if cls.__name__ == "RaterIdError":
            return f"Please check your rater id: {exc}."
    return OTHER_RATER_MESSAGE


def _keys(what: str, d: dict, valid: Sequence[str]) -> None:
    if not isinstance(d, dict):
        raise ListeningError(f"expected a JSON object for the {what.removesuffix(' key')}, got {type(d).__name__}")
    for k in d:
        if k not in valid:
            raise choice_error(what, k, valid)


# --------------------------------------------------------------------------- designs


@dataclass(frozen=True)
class Condition:
    """A system under test: ``checkpoint`` (rendered with ``settings`` and ``seed``) or
    ``folder`` (existing ``<sentence_id>.wav`` files); exactly one of them."""

    label: str
    checkpoint: Optional[str] = None
    folder: Optional[str] = None
    settings: dict = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.label, str) or not self.label.strip():
            raise ListeningError(f"condition label must be a non-empty string, got {self.label!r}")
        if self.label.startswith(ANCHOR_PREFIX):
            raise ListeningError(f"condition label {self.label!r}: the prefix {ANCHOR_PREFIX!r} is reserved for anchors")
        if (self.checkpoint is None) == (self.folder is None):
            raise ListeningError(f"condition {self.label!r} needs exactly one of checkpoint or folder")
        _keys(f"condition {self.label!r} setting", self.settings, SETTING_NAMES)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ListeningError(f"seed of condition {self.label!r} must be an integer, got {self.seed!r}")
        try:  # keep plain JSON values: settings are stored and compared as JSON
            object.__setattr__(self, "settings", json.loads(json.dumps(self.settings, allow_nan=False)))
        except (TypeError, ValueError) as exc:
            raise ListeningError(f"settings of condition {self.label!r} must be plain JSON values: {exc}") from None
        for name in ("checkpoint", "folder"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, str(getattr(self, name)))

    @property
    def kind(self) -> str:
        return "checkpoint" if self.checkpoint is not None else "folder"

    def to_dict(self) -> dict:
        return {"label": self.label, "checkpoint": self.checkpoint, "folder": self.folder,
                "settings": self.settings, "seed": self.seed}


@dataclass(frozen=True)
class Sentence:
    """A sentence: ``id`` (letters, digits, ``_.-``; names ``<id>.wav`` in folder conditions) and text."""

    id: str
    text: str

    def __post_init__(self):
        if not isinstance(self.id, str) or not ID_PATTERN.match(self.id):
            raise ListeningError(f"sentence id {self.id!r} must be 1-64 letters, digits, '_', '.', '-'")
        if not isinstance(self.text, str) or not self.text.strip():
            raise ListeningError(f"sentence {self.id!r} needs a non-empty text")


@dataclass(frozen=True)
class GoldTrial:
    """An attention trial built from ``reference``'s clip of ``sentence_id`` (see module doc)."""

    kind: str
    reference: str
    sentence_id: str


@dataclass(frozen=True)
class TestDesign:
    """A listening test: ``test_type`` (:data:`~studio.results.TEST_TYPES`), conditions
    (at least 2 for A/B and ABX; the reference and one more for MUSHRA, SMOS, DCR),
    sentences and gold trials (MOS and A/B only).  ``reference``: the reference
    condition's label (MUSHRA, SMOS, DCR only); ``anchor_7khz``: MUSHRA's optional 7 kHz
    anchor.  ``test_id`` keys it in the results store."""

    __test__ = False  # not a pytest test class

    test_id: str
    test_type: str
    conditions: tuple
    sentences: tuple
    gold: tuple = ()
    name: str = ""
    reference: str = ""
    anchor_7khz: bool = False
    practice: bool = False
    raters_per_item: int = 0
    subset_per_rater: int = 0
    instructions: str = ""
    consent: str = ""
    headphone_check: bool = False

    def __post_init__(self):
        if not isinstance(self.test_id, str) or not ID_PATTERN.match(self.test_id):
            raise ListeningError(f"test id {self.test_id!r} must be 1-64 letters, digits, '_', '.', '-'")
        if self.test_type not in TEST_TYPES:
            raise choice_error("test type", self.test_type, TEST_TYPES)
        for name, kind in (("conditions", Condition), ("sentences", Sentence), ("gold", GoldTrial)):
            items = tuple(getattr(self, name))
            if not all(isinstance(x, kind) for x in items):
                raise ListeningError(f"{name} must be {kind.__name__} records")
            object.__setattr__(self, name, items)
        labels = [c.label for c in self.conditions]
        need = 2 if self.test_type in ("ab", "abx", *REFERENCE_TYPES) else 1
        if self.test_type in REFERENCE_TYPES:
            if not self.reference:
                raise ListeningError(f"a {self.test_type} test needs a reference condition (reference: one of "
                                     f"{', '.join(labels)})")
            if self.reference not in labels:
                raise choice_error(f"reference condition of a {self.test_type} test", self.reference, labels)
        elif self.reference:
            raise ListeningError(f"a {self.test_type} test takes no reference condition (only "
                                 f"{', '.join(REFERENCE_TYPES)} do); remove 'reference'")
        if not isinstance(self.anchor_7khz, bool):
            raise ListeningError(f"anchor_7khz must be true or false, got {self.anchor_7khz!r}")
        if not isinstance(self.practice, bool):
            raise ListeningError(f"practice must be true or false, got {self.practice!r}")
        if self.practice and self.test_type == "intelligibility":
            raise ListeningError("an intelligibility test cannot start with a practice trial: it would repeat a "
                                 "sentence that each rater must hear only once")
        if self.anchor_7khz and self.test_type != "mushra":
            raise ListeningError("anchor_7khz is for MUSHRA tests only")
        if len(labels) < need:
            raise ListeningError(f"a {self.test_type} test needs at least {need} condition(s), got {len(labels)}")
        if len(set(labels)) != len(labels):
            raise ListeningError(f"condition labels must be unique, got {labels}")
        ids = [s.id for s in self.sentences]
        if not ids or len(set(ids)) != len(ids):
            raise ListeningError(f"sentences need unique ids and at least one sentence, got {ids}")
        for g in self.gold:
            if not GOLD_KINDS[self.test_type]:
                raise ListeningError(f"a {self.test_type} test has no gold trials (only mos and ab have); remove them")
            if g.kind not in GOLD_KINDS[self.test_type]:
                raise choice_error(f"gold trial kind for a {self.test_type} test", g.kind, GOLD_KINDS[self.test_type])
            if g.reference not in labels:
                raise choice_error("gold reference condition", g.reference, labels)
            if g.sentence_id not in ids:
                raise choice_error("gold sentence id", g.sentence_id, ids)
        if len(set(self.gold)) != len(self.gold):
            raise ListeningError("gold trials must not repeat")
        for name in ("raters_per_item", "subset_per_rater"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ListeningError(f"{name} must be a whole number >= 1 (0 or absent: not set), got {value!r}")
        for name in ("instructions", "consent"):
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) > MAX_PAGE_TEXT:
                raise ListeningError(f"{name} must be a text of at most {MAX_PAGE_TEXT} characters, got "
                                     f"{type(value).__name__} of length {len(value) if isinstance(value, str) else '-'}")
        if not isinstance(self.headphone_check, bool):
            raise ListeningError(f"headphone_check must be true or false, got {self.headphone_check!r}")
        if self.subset_per_rater > self.n_items:
            raise ListeningError(f"subset_per_rater is {self.subset_per_rater} but the test has only {self.n_items} "
                                 f"items ({self.units} per sentence x {len(self.sentences)} sentences)")

    @property
    def units(self) -> int:
        """What one sentence is judged under (:mod:`studio.assignment`): conditions (MOS),
        pairs of conditions (A/B, ABX), non-reference conditions (SMOS, DCR), or 1
        (MUSHRA's page; intelligibility, whose condition rotates per rater)."""
        c = len(self.conditions)
        return {"mos": c, "ab": c * (c - 1) // 2, "abx": c * (c - 1) // 2, "smos": c - 1, "dcr": c - 1}.get(
            self.test_type, 1)

    @property
    def n_items(self) -> int:
        """Items of the test (gold and practice trials not counted): units x sentences."""
        return self.units * len(self.sentences)

    @property
    def items_per_rater(self) -> int:
        """Items each rater gets: ``subset_per_rater``, or every item."""
        return self.subset_per_rater or self.n_items

    @property
    def raters_needed(self) -> Optional[int]:
        """Raters needed for ``raters_per_item`` ratings of every item (None when unset)."""
        if not self.raters_per_item:
            return None
        return raters_needed(self.n_items, self.raters_per_item, self.subset_per_rater)

    def to_dict(self) -> dict:
        d = {"test_id": self.test_id, "test_type": self.test_type, "name": self.name,
             "conditions": [c.to_dict() for c in self.conditions],
             "sentences": [{"id": s.id, "text": s.text} for s in self.sentences],
             "gold": [{"kind": g.kind, "reference": g.reference, "sentence_id": g.sentence_id} for g in self.gold]}
        if self.reference:  # only when set: older designs keep their stored form
            d["reference"] = self.reference
        if self.anchor_7khz:
            d["anchor_7khz"] = True
        if self.practice:
            d["practice"] = True
        for name in ("raters_per_item", "subset_per_rater", "instructions", "consent", "headphone_check"):
            if getattr(self, name):
                d[name] = getattr(self, name)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TestDesign":
        _keys("test design key", d, ("test_id", "test_type", "name", "conditions", "sentences", "gold", "reference",
                                     "anchor_7khz", "practice", "raters_per_item", "subset_per_rater",
                                     "instructions", "consent", "headphone_check"))
        for c in d.get("conditions", []):
            _keys("condition key", c, ("label", "checkpoint", "folder", "settings", "seed"))
        for s in d.get("sentences", []):
            _keys("sentence key", s, ("id", "text"))
        for g in d.get("gold", []):
            _keys("gold trial key", g, ("kind", "reference", "sentence_id"))
        return cls(d.get("test_id"), d.get("test_type"), tuple(Condition(**c) for c in d.get("conditions", [])),
                   tuple(Sentence(**s) for s in d.get("sentences", [])),
                   tuple(GoldTrial(**g) for g in d.get("gold", [])), d.get("name", ""), d.get("reference") or "",
                   d.get("anchor_7khz", False), d.get("practice", False), d.get("raters_per_item") or 0,
                   d.get("subset_per_rater") or 0, d.get("instructions") or "", d.get("consent") or "",
                   d.get("headphone_check", False))


# --------------------------------------------------------------------------- rendering


@dataclass
class RenderedClip:
    """What a render callable returns: float mono ``audio`` (samples,), its rate, provenance."""

    audio: np.ndarray
    sample_rate: int
    provenance: dict = field(default_factory=dict)


Render = Callable[[Condition, str, int], Any]  # -> RenderedClip or (audio, sample_rate, provenance)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def degrade_for_anchor(audio: np.ndarray, sample_rate: int, seed: int) -> np.ndarray:
    """Low anchor: 8th-order Butterworth low-pass at 1 kHz (zero phase) plus white noise
    at 10 dB SNR from ``seed``.  ``(samples,) -> (samples,)`` float32, not normalised."""
    x = np.asarray(audio, dtype=np.float64)
    sos = signal.butter(8, min(ANCHOR_LOWPASS_HZ, 0.45 * sample_rate), fs=sample_rate, output="sos")
    y = signal.sosfiltfilt(sos, x) if x.size > 60 else x.copy()
    power = float(np.mean(y ** 2)) if y.size else 0.0
    noise = np.random.default_rng(seed).standard_normal(y.shape) * math.sqrt(power / 10 ** (ANCHOR_SNR_DB / 10))
    return (y + noise).astype(np.float32)


def lowpass(audio: np.ndarray, sample_rate: int, cutoff_hz: float, order: int = LOWPASS_ORDER) -> np.ndarray:
    """Zero-phase low-pass for MUSHRA anchors: a Butterworth of ``order`` (bilinear
    transform, second-order sections) run forwards and backwards, so the magnitude
    response is :func:`lowpass_response` (-6 dB at ``cutoff_hz``, no phase shift).
    ``(samples,) -> (samples,)`` float32."""
    if not 0 < cutoff_hz < sample_rate / 2:
        raise ListeningError(f"a {cutoff_hz:g} Hz low-pass needs a sample rate above {2 * cutoff_hz:g} Hz; "
                             f"the clip has {sample_rate} Hz")
    x = np.asarray(audio, dtype=np.float64)
    sos = signal.butter(order, cutoff_hz, fs=sample_rate, output="sos")
    return (signal.sosfiltfilt(sos, x) if x.size > 6 * (2 * len(sos) + 1) else x.copy()).astype(np.float32)


def lowpass_response(freqs_hz: np.ndarray, sample_rate: int, cutoff_hz: float,
                     order: int = LOWPASS_ORDER) -> np.ndarray:
    """The closed-form magnitude of :func:`lowpass`: a digital Butterworth has
    ``|H|^2 = 1 / (1 + (tan(pi f / fs) / tan(pi fc / fs))^(2 N))``; forwards and
    backwards it is applied twice, so the magnitude is that ``|H|^2``."""
    w = np.tan(np.pi * np.asarray(freqs_hz, dtype=np.float64) / sample_rate) / np.tan(np.pi * cutoff_hz / sample_rate)
    return 1.0 / (1.0 + w ** (2 * order))


def mushra_anchor_label(cutoff_hz: float) -> str:
    """The condition label of a MUSHRA low-pass anchor, e.g. ``anchor:lp3500``."""
    return f"{ANCHOR_PREFIX}lp{int(round(cutoff_hz))}"


def _plain(obj: Any) -> Any:
    """JSON-safe copy of a provenance value: numpy scalars and arrays become numbers and
    lists, paths strings, non-finite floats None, anything else unknown its ``str``."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.ndarray, np.generic)):
        return _plain(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    return str(obj)


def _as_clip(result: Any, what: str) -> RenderedClip:
    if isinstance(result, tuple) and len(result) == 3:
        result = RenderedClip(*result)
    if not isinstance(result, RenderedClip):
        raise ListeningError(f"render for {what} must return RenderedClip or (audio, sample_rate, provenance), "
                             f"got {type(result).__name__}")
    audio = np.asarray(result.audio, dtype=np.float32)
    if audio.ndim != 1 or audio.size == 0:
        raise ListeningError(f"render for {what} returned audio of shape {audio.shape}; need (samples,) mono")
    if isinstance(result.sample_rate, bool) or int(result.sample_rate) != result.sample_rate or result.sample_rate <= 0:
        raise ListeningError(f"render for {what} returned sample rate {result.sample_rate!r}")
    if not isinstance(result.provenance, dict):
        raise ListeningError(f"render for {what} must return a provenance dict")
    return RenderedClip(audio, int(result.sample_rate), _plain(result.provenance))


def _write_clip(clip: RenderedClip, path: Path, target_lufs: float) -> tuple:
    """Normalise and write; returns (loudness after, loudness provenance)."""
    res = core_audio.match_loudness(clip.audio, clip.sample_rate, target_lufs)
    core_audio.save_wav(path, res.audio, clip.sample_rate)
    after = core_audio.loudness(res.audio, clip.sample_rate)
    finite = (lambda v: v if math.isfinite(v) else None)
    return after, {"target_lufs": target_lufs, "measured_lufs": finite(res.measured_lufs),
                   "gain_db": res.gain_db, "peak_limited": res.peak_limited, "sample_rate": clip.sample_rate}


def _put(store: ResultsStore, test_id: str, cid: int, sentence: Sentence, folder: Path, variant: str,
         make: Callable[[], tuple]) -> None:
    """Render-and-record one stimulus unless it exists on disk already.  ``make()``
    returns ``(RenderedClip, provenance)`` or ``(source path to copy, provenance)``."""
    old = store.find_stimulus(test_id, cid, sentence.id, variant)
    if old is not None and Path(old.path).is_file():
        return
    stimulus_id = old.stimulus_id if old else secrets.token_hex(8)
    path = Path(old.path) if old else folder / f"{stimulus_id}.wav"
    made, prov = make()
    if isinstance(made, RenderedClip):
        lufs, prov["loudness"] = _write_clip(made, path, prov.pop("target_lufs"))
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(made, path)
        lufs = prov.pop("loudness_lufs")
    if old:
        store.update_stimulus(stimulus_id, loudness_lufs=lufs, provenance=prov)
    else:
        store.add_stimulus(test_id, cid, sentence.id, sentence.text, path.resolve(), loudness_lufs=lufs,
                           provenance=prov, variant=variant, stimulus_id=stimulus_id)


def render_stimuli(design: TestDesign, store: ResultsStore, folder: PathLike, render: Optional[Render] = None, *,
                   target_lufs: float = TARGET_LUFS, cancel: Optional[threading.Event] = None
                   ) -> list[StimulusRecord]:
    """Create the test in ``store`` and render every missing stimulus into
    ``folder/stimuli/`` (see module doc); returns all stimuli of the test.

    ``render(condition, text, seed)`` renders checkpoint conditions (``seed`` is the
    condition's); folder conditions read ``<folder>/<sentence_id>.wav``.  Setting
    ``cancel`` stops before the next clip with :class:`RenderCancelled`; calling again
    with the same design renders only what is missing.
    """

    def put(*args) -> None:
        if cancel is not None and cancel.is_set():
            raise RenderCancelled(f"rendering of test {design.test_id} was cancelled; the stimuli made so far are "
                                  "kept: render it again to finish")
        _put(*args)

    out = Path(folder) / "stimuli"
    tid = store.create_test(design.test_type, design.name or design.test_id, design.to_dict(), test_id=design.test_id)
    by_label = {}
    for cond in design.conditions:
        sha = ""
        if cond.kind == "checkpoint":
            if render is None:
                raise ListeningError(f"condition {cond.label!r} is a checkpoint: render_stimuli needs a render callable")
            if not Path(cond.checkpoint).is_file():
                raise ListeningError(f"checkpoint of condition {cond.label!r} not found: {cond.checkpoint}")
            sha = _sha256(Path(cond.checkpoint))
        vocoder = str(cond.settings.get("vocoder", ""))
        cid = store.add_condition(tid, cond.label, cond.kind, checkpoint_sha256=sha, settings=cond.settings,
                                  seed=cond.seed if cond.kind == "checkpoint" else None, vocoder=vocoder,
                                  app_version=core.__version__)
        by_label[cond.label] = cid
        base = {"condition_kind": cond.kind, "settings": cond.settings, "app_version": core.__version__,
                "target_lufs": target_lufs}
        for sentence in design.sentences:
            def make(cond=cond, sentence=sentence):
                prov = dict(base, sentence_id=sentence.id)
                if cond.kind == "folder":
                    src = Path(cond.folder) / f"{sentence.id}.wav"
                    a = core_audio.load_wav_with_rate(src)
                    prov.update(source=str(src), source_sha256=_sha256(src), vocoder=vocoder)
                    return RenderedClip(a.samples, a.sample_rate), prov
                clip = _as_clip(render(cond, sentence.text, cond.seed), f"{cond.label!r} / {sentence.id!r}")
                prov.update(checkpoint=cond.checkpoint, checkpoint_sha256=sha, seed=cond.seed,
                            vocoder=str(clip.provenance.get("vocoder", vocoder)), render=clip.provenance)
                return clip, prov
            put(store, tid, cid, sentence, out, "", make)
    sentences = {s.id: s for s in design.sentences}
    copies = {"abx": [c.label for c in design.conditions], "mushra": [design.reference]}.get(design.test_type, [])
    for label in copies:  # ABX's X, MUSHRA's hidden reference: byte copies under other opaque ids
        for sentence in design.sentences:
            ref = store.find_stimulus(tid, by_label[label], sentence.id)
            put(store, tid, by_label[label], sentence, out, "copy",
                lambda ref=ref: (ref.path, dict(ref.provenance, copy_of=ref.stimulus_id,
                                                loudness_lufs=ref.loudness_lufs)))
    if design.test_type == "mushra":
        for cutoff in MUSHRA_ANCHORS_HZ[:2 if design.anchor_7khz else 1]:
            settings = {"reference": design.reference, "lowpass_hz": cutoff, "order": LOWPASS_ORDER,
                        "filter": "butterworth, zero phase"}
            aid = store.add_condition(tid, mushra_anchor_label(cutoff), "anchor", settings=settings,
                                      app_version=core.__version__)
            for sentence in design.sentences:
                ref = store.find_stimulus(tid, by_label[design.reference], sentence.id)

                def make_lowpass(ref=ref, cutoff=cutoff, settings=settings):
                    a = core_audio.load_wav_with_rate(ref.path)
                    prov = {"condition_kind": "anchor", "anchor_of": ref.stimulus_id, "degradation": settings,
                            "app_version": core.__version__, "target_lufs": target_lufs}
                    return RenderedClip(lowpass(a.samples, a.sample_rate, cutoff), a.sample_rate), prov
                put(store, tid, aid, sentence, out, "", make_lowpass)
    for g in design.gold:
        ref = store.find_stimulus(tid, by_label[g.reference], g.sentence_id)
        sentence = sentences[g.sentence_id]
        if g.kind == "identical":
            put(store, tid, by_label[g.reference], sentence, out, "copy",
                 lambda ref=ref: (ref.path, dict(ref.provenance, copy_of=ref.stimulus_id,
                                                 loudness_lufs=ref.loudness_lufs)))
            continue
        noise_seed = zlib.crc32(f"{g.reference}/{g.sentence_id}".encode())
        settings = {"reference": g.reference, "lowpass_hz": ANCHOR_LOWPASS_HZ, "snr_db": ANCHOR_SNR_DB}
        aid = store.add_condition(tid, ANCHOR_PREFIX + g.reference, "anchor", settings=settings,
                                  app_version=core.__version__)

        def make_anchor(ref=ref, noise_seed=noise_seed, settings=settings):
            a = core_audio.load_wav_with_rate(ref.path)
            prov = {"condition_kind": "anchor", "anchor_of": ref.stimulus_id, "degradation": settings,
                    "noise_seed": noise_seed, "app_version": core.__version__, "target_lufs": target_lufs}
            return RenderedClip(degrade_for_anchor(a.samples, a.sample_rate, noise_seed), a.sample_rate), prov
        put(store, tid, aid, sentence, out, "", make_anchor)
    return store.stimuli(tid)


# --------------------------------------------------------------------------- trial orders


def build_trials(design: TestDesign, stimuli: Sequence[StimulusRecord], seed: int,
                 rater_index: Optional[int] = None) -> list[Trial]:
    """A rater's randomised trial order (``random.Random(seed)``: the same seed and
    ``rater_index`` give the same order).  MOS: every condition x sentence stimulus once,
    plus gold anchors.  A/B: every pair of conditions (design order) for every sentence,
    sides swapped with probability 1/2, plus gold pairs.  The other types: see the module
    doc.  With ``subset_per_rater`` the rater gets only the items of
    :func:`studio.assignment.rater_cells` for ``rater_index`` (the number of raters who
    started before; 0 when None), gold trials always.  Intelligibility rotates the
    conditions over sentences by ``rater_index`` (a Latin square's row; drawn from the
    seed when None).  Trials hold stimulus ids only, never labels."""
    rng = random.Random(seed)
    table = {(s.condition, s.sentence_id, s.variant): s for s in stimuli}

    def get(label: str, sentence_id: str, variant: str = "") -> str:
        if (label, sentence_id, variant) not in table:
            raise TestNotReadyError(f"no stimulus for condition {label!r}, sentence {sentence_id!r}; render the "
                                    "test's stimuli (again)")
        return table[(label, sentence_id, variant)].stimulus_id

    text = {s.id: s.text for s in design.sentences}
    items: list = []  # (unit index, sentence index, trial): the cells of studio.assignment
    gold: list = []
    kind = design.test_type
    others = [c.label for c in design.conditions if c.label != design.reference]
    labels = [c.label for c in design.conditions]
    pairs = [(labels[i], labels[j]) for i in range(len(labels)) for j in range(i + 1, len(labels))]
    if kind in ("smos", "dcr"):
        items = [(u, k, Trial(kind, s.id, s.text, (get(design.reference, s.id), get(label, s.id))))
                 for u, label in enumerate(others) for k, s in enumerate(design.sentences)]
    elif kind == "intelligibility":
        shift = rng.randrange(len(labels)) if rater_index is None else rater_index % len(labels)
        items = [(0, k, Trial(kind, s.id, s.text, (get(labels[(k + shift) % len(labels)], s.id),)))
                 for k, s in enumerate(design.sentences)]
    elif kind == "mushra":
        anchors = [mushra_anchor_label(f) for f in MUSHRA_ANCHORS_HZ[:2 if design.anchor_7khz else 1]]
        for k, s in enumerate(design.sentences):
            rated = [get(design.reference, s.id, "copy")] + [get(label, s.id) for label in others + anchors]
            rng.shuffle(rated)
            items.append((0, k, Trial(kind, s.id, s.text, (get(design.reference, s.id), *rated))))
    elif kind == "abx":
        for k, s in enumerate(design.sentences):
            for u, (first, second) in enumerate(pairs):
                swapped = rng.random() < 0.5
                a, b = (second, first) if swapped else (first, second)
                key = "A" if rng.random() < 0.5 else "B"
                x = get(a if key == "A" else b, s.id, "copy")
                items.append((u, k, Trial(kind, s.id, s.text, (get(a, s.id), get(b, s.id), x), swapped, key=key)))
    elif kind == "mos":
        for u, c in enumerate(design.conditions):
            items += [(u, k, Trial("mos", s.id, s.text, (get(c.label, s.id),))) for k, s in enumerate(design.sentences)]
        gold = [Trial("mos", g.sentence_id, text[g.sentence_id], (get(ANCHOR_PREFIX + g.reference, g.sentence_id),),
                      gold="score<=2") for g in design.gold]
    else:
        def pair(sid: str, first: str, second: str, gold: Optional[str] = None) -> Trial:
            swapped = rng.random() < 0.5
            ids = (second, first) if swapped else (first, second)
            if gold == "reference":
                gold = "choice=B" if swapped else "choice=A"
            return Trial("ab", sid, text[sid], ids, swapped, gold)

        for k, s in enumerate(design.sentences):
            for u, (first, second) in enumerate(pairs):
                items.append((u, k, pair(s.id, get(first, s.id), get(second, s.id))))
        for g in design.gold:
            ref = get(g.reference, g.sentence_id)
            if g.kind == "identical":
                gold.append(pair(g.sentence_id, ref, get(g.reference, g.sentence_id, "copy"), "choice=none"))
            else:
                gold.append(pair(g.sentence_id, ref, get(ANCHOR_PREFIX + g.reference, g.sentence_id), "reference"))
    if design.subset_per_rater:
        chosen = set(rater_cells(design.units, len(design.sentences), design.subset_per_rater, rater_index or 0))
        items = [item for item in items if item[:2] in chosen]
    trials = [t for _, _, t in items] + gold
    rng.shuffle(trials)
    if design.practice and trials:
        first = rng.choice([t for t in trials if t.gold is None] or trials)
        trials.insert(0, dataclasses.replace(first, practice=True, gold=None))
    return trials
