"""Checkpoints: round trip, atomic writes, and every bad file raises CheckpointError."""

import os
import pickle

import pytest
import torch

import core
from core import CheckpointError, load_checkpoint, save_checkpoint
from core.config import Config, preset


def _weights():
    g = torch.Generator().manual_seed(0)
    return {"a.weight": torch.randn(3, 4, generator=g), "b.bias": torch.randn(5, generator=g)}


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_round_trip(tmp_path, suffix):
    cfg = preset("tiny")
    w = _weights()
    path = save_checkpoint(tmp_path / f"m{suffix}", config=cfg, weights=w, step=7, speakers=["slt", "rms"],
                           model_weights={k: v + 1 for k, v in w.items()}, extra={"tokenizer": {"kind": "bytes"}})
    ck = core.load_checkpoint(path)
    assert ck.config == cfg and ck.step == 7 and ck.speakers == ["slt", "rms"]
    assert ck.mel == cfg.audio.mel_settings() and ck.mel["n_mels"] == 100
    assert ck.code_version == core.__version__
    assert ck.extra == {"tokenizer": {"kind": "bytes"}}
    for k in w:
        assert torch.equal(ck.weights[k], w[k])
        assert torch.equal(ck.model_weights[k], w[k] + 1)
    assert len(ck.sha256) == 64


def test_train_state_round_trip(tmp_path):
    state = {"optimizer": {"state": {0: {"exp_avg": torch.ones(2)}}, "param_groups": [{"lr": 0.1, "betas": (0.9, 0.99)}]},
             "rng": {"torch": torch.get_rng_state()}, "sampler": {"epoch": 2, "position": 5}}
    path = save_checkpoint(tmp_path / "t.pt", config=Config(), weights=_weights(), train_state=state)
    ck = load_checkpoint(path)
    assert ck.train_state["sampler"] == {"epoch": 2, "position": 5}
    assert torch.equal(ck.train_state["rng"]["torch"], state["rng"]["torch"])
    with pytest.raises(CheckpointError, match=r"\.pt"):
        save_checkpoint(tmp_path / "t.safetensors", config=Config(), weights=_weights(), train_state=state)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint") as e:
        load_checkpoint(tmp_path / "nope.pt")
    assert "nope.pt" in str(e.value)


class _Evil:
    marker = None

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_pickle_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    _Evil.marker = str(marker)
    path = tmp_path / "evil.pt"
    torch.save({"format": "flowtts-checkpoint", "payload": _Evil()}, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused") as e:
        load_checkpoint(path)
    assert "evil.pt" in str(e.value)
    assert not marker.exists(), "loading a checkpoint ran code"


def test_plain_pickle_file_refused(tmp_path):
    marker = tmp_path / "pwned2"
    _Evil.marker = str(marker)
    path = tmp_path / "plain.pt"
    with open(path, "wb") as f:
        pickle.dump(_Evil(), f)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_truncated(tmp_path, suffix):
    path = save_checkpoint(tmp_path / f"m{suffix}", config=Config(), weights=_weights())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    assert path.name in str(e.value)


def test_empty_and_garbage(tmp_path):
    (tmp_path / "e.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(tmp_path / "e.pt")
    (tmp_path / "g.pt").write_bytes(os.urandom(1000))
    with pytest.raises(CheckpointError, match="g.pt"):
        load_checkpoint(tmp_path / "g.pt")
    with pytest.raises(CheckpointError, match="folder"):
        load_checkpoint(tmp_path)


def test_foreign_checkpoints(tmp_path):
    # A plain state dict, as other projects save them.
    torch.save({"model": {"w": torch.zeros(2)}, "epoch": 3}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a checkpoint of this project"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(CheckpointError, match="not a checkpoint of this project"):
        load_checkpoint(tmp_path / "tensor.pt")
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(CheckpointError, match="not a checkpoint of this project"):
        load_checkpoint(tmp_path / "other.safetensors")


def test_newer_format_and_bad_config(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", config=Config(), weights=_weights())
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(tmp_path / "new.pt")
    payload["format_version"] = 1
    payload["config"]["sampling"]["solver"] = "magic"
    torch.save(payload, tmp_path / "badcfg.pt")
    with pytest.raises(CheckpointError, match="magic"):
        load_checkpoint(tmp_path / "badcfg.pt")


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "m.pt", config=Config(), weights=_weights(), step=1)

    def boom(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(path, config=Config(), weights=_weights(), step=2)
    monkeypatch.undo()
    assert load_checkpoint(path).step == 1
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"], "temporary file left behind"


def test_zero_filled_file_is_called_corrupt_not_malicious(tmp_path):
    (tmp_path / "z.pt").write_bytes(bytes(4096))
    with pytest.raises(CheckpointError, match="not a readable checkpoint") as e:
        load_checkpoint(tmp_path / "z.pt")
    assert "pickled" not in str(e.value)
