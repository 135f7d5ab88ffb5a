"""The studio fixes of issue 13, without a browser: a rater resumes after several
answers, the experimenter refuses out-of-range numbers typed into its boxes (no silent
revert), renders again in place, cancels and archives, the results page follows the
store, uploads and unreadable text get clear words, the first checkpoint read cannot
leave the page busy, and two sessions share one loaded model."""

from __future__ import annotations

import shutil
import threading
import time

import numpy as np
import panel as pn
import pytest

from conftest import tiny_config
from studio.config import BundledVoice, StudioSettings
from studio.experimenter_ui import ExperimenterView
from studio.explorer_ui import CompareView, Explorer, SynthesisService, looks_like_checkpoint
from studio.jobs import JobRunner
from studio.listening import Condition, Sentence, TestDesign, render_stimuli
from studio.rater_ui import RaterView, rater_tests
from studio.stimulus_renderer import StimulusRenderer
from studio.results import ResultsStore
from studio.results_ui import ResultsView
from studio.synthesis import SynthesizerPool

WAIT = 120


@pytest.fixture(scope="module")
def trained(tiny_corpus, tmp_path_factory):
    from core.train import Trainer

    from core.config import merge

    out = tmp_path_factory.mktemp("fix_run")
    cfg = merge(tiny_config(tiny_corpus, steps=2, checkpoint_every=2, val_every=2), {"text": {"tokenizer": "chars"}})
    return Trainer(cfg, out, progress=False).fit()  # chars, as the demo voice: it knows its alphabet


@pytest.fixture
def settings(trained, tmp_path):
    ckdir = tmp_path / "checkpoints"
    ckdir.mkdir()
    shutil.copy(trained, ckdir / "demo.pt")  # a name Markdown would auto-link (.pt is a top-level domain)
    return StudioSettings(checkpoint_dirs=(ckdir,), results_dir=tmp_path / "results",
                          bundled_voices=(BundledVoice("demo", tmp_path / "none.pt", "demo voice (bundled)"),), device="cpu")


def tones_test(tmp_path, store, test_id="tones6", n_sentences=6):
    """A MOS test of 6 trials from a folder of short tones (no model needed)."""
    import soundfile as sf

    folder = tmp_path / "tones"
    folder.mkdir(exist_ok=True)
    t = np.arange(int(0.2 * 16000)) / 16000
    sentences = tuple(Sentence(f"s{k}", f"Sentence number {k}.") for k in range(n_sentences))
    for s in sentences:
        sf.write(folder / f"{s.id}.wav", 0.2 * np.sin(2 * np.pi * 300 * t), 16000)
    design = TestDesign(test_id, "mos", (Condition("tone", folder=str(folder)),), sentences)
    render_stimuli(design, store, tmp_path / "results")
    return design


def answer(view, score=3):
    for i in range(len(view.session.current.clips)):
        player = view.players[i]
        player._handle_msg({"event": "play", "token": player.token, "heard": 0, "duration": 0.2})
        player._handle_msg({"event": "ended", "token": player.token, "heard": 0.2, "duration": 0.2})
    assert view.rate(score), view.message


# ----------------------------------------------------------------------------- rater resume


@pytest.mark.parametrize("answered", [1, 2, 3, 5])
def test_a_rater_resumes_after_several_answers(tmp_path, answered):
    store = ResultsStore(tmp_path / "results")
    tones_test(tmp_path, store)
    first = RaterView(store, test_id="tones6")
    assert first.start("ann")
    for _ in range(answered):
        answer(first)
    # the browser is closed; the same link and rater id come back (a new page, a new bar with max=1)
    again = RaterView(store, test_id="tones6")
    assert again.start("ann"), again.message
    assert again.status == f"### Trial {answered + 1} of 6"
    assert (again.progress.max, again.progress.value, again.progress.visible) == (6, answered, True)
    assert not again.rater_input.disabled or again.session is not None
    while again.session.current is not None:
        answer(again)
    assert again.status.startswith("### All 6 trials are rated -- thank you!")
    rows = [r for r in store.ratings("tones6") if r.rater_id == "ann"]
    assert sorted(r.trial_index for r in rows) == list(range(6))  # six ratings, no duplicates


def test_rater_messages_are_plain_and_archived_tests_are_closed(tmp_path):
    store = ResultsStore(tmp_path / "results")
    tones_test(tmp_path, store)
    store.create_test("mos", "never rendered", {}, test_id="empty1")
    for tid, words in (("nosuch", "link is not valid"), ("empty1", "not ready yet")):
        view = RaterView(store, test_id=tid)
        assert not view.start("bob") and words in view.message
        assert tid not in view.message and str(tmp_path) not in view.message and "render" not in view.message
    store.archive_test("tones6")
    closed = RaterView(store, test_id="tones6")
    assert not closed.start("bob") and "closed" in closed.message
    assert rater_tests(store) == []


# ----------------------------------------------------------------------------- experimenter


def experimenter(settings, tmp_path, render=None):
    return ExperimenterView(settings, ResultsStore(settings.results_dir), render or StimulusRenderer("cpu"))


def widget_of(layout, param_name):
    """The widget of the page bound to the form parameter ``param_name``."""
    for w in layout.select(pn.widgets.Widget):
        if getattr(w, "name", None) and w.name.lower().replace(" ", "_") == param_name:
            return w
    raise AssertionError(f"no widget for {param_name}")


@pytest.mark.parametrize("name, value, words", [
    ("steps", 0, "steps must be an integer in 1..1000, got 0"),
    ("steps", -5, "steps must be an integer in 1..1000, got -5"),
    ("steps", 100000, "steps must be an integer in 1..1000, got 100000"),
    ("cfg", 100.0, "cfg must be a number in [0.0, 10.0], got 100.0"),
    ("duration_scale", 0.0, "duration_scale must be a number in [0.25, 4.0], got 0.0"),
    ("temperature", -3.0, "temperature must be a number in [0.0, 2.0], got -3.0"),
    ("sway", 5.0, "sway must be a number in [-1.0, 1.0], got 5.0"),
    ("seed", -1, "seed must be an integer in 0..2147483647, got -1"),
])
def test_out_of_range_numbers_are_refused_with_the_range(settings, tmp_path, name, value, words):
    view = experimenter(settings, tmp_path)
    layout = view.__panel__()
    widget = widget_of(layout, name)
    widget.value = value  # typed into the box: it reaches the form as typed
    assert getattr(view.form, name) == value
    assert view.add_condition() is None
    assert view.message == f"Condition not added: {words}" and view.conditions == []


def test_speaker_and_vocoder_are_choices_like_the_explorer(settings, tmp_path):
    view = experimenter(settings, tmp_path)
    assert view.form.param.vocoder.objects == ["auto", "griffin-lim", "vocos folder"]
    assert view.form.param.speaker.objects == ["(first speaker)", "alice", "bob"]  # the tiny corpus's speakers
    with pytest.raises(ValueError):
        view.form.vocoder = "banana"  # not a choice: it can no longer become a folder path
    view.form.param.update(label="bob voice", speaker="bob", vocoder="griffin-lim", steps=2)
    cond = view.add_condition()
    assert cond.settings["speaker"] == "bob" and cond.settings["vocoder"] == "griffin-lim"
    assert "`demo.pt`" in view.conditions_pane.object  # code, not an auto-link


def test_failed_render_is_retried_in_place_cancelled_and_archived(settings, tmp_path):
    calls, gate = [], threading.Event()
    real = StimulusRenderer("cpu")

    def flaky(cond, text, seed):
        calls.append(text)
        if len(calls) == 2:
            raise ValueError("disk full (simulated)")
        if len(calls) >= 5:
            gate.wait(WAIT)
        return real(cond, text, seed)

    view = experimenter(settings, tmp_path, flaky)
    view.param.update(test_type="mos", sentences="One.\nTwo.\nThree.")
    view.form.param.update(label="a", vocoder="griffin-lim", steps=1)
    assert view.add_condition() is not None, view.message
    assert view.render() and view.runner.wait(WAIT)
    tid = view.last_test or view.picked_test
    assert "stopped: disk full" in view.message and "Render again" in view.message
    assert [t.test_id for t in view.store.tests()] == [tid] and len(view.store.stimuli(tid)) == 1
    assert "incomplete" in view.tests_pane.object
    # render again in place: same id, only the missing clips
    assert view.render_again(tid) and view.runner.wait(WAIT)
    assert [t.test_id for t in view.store.tests()] == [tid] and len(view.store.stimuli(tid)) == 3
    assert view.progress == 100 and "ready" in view.tests_pane.object and len(calls) == 4
    # cancel a long render: it stops before the next clip and keeps what it made
    view.form.param.update(label="b", steps=2)
    view.add_condition()
    assert view.render()
    while len(calls) < 5:
        time.sleep(0.05)
    assert view.cancel()
    gate.set()
    assert view.runner.wait(WAIT) and "cancelled" in view.message
    second = next(t.test_id for t in view.store.tests() if t.test_id != tid)
    assert len(view.store.stimuli(second)) == 1
    # archive: gone from the lists, ratings and stimuli kept
    assert view.archive(second)
    assert second not in view.tests_pane.object and view.store.test(second).archived
    assert not view.cancel() and "No render" in view.message


def test_results_follow_the_store_and_skip_unfinished_tests(tmp_path):
    store = ResultsStore(tmp_path / "results")
    tones_test(tmp_path, store, "done1")
    results = ResultsView(store)
    assert results.test_id == "done1" and not results.poll()
    store.create_test("mos", "half rendered", {}, test_id="half1")  # newer, but nothing to rate
    assert results.poll() and results.test_id == "done1" and "half1" in results.param.test_id.objects.values()
    rater = RaterView(store, test_id="done1")
    assert rater.start("zed")
    answer(rater, 5)
    assert results.counts.n_ratings == 0 and results.poll()  # a new rating: re-read by itself
    assert results.counts.n_ratings == 1 and results.mos.iloc[0]["mean"] == 5
    store.archive_test("half1")
    assert results.poll() and "half1" not in results.param.test_id.objects.values()


# ----------------------------------------------------------------------------- explorer


def test_uploads_that_are_not_checkpoints_say_so(settings):
    ex = Explorer(SynthesisService(settings, pool=SynthesizerPool("cpu")))
    rng = np.random.default_rng(0)
    ex.upload_input.filename = "noise.pt"
    ex.upload_input.value = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    assert "upload noise.pt: not a checkpoint file" in ex.alert and "pickled" not in ex.alert
    ex.upload_input.filename = "empty.pt"
    ex.upload_input.value = b""  # an empty file is reported, not ignored
    assert "upload empty.pt: the file is empty" in ex.alert
    assert looks_like_checkpoint(b"PK\x03\x04rest") and not looks_like_checkpoint(b"hello world, no checkpoint")


def test_text_the_voice_cannot_read_gives_a_warning(settings):
    service = SynthesisService(settings, pool=SynthesizerPool("cpu"))
    ex = Explorer(service)
    assert service.runner.wait(WAIT)
    ex.controls.param.update(vocoder="griffin-lim", steps=1)
    ex.text = "red 你好 🙂"
    assert ex.generate() and service.runner.wait(WAIT)
    assert "no symbol for '你' '好' '🙂'" in ex.text_warning and "the model read: 'red 你好 🙂'" in ex.text_warning
    s = ex.clip.rendered.synthesis
    assert s.settings["unknown_symbols"] == ["你", "好", "🙂"] and s.warnings
    ex.text = "red"  # every character known to the voice (the tiny corpus speaks colour words)
    assert ex.generate() and service.runner.wait(WAIT)
    assert ex.text_warning == "" and ex.clip.rendered.synthesis.settings["normalized_text"] == "red"


def test_bad_seed_is_refused_and_grid_preview_and_tooltips(settings):
    service = SynthesisService(settings, pool=SynthesizerPool("cpu"))
    ex = Explorer(service)
    assert service.runner.wait(WAIT)
    ex.seed = -4
    assert not ex.generate() and "seed must be an integer in 0..2147483647, got -4" in ex.alert
    # before the first clip the time-grid plot shows what the settings select
    ex.controls.param.update(schedule="power", steps=4)
    np.testing.assert_allclose(ex.clip.grid_source.data["t"], [0, 1 / 16, 1 / 4, 9 / 16, 1])  # u ** 2
    ex.controls.param.update(schedule="linear", steps=2)
    np.testing.assert_allclose(ex.clip.grid_source.data["t"], [0, 0.5, 1])
    tips = [w.value for w in pn.panel(ex).select(pn.widgets.TooltipIcon)]
    assert any("guidance" in t for t in tips) and any("sway" in t for t in tips) and any("noise" in t for t in tips)
    selects = [w for w in pn.panel(ex).select(pn.widgets.Select) if w.name == "checkpoint"]
    assert selects and None not in list(selects[0].options.values()) and "None" not in selects[0].options


def test_compare_spectrograms_share_the_time_axis(settings):
    service = SynthesisService(settings, pool=SynthesizerPool("cpu"))
    cmp = CompareView(service)
    assert service.runner.wait(WAIT)
    cmp.a.param.update(vocoder="griffin-lim", steps=1)
    cmp.b.param.update(vocoder="griffin-lim", steps=1, duration_scale=2.0)  # B lasts about twice as long
    assert cmp.generate() and service.runner.wait(WAIT), cmp.alert
    ends = [v.mel.figure.x_range.end for v in (cmp.clip_a, cmp.clip_b)]
    longest = max(v.rendered.synthesis.mel.shape[1] * v.rendered.frame_seconds for v in (cmp.clip_a, cmp.clip_b))
    assert ends[0] == ends[1] == pytest.approx(longest)


def test_two_sessions_share_one_loaded_model(settings):
    pool = SynthesizerPool("cpu")
    pages = [Explorer(SynthesisService(settings, pool=pool)) for _ in range(2)]
    for page in pages:
        assert page.service.runner.wait(WAIT)
        page.controls.param.update(vocoder="griffin-lim", steps=1)
        assert page.generate() and page.service.runner.wait(WAIT), page.alert
    assert pool.loads == 1  # the second tab reused the first tab's model
    renderer = StimulusRenderer(pool=pool)  # and listening-test stimuli do too
    renderer(Condition("x", checkpoint=pages[0].controls.checkpoint, settings={"vocoder": "griffin-lim"}), "Hi.", 0)
    assert pool.loads == 1


# ----------------------------------------------------------------------------- first-load race


class RefusingDoc:
    """A document that refuses next-tick callbacks ``refusals`` times (as Bokeh does while
    the server session is half made, or after it was destroyed)."""

    def __init__(self, refusals):
        self.refusals, self.callbacks = refusals, []

    def add_next_tick_callback(self, fn):
        if self.refusals:
            self.refusals -= 1
            raise AttributeError("'ServerSession' object has no attribute '_callbacks'")
        self.callbacks.append(fn)


@pytest.mark.parametrize("refusals", [1, 10 ** 6])
def test_a_refused_hand_over_never_leaves_the_runner_busy(refusals):
    runner, done = JobRunner(), []
    doc = RefusingDoc(refusals)
    runner._run(lambda: 42, lambda out: done.append(out.value), "reading checkpoint", doc)
    for fn in doc.callbacks:  # what the page's thread would run next tick
        fn()
    assert done == [42] and runner._idle.is_set()


def test_the_first_speaker_read_waits_for_the_page(settings, monkeypatch):
    loads = []
    monkeypatch.setattr("studio.jobs.pn.state.onload", lambda cb: loads.append(cb))

    class ServedDoc:
        session_context = object()

    monkeypatch.setattr(type(pn.state), "curdoc", property(lambda self: ServedDoc()), raising=False)
    service = SynthesisService(settings, pool=SynthesizerPool("cpu"))
    from studio.explorer_ui import SynthControls

    SynthControls(service)
    assert not service.runner.busy and len(loads) == 1  # nothing started while the page is built
