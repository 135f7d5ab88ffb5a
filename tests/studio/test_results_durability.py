"""Ratings under faults (issue 21): 20 rater processes at once with one SIGKILLed,
two stores ("servers") on one folder, a read-only database file, the results folder
removed while serving, ratings for trials not assigned or given twice.

The figures (acknowledged vs stored, wall time) are printed; run with ``-s`` to see them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from studio.results import DuplicateRatingError, RatingError, ResultsError, ResultsStore, Trial

REPO = Path(__file__).resolve().parents[2]

# a rater process: its own ResultsStore (its own connection, as a separate server would
# have), one rating at a time, "ack i" printed only after record_rating returned
RATER = """
import sys
from studio.results import ResultsStore
store = ResultsStore(sys.argv[1])
for i in range(int(sys.argv[3])):
    store.record_rating(sys.argv[2], i, score=1 + i % 5, play_counts=[1], listened_to_end=[True],
                        response_time_s=0.5)
    print("ack", i, flush=True)
"""


def _store_with_sessions(folder, n_raters: int, n_trials: int):
    store = ResultsStore(folder)
    tid = store.create_test("mos", "durability", {}, test_id="t1")
    cid = store.add_condition(tid, "a", "checkpoint", checkpoint_sha256="0" * 64, settings={}, seed=0,
                              vocoder="griffinlim", app_version="0")
    stims = [store.add_stimulus(tid, cid, f"s{j}", f"text {j}", Path(folder) / f"{j}.wav", loudness_lufs=-23.0)
             for j in range(10)]
    order = lambda seed, index: [Trial("mos", f"s{i % 10}", f"text {i % 10}", (stims[i % 10],))  # noqa: E731
                          for i in range(n_trials)]
    sessions = [store.start_or_resume_session(tid, f"rater{k}", make_order=order).session_id
                for k in range(n_raters)]
    return store, tid, sessions


def _rate(store, session_id, i):
    return store.record_rating(session_id, i, score=3, play_counts=[1], listened_to_end=[True],
                               response_time_s=1.0)


@pytest.mark.slow
def test_twenty_rater_processes_one_killed_acknowledged_equals_stored(tmp_path):
    n_raters, n_trials, victim, kill_after = 20, 50, 7, 10
    store, tid, sessions = _store_with_sessions(tmp_path, n_raters, n_trials)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", RATER, str(tmp_path), sid, str(n_trials)],
                              stdout=subprocess.PIPE, text=True, env=env) for sid in sessions]
    acked: dict[str, set] = {sid: set() for sid in sessions}
    for line in procs[victim].stdout:  # the victim is SIGKILLed in the middle of its run
        acked[sessions[victim]].add(int(line.split()[1]))
        if len(acked[sessions[victim]]) == kill_after:
            os.kill(procs[victim].pid, signal.SIGKILL)
            break
    for sid, proc in zip(sessions, procs):
        acked[sid] |= {int(line.split()[1]) for line in proc.stdout}
        proc.wait(timeout=300)
    wall = time.perf_counter() - t0
    assert procs[victim].returncode == -signal.SIGKILL
    assert [p.returncode for k, p in enumerate(procs) if k != victim] == [0] * (n_raters - 1)
    fresh = ResultsStore(tmp_path)
    stored = {sid: set() for sid in sessions}
    for r in fresh.ratings(tid):
        stored[r.session_id].add(r.trial_index)
    n_acked, n_stored = sum(map(len, acked.values())), sum(map(len, stored.values()))
    print(f"\n20 raters x 50 ratings, rater {victim} SIGKILLed after {kill_after} acks: acknowledged {n_acked}, "
          f"stored {n_stored}, {wall:.1f} s wall ({n_stored / wall:.0f} ratings/s)")
    for sid in sessions:
        # every acknowledged rating is stored; the victim may have committed one more than it
        # printed (killed between the commit and the print), never fewer
        assert acked[sid] <= stored[sid]
        assert len(stored[sid] - acked[sid]) <= (1 if sid == sessions[victim] else 0)
        assert fresh.session(sid).position == len(stored[sid])
    assert n_acked >= (n_raters - 1) * n_trials + kill_after


def test_two_stores_on_one_folder_see_each_other(tmp_path):
    a, tid, (sid,) = _store_with_sessions(tmp_path, 1, 6)
    b = ResultsStore(tmp_path)  # a second server on the same results folder
    _rate(a, sid, 0)
    _rate(b, sid, 1)
    with pytest.raises(DuplicateRatingError):
        _rate(b, sid, 0)  # rated through the other server already
    with pytest.raises(DuplicateRatingError):
        _rate(a, sid, 1)
    assert [r.trial_index for r in a.ratings(tid)] == [r.trial_index for r in b.ratings(tid)] == [0, 1]
    assert a.session(sid).position == b.session(sid).position == 2
    assert b.start_or_resume_session(tid, "rater0", make_order=lambda seed, index: []).session_id == sid


def test_unassigned_trial_and_unknown_session_refused(tmp_path):
    store, tid, (s0, s1) = _store_with_sessions(tmp_path, 2, 3)
    for bad in (3, -1, 10 ** 9, "0", 1.0, None):
        with pytest.raises(RatingError, match="outside 0..2"):
            _rate(store, s0, bad)
    with pytest.raises(ResultsError, match="no session"):
        _rate(store, "not-a-session", 0)
    _rate(store, s0, 2)
    with pytest.raises(DuplicateRatingError, match="already rated"):
        _rate(store, s0, 2)
    assert [(r.session_id, r.trial_index) for r in store.ratings(tid)] == [(s0, 2)]


@contextmanager
def _read_only(path: Path):
    """Make ``path`` unwritable even for root (chmod is ignored there: chattr +i instead)."""
    os.chmod(path, 0o444)
    immutable = False
    try:
        try:
            with open(path, "ab"):
                writable = True
        except PermissionError:
            writable = False
        if writable:
            if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode != 0:
                pytest.skip("cannot make a file read-only for this user")
            immutable = True
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)])
        os.chmod(path, 0o644)


def test_read_only_database_is_a_clear_error_and_loses_nothing(tmp_path):
    store, tid, (sid,) = _store_with_sessions(tmp_path, 1, 5)
    for i in range(3):
        _rate(store, sid, i)
    store.close()
    with _read_only(tmp_path / "results.sqlite"):
        with pytest.raises(ResultsError) as e:
            _rate(ResultsStore(tmp_path), sid, 3)
        assert str(tmp_path / "results.sqlite") in str(e.value) and "\n" not in str(e.value)
        assert "writable" in str(e.value) or "WAL" in str(e.value)
    again = ResultsStore(tmp_path)
    assert [r.trial_index for r in again.ratings(tid)] == [0, 1, 2]  # nothing lost
    _rate(again, sid, 3)  # and writable again once the file is


def test_results_folder_removed_while_serving(tmp_path):
    folder = tmp_path / "results"
    store, tid, (sid,) = _store_with_sessions(folder, 1, 5)
    _rate(store, sid, 0)
    shutil.rmtree(folder)
    with pytest.raises(ResultsError, match="is gone .*restore it and restart"):
        _rate(store, sid, 1)  # without the check, SQLite would commit into the unlinked file: lost


def test_results_folder_replaced_while_serving(tmp_path):
    folder = tmp_path / "results"
    store, tid, (sid,) = _store_with_sessions(folder, 1, 5)
    _rate(store, sid, 0)
    folder.rename(tmp_path / "moved")
    _store_with_sessions(folder, 1, 5)  # someone starts a fresh results folder under the old name
    with pytest.raises(ResultsError, match="was replaced"):
        _rate(store, sid, 1)
    moved = ResultsStore(tmp_path / "moved")
    assert [r.trial_index for r in moved.ratings(tid)] == [0]
