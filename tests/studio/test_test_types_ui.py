"""The new test types through the pages, without a browser: the Experimenter defines and
renders each type from folders of WAVs; a rater completes it through the rater page's
methods and the players' messages (as the browser sends them); the CSV holds the rows."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import soundfile as sf

from studio.config import StudioSettings
from studio.experimenter_ui import ExperimenterView
from studio.rater_ui import RaterView
from studio.results import ResultsStore

LABELS = ("ref-voice", "sys-one", "sys-two")  # '-' cannot occur inside hex ids or base64 by chance
SENTENCES = "s01|The cat sat on the mat.\ns02|A dog ran far away."


@pytest.fixture
def lab(tmp_path):
    root = tmp_path / "lab"
    t = np.arange(int(0.3 * 16000)) / 16000
    for k, label in enumerate(LABELS):
        (root / label).mkdir(parents=True)
        for sid in ("s01", "s02"):
            sf.write(root / label / f"{sid}.wav", 0.2 * np.sin(2 * np.pi * (300 + 200 * k) * t), 16000)
    settings = StudioSettings(checkpoint_dirs=(root,), results_dir=tmp_path / "results", device="cpu")
    return settings, ResultsStore(settings.results_dir), root


def render(lab, test_type, labels=LABELS, **options) -> tuple:
    settings, store, root = lab
    view = ExperimenterView(settings, store, render=None)
    view.param.update(test_type=test_type, sentences=SENTENCES, **options)
    for label in labels:
        view.form.param.update(label=label, source="folder", folder=str(root / label))
        assert view.add_condition() is not None, view.message
    assert view.render(), view.message
    assert view.runner.wait(60)
    assert view.progress == 100, view.message
    return view.last_test, store


def play_all(page):
    for player in page.players[:len(page.session.current.clips)]:
        player._handle_msg({"event": "play", "token": player.token, "heard": 0, "duration": 0.3})
        player._handle_msg({"event": "ended", "token": player.token, "heard": 0.3, "duration": 0.3})


def rows_of(store, tid):
    buf = io.StringIO()
    store.export_csv(tid, buf)
    return list(csv.DictReader(io.StringIO(buf.getvalue())))


def labels_of(store, tid):
    return {s.stimulus_id: s.condition for s in store.stimuli(tid)}


def test_experimenter_offers_every_type_and_needs_a_reference_where_one_is_due(lab):
    settings, store, root = lab
    view = ExperimenterView(settings, store, render=None)
    assert view.param.test_type.objects == ["mos", "ab", "mushra", "abx", "smos", "dcr", "intelligibility"]
    view.param.update(test_type="smos", sentences=SENTENCES)
    for label in LABELS[:2]:
        view.form.param.update(label=label, source="folder", folder=str(root / label))
        view.add_condition()
    assert view.reference == LABELS[0]  # the first condition until another is picked
    view.reference = LABELS[1]
    assert view.design("x").reference == LABELS[1]
    view.test_type = "mos"
    assert view.design("x").reference == ""  # not a reference type: none stored
    assert "reference" not in view.design_yaml()


def test_mushra_on_the_page(lab):
    tid, store = render(lab, "mushra", reference=LABELS[0], anchor_7khz=True)
    page = RaterView(store)
    assert page.start("rater-1", tid)
    labels = labels_of(store, tid)
    assert page.mushra_box.visible and not page.mos_box.visible
    assert len(page.session.current.clips) == 6  # reference + hidden reference, 2 systems, 2 anchors
    assert page.mushra_button.disabled
    play_all(page)
    assert not page.mushra_button.disabled
    page.sliders[1].value = 80
    assert not page.submit_mushra() and "rate every clip, the hidden reference too" in page.message
    value = {LABELS[0]: 100, LABELS[1]: 70, LABELS[2]: 50, "anchor:lp3500": 10, "anchor:lp7000": 30}
    for _ in range(2):
        clips = page.session.current.clips
        for i, clip in enumerate(clips[1:], 1):
            page.sliders[i].value = value[labels[clip.stimulus_id]]
        play_all(page)
        assert page.submit_mushra(), page.message
    assert page.session.done
    rows = rows_of(store, tid)
    assert len(rows) == 10 and all(int(r["score"]) == value[r["condition"]] for r in rows)


def test_abx_on_the_page(lab):
    tid, store = render(lab, "abx", labels=LABELS[1:])
    page = RaterView(store)
    assert page.start("rater-1", tid)
    assert page.abx_box.visible and [page.player_titles[i].object for i in range(3)] == ["**A**", "**B**", "**X**"]
    assert not page.choose("A") and "to the end" in page.message
    for _ in range(2):
        play_all(page)
        key = store.session(page.session.session_id).order[page.session.position].key
        assert page.choose(key), page.message
    assert [r["correct"] for r in rows_of(store, tid)] == ["true", "true"]


@pytest.mark.parametrize("kind", ["smos", "dcr"])
def test_reference_scored_types_on_the_page(lab, kind):
    tid, store = render(lab, kind, reference=LABELS[0])
    page = RaterView(store)
    assert page.start("rater-1", tid)
    assert page.player_titles[0].object == "**Reference**" and page.player_titles[1].object == "**Clip**"
    expected = {"smos": "5 Extremely similar", "dcr": "5 Inaudible"}[kind]
    assert page.mos_buttons[5].label == expected
    for _ in range(4):  # 2 rated conditions x 2 sentences
        play_all(page)
        assert page.rate(4), page.message
    assert page.session.done and {r["score"] for r in rows_of(store, tid)} == {"4"}


def test_intelligibility_on_the_page_hides_the_sentence(lab):
    tid, store = render(lab, "intelligibility")
    page = RaterView(store)
    assert page.start("rater-1", tid)
    assert page.intelligibility_box.visible and not page.text_pane.visible
    play_all(page)
    assert not page.submit_transcript() and "type what you heard" in page.message
    for _ in range(2):
        trial = store.session(page.session.session_id).order[page.session.position]
        page.transcript_input.value = trial.text.upper()  # case and punctuation do not count
        play_all(page)
        assert page.submit_transcript(), page.message
    assert [float(r["wer"]) for r in rows_of(store, tid)] == [0.0, 0.0]


def test_keyboard_shortcuts_play_and_answer(lab):
    tid, store = render(lab, "smos", reference=LABELS[0])
    page = RaterView(store)
    assert page.start("rater-1", tid)
    assert page.shortcut("r") and page.players[0].play_request == 1  # R: the reference
    assert page.shortcut("p") and page.players[1].play_request == 1  # P: the clip
    assert not page.shortcut("a")  # no clip A in an SMOS trial
    assert not page.shortcut("4")  # nothing heard yet: the buttons are disabled
    play_all(page)
    assert page.shortcut("4") and page.session.answered == 1
    assert [r["score"] for r in rows_of(store, tid)] == ["4"]
    page.keys._handle_msg({"key": "b"})  # as the browser sends it: no clip B here, nothing happens
    assert [p.play_request for p in page.players[:2]] == [1, 1]  # unchanged
    page.keys._handle_msg({"key": "r"})
    assert page.players[0].play_request == 2


def test_practice_trial_on_the_page(lab):
    tid, store = render(lab, "dcr", reference=LABELS[0], practice=True)
    page = RaterView(store)
    assert page.start("rater-1", tid)
    assert page.status.startswith("### Practice trial (not counted)")
    play_all(page)
    assert page.rate(1)
    assert page.status == "### Trial 1 of 4"
    for _ in range(4):
        play_all(page)
        assert page.rate(5)
    assert page.status.startswith("### All 4 trials are rated")


def test_results_page_and_statistics_tables_of_the_new_types(lab):
    from studio.results_ui import ResultsView
    from studio.stats_report import test_statistics
    from studio.stats_ui import estimate_frame, raters_frame

    tid, store = render(lab, "mushra", reference=LABELS[0])
    page = RaterView(store)
    assert page.start("rater-1", tid)
    while page.session.current is not None:
        for i in range(1, len(page.session.current.clips)):
            page.sliders[i].value = 40
        play_all(page)
        assert page.submit_mushra(), page.message
    results = ResultsView(store)
    results.test_id = tid
    results.refresh()
    assert set(results.mos["condition"]) == {*LABELS, "anchor:lp3500"}
    fig = results.plot_pane.object
    assert (fig.y_range.start, fig.y_range.end) == (-4, 104) and "MUSHRA" in fig.title.text
    stats = test_statistics(store, tid, n_boot=10)
    assert list(estimate_frame(stats)["mean"]) == [40.0] * 4
    assert raters_frame(stats)["hidden_ref_low"].tolist() == [1.0]  # 40 < 90 on every trial: flagged
    assert stats["flagged_raters"] == ["rater-1"]
    tid, store = render(lab, "abx", labels=LABELS[1:])
    frame = estimate_frame(test_statistics(store, tid, n_boot=10))
    assert list(frame.columns)[:3] == ["subset", "first", "second"] and frame.empty
