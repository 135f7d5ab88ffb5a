"""Listening-test engine: designs, rendering (loudness, opaque names, cache, provenance),
randomised orders, the rater's state machine, resume, gold trials and exact CSV rows."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

import core
from core.config import ConfigError
from studio.listening import (Condition, GoldTrial, ListeningError, Sentence, TestDesign, build_trials,
                              degrade_for_anchor, render_stimuli)
from studio.rater_session import RaterSession
from studio.results import (CSV_COLUMNS, DuplicateRatingError, RatingError, ResultsError, ResultsStore,
                            completion_code)
from studio.stats import ab_table, gold_table, mos_table

LABELS = ("alpha", "beta", "gamma")  # letters outside 0-9a-f: cannot appear inside a hex id by chance
STAMP = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
SENTENCES = (Sentence("s1", "The cat sat."), Sentence("s2", "A dog ran far."), Sentence("s3", "Red sun."))


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class FakeRender:
    """Tones whose pitch names the condition and whose level differs a lot between conditions."""

    def __init__(self):
        self.calls = []

    def __call__(self, condition, text, seed):
        self.calls.append((condition.label, text, seed))
        sr = 16000
        t = np.arange(int(0.8 * sr)) / sr
        f0 = {"alpha": 220.0, "beta": 330.0}[condition.label]
        level = {"alpha": 0.02, "beta": 0.6}[condition.label]
        audio = level * np.sin(2 * np.pi * f0 * t) * np.hanning(t.size)
        extra = {"nfe": np.int64(4), "timings": {"total": np.float32(0.5)}, "where": Path("x"), "bad": float("nan")}
        return audio.astype(np.float32), sr, {"made_by": condition.label, "vocoder": "griffinlim", "extra": extra}


def checkpoints(tmp_path):
    paths = {}
    for label in ("alpha", "beta"):
        paths[label] = tmp_path / f"{label}.pt"
        paths[label].write_bytes(f"{label} weights".encode())
    return paths


def wav_folder(tmp_path, sentences=SENTENCES):
    folder = tmp_path / "recordings"
    folder.mkdir()
    t = np.arange(int(0.7 * 22050)) / 22050
    for s in sentences:
        sf.write(folder / f"{s.id}.wav", 0.1 * np.sin(2 * np.pi * 500 * t), 22050)
    return folder


def design(tmp_path, test_type="mos", *, folder=False, sentences=SENTENCES[:2], gold=(), test_id="t1"):
    ck = checkpoints(tmp_path)
    conds = [Condition("alpha", checkpoint=str(ck["alpha"]), settings={"steps": 4, "cfg": 0.0}, seed=1),
             Condition("beta", checkpoint=str(ck["beta"]), settings={"steps": 32, "solver": "heun"}, seed=2)]
    if folder:
        conds.append(Condition("gamma", folder=str(wav_folder(tmp_path))))
    return TestDesign(test_id, test_type, tuple(conds), tuple(sentences), tuple(gold))


def rendered(tmp_path, *args, **kwargs):
    d = design(tmp_path, *args, **kwargs)
    store = ResultsStore(tmp_path / "results", now=lambda: STAMP)
    render = FakeRender()
    stimuli = render_stimuli(d, store, tmp_path / "results", render)
    return d, store, stimuli, render


def made_by(stimulus):
    p = stimulus.provenance
    return p["render"]["made_by"] if "render" in p else ("gamma" if p["condition_kind"] == "folder" else "anchor")


def play_all(session, clock, counts=None):
    for clip in session.current.clips:
        for _ in range((counts or {}).get(clip.name, 1)):
            session.play_started(clip)
            clock.t += 1.0
            session.mark_played(clip, to_end=True)


# --------------------------------------------------------------------------- designs


def test_design_validation():
    c = Condition("alpha", checkpoint="a.pt")
    with pytest.raises(ConfigError, match="unknown condition 'x' setting 'stepz'; valid: steps, solver"):
        Condition("x", checkpoint="a.pt", settings={"stepz": 4})
    with pytest.raises(ListeningError, match="plain JSON values"):
        Condition("x", checkpoint="a.pt", settings={"cfg": float("nan")})
    with pytest.raises(ListeningError, match="exactly one of checkpoint or folder"):
        Condition("x", checkpoint="a.pt", folder="f")
    with pytest.raises(ListeningError, match="reserved"):
        Condition("anchor:x", folder="f")
    with pytest.raises(ListeningError, match="at least 2 condition"):
        TestDesign("t", "ab", (c,), SENTENCES)
    with pytest.raises(ListeningError, match="unique"):
        TestDesign("t", "mos", (c, c), SENTENCES)
    with pytest.raises(ConfigError, match="unknown test type 'mushra2'; valid: mos, ab, mushra, abx, smos, dcr, "
                                          "intelligibility"):
        TestDesign("t", "mushra2", (c,), SENTENCES)
    with pytest.raises(ConfigError, match="gold trial kind for a mos test 'identical'; valid: anchor"):
        TestDesign("t", "mos", (c,), SENTENCES, (GoldTrial("identical", "alpha", "s1"),))
    with pytest.raises(ListeningError, match="sentence id"):
        Sentence("../x", "hi")
    d = TestDesign("t", "mos", (c,), SENTENCES, (GoldTrial("anchor", "alpha", "s1"),), name="pilot")
    assert TestDesign.from_dict(json.loads(json.dumps(d.to_dict()))) == d
    with pytest.raises(ConfigError, match="unknown test design key 'tpye'"):
        TestDesign.from_dict({**d.to_dict(), "tpye": "mos"})


# --------------------------------------------------------------------------- rendering


def test_render_normalises_hides_names_records_provenance_and_caches(tmp_path):
    d, store, stimuli, render = rendered(tmp_path, folder=True)
    assert len(stimuli) == 6 and len(render.calls) == 4
    assert sorted(render.calls) == [("alpha", "A dog ran far.", 1), ("alpha", "The cat sat.", 1),
                                    ("beta", "A dog ran far.", 2), ("beta", "The cat sat.", 2)]
    files = sorted((tmp_path / "results" / "stimuli").iterdir())
    assert len(files) == 6 and all(re.fullmatch(r"[0-9a-f]{16}\.wav", f.name) for f in files)
    sha = {label: hashlib.sha256(f"{label} weights".encode()).hexdigest() for label in ("alpha", "beta")}
    for s in stimuli:
        assert Path(s.path).name == f"{s.stimulus_id}.wav" and Path(s.path).parent == files[0].parent
        audio, sr = sf.read(s.path)
        assert pyloudnorm.Meter(sr).integrated_loudness(audio) == pytest.approx(-23.0, abs=0.1)
        assert s.loudness_lufs == pytest.approx(-23.0, abs=0.1)
        assert s.condition == made_by(s) and s.provenance["app_version"] == core.__version__
        if s.condition != "gamma":
            assert s.provenance["checkpoint_sha256"] == sha[s.condition]
            assert s.provenance["seed"] == {"alpha": 1, "beta": 2}[s.condition]
            assert s.provenance["vocoder"] == "griffinlim"
            assert s.provenance["render"]["extra"] == {"nfe": 4, "timings": {"total": 0.5}, "where": "x", "bad": None}
            assert (s.provenance["loudness"]["gain_db"] > 0) == (s.condition == "alpha")  # alpha is quiet
    conds = {c.label: c for c in store.conditions("t1")}
    assert (conds["alpha"].checkpoint_sha256, conds["alpha"].seed, conds["gamma"].kind) == (sha["alpha"], 1, "folder")
    # cached: nothing rendered again, same ids; a deleted file is rendered again under its old id
    again = render_stimuli(d, store, tmp_path / "results", render)
    assert len(render.calls) == 4 and [s.stimulus_id for s in again] == [s.stimulus_id for s in stimuli]
    Path(stimuli[0].path).unlink()
    render_stimuli(d, store, tmp_path / "results", render)
    assert len(render.calls) == 5 and Path(stimuli[0].path).is_file()
    # a changed design under the same test id is refused
    changed = TestDesign("t1", "mos", d.conditions[:1], d.sentences)
    with pytest.raises(ResultsError, match="different type or design"):
        render_stimuli(changed, store, tmp_path / "results", render)


def test_render_errors(tmp_path):
    d = design(tmp_path)
    store = ResultsStore(tmp_path / "r")
    with pytest.raises(ListeningError, match="needs a render callable"):
        render_stimuli(d, store, tmp_path / "r")
    with pytest.raises(ListeningError, match="must return RenderedClip"):
        render_stimuli(d, store, tmp_path / "r", lambda c, text, seed: np.zeros(100))
    missing = TestDesign("t2", "mos", (Condition("gamma", folder=str(tmp_path / "nowhere")),), SENTENCES[:1])
    with pytest.raises(ValueError, match="nowhere/s1.wav"):
        render_stimuli(missing, store, tmp_path / "r")


def test_anchor_degradation():
    # 300 Hz + 4 kHz tones at 16 kHz: the 1 kHz low-pass removes 4 kHz; noise adds P/10 (10 dB SNR)
    sr = 16000
    t = np.arange(sr) / sr
    x = np.sin(2 * np.pi * 300 * t) + np.sin(2 * np.pi * 4000 * t)
    y = degrade_for_anchor(x, sr, seed=0)
    spec = np.abs(np.fft.rfft(y))
    assert spec[4000] / spec[300] < 1e-2  # 1 Hz bins
    assert np.mean(y.astype(np.float64) ** 2) == pytest.approx(0.5 * 1.1, rel=0.03)  # P(300 Hz tone) = 1/2
    assert np.array_equal(y, degrade_for_anchor(x, sr, seed=0))


# --------------------------------------------------------------------------- orders


def test_mos_order_every_stimulus_once_and_deterministic(tmp_path):
    d, store, stimuli, _ = rendered(tmp_path, folder=True, sentences=SENTENCES,
                                    gold=(GoldTrial("anchor", "beta", "s2"),))
    trials = build_trials(d, stimuli, seed=11)
    assert sorted(s for t in trials for s in t.stimulus_ids) == sorted(s.stimulus_id for s in stimuli)
    assert len(trials) == 10  # 3 conditions x 3 sentences + 1 anchor
    assert [t.gold for t in trials].count("score<=2") == 1
    assert trials == build_trials(d, stimuli, seed=11)
    assert trials != build_trials(d, stimuli, seed=12)


def test_ab_order_all_pairs_with_random_sides(tmp_path):
    d, store, stimuli, _ = rendered(tmp_path, "ab", folder=True)
    label = {s.stimulus_id: s.condition for s in stimuli}
    rank = {"alpha": 0, "beta": 1, "gamma": 2}
    swaps = []
    for seed in range(20):
        trials = build_trials(d, stimuli, seed)
        pairs = sorted((t.sentence_id, *sorted(label[s] for s in t.stimulus_ids)) for t in trials)
        assert pairs == [(s, a, b) for s in ("s1", "s2") for a, b in
                         (("alpha", "beta"), ("alpha", "gamma"), ("beta", "gamma"))]
        for t in trials:
            first, second = (label[s] for s in t.stimulus_ids)
            assert t.swapped == (rank[first] > rank[second])
            swaps.append(t.swapped)
    assert 0.35 < np.mean(swaps) < 0.65  # 120 pairs


def test_raters_get_different_recorded_orders(tmp_path):
    d, store, stimuli, _ = rendered(tmp_path, "ab", folder=True, sentences=SENTENCES)
    s1, s2 = RaterSession(store, "t1", "ann"), RaterSession(store, "t1", "bob")
    r1, r2 = store.session(s1.session_id), store.session(s2.session_id)
    assert r1.order != r2.order and r1.seed != r2.seed
    assert list(r1.order) == build_trials(d, stimuli, r1.seed)  # the recorded seed reproduces the order


def test_condition_labels_never_reach_the_rater(tmp_path):
    d, store, stimuli, _ = rendered(tmp_path, "ab", folder=True,
                                    gold=(GoldTrial("identical", "alpha", "s1"), GoldTrial("obvious", "beta", "s2")))
    clock = Clock()
    session = RaterSession(store, "t1", "ann", url_prefix="/stimuli", clock=clock)
    seen = []
    while not session.done:
        view = session.current
        seen.append(view)
        for clip in view.clips:
            assert re.fullmatch(r"/stimuli/[0-9a-f]{16}\.wav", clip.url)
            assert re.fullmatch(r"[0-9a-f]{16}\.wav", Path(clip.path).name)
        play_all(session, clock)
        session.submit(choice="none")
    assert len(seen) == 8
    for text in [repr(v) for v in seen] + [repr(t) for t in store.session(session.session_id).order]:
        assert not any(label in text for label in LABELS + ("anchor",))


# --------------------------------------------------------------------------- the rater's session


def test_submit_refused_until_every_clip_heard_to_end(tmp_path):
    d, store, stimuli, _ = rendered(tmp_path, "ab")
    clock = Clock()
    s = RaterSession(store, "t1", "ann", clock=clock)
    a, b = s.current.clips
    with pytest.raises(RatingError, match="please play clip A and B to the end before rating"):
        s.submit(choice="A")
    s.mark_played(a, to_end=True)
    s.mark_played(b, to_end=False)  # stopped half-way
    assert not s.ready
    with pytest.raises(RatingError, match="please play clip B to the end"):
        s.submit(choice="A")
    with pytest.raises(ListeningError, match="not part of the current trial"):
        s.mark_played("0123456789abcdef", to_end=True)
    s.mark_played(b.stimulus_id, to_end=True)
    assert s.ready
    with pytest.raises(RatingError, match="unknown choice 'C'"):
        s.submit(choice="C")
    s.submit(choice="B", cmos=1)
    assert (s.position, s.answered, s.ready) == (1, 1, False)
    (rating,) = store.ratings("t1")
    assert (rating.play_counts, rating.listened_to_end) == ((1, 2), (True, True))


def test_play_counts_and_response_time(tmp_path):
    d, store, stimuli, _ = rendered(tmp_path)
    clock = Clock()
    s = RaterSession(store, "t1", "ann", clock=clock)
    (clip,) = s.current.clips
    s.play_started(clip)  # t = 100
    clock.t = 102.0
    s.mark_played(clip, to_end=False)
    clock.t = 103.0
    s.play_started(clip)
    clock.t = 106.0
    s.mark_played(clip, to_end=True)
    clock.t = 107.5
    r = s.submit(score=3)
    assert (r.play_counts, r.response_time_s, r.score) == ((2,), 7.5, 3)


def test_resume_after_closing_the_browser(tmp_path):
    d, store, stimuli, _ = rendered(tmp_path, sentences=SENTENCES)  # 6 MOS trials
    clock = Clock()
    first = RaterSession(store, "t1", "ann", clock=clock)
    views = []
    events = []
    first.param.watch(lambda e: events.append(e.new), "progress")
    for score in (5, 4, 3):
        views.append(first.current)
        play_all(first, clock)
        first.submit(score=score)
    assert events == [1 / 6, 2 / 6, 3 / 6]
    remaining = [first.current]
    play_all(first, clock)
    first.submit(score=1)
    del first  # the browser closes; state lives in the database
    again = RaterSession(store, "t1", "ann", clock=clock)
    assert (again.position, again.answered, again.progress) == (4, 4, pytest.approx(4 / 6))
    while not again.done:
        remaining.append(again.current)
        play_all(again, clock)
        again.submit(score=2)
    assert [v.number for v in views + remaining] == [1, 2, 3, 4, 5, 6]
    assert sorted(c.stimulus_id for v in views + remaining for c in v.clips) == sorted(s.stimulus_id for s in stimuli)
    assert again.current is None and again.done and again.progress == 1.0
    with pytest.raises(RatingError, match="finished"):
        again.submit(score=3)
    assert [r.score for r in store.ratings("t1")] == [5, 4, 3, 1, 2, 2]


def test_second_window_of_same_rater_moves_on(tmp_path):
    d, store, stimuli, _ = rendered(tmp_path)
    clock = Clock()
    w1, w2 = RaterSession(store, "t1", "ann", clock=clock), RaterSession(store, "t1", "ann", clock=clock)
    assert w1.session_id == w2.session_id and w1.current == w2.current
    play_all(w1, clock)
    w1.submit(score=4)
    play_all(w2, clock)
    with pytest.raises(DuplicateRatingError):
        w2.submit(score=1)
    assert w2.position == 1 and w2.current == w1.current
    assert [r.score for r in store.ratings("t1")] == [4]


def test_gold_trials(tmp_path):
    d, store, stimuli, _ = rendered(tmp_path, "ab", gold=(GoldTrial("identical", "alpha", "s1"),
                                                          GoldTrial("obvious", "beta", "s2")))
    by_id = {s.stimulus_id: s for s in stimuli}
    copy = next(s for s in stimuli if s.variant == "copy")
    original = next(s for s in stimuli if s.condition == "alpha" and s.sentence_id == "s1" and not s.variant)
    assert copy.stimulus_id != original.stimulus_id
    assert Path(copy.path).read_bytes() == Path(original.path).read_bytes()
    anchor = next(s for s in stimuli if s.condition == "anchor:beta")
    audio, sr = sf.read(anchor.path)
    assert pyloudnorm.Meter(sr).integrated_loudness(audio) == pytest.approx(-23.0, abs=0.2)
    clock = Clock()
    s = RaterSession(store, "t1", "ann", clock=clock)
    order = store.session(s.session_id).order
    golds = {t.gold: t for t in order if t.gold}
    assert set(golds) >= {"choice=none"} and len(golds) == 2
    obvious = next(t for g, t in golds.items() if g != "choice=none")
    side = "AB"[[by_id[i].condition for i in obvious.stimulus_ids].index("beta")]
    assert obvious.gold == f"choice={side}"
    while not s.done:  # an attentive rater: "none" on the identical pair, the reference on the obvious one
        trial = order[s.position]
        play_all(s, clock)
        s.submit(choice="none" if trial.gold != obvious.gold else side)
    assert [(g.n_gold, g.n_passed) for g in gold_table(store, "t1")] == [(2, 2)]


# --------------------------------------------------------------------------- exact CSV rows


# the condition's settings plus the vocoder that really made the clip (FakeRender says "griffinlim")
SETTINGS_JSON = {"alpha": '{"cfg":0.0,"steps":4,"vocoder":"griffinlim"}',
                 "beta": '{"solver":"heun","steps":32,"vocoder":"griffinlim"}'}
SEED = {"alpha": "1", "beta": "2"}


def read_csv(store):
    buf = io.StringIO()
    store.export_csv("t1", buf)
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    assert tuple(rows[0]) == CSV_COLUMNS
    return rows[1:]


def test_csv_rows_of_scripted_mos_test(tmp_path):
    d, store, stimuli, _ = rendered(tmp_path)
    cond = {s.stimulus_id: made_by(s) for s in stimuli}
    sentence = {s.text: s.id for s in SENTENCES}
    sha = {label: hashlib.sha256(f"{label} weights".encode()).hexdigest() for label in ("alpha", "beta")}
    clock = Clock()
    s = RaterSession(store, "t1", "ann", clock=clock, seed=5)
    expected = []
    while not s.done:
        view = s.current
        (clip,) = view.clips
        label = cond[clip.stimulus_id]
        score = {"alpha": 4, "beta": 2}[label]
        clock.t += 0.5
        play_all(s, clock, {"clip": 2})
        s.submit(score=score)
        row = dict.fromkeys(CSV_COLUMNS, "")
        row.update(test_id="t1", test_type="mos", trial_type="mos", rater_id="ann", session_id=s.session_id,
                   trial_index=str(view.number - 1), sentence_id=sentence[view.text], text=view.text,
                   condition=label, score=str(score), stimulus_id=clip.stimulus_id, play_count="2",
                   listened_to_end="true", response_time_s="2.000", timestamp_utc="2025-01-02T03:04:05.678Z",
                   checkpoint_sha256=sha[label], seed=SEED[label], vocoder="griffinlim",
                   settings_json=SETTINGS_JSON[label], app_version=core.__version__,
                   completion_code=completion_code(s.session_id))
        expected.append([row[c] for c in CSV_COLUMNS])
    assert read_csv(store) == expected
    assert [(r.condition, r.summary.mean, r.summary.n) for r in mos_table(store, "t1")] == [
        ("alpha", 4.0, 2), ("beta", 2.0, 2)]


def test_csv_rows_of_scripted_ab_test(tmp_path):
    d, store, stimuli, _ = rendered(tmp_path, "ab")
    cond = {s.stimulus_id: made_by(s) for s in stimuli}
    sentence = {s.text: s.id for s in SENTENCES}
    sha = {label: hashlib.sha256(f"{label} weights".encode()).hexdigest() for label in ("alpha", "beta")}
    clock = Clock()
    s = RaterSession(store, "t1", "bob", clock=clock, seed=3)
    expected, orders = [], set()
    while not s.done:
        view = s.current
        a, b = view.clips
        la, lb = cond[a.stimulus_id], cond[b.stimulus_id]
        choice, cmos = ("A", -2) if la == "alpha" else ("B", 2)  # always prefers alpha
        play_all(s, clock, {"A": 1, "B": 2})
        s.submit(choice=choice, cmos=cmos)
        orders.add("AB" if la == "alpha" else "BA")
        row = dict.fromkeys(CSV_COLUMNS, "")  # one value per cell: side A in *_a, side B in *_b
        row.update(test_id="t1", test_type="ab", trial_type="ab", rater_id="bob", session_id=s.session_id,
                   trial_index=str(view.number - 1), sentence_id=sentence[view.text], text=view.text,
                   condition_a=la, condition_b=lb, presented_order="AB" if la == "alpha" else "BA",
                   chosen_condition="alpha", choice=choice, cmos=str(cmos), stimulus_id_a=a.stimulus_id,
                   stimulus_id_b=b.stimulus_id, play_count_a="1", play_count_b="2", listened_to_end="true",
                   response_time_s="3.000", timestamp_utc="2025-01-02T03:04:05.678Z",
                   checkpoint_sha256_a=sha[la], checkpoint_sha256_b=sha[lb], seed_a=SEED[la], seed_b=SEED[lb],
                   vocoder_a="griffinlim", vocoder_b="griffinlim", settings_json_a=SETTINGS_JSON[la],
                   settings_json_b=SETTINGS_JSON[lb], app_version_a=core.__version__,
                   app_version_b=core.__version__, completion_code=completion_code(s.session_id))
        expected.append([row[c] for c in CSV_COLUMNS])
    assert len(expected) == 2 and orders == {"AB", "BA"}  # seed 3 presents one pair each way
    assert read_csv(store) == expected
    (row,) = ab_table(store, "t1")
    assert (row.first, row.second, row.summary.n_a, row.summary.n_b, row.cmos.mean) == ("alpha", "beta", 2, 0, -2.0)
