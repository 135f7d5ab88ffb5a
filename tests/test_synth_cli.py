"""``python -m core synth`` in a subprocess: a valid 24 kHz float WAV and the settings
JSON on success; one ``error:`` line, exit 2 and no traceback on bad input."""

from __future__ import annotations

import json
from contextlib import nullcontext
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sampling_fixtures import cfm_checkpoint  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


def synth(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "core", "synth", *args], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=300)


def test_synth_writes_a_24khz_wav_and_prints_settings(cfm_checkpoint, tmp_path):
    out = tmp_path / "a.wav"
    proc = synth("--checkpoint", str(cfm_checkpoint), "--text", "red blue cat", "--out", str(out),
                 "--steps", "3", "--solver", "heun", "--seed", "4", "--speaker", "bob", "--cfg", "0.5",
                 "--vocoder", "griffin-lim", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    settings = json.loads(proc.stdout)
    assert settings["seed"] == 4 and settings["solver"] == "heun" and settings["steps"] == 3
    assert settings["speaker"] == "bob" and settings["cfg"] == 0.5 and settings["nfe"] == 6
    assert settings["vocoder"] == "griffin-lim" and settings["out"] == str(out)
    info = sf.info(out)
    assert info.samplerate == 24000 and info.channels == 1 and info.subtype == "FLOAT"
    audio, _ = sf.read(out, dtype="float32")
    assert np.isfinite(audio).all() and 0 < np.abs(audio).max() <= 1.0
    assert info.frames == round(settings["duration_s"] * 24000)


def test_text_from_stdin(cfm_checkpoint, tmp_path):
    out = tmp_path / "b.wav"
    proc = synth("--checkpoint", str(cfm_checkpoint), "--text", "-", "--out", str(out), "--steps", "1",
                 "--seed", "0", "--vocoder", "griffin-lim", "--device", "cpu", stdin="dog sun\n\n")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["text"] == "dog sun" and out.is_file()


@pytest.mark.parametrize("args, message", [
    (["--checkpoint", "{missing}"], "no such checkpoint file"),
    (["--solver", "euler2"], "unknown solver 'euler2'; valid: euler, midpoint, heun, rk4"),
    (["--steps", "0"], "--steps: must be an integer in 1..1000, got 0"),
    (["--sway", "1.5"], "--sway: must be a finite number in [-1, 1], got '1.5'"),
    (["--text", "   "], "text is empty"),
    (["--steps", "many"], "--steps: must be an integer in 1..1000, got 'many'"),
])
def test_bad_input_is_one_line_and_exit_2(cfm_checkpoint, tmp_path, args, message):
    base = {"--checkpoint": str(cfm_checkpoint), "--text": "red", "--out": str(tmp_path / "c.wav"),
            "--vocoder": "griffin-lim", "--device": "cpu"}
    extra = [a.format(missing=tmp_path / "nope.pt") for a in args]
    for key, value in zip(extra[::2], extra[1::2]):
        base[key] = value
    proc = synth(*[x for kv in base.items() for x in kv])
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "c.wav").exists()


def test_left_out_options_come_from_the_checkpoint(cfm_checkpoint, tmp_path):
    from dataclasses import replace

    from core.checkpoint import load_checkpoint, save_checkpoint
    from core.config import SamplingConfig

    ck = load_checkpoint(cfm_checkpoint)
    tuned = save_checkpoint(tmp_path / "tuned.pt", weights=ck.weights, step=ck.step, speakers=ck.speakers,
                            config=replace(ck.config, sampling=SamplingConfig(steps=3, solver="midpoint", cfg=1.0)))
    proc = synth("--checkpoint", str(tuned), "--text", "red blue cat", "--out", str(tmp_path / "t.wav"),
                 "--seed", "1", "--vocoder", "griffin-lim", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert (s["steps"], s["solver"], s["cfg"], s["nfe"]) == (3, "midpoint", 1.0, 6)
    proc = synth("--checkpoint", str(tuned), "--text", "red blue cat", "--out", str(tmp_path / "u.wav"),
                 "--seed", "1", "--steps", "2", "--solver", "euler", "--vocoder", "griffin-lim", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert (s["steps"], s["solver"], s["cfg"], s["nfe"]) == (2, "euler", 1.0, 2)


# ----------------------------------------------------------------------------- LeWM checkpoints


def _ref_wav(path: Path, rate: int = 16000) -> Path:
    t = np.arange(rate) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), rate)
    return path


def test_synth_with_a_lewm_checkpoint_and_a_voice_prompt(tiny_lewm_checkpoint, tmp_path):
    out = tmp_path / "l.wav"
    ref = _ref_wav(tmp_path / "ref.wav")
    proc = synth("--checkpoint", str(tiny_lewm_checkpoint), "--text", "red blue cat", "--out", str(out),
                 "--temperature", "0.3", "--min-length-ratio", "1", "--max-length-ratio", "3", "--seed", "2",
                 "--prompt-audio", str(ref), "--prompt-text", "a low hum", "--vocoder", "griffin-lim",
                 "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["family"] == "lewm" and report["temperature"] == 0.3 and report["max_length_ratio"] == 3.0
    assert report["min_length_ratio"] == 1.0 and report["seed"] == 2
    assert report["prompt_audio"] == str(ref) and report["prompt_text"] == "a low hum"
    audio, rate = sf.read(out)
    assert rate == 24000 and len(audio) > 0 and np.isfinite(audio).all()


@pytest.mark.parametrize("which, args, message", [
    ("lewm", ["--steps", "4", "--cfg", "1"], "--steps, --cfg apply to flow-matching checkpoints only"),
    ("lewm", ["--solver", "heun"], "--solver applies to flow-matching checkpoints only"),
    ("flow", ["--max-length-ratio", "5"], "--max-length-ratio applies to LeWM checkpoints only"),
    ("flow", ["--prompt-audio", "{ref}", "--prompt-text", "hum"], "--prompt-audio, --prompt-text apply to LeWM"),
    ("lewm", ["--prompt-audio", "{ref}"], "needs its transcript"),
    ("lewm", ["--prompt-audio", "{missing}", "--prompt-text", "hum"], "--prompt-audio: no such audio file"),
    ("flow", ["--temperature", "5"], "temperature"),
    ("lewm", ["--temperature", "11"], "--temperature: must be a finite number in [0, 10]"),
])
def test_family_flags_are_refused_in_one_line(tiny_lewm_checkpoint, cfm_checkpoint, tmp_path, capsys, which, args,
                                              message):
    from core.cli import main

    ref = _ref_wav(tmp_path / "ref.wav")
    ck = tiny_lewm_checkpoint if which == "lewm" else cfm_checkpoint
    extra = [a.format(ref=ref, missing=tmp_path / "nope.wav") for a in args]
    with pytest.raises(SystemExit) if "must be a finite" in message else nullcontext():
        code = main(["synth", "--checkpoint", str(ck), "--text", "red", "--out", str(tmp_path / "x.wav"),
                     "--vocoder", "griffin-lim", "--device", "cpu", *extra])
        assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert not (tmp_path / "x.wav").exists()
