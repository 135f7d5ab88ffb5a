"""LeWM end to end: a tiny overfit, the trainer (metrics, checkpoints, exact resume),
the checkpoint round trip into the Synthesizer, and the CLI."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

import core
from core import load_checkpoint
from core.checkpoint_checks import check_fits_model
from core.config import ConfigError, merge, preset
from core.lewm import LeWMModel
from core.lewm.learner import TERMS, LeWMLoss
from core.lewm.synthesizer import LeWMSynthesizer
from core.train import Callback, Trainer
from core.train.metrics import read_metrics


def lewm_config(manifest, **training):
    t = {"data": str(manifest), "batch_frames": 400, "max_batch_size": 4, "steps": 6, "log_every": 1,
         "checkpoint_every": 3, "val_every": 3, "val_fraction": 0.2, "warmup_steps": 2, "keep_checkpoints": 10}
    t.update(training)
    return merge(preset("lewm_tiny"), {"training": t})


def _utterances():
    """Two mel 'utterances' with structure (moving formant-like ridges) and byte tokens."""
    t = torch.arange(48, dtype=torch.float32)
    bins = torch.arange(100, dtype=torch.float32)[:, None]
    mels = []
    for k, speed in enumerate((0.15, 0.3)):
        centre = 50 + 30 * torch.sin(speed * t + k)
        mels.append(-4.0 + 3.0 * torch.exp(-((bins - centre) ** 2) / 40.0))
    mel = torch.stack(mels)
    mel_mask = torch.ones(2, 48, dtype=torch.bool)
    mel_mask[1, 40:] = False
    tokens = torch.tensor([[72, 101, 108, 108, 111, 0], [87, 111, 114, 108, 100, 33]])
    return tokens, tokens > 0, mel, mel_mask


def test_tiny_overfit_loss_goes_down_substantially():
    cfg = merge(preset("lewm_tiny"), {"lewm": {"scheduled_sampling": "off", "prenet_dropout": 0.0,
                                               "feedback_noise": 0.0}})
    torch.manual_seed(0)
    model = LeWMModel(dataclasses.replace(cfg.model, vocab_size=260), cfg.lewm).train()
    tokens, token_mask, mel, mel_mask = _utterances()
    model.mel_mean.fill_(float(mel.mean()))
    model.mel_std.fill_(float(mel.std()))
    step = {"n": 0}
    learner = LeWMLoss(model, 150, step_fn=lambda: step["n"])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for step["n"] in range(150):
        out = learner(tokens, token_mask, None, mel, mel_mask, torch.Generator().manual_seed(step["n"]))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        history.append({k: float(out[k].detach()) for k in ("loss", "recon", "stop", "pred", "copy")})
    first, last = history[0], history[-1]
    assert last["loss"] < 0.35 * first["loss"], (first, last)
    assert last["recon"] < 0.4 * first["recon"] and last["stop"] < 0.5 * first["stop"]
    assert last["pred"] < last["copy"]          # the predictor beats copying the previous frame
    assert all(math.isfinite(v) for v in last.values())


def test_trainer_trains_lewm_and_logs_its_terms(tmp_path, tiny_corpus):
    trainer = Trainer(lewm_config(tiny_corpus, sample_every=6), tmp_path, progress=False)
    assert isinstance(trainer.model, LeWMModel) and trainer.objective is None
    last = trainer.fit()
    assert last.name == "step_00000006.pt"
    rows = read_metrics(tmp_path / "metrics.jsonl")
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4, 5, 6]
    for r in train_rows:
        for key in TERMS + ("loss", "grad_norm"):
            assert math.isfinite(r[key]), key
        assert "flow" not in r
    assert [r["kl_weight"] for r in train_rows][:2] == pytest.approx([0.0, 0.01 / 1.2])   # ramp over 20% of 6 steps
    val_rows = [r for r in rows if "val_loss" in r]
    assert len(val_rows) == 2
    for r in val_rows:                          # the validation split's mean of each term, e.g. the diagonality
        assert set(r["val_terms"]) == set(TERMS) and 0.0 < r["val_terms"]["align"] < 1.0
    assert (tmp_path / "samples" / "step_00000006.wav").is_file()
    ck = load_checkpoint(last)
    assert ck.config.model.family == "lewm" and ck.speakers == ["alice", "bob"]
    check_fits_model(ck)


class StopAt(Callback):
    def __init__(self, step):
        self.at = step

    def on_step_end(self, trainer, step, result):
        if step == self.at:
            trainer.request_stop()


def test_lewm_resume_is_bit_identical(tmp_path, tiny_corpus):
    cfg = lewm_config(tiny_corpus, steps=6, checkpoint_every=100, val_every=0)
    cfg = merge(cfg, {"lewm": {"ss_start": 0.0, "ss_end": 0.5}})     # scheduled sampling on across the cut
    full = Trainer(cfg, tmp_path / "a", progress=False)
    full.fit()
    part = Trainer(cfg, tmp_path / "b", progress=False, callbacks=[StopAt(3)])
    assert part.fit().name == "step_00000003.pt"
    resumed = Trainer(cfg, tmp_path / "b", progress=False, resume=True)
    assert resumed.step == 3
    resumed.fit()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    la = [r["loss"] for r in read_metrics(tmp_path / "a" / "metrics.jsonl") if "loss" in r]
    lb = [r["loss"] for r in read_metrics(tmp_path / "b" / "metrics.jsonl") if "loss" in r]
    assert la == lb


@pytest.fixture(scope="module")
def lewm_checkpoint(tmp_path_factory, tiny_corpus):
    out = tmp_path_factory.mktemp("lewm_run")
    return Trainer(lewm_config(tiny_corpus, steps=3, val_every=0), out, progress=False).fit()


def test_checkpoint_round_trip_into_the_synthesizer(lewm_checkpoint):
    synth = core.Synthesizer.from_checkpoint(lewm_checkpoint, device="cpu", vocoder="griffin-lim")
    assert isinstance(synth, LeWMSynthesizer) and isinstance(synth, core.Synthesizer)
    ck = load_checkpoint(lewm_checkpoint)
    state = synth.model.state_dict()
    assert all(torch.equal(state[k], ck.weights[k]) for k in ck.weights)
    clip = synth.synthesize("Hello there.", seed=5, speaker="bob", temperature=0.3)
    assert isinstance(clip, core.Synthesis)
    assert clip.audio.dtype == np.float32 and clip.audio.ndim == 1 and np.abs(clip.audio).max() <= 1.0
    assert clip.mel.shape[0] == 100 and clip.sample_rate == 24000 and clip.nfe >= 1
    assert set(clip.timings) == {"acoustic", "vocoder", "total"}
    s = clip.settings
    assert s["family"] == "lewm" and s["objective"] == "lewm" and s["seed"] == 5 and s["speaker"] == "bob"
    assert s["checkpoint_sha256"] == ck.sha256 and s["temperature"] == 0.3
    # the settings re-render it
    again = synth.synthesize(s["text"], temperature=s["temperature"], min_length_ratio=s["min_length_ratio"],
                             max_length_ratio=s["max_length_ratio"], seed=s["seed"], speaker=s["speaker"])
    np.testing.assert_array_equal(again.mel, clip.mel)


def test_synthesizer_batch_equals_single_and_refuses_flow_options(lewm_checkpoint):
    synth = core.Synthesizer.from_checkpoint(lewm_checkpoint, device="cpu", vocoder="griffin-lim")
    texts = ["One short line.", "A somewhat longer line of text to speak."]
    batch = synth.synthesize(texts, seed=7, temperature=0.2)
    for k, text in enumerate(texts):
        alone = synth.synthesize(text, seed=7 + k, temperature=0.2)
        assert alone.mel.shape == batch[k].mel.shape
        np.testing.assert_allclose(alone.mel, batch[k].mel, atol=1e-4)
    with pytest.raises(core.ConfigError, match="steps, cfg apply to flow-matching checkpoints only"):
        synth.synthesize("hi", steps=4, cfg=1.0)
    with pytest.raises(core.ConfigError, match="return_trajectory"):
        synth.synthesize("hi", return_trajectory=True)
    with pytest.raises(core.ConfigError, match="temperature must be in"):
        synth.synthesize("hi", temperature=-1.0)
    with pytest.raises(core.ConfigError, match="min_length_ratio"):
        synth.synthesize("hi", min_length_ratio=5.0, max_length_ratio=2.0)
    with pytest.raises(ValueError, match="text is empty"):
        synth.synthesize("   ")


def test_a_lewm_checkpoint_with_a_flow_config_is_refused(lewm_checkpoint, tmp_path):
    from core import save_checkpoint

    ck = load_checkpoint(lewm_checkpoint)
    flow = dataclasses.replace(ck.config, model=dataclasses.replace(ck.config.model, family="flow"))
    bad = save_checkpoint(tmp_path / "bad.pt", config=flow, weights=ck.weights, speakers=ck.speakers)
    with pytest.raises(core.CheckpointError, match="does not fit the model its config describes"):
        core.Synthesizer.from_checkpoint(bad, device="cpu", vocoder="griffin-lim")


def test_cli_trains_a_lewm_preset(tmp_path, tiny_corpus, capsys):
    from core.cli import main

    assert main(["train", "--config", "lewm_tiny", "--data", str(tiny_corpus), "--steps", "2",
                 "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert "step_00000002.pt" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "step_00000002.pt").config.model.family == "lewm"
    assert main(["train", "--config", "lewm_tiny", "--data", str(tiny_corpus), "--objective", "edm",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "applies to model.family 'flow' only" in capsys.readouterr().err


def test_bf16_generation_on_cpu_gives_finite_audio(lewm_checkpoint):
    synth = core.Synthesizer.from_checkpoint(lewm_checkpoint, device="cpu", vocoder="griffin-lim", precision="bf16")
    clips = synth.synthesize(["Hello.", "Two words"], seed=1, temperature=0.2)
    assert all(np.isfinite(c.audio).all() and np.isfinite(c.mel).all() for c in clips)
    assert all(c.settings["precision"] == "bf16" for c in clips)


def test_export_refuses_flow_sampling_settings_for_a_lewm_model(lewm_checkpoint, tmp_path):
    from core.export import export_checkpoint

    with pytest.raises(ConfigError, match="unknown LeWM inference option 'steps'; valid: temperature, min_length_ratio"):
        export_checkpoint(lewm_checkpoint, tmp_path / "l.pt", "fp16", sampling={"steps": 4})
    assert not (tmp_path / "l.pt").exists()
