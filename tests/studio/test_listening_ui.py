"""The listening-test pages driven without a browser: an experimenter defines and renders
MOS and A/B tests from a tiny trained checkpoint, raters complete them through the
page's methods (play-to-end events as the browser sends them), and the results page
and CSV export show the expected numbers.  Also: refusals before a clip was heard, the
rater page naming no condition, resume, roles and experimenter input checks."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import sqlite3

import numpy as np
import panel as pn
import pytest
import soundfile as sf
from bokeh.core.json_encoder import serialize_json
from bokeh.document import Document

from studio import results_ui
from studio.config import StudioSettings
from studio.experimenter_ui import ExperimenterView, parse_sentences
from studio.listening_ui import build_listening_tabs, rater_mode
from studio.rater_ui import RaterView
from studio.stimulus_renderer import StimulusRenderer
from studio.results import CSV_COLUMNS, ResultsStore
from studio.results_ui import ResultsView

from conftest import tiny_config

# Labels with '-' and ' ': neither can occur inside base64 data or hex ids by chance.
ALPHA, BETA = "sys-alpha", "sys-beta"
TEST_NAME = "sys-alpha versus sys-beta"
SENTENCES = "The cat sat on the mat.\nA dog ran far away."
T_975_3 = 3.182446305284263  # Student t quantile t_{0.975, 3} (scipy.stats.t.ppf(0.975, 3); statistical tables)


@pytest.fixture(scope="module")
def lab(tiny_corpus, tmp_path_factory):
    """Checkpoint folder (a tiny 2-step checkpoint + a folder of WAVs), results folder,
    settings and a renderer shared by the module."""
    from core.train import Trainer

    root = tmp_path_factory.mktemp("lab")
    run = Trainer(tiny_config(tiny_corpus, steps=2, checkpoint_every=2, val_every=2), root / "run",
                  progress=False).fit()
    ckdir = root / "checkpoints"
    (ckdir / "recorded").mkdir(parents=True)
    shutil.copy(run, ckdir / "tiny.pt")
    t = np.arange(int(0.5 * 22050)) / 22050
    for sid in ("s01", "s02"):
        sf.write(ckdir / "recorded" / f"{sid}.wav", 0.2 * np.sin(2 * np.pi * 440 * t), 22050)
    settings = StudioSettings(checkpoint_dirs=(ckdir,), results_dir=root / "results", device="cpu")
    return {"settings": settings, "checkpoint": str(ckdir / "tiny.pt"), "wavs": str(ckdir / "recorded"),
            "renderer": StimulusRenderer("cpu")}


def experimenter(lab, store=None):
    return ExperimenterView(lab["settings"], store or ResultsStore(lab["settings"].results_dir), lab["renderer"])


def define(view, lab, label, **form):
    view.form.param.update(label=label, checkpoint=lab["checkpoint"], vocoder="griffin-lim", **form)
    return view.add_condition()


def render_and_wait(view) -> str:
    assert view.render(), view.message
    assert view.runner.wait(120)
    assert view.progress == 100, view.message
    return view.last_test


@pytest.fixture(scope="module")
def mos_test(lab):
    view = experimenter(lab)
    view.param.update(test_type="mos", test_name=TEST_NAME, sentences=SENTENCES)
    assert define(view, lab, ALPHA, steps=2, seed=1) is not None
    assert define(view, lab, BETA, steps=3, solver="heun", seed=2) is not None
    tid = render_and_wait(view)
    return {"test_id": tid, "view": view}


@pytest.fixture(scope="module")
def ab_test(lab):
    view = experimenter(lab)
    view.param.update(test_type="ab", test_name=TEST_NAME, sentences=SENTENCES)
    define(view, lab, ALPHA, steps=2, seed=3)
    view.form.param.update(label=BETA, source="folder", folder=lab["wavs"])
    assert view.add_condition() is not None, view.message
    view.param.update(gold_kinds=["identical"], gold_reference=ALPHA, gold_sentences=1)
    tid = render_and_wait(view)
    return {"test_id": tid, "view": view}


@pytest.fixture
def store(lab, tmp_path):
    """A private copy of the module's results database (stimuli stay where they are)."""
    src = sqlite3.connect(lab["settings"].results_dir / "results.sqlite")
    (tmp_path / "results").mkdir()
    dst = sqlite3.connect(tmp_path / "results" / "results.sqlite")
    src.backup(dst)
    src.close(), dst.close()
    s = ResultsStore(tmp_path / "results")
    yield s
    s.close()


def labels_of(store, test_id):
    return {s.stimulus_id: s.condition for s in store.stimuli(test_id)}


def play(view, fraction=1.0, clips=None, token_shift=0):
    """Send the browser's play + ended messages for the current trial's clips."""
    n = len(view.session.current.clips)
    for i in (range(n) if clips is None else clips):
        player = view.players[i]
        player._handle_msg({"event": "play", "token": player.token + token_shift, "heard": 0, "duration": 0.8})
        player._handle_msg({"event": "ended", "token": player.token + token_shift, "heard": 0.8 * fraction,
                            "duration": 0.8})


def rated_csv(results_view):
    rows = list(csv.reader(io.StringIO(results_view.csv_file().read().decode("utf-8"))))
    assert tuple(rows[0]) == CSV_COLUMNS
    return [dict(zip(CSV_COLUMNS, r)) for r in rows[1:]]


# --------------------------------------------------------------------------- end to end


def test_mos_test_from_experimenter_to_csv(lab, mos_test, store):
    tid = mos_test["test_id"]
    exp = mos_test["view"]
    assert f"?test={tid}" in exp.message and f"?test={tid}" in exp.tests_pane.object
    assert "ready" in exp.tests_pane.object and "griffin-lim" in exp.tests_pane.object
    stimuli = store.stimuli(tid)
    assert len(stimuli) == 4 and {s.condition for s in stimuli} == {ALPHA, BETA}
    assert all(s.provenance["render"]["vocoder"] == "griffin-lim" for s in stimuli)
    labels = labels_of(store, tid)
    plan = {"r1": {ALPHA: 5, BETA: 2}, "r2": {ALPHA: 4, BETA: 1}}
    for rater, scores in plan.items():
        view = RaterView(store)
        view.refresh_tests()
        assert tid in view.test_select.options.values()
        assert view.start(rater, tid), view.message
        assert view.status == "### Trial 1 of 4"
        while view.session.current is not None:
            assert all(b.disabled for b in view.mos_buttons.values())
            play(view)
            assert not any(b.disabled for b in view.mos_buttons.values())
            clip = view.session.current.clips[0]
            assert view.rate(scores[labels[clip.stimulus_id]]), view.message
        assert view.status.startswith("### All 4 trials are rated -- thank you!") and view.progress.value == 4
        assert view.session.completion_code in view.status and len(view.session.completion_code) == 9
    results = ResultsView(store)
    results.test_id = tid
    assert results.counts.n_raters == 2 and results.counts.n_ratings == 8 and results.counts.n_sessions_done == 2
    mos = results.mos.set_index("condition")
    half = T_975_3 * math.sqrt(1 / 3) / 2  # scores {5, 5, 4, 4} and {2, 2, 1, 1}: sample std sqrt(1/3), n = 4
    for label, mean in ((ALPHA, 4.5), (BETA, 1.5)):
        assert mos.loc[label, "n"] == 4 and mos.loc[label, "raters"] == 2
        assert mos.loc[label, "mean"] == pytest.approx(mean)
        assert mos.loc[label, "std"] == pytest.approx(math.sqrt(1 / 3))
        assert mos.loc[label, "ci95_low"] == pytest.approx(mean - half)
        assert mos.loc[label, "ci95_high"] == pytest.approx(mean + half)
    assert results.plot_pane.visible and results.mos_pane.visible and not results.ab_pane.visible
    rows = rated_csv(results)
    assert len(rows) == 8 and results.download.filename == f"{tid}.csv"
    for row in rows:
        assert row["test_id"] == tid and row["test_type"] == "mos" and row["condition"] == labels[row["stimulus_id"]]
        assert int(row["score"]) == plan[row["rater_id"]][row["condition"]]
        assert row["play_count"] == "1" and row["listened_to_end"] == "true"
        assert row["checkpoint_sha256"] and float(row["response_time_s"]) >= 0


def test_ab_test_with_gold_and_cmos(lab, ab_test, store):
    tid = ab_test["test_id"]
    labels = labels_of(store, tid)
    for rater in ("r1", "r2"):
        view = RaterView(store)
        assert view.start(rater, tid)
        assert view.status == "### Trial 1 of 3"  # 2 sentences x 1 pair + 1 gold pair
        answered_none = False
        while (trial := view.session.current) is not None:
            a, b = (labels[c.stimulus_id] for c in trial.clips)
            play(view)
            alpha_side = "A" if a == ALPHA else "B"
            if a == b:  # the gold pair: the same clip twice
                choice = "none" if rater == "r1" else "A"
            elif rater == "r1" or answered_none:
                choice = alpha_side
                if rater == "r2":  # with a CMOS: alpha clearly better
                    view.cmos_toggle.value = True
                    view.cmos_slider.value = -2 if alpha_side == "A" else 2
            else:
                choice, answered_none = "none", True
            assert view.choose(choice), view.message
    results = ResultsView(store)
    results.test_id = tid
    ab = results.ab
    assert len(ab) == 1
    row = ab.iloc[0]
    assert (row["first"], row["second"]) == (ALPHA, BETA)
    assert (row["prefer_first"], row["prefer_second"], row["no_preference"]) == (3, 0, 1)
    assert row["share_first"] == pytest.approx(0.75) and row["share_second"] == 0
    assert row["p_value"] == pytest.approx(0.25)  # exact two-sided binomial: 2 * 0.5 ** 3
    assert row["cmos_n"] == 1 and row["cmos_mean"] == pytest.approx(-2.0)  # second vs first
    gold = results.gold.set_index("rater")
    assert gold.loc["r1", "passed"] == 1 and gold.loc["r2", "passed"] == 0
    rows = rated_csv(results)
    assert len(rows) == 6
    for r in rows:
        side_a, side_b = labels[r["stimulus_id_a"]], labels[r["stimulus_id_b"]]
        assert (r["condition_a"], r["condition_b"]) == (side_a, side_b)
        chosen = {"A": side_a, "B": side_b, "none": ""}[r["choice"]]
        assert r["chosen_condition"] == chosen and r["condition"] == "" and r["stimulus_id"] == ""
        assert (r["play_count_a"], r["play_count_b"]) == ("1", "1")
        assert r["trial_type"] == ("gold" if side_a == side_b else "ab")
        assert r["gold_expected"] == ("choice=none" if side_a == side_b else "")
        if side_a == ALPHA:  # rendered from the checkpoint: the real vocoder, never "auto"
            assert r["vocoder_a"] == "griffin-lim" and json.loads(r["settings_json_a"])["vocoder"] == "griffin-lim"


# --------------------------------------------------------------------------- the rater's page


def test_rating_before_hearing_every_clip_to_the_end_is_refused(ab_test, mos_test, store):
    view = RaterView(store)
    assert view.start("impatient", mos_test["test_id"])
    assert not view.rate(4)
    assert view.message_pane.visible and "play the clip to the end" in view.message_pane.object
    play(view, fraction=0.5)  # ended, but half of it skipped
    assert all(b.disabled for b in view.mos_buttons.values())
    assert "without skipping" in view.message and not view.rate(4)
    play(view, token_shift=-1)  # a late event of the previous clip changes nothing
    assert all(b.disabled for b in view.mos_buttons.values())
    view.players[0]._handle_msg({"event": "ended", "token": "x"})  # malformed: ignored
    view.players[0]._handle_msg(["junk"])
    play(view)
    assert not view.message_pane.visible and view.rate(4)
    assert view.status == "### Trial 2 of 4" and len(store.ratings(mos_test["test_id"])) == 1

    ab = RaterView(store)
    assert ab.start("impatient", ab_test["test_id"])
    play(ab, clips=[0])
    assert all(b.disabled for b in ab.ab_buttons.values())
    assert not ab.choose("A") and "clip B" in ab.message
    play(ab, clips=[1])
    ab.cmos_toggle.value, ab.cmos_slider.value = True, 2
    assert not ab.choose("A") and "contradicts" in ab.message  # the store's check, shown
    assert ab.choose("B")


def test_a_rater_resumes_where_they_left_off(mos_test, store):
    first = RaterView(store)
    assert first.start("returning", mos_test["test_id"])
    play(first)
    first.rate(3)
    order = first.session.session_id
    again = RaterView(store)  # the browser was closed and opened again
    assert again.start(" returning ", mos_test["test_id"])
    assert again.session.session_id == order and again.status == "### Trial 2 of 4"
    assert not RaterView(store).start("", mos_test["test_id"])
    fixed = RaterView(store, user="returning", test_id=mos_test["test_id"])
    assert fixed.rater_input.disabled and not fixed.test_select.visible
    assert fixed.start("someone-else") and fixed.session.rater_id == "returning"  # the signed-in user wins
    missing = RaterView(store, test_id="nosuchtest")
    assert not missing.start("x") and "link is not valid" in missing.message
    assert "nosuchtest" not in missing.message and "sqlite" not in missing.message  # no internals for raters


def document_text(viewable) -> str:
    doc = Document()
    doc.add_root(pn.panel(viewable).get_root(doc))
    return serialize_json(doc.to_json())


def test_the_rater_page_names_no_condition(lab, mos_test, ab_test, store):
    forbidden = [ALPHA, BETA, TEST_NAME, "tiny.pt", "recorded", "checkpoints", str(lab["settings"].results_dir),
                 "stimuli", "heun", "griffin"]
    for tid in (mos_test["test_id"], ab_test["test_id"]):
        view = RaterView(store)
        text = document_text(view)
        assert view.start("inspector", tid)
        while view.session.current is not None:
            text += document_text(view)
            assert all(p.src.startswith("data:audio/wav;base64,") for p in view.players if p.src)
            play(view)
            view.rate(3) if view.session.test_type == "mos" else view.choose("none")
        text += document_text(view)
        for word in forbidden:
            assert word not in text, word
        assert "data:audio/wav;base64," in text and "Trial 1 of" in text
    assert set(RaterView(store).test_select.options) == {f"Test {mos_test['test_id']}", f"Test {ab_test['test_id']}"}


def test_roles_decide_which_tabs_a_page_gets(lab, monkeypatch):
    settings = lab["settings"]
    tabs = build_listening_tabs(settings, user=None, test_id=None)
    assert [t for t, _ in tabs] == ["Experimenter", "Rate", "Results"]
    assert [t for t, _ in build_listening_tabs(settings, user=None, test_id="abc")] == ["Rate"]
    assert rater_mode("alice", None, env={}) and rater_mode("alice", None, env={"FLOWTTS_EXPERIMENTERS": "bob"})
    assert not rater_mode("bob", None, env={"FLOWTTS_EXPERIMENTERS": "alice, bob"})
    assert rater_mode("bob", "abc", env={"FLOWTTS_EXPERIMENTERS": "bob"})
    monkeypatch.setenv("FLOWTTS_EXPERIMENTERS", "bob")
    assert [t for t, _ in build_listening_tabs(settings, user="bob")] == ["Experimenter", "Rate", "Results"]
    ((title, rate),) = build_listening_tabs(settings, user="carol")
    assert title == "Rate" and rate.user == "carol" and rate.rater_input.value == "carol"


# --------------------------------------------------------------------------- experimenter checks


def test_experimenter_refuses_bad_input_with_a_message(lab, tmp_path):
    view = experimenter(lab, ResultsStore(tmp_path / "res"))
    view.form.param.update(label="outside", source="folder", folder=str(tmp_path))
    assert view.add_condition() is None and "outside the folders" in view.message
    view.form.param.update(source="checkpoint", vocoder="vocos folder", vocos_folder="/etc")
    assert view.add_condition() is None and "outside the folders" in view.message
    view.form.param.update(vocoder="griffin-lim", schedule="power", sway=0.5)
    assert define(view, lab, "one") is not None
    assert define(view, lab, "one") is None and "taken" in view.message
    view.form.param.update(label="", source="folder", folder=lab["wavs"])
    assert view.add_condition().label == "c1"  # blank label: the first free automatic one
    view.sentences = "only|A sentence with an id.\n"
    assert not view.render() and "lacks only.wav" in view.message
    view.sentences = "  \n"
    assert not view.render() and "at least one sentence" in view.message
    view.param.update(sentences=SENTENCES, test_type="ab")
    view.remove_condition("c1")
    assert not view.render() and "at least 2 condition" in view.message
    assert view.store.tests() == []
    view.test_type = "mos"
    assert view.param.gold_kinds.objects == ["anchor"]


def test_parse_sentences_gives_ids_in_order():
    got = parse_sentences("Hello there.\n\nab-1|Named one.\nnot an id|the space makes it text\n")
    assert [(s.id, s.text) for s in got] == [("s01", "Hello there."), ("ab-1", "Named one."),
                                              ("s03", "not an id|the space makes it text")]
    assert [s.id for s in parse_sentences("\n".join(f"line {k}" for k in range(100)))][-1] == "s100"


# --------------------------------------------------------------------------- objective scores


class FakeDNSMOS:
    """Stands in for core.eval.DNSMOS: OVRL = the clip's length in seconds."""

    def __init__(self, threads=1):
        pass

    def __call__(self, audio, sample_rate):
        from core.eval import DNSMOSScore

        return DNSMOSScore(ovrl=len(audio) / sample_rate, sig=0.0, bak=0.0, p808=0.0)


class FakeRecognizer:
    def transcribe(self, audio, sample_rate):
        return "the cat sat on the mat"


@pytest.mark.parametrize("job", ["background", "instant"])
def test_objective_scores_beside_the_human_ones(mos_test, store, monkeypatch, request, job):
    if job == "instant":
        request.getfixturevalue("inline_jobs")
    core_eval = pytest.importorskip("core.eval")
    monkeypatch.setattr(results_ui, "eval_available", lambda: None)
    monkeypatch.setattr(core_eval, "DNSMOS", FakeDNSMOS)  # the real models are tested with core.eval
    monkeypatch.setattr(core_eval, "Recognizer", FakeRecognizer)
    view = ResultsView(store)
    view.test_id = mos_test["test_id"]
    assert view.objective == [] and not view.objective_pane.visible
    assert view.compute_objective() and view.runner.wait(60), view.note
    assert "computed" in view.note and view.objective_pane.visible
    rows = {r.condition: r for r in view.objective}
    assert set(rows) == {ALPHA, BETA}
    for label, row in rows.items():
        seconds = [sf.info(s.path).duration for s in store.stimuli(mos_test["test_id"]) if s.condition == label]
        assert row.clips == 2 and row.dnsmos_ovrl == pytest.approx(np.mean(seconds))
        # "the cat sat on the mat" for both sentences: 0 errors on the first (6 words); the second
        # (5 words) needs 5 substitutions + 1 insertion: WER = 6 / 11
        assert row.wer == pytest.approx(6 / 11)
    monkeypatch.setattr(core_eval, "DNSMOS", None)  # cached per stimulus on disk: nothing is computed again
    again = ResultsView(store)
    again.test_id = mos_test["test_id"]
    assert [(r.condition, r.dnsmos_ovrl, r.wer) for r in again.objective] == [
        (r.condition, r.dnsmos_ovrl, r.wer) for r in view.objective]


def test_a_job_done_at_once_leaves_the_finished_note(lab, inline_jobs):
    view = experimenter(lab)
    view.param.update(test_type="mos", test_name=TEST_NAME, sentences=SENTENCES)
    assert define(view, lab, ALPHA, steps=2, seed=1) is not None
    assert view.render() and view.progress == 100
    assert view.message.startswith("Rendered 2 stimuli"), view.message


def test_a_second_render_while_one_runs_leaves_it_alone(lab, monkeypatch):
    view = experimenter(lab)
    view.param.update(test_type="mos", test_name=TEST_NAME, sentences=SENTENCES)
    assert define(view, lab, ALPHA, steps=2, seed=1) is not None
    view.runner.busy, view.progress = True, 40  # as while another job renders
    assert view.cancel()
    assert not view.render() and "already" in view.message
    assert view.progress == 40 and view._cancel.is_set()  # its progress and cancel request kept
    view.runner.busy = False


def test_objective_scores_are_skipped_with_a_note_without_the_extra(mos_test, store, monkeypatch):
    monkeypatch.setattr(results_ui, "eval_available", lambda: "objective scores need the eval extra (x missing)")
    view = ResultsView(store)
    view.test_id = mos_test["test_id"]
    assert view.objective_button.disabled and "skipped" in view.note
    assert not view.compute_objective()


def test_experimenter_saves_the_design_as_a_test_file(lab, mos_test, ab_test, tmp_path):
    from studio.design_file import read_design

    for made in (mos_test, ab_test):
        view = made["view"]
        path = tmp_path / "design.yaml"
        path.write_text(view.design_yaml())
        assert "Design saved as YAML" in view.message
        design = read_design(path, test_id="from-file")
        page = view.design("from-file")
        assert design == page  # same conditions, sentences, gold and name as the page's design
    view = mos_test["view"]
    view.param.update(subset_per_rater=2, raters_per_item=3, instructions=" Rate it. ", consent="I agree to X.",
                      headphone_check=True)  # balanced subsets and the intro travel with the file
    path.write_text(view.design_yaml())
    design = read_design(path, test_id="from-file")
    assert (design.subset_per_rater, design.raters_per_item) == (2, 3) and design == view.design("from-file")
    assert (design.instructions, design.consent, design.headphone_check) == ("Rate it.", "I agree to X.", True)
    empty = experimenter(lab)
    assert empty.design_yaml() == "" and "Cannot save the design" in empty.message
