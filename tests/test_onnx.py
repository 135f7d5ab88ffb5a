"""ONNX export (``python -m core export-onnx``) and the onnxruntime backend
(``Synthesizer.from_onnx``), against the torch model they come from.

Tolerances.  Both backends compute in float32; onnxruntime fuses and orders the
reductions (MatMul, LayerNorm, Softmax) differently from torch, so outputs differ by
float round-off that grows with depth.  Measured: the tiny checkpoints' velocity
outputs (|out| <= 0.1) differ by at most 3e-8, the demo voice's (|out| up to 15) by at
most 8e-6: 3e-7 to 5e-7 of the output's largest magnitude.  So a forward must agree to
FORWARD_RTOL = 1e-5 of that magnitude (20x margin); and each test first checks that a
wiring fault of the smallest kind the export could make (the null text condition on
the wrong rows) moves the output by far more than that, so the bound can catch one.
A sampled mel carries the per-step differences through the solver: measured 5e-7 on
the tiny checkpoints, 1e-5 on the demo voice (log-mel values up to ~12), MEL_ATOL = 1e-4.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from sampling_fixtures import cfm_checkpoint, meanflow_checkpoint  # noqa: E402,F401

from core.checkpoint import CheckpointError, load_checkpoint  # noqa: E402
from core.cli import main  # noqa: E402
from core.onnx_export import SETTINGS_FILE, export_onnx  # noqa: E402
from core.sampling.synthesizer import Synthesizer  # noqa: E402

FORWARD_RTOL = 1e-5
MEL_ATOL = 1e-4
TEXT = "Red and blue. Green tones!"


@pytest.fixture(scope="module")
def cfm_export(cfm_checkpoint, tmp_path_factory):
    return export_onnx(cfm_checkpoint, tmp_path_factory.mktemp("onnx_cfm"))


@pytest.fixture(scope="module")
def meanflow_export(meanflow_checkpoint, tmp_path_factory):
    return export_onnx(meanflow_checkpoint, tmp_path_factory.mktemp("onnx_meanflow"))


def bound(reference: torch.Tensor) -> float:
    """Allowed max |onnx - torch| for an output: FORWARD_RTOL of its largest magnitude."""
    return FORWARD_RTOL * max(reference.abs().max().item(), 1e-3)


def _pair(request, objective):
    ck = request.getfixturevalue(f"{objective}_checkpoint")
    folder = request.getfixturevalue(f"{objective}_export")
    torch_synth = Synthesizer.from_checkpoint(ck, device="cpu", vocoder="griffin-lim")
    onnx_synth = Synthesizer.from_onnx(folder, vocoder="griffin-lim")
    return torch_synth, onnx_synth


def test_export_writes_two_graphs_and_the_settings(cfm_checkpoint, cfm_export, meanflow_export):
    ck = load_checkpoint(cfm_checkpoint)
    settings = json.loads((cfm_export / SETTINGS_FILE).read_text())
    assert {p.name for p in cfm_export.iterdir()} == {"text.onnx", "velocity.onnx", SETTINGS_FILE}
    assert settings["checkpoint_sha256"] == ck.sha256 and settings["objective"] == "cfm"
    assert settings["config"]["audio"] == ck.config.to_dict()["audio"]          # mel settings
    assert settings["config"]["sampling"] == ck.config.to_dict()["sampling"]    # sampling defaults
    assert settings["tokenizer"] == ck.extra["tokenizer"]
    mean, std = ck.weights["mel_mean"].item(), ck.weights["mel_std"].item()
    assert settings["mel_mean"] == pytest.approx(mean) and settings["mel_std"] == pytest.approx(std)
    speaker = ["speaker"] if ck.config.model.n_speakers > 1 else []   # the tiny corpus has several
    assert settings["graphs"]["velocity"]["inputs"] == ["x", "t", "cond", "mel_mask", "drop", *speaker]
    assert settings["graphs"]["text"]["inputs"] == ["tokens", "token_mask"] + (["speakers"] if speaker else [])
    mf = json.loads((meanflow_export / SETTINGS_FILE).read_text())
    assert mf["graphs"]["velocity"]["inputs"] == ["x", "t", "cond", "mel_mask", "drop", *speaker, "r"]


@pytest.mark.parametrize("objective", ["cfm", "meanflow"])
@pytest.mark.parametrize("batch,n_tokens", [(1, 5), (3, 13)])  # neither is the export's example (2, 7)
def test_each_forward_matches_torch(request, objective, batch, n_tokens):
    ref, onx = _pair(request, objective)
    gen = torch.Generator().manual_seed(batch)
    vocab = ref.model.config.vocab_size
    tokens = torch.randint(1, vocab, (batch, n_tokens), generator=gen)
    mask = torch.ones(batch, n_tokens, dtype=torch.bool)
    if batch > 1:
        mask[-1, n_tokens // 2:] = False
    tokens[~mask] = 0
    spk = torch.arange(batch) % ref.model.config.n_speakers
    with torch.inference_mode():
        enc = ref.model.encode(tokens, mask, spk)
        hidden, log_d, _ = onx.model.encode(tokens, mask, spk)
        assert (hidden - enc.hidden).abs().max() <= bound(enc.hidden)
        assert (log_d - enc.log_durations).abs().max() <= bound(enc.log_durations)
        cond = ref.model.inference_conditioning(tokens, mask, spk, duration_scale=1.3)
        cond_onnx = onx.model.inference_conditioning(tokens, mask, spk, duration_scale=1.3)
        assert torch.equal(cond.durations, cond_onnx.durations)
        assert (cond.cond - cond_onnx.cond).abs().max() <= bound(cond.cond)
        # the CFG call: 2B rows, the second half with the null text condition
        both = cond.repeat(2)
        drop = torch.arange(2 * batch) >= batch
        x = torch.randn(2 * batch, ref.model.n_mels, both.cond.shape[1], generator=gen)
        for t in (0.0, 0.37, 1.0):
            tt = torch.full((2 * batch,), t)
            r = tt * 0.5 if objective == "meanflow" else None
            want = ref.model.predict(x, tt, both, r=r, drop=drop)
            got = onx.model.predict(x, tt, both, r=r, drop=drop)
            assert got.shape == want.shape
            assert (got - want).abs().max() <= bound(want), (t, (got - want).abs().max())
            miswired = ref.model.predict(x, tt, both, r=r, drop=~drop)
            assert (miswired - want).abs().max() > 100 * bound(want)
            assert torch.all(got[~both.mel_mask[:, None, :].expand_as(got)] == 0)  # padding stays zero
        if objective == "meanflow":  # r = None means r = t in both
            want = ref.model.predict(x, tt, both, drop=drop)
            assert (onx.model.predict(x, tt, both, drop=drop) - want).abs().max() <= bound(want)


@pytest.mark.parametrize("objective,options", [("cfm", dict(steps=4, cfg=0.0)), ("cfm", dict(steps=3, cfg=2.0,
                                                                                               solver="heun")),
                                               ("meanflow", dict(steps=2, cfg=1.0))])
def test_same_seed_gives_the_same_mel_on_both_backends(request, objective, options):
    ref, onx = _pair(request, objective)
    a = ref.synthesize(TEXT, seed=5, **options)
    b = onx.synthesize(TEXT, seed=5, **options)
    assert a.mel.shape == b.mel.shape and a.nfe == b.nfe
    assert np.abs(a.mel - b.mel).max() < MEL_ATOL
    assert b.settings["backend"] == "onnx" and a.settings["backend"] == "torch"
    assert b.settings["checkpoint_sha256"] == a.settings["checkpoint_sha256"]


def test_cli_exports_and_synthesises(cfm_checkpoint, tmp_path):
    folder = tmp_path / "export"
    assert main(["export-onnx", "--checkpoint", str(cfm_checkpoint), "--out", str(folder)]) == 0
    wav = tmp_path / "a.wav"
    assert main(["synth", "--onnx", str(folder), "--text", TEXT, "--out", str(wav), "--steps", "2",
                 "--seed", "1", "--vocoder", "griffin-lim"]) == 0
    import soundfile as sf

    audio, rate = sf.read(wav, dtype="float32")
    ref = Synthesizer.from_onnx(folder, vocoder="griffin-lim").synthesize(TEXT, steps=2, seed=1)
    assert rate == ref.sample_rate and np.array_equal(audio, ref.audio)


def test_bad_folders_are_one_line_errors(tmp_path, capsys, cfm_checkpoint):
    with pytest.raises(CheckpointError, match="no such ONNX export folder"):
        Synthesizer.from_onnx(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="settings.json is missing"):
        Synthesizer.from_onnx(tmp_path)
    assert main(["synth", "--onnx", str(tmp_path), "--text", "hi", "--out", str(tmp_path / "x.wav")]) == 2
    assert main(["synth", "--onnx", str(tmp_path), "--checkpoint", str(cfm_checkpoint), "--text", "hi",
                 "--out", str(tmp_path / "x.wav")]) == 2
    assert main(["export-onnx", "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 3 and "Traceback" not in err


def test_int8_graphs_run_and_stay_close(cfm_checkpoint, tmp_path):
    """``export-onnx --int8``: onnxruntime's dynamic int8 linear layers.  On the demo voice
    the velocity moves by about 2% of its size (rms; up to 5% at the largest element),
    measured; bound 10%, as for the torch int8 path.  (On the barely trained tiny
    checkpoints, whose output is a small difference of large activations, the relative
    error is ~16%, so they are not the reference here.)"""
    from core.sampling.synthesizer import DEMO_CHECKPOINT

    assert DEMO_CHECKPOINT.is_file(), "the bundled demo voice (assets/demo.pt) is tracked in git; it must be here"
    folder = tmp_path / "export"
    assert main(["export-onnx", "--out", str(folder), "--int8"]) == 0
    fp32 = Synthesizer.from_onnx(folder, vocoder="griffin-lim")
    int8 = Synthesizer.from_onnx(folder, vocoder="griffin-lim", precision="int8")
    spk = torch.zeros(2, dtype=torch.long)
    tokens = torch.randint(1, fp32.model.config.vocab_size, (2, 20), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 20, dtype=torch.bool)
    cond = fp32.model.inference_conditioning(tokens, mask, spk)
    x = torch.randn(2, fp32.model.n_mels, cond.cond.shape[1], generator=torch.Generator().manual_seed(1))
    for t in (0.1, 0.5, 0.9):
        tt = torch.full((2,), t)
        want, got = fp32.model.predict(x, tt, cond), int8.model.predict(x, tt, cond)
        assert not torch.equal(got, want) and (got - want).abs().max() < 0.1 * want.abs().max()
    clip = int8.synthesize(TEXT, steps=2, seed=0)
    assert clip.settings["precision"] == "int8" and clip.settings["backend"] == "onnx"
    assert np.isfinite(clip.audio).all()
    plain = export_onnx(cfm_checkpoint, tmp_path / "plain")
    with pytest.raises(CheckpointError, match="--int8"):
        Synthesizer.from_onnx(plain, precision="int8")
