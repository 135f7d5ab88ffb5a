"""Listening-test results on disk: one SQLite database ``results.sqlite`` per folder.

Durability: the database runs in WAL mode with ``synchronous=FULL`` and every rating
is its own ``BEGIN IMMEDIATE ... COMMIT`` transaction, so a rating is on disk when
:meth:`ResultsStore.record_rating` returns.  (WAL with ``NORMAL`` would already survive
the server process being killed, since committed frames sit in the OS page cache; FULL
also fsyncs the WAL at each commit so a power cut loses nothing either.  One fsync per
human rating costs nothing noticeable.)

Concurrency: one connection per thread (and per process after a fork); writers in one
process queue on a lock, writers in different processes on SQLite's busy timeout.

Tables: ``tests``, ``conditions``, ``stimuli``, ``sessions`` (one per rater and test,
holding the rater's randomised trial order and position), ``ratings`` (one row per
rating) and ``schema_version``.

Duplicates: a second rating for the same trial of a session is refused
(:class:`DuplicateRatingError`) unless ``revise=True``; a revision marks the earlier
row superseded (kept for audit) and inserts a new one.  Exports and statistics use the
current (non-superseded) rating of each trial.

CSV export (:data:`CSV_COLUMNS`, one row per current rating; the condition is revealed
only here; :data:`CSV_COLUMN_DOCS` says what every column holds and is written beside
an exported file as ``<name>.columns.json``).  One value per cell, no joined lists:
per-clip facts of a MOS trial are in the plain columns (``condition``, ``stimulus_id``,
``play_count``, ...), those of an A/B trial in ``..._a`` / ``..._b`` columns for the
sides as presented, and the other set is empty.  ``trial_type`` is ``mos``, ``ab`` or
``gold`` (an attention trial, whose expectation is ``gold_expected``).  A/B rows name
the preferred system in ``chosen_condition`` (empty for "no preference"); ``cmos`` is
the optional comparison score of B relative to A as presented: -3 = A much better ..
+3 = B much better.

The other test types (:data:`TEST_TYPES`): ``smos`` and ``dcr`` rate a clip 1..5
against a reference clip (``reference_condition``, ``stimulus_id_ref``); ``abx`` rows
say which side X matched (``x_is``) and whether the rater found it (``correct``);
``intelligibility`` rows hold what the rater typed (``transcript``) and its word error
rate against the sentence (``wer``).  A ``mushra`` trial (one page: the open reference
and a slider 0..100 per clip) is committed as one transaction holding every slider,
and exported as **one row per slider** (``condition``, ``score``, ``clip_role``:
hidden_reference, anchor or condition, ``clip_position`` on the page).  ``vocoder`` columns and ``settings_json`` name the vocoder that
really made the clip (``settings_json`` also holds the sampler options it was rendered
with), never the requested ``auto``.

Tests can be archived (:meth:`ResultsStore.archive_test`): hidden from raters and from
the lists, their ratings kept.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import secrets
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional, Sequence, TextIO, Union

__all__ = ["ResultsStore", "ResultsError", "RatingError", "DuplicateRatingError", "Trial", "TestRecord",
           "ConditionRecord", "StimulusRecord", "SessionRecord", "RatingRecord", "CSV_COLUMNS", "TEST_TYPES",
           "CONDITION_KINDS", "AB_CHOICES", "ABX_CHOICES", "SCORE_TYPES", "SCHEMA_VERSION", "MIGRATIONS",
           "clip_names", "clip_role", "rated_scores", "completion_code", "CHECK_KINDS"]

DB_NAME = "results.sqlite"
TEST_TYPES = ("mos", "ab", "mushra", "abx", "smos", "dcr", "intelligibility")
SCORE_TYPES = ("mos", "smos", "dcr")  # one clip rated 1..5 (after a reference clip for smos, dcr)
ABX_CHOICES = ("A", "B")
MUSHRA_RANGE = (0, 100)
MAX_TRANSCRIPT = 2000
CONDITION_KINDS = ("checkpoint", "folder", "anchor")
AB_CHOICES = ("A", "B", "none")
MOS_RANGE = (1, 5)
CMOS_RANGE = (-3, 3)
_PER_CLIP = ("stimulus_id", "play_count", "checkpoint_sha256", "seed", "vocoder", "settings_json", "app_version")
CSV_COLUMN_DOCS: dict[str, str] = {
    "test_id": "the test's opaque id",
    "test_type": "mos (absolute category rating 1..5), ab (preference between two clips), mushra (ITU-R "
                 "BS.1534 0..100 sliders against an open reference), abx (is X like A or B), smos (speaker "
                 "similarity 1..5 to a reference clip), dcr (degradation category rating 1..5 against a reference) "
                 "or intelligibility (the rater types what they heard)",
    "trial_type": "the test type, gold (an attention trial with a known expected answer: gold_expected) or "
                  "practice (the rater's practice trial: a repeat of one of the test's trials, left out of every "
                  "statistic)",
    "gold_expected": "for gold trials: score<=2 (MOS anchor), choice=none (identical pair), choice=A or choice=B "
                     "(the undegraded side of an obvious pair); empty otherwise",
    "rater_id": "the rater's id (typed in, or the signed-in user)",
    "session_id": "the rater's session in this test",
    "trial_index": "0-based position of the trial in the rater's randomised order",
    "sentence_id": "the sentence's id", "text": "the sentence",
    "condition": "the rated condition (MOS, SMOS, DCR, intelligibility; MUSHRA: this slider's); empty for A/B and ABX",
    "reference_condition": "SMOS, DCR, MUSHRA: the condition of the reference clip; empty otherwise",
    "stimulus_id_ref": "SMOS, DCR, MUSHRA: the reference clip's opaque id",
    "play_count_ref": "SMOS, DCR, MUSHRA: times the reference clip was played",
    "clip_role": "MUSHRA: hidden_reference (the reference itself, unlabelled), anchor (low-pass anchor) or condition",
    "clip_position": "MUSHRA: 1-based position of this slider on the page",
    "condition_x": "ABX: the condition of clip X", "stimulus_id_x": "ABX: clip X's opaque id",
    "play_count_x": "ABX: times clip X was played",
    "x_is": "ABX: the side (A or B) whose clip X is a copy of",
    "correct": "ABX: true when the rater's answer equals x_is",
    "transcript": "intelligibility: what the rater typed",
    "completion_code": "the code the rater was shown after the last trial (the same on every row of a session; "
                       "compare it with the code a rater reports)",
    "consent_utc": "when the rater agreed to the test's consent text (ISO 8601, UTC; empty when the test asks none)",
    "headphone_check": "the rater's headphone check (studio.headphone_check): passed, failed or incomplete; empty "
                       "when the test asks none",
    "wer": "intelligibility: word error rate of the transcript against the sentence (core.eval.wer)",
    "condition_a": "A/B: the condition heard as A", "condition_b": "A/B: the condition heard as B",
    "presented_order": "A/B: AB when side A holds the pair's first condition in the test design, BA when swapped",
    "chosen_condition": "A/B: the preferred condition, empty for no preference; ABX: the condition of the side chosen",
    "score": "MOS: 1 (bad) .. 5 (excellent); SMOS: 1 (not at all similar) .. 5 (extremely similar); DCR: "
             "1 (degradation very annoying) .. 5 (inaudible); MUSHRA: this slider, 0 (bad) .. 100 (excellent)",
    "choice": "A/B: A, B or none, the side as presented; ABX: A or B (the side the rater says X is)",
    "cmos": "A/B, optional: B relative to A as presented, -3 (A much better) .. 0 (about the same) .. "
            "+3 (B much better); its sign agrees with choice",
    "stimulus_id": "MOS: the clip's opaque id", "play_count": "MOS: times the clip was played",
    "listened_to_end": "true when every clip was heard to the end (always, for accepted ratings)",
    "response_time_s": "seconds from the first play to the answer",
    "timestamp_utc": "when the rating was committed (ISO 8601, UTC)",
    "checkpoint_sha256": "MOS: sha256 of the checkpoint that made the clip (empty for WAV folders and anchors)",
    "seed": "MOS: the condition's sampling seed", "vocoder": "MOS: the vocoder that really made the clip",
    "settings_json": "MOS: the condition's settings as JSON, with the sampler options the clip was rendered "
                     "with and the vocoder that really made it",
    "app_version": "MOS: the code version that rendered the clip",
}
for _name in _PER_CLIP:
    _base = CSV_COLUMN_DOCS[_name].removeprefix("MOS: ")
    CSV_COLUMN_DOCS[f"{_name}_a"] = f"A/B: {_base}, side A"
    CSV_COLUMN_DOCS[f"{_name}_b"] = f"A/B: {_base}, side B"
    CSV_COLUMN_DOCS[_name] += " (the rated clip: also SMOS, DCR, intelligibility, MUSHRA's slider)"
CSV_COLUMNS = ("test_id", "test_type", "trial_type", "gold_expected", "rater_id", "session_id", "trial_index",
               "sentence_id", "text", "condition", "condition_a", "condition_b", "presented_order",
               "chosen_condition", "score", "choice", "cmos", "stimulus_id", "stimulus_id_a", "stimulus_id_b",
               "play_count", "play_count_a", "play_count_b", "listened_to_end", "response_time_s", "timestamp_utc",
               "checkpoint_sha256", "checkpoint_sha256_a", "checkpoint_sha256_b", "seed", "seed_a", "seed_b",
               "vocoder", "vocoder_a", "vocoder_b", "settings_json", "settings_json_a", "settings_json_b",
               "app_version", "app_version_a", "app_version_b", "reference_condition", "stimulus_id_ref",
               "play_count_ref", "clip_role", "clip_position", "condition_x", "stimulus_id_x", "play_count_x", "x_is",
               "correct", "transcript", "wer", "completion_code", "consent_utc", "headphone_check")
assert set(CSV_COLUMNS) == set(CSV_COLUMN_DOCS), "every CSV column is documented"


def _add_archived(c: sqlite3.Connection) -> None:
    c.execute("ALTER TABLE tests ADD COLUMN archived INTEGER NOT NULL DEFAULT 0")


def _more_test_types(c: sqlite3.Connection) -> None:
    """Version 3: the new test types.  SQLite cannot alter a CHECK constraint, so the
    one on ``tests.type`` (mos, ab) is dropped by editing the stored schema (SQLite's
    documented procedure for removing a CHECK; the code checks the type instead); the
    ratings gain ``scores_json`` (MUSHRA sliders) and ``transcript`` (intelligibility)."""
    version = c.execute("PRAGMA schema_version").fetchone()[0]
    c.execute("PRAGMA writable_schema = ON")
    c.execute("UPDATE sqlite_master SET sql = replace(sql, ?, '') WHERE type = 'table' AND name = 'tests'",
              (" CHECK (type IN ('mos', 'ab'))",))
    c.execute(f"PRAGMA schema_version = {int(version) + 1}")
    c.execute("PRAGMA writable_schema = OFF")
    have = {row[1] for row in c.execute("PRAGMA table_info(ratings)")}  # empty when the table is not there yet
    for column in ("scores_json", "transcript"):
        if have and column not in have:
            c.execute(f"ALTER TABLE ratings ADD COLUMN {column} TEXT")


SCHEMA_VERSION = 3
# MIGRATIONS[v](conn) upgrades a version-v database to v + 1 inside the open transaction.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _add_archived, 2: _more_test_types}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tests (
    test_id TEXT PRIMARY KEY, type TEXT NOT NULL,
    name TEXT NOT NULL, created TEXT NOT NULL, design_json TEXT NOT NULL, archived INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS conditions (
    condition_id INTEGER PRIMARY KEY AUTOINCREMENT, test_id TEXT NOT NULL REFERENCES tests(test_id),
    label TEXT NOT NULL, kind TEXT NOT NULL, checkpoint_sha256 TEXT NOT NULL, settings_json TEXT NOT NULL,
    seed INTEGER, vocoder TEXT NOT NULL, app_version TEXT NOT NULL, UNIQUE (test_id, label));
CREATE TABLE IF NOT EXISTS stimuli (
    stimulus_id TEXT PRIMARY KEY, test_id TEXT NOT NULL REFERENCES tests(test_id),
    condition_id INTEGER NOT NULL REFERENCES conditions(condition_id), sentence_id TEXT NOT NULL,
    text TEXT NOT NULL, path TEXT NOT NULL, loudness_lufs REAL, provenance_json TEXT NOT NULL,
    variant TEXT NOT NULL DEFAULT '', UNIQUE (test_id, condition_id, sentence_id, variant));
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY, rater_id TEXT NOT NULL, test_id TEXT NOT NULL REFERENCES tests(test_id),
    seed INTEGER NOT NULL, created TEXT NOT NULL, order_json TEXT NOT NULL, position INTEGER NOT NULL,
    UNIQUE (test_id, rater_id));
CREATE TABLE IF NOT EXISTS ratings (
    rating_id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL REFERENCES sessions(session_id),
    trial_index INTEGER NOT NULL, score INTEGER, choice TEXT, cmos INTEGER, play_counts_json TEXT NOT NULL,
    listened_json TEXT NOT NULL, response_time_s REAL NOT NULL, timestamp_utc TEXT NOT NULL,
    superseded INTEGER NOT NULL DEFAULT 0, scores_json TEXT, transcript TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS ratings_current ON ratings (session_id, trial_index) WHERE superseded = 0;
CREATE TABLE IF NOT EXISTS rater_checks (
    session_id TEXT NOT NULL REFERENCES sessions(session_id), kind TEXT NOT NULL, item INTEGER NOT NULL,
    value_json TEXT NOT NULL, timestamp_utc TEXT NOT NULL, PRIMARY KEY (session_id, kind, item));
"""
# rater_checks (added without a schema version: older code ignores the table): what a
# rater did before the trials, one row per answer, committed when given -- "consent"
# (item 0, the consent text's sha256) and "headphones" (item = check trial, value = the
# position chosen; studio.headphone_check).
CHECK_KINDS = ("consent", "headphones")


class ResultsError(ValueError):
    """Bad input or state for the results store; the message says what to do."""


class RatingError(ResultsError):
    """A rating that is refused (invalid value, clip not heard to the end, ...)."""


class DuplicateRatingError(RatingError):
    """The trial already has a rating in this session (pass ``revise=True`` to replace it)."""


class UnknownTestError(ResultsError):
    """No test with that id in this results folder."""


class RaterIdError(ResultsError):
    """A rater id that cannot be used (empty or too long); the message is for the rater."""


def _dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _stamp(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Trial:
    """One trial of a rater's order.  ``stimulus_ids`` in presentation order (names in
    :func:`clip_names`): ``(clip,)`` for MOS and intelligibility, ``(A, B)`` for A/B,
    ``(A, B, X)`` for ABX, ``(reference, clip)`` for SMOS and DCR, ``(reference, 1, 2,
    ...)`` for MUSHRA.  ``key``: ABX, the side X is a copy of ("A" or "B").  ``swapped``: side A holds the later condition of the
    pair in design order.  ``gold``: expectation of an attention trial (``"score<=2"``,
    ``"choice=none"``, ``"choice=A"``, ``"choice=B"``) or None.  Holds no condition names."""

    kind: str
    sentence_id: str
    text: str
    stimulus_ids: tuple
    swapped: bool = False
    gold: Optional[str] = None
    key: Optional[str] = None
    practice: bool = False

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stimulus_ids"] = list(self.stimulus_ids)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Trial":
        return cls(d["kind"], d["sentence_id"], d["text"], tuple(d["stimulus_ids"]), bool(d["swapped"]), d["gold"],
                   d.get("key"), bool(d.get("practice", False)))


def completion_code(session_id: str) -> str:
    """The code a rater is shown after the last trial, ``XXXX-XXXX``: derived from the
    session id (never shown to raters), so the experimenter can check a reported code
    against the CSV's ``completion_code`` column and nobody can make one up for a
    session they did not finish without its id."""
    digest = hashlib.sha256(f"flowtts-completion:{session_id}".encode()).hexdigest()[:8].upper()
    return f"{digest[:4]}-{digest[4:]}"


def clip_names(kind: str, n_clips: int) -> tuple:
    """What the rater's page calls the clips of a trial of ``kind`` with ``n_clips`` clips."""
    if kind in ("mos", "intelligibility"):
        return ("clip",)
    if kind == "ab":
        return ("A", "B")
    if kind == "abx":
        return ("A", "B", "X")
    if kind in ("smos", "dcr"):
        return ("reference", "clip")
    if kind == "mushra":
        return ("reference",) + tuple(str(k) for k in range(1, n_clips))
    raise ResultsError(f"unknown trial kind {kind!r}; valid: {', '.join(TEST_TYPES)}")


@dataclass(frozen=True)
class TestRecord:
    __test__ = False  # not a pytest test class

    test_id: str
    test_type: str
    name: str
    created: str
    design: dict
    archived: bool = False


@dataclass(frozen=True)
class ConditionRecord:
    condition_id: int
    test_id: str
    label: str
    kind: str
    checkpoint_sha256: str
    settings: dict
    seed: Optional[int]
    vocoder: str
    app_version: str


@dataclass(frozen=True)
class StimulusRecord:
    stimulus_id: str
    test_id: str
    condition_id: int
    condition: str
    sentence_id: str
    text: str
    path: str
    loudness_lufs: Optional[float]
    provenance: dict
    variant: str


@dataclass(frozen=True)
class SessionRecord:
    session_id: str
    test_id: str
    rater_id: str
    seed: int
    created: str
    order: tuple  # of Trial
    position: int  # first unanswered trial (len(order) when done)


@dataclass(frozen=True)
class RatingRecord:
    """A rating with its trial resolved (conditions in presentation order)."""

    rating_id: int
    test_id: str
    test_type: str
    session_id: str
    rater_id: str
    trial_index: int
    sentence_id: str
    text: str
    stimulus_ids: tuple
    conditions: tuple
    swapped: bool
    gold: Optional[str]
    score: Optional[int]
    choice: Optional[str]
    cmos: Optional[int]
    play_counts: tuple
    listened_to_end: tuple
    response_time_s: float
    timestamp_utc: str
    superseded: bool
    scores: tuple = ()  # MUSHRA: one slider value per rated clip (clips 1.. in presentation order)
    transcript: Optional[str] = None  # intelligibility
    key: Optional[str] = None  # ABX: the side X is a copy of
    practice: bool = False  # the rater's practice trial: exported, never counted


# --------------------------------------------------------------------------- the store


class ResultsStore:
    """The results database of one folder (``folder/results.sqlite``), safe to share
    between threads and processes.  ``now`` returns the current UTC time (tests pin it)."""

    def __init__(self, folder: Union[str, Path], *, now: Callable[[], datetime] = _utc_now):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / DB_NAME
        self._now = now
        self._local = threading.local()
        self._lock = threading.Lock()  # serialises this process's writers
        self._conns: list = []  # (pid, connection) for close()
        self._conns_lock = threading.Lock()
        self._orders: dict = {}  # session_id -> tuple of Trial
        with self._write() as c:  # migrate an existing database first, then create what is missing
            rows = []
            if c.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_version'").fetchone():
                rows = c.execute("SELECT version FROM schema_version").fetchall()
            if rows:
                self._migrate(c, int(rows[0][0]))
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    c.execute(statement)
            if not rows:
                c.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))

    def _migrate(self, c: sqlite3.Connection, found: int) -> None:
        if found > SCHEMA_VERSION:
            raise ResultsError(f"{self.path} has results schema version {found}, newer than this code's "
                               f"{SCHEMA_VERSION}; update the studio to read it")
        while found < SCHEMA_VERSION:
            if found not in MIGRATIONS:
                raise ResultsError(f"{self.path}: no migration from results schema version {found}")
            MIGRATIONS[found](c)
            found += 1
            c.execute("UPDATE schema_version SET version = ?", (found,))

    # ---- connections and transactions

    def _conn(self) -> sqlite3.Connection:
        local, pid = self._local, os.getpid()
        if getattr(local, "pid", None) != pid:  # new thread, or inherited through fork
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 60000")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise ResultsError(f"cannot put {self.path} in WAL mode (got {mode!r}); use a local disk")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            local.pid, local.conn, local.inode = pid, conn, self._inode()
            with self._conns_lock:
                self._conns.append((pid, conn))
        return local.conn

    def _inode(self) -> tuple:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise ResultsError(f"the results database {self.path} is gone (folder removed or renamed while the "
                               "studio was running); nothing more can be saved: restore it and restart") from None
        return st.st_dev, st.st_ino

    @contextmanager
    def _write(self):
        """One IMMEDIATE transaction.  Refused with :class:`ResultsError` (nothing written)
        when the database file was removed or replaced since this connection opened it (a
        commit would land in an unlinked file and be lost) or cannot be written (read-only
        file or folder, disk full): the message names the file and what to do."""
        try:
            conn = self._conn()
            with self._lock:
                if self._inode() != self._local.inode:
                    raise ResultsError(f"the results database {self.path} was replaced while the studio was "
                                       "running; nothing more can be saved here: restart the studio")
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise ResultsError(f"cannot save to the results database {self.path}: {exc}; check that the results "
                               "folder and file are writable and on a local disk") from None

    def _read(self, sql: str, args: Sequence = ()) -> list:
        return self._conn().execute(sql, args).fetchall()

    def close(self) -> None:
        """Close this process's connections (the store reopens them on next use)."""
        pid = os.getpid()
        with self._conns_lock:
            mine = [c for p, c in self._conns if p == pid]
            self._conns = [(p, c) for p, c in self._conns if p != pid]
        for c in mine:
            c.close()
        self._local = threading.local()

    def __enter__(self) -> "ResultsStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- tests, conditions, stimuli

    def create_test(self, test_type: str, name: str = "", design: Optional[dict] = None, *,
                    test_id: Optional[str] = None) -> str:
        """Create a test and return its id (random hex unless given).  Creating an
        existing id again with the same type and design returns it; a different one is
        an error."""
        if test_type not in TEST_TYPES:
            raise ResultsError(f"unknown test type {test_type!r}; valid: {', '.join(TEST_TYPES)}")
        test_id = test_id or secrets.token_hex(6)
        if not isinstance(test_id, str) or not test_id.strip():
            raise ResultsError(f"test_id must be a non-empty string, got {test_id!r}")
        design_json = _dumps(design or {})
        with self._write() as c:
            row = c.execute("SELECT type, design_json FROM tests WHERE test_id = ?", (test_id,)).fetchone()
            if row is None:
                c.execute("INSERT INTO tests (test_id, type, name, created, design_json) VALUES (?, ?, ?, ?, ?)",
                          (test_id, test_type, name or test_id, _stamp(self._now()), design_json))
            elif tuple(row) != (test_type, design_json):
                raise ResultsError(f"test {test_id!r} already exists with a different type or design; "
                                   "choose a new test id")
        return test_id

    def test(self, test_id: str) -> TestRecord:
        rows = self._read("SELECT test_id, type, name, created, design_json, archived FROM tests WHERE test_id = ?",
                          (test_id,))
        if not rows:
            raise UnknownTestError(f"no test {test_id!r} in {self.path}")
        r = rows[0]
        return TestRecord(r[0], r[1], r[2], r[3], json.loads(r[4]), bool(r[5]))

    def tests(self, *, include_archived: bool = True) -> list[TestRecord]:
        """Tests in creation order (archived ones too unless ``include_archived`` is False)."""
        where = "" if include_archived else " WHERE archived = 0"
        return [self.test(r[0]) for r in self._read(f"SELECT test_id FROM tests{where} ORDER BY created, test_id")]

    def archive_test(self, test_id: str, archived: bool = True) -> None:
        """Archive (or restore) a test: raters can no longer open it and the pages hide
        it; its stimuli and ratings stay and still export."""
        self.test(test_id)
        with self._write() as c:
            c.execute("UPDATE tests SET archived = ? WHERE test_id = ?", (int(bool(archived)), test_id))

    def revision(self) -> tuple:
        """A cheap fingerprint that changes when a test is created, archived or rendered,
        or a rating is given (pages poll it to refresh themselves)."""
        (row,) = self._read("SELECT (SELECT count(*) FROM tests), (SELECT coalesce(sum(archived), 0) FROM tests),"
                            " (SELECT count(*) FROM stimuli), (SELECT coalesce(max(rating_id), 0) FROM ratings),"
                            " (SELECT count(*) FROM ratings WHERE superseded = 1)")
        return tuple(row)

    def add_condition(self, test_id: str, label: str, kind: str, *, checkpoint_sha256: str = "",
                      settings: Optional[dict] = None, seed: Optional[int] = None, vocoder: str = "",
                      app_version: str = "") -> int:
        """Add a condition and return its id.  Adding the same label again with the same
        kind, hash, settings, seed and vocoder returns the existing id (re-rendering);
        anything else differing is an error."""
        if kind not in CONDITION_KINDS:
            raise ResultsError(f"unknown condition kind {kind!r}; valid: {', '.join(CONDITION_KINDS)}")
        if not isinstance(label, str) or not label.strip():
            raise ResultsError(f"condition label must be a non-empty string, got {label!r}")
        self.test(test_id)
        values = (kind, checkpoint_sha256 or "", _dumps(settings or {}), seed, vocoder or "")
        with self._write() as c:
            row = c.execute("SELECT condition_id, kind, checkpoint_sha256, settings_json, seed, vocoder FROM conditions"
                            " WHERE test_id = ? AND label = ?", (test_id, label)).fetchone()
            if row is None:
                cur = c.execute("INSERT INTO conditions (test_id, label, kind, checkpoint_sha256, settings_json, seed,"
                                " vocoder, app_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                (test_id, label, *values, app_version or ""))
                return int(cur.lastrowid)
            if tuple(row[1:]) != values:
                raise ResultsError(f"condition {label!r} of test {test_id!r} already exists with different "
                                   "settings; its stimuli would be stale, so create a new test id")
            return int(row[0])

    def conditions(self, test_id: str) -> list[ConditionRecord]:
        rows = self._read("SELECT condition_id, test_id, label, kind, checkpoint_sha256, settings_json, seed, vocoder,"
                          " app_version FROM conditions WHERE test_id = ? ORDER BY condition_id", (test_id,))
        return [ConditionRecord(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7], r[8]) for r in rows]

    def add_stimulus(self, test_id: str, condition_id: int, sentence_id: str, text: str, path: Union[str, Path], *,
                     loudness_lufs: Optional[float] = None, provenance: Optional[dict] = None, variant: str = "",
                     stimulus_id: Optional[str] = None) -> str:
        """Record a rendered clip; returns its opaque id (random hex unless given)."""
        stimulus_id = stimulus_id or secrets.token_hex(8)
        lufs = float(loudness_lufs) if loudness_lufs is not None and math.isfinite(loudness_lufs) else None
        with self._write() as c:
            if c.execute("SELECT 1 FROM conditions WHERE condition_id = ? AND test_id = ?",
                         (condition_id, test_id)).fetchone() is None:
                raise ResultsError(f"condition {condition_id} does not belong to test {test_id!r}")
            try:
                c.execute("INSERT INTO stimuli VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          (stimulus_id, test_id, condition_id, sentence_id, text, str(path), lufs,
                           _dumps(provenance or {}), variant))
            except sqlite3.IntegrityError as exc:
                raise ResultsError(f"stimulus for condition {condition_id}, sentence {sentence_id!r}, variant "
                                   f"{variant!r} of test {test_id!r} already exists ({exc})") from None
        return stimulus_id

    def update_stimulus(self, stimulus_id: str, *, loudness_lufs: Optional[float], provenance: dict) -> None:
        """Replace the measured loudness and provenance of a clip rendered again."""
        lufs = float(loudness_lufs) if loudness_lufs is not None and math.isfinite(loudness_lufs) else None
        with self._write() as c:
            c.execute("UPDATE stimuli SET loudness_lufs = ?, provenance_json = ? WHERE stimulus_id = ?",
                      (lufs, _dumps(provenance), stimulus_id))

    _STIM_SQL = ("SELECT s.stimulus_id, s.test_id, s.condition_id, c.label, s.sentence_id, s.text, s.path,"
                 " s.loudness_lufs, s.provenance_json, s.variant FROM stimuli s"
                 " JOIN conditions c ON c.condition_id = s.condition_id")

    def stimuli(self, test_id: str) -> list[StimulusRecord]:
        rows = self._read(self._STIM_SQL + " WHERE s.test_id = ? ORDER BY s.condition_id, s.rowid", (test_id,))
        return [StimulusRecord(*r[:8], json.loads(r[8]), r[9]) for r in rows]

    def find_stimulus(self, test_id: str, condition_id: int, sentence_id: str,
                      variant: str = "") -> Optional[StimulusRecord]:
        rows = self._read(self._STIM_SQL + " WHERE s.test_id = ? AND s.condition_id = ? AND s.sentence_id = ?"
                          " AND s.variant = ?", (test_id, condition_id, sentence_id, variant))
        return StimulusRecord(*rows[0][:8], json.loads(rows[0][8]), rows[0][9]) if rows else None

    # ---- sessions

    def start_or_resume_session(self, test_id: str, rater_id: str, *,
                                make_order: Optional[Callable[[int, int], Sequence[Trial]]] = None,
                                seed: Optional[int] = None) -> SessionRecord:
        """The rater's session of a test: the existing one (same order, position), or a
        new one whose order is ``make_order(seed, rater_index)`` with a recorded seed (random
        unless given) and the number of raters who started the test before (0, 1, ...;
        counted inside the write transaction, so two raters starting at once get different
        numbers; :mod:`studio.assignment`).  Every trial must name stimuli of this test."""
        if not isinstance(rater_id, str) or not rater_id.strip() or len(rater_id) > 200:
            raise RaterIdError(f"rater id must be a non-empty string of at most 200 characters, got {rater_id!r}")
        test_type = self.test(test_id).test_type
        with self._write() as c:
            row = c.execute("SELECT session_id FROM sessions WHERE test_id = ? AND rater_id = ?",
                            (test_id, rater_id)).fetchone()
            if row is None:
                if make_order is None:
                    raise ResultsError(f"rater {rater_id!r} has no session in test {test_id!r}; "
                                       "starting one needs make_order")
                seed = secrets.randbits(31) if seed is None else int(seed)
                (index,), = c.execute("SELECT COUNT(*) FROM sessions WHERE test_id = ?", (test_id,)).fetchall()
                order = list(make_order(seed, index))
                known = {r[0] for r in c.execute("SELECT stimulus_id FROM stimuli WHERE test_id = ?", (test_id,))}
                for t in order:
                    if t.kind != test_type or len(t.stimulus_ids) != len(clip_names(t.kind, len(t.stimulus_ids))) \
                            or (t.kind == "mushra" and len(t.stimulus_ids) < 3):
                        raise ResultsError(f"trial {t} does not fit a {test_type} test")
                    if not set(t.stimulus_ids) <= known:
                        raise ResultsError(f"trial {t} names stimuli that test {test_id!r} does not have")
                session_id = secrets.token_hex(8)
                c.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, 0)",
                          (session_id, rater_id, test_id, seed, _stamp(self._now()),
                           _dumps([t.to_dict() for t in order])))
            else:
                session_id = row[0]
        return self.session(session_id)

    def session(self, session_id: str) -> SessionRecord:
        rows = self._read("SELECT session_id, test_id, rater_id, seed, created, position FROM sessions"
                          " WHERE session_id = ?", (session_id,))
        if not rows:
            raise ResultsError(f"no session {session_id!r} in {self.path}")
        r = rows[0]
        return SessionRecord(r[0], r[1], r[2], r[3], r[4], self._order(session_id), r[5])

    def _order(self, session_id: str) -> tuple:
        """A session's trial order (immutable once written, so parsed once per store)."""
        if session_id not in self._orders:
            (text,), = self._read("SELECT order_json FROM sessions WHERE session_id = ?", (session_id,))
            self._orders[session_id] = tuple(Trial.from_dict(d) for d in json.loads(text))
        return self._orders[session_id]

    def sessions(self, test_id: str) -> list[SessionRecord]:
        rows = self._read("SELECT session_id FROM sessions WHERE test_id = ? ORDER BY created, rater_id", (test_id,))
        return [self.session(r[0]) for r in rows]

    def answered(self, session_id: str) -> set:
        """Trial indices of the session that have a current rating."""
        return {r[0] for r in self._read("SELECT trial_index FROM ratings WHERE session_id = ? AND superseded = 0",
                                         (session_id,))}

    # ---- what a rater did before the trials (consent, headphone check)

    def record_check(self, session_id: str, kind: str, item: int, value) -> bool:
        """Commit a rater's answer to a pre-test step (:data:`CHECK_KINDS`); the first
        answer to an item is kept (returns False, storing nothing, for a repeat)."""
        if kind not in CHECK_KINDS:
            raise ResultsError(f"unknown rater check {kind!r}; valid: {', '.join(CHECK_KINDS)}")
        self.session(session_id)
        with self._write() as c:
            cur = c.execute("INSERT OR IGNORE INTO rater_checks VALUES (?, ?, ?, ?, ?)",
                            (session_id, kind, int(item), _dumps(value), _stamp(self._now())))
            return cur.rowcount == 1

    def checks(self, session_id: str) -> dict:
        """``{(kind, item): (value, timestamp_utc)}`` of a session's pre-test answers."""
        rows = self._read("SELECT kind, item, value_json, timestamp_utc FROM rater_checks WHERE session_id = ?",
                          (session_id,))
        return {(r[0], r[1]): (json.loads(r[2]), r[3]) for r in rows}

    def headphone_label(self, session_id: str) -> str:
        """``passed``, ``failed`` or ``incomplete``: the session's headphone check."""
        from studio.headphone_check import headphone_trials, score_answers

        answers = {item: value for (kind, item), (value, _) in self.checks(session_id).items() if kind == "headphones"}
        return score_answers(headphone_trials(self.session(session_id).seed), answers).label

    # ---- ratings

    def record_rating(self, session_id: str, trial_index: int, *, score: Optional[int] = None,
                      choice: Optional[str] = None, cmos: Optional[int] = None,
                      scores: Optional[Sequence[int]] = None, transcript: Optional[str] = None,
                      play_counts: Sequence[int], listened_to_end: Sequence[bool], response_time_s: float,
                      revise: bool = False) -> RatingRecord:
        """Validate and commit one rating (its own transaction; durable on return).

        MOS: ``score`` an integer 1..5.  A/B: ``choice`` "A", "B" or "none", and an
        optional ``cmos`` integer -3..3 (B relative to A) whose sign agrees with the
        choice (negative for A, positive for B, 0 for none).  ``play_counts`` and
        ``listened_to_end`` have one entry per clip in presentation order; every clip
        must have been played to the end.  SMOS, DCR: ``score`` 1..5.  ABX: ``choice``
        "A" or "B".  MUSHRA: ``scores``, an integer 0..100 for every clip after the
        reference (the hidden reference too).  Intelligibility: ``transcript``, the
        non-empty text the rater typed.  A trial already rated is refused unless
        ``revise`` (then the earlier rating is kept but superseded).
        """
        session = self.session(session_id)
        if not _is_int(trial_index) or not 0 <= trial_index < len(session.order):
            raise RatingError(f"trial index {trial_index!r} is outside 0..{len(session.order) - 1}")
        trial = session.order[trial_index]
        names = clip_names(trial.kind, len(trial.stimulus_ids))
        transcript = _check_values(trial.kind, len(names), score, choice, cmos, scores, transcript)
        if len(play_counts) != len(names) or len(listened_to_end) != len(names):
            raise RatingError(f"play_counts and listened_to_end need one entry per clip ({', '.join(names)})")
        for name, count, heard in zip(names, play_counts, listened_to_end):
            if not heard:
                raise RatingError(f"clip {name} was not played to the end; a rating needs every clip heard in full")
            if not _is_int(count) or count < 1:
                raise RatingError(f"play count of clip {name} must be an integer >= 1, got {count!r}")
        if not isinstance(response_time_s, (int, float)) or not math.isfinite(response_time_s) or response_time_s < 0:
            raise RatingError(f"response_time_s must be a finite number >= 0, got {response_time_s!r}")
        with self._write() as c:
            old = c.execute("SELECT rating_id FROM ratings WHERE session_id = ? AND trial_index = ? AND superseded = 0",
                            (session_id, trial_index)).fetchone()
            if old is not None and not revise:
                raise DuplicateRatingError(f"trial {trial_index} of session {session_id} is already rated; "
                                           "pass revise=True to replace the rating")
            if old is None and revise:
                raise RatingError(f"trial {trial_index} of session {session_id} has no rating to revise")
            if old is not None:
                c.execute("UPDATE ratings SET superseded = 1 WHERE rating_id = ?", (old[0],))
            cur = c.execute("INSERT INTO ratings (session_id, trial_index, score, choice, cmos, play_counts_json,"
                            " listened_json, response_time_s, timestamp_utc, scores_json, transcript)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (session_id, trial_index, score, choice, cmos, _dumps(list(play_counts)),
                             _dumps([bool(h) for h in listened_to_end]), float(response_time_s),
                             _stamp(self._now()), None if scores is None else _dumps(list(scores)), transcript))
            rating_id = cur.lastrowid
            done = {r[0] for r in c.execute("SELECT trial_index FROM ratings WHERE session_id = ? AND superseded = 0",
                                            (session_id,))}
            position = next((i for i in range(len(session.order)) if i not in done), len(session.order))
            c.execute("UPDATE sessions SET position = ? WHERE session_id = ?", (position, session_id))
        return next(r for r in self._ratings("r.rating_id = ?", (rating_id,)))

    def ratings(self, test_id: str, *, include_superseded: bool = False,
                include_practice: bool = False) -> list[RatingRecord]:
        """Ratings of a test in commit order, with conditions resolved; practice trials
        only when asked for (they never enter a count or a statistic)."""
        where = "s.test_id = ?" + ("" if include_superseded else " AND r.superseded = 0")
        return [r for r in self._ratings(where, (test_id,)) if include_practice or not r.practice]

    def _ratings(self, where: str, args: Sequence) -> list[RatingRecord]:
        rows = self._read("SELECT r.rating_id, s.test_id, t.type, r.session_id, s.rater_id, r.trial_index, r.score,"
                          " r.choice, r.cmos, r.play_counts_json, r.listened_json, r.response_time_s, r.timestamp_utc,"
                          " r.superseded, r.scores_json, r.transcript FROM ratings r JOIN sessions s ON s.session_id = r.session_id"
                          " JOIN tests t ON t.test_id = s.test_id WHERE " + where + " ORDER BY r.rating_id", args)
        labels: dict = {}
        out = []
        for (rating_id, test_id, test_type, session_id, rater_id, index, score, choice, cmos, plays, heard,
             response_time_s, stamp, superseded, scores, transcript) in rows:
            if test_id not in labels:
                labels[test_id] = {s.stimulus_id: s.condition for s in self.stimuli(test_id)}
            trial = self._order(session_id)[index]
            out.append(RatingRecord(rating_id, test_id, test_type, session_id, rater_id, index, trial.sentence_id,
                                    trial.text, trial.stimulus_ids, tuple(labels[test_id][s] for s in trial.stimulus_ids),
                                    trial.swapped, trial.gold, score, choice, cmos, tuple(json.loads(plays)),
                                    tuple(json.loads(heard)), response_time_s, stamp, bool(superseded),
                                    tuple(json.loads(scores)) if scores else (), transcript, trial.key,
                                    trial.practice))
        return out

    # ---- export

    def export_csv(self, test_id: str, dest: Union[str, Path, TextIO]) -> int:
        """Write the current ratings of a test as CSV (:data:`CSV_COLUMNS`; a MUSHRA
        trial gives one row per slider); returns the number of rows.  ``dest`` is a path (written atomically, with the column
        descriptions :data:`CSV_COLUMN_DOCS` beside it as ``<stem>.columns.json``) or an
        open text file."""
        self.test(test_id)
        conds = {c.label: c for c in self.conditions(test_id)}
        stimuli = {s.stimulus_id: s for s in self.stimuli(test_id)}
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        rows = self.ratings(test_id, include_practice=True)
        design = self.test(test_id).design
        reference = str(design.get("reference") or "")
        before: dict = {}  # session -> (consent_utc, headphone_check)
        n_rows = 0
        for r in rows:
            if r.session_id not in before:
                consent = self.checks(r.session_id).get(("consent", 0))
                before[r.session_id] = ((consent[1] if consent else "") if design.get("consent") else "",
                                        self.headphone_label(r.session_id) if design.get("headphone_check") else "")
            clips = [_clip_facts(conds[label], stimuli[sid]) for label, sid in zip(r.conditions, r.stimulus_ids)]
            for row in _csv_rows(r, clips, reference, before[r.session_id]):
                writer.writerow(row)
                n_rows += 1
        if isinstance(dest, (str, Path)):
            dest = Path(dest)
            _atomic_text(dest, buf.getvalue())
            _atomic_text(dest.with_name(f"{dest.stem}.columns.json"), columns_json())
        else:
            dest.write(buf.getvalue())
        return n_rows


def _check_values(kind: str, n_clips: int, score, choice, cmos, scores, transcript) -> Optional[str]:
    """Refuse an answer that does not fit a trial of ``kind``; returns the transcript to store."""
    given = {"score": score, "choice": choice, "cmos": cmos, "scores": scores, "transcript": transcript}
    takes = {"mos": ("score",), "smos": ("score",), "dcr": ("score",), "ab": ("choice", "cmos"), "abx": ("choice",),
             "mushra": ("scores",), "intelligibility": ("transcript",)}[kind]
    extra = [k for k, v in given.items() if v is not None and k not in takes]
    if extra:
        a = {"score": "a score", "choice": "a choice", "cmos": "a cmos", "scores": "scores", "transcript": "a transcript"}
        raise RatingError(f"a {kind} trial takes {' and '.join(a[k] for k in takes)}, not "
                          f"{' or '.join(a[k] for k in extra)}")
    if kind in SCORE_TYPES:
        if not _is_int(score) or not MOS_RANGE[0] <= score <= MOS_RANGE[1]:
            raise RatingError(f"{kind.upper()} score must be an integer 1..5, got {score!r}")
        return None
    if kind == "abx":
        if choice not in ABX_CHOICES:
            raise RatingError(f"say whether X is A or B, got {choice!r}; valid: {', '.join(ABX_CHOICES)}")
        return None
    if kind == "mushra":
        if not isinstance(scores, (list, tuple)) or len(scores) != n_clips - 1:
            raise RatingError(f"a MUSHRA trial needs one score per clip ({n_clips - 1}), got {scores!r}")
        unrated = [str(k) for k, v in enumerate(scores, 1) if v is None]
        if unrated:
            raise RatingError(f"please rate every clip, the hidden reference too (not yet rated: {', '.join(unrated)})")
        for v in scores:
            if not _is_int(v) or not MUSHRA_RANGE[0] <= v <= MUSHRA_RANGE[1]:
                raise RatingError(f"MUSHRA scores must be integers 0..100, got {v!r}")
        return None
    if kind == "intelligibility":
        text = transcript.strip() if isinstance(transcript, str) else ""
        if not text:
            raise RatingError("please type what you heard")
        if len(text) > MAX_TRANSCRIPT:
            raise RatingError(f"the transcript is too long ({len(text)} characters; at most {MAX_TRANSCRIPT})")
        return text
    if score is not None:
        raise RatingError("an A/B trial takes a choice (and optional cmos), not a score")
    if choice not in AB_CHOICES:
        raise RatingError(f"unknown choice {choice!r}; valid: {', '.join(AB_CHOICES)}")
    if cmos is not None:
        if not _is_int(cmos) or not CMOS_RANGE[0] <= cmos <= CMOS_RANGE[1]:
            raise RatingError(f"cmos must be an integer -3..3, got {cmos!r}")
        expected = {"A": cmos < 0, "B": cmos > 0, "none": cmos == 0}[choice]
        if not expected:
            raise RatingError(f"cmos {cmos} contradicts choice {choice!r} (A: negative, B: positive, none: 0)")
    return None


def _opt(x) -> str:
    return "" if x is None else str(x)


def columns_json() -> str:
    """The CSV's sidecar: every column with what it holds, and the CMOS sign."""
    return json.dumps({"columns": CSV_COLUMN_DOCS, "one_row_per": "current (non-superseded) rating",
                       "cmos_sign": "B relative to A as presented: negative = A better, positive = B better"},
                      indent=1) + "\n"


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_text(text, encoding="utf-8", newline="")
    os.replace(tmp, path)


@dataclass(frozen=True)
class _ClipFacts:
    label: str
    checkpoint_sha256: str
    seed: str
    vocoder: str
    settings_json: str
    app_version: str


_SAMPLER_KEYS = ("steps", "solver", "schedule", "sway", "duration_scale", "cfg", "temperature", "speaker")


def _clip_facts(cond: ConditionRecord, stim: StimulusRecord) -> _ClipFacts:
    """What the CSV says about one clip: its condition's settings with the options and
    the vocoder it was really rendered with (from the stimulus's provenance)."""
    prov = stim.provenance
    rendered = prov.get("render") if isinstance(prov.get("render"), dict) else {}
    vocoder = str(rendered.get("vocoder") or prov.get("vocoder") or cond.vocoder or "")
    settings = dict(cond.settings)
    settings.update({k: rendered[k] for k in _SAMPLER_KEYS if k in rendered})
    if vocoder:
        if settings.get("vocoder") not in (None, vocoder):
            settings["vocoder_requested"] = settings["vocoder"]
        settings["vocoder"] = vocoder
    version = str(prov.get("app_version") or cond.app_version)
    return _ClipFacts(cond.label, cond.checkpoint_sha256, _opt(cond.seed), vocoder, _dumps(settings), version)


def clip_role(condition: str, reference: str) -> str:
    """MUSHRA: what a rated clip is: hidden_reference, anchor or condition."""
    if condition == reference:
        return "hidden_reference"
    return "anchor" if condition.startswith("anchor:") else "condition"


def rated_scores(r: RatingRecord) -> list:
    """``(condition, score)`` for every clip a rating scores: the clip of MOS, the rated
    (second) clip of SMOS and DCR, every slider of MUSHRA; empty for the other types."""
    if r.test_type in SCORE_TYPES and r.score is not None:
        return [(r.conditions[-1], r.score)]
    if r.test_type == "mushra":
        return list(zip(r.conditions[1:], r.scores))
    return []


def _csv_rows(r: RatingRecord, clips: list, reference: str, before: tuple = ("", "")) -> list:
    """The CSV rows (:data:`CSV_COLUMNS`) of a rating and the facts of its clips: one,
    or one per slider of a MUSHRA trial.  ``before``: the session's consent time and
    headphone check label."""
    row = dict.fromkeys(CSV_COLUMNS, "")
    row["consent_utc"], row["headphone_check"] = before
    trial_type = "practice" if r.practice else "gold" if r.gold else r.test_type
    row.update(test_id=r.test_id, test_type=r.test_type, trial_type=trial_type,
               gold_expected=r.gold or "", rater_id=r.rater_id, session_id=r.session_id, trial_index=r.trial_index,
               sentence_id=r.sentence_id, text=r.text, listened_to_end="true" if all(r.listened_to_end) else "false",
               response_time_s=f"{r.response_time_s:.3f}", timestamp_utc=r.timestamp_utc,
               completion_code=completion_code(r.session_id))

    def clip(suffix: str, k: int) -> dict:
        c = clips[k]
        return {f"stimulus_id{suffix}": r.stimulus_ids[k], f"play_count{suffix}": r.play_counts[k],
                f"checkpoint_sha256{suffix}": c.checkpoint_sha256, f"seed{suffix}": c.seed,
                f"vocoder{suffix}": c.vocoder, f"settings_json{suffix}": c.settings_json,
                f"app_version{suffix}": c.app_version}

    kind = r.test_type
    if kind in ("mos", "intelligibility"):
        row.update(clip("", 0), condition=clips[0].label)
        if kind == "mos":
            row["score"] = r.score
        else:
            from core.eval import wer

            row.update(transcript=r.transcript or "", wer=f"{wer(r.text, r.transcript or '').wer:.4f}")
        return [[row[c] for c in CSV_COLUMNS]]
    if kind in ("smos", "dcr"):
        row.update(clip("", 1), condition=clips[1].label, score=r.score, reference_condition=clips[0].label,
                   stimulus_id_ref=r.stimulus_ids[0], play_count_ref=r.play_counts[0])
        return [[row[c] for c in CSV_COLUMNS]]
    if kind == "mushra":
        row.update(reference_condition=clips[0].label, stimulus_id_ref=r.stimulus_ids[0],
                   play_count_ref=r.play_counts[0])
        out = []
        for k, score in enumerate(r.scores, 1):
            one = dict(row, **clip("", k))
            one.update(condition=clips[k].label, score=score, clip_role=clip_role(clips[k].label, reference),
                       clip_position=k)
            out.append([one[c] for c in CSV_COLUMNS])
        return out
    row.update(clip("_a", 0), **clip("_b", 1), condition_a=clips[0].label, condition_b=clips[1].label,
               presented_order="BA" if r.swapped else "AB", choice=r.choice)
    if kind == "abx":
        row.update(condition_x=clips[2].label, stimulus_id_x=r.stimulus_ids[2], play_count_x=r.play_counts[2],
                   x_is=r.key or "", correct="true" if r.choice == r.key else "false",
                   chosen_condition={"A": clips[0].label, "B": clips[1].label}.get(r.choice, ""))
    else:
        row.update(cmos=_opt(r.cmos), chosen_condition={"A": clips[0].label, "B": clips[1].label}.get(r.choice, ""))
    return [[row[c] for c in CSV_COLUMNS]]
