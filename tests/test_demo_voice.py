"""The bundled demo voice ``assets/demo.pt``: present, small, safe to load, and intelligible.

The voice is the small preset trained on the flite corpus (``assets/README.md`` gives the
command and the full held-out table).  These tests check what a fresh clone promises:
the file is committed and under 25 MB, it is the exported EMA weights of the training
run ``assets/demo_config.json`` describes, ``Synthesizer.from_checkpoint()`` with no path
loads it, and pocketsphinx understands it (bound pinned from the measured table).
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.checkpoint import load_checkpoint
from core.config import Config
from core.eval import read_sentences
from core.sampling.synthesizer import DEMO_CHECKPOINT, Synthesizer

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def test_demo_voice_is_committed_small_and_an_export_of_the_documented_run():
    assert DEMO_CHECKPOINT == ASSETS / "demo.pt" and DEMO_CHECKPOINT.is_file()
    assert DEMO_CHECKPOINT.stat().st_size < 25 * 2**20
    ck = load_checkpoint(DEMO_CHECKPOINT)
    assert ck.train_state is None and ck.model_weights is None       # sampling weights only
    assert ck.speakers == ["awb", "kal16", "rms", "slt"]
    want = Config.load(ASSETS / "demo_config.json")
    # the trainer fills in the speaker count and the vocabulary of the chars tokenizer it built
    assert ck.config.model == replace(want.model, n_speakers=4, vocab_size=56)
    # the objective's own settings (the stored config also holds EDM's former default sigma_data 0.5,
    # which a cfm voice never reads)
    for key in ck.config.objective.KEYS_OF["cfm"] + ("name", "duration_weight"):
        assert getattr(ck.config.objective, key) == getattr(want.objective, key), key
    assert ck.config.audio == want.audio
    assert ck.extra["exported_from"]["step"] == want.training.steps == ck.step
    assert ck.extra["exported_from"]["dtype"] == "fp16"


def test_demo_sentences_are_the_held_out_set():
    sentences = read_sentences(ASSETS / "demo_sentences.txt")
    assert len(sentences) == 100 and len({s.text for s in sentences}) == 100
    assert json.loads((ASSETS / "corpus.json").read_text())["heldout"] == 100


def test_studio_with_no_settings_offers_the_demo_voice_first(tmp_path):
    from studio.config import find_checkpoints, parse_settings

    settings = parse_settings([], env={}, cwd=tmp_path)          # `panel serve studio/app.py`, nothing else
    entries = find_checkpoints(settings)
    assert entries and entries[0].path == DEMO_CHECKPOINT.resolve()  # the Explorer selects the first entry


@pytest.fixture(scope="module")
def demo():
    return Synthesizer.from_checkpoint(device="cpu", vocoder="griffin-lim")


def test_no_path_means_the_demo_voice(demo):
    assert Path(demo.checkpoint_path) == DEMO_CHECKPOINT
    clip = demo.synthesize("Hello there.", steps=4, speaker="slt", seed=0)
    assert clip.settings["checkpoint_sha256"] == load_checkpoint(DEMO_CHECKPOINT).sha256
    assert clip.audio.dtype == np.float32 and np.isfinite(clip.audio).all() and np.abs(clip.audio).max() <= 1
    # flite's slt speaks about 14 characters a second on the corpus; the demo keeps that pace
    seconds = len(clip.audio) / clip.sample_rate
    assert 0.5 < seconds < 2.0, seconds


@pytest.mark.skipif(importlib.util.find_spec("pocketsphinx") is None, reason="pocketsphinx (eval extra) is not installed")
def test_demo_voice_is_intelligible(demo):
    from core.eval import Recognizer, wer

    sentences = read_sentences(ASSETS / "demo_sentences.txt")[:8]
    clips = [demo.synthesize(s.text, steps=10, solver="euler", schedule="sway", sway=-1.0, speaker="slt", seed=0)
             for s in sentences]
    rec = Recognizer()
    hyps = [rec.transcribe(c.audio, c.sample_rate) for c in clips]
    result = wer([s.text for s in sentences], hyps)
    assert result.wer <= WER_BOUND, list(zip([s.text for s in sentences], hyps))


# pocketsphinx on flite's own slt recordings of these 8 sentences: 31 errors in 79 words
# (0.392, runs/demo_table/ref_raw.json from benchmarks/demo_voice_table.py); issue 5 asks the
# demo voice for at most 1.5x that at 10 Euler steps, sway -1.  Measured 2026-12-02 on this
# machine (Griffin-Lim, seed 0): 44 errors, WER 0.557 (0.468 over all 100, see assets/README.md).
WER_BOUND = 1.5 * 31 / 79
