"""The results store: WAL durability, validation, duplicates, resume, concurrency
(threads and processes) and a SIGKILL in the middle of a rating run."""

from __future__ import annotations

import csv
import json
import io
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import studio.results as results
from studio.results import (CSV_COLUMNS, DuplicateRatingError, RatingError, ResultsError, ResultsStore, Trial)

REPO = Path(__file__).resolve().parents[2]


def make_test(folder, test_type="mos", n_stimuli=10, labels=("alpha", "beta")):
    """A store with one test, conditions ``labels`` and ``n_stimuli`` stimuli per condition."""
    store = ResultsStore(folder)
    tid = store.create_test(test_type, "a test", {"k": 1}, test_id="t1")
    stims = {}
    for i, label in enumerate(labels):
        cid = store.add_condition(tid, label, "checkpoint", checkpoint_sha256=f"{i}" * 64, settings={"steps": 4 + i},
                                  seed=7 + i, vocoder="griffinlim", app_version="0.1.0")
        stims[label] = [store.add_stimulus(tid, cid, f"s{j}", f"text {j}", Path(folder) / f"{label}{j}.wav",
                                           loudness_lufs=-23.0) for j in range(n_stimuli)]
    return store, tid, stims


def mos_order(stims, n):
    ids = [s for ss in stims.values() for s in ss]
    return lambda seed, index=0: [Trial("mos", f"s{i}", f"text {i}", (ids[i % len(ids)],)) for i in range(n)]


def rate(store, session_id, i, score=3):
    return store.record_rating(session_id, i, score=score, play_counts=[1], listened_to_end=[True],
                               response_time_s=1.0)


def test_wal_mode_full_sync_and_visible_from_second_connection(tmp_path):
    store, tid, stims = make_test(tmp_path)
    session = store.start_or_resume_session(tid, "r1", make_order=mos_order(stims, 5), seed=3)
    other = sqlite3.connect(tmp_path / "results.sqlite")
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._conn().execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    for i in range(5):
        rate(store, session.session_id, i, score=1 + i)
        assert other.execute("SELECT count(*), max(score) FROM ratings").fetchone() == (i + 1, i + 1)
    other.close()


def test_record_rating_validation(tmp_path):
    store, tid, stims = make_test(tmp_path)
    sid = store.start_or_resume_session(tid, "r1", make_order=mos_order(stims, 3)).session_id
    ok = dict(play_counts=[1], listened_to_end=[True], response_time_s=1.0)
    for bad in (0, 6, 3.0, True, None):
        with pytest.raises(RatingError, match="integer 1..5"):
            store.record_rating(sid, 0, score=bad, **ok)
    with pytest.raises(RatingError, match="not a choice"):
        store.record_rating(sid, 0, score=3, choice="A", **ok)
    with pytest.raises(RatingError, match="clip clip was not played to the end"):
        store.record_rating(sid, 0, score=3, play_counts=[1], listened_to_end=[False], response_time_s=1.0)
    with pytest.raises(RatingError, match="play count"):
        store.record_rating(sid, 0, score=3, play_counts=[0], listened_to_end=[True], response_time_s=1.0)
    with pytest.raises(RatingError, match="one entry per clip"):
        store.record_rating(sid, 0, score=3, play_counts=[1, 1], listened_to_end=[True, True], response_time_s=1.0)
    with pytest.raises(RatingError, match="outside"):
        store.record_rating(sid, 3, score=3, **ok)
    with pytest.raises(RatingError, match="response_time_s"):
        store.record_rating(sid, 0, score=3, play_counts=[1], listened_to_end=[True], response_time_s=float("nan"))
    assert store.ratings(tid) == []


def test_ab_validation(tmp_path):
    store, tid, stims = make_test(tmp_path, "ab")
    order = lambda seed, index: [Trial("ab", "s0", "text 0", (stims["alpha"][0], stims["beta"][0]))]
    sid = store.start_or_resume_session(tid, "r1", make_order=order).session_id
    ok = dict(play_counts=[1, 2], listened_to_end=[True, True], response_time_s=2.0)
    with pytest.raises(RatingError, match="unknown choice 'C'; valid: A, B, none"):
        store.record_rating(sid, 0, choice="C", **ok)
    with pytest.raises(RatingError, match="integer -3..3"):
        store.record_rating(sid, 0, choice="B", cmos=4, **ok)
    with pytest.raises(RatingError, match="contradicts"):
        store.record_rating(sid, 0, choice="A", cmos=2, **ok)
    with pytest.raises(RatingError, match="clip B was not played to the end"):
        store.record_rating(sid, 0, choice="A", play_counts=[1, 1], listened_to_end=[True, False], response_time_s=1.0)
    with pytest.raises(RatingError, match="not a score"):
        store.record_rating(sid, 0, score=3, choice="A", **ok)
    r = store.record_rating(sid, 0, choice="B", cmos=2, **ok)
    assert (r.choice, r.cmos, r.conditions, r.play_counts) == ("B", 2, ("alpha", "beta"), (1, 2))


def test_duplicates_refused_unless_revised(tmp_path):
    store, tid, stims = make_test(tmp_path)
    sid = store.start_or_resume_session(tid, "r1", make_order=mos_order(stims, 3)).session_id
    with pytest.raises(RatingError, match="no rating to revise"):
        store.record_rating(sid, 0, score=2, play_counts=[1], listened_to_end=[True], response_time_s=1.0,
                            revise=True)
    rate(store, sid, 0, score=2)
    with pytest.raises(DuplicateRatingError, match="revise=True"):
        rate(store, sid, 0, score=4)
    store.record_rating(sid, 0, score=5, play_counts=[2], listened_to_end=[True], response_time_s=3.0, revise=True)
    assert [r.score for r in store.ratings(tid)] == [5]
    assert [(r.score, r.superseded) for r in store.ratings(tid, include_superseded=True)] == [(2, True), (5, False)]
    buf = io.StringIO()
    assert store.export_csv(tid, buf) == 1
    assert list(csv.DictReader(io.StringIO(buf.getvalue())))[0]["score"] == "5"


def test_session_resume_keeps_order_and_position(tmp_path):
    store, tid, stims = make_test(tmp_path)
    calls = []

    def order(seed, index):
        calls.append(seed)
        return mos_order(stims, 6)(seed, index)

    s1 = store.start_or_resume_session(tid, "r1", make_order=order)
    rate(store, s1.session_id, 0)
    rate(store, s1.session_id, 1)
    s2 = store.start_or_resume_session(tid, "r1", make_order=order)
    assert (s2.session_id, s2.order, s2.seed, s2.position) == (s1.session_id, s1.order, s1.seed, 2)
    assert calls == [s1.seed]  # the order is built once
    assert store.start_or_resume_session(tid, "r2", make_order=order).session_id != s1.session_id
    with pytest.raises(ResultsError, match="needs make_order"):
        store.start_or_resume_session(tid, "r3")
    with pytest.raises(ResultsError, match="does not have"):
        store.start_or_resume_session(tid, "r4", make_order=lambda s, i: [Trial("mos", "x", "x", ("nope",))])


def test_create_test_and_conditions_are_idempotent_but_guarded(tmp_path):
    store, tid, _ = make_test(tmp_path)
    assert store.create_test("mos", "a test", {"k": 1}, test_id="t1") == "t1"
    with pytest.raises(ResultsError, match="different type or design"):
        store.create_test("mos", "a test", {"k": 2}, test_id="t1")
    with pytest.raises(ResultsError, match="unknown test type 'mushra2'; valid: mos, ab, mushra, abx, smos, dcr, "
                                           "intelligibility"):
        store.create_test("mushra2")
    first = store.conditions(tid)[0]
    again = store.add_condition(tid, "alpha", "checkpoint", checkpoint_sha256="0" * 64, settings={"steps": 4},
                                seed=7, vocoder="griffinlim")
    assert again == first.condition_id
    with pytest.raises(ResultsError, match="different settings"):
        store.add_condition(tid, "alpha", "checkpoint", checkpoint_sha256="0" * 64, settings={"steps": 8}, seed=7,
                            vocoder="griffinlim")
    with pytest.raises(ResultsError, match="unknown condition kind 'model'; valid: checkpoint, folder, anchor"):
        store.add_condition(tid, "gamma", "model")


def test_schema_version_and_migration_stub(tmp_path, monkeypatch):
    ResultsStore(tmp_path).close()
    db = sqlite3.connect(tmp_path / "results.sqlite")
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(results.SCHEMA_VERSION,)]
    migrated = []
    monkeypatch.setattr(results, "SCHEMA_VERSION", 4)
    monkeypatch.setitem(results.MIGRATIONS, 3, lambda c: migrated.append(c.execute("SELECT 1").fetchone()))
    ResultsStore(tmp_path).close()
    assert migrated == [(1,)]
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(4,)]
    monkeypatch.setattr(results, "SCHEMA_VERSION", 3)
    with pytest.raises(ResultsError, match="newer than this code"):
        ResultsStore(tmp_path)
    db.close()


def test_a_version_1_database_migrates_and_keeps_its_ratings(tmp_path):
    # schema 1 (before tests could be archived), written by hand as that version created it
    db = sqlite3.connect(tmp_path / "results.sqlite")
    db.executescript("""
        CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1);
        CREATE TABLE tests (test_id TEXT PRIMARY KEY, type TEXT NOT NULL CHECK (type IN ('mos', 'ab')),
            name TEXT NOT NULL, created TEXT NOT NULL, design_json TEXT NOT NULL);
        INSERT INTO tests VALUES ('old1', 'mos', 'old test', '2024-01-01T00:00:00.000Z', '{}');""")
    db.commit()
    db.close()
    store = ResultsStore(tmp_path)
    (test,) = store.tests()
    assert (test.test_id, test.name, test.archived) == ("old1", "old test", False)
    store.archive_test("old1")
    assert store.test("old1").archived and store.tests(include_archived=False) == []


def test_archive_and_revision(tmp_path):
    store, tid, stims = make_test(tmp_path)
    before = store.revision()
    store.archive_test(tid)
    archived = store.revision()
    assert archived != before and store.test(tid).archived
    sid = store.start_or_resume_session(tid, "r1", make_order=mos_order(stims, 2)).session_id
    rate(store, sid, 0)
    assert store.revision() != archived  # a rating changes it too
    store.archive_test(tid, archived=False)
    assert not store.test(tid).archived
    with pytest.raises(results.UnknownTestError, match="no test 'nope'"):
        store.archive_test("nope")


def test_csv_header_and_values(tmp_path):
    from datetime import datetime, timezone

    store, tid, stims = make_test(tmp_path)
    store._now = lambda: datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)
    sid = store.start_or_resume_session(tid, "r1", make_order=lambda s, i: [
        Trial("mos", "s1", "text 1", (stims["beta"][1],))], seed=5).session_id
    store.record_rating(sid, 0, score=4, play_counts=[2], listened_to_end=[True], response_time_s=3.25)
    out = tmp_path / "out.csv"
    assert store.export_csv(tid, out) == 1
    rows = list(csv.reader(out.open()))
    assert tuple(rows[0]) == CSV_COLUMNS
    got = dict(zip(CSV_COLUMNS, rows[1]))
    expected = {"test_id": "t1", "test_type": "mos", "trial_type": "mos", "rater_id": "r1", "session_id": sid,
                "trial_index": "0", "sentence_id": "s1", "text": "text 1", "condition": "beta", "score": "4",
                "stimulus_id": stims["beta"][1], "play_count": "2", "listened_to_end": "true",
                "response_time_s": "3.250", "timestamp_utc": "2024-05-06T07:08:09.123Z",
                "checkpoint_sha256": "1" * 64, "seed": "8", "vocoder": "griffinlim",
                "settings_json": '{"steps":5,"vocoder":"griffinlim"}', "app_version": "0.1.0",
                "completion_code": results.completion_code(sid)}
    assert got == {**dict.fromkeys(CSV_COLUMNS, ""), **expected}
    sidecar = json.loads((tmp_path / "out.columns.json").read_text())
    assert set(sidecar["columns"]) == set(CSV_COLUMNS) and "B relative to A" in sidecar["cmos_sign"]


# --------------------------------------------------------------------------- concurrency


def test_twenty_threads_fifty_ratings_each(tmp_path):
    store, tid, stims = make_test(tmp_path, n_stimuli=25)
    sessions = [store.start_or_resume_session(tid, f"rater{k}", make_order=mos_order(stims, 50)).session_id
                for k in range(20)]
    errors = []
    barrier = threading.Barrier(20)

    def worker(k):
        try:
            barrier.wait()
            for i in range(50):
                rate(store, sessions[k], i, score=1 + (i + k) % 5)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    got = store.ratings(tid)
    assert len(got) == 1000
    assert {(r.rater_id, r.trial_index, r.score) for r in got} == {
        (f"rater{k}", i, 1 + (i + k) % 5) for k in range(20) for i in range(50)}
    assert all(s.position == 50 for s in store.sessions(tid))


def _process_worker(folder, session_id, n):
    store = ResultsStore(folder)
    for i in range(n):
        rate(store, session_id, i, score=1 + i % 5)
    store.close()


def test_four_processes_write_concurrently(tmp_path):
    store, tid, stims = make_test(tmp_path)
    sessions = [store.start_or_resume_session(tid, f"p{k}", make_order=mos_order(stims, 50)).session_id
                for k in range(4)]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process_worker, args=(str(tmp_path), s, 50)) for s in sessions]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    got = store.ratings(tid)
    assert sorted((r.session_id, r.trial_index) for r in got) == sorted((s, i) for s in sessions for i in range(50))


CHILD = """
import sys
from studio.results import ResultsStore
store = ResultsStore(sys.argv[1])
for i in range(int(sys.argv[3])):
    store.record_rating(sys.argv[2], i, score=1 + i % 5, play_counts=[1], listened_to_end=[True],
                        response_time_s=0.5)
    print("ack", i, flush=True)
"""


def test_sigkill_loses_no_acknowledged_rating(tmp_path):
    store, tid, stims = make_test(tmp_path)
    total = 3000
    sid = store.start_or_resume_session(tid, "r1", make_order=mos_order(stims, total)).session_id
    env = dict(os.environ, PYTHONPATH=str(REPO))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), sid, str(total)], stdout=subprocess.PIPE,
                             text=True, env=env)
    acked = []
    for line in child.stdout:
        acked.append(int(line.split()[1]))
        if len(acked) == 40:
            os.kill(child.pid, signal.SIGKILL)
            break
    acked += [int(line.split()[1]) for line in child.stdout]  # lines already in the pipe
    assert child.wait(timeout=30) == -signal.SIGKILL
    assert 40 <= len(acked) < total  # killed mid-way
    fresh = sqlite3.connect(tmp_path / "results.sqlite")
    stored = {i for (i,) in fresh.execute("SELECT trial_index FROM ratings WHERE session_id = ?", (sid,))}
    fresh.close()
    assert set(acked) <= stored
    assert ResultsStore(tmp_path).session(sid).position == len(stored)  # position moved in the same transaction
