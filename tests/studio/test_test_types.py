"""The test types beyond MOS and A/B: MUSHRA, ABX, SMOS, DCR, intelligibility.

Designs, rendering (hidden reference and X copies, low-pass anchors), trial orders,
the rater's state machine (play to the end, validation, resume), the CSV rows, and the
low-pass filter's frequency response against its closed form."""

from __future__ import annotations

import csv
import io
import sqlite3

import numpy as np
import pytest
import soundfile as sf

from core.config import ConfigError
from studio import results
from studio.listening import (Condition, ListeningError, Sentence, TestDesign, build_trials, lowpass,
                              lowpass_response, render_stimuli)
from studio.rater_session import RaterSession
from studio.results import CSV_COLUMN_DOCS, CSV_COLUMNS, RatingError, ResultsStore

SR = 16000
SENTENCES = (Sentence("s1", "The cat sat on the mat."), Sentence("s2", "A dog ran far away."),
             Sentence("s3", "Red sun at night."))
FREQS = {"ref": 300.0, "sysa": 500.0, "sysb": 700.0}


def folders(tmp_path, labels=("ref", "sysa", "sysb")):
    conds = []
    t = np.arange(int(0.4 * SR)) / SR
    for label in labels:
        folder = tmp_path / "wavs" / label
        folder.mkdir(parents=True)
        for s in SENTENCES:
            sf.write(folder / f"{s.id}.wav", 0.2 * np.sin(2 * np.pi * FREQS[label] * t), SR)
        conds.append(Condition(label, folder=str(folder)))
    return tuple(conds)


def make(tmp_path, kind, **kw):
    labels = kw.pop("labels", ("ref", "sysa", "sysb"))
    design = TestDesign("t1", kind, folders(tmp_path, labels), SENTENCES, **kw)
    store = ResultsStore(tmp_path / "results")
    stimuli = render_stimuli(design, store, tmp_path / "results")
    return design, store, stimuli


def hear(session):
    for clip in session.current.clips:
        session.play_started(clip)
        session.mark_played(clip, to_end=True)


def labels_of(store, tid="t1"):
    return {s.stimulus_id: s.condition for s in store.stimuli(tid)}


def read_csv(store, tid="t1"):
    buf = io.StringIO()
    n = store.export_csv(tid, buf)
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert len(rows) == n
    return rows


# --------------------------------------------------------------------------- designs


def test_design_rules_of_the_new_types(tmp_path):
    conds = folders(tmp_path)
    for kind in ("mushra", "smos", "dcr"):
        with pytest.raises(ListeningError, match=f"a {kind} test needs a reference condition"):
            TestDesign("t", kind, conds, SENTENCES)
        with pytest.raises(ConfigError, match="unknown reference condition .* 'nope'; valid: ref, sysa, sysb"):
            TestDesign("t", kind, conds, SENTENCES, reference="nope")
        with pytest.raises(ListeningError, match="at least 2"):
            TestDesign("t", kind, conds[:1], SENTENCES, reference="ref")
    with pytest.raises(ListeningError, match="takes no reference"):
        TestDesign("t", "abx", conds, SENTENCES, reference="ref")
    with pytest.raises(ListeningError, match="at least 2"):
        TestDesign("t", "abx", conds[:1], SENTENCES)
    with pytest.raises(ListeningError, match="MUSHRA tests only"):
        TestDesign("t", "dcr", conds, SENTENCES, reference="ref", anchor_7khz=True)
    d = TestDesign("t", "mushra", conds, SENTENCES, reference="ref", anchor_7khz=True)
    assert TestDesign.from_dict(d.to_dict()) == d
    assert "reference" not in TestDesign("t", "mos", conds, SENTENCES).to_dict()  # old designs keep their form


# --------------------------------------------------------------------------- the low-pass anchor


@pytest.mark.parametrize("cutoff", [3500.0, 7000.0])
def test_lowpass_frequency_response_matches_the_closed_form(cutoff):
    n = 1 << 14
    impulse = np.zeros(n)
    impulse[n // 2] = 1.0
    h = lowpass(impulse, SR, cutoff).astype(np.float64)
    freqs = np.fft.rfftfreq(n, 1 / SR)
    measured = np.abs(np.fft.rfft(h))
    expected = lowpass_response(freqs, SR, cutoff)
    assert np.max(np.abs(measured - expected)) < 1e-4  # float32 output
    k = np.argmin(np.abs(freqs - cutoff))
    assert expected[k] == pytest.approx(0.5, abs=0.02)  # -6 dB at the cut-off, forwards and backwards
    assert measured[np.argmin(np.abs(freqs - 1.1 * cutoff))] < 0.25  # steep: 16th order in all


def test_lowpass_refuses_a_cutoff_above_nyquist():
    with pytest.raises(ListeningError, match="sample rate above 14000 Hz"):
        lowpass(np.zeros(1000), 8000, 7000.0)


# --------------------------------------------------------------------------- MUSHRA


def test_mushra_render_and_trials(tmp_path):
    design, store, stimuli = make(tmp_path, "mushra", reference="ref", anchor_7khz=True)
    by = {(s.condition, s.sentence_id, s.variant): s for s in stimuli}
    assert {c.label for c in store.conditions("t1")} == {"ref", "sysa", "sysb", "anchor:lp3500", "anchor:lp7000"}
    hidden = by[("ref", "s1", "copy")]
    assert hidden.stimulus_id != by[("ref", "s1", "")].stimulus_id
    assert open(hidden.path, "rb").read() == open(by[("ref", "s1", "")].path, "rb").read()
    assert by[("anchor:lp3500", "s1", "")].provenance["degradation"]["lowpass_hz"] == 3500.0
    trials = build_trials(design, stimuli, seed=3)
    assert trials == build_trials(design, stimuli, seed=3) and len(trials) == len(SENTENCES)
    labels = labels_of(store)
    orders = set()
    for t in trials:
        assert t.kind == "mushra" and labels[t.stimulus_ids[0]] == "ref"
        rated = [labels[s] for s in t.stimulus_ids[1:]]
        assert sorted(rated) == sorted(["ref", "sysa", "sysb", "anchor:lp3500", "anchor:lp7000"])
        orders.add(tuple(rated))
    assert len(orders) > 1  # the sliders' order is shuffled per trial


def test_mushra_session_validation_resume_and_csv(tmp_path):
    design, store, _ = make(tmp_path, "mushra", reference="ref")
    session = RaterSession(store, "t1", "r1", seed=1)
    view = session.current
    assert [c.name for c in view.clips] == ["reference", "1", "2", "3", "4"]
    assert view.text in {s.text for s in SENTENCES}
    with pytest.raises(RatingError, match="to the end"):
        session.submit(scores=[50] * 4)
    hear(session)
    with pytest.raises(RatingError, match="rate every clip, the hidden reference too"):
        session.submit(scores=[50, None, 50, 50])
    with pytest.raises(RatingError, match="0..100"):
        session.submit(scores=[50, 101, 50, 50])
    with pytest.raises(RatingError, match="one score per clip"):
        session.submit(scores=[50, 50])
    with pytest.raises(RatingError, match="takes scores, not a score"):
        session.submit(score=3)
    labels = labels_of(store)
    value = {"ref": 95, "sysa": 60, "sysb": 40, "anchor:lp3500": 20}
    scores = [value[labels[c.stimulus_id]] for c in view.clips[1:]]
    session.submit(scores=scores)
    again = RaterSession(store, "t1", "r1")  # the browser was closed: resume
    assert again.answered == 1 and again.position == 1
    rows = read_csv(store)
    assert len(rows) == 4  # one row per slider
    for row in rows:
        assert row["trial_type"] == "mushra" and row["reference_condition"] == "ref"
        assert int(row["score"]) == value[row["condition"]]
        assert row["clip_role"] == {"ref": "hidden_reference", "anchor:lp3500": "anchor"}.get(row["condition"],
                                                                                               "condition")
        assert row["stimulus_id_ref"] == view.clips[0].stimulus_id and row["play_count_ref"] == "1"
    assert sorted(int(r["clip_position"]) for r in rows) == [1, 2, 3, 4]


# --------------------------------------------------------------------------- ABX


def test_abx_trials_session_and_csv(tmp_path):
    design, store, stimuli = make(tmp_path, "abx", labels=("ref", "sysa"))
    trials = build_trials(design, stimuli, seed=0)
    labels = labels_of(store)
    variants = {s.stimulus_id: s.variant for s in stimuli}
    assert len(trials) == len(SENTENCES)
    keys = set()
    for t in trials:
        a, b, x = t.stimulus_ids
        assert variants[x] == "copy" and labels[x] == labels[a if t.key == "A" else b]
        keys.add(t.key)
    keys |= {t.key for seed in range(1, 8) for t in build_trials(design, stimuli, seed)}
    assert keys == {"A", "B"}
    session = RaterSession(store, "t1", "r1", seed=5)
    assert [c.name for c in session.current.clips] == ["A", "B", "X"]
    hear(session)
    with pytest.raises(RatingError, match="X is A or B"):
        session.submit(choice="none")
    key = store.session(session.session_id).order[0].key
    session.submit(choice=key)
    hear(session)
    wrong = {"A": "B", "B": "A"}[store.session(session.session_id).order[1].key]
    session.submit(choice=wrong)
    rows = read_csv(store)
    assert [r["correct"] for r in rows] == ["true", "false"]
    assert rows[0]["x_is"] == key and rows[0]["condition_x"] == rows[0][f"condition_{key.lower()}"]
    assert rows[0]["stimulus_id_x"] and rows[0]["play_count_x"] == "1"


# --------------------------------------------------------------------------- SMOS, DCR


@pytest.mark.parametrize("kind", ["smos", "dcr"])
def test_reference_rated_types(tmp_path, kind):
    design, store, stimuli = make(tmp_path, kind, reference="ref")
    labels = labels_of(store)
    trials = build_trials(design, stimuli, seed=0)
    assert len(trials) == 2 * len(SENTENCES)  # every other condition x sentence; the reference is not rated
    for t in trials:
        ref, clip = t.stimulus_ids
        assert labels[ref] == "ref" and labels[clip] in ("sysa", "sysb")
        assert {s.sentence_id for s in stimuli if s.stimulus_id in (ref, clip)} == {t.sentence_id}
    session = RaterSession(store, "t1", "r1", seed=2)
    assert [c.name for c in session.current.clips] == ["reference", "clip"]
    session.mark_played(session.current.clips[1], to_end=True)
    with pytest.raises(RatingError, match="clip reference to the end"):
        session.submit(score=4)
    session.mark_played(session.current.clips[0], to_end=True)
    with pytest.raises(RatingError, match="integer 1..5"):
        session.submit(score=0)
    rated = session.current.clips[1].stimulus_id
    session.submit(score=4)
    (row,) = read_csv(store)
    assert (row["trial_type"], row["score"], row["reference_condition"]) == (kind, "4", "ref")
    assert row["condition"] == labels[rated] and row["stimulus_id"] == rated


# --------------------------------------------------------------------------- intelligibility


def test_intelligibility_each_sentence_once_text_hidden_and_wer(tmp_path):
    design, store, stimuli = make(tmp_path, "intelligibility")
    labels = labels_of(store)
    shifts = set()
    for seed in range(12):
        trials = build_trials(design, stimuli, seed)
        assert sorted(t.sentence_id for t in trials) == ["s1", "s2", "s3"]  # each sentence once
        conds = {t.sentence_id: labels[t.stimulus_ids[0]] for t in trials}
        assert sorted(conds.values()) == ["ref", "sysa", "sysb"]  # a Latin-square row: every condition once
        shifts.add(tuple(conds[s] for s in ("s1", "s2", "s3")))
    assert len(shifts) == 3  # all rows of the square occur
    session = RaterSession(store, "t1", "r1", seed=4)
    assert session.current.text == "" and [c.name for c in session.current.clips] == ["clip"]
    hear(session)
    with pytest.raises(RatingError, match="type what you heard"):
        session.submit(transcript="   ")
    trial = store.session(session.session_id).order[0]
    words = trial.text.split()
    session.submit(transcript=" ".join(words[:-1]))  # one word left out
    (row,) = read_csv(store)
    assert row["trial_type"] == "intelligibility" and row["transcript"] == " ".join(words[:-1])
    assert float(row["wer"]) == pytest.approx(1 / len(words), abs=1e-4)


# --------------------------------------------------------------------------- store and CSV


def test_every_csv_column_is_documented():
    assert set(CSV_COLUMNS) == set(CSV_COLUMN_DOCS)
    for name in ("clip_role", "x_is", "correct", "transcript", "wer", "reference_condition"):
        assert name in CSV_COLUMNS


def test_a_version_2_database_migrates_to_the_new_types(tmp_path):
    # schema 2 as it was written: the CHECK on tests.type, ratings without scores/transcript
    db = sqlite3.connect(tmp_path / "results.sqlite")
    db.executescript("""
        CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (2);
        CREATE TABLE tests (test_id TEXT PRIMARY KEY, type TEXT NOT NULL CHECK (type IN ('mos', 'ab')),
            name TEXT NOT NULL, created TEXT NOT NULL, design_json TEXT NOT NULL, archived INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE ratings (rating_id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL,
            trial_index INTEGER NOT NULL, score INTEGER, choice TEXT, cmos INTEGER, play_counts_json TEXT NOT NULL,
            listened_json TEXT NOT NULL, response_time_s REAL NOT NULL, timestamp_utc TEXT NOT NULL,
            superseded INTEGER NOT NULL DEFAULT 0);
        INSERT INTO tests VALUES ('old1', 'mos', 'old test', '2024-01-01T00:00:00.000Z', '{}', 0);""")
    db.commit()
    db.close()
    store = ResultsStore(tmp_path)
    assert store.test("old1").test_type == "mos"
    store.create_test("mushra", "new", {}, test_id="new1")
    assert store.test("new1").test_type == "mushra"
    store.close()
    db = sqlite3.connect(tmp_path / "results.sqlite")
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(results.SCHEMA_VERSION,)]
    assert {"scores_json", "transcript"} <= {r[1] for r in db.execute("PRAGMA table_info(ratings)")}
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    db.close()


# --------------------------------------------------------------------------- statistics


def answer_all(store, rater, answer, seed=0):
    """Rate every trial of ``rater``: ``answer(trial_view, labels) -> submit kwargs``."""
    session = RaterSession(store, "t1", rater, seed=seed)
    labels = labels_of(store)
    while session.current is not None:
        hear(session)
        session.submit(**answer(session.current, labels, store.session(session.session_id).order[session.position]))
    return session


def test_mushra_screening_flags_a_rater_who_misses_the_hidden_reference_and_exclusion_shows(tmp_path):
    from studio.agreement import screen_raters
    from studio.stats_report import statistics_rows, test_statistics

    _, store, _ = make(tmp_path, "mushra", reference="ref")
    value = {"ref": 100, "sysa": 60, "sysb": 40, "anchor:lp3500": 10}

    def honest(view, labels, trial):
        return {"scores": [value[labels[c.stimulus_id]] for c in view.clips[1:]]}

    def careless(view, labels, trial):  # misses the hidden reference in the s1 trial: 1 of 3 = 33 % > 15 %
        low = trial.sentence_id == "s1"
        return {"scores": [(50 if low else 100) if labels[c.stimulus_id] == "ref" else 70 for c in view.clips[1:]]}

    for k, rater in enumerate(("r1", "r2")):
        answer_all(store, rater, honest, seed=k)
    answer_all(store, "bad", careless, seed=9)
    checks = {c.rater_id: c for c in screen_raters(store.ratings("t1"))}
    assert checks["bad"].hidden_ref_low == pytest.approx(1 / 3) and checks["bad"].flagged
    assert "hidden reference below 90 in 1 of 3 MUSHRA trials" in checks["bad"].reasons[0]
    assert checks["r1"].hidden_ref_low == 0.0 and not checks["r1"].flagged
    stats = test_statistics(store, "t1", n_boot=10)
    assert stats["flagged_raters"] == ["bad"]
    every = {m["condition"]: m["mean"] for m in stats["all_raters"]["mos"]}
    kept = {m["condition"]: m["mean"] for m in stats["excluding_flagged"]["mos"]}
    assert kept == {"ref": 100.0, "sysa": 60.0, "sysb": 40.0, "anchor:lp3500": 10.0}
    assert every["ref"] == pytest.approx((6 * 100 + 2 * 100 + 50) / 9)  # r1, r2: 3 trials each; bad: 100, 100, 50
    assert every["sysa"] == pytest.approx((6 * 60 + 3 * 70) / 9)
    assert stats["all_raters"]["agreement"]["level"] == "interval"
    assert any(r["statistic"] == "rater_hidden_ref_low" and r["rater_id"] == "bad" for r in statistics_rows(stats))


def test_abx_statistics_against_the_binomial_closed_form(tmp_path):
    from math import comb

    from studio.stats_report import test_statistics

    _, store, _ = make(tmp_path, "abx", labels=("ref", "sysa"))
    for k in range(4):  # 4 raters x 3 sentences; the first three raters always find X, the last never
        answer_all(store, f"r{k}", lambda v, lab, t, k=k: {"choice": t.key if k < 3 else {"A": "B", "B": "A"}[t.key]},
                   seed=k)
    (row,) = test_statistics(store, "t1", n_boot=10)["all_raters"]["abx"]
    n, hits = 12, 9
    p_closed = sum(comb(n, j) for j in range(hits, n + 1)) / 2 ** n  # P(X >= 9), X ~ Bin(12, 1/2)
    assert (row["first"], row["second"], row["n"], row["correct"]) == ("ref", "sysa", n, hits)
    assert row["share"] == pytest.approx(0.75) and row["p_value"] == pytest.approx(p_closed, rel=1e-12)
    assert row["ci95_low"] < 0.75 < row["ci95_high"]


def test_intelligibility_human_wer_per_condition_beside_asr(tmp_path):
    import json

    from studio.stats_report import test_statistics
    from studio.type_stats import OBJECTIVE_DIR

    _, store, stimuli = make(tmp_path, "intelligibility")

    def typist(view, labels, trial):  # perfect for ref, drops the last word for sysa, says nothing right for sysb
        label = labels[view.clips[0].stimulus_id]
        words = trial.text.split()
        return {"transcript": {"ref": trial.text, "sysa": " ".join(words[:-1]), "sysb": "zzz"}[label]}

    for k in range(3):
        answer_all(store, f"r{k}", typist, seed=k)
    asr = {s.stimulus_id: s.text for s in stimuli if s.condition == "ref" and s.variant == ""}  # ASR only for ref
    (store.folder / OBJECTIVE_DIR).mkdir()
    (store.folder / OBJECTIVE_DIR / "t1.json").write_text(json.dumps(
        {sid: {"dnsmos_ovrl": 3.0, "transcript": text} for sid, text in asr.items()}))
    rows = {w["condition"]: w for w in test_statistics(store, "t1", n_boot=10)["all_raters"]["intelligibility"]}
    assert rows["ref"]["human_wer"] == 0.0 and rows["ref"]["asr_wer"] == 0.0 and rows["ref"]["asr_clips"] == 3
    assert rows["sysa"]["asr_wer"] is None and rows["sysa"]["asr_clips"] == 0  # NaN in the JSON-safe record
    sysa = [r for r in store.ratings("t1") if r.conditions[0] == "sysa"]
    expected = len(sysa) / sum(len(r.text.split()) for r in sysa)  # one deletion per transcript
    assert rows["sysa"]["human_wer"] == pytest.approx(expected)
    assert rows["sysb"]["human_wer"] == pytest.approx(1.0, abs=0.5)


@pytest.mark.parametrize("kind", ["smos", "dcr"])
def test_smos_and_dcr_estimates_per_rated_condition(tmp_path, kind):
    from studio.stats import mos_table

    _, store, _ = make(tmp_path, kind, reference="ref")
    for k in range(2):
        answer_all(store, f"r{k}", lambda v, lab, t: {"score": {"sysa": 5, "sysb": 2}[lab[v.clips[1].stimulus_id]]},
                   seed=k)
    table = {row.condition: row.summary.mean for row in mos_table(store, "t1")}
    assert table == {"sysa": 5.0, "sysb": 2.0}  # the reference is heard, never rated


# --------------------------------------------------------------------------- the YAML test file and the CLI


def test_yaml_file_and_cli_create_the_new_types(tmp_path, capsys):
    from studio.cli import main
    from studio.design_file import design_from_yaml_text, design_to_yaml

    conds = folders(tmp_path)
    (tmp_path / "test.yaml").write_text(f"""
type: mushra
test_id: mu-1
reference: ref
anchor_7khz: true
practice: true
conditions:
  - {{label: ref, folder: {conds[0].folder}}}
  - {{label: sysa, folder: {conds[1].folder}}}
sentences:
  - {{id: s1, text: {SENTENCES[0].text}}}
  - {{id: s2, text: {SENTENCES[1].text}}}
""")
    assert main(["test", "create", "--config", str(tmp_path / "test.yaml"), "--results", str(tmp_path / "res")]) == 0
    out = capsys.readouterr().out
    # 2 sentences x (ref, sysa, hidden-reference copy, 3.5 and 7 kHz anchors)
    assert out.startswith("mu-1\tmushra\t10 stimuli")
    store = ResultsStore(tmp_path / "res")
    design = TestDesign.from_dict(store.test("mu-1").design)
    assert (design.reference, design.anchor_7khz, design.practice) == ("ref", True, True)
    assert design_from_yaml_text(design_to_yaml(design, with_test_id=True)) == design  # the file round-trips
    bad = tmp_path / "bad.yaml"
    bad.write_text("type: musra\nconditions: []\nsentences: [hi]\n")
    assert main(["test", "create", "--config", str(bad), "--results", str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err
    assert "unknown test type 'musra'; valid: mos, ab, mushra, abx, smos, dcr, intelligibility" in err
    bad.write_text(f"type: smos\nconditions: [{{label: a, folder: {conds[0].folder}}}, "
                   f"{{label: b, folder: {conds[1].folder}}}]\nsentences: [hi]\n")
    assert main(["test", "create", "--config", str(bad), "--results", str(tmp_path / "res")]) == 2
    assert "a smos test needs a reference condition (reference: one of a, b)" in capsys.readouterr().err


def test_completion_code_shown_only_when_done_and_in_every_row(tmp_path):
    from studio.results import completion_code

    _, store, _ = make(tmp_path, "dcr", reference="ref")
    session = RaterSession(store, "t1", "r1", seed=0)
    assert session.completion_code == ""
    while session.current is not None:
        hear(session)
        session.submit(score=3)
    code = session.completion_code
    assert code == completion_code(session.session_id) and len(code) == 9 and code[4] == "-"
    assert code != completion_code(session.session_id + "x")
    assert {r["completion_code"] for r in read_csv(store)} == {code}


def test_practice_trial_comes_first_is_exported_and_never_counted(tmp_path):
    from studio.stats import rating_counts

    design, store, stimuli = make(tmp_path, "smos", reference="ref", practice=True)
    trials = build_trials(design, stimuli, seed=1)
    assert trials[0].practice and sum(t.practice for t in trials) == 1 and len(trials) == 2 * len(SENTENCES) + 1
    assert trials[0].stimulus_ids in [t.stimulus_ids for t in trials[1:]]  # a repeat of a real trial
    session = RaterSession(store, "t1", "r1", seed=1)
    view = session.current
    assert view.practice and (view.number, view.total) == (1, 6)
    hear(session)
    session.submit(score=1)
    assert not session.current.practice and (session.current.number, session.current.total) == (1, 6)
    while session.current is not None:
        hear(session)
        session.submit(score=4)
    rows = read_csv(store)
    assert [r["trial_type"] for r in rows] == ["practice"] + ["smos"] * 6 and rows[0]["score"] == "1"
    assert len(store.ratings("t1")) == 6 and rating_counts(store, "t1").n_ratings == 6
    with pytest.raises(ListeningError, match="cannot start with a practice trial"):
        TestDesign("t", "intelligibility", design.conditions, SENTENCES, practice=True)
