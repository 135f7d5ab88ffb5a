"""``core.export``: the sampling weights of a training checkpoint, optionally in half precision."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from core.cli import main
from core.export import export_checkpoint
from sampling_fixtures import cfm_checkpoint, meanflow_checkpoint  # noqa: F401


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_export_keeps_the_ema_weights_in_fp16_and_drops_the_training_state(cfm_checkpoint, tmp_path, suffix):
    src = load_checkpoint(cfm_checkpoint)
    out = export_checkpoint(cfm_checkpoint, tmp_path / f"voice{suffix}", "fp16")
    ck = load_checkpoint(out)
    assert ck.train_state is None and ck.model_weights is None
    assert ck.step == src.step and ck.speakers == src.speakers and ck.config == src.config
    assert ck.extra["tokenizer"] == src.extra["tokenizer"]
    assert ck.extra["exported_from"] == {"file": cfm_checkpoint.name, "sha256": src.sha256, "step": src.step,
                                         "dtype": "fp16"}
    assert set(ck.weights) == set(src.weights)
    for name, w in src.weights.items():
        if w.is_floating_point():
            assert ck.weights[name].dtype == torch.float16
            assert torch.equal(ck.weights[name], w.to(torch.float16)), name
        else:
            assert torch.equal(ck.weights[name], w), name
    # one fp16 copy of the weights instead of EMA + raw + two Adam moments in fp32: ~1/8
    assert out.stat().st_size < 0.2 * cfm_checkpoint.stat().st_size


def test_exported_voice_sounds_like_the_source(cfm_checkpoint, tmp_path):
    """Same seed and settings: the fp16-stored weights (run in fp32) give nearly the same mel."""
    from core.sampling.synthesizer import Synthesizer

    out = export_checkpoint(cfm_checkpoint, tmp_path / "voice.pt", "fp16")
    a = Synthesizer.from_checkpoint(cfm_checkpoint, device="cpu", vocoder="griffin-lim")
    b = Synthesizer.from_checkpoint(out, device="cpu", vocoder="griffin-lim")
    ra = a.synthesize("a short test.", steps=4, seed=3)
    rb = b.synthesize("a short test.", steps=4, seed=3)
    assert ra.mel.shape == rb.mel.shape
    spread = np.abs(ra.mel).mean()
    assert 0 < np.abs(ra.mel - rb.mel).max() < 0.02 * spread + 1e-3
    fp32 = export_checkpoint(cfm_checkpoint, tmp_path / "voice32.pt", "fp32")
    rc = Synthesizer.from_checkpoint(fp32, device="cpu", vocoder="griffin-lim").synthesize(
        "a short test.", steps=4, seed=3)
    np.testing.assert_array_equal(rc.mel, ra.mel)  # fp32 export: the same numbers exactly


def test_export_refuses_overflow_same_file_and_unknown_dtype(cfm_checkpoint, tmp_path):
    src = load_checkpoint(cfm_checkpoint)
    weights = dict(src.weights)
    name = next(k for k, v in weights.items() if v.is_floating_point())
    weights[name] = weights[name].clone().fill_(1e6)  # fp16 max is 65504
    big = save_checkpoint(tmp_path / "big.pt", config=src.config, weights=weights, speakers=src.speakers,
                          extra=src.extra)
    with pytest.raises(CheckpointError, match=f"weight {name} overflows fp16"):
        export_checkpoint(big, tmp_path / "big16.pt", "fp16")
    assert not (tmp_path / "big16.pt").exists()
    export_checkpoint(big, tmp_path / "big_bf16.pt", "bf16")  # bf16 has fp32's range
    with pytest.raises(CheckpointError, match="overwrite its source"):
        export_checkpoint(big, big, "fp16")
    from core.config import ConfigError

    with pytest.raises(ConfigError, match="unknown dtype 'fp8'; valid: fp32, fp16, bf16"):
        export_checkpoint(cfm_checkpoint, tmp_path / "x.pt", "fp8")


def test_export_cli(cfm_checkpoint, tmp_path, capsys):
    out = tmp_path / "voice.safetensors"
    assert main(["export", "--checkpoint", str(cfm_checkpoint), "--out", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["out"] == str(out) and info["bytes"] == out.stat().st_size and info["dtype"] == "fp16"
    for args, message in [(["--dtype", "int8"], "unknown dtype 'int8'; valid: fp32, fp16, bf16"),
                          (["--out", str(tmp_path / "v.bin")], "--out must end in .pt or .safetensors"),
                          (["--checkpoint", str(tmp_path / "none.pt")], "no such checkpoint file")]:
        base = {"--checkpoint": str(cfm_checkpoint), "--out": str(tmp_path / "o.pt")}
        base.update(dict(zip(args[::2], args[1::2])))
        assert main(["export", *[x for kv in base.items() for x in kv]]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1


def test_export_writes_the_recommended_sampling_settings(cfm_checkpoint, tmp_path):
    """``sampling`` lands in the config's sampling section; options left out keep the
    source's values, and the synthesizer then uses them for every option left out."""
    from core.config import SamplingConfig
    from core.sampling.synthesizer import Synthesizer

    src = load_checkpoint(cfm_checkpoint)
    assert src.config.sampling == SamplingConfig()  # the fixture keeps the stated defaults
    out = export_checkpoint(cfm_checkpoint, tmp_path / "voice.pt", "fp32", sampling={"steps": 4, "cfg": 2})
    ck = load_checkpoint(out)
    assert ck.config.sampling == SamplingConfig(steps=4, cfg=2.0)
    assert ck.config.model == src.config.model and ck.config.training == src.config.training
    assert ck.extra["exported_from"]["sampling"] == {"steps": 4, "cfg": 2.0}
    synth = Synthesizer.from_checkpoint(out, device="cpu", vocoder="griffin-lim")
    default = synth.synthesize("a short test.", seed=3)
    assert default.settings["steps"] == 4 and default.settings["cfg"] == 2.0
    explicit = Synthesizer.from_checkpoint(cfm_checkpoint, device="cpu", vocoder="griffin-lim").synthesize(
        "a short test.", seed=3, steps=4, cfg=2.0)
    np.testing.assert_array_equal(default.mel, explicit.mel)  # fp32 export: the same network


def test_export_sampling_refuses_bad_options_before_writing(cfm_checkpoint, tmp_path):
    from core.config import ConfigError

    dst = tmp_path / "voice.pt"
    for sampling, message in [({"stepz": 4}, "unknown sampler option 'stepz'; valid: steps, solver"),
                              ({"steps": 0}, r"steps must be an integer in 1\.\.1000, got 0"),
                              ({"solver": "rk5"}, "unknown solver 'rk5'; valid: euler, midpoint, heun, rk4"),
                              ({"schedule": "epss", "steps": 8}, "epss schedule is defined for steps 5, 6")]:
        with pytest.raises(ConfigError, match=message):
            export_checkpoint(cfm_checkpoint, dst, "fp16", sampling=sampling)
        assert not dst.exists()
    # epss with the source's own 10 steps is fine (the rule is checked on the merged section)
    ck = load_checkpoint(export_checkpoint(cfm_checkpoint, dst, "fp16", sampling={"schedule": "epss"}))
    assert ck.config.sampling.schedule == "epss" and ck.config.sampling.steps == 10


def test_export_cli_sampling(cfm_checkpoint, tmp_path, capsys):
    out = tmp_path / "voice.pt"
    assert main(["export", "--checkpoint", str(cfm_checkpoint), "--out", str(out),
                 "--sampling", "steps=6", "solver=midpoint", "cfg=1.5"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["sampling"] == {"steps": 6, "solver": "midpoint", "cfg": 1.5}
    sampling = load_checkpoint(out).config.sampling
    assert (sampling.steps, sampling.solver, sampling.cfg, sampling.sway) == (6, "midpoint", 1.5, -1.0)
    for item, message in [("steps", "--sampling takes NAME=VALUE, got 'steps'"),
                          ("guidance=2", "unknown inference option 'guidance'; valid: steps, solver, schedule"),
                          ("stop_on_attention=maybe", "stop_on_attention must be one of true, yes, 1, false"),
                          ("cfg=lots", "cfg must be a number, got 'lots'"),
                          ("temperature=5", r"temperature must be a number in \[0\.0, 2\.0\], got 5\.0"),
                          ("steps=2.5", r"steps must be an integer in 1\.\.1000, got 2\.5")]:
        assert main(["export", "--checkpoint", str(cfm_checkpoint), "--out", str(tmp_path / "o.pt"),
                     "--sampling", item]) == 2
        err = capsys.readouterr().err
        assert re.search(message, err) and err.count("\n") == 1, err
        assert not (tmp_path / "o.pt").exists()


def test_export_sampling_for_a_meanflow_voice_keeps_euler(meanflow_checkpoint, tmp_path):
    from core.config import ConfigError

    with pytest.raises(ConfigError, match="MeanFlow model samples by average-velocity jumps: solver must be 'euler'"):
        export_checkpoint(meanflow_checkpoint, tmp_path / "mf.pt", "fp16", sampling={"steps": 1, "solver": "heun"})
    ck = load_checkpoint(export_checkpoint(meanflow_checkpoint, tmp_path / "mf.pt", "fp16", sampling={"steps": 1}))
    assert ck.config.sampling.steps == 1 and ck.config.objective.name == "meanflow"
