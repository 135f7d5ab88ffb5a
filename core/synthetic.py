"""A synthetic "speech-like" corpus for tests and benchmarks: short harmonic tones whose
pitch follows the words of the text, one pitch register per speaker, written as a
manifest dataset (``audio_path,text,speaker``).  No flite or network needed; the mapping
from text to sound is deterministic, so a model can learn it."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np

WORDS = ("red", "blue", "cat", "dog", "sun", "tree", "map", "run", "big", "old", "sea", "hat")


def make_tone_corpus(root: str | Path, n: int = 12, speakers: Sequence[str] = ("alice", "bob"),
                     words_per_utterance: int = 2, seed: int = 0, sample_rate: int = 24000) -> Path:
    """Write ``n`` clips (0.3 s per word) and ``root/manifest.csv``; returns the manifest."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "wavs").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        words = [WORDS[j] for j in rng.integers(0, len(WORDS), size=words_per_utterance)]
        speaker = speakers[i % len(speakers)]
        base = 120.0 * (1.0 + 0.6 * speakers.index(speaker))
        pieces = []
        for w in words:
            f0 = base * (1.0 + 0.1 * WORDS.index(w))
            t = np.arange(int(0.25 * sample_rate)) / sample_rate
            tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 5))
            env = np.sin(np.pi * t / t[-1]) ** 2
            pieces.append(0.2 * tone * env)
            pieces.append(np.zeros(int(0.05 * sample_rate)))
        audio = np.concatenate(pieces).astype(np.float32)
        audio += 0.003 * rng.standard_normal(audio.shape).astype(np.float32)
        sf.write(root / "wavs" / f"utt{i:04d}.wav", audio, sample_rate)
        rows.append({"audio_path": f"wavs/utt{i:04d}.wav", "text": " ".join(words), "speaker": speaker})
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["audio_path", "text", "speaker"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest
