"""Streaming synthesis (``Synthesizer.stream``, ``python -m core synth --stream``)
against ``synthesize`` of the same text, options and seed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.cli import main
from core.config import ConfigError
from core.sampling.streaming import CrossfadeStream
from core.sampling.synthesizer import Synthesizer, crossfade_join
from core.text import TextError
from sampling_fixtures import cfm_checkpoint, cfm_synth, meanflow_checkpoint, write_vocos_folder  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
# three sentences; the middle one short, so the chunks differ in length
TEXT = "Red blue cat dog, green tone. Cat sat! The blue dog ran to the red cat."


@pytest.fixture(scope="module")
def vocos_synth(cfm_checkpoint, tmp_path_factory):
    folder = write_vocos_folder(tmp_path_factory.mktemp("vocos"))
    return Synthesizer.from_checkpoint(cfm_checkpoint, device="cpu", vocoder=str(folder))


@pytest.mark.parametrize("overlap", [0, 7, 50])
def test_crossfade_stream_equals_crossfade_join(overlap):
    rng = np.random.default_rng(overlap)
    # pieces shorter than the overlap too: the fade then reaches back into earlier pieces
    pieces = [rng.standard_normal(n) for n in (120, 3, 40, 1, 75, 60)]
    join = CrossfadeStream(overlap)
    out = []
    for piece in pieces:
        join.start(len(piece))
        cuts = np.sort(rng.integers(0, len(piece) + 1, size=3))
        for part in np.split(piece, cuts):
            out.append(join.feed(part))
    out.append(join.finish())
    got = np.concatenate(out)
    want = crossfade_join(pieces, overlap)
    assert got.shape == want.shape and np.allclose(got, want, rtol=0, atol=1e-12)


def _collect(gen):
    pieces = list(gen)
    assert pieces and all(p.dtype == np.float32 and p.ndim == 1 for p in pieces)
    return pieces, np.concatenate(pieces)


@pytest.mark.parametrize("chunking", ["sentence", "pack"])
def test_stream_concatenation_matches_synthesize_with_vocos(vocos_synth, chunking):
    """Vocos: windows with 32 frames of context reproduce whole-mel vocoding (the tiny
    Vocos reaches 3 + 3 * 2 + 2 frames), so only float round-off remains: the chunk
    sampled alone vs as a row of the padded batch (mel differences ~1e-6)."""
    ref = vocos_synth.synthesize(TEXT, steps=3, seed=4, chunking=chunking)
    assert ref.settings["chunks"] == (3 if chunking == "sentence" else 1)
    pieces, audio = _collect(vocos_synth.stream(TEXT, steps=3, seed=4, chunking=chunking, window_frames=16))
    assert len(pieces) > ref.settings["chunks"]  # windows inside the chunks, not one piece each
    assert np.abs(ref.audio).max() <= 1.0        # so synthesize did not rescale (see streaming docs)
    assert audio.shape == ref.audio.shape
    assert np.abs(audio - ref.audio).max() < 1e-5


def test_stream_with_meanflow_and_guidance(meanflow_checkpoint, tmp_path):
    synth = Synthesizer.from_checkpoint(meanflow_checkpoint, device="cpu",
                                        vocoder=str(write_vocos_folder(tmp_path / "v")))
    ref = synth.synthesize(TEXT, steps=2, cfg=1.5, seed=9, chunking="sentence")
    _, audio = _collect(synth.stream(TEXT, steps=2, cfg=1.5, seed=9))
    assert audio.shape == ref.audio.shape and np.abs(audio - ref.audio).max() < 1e-5


def test_stream_with_griffin_lim_is_close(cfm_synth):
    """Griffin-Lim turns mel differences of float round-off (~1e-6: a chunk sampled
    alone vs as a padded batch row) into sample differences of up to ~1e-2 (32 phase
    iterations, momentum 0.99; on the demo voice 1e-6 noise on a mel moved its waveform
    by 0.011).  So the stream is compared with synthesize by its log-mel (measured mean
    error 1.4e-5 here), and its windowing (identical mels) against whole-chunk vocoding
    by samples (measured 3e-7 here, 6e-6 on the demo voice with 64-frame windows)."""
    import torch

    from core.audio import mel_spectrogram

    ref = cfm_synth.synthesize(TEXT, steps=3, seed=2, chunking="sentence")
    _, windowed = _collect(cfm_synth.stream(TEXT, steps=3, seed=2, window_frames=32))
    _, whole = _collect(cfm_synth.stream(TEXT, steps=3, seed=2, window_frames=None))
    assert windowed.shape == whole.shape == ref.audio.shape
    mel = lambda a: mel_spectrogram(torch.from_numpy(a)[None])[0]  # noqa: E731
    assert (mel(windowed) - mel(ref.audio)).abs().mean() < 1e-3
    assert np.abs(windowed - whole).max() < 1e-4


def test_stream_checks_everything_before_any_work(cfm_synth):
    with pytest.raises(TextError, match="empty"):
        cfm_synth.stream("   ")
    with pytest.raises(ConfigError, match="steps"):
        cfm_synth.stream(TEXT, steps=0)
    with pytest.raises(ConfigError, match="one text"):
        cfm_synth.stream([TEXT])
    with pytest.raises(ConfigError, match="window_frames"):
        cfm_synth.stream(TEXT, window_frames=0)
    with pytest.raises(ConfigError, match="chunking"):
        cfm_synth.stream(TEXT, chunking="words")


def test_cli_stream_writes_the_wav(cfm_checkpoint, tmp_path, capsys):
    out = tmp_path / "s.wav"
    assert main(["synth", "--checkpoint", str(cfm_checkpoint), "--text", TEXT, "--out", str(out), "--stream",
                 "--steps", "2", "--seed", "3", "--vocoder", "griffin-lim"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stream"] is True and report["seed"] == 3 and report["first_audio_s"] <= report["total_s"]
    audio, rate = sf.read(out, dtype="float32")
    synth = Synthesizer.from_checkpoint(cfm_checkpoint, device="cpu", vocoder="griffin-lim")
    _, want = _collect(synth.stream(TEXT, steps=2, seed=3))
    assert rate == synth.sample_rate and np.array_equal(audio, want)
    assert report["duration_s"] == pytest.approx(len(want) / rate)


def test_cli_stream_pipes_raw_float32(cfm_checkpoint, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "core", "synth", "--checkpoint", str(cfm_checkpoint),
                           "--text", "Red cat. Blue dog.", "--out", "-", "--stream", "--steps", "1", "--seed", "0",
                           "--vocoder", "griffin-lim"], cwd=ROOT, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    samples = np.frombuffer(proc.stdout, dtype="<f4")
    report = json.loads(proc.stderr.decode()[proc.stderr.decode().index("{"):])
    assert report["out"] == "-" and len(samples) == round(report["duration_s"] * report["sample_rate"])
    assert np.isfinite(samples).all() and np.abs(samples).max() <= 1.0


def test_int8_precision_runs_and_stays_close(cfm_checkpoint):
    """int8 dynamic quantisation of the linear layers (CPU): the velocity output for the
    same input moves by a few percent of its size (per-tensor int8 weights, per-call
    int8 activations), and the sampled clip is finite with about the same length."""
    import torch

    ref = Synthesizer.from_checkpoint(cfm_checkpoint, device="cpu", vocoder="griffin-lim")
    q = Synthesizer.from_checkpoint(cfm_checkpoint, device="cpu", vocoder="griffin-lim", precision="int8")
    assert type(q.model.velocity_net.blocks[0].attn.qkv).__module__.startswith("torch.ao.nn.quantized")
    assert type(ref.model.velocity_net.blocks[0].attn.qkv) is torch.nn.Linear  # the original is untouched
    tokens = torch.randint(1, ref.model.config.vocab_size, (2, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 9, dtype=torch.bool)
    spk = torch.zeros(2, dtype=torch.long)
    with torch.inference_mode():
        cond = ref.model.inference_conditioning(tokens, mask, spk)
        x = torch.randn(2, ref.model.n_mels, cond.cond.shape[1], generator=torch.Generator().manual_seed(1))
        t = torch.full((2,), 0.5)
        want, got = ref.model.predict(x, t, cond), q.model.predict(x, t, cond)
    assert not torch.equal(got, want)
    assert (got - want).abs().max() < 0.1 * want.abs().max()
    a, b = ref.synthesize(TEXT, steps=2, seed=1), q.synthesize(TEXT, steps=2, seed=1)
    assert b.settings["precision"] == "int8" and np.isfinite(b.audio).all()
    assert abs(b.duration - a.duration) < 0.1 * a.duration


def test_int8_is_refused_off_the_cpu():
    import torch

    from core.sampling.synthesizer import quantize_linear_int8

    with pytest.raises(ConfigError, match="CPU only"):
        quantize_linear_int8(torch.nn.Linear(2, 2), torch.device("cuda"))
