"""The bundled voices' one list (core.bundled), names accepted where a checkpoint is."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from core import bundled
from core.bundled import BUNDLED_VOICES, DEMO_CHECKPOINT, BundledVoice, bundled_voice, resolve_checkpoint
from core.cli.types import checkpoint_arg

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def test_the_list_names_each_voice_once_and_the_default_first():
    names = [v.name for v in BUNDLED_VOICES]
    assert len(set(names)) == len(names) and all("/" not in n and "." not in n for n in names)
    assert len({v.path for v in BUNDLED_VOICES}) == len(names)
    assert DEMO_CHECKPOINT == BUNDLED_VOICES[0].path == ASSETS / "demo_everyday.pt"
    assert all(v.path.parent == ASSETS for v in BUNDLED_VOICES)
    assert bundled_voice("everyday").path == DEMO_CHECKPOINT and bundled_voice("grammar").path == ASSETS / "demo.pt"
    with pytest.raises(ValueError, match="unknown bundled voice 'nope'; valid: everyday, meanflow, grammar, lewm"):
        bundled_voice("nope")


def test_a_name_resolves_to_its_file_and_a_path_stays_a_path(tmp_path, monkeypatch):
    present = tmp_path / "a.pt"
    present.write_bytes(b"x")
    voices = (BundledVoice("alpha", present, "alpha"), BundledVoice("beta", tmp_path / "b.pt", "beta"))
    monkeypatch.setattr(bundled, "BUNDLED_VOICES", voices)
    monkeypatch.chdir(tmp_path)
    assert resolve_checkpoint("alpha") == present and resolve_checkpoint(None) is None
    assert resolve_checkpoint("runs/x/step_1.pt") == Path("runs/x/step_1.pt")
    with pytest.raises(FileNotFoundError, match="bundled voice 'beta' .* is not in this checkout"):
        resolve_checkpoint("beta")
    with pytest.raises(argparse.ArgumentTypeError, match="'beta'"):
        checkpoint_arg("beta")
    assert checkpoint_arg("alpha") == str(present)
    (tmp_path / "alpha").write_bytes(b"y")  # a file of that name in the working directory wins
    assert resolve_checkpoint("alpha") == Path("alpha")


def test_synth_and_the_synthesizer_take_a_bundled_name(tmp_path, monkeypatch):
    from core.checkpoint import CheckpointError
    from core.cli import main
    from core.sampling.synthesizer import Synthesizer

    synth = Synthesizer.from_checkpoint("grammar", vocoder="griffin-lim")
    assert Path(synth.checkpoint_path) == ASSETS / "demo.pt"
    out = tmp_path / "a.wav"
    assert main(["synth", "--checkpoint", "everyday", "--text", "Hi.", "--out", str(out), "--steps", "2",
                 "--vocoder", "griffin-lim", "--threads", "1"]) == 0
    assert out.stat().st_size > 1000
    monkeypatch.setattr(bundled, "BUNDLED_VOICES", (BundledVoice("gone", tmp_path / "gone.pt", "gone"),))
    with pytest.raises(CheckpointError, match="bundled voice 'gone'"):
        Synthesizer.from_checkpoint("gone", vocoder="griffin-lim")
