"""The listening-test render callable: option mapping, the synthesizer cache, and equality
with a direct ``core.Synthesizer`` call on a tiny trained checkpoint."""

from __future__ import annotations

import hashlib
import os
from types import SimpleNamespace

import numpy as np
import pytest

import core
from core.config import ConfigError
from studio.listening import Condition, ListeningError, RenderedClip
from studio.stimulus_renderer import StimulusRenderer, synthesis_options

from conftest import tiny_config


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_corpus, tmp_path_factory):
    from core.train import Trainer

    out = tmp_path_factory.mktemp("render_run")
    cfg = tiny_config(tiny_corpus, steps=2, checkpoint_every=2, val_every=2)
    return Trainer(cfg, out, progress=False).fit()


class FakeSynth:
    def __init__(self, path, vocoder):
        self.path, self.vocoder, self.calls = path, vocoder, []

    def synthesize(self, text, **options):
        self.calls.append((text, options))
        audio = np.full(100, 0.1, dtype=np.float32)
        return SimpleNamespace(audio=audio, sample_rate=16000, nfe=options.get("steps", 10), timings={"total": 0.01},
                               settings={"text": text, **options, "vocoder": f"fake-{self.vocoder}"})


def fake_renderer(**kw):
    loaded = []

    def loader(path, vocoder):
        loaded.append((path, vocoder))
        return FakeSynth(path, vocoder)

    return StimulusRenderer("cpu", loader=loader, **kw), loaded


def checkpoint_file(tmp_path, name="a.pt", content=b"weights"):
    p = tmp_path / name
    p.write_bytes(content)
    return p


def test_synthesis_options_pass_what_is_given_and_validate():
    # options left out are not filled in here: the checkpoint's own defaults apply (as for core synth)
    assert synthesis_options({}) == {}
    opts = synthesis_options({"steps": 4, "solver": "heun", "vocoder": "griffin-lim", "speaker": "bob"})
    assert opts["steps"] == 4 and opts["solver"] == "heun" and opts["speaker"] == "bob" and "vocoder" not in opts
    with pytest.raises(ConfigError, match="unknown solver 'rk5'.*valid: .*euler"):
        synthesis_options({"solver": "rk5"})
    with pytest.raises(ConfigError, match="steps"):
        synthesis_options({"steps": 0})
    with pytest.raises(ListeningError, match="unknown condition setting 'stpes'"):
        synthesis_options({"stpes": 4})


def test_renderer_passes_settings_and_seed_and_records_provenance(tmp_path):
    renderer, loaded = fake_renderer()
    ck = checkpoint_file(tmp_path)
    cond = Condition("x", checkpoint=str(ck), settings={"steps": 3, "cfg": 1.5, "vocoder": "griffin-lim"}, seed=7)
    clip = renderer(cond, "Hello there.", 7)
    assert isinstance(clip, RenderedClip) and clip.sample_rate == 16000 and clip.audio.shape == (100,)
    assert loaded == [(str(ck.resolve()), "griffin-lim")]
    synth = renderer.synthesizer(ck, "griffin-lim")
    text, options = synth.calls[0]
    assert text == "Hello there." and options["seed"] == 7 and options["steps"] == 3 and options["cfg"] == 1.5
    assert clip.provenance["vocoder"] == "fake-griffin-lim" and clip.provenance["nfe"] == 3
    assert clip.provenance["timings"] == {"total": 0.01}
    with pytest.raises(ListeningError, match="no checkpoint"):
        renderer(Condition("f", folder=str(tmp_path)), "Hi.", 0)


def test_renderer_caches_one_synthesizer_per_checkpoint_and_vocoder(tmp_path):
    renderer, loaded = fake_renderer(max_models=2)
    a, b = checkpoint_file(tmp_path, "a.pt"), checkpoint_file(tmp_path, "b.pt")
    cond_a = Condition("a", checkpoint=str(a), settings={"steps": 2})
    for text in ("one.", "two.", "three."):
        renderer(cond_a, text, 0)
    assert renderer.loads == 1  # same checkpoint, same vocoder: loaded once
    renderer(Condition("a2", checkpoint=str(a), settings={"steps": 2, "vocoder": "griffin-lim"}), "x.", 0)
    assert renderer.loads == 2 and loaded[-1][1] == "griffin-lim"
    renderer(Condition("b", checkpoint=str(b)), "x.", 0)  # third model: the least recently used (a, auto) goes
    assert renderer.loads == 3
    renderer(cond_a, "again.", 0)
    assert renderer.loads == 4
    # a checkpoint rewritten in place is loaded again
    st = os.stat(b)
    b.write_bytes(b"new weights, longer")
    os.utime(b, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    renderer(Condition("b", checkpoint=str(b)), "x.", 0)
    assert renderer.loads == 5
    with pytest.raises(core.CheckpointError, match="cannot read the checkpoint"):
        renderer.synthesizer(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="max_models"):
        StimulusRenderer(max_models=0)


def test_renderer_matches_a_direct_synthesizer_call(tiny_checkpoint):
    settings = {"steps": 3, "solver": "midpoint", "schedule": "linear", "temperature": 0.8, "vocoder": "griffin-lim"}
    renderer = StimulusRenderer("cpu")
    cond = Condition("tiny", checkpoint=str(tiny_checkpoint), settings=settings, seed=11)
    clip = renderer(cond, "The quick brown fox.", 11)
    # reference: core's public API called directly with the same options
    synth = core.Synthesizer.from_checkpoint(tiny_checkpoint, device="cpu", vocoder="griffin-lim")
    ref = synth.synthesize("The quick brown fox.", steps=3, solver="midpoint", schedule="linear", temperature=0.8,
                           seed=11)
    assert clip.sample_rate == ref.sample_rate == 24000
    np.testing.assert_allclose(clip.audio, ref.audio, atol=1e-5)
    sha = hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    assert clip.provenance["checkpoint_sha256"] == sha and clip.provenance["vocoder"] == "griffin-lim"
    assert clip.provenance["seed"] == 11 and clip.provenance["nfe"] == 6  # midpoint: 2 evaluations per step
    other = renderer(cond, "The quick brown fox.", 12)
    assert renderer.loads == 1 and not np.allclose(other.audio[:1000], clip.audio[:1000])


def test_stimuli_honour_the_checkpoints_sampling_defaults(tiny_checkpoint, tmp_path):
    # a checkpoint that recommends 3 midpoint steps with guidance 1 (its config's "sampling")
    from dataclasses import replace

    from core.config import SamplingConfig

    ck = core.load_checkpoint(tiny_checkpoint)
    path = tmp_path / "recommends.pt"
    core.save_checkpoint(path, config=replace(ck.config, sampling=SamplingConfig(steps=3, solver="midpoint", cfg=1.0)),
                         weights=ck.weights, step=ck.step, speakers=ck.speakers, extra=ck.extra)
    renderer = StimulusRenderer("cpu")
    clip = renderer(Condition("rec", checkpoint=str(path), settings={"vocoder": "griffin-lim"}, seed=4), "Red sun.", 4)
    assert (clip.provenance["steps"], clip.provenance["solver"], clip.provenance["cfg"]) == (3, "midpoint", 1.0)
    assert clip.provenance["nfe"] == 6
    # the same as python -m core synth would render with no options given
    ref = core.Synthesizer.from_checkpoint(path, device="cpu", vocoder="griffin-lim").synthesize("Red sun.", seed=4)
    np.testing.assert_allclose(clip.audio, ref.audio, atol=1e-6)
    # an option the condition states wins over the checkpoint's
    explicit = renderer(Condition("e", checkpoint=str(path), settings={"steps": 2, "vocoder": "griffin-lim"}, seed=4),
                        "Red sun.", 4)
    assert explicit.provenance["steps"] == 2 and explicit.provenance["nfe"] == 4


# ----------------------------------------------------------------------------- both families


def test_synthesis_options_follow_the_family():
    both = {"temperature": 0.5, "speaker": "bob", "vocoder": "auto"}
    assert synthesis_options({**both, "steps": 4, "cfg": 1.0}) == {"steps": 4, "cfg": 1.0, "temperature": 0.5,
                                                                    "speaker": "bob"}
    assert synthesis_options({**both, "max_length_ratio": 6, "prompt_audio": "/a/b.wav", "prompt_text": " Hi. "},
                             "lewm") == {"temperature": 0.5, "max_length_ratio": 6.0, "prompt_audio": "/a/b.wav",
                                         "prompt_text": "Hi.", "speaker": "bob"}
    # a setting of the other family is an error listing what the condition's family takes
    with pytest.raises(ConfigError, match="steps, cfg apply to flow-matching checkpoints only; a LeWM condition "
                                          "takes: temperature, min_length_ratio, max_length_ratio, prompt_audio, "
                                          "prompt_text, speaker, vocoder"):
        synthesis_options({**both, "steps": 4, "cfg": 1.0}, "lewm")
    with pytest.raises(ConfigError, match="max_length_ratio applies to LeWM checkpoints only; a flow-matching "
                                          "condition takes: steps, solver, .*temperature, speaker, vocoder"):
        synthesis_options({"max_length_ratio": 6})
    with pytest.raises(ConfigError, match="prompt_audio applies to LeWM checkpoints only"):
        synthesis_options({"prompt_audio": "/a/b.wav"})
    # each family's ranges: a LeWM temperature may go to 10, a flow one to 2
    assert synthesis_options({"temperature": 5.0}, "lewm") == {"temperature": 5.0}
    with pytest.raises(ConfigError, match="temperature"):
        synthesis_options({"temperature": 5.0})
    with pytest.raises(ConfigError, match="temperature must be in"):
        synthesis_options({"temperature": 11.0}, "lewm")
    with pytest.raises(ConfigError, match="max_length_ratio must be a number"):
        synthesis_options({"max_length_ratio": "long"}, "lewm")
    with pytest.raises(ConfigError, match="min_length_ratio must be below max_length_ratio"):
        synthesis_options({"min_length_ratio": 5, "max_length_ratio": 5}, "lewm")
    # a voice prompt is a file and its transcript, both or neither
    with pytest.raises(ConfigError, match="needs prompt_text"):
        synthesis_options({"prompt_audio": "/a/b.wav"}, "lewm")
    with pytest.raises(ConfigError, match="prompt_audio is None"):
        synthesis_options({"prompt_text": "Hi."}, "lewm")
    with pytest.raises(ConfigError, match="unknown model family"):
        synthesis_options({}, "gan")


def test_a_voice_prompt_outside_the_renderers_folders_is_refused(tmp_path):
    from studio.config import PathRefused

    inside, outside = tmp_path / "allowed", tmp_path / "elsewhere"
    inside.mkdir(), outside.mkdir()
    prompt = {"prompt_audio": str(outside / "p.wav"), "prompt_text": "Hi."}
    with pytest.raises(PathRefused, match="outside the folders"):
        synthesis_options(prompt, "lewm", prompt_roots=(inside,))
    for sneaky in (str(inside / ".." / "elsewhere" / "p.wav"), "../elsewhere/p.wav"):
        with pytest.raises(PathRefused):
            synthesis_options({**prompt, "prompt_audio": sneaky}, "lewm", prompt_roots=(inside,))
    got = synthesis_options({**prompt, "prompt_audio": "p.wav"}, "lewm", prompt_roots=(inside,))
    assert got["prompt_audio"] == str((inside / "p.wav").resolve())     # relative: inside a root
    assert synthesis_options(prompt, "lewm")["prompt_audio"] == prompt["prompt_audio"]   # no roots: the CLI's


def test_a_listening_test_mixes_flow_and_lewm_conditions(tiny_checkpoint, tiny_lewm_checkpoint, tmp_path):
    import soundfile as sf

    from studio.listening import Sentence, TestDesign, render_stimuli
    from studio.results import ResultsStore

    prompt = tmp_path / "prompt.wav"
    t = np.arange(12000) / 24000
    sf.write(prompt, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 24000)
    lewm_settings = {"temperature": 0.5, "max_length_ratio": 4.0, "prompt_audio": str(prompt),
                     "prompt_text": "Hello.", "vocoder": "griffin-lim"}
    conds = (Condition("flow", checkpoint=str(tiny_checkpoint), settings={"steps": 2, "temperature": 0.5,
                                                                         "vocoder": "griffin-lim"}, seed=3),
             Condition("lewm", checkpoint=str(tiny_lewm_checkpoint), settings=lewm_settings, seed=3))
    design = TestDesign("mixed", "ab", conds, (Sentence("s1", "Red sun."), Sentence("s2", "A dog ran.")))
    renderer = StimulusRenderer("cpu", prompt_roots=(tmp_path,))
    stimuli = render_stimuli(design, ResultsStore(tmp_path / "results"), tmp_path / "results", renderer)
    by_cond = {}
    for s in stimuli:
        by_cond.setdefault(s.condition, []).append(s)
    assert sorted(by_cond) == ["flow", "lewm"] and all(len(v) == 2 for v in by_cond.values())
    flow, lewm = by_cond["flow"][0].provenance["render"], by_cond["lewm"][0].provenance["render"]
    assert flow["steps"] == 2 and "family" not in flow and "prompt_audio" not in flow
    assert lewm["family"] == "lewm" and lewm["temperature"] == 0.5 and lewm["max_length_ratio"] == 4.0
    assert lewm["prompt_audio"] == str(prompt) and lewm["prompt_text"] == "Hello." and len(lewm["prompt_sha256"]) == 64
    # provenance holds only settings that applied: no flow setting on the LeWM clip
    assert not set(lewm) & {"steps", "solver", "schedule", "sway", "cfg", "duration_scale", "settings_not_applied"}
    assert by_cond["lewm"][0].provenance["settings"] == lewm_settings
    # the LeWM clip equals a direct call with the same options
    synth = core.Synthesizer.from_checkpoint(tiny_lewm_checkpoint, device="cpu", vocoder="griffin-lim")
    clip = renderer(conds[1], "Red sun.", 3)
    ref = synth.synthesize("Red sun.", temperature=0.5, max_length_ratio=4.0, prompt_audio=str(prompt),
                           prompt_text="Hello.", seed=3)
    np.testing.assert_allclose(clip.audio, ref.audio, atol=1e-6)
    # a flow setting on the LeWM condition is refused at render time too, naming the condition
    bad = Condition("lewm-steps", checkpoint=str(tiny_lewm_checkpoint), settings={"steps": 2}, seed=3)
    with pytest.raises(ConfigError, match="condition 'lewm-steps': steps applies to flow-matching checkpoints only"):
        renderer(bad, "Red sun.", 3)
    # a renderer with other folders refuses the prompt
    from studio.config import PathRefused

    with pytest.raises(PathRefused, match="outside the folders"):
        StimulusRenderer("cpu", prompt_roots=(tmp_path / "results",))(conds[1], "Red sun.", 3)
