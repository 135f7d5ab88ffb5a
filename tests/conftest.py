"""Shared fixtures: a tiny synthetic speech-like corpus (no flite needed) and configs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

torch.set_num_threads(2)

WORDS = ["red", "blue", "cat", "dog", "sun", "tree", "map", "run", "big", "old", "sea", "hat"]


def make_corpus(root: Path, n: int = 12, speakers=("alice", "bob"), seed: int = 0, sr: int = 24000) -> Path:
    """Write ``n`` short harmonic clips whose pitch follows the words, and a CSV manifest
    ``audio_path,text,speaker``.  Returns the manifest path."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "wavs").mkdir(exist_ok=True)
    rows = []
    for i in range(n):
        words = [WORDS[j] for j in rng.integers(0, len(WORDS), size=2)]
        speaker = speakers[i % len(speakers)]
        base = 120.0 if speaker == speakers[0] else 200.0
        pieces = []
        for w in words:
            f0 = base * (1.0 + 0.1 * WORDS.index(w))
            t = np.arange(int(0.25 * sr)) / sr
            tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5))
            env = np.sin(np.pi * t / t[-1]) ** 2
            pieces.append(0.2 * tone * env)
            pieces.append(np.zeros(int(0.05 * sr)))
        audio = np.concatenate(pieces).astype(np.float32)
        audio += 0.003 * rng.standard_normal(audio.shape).astype(np.float32)
        path = root / "wavs" / f"utt{i:03d}.wav"
        sf.write(path, audio, sr)
        rows.append({"audio_path": f"wavs/utt{i:03d}.wav", "text": " ".join(words), "speaker": speaker})
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["audio_path", "text", "speaker"])
        w.writeheader()
        w.writerows(rows)
    return manifest


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def tiny_config(manifest: Path, **training):
    """The tiny preset on ``manifest`` with small batches; overrides go to ``training``."""
    from core.config import merge, preset

    t = {"data": str(manifest), "batch_frames": 400, "max_batch_size": 4, "steps": 6, "log_every": 1,
         "checkpoint_every": 3, "val_every": 3, "val_fraction": 0.2, "warmup_steps": 2, "keep_checkpoints": 10}
    t.update(training)
    return merge(preset("tiny"), {"training": t})


@pytest.fixture
def tiny_cfg(tiny_corpus):
    return tiny_config(tiny_corpus)
