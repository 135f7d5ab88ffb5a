"""LeWM conditions in the Experimenter: the condition form shows the checkpoint's family's
controls and takes only its settings (with a voice prompt from the studio's folders), the
design file carries them, ``studio test create`` checks them against each checkpoint, and
the rendered clips' provenance lists only settings that applied."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf

import core
from studio.cli import main
from studio.condition_form import FORM_CONTROLS, ConditionForm
from studio.config import BundledVoice, StudioSettings
from studio.design_file import design_from_yaml_text, read_design
from studio.experimenter_ui import ExperimenterView
from studio.listening import render_stimuli
from studio.results import ResultsStore
from studio.stimulus_renderer import StimulusRenderer

from conftest import tiny_config

LEWM_DEFAULTS = {"temperature": 0.3, "min_length_ratio": 2.0, "max_length_ratio": 9.0}


def _tone(path, seconds, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)
    return path


@pytest.fixture(scope="module")
def lab(tiny_corpus, tiny_lewm_checkpoint, tmp_path_factory):
    """A checkpoint folder with a flow and a LeWM checkpoint (the latter recommending
    LEWM_DEFAULTS) and a voice prompt; the settings of a studio reading it."""
    from core.train import Trainer

    root = tmp_path_factory.mktemp("lewm_lab")
    flow = Trainer(tiny_config(tiny_corpus, steps=2, checkpoint_every=2, val_every=2), root / "run",
                   progress=False).fit()
    ckdir = root / "checkpoints"
    (ckdir / "prompts").mkdir(parents=True)
    shutil.copy(flow, ckdir / "flow.pt")
    ck = core.load_checkpoint(tiny_lewm_checkpoint)
    core.save_checkpoint(ckdir / "lewm.pt", config=replace(ck.config, lewm=replace(ck.config.lewm, **LEWM_DEFAULTS)),
                         weights=ck.weights, step=ck.step, speakers=ck.speakers, extra=ck.extra)
    _tone(ckdir / "prompts" / "hello.wav", 0.6)
    settings = StudioSettings(checkpoint_dirs=(ckdir,), results_dir=root / "results", device="cpu",
                              bundled_voices=(BundledVoice("demo", root / "no-demo.pt", "demo voice (bundled)"),))
    return {"settings": settings, "flow": str((ckdir / "flow.pt").resolve()),
            "lewm": str((ckdir / "lewm.pt").resolve()), "prompt": (ckdir / "prompts" / "hello.wav").resolve(),
            "root": root}


def experimenter(lab, tmp_path):
    renderer = StimulusRenderer("cpu", prompt_roots=lab["settings"].roots)
    return ExperimenterView(lab["settings"], ResultsStore(tmp_path / "results"), renderer)


def lewm_form(view, lab, **form):
    view.form.checkpoint = lab["lewm"]           # first, as on the page: picking it loads its defaults
    view.form.param.update(**{"label": "lewm", "vocoder": "griffin-lim", "seed": 5, **form})
    return view.add_condition()


# ----------------------------------------------------------------------------- the form


def test_the_form_shows_and_takes_the_checkpoints_family(lab):
    form = ConditionForm(lab["settings"])
    assert all(name in form.param for names in FORM_CONTROLS.values() for name in names)
    form.checkpoint_controls()
    panes = form.family_panes
    form.checkpoint = lab["flow"]
    assert form.family == "flow" and panes["flow"].visible and not panes["lewm"].visible
    form.checkpoint = lab["lewm"]
    assert form.family == "lewm" and panes["lewm"].visible and not panes["flow"].visible
    # the LeWM fields start from the checkpoint's own values
    assert (form.lewm_temperature, form.min_length_ratio, form.max_length_ratio) == tuple(LEWM_DEFAULTS.values())
    form.param.update(lewm_temperature=0.8, steps=3)
    cond = form.condition("c1")
    assert cond.settings == {**LEWM_DEFAULTS, "temperature": 0.8, "vocoder": "auto"}     # no flow setting
    form.checkpoint = lab["flow"]
    cond = form.condition("c2")
    assert cond.settings["steps"] == 3 and not set(cond.settings) & {"min_length_ratio", "max_length_ratio"}
    assert cond.settings["temperature"] == 1.0            # the flow temperature, not the LeWM one
    form.checkpoint = lab["lewm"]                         # back to LeWM: its defaults again
    assert form.lewm_temperature == LEWM_DEFAULTS["temperature"]


def test_a_lewm_condition_round_trips_through_the_design_file_and_renders(lab, tmp_path):
    view = experimenter(lab, tmp_path)
    cond = lewm_form(view, lab, lewm_temperature=0.4, max_length_ratio=6.0, prompt_audio="prompts/hello.wav",
                     prompt_text=" Hello there. ")
    assert cond is not None, view.message
    assert cond.settings == {"temperature": 0.4, "min_length_ratio": 2.0, "max_length_ratio": 6.0,
                             "prompt_audio": str(lab["prompt"]), "prompt_text": "Hello there.",
                             "vocoder": "griffin-lim"}
    view.form.param.update(label="flow", checkpoint=lab["flow"], steps=2, seed=1)
    assert view.add_condition() is not None, view.message
    view.param.update(test_type="ab", sentences="Red sun.", test_name="lewm vs flow")
    text = view.design_yaml()
    assert "prompt_audio: " + str(lab["prompt"]) in text and "prompt_text: Hello there." in text
    path = tmp_path / "design.yaml"
    path.write_text(text)
    design = read_design(path, test_id="t1")
    assert design == view.design("t1")
    # a hand-written file: the prompt path is relative to the file's folder
    moved = text.replace(str(lab["prompt"]), "prompts/hello.wav")
    again = design_from_yaml_text(moved, lab["prompt"].parent.parent, test_id="t1")
    assert again == design
    # rendered: the renderer applies the options, provenance lists only what applied
    store = ResultsStore(tmp_path / "rendered")
    stimuli = render_stimuli(design, store, tmp_path / "rendered", view.render_clip)
    clip = [s for s in stimuli if s.condition == "lewm"][0].provenance
    assert clip["settings"] == cond.settings
    render = clip["render"]
    assert render["family"] == "lewm" and render["temperature"] == 0.4 and render["max_length_ratio"] == 6.0
    assert render["prompt_audio"] == str(lab["prompt"]) and render["prompt_text"] == "Hello there."
    assert not set(render) & {"steps", "solver", "schedule", "sway", "cfg", "duration_scale"}
    flow = [s for s in stimuli if s.condition == "flow"][0].provenance["render"]
    assert flow["steps"] == 2 and not set(flow) & {"prompt_audio", "max_length_ratio"}


def test_the_form_refuses_bad_lewm_input_with_a_message(lab, tmp_path):
    view = experimenter(lab, tmp_path)
    outside = _tone(tmp_path / "outside.wav", 0.6)
    long = _tone(lab["prompt"].parent / "long.wav", 16.0)
    (lab["prompt"].parent / "notes.wav").write_text("not audio")
    cases = [
        (dict(prompt_audio=str(outside), prompt_text="Hi."), "outside the folders"),
        (dict(prompt_audio="../../elsewhere.wav", prompt_text="Hi."), "outside the folders"),
        (dict(prompt_audio="prompts/missing.wav", prompt_text="Hi."), "no such voice prompt file"),
        (dict(prompt_audio="prompts/hello.wav", prompt_text="  "), "needs prompt_text"),
        (dict(prompt_audio="", prompt_text="Hi."), "prompt_audio is ''"),
        (dict(prompt_audio=str(long), prompt_text="Hi."), r"lasts 16.00 s; it must last 0.25-15 s"),
        (dict(prompt_audio="prompts/notes.wav", prompt_text="Hi."), "not an audio file"),
        (dict(lewm_temperature=11.0), r"temperature must be in \[0, 10\]"),
        (dict(min_length_ratio=9.0, max_length_ratio=9.0), "min_length_ratio must be below max_length_ratio"),
    ]
    for form, message in cases:
        base = dict(prompt_audio="", prompt_text="", lewm_temperature=0.3, min_length_ratio=2.0, max_length_ratio=9.0)
        assert lewm_form(view, lab, **{**base, **form}) is None, form
        assert "Condition not added" in view.message
        assert re.search(message, view.message), (form, view.message)
    assert view.conditions == []


# ----------------------------------------------------------------------------- design files


def test_studio_test_create_checks_each_conditions_family(lab, tmp_path, capsys):
    def create(conditions: str) -> int:
        path = tmp_path / "test.yaml"
        path.write_text(f"type: mos\nconditions:\n{conditions}\nsentences: [Red sun.]\n")
        return main(["test", "create", "--config", str(path), "--results", str(tmp_path / "res"), "--device", "cpu"])

    assert create(f"  - {{label: l, checkpoint: {lab['lewm']}, settings: {{steps: 4, temperature: 0.2}}}}") == 2
    err = capsys.readouterr().err
    assert ("error: condition 'l': steps applies to flow-matching checkpoints only; a LeWM condition takes: "
            "temperature, min_length_ratio, max_length_ratio, prompt_audio, prompt_text, speaker, vocoder") in err
    assert create(f"  - {{label: f, checkpoint: {lab['flow']}, settings: {{max_length_ratio: 6}}}}") == 2
    err = capsys.readouterr().err
    assert "condition 'f': max_length_ratio applies to LeWM checkpoints only; a flow-matching condition takes: steps" in err
    missing = tmp_path / "missing.wav"
    assert create(f"  - {{label: p, checkpoint: {lab['lewm']}, settings: {{prompt_audio: {missing}, "
                  "prompt_text: Hi.}}") == 2
    assert "condition 'p': voice prompt" in capsys.readouterr().err
    assert not (tmp_path / "res").exists()          # refused before anything was written
