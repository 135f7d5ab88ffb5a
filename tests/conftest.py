"""Shared fixtures: a tiny synthetic speech-like corpus (no flite needed) and configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# one thread, deliberately: the tests start servers, browsers and subprocesses beside
# themselves, and torch at 2 threads collapses when anything shares the 2 cores (core.threads)
torch.set_num_threads(1)
os.environ.setdefault("FLOWTTS_THREADS", "1")
# the tests never reach the Hugging Face hub: a `hub:<id>` spec fails fast instead of downloading
# (core.vocoders reads this at call time; subprocesses the tests start inherit it)
os.environ["HF_HUB_OFFLINE"] = "1"


def make_corpus(root: Path, n: int = 12, seed: int = 0) -> Path:
    from core.synthetic import make_tone_corpus

    return make_tone_corpus(root, n=n, seed=seed)


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


def train_tiny_lewm(manifest: Path, out: Path, steps: int = 3) -> Path:
    """A tiny LeWM checkpoint (``lewm_tiny``, ``steps`` steps on ``manifest``): untrained
    sound, but every piece of the family is there.  Returns the checkpoint path."""
    from core.config import merge, preset
    from core.train import Trainer

    t = {"data": str(manifest), "batch_frames": 400, "max_batch_size": 4, "steps": steps, "log_every": 1,
         "checkpoint_every": steps, "val_every": 0, "val_fraction": 0.2, "warmup_steps": 2, "keep_checkpoints": 2}
    return Trainer(merge(preset("lewm_tiny"), {"training": t}), out, progress=False).fit()


@pytest.fixture(scope="session")
def tiny_lewm_checkpoint(tiny_corpus, tmp_path_factory) -> Path:
    return train_tiny_lewm(tiny_corpus, tmp_path_factory.mktemp("lewm_run"))


@pytest.fixture
def inline_jobs(monkeypatch):
    """Studio background jobs finish inside ``JobRunner.submit``, before it returns: the
    fastest a job can be, which is how a page that sets its 'working ...' note after
    submitting gets it stuck over the finished job's note."""
    from studio.jobs import JobRunner

    monkeypatch.setattr(JobRunner, "_start", lambda self, work, done, label, doc: self._run(work, done, label, doc))
