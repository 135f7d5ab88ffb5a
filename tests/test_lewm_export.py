"""``python -m core export`` on LeWM checkpoints: the ``lewm_demo`` preset fits the 25 MB
limit of a bundled checkpoint in fp16 with its audio encoder (voice prompts) kept, and the
exported voice generates what its source does.  Also the smoke test of
``benchmarks/lewm_step_time.py``, which sized the preset's training."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import core
from core import load_checkpoint, save_checkpoint
from core.cli import main
from core.config import preset
from core.export import export_checkpoint
from sampling_fixtures import cfm_checkpoint  # noqa: F401
from core.families import build_model
from core.text import build_tokenizer

DEMO_SPEAKERS = ["slt", "rms", "awb", "kal16"]          # the demo corpus's voices (docs/lewm.md)
LIMIT_BYTES = 25 * 10 ** 6      # 25 MB, the stricter reading (tests/test_demo_voice.py checks 25 MiB)


@pytest.fixture(scope="module")
def demo_source(tmp_path_factory):
    """An untrained ``lewm_demo`` checkpoint shaped like a training one: EMA weights plus
    the raw weights (fp32), byte tokenizer, the demo corpus's 4 speakers."""
    cfg = preset("lewm_demo")
    tokenizer = build_tokenizer(cfg.text)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, vocab_size=tokenizer.vocab_size,
                                                             n_speakers=len(DEMO_SPEAKERS)))
    torch.manual_seed(0)
    state = build_model(cfg).state_dict()
    return save_checkpoint(tmp_path_factory.mktemp("lewm_demo") / "step_00000000.pt", config=cfg, weights=state,
                           model_weights={k: v.clone() for k, v in state.items()}, speakers=DEMO_SPEAKERS,
                           extra={"tokenizer": tokenizer.to_dict()})


def module_parameters(model: torch.nn.Module) -> dict[str, int]:
    return {name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()}


def test_lewm_demo_sizes_per_module(demo_source):
    """Pinned: counted from the modules the preset builds (byte vocabulary of 259, 4
    speakers); the preset's docstring and docs/lewm.md state them rounded."""
    model = build_model(load_checkpoint(demo_source).config)
    assert module_parameters(model) == {"text_encoder": 2_176_256, "audio_encoder": 2_532_480,
                                        "predictor": 4_976_195, "decoder": 1_667_608}
    c = model.config
    assert (c.text_layers, c.text_dim, c.text_heads, c.encoder_layers, c.predictor_layers, c.downsample_factor) \
        == (4, 256, 4, 4, 6, 2)


def test_lewm_demo_exports_under_25_mb_with_its_audio_encoder(demo_source, tmp_path):
    out = tmp_path / "lewm_demo.pt"
    assert main(["export", "--checkpoint", str(demo_source), "--out", str(out), "--dtype", "fp16"]) == 0
    size = out.stat().st_size
    assert size < LIMIT_BYTES, size
    ck = load_checkpoint(out)
    assert ck.model_weights is None and ck.train_state is None
    assert any(k.startswith("audio_encoder.") for k in ck.weights)       # voice prompts keep working
    n = sum(w.numel() for w in ck.weights.values() if w.is_floating_point())
    assert all(w.dtype == torch.float16 for w in ck.weights.values() if w.is_floating_point())
    assert size < 2 * n + 200_000           # the weights in fp16 plus a small header, nothing else


@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_exported_demo_generates_what_its_source_does(demo_source, tmp_path, dtype):
    """Same text, seed and options: an fp32 export gives the source's mel exactly; the
    fp16-stored weights (loaded into fp32) the same length and nearly the same mel.  The
    min/max length ratios fix the length, so an untrained stop head cannot decide it."""
    out = export_checkpoint(demo_source, tmp_path / f"voice_{dtype}.pt", dtype)
    options = dict(seed=3, speaker="rms", temperature=0.3, min_length_ratio=6.0, max_length_ratio=6.5)
    a = core.Synthesizer.from_checkpoint(demo_source, device="cpu", vocoder="griffin-lim").synthesize(
        "A test.", **options)
    b = core.Synthesizer.from_checkpoint(out, device="cpu", vocoder="griffin-lim").synthesize("A test.", **options)
    assert b.settings["family"] == "lewm" and b.mel.shape == a.mel.shape and a.mel.shape[1] > 0
    if dtype == "fp32":
        np.testing.assert_array_equal(b.mel, a.mel)
    else:
        spread = np.abs(a.mel).mean()
        assert 0 < np.abs(b.mel - a.mel).max() < 0.02 * spread + 1e-3


def test_exported_demo_takes_a_voice_prompt(demo_source, tmp_path):
    out = export_checkpoint(demo_source, tmp_path / "voice.pt", "fp16")
    synth = core.Synthesizer.from_checkpoint(out, device="cpu", vocoder="griffin-lim")
    t = np.arange(int(0.5 * synth.sample_rate)) / synth.sample_rate
    clip = synth.synthesize("Hi.", prompt_audio=(0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32),
                            prompt_sample_rate=synth.sample_rate, prompt_text="A tone.", seed=1,
                            max_length_ratio=4.0)
    assert clip.settings["prompt_text"] == "A tone." and np.isfinite(clip.mel).all() and clip.mel.shape[1] > 0


def test_export_cli_reports_a_lewm_export(tiny_lewm_checkpoint, tmp_path, capsys):
    out = tmp_path / "tiny.pt"
    assert main(["export", "--checkpoint", str(tiny_lewm_checkpoint), "--out", str(out), "--dtype", "fp16"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["bytes"] == out.stat().st_size and info["dtype"] == "fp16"
    ck = load_checkpoint(out)
    assert ck.config.model.family == "lewm" and ck.extra["exported_from"]["dtype"] == "fp16"
    assert set(ck.weights) == set(load_checkpoint(tiny_lewm_checkpoint).weights)


def test_step_time_script_on_a_tiny_batch(capsys):
    spec = importlib.util.spec_from_file_location(
        "lewm_step_time", Path(__file__).resolve().parents[1] / "benchmarks" / "lewm_step_time.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--config", "lewm_tiny", "--batch-frames", "130", "--clip-frames", "60", "--tokens", "8",
                        "--repeats", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["batch"], out["frames"], out["threads"]) == (2, 120, 1)
    cfg = preset("lewm_tiny")
    model = build_model(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, n_speakers=4)))
    assert out["parameters"] == sum(module_parameters(model).values())
    assert out["one_pass_s"] > 0 and out["two_passes_s"] > 0 and out["load_average_1min"] >= 0
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--config", "tiny"])
    assert exit_info.value.code == 2 and "'flow' config" in capsys.readouterr().err


def test_export_sets_a_lewm_voices_inference_defaults(tiny_lewm_checkpoint, tmp_path, capsys):
    """``--sampling`` on a LeWM checkpoint writes the ``lewm`` generation defaults (the
    attention stop here), which its synthesizer then uses; a flow-only name is refused."""
    from core import Synthesizer

    out = tmp_path / "voice.pt"
    assert main(["export", "--checkpoint", str(tiny_lewm_checkpoint), "--out", str(out),
                 "--sampling", "stop_on_attention=true", "attention_stop_margin=2", "max_length_ratio=6",
                 "temperature=5"]) == 0  # LeWM's temperature bound (10), not the flow sampler's (2)
    info = json.loads(capsys.readouterr().out)
    assert info["sampling"] == {"stop_on_attention": True, "attention_stop_margin": 2.0, "max_length_ratio": 6.0,
                                "temperature": 5.0}
    lewm = load_checkpoint(out).config.lewm
    assert (lewm.stop_on_attention, lewm.attention_stop_margin, lewm.max_length_ratio, lewm.temperature) == \
        (True, 2.0, 6.0, 5.0)
    assert lewm.min_length_ratio == load_checkpoint(tiny_lewm_checkpoint).config.lewm.min_length_ratio
    synth = Synthesizer.from_checkpoint(out, device="cpu", vocoder="griffin-lim")
    assert synth.attention_stop == 2.0
    clip = synth.synthesize("a test.", seed=0)
    assert clip.settings["max_length_ratio"] == 6.0
    for item, message in [("steps=4", "unknown LeWM inference option 'steps'; valid: temperature, min_length_ratio"),
                          ("temperature=11", r"temperature must be in \[0, 10\.0\], got 11\.0"),
                          ("min_length_ratio=9", "must satisfy 0 <= min < max <= 1000, got 9.0, 6.0"),
                          ("attention_stop_margin=-1", r"attention_stop_margin \(text tokens\) must be in \[0, 100\]")]:
        assert main(["export", "--checkpoint", str(out), "--out", str(tmp_path / "o.pt"), "--sampling", item]) == 2
        err = capsys.readouterr().err
        assert re.search(message, err), err
        assert not (tmp_path / "o.pt").exists()


def test_export_refuses_lewm_names_for_a_flow_voice(cfm_checkpoint, tmp_path):
    from core.config import ConfigError

    with pytest.raises(ConfigError, match="unknown sampler option 'stop_on_attention'; valid: steps"):
        export_checkpoint(cfm_checkpoint, tmp_path / "v.pt", "fp16", sampling={"stop_on_attention": True})
    assert not (tmp_path / "v.pt").exists()
