"""``python -m core``: help lists the subcommands; bad arguments exit 2 with one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args, input=None):
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True,
                          input=input, timeout=300)


def test_help_lists_subcommands():
    proc = run("--help")
    assert proc.returncode == 0
    for name in ("synth", "train", "eval", "bench", "corpus"):
        assert name in proc.stdout


@pytest.mark.parametrize("args, needle", [
    (["train"], "required"),
    (["train", "--config", "nope.json", "--out", "x"], "cannot read config"),
    (["train", "--config", "tiny", "--out", "x"], "training.data is empty"),
    (["train", "--config", "tiny", "--out", "x", "--objective", "diffusion"], "valid: cfm, edm, meanflow"),
    (["train", "--config", "tiny", "--out", "x", "--steps", "0"], "--steps"),
    (["frobnicate"], "invalid choice"),
    (["synth", "--checkpoint", "missing.pt", "--text", "hi", "--out", "x.wav"], "missing.pt"),
    (["bench"], "required"),
    (["eval", "--sentences", "missing.txt", "--bogus"], "unrecognized arguments"),
    (["corpus"], "required"),
])
def test_bad_arguments_exit_2_with_one_line(args, needle, tmp_path):
    proc = run(*args)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert needle in lines[0]
    assert "Traceback" not in proc.stderr


def test_train_missing_data_folder(tmp_path):
    proc = run("train", "--config", "tiny", "--out", str(tmp_path / "run"), "--data", str(tmp_path / "missing"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error:")
