"""Session-scoped tiny checkpoints (trained for a few CPU steps on the synthetic tone
corpus of ``conftest.py``) and a small random Vocos folder, shared by the sampling tests.

Import the fixtures into a test module with ``from sampling_fixtures import ...``.
``ema_decay=0`` makes the sampling (EMA) weights the trained ones, so the velocity net's
zero-initialised output layer has moved and guidance has something to act on.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from conftest import tiny_config


def train_checkpoint(corpus: Path, out: Path, objective: str = "cfm", steps: int = 4) -> Path:
    """Train the tiny preset for ``steps`` steps with ``objective``; returns the last checkpoint."""
    from core.config import merge
    from core.train import Trainer

    cfg = tiny_config(corpus, steps=steps, checkpoint_every=steps, val_every=0, ema_decay=0.0)
    cfg = merge(cfg, {"objective": {"name": objective}})
    path = Trainer(cfg, out, device="cpu", progress=False).fit()
    assert path is not None and path.is_file()
    return path


@pytest.fixture(scope="session")
def cfm_checkpoint(tiny_corpus, tmp_path_factory) -> Path:
    return train_checkpoint(tiny_corpus, tmp_path_factory.mktemp("run_cfm"), "cfm", steps=4)


@pytest.fixture(scope="session")
def edm_checkpoint(tiny_corpus, tmp_path_factory) -> Path:
    return train_checkpoint(tiny_corpus, tmp_path_factory.mktemp("run_edm"), "edm", steps=2)


@pytest.fixture(scope="session")
def meanflow_checkpoint(tiny_corpus, tmp_path_factory) -> Path:
    return train_checkpoint(tiny_corpus, tmp_path_factory.mktemp("run_meanflow"), "meanflow", steps=2)


@pytest.fixture(scope="session")
def cfm_synth(cfm_checkpoint):
    """A CPU Synthesizer of the CFM checkpoint with Griffin-Lim (shared: do not mutate)."""
    from core.sampling.synthesizer import Synthesizer

    return Synthesizer.from_checkpoint(cfm_checkpoint, device="cpu", vocoder="griffin-lim")


def write_vocos_folder(folder: Path, n_mels: int = 100, seed: int = 0) -> Path:
    """A randomly initialised small Vocos (charactr/vocos-mel-24khz's config.yaml with
    dim 64, 2 layers) saved as ``config.yaml`` + ``pytorch_model.bin``."""
    import vocos

    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "feature_extractor": {"class_path": "vocos.feature_extractors.MelSpectrogramFeatures",
                              "init_args": {"sample_rate": 24000, "n_fft": 1024, "hop_length": 256,
                                            "n_mels": n_mels, "padding": "center"}},
        "backbone": {"class_path": "vocos.models.VocosBackbone",
                     "init_args": {"input_channels": n_mels, "dim": 64, "intermediate_dim": 128, "num_layers": 2}},
        "head": {"class_path": "vocos.heads.ISTFTHead",
                 "init_args": {"dim": 64, "n_fft": 1024, "hop_length": 256, "padding": "same"}},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    torch.manual_seed(seed)
    model = vocos.Vocos.from_hparams(str(folder / "config.yaml")).eval()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder
