"""The explorer and compare pages without a browser: set parameters, call methods,
check plot data and state.  Uses a tiny checkpoint trained for two steps."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import panel as pn
import pytest

import core
from conftest import tiny_config
from studio import plots
from studio.config import BundledVoice, PathRefused, StudioSettings
from studio.explorer_ui import DEFAULT_SPEAKER, CompareView, Explorer, SynthesisService
from studio.jobs import JobRunner

WAIT = 60


@pytest.fixture(scope="module")
def trained(tiny_corpus, tmp_path_factory) -> Path:
    from core.train import Trainer

    out = tmp_path_factory.mktemp("runs") / "tiny"
    cfg = tiny_config(tiny_corpus, steps=2, checkpoint_every=2, val_every=2)
    return Trainer(cfg, out, device="cpu", progress=False).fit()


@pytest.fixture
def settings(trained, tmp_path) -> StudioSettings:
    runs = tmp_path / "runs"
    shutil.copytree(trained.parent.parent, runs / "tiny", ignore=shutil.ignore_patterns("mel_cache"))
    return StudioSettings(checkpoint_dirs=(runs,), results_dir=tmp_path / "results",
                          bundled_voices=(BundledVoice("demo", tmp_path / "assets" / "demo.pt", "demo voice (bundled)"),), device="cpu")


@pytest.fixture
def service(settings) -> SynthesisService:
    svc = SynthesisService(settings)
    yield svc
    assert svc.runner.wait(WAIT)


def _explorer(service: SynthesisService) -> Explorer:
    ex = Explorer(service)
    assert service.runner.wait(WAIT)  # the checkpoint's speakers are read in the background
    ex.controls.param.update(vocoder="griffin-lim", steps=3, schedule="linear")
    return ex


def _generate(page) -> None:
    assert page.generate(), page.alert or page.notice
    assert page.service.runner.wait(WAIT)
    assert page.alert == ""


def test_catalog_and_demo_note(settings, trained):
    svc = SynthesisService(settings)
    ex = Explorer(svc)
    assert svc.runner.wait(WAIT)
    assert list(svc.catalog) == ["runs/tiny/checkpoints/step_00000002.pt"]
    assert ex.controls.checkpoint == str(settings.checkpoint_dirs[0] / "tiny/checkpoints/step_00000002.pt")
    assert "No bundled voice (none of demo.pt is in assets/)" in ex._catalog_note()

    settings.bundled_voices[0].path.parent.mkdir()
    shutil.copy(trained, settings.bundled_voices[0].path)
    svc = SynthesisService(settings)
    ex = Explorer(svc)
    assert svc.runner.wait(WAIT)
    assert list(svc.catalog)[0] == "demo voice (bundled)"
    assert ex.controls.checkpoint == str(settings.bundled_voices[0].path.resolve())
    assert "bundled" not in ex._catalog_note()
    ex.__panel__().get_root()  # the layout builds into Bokeh models


def test_speakers_follow_the_checkpoint(service):
    ex = _explorer(service)
    # the tiny corpus has speakers alice and bob (core.synthetic.make_tone_corpus)
    assert ex.controls.param.speaker.objects == [DEFAULT_SPEAKER, "alice", "bob"]
    assert ex.controls.options()["speaker"] is None
    ex.controls.speaker = "bob"
    assert ex.controls.options()["speaker"] == "bob"
    _generate(ex)
    assert ex.clip.rendered.synthesis.settings["speaker"] == "bob"


def test_generate_fills_audio_mel_grid_and_trajectory(service):
    ex = _explorer(service)
    ex.param.update(text="hello there", seed=7)
    _generate(ex)
    s = ex.clip.rendered.synthesis
    n_mels, frames = s.mel.shape
    assert n_mels == 100 and frames > 0
    np.testing.assert_array_equal(ex.clip.mel.source.data["image"][0], s.mel)
    assert ex.clip.mel.source.data["dw"][0] == pytest.approx(frames * 256 / 24000)
    assert ex.clip.audio.sample_rate == 24000 and len(ex.clip.audio.object) == len(s.audio)
    assert ex.clip.audio.object.dtype == np.int16
    # steps = 3 on the linear grid: 4 states, slider 0..3, showing the last (the mel)
    assert (ex.clip.slider.start, ex.clip.slider.end, ex.clip.slider.value) == (0, 3, 3)
    np.testing.assert_allclose(ex.clip.grid_source.data["t"], [0, 1 / 3, 2 / 3, 1], atol=1e-6)
    np.testing.assert_allclose(ex.clip.velocity_source.data["norm"], plots.velocity_norms(s.trajectory, s.times))
    np.testing.assert_array_equal(ex.clip.frame.source.data["image"][0], s.mel)

    ex.clip.slider.value = 1  # scrub to state 1 (t = 1/3)
    np.testing.assert_array_equal(ex.clip.frame.source.data["image"][0], s.trajectory[1])
    assert ex.clip.grid_marker.data["x"] == [1.0]
    assert ex.clip.grid_marker.data["y"][0] == pytest.approx(1 / 3)
    assert ex.clip.velocity_marker.data["y"][0] == ex.clip.velocity_source.data["norm"][1]

    sha = core.load_checkpoint(ex.controls.checkpoint).sha256
    assert sha in ex.clip.summary.object and "RTF" in ex.clip.summary.object and "NFE 3" in ex.clip.summary.object
    assert ex.clip.settings.object["steps"] == 3 and ex.clip.settings.object["seed"] == 7
    assert ex.clip.settings.object["checkpoint_sha256"] == sha
    assert ex.clip.settings.object["text"] == "hello there"


def test_compare_renders_same_text_and_seed_with_two_settings(service):
    cmp = CompareView(service)
    assert service.runner.wait(WAIT)
    for side in (cmp.a, cmp.b):
        side.param.update(vocoder="griffin-lim", steps=2, schedule="linear")
    cmp.b.solver = "heun"
    cmp.param.update(text="same words", seed=3)
    _generate(cmp)
    a, b = cmp.clip_a.rendered.synthesis, cmp.clip_b.rendered.synthesis
    assert (a.nfe, b.nfe) == (2, 4)  # heun: two evaluations a step
    assert a.settings["seed"] == b.settings["seed"] == 3 and a.settings["text"] == b.settings["text"]
    assert cmp.clip_a.slider.disabled  # compare clips carry no trajectory
    cmp.b.solver = "euler"  # identical settings: identical mel (same seed)
    _generate(cmp)
    np.testing.assert_allclose(cmp.clip_a.rendered.synthesis.mel, cmp.clip_b.rendered.synthesis.mel)
    cmp.__panel__().get_root()


def test_second_generate_while_busy_is_refused(service, settings, trained):
    copy = settings.checkpoint_dirs[0] / "zcopy.pt"  # listed after the tiny run
    shutil.copy(trained, copy)
    service.refresh_catalog()
    ex = _explorer(service)
    release = threading.Event()
    assert service.runner.submit(lambda: release.wait(WAIT), lambda out: None, label="blocking")
    assert service.runner.busy
    assert not ex.generate()
    assert "ignored" in ex.notice and "blocking" in ex.notice
    ex.controls.checkpoint = str(copy.resolve())  # its speakers are read once the runner is free
    assert ex.controls.speakers_for is None and ex.controls.param.speaker.objects == [DEFAULT_SPEAKER]
    release.set()
    assert service.runner.wait(WAIT) and not service.runner.busy
    assert ex.controls.speakers_for == str(copy.resolve()) and "bob" in ex.controls.param.speaker.objects
    _generate(ex)
    assert ex.notice == ""


def test_generate_during_a_checkpoint_read_runs_after_it(service, settings, trained, monkeypatch):
    """The browser test's race: a checkpoint is picked, and Generate is clicked before
    the button's disabled state reaches the page.  The click must not be lost."""
    copy = settings.checkpoint_dirs[0] / "zcopy.pt"
    shutil.copy(trained, copy)
    service.refresh_catalog()
    ex = _explorer(service)
    gate = threading.Event()
    real_info = service.info
    monkeypatch.setattr(service, "info", lambda path: (gate.wait(WAIT), real_info(path))[1])
    ex.controls.checkpoint = str(copy.resolve())          # the page starts reading it
    assert service.runner.busy and service.runner.label == "reading checkpoint"
    assert ex.generate() and "starts as soon as it is read" in ex.notice
    assert not ex.generate() and "ignored" in ex.notice  # one waiting request at most
    gate.set()
    assert service.runner.wait(WAIT) and not service.runner.busy
    assert ex.alert == "" and ex.clip.rendered is not None
    assert ex.clip.rendered.synthesis.settings["checkpoint"].endswith("zcopy.pt")
    assert ex._queued is None
    _generate(ex)                                         # and the page works normally afterwards


def test_runner_runs_one_job_and_reports_errors():
    runner = JobRunner(expected=(ValueError,))
    gate, ran, outcomes = threading.Event(), [], []
    assert runner.submit(lambda: (gate.wait(WAIT), ran.append(1)), outcomes.append, label="one")
    for _ in range(10):
        assert not runner.submit(lambda: ran.append(2), outcomes.append)  # refused, not queued
    gate.set()
    assert runner.wait(WAIT)
    assert ran == [1] and outcomes[0].ok and outcomes[0].label == "one"

    def bad_option():
        raise ValueError("steps must be >= 1")

    def bug():
        raise KeyError("oops")

    runner.submit(bad_option, outcomes.append)
    runner.wait(WAIT)
    runner.submit(bug, outcomes.append)
    runner.wait(WAIT)
    assert outcomes[1].error == "steps must be >= 1"
    assert outcomes[2].error == "internal error: KeyError: 'oops'"
    assert not runner.busy and runner.label == ""


@pytest.mark.parametrize("change, words", [
    ({"text": "   "}, ["text is empty"]),
    ({"text": "x" * 2001}, ["over the limit of 2000"]),  # TextError (text.max_chars of the tiny preset)
    ({"schedule": "epss"}, ["epss", "steps 5, 6, 7, 10, 12, 16"]),  # ConfigError from the sampler
    ({"vocoder": "vocos folder", "vocos_folder": "/etc"}, ["outside the folders"]),
    ({"vocoder": "vocos folder", "vocos_folder": "tiny/checkpoints"}, ["config.yaml"]),  # VocoderError
])
def test_errors_show_as_alert_and_the_page_keeps_working(service, change, words):
    ex = _explorer(service)
    for name, value in change.items():
        setattr(ex if name == "text" else ex.controls, name, value)
    if ex.generate():
        assert service.runner.wait(WAIT)
    for word in words:
        assert word in ex.alert
    assert "Traceback" not in ex.alert and ex.clip.rendered is None
    ex.controls.param.update(schedule="linear", vocoder="griffin-lim")
    ex.text = "working again"
    _generate(ex)
    assert ex.clip.rendered is not None


def test_bad_checkpoint_file_shows_checkpoint_error(service, settings, trained):
    bad = settings.checkpoint_dirs[0] / "broken.pt"
    data = trained.read_bytes()
    bad.write_bytes(data[:len(data) // 2])  # truncated
    service.refresh_catalog()
    ex = _explorer(service)
    assert service.catalog["runs/broken.pt"] == ex.controls.checkpoint == str(bad.resolve())  # listed first
    assert "broken.pt" in ex.alert and "not a readable checkpoint" in ex.alert
    assert ex.controls.param.speaker.objects == [DEFAULT_SPEAKER]
    assert not ex.generate() or service.runner.wait(WAIT)
    assert "broken.pt" in ex.alert
    ex.controls.checkpoint = service.catalog["runs/tiny/checkpoints/step_00000002.pt"]
    assert service.runner.wait(WAIT)
    assert ex.alert == "" and "alice" in ex.controls.param.speaker.objects
    _generate(ex)


def test_paths_outside_the_folders_are_refused(service, settings, tmp_path, trained):
    outside = tmp_path / "outside.pt"
    shutil.copy(trained, outside)
    (settings.checkpoint_dirs[0] / "link.pt").symlink_to(outside)
    service.refresh_catalog()
    assert all("link.pt" not in label for label in service.catalog)
    for path in (outside, settings.checkpoint_dirs[0] / "link.pt", settings.checkpoint_dirs[0] / ".." / "outside.pt"):
        with pytest.raises(PathRefused):
            service.synthesizer(str(path), "griffin-lim")
    with pytest.raises(PathRefused):
        service.vocoder_spec("vocos folder", str(tmp_path))
    with pytest.raises(ValueError, match="unknown vocoder 'hub:x'; valid: auto, griffin-lim, vocos folder"):
        service.vocoder_spec("hub:x")


def test_upload_saves_a_good_checkpoint_and_refuses_a_bad_one(service, settings, trained):
    ex = _explorer(service)
    data = trained.read_bytes()
    assert not ex.upload("bad.pt", data[:len(data) // 2])
    assert "upload bad.pt" in ex.alert and "not a readable checkpoint" in ex.alert
    assert not ex.upload("notes.txt", b"x") and ".pt or .safetensors" in ex.alert
    assert not ex.upload("empty.pt", b"") and "empty" in ex.alert
    assert list(settings.uploads_dir.iterdir()) == []  # nothing left behind, no temp files

    assert ex.upload("../../my voice.pt", trained.read_bytes())
    saved = settings.uploads_dir / "my_voice.pt"
    assert saved.is_file() and ex.alert == "" and "uploads/my_voice.pt" in ex.notice
    assert ex.controls.checkpoint == str(saved.resolve()) and "uploads/my_voice.pt" in service.catalog
    assert service.runner.wait(WAIT)
    assert ex.upload("my voice.pt", trained.read_bytes())  # same name again: kept apart by hash
    assert len(list(settings.uploads_dir.glob("my_voice*.pt"))) == 2
    assert service.runner.wait(WAIT)
    ex.upload_input.filename = "bad2.pt"
    ex.upload_input.value = b"junk"  # the widget path
    assert "upload bad2.pt" in ex.alert and "Traceback" not in ex.alert
    _generate(ex)
    assert ex.clip.rendered.synthesis.settings["checkpoint"].endswith(".pt")


def test_audio_goes_to_the_player_as_int16_without_wrapping():
    from studio.clip_ui import int16_audio

    out = int16_audio(np.array([1.0, -1.0, 0.5, 2.0, 0.0], dtype=np.float32))
    assert out.dtype == np.int16 and out.tolist() == [32767, -32767, 16384, 32767, 0]


def test_widgets_build(service):
    ex = _explorer(service)
    controls = ex.controls.widgets()
    assert controls[2].value == "custom"  # the sampler settings source: _explorer edited steps and schedule
    assert list(controls[2].options) == ["checkpoint default", "project default", "custom"]
    sway = controls[6]
    assert not sway.visible  # schedule linear: the sway coefficient does nothing
    ex.controls.schedule = "sway"
    assert sway.visible
    assert isinstance(pn.panel(ex.clip), pn.viewable.Viewable)


# ----------------------------------------------------------------------------- checkpoint default settings


RECOMMENDED = {"steps": 16, "solver": "midpoint", "schedule": "linear", "cfg": 2.0}  # the rest: the section's defaults


@pytest.fixture
def recommending(settings, trained) -> SynthesisService:
    """The tiny run plus two copies of its checkpoint: ``a_recommends.pt`` whose config's
    sampling section says :data:`RECOMMENDED`, ``b_plain.pt`` whose config has no
    sampling section at all."""
    import torch

    folder = settings.checkpoint_dirs[0]
    payload = torch.load(trained, weights_only=True)
    payload["config"]["sampling"] = dict(RECOMMENDED)
    torch.save(payload, folder / "a_recommends.pt")
    del payload["config"]["sampling"]
    torch.save(payload, folder / "b_plain.pt")
    svc = SynthesisService(settings)
    yield svc
    assert svc.runner.wait(WAIT)


def _sampler(controls) -> dict:
    from core.sampling.options import OPTION_ORDER

    return {name: getattr(controls, name) for name in OPTION_ORDER}


def test_sampler_controls_start_from_the_checkpoints_recommended_settings(recommending):
    from core.sampling.options import sampler_defaults

    project = sampler_defaults()
    assert project == {"steps": 10, "solver": "euler", "schedule": "sway", "sway": -1.0, "duration_scale": 1.0,
                       "cfg": 0.0, "temperature": 1.0}  # the stated defaults (README, core/sampling/options.py)
    recommends = recommending.catalog["runs/a_recommends.pt"]
    plain = recommending.catalog["runs/b_plain.pt"]
    ex = Explorer(recommending)
    assert recommending.runner.wait(WAIT)
    c = ex.controls
    assert c.checkpoint == recommends and c.sampler_settings == "checkpoint default"  # listed first
    assert _sampler(c) == {**project, **RECOMMENDED}
    c.sampler_settings = "project default"  # one click back to the stated defaults
    assert _sampler(c) == project
    c.sampler_settings = "checkpoint default"
    assert _sampler(c) == {**project, **RECOMMENDED}

    c.checkpoint = plain  # no sampling section: the project defaults
    assert recommending.runner.wait(WAIT)
    assert c.sampler_settings == "checkpoint default" and _sampler(c) == project
    c.checkpoint = recommends  # read before: applied at once
    assert _sampler(c) == {**project, **RECOMMENDED}

    c.steps = 12  # an edit: custom, kept when another checkpoint is chosen
    assert c.sampler_settings == "custom"
    c.checkpoint = plain
    assert recommending.runner.wait(WAIT)
    assert _sampler(c) == {**project, **RECOMMENDED, "steps": 12}
    c.sampler_settings = "checkpoint default"
    assert _sampler(c) == project

    c.param.update(checkpoint=recommends, vocoder="griffin-lim")
    assert recommending.runner.wait(WAIT)
    _generate(ex)
    s = ex.clip.rendered.synthesis
    assert {k: s.settings[k] for k in RECOMMENDED} == RECOMMENDED and s.nfe == 32  # midpoint: 2 a step


def test_compare_a_starts_from_the_checkpoint_and_b_from_its_own_settings(recommending):
    page = CompareView(recommending)
    assert recommending.runner.wait(WAIT)
    assert page.a.sampler_settings == "checkpoint default" and page.a.steps == 16 and page.a.cfg == 2.0
    assert page.b.sampler_settings == "custom" and (page.b.steps, page.b.schedule, page.b.cfg) == (32, "linear", 0.0)
    page.b.sampler_settings = "checkpoint default"
    assert (page.b.steps, page.b.solver, page.b.cfg) == (16, "midpoint", 2.0)


# ----------------------------------------------------------------------------- the app shell


def test_app_tabs_and_listening_hook(tmp_path, monkeypatch):
    import studio.app as app

    page = app.create_app(["--checkpoints", str(tmp_path / "runs"), "--results", str(tmp_path / "res")], env={})
    tabs = next(obj for obj in page if isinstance(obj, pn.Tabs))
    assert tabs._names[:3] == ["Explorer", "Compare", "Training"]
    note = tabs[0][1][0]  # Explorer: Row(side, Column(note, ...))
    assert isinstance(note, pn.pane.Alert) and note.visible
    # the folder is missing, but the bundled demo voice (assets/demo.pt) is still offered
    assert "does not exist" in note.object and "No checkpoints found" not in note.object
    assert str(tmp_path / "res") in page[-1].object  # the footer names the folders
    assert tabs._names[3:] == ["Experimenter", "Rate", "Results"]
    from core.threads import resolve_threads

    assert f"torch threads: {resolve_threads('auto')}" in page[-1].object  # set by the server (core.threads)


def test_app_reports_bad_options_in_the_page(tmp_path):
    import studio.app as app

    page = app.create_app(["--checkpoints"], env={})
    alert = page[1]
    assert isinstance(alert, pn.pane.Alert) and "expected one argument" in alert.object
    page = app.create_app(["--threads", "zero"], env={})
    assert "--threads" in page[1].object and "whole number" in page[1].object
    page = app.create_app([], env={"FLOWTTS_CHECKPOINTS": str(tmp_path), "FLOWTTS_RESULTS": str(tmp_path / "r")})
    assert str(tmp_path / "r") in page[-1].object


# ----------------------------------------------------------------------------- both families


@pytest.fixture
def mixed(trained, tiny_lewm_checkpoint, tmp_path) -> SynthesisService:
    """A service whose folder holds the tiny flow run and a tiny LeWM run."""
    runs = tmp_path / "runs"
    shutil.copytree(trained.parent.parent, runs / "flow", ignore=shutil.ignore_patterns("mel_cache"))
    shutil.copytree(tiny_lewm_checkpoint.parent.parent, runs / "lewm", ignore=shutil.ignore_patterns("mel_cache"))
    settings = StudioSettings(checkpoint_dirs=(runs,), results_dir=tmp_path / "results",
                              bundled_voices=(BundledVoice("demo", tmp_path / "assets" / "demo.pt", "demo voice (bundled)"),), device="cpu")
    svc = SynthesisService(settings)
    yield svc
    assert svc.runner.wait(WAIT)


def _pick(controls, service, family: str) -> None:
    controls.checkpoint = next(p for label, p in service.catalog.items() if label.startswith(f"runs/{family}/"))
    assert service.runner.wait(WAIT)
    assert controls.family == family


def _tone_wav(seconds: float = 1.0, rate: int = 16000) -> bytes:
    import io

    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), rate, format="WAV")
    return buf.getvalue()


FLOW_WIDGETS = slice(3, 10)   # steps, solver, schedule, sway, duration scale, cfg, temperature
LEWM_WIDGETS = slice(10, 13)  # feedback-noise temperature, max length ratio, voice prompt


def test_explorer_shows_only_the_loaded_familys_controls(mixed):
    ex = Explorer(mixed)
    assert mixed.runner.wait(WAIT)
    ex.controls.schedule = "sway"
    column = ex.controls.widgets()
    _pick(ex.controls, mixed, "lewm")
    assert ex.controls.visible_controls() == ("lewm_temperature", "max_length_ratio", "prompt_text")
    assert [w.visible for w in column[FLOW_WIDGETS]] == [False] * 7
    assert [w.visible for w in column[LEWM_WIDGETS]] == [True] * 3
    # the LeWM controls start from the checkpoint's own defaults
    ck = core.load_checkpoint(ex.controls.checkpoint)
    assert ex.controls.max_length_ratio == ck.config.lewm.max_length_ratio
    assert set(ex.controls.options()) == {"temperature", "max_length_ratio", "speaker"}
    _pick(ex.controls, mixed, "flow")
    assert [w.visible for w in column[FLOW_WIDGETS]] == [True] * 7
    assert [w.visible for w in column[LEWM_WIDGETS]] == [False] * 3
    assert "steps" in ex.controls.options() and "max_length_ratio" not in ex.controls.options()
    ex.__panel__().get_root()


def test_explorer_renders_lewm_with_a_voice_prompt_and_then_flow(mixed):
    ex = Explorer(mixed)
    assert mixed.runner.wait(WAIT)
    ex.controls.param.update(vocoder="griffin-lim", steps=2, schedule="linear")
    _pick(ex.controls, mixed, "lewm")
    ex.controls.param.update(lewm_temperature=0.2, max_length_ratio=4.0)
    ex.controls.set_prompt("ref.wav", _tone_wav())
    assert ex.controls.prompt_name == "ref.wav" and ex.controls.prompt[1] == 16000
    ex.param.update(text="hello there", seed=3)
    ex.controls.prompt_text = ""
    assert not ex.generate() and "needs its transcript" in ex.alert
    ex.controls.prompt_text = "a low tone"
    _generate(ex)
    s = ex.clip.rendered.synthesis
    assert s.settings["family"] == "lewm" and s.settings["temperature"] == 0.2
    assert s.settings["max_length_ratio"] == 4.0 and s.settings["prompt_audio"] == "array"
    assert s.settings["prompt_text"] == "a low tone" and s.trajectory is None
    assert ex.clip.audio.sample_rate == 24000 and len(ex.clip.audio.object) == len(s.audio) > 0
    ex.controls.clear_prompt()
    _generate(ex)
    assert ex.clip.rendered.synthesis.settings["prompt_audio"] is None
    _pick(ex.controls, mixed, "flow")
    _generate(ex)
    s = ex.clip.rendered.synthesis
    assert "family" not in s.settings and s.settings["steps"] == 2 and s.trajectory is not None


def test_a_bad_voice_prompt_upload_is_reported(mixed):
    ex = Explorer(mixed)
    assert mixed.runner.wait(WAIT)
    _pick(ex.controls, mixed, "lewm")

    class Upload:
        filename, value = "notes.txt", b"not audio at all"

    ex.controls._on_prompt_upload(Upload)
    assert "not an audio file" in ex.alert and ex.controls.prompt is None
    Upload.filename, Upload.value = "long.wav", _tone_wav(seconds=16.0, rate=8000)
    ex.controls._on_prompt_upload(Upload)
    assert "must last" in ex.alert and ex.controls.prompt is None


def test_compare_a_flow_checkpoint_with_a_lewm_checkpoint(mixed):
    page = CompareView(mixed)
    assert mixed.runner.wait(WAIT)
    page.a.param.update(vocoder="griffin-lim", steps=2)
    page.b.param.update(vocoder="griffin-lim")
    _pick(page.a, mixed, "flow")
    _pick(page.b, mixed, "lewm")
    page.b.max_length_ratio = 4.0
    page.text = "red blue"
    _generate(page)
    assert page.clip_a.rendered.synthesis.settings["steps"] == 2
    assert page.clip_b.rendered.synthesis.settings["family"] == "lewm"
