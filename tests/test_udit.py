"""The ``udit`` velocity layout (core.models.dit): the half-rate middle against closed
forms, identity at initialisation, padding invariance, training (overfit), sampling and
ONNX export like the DiT."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from core.config import ConfigError, ModelConfig, merge, preset
from core.models.dit import VelocityDiT

CFG = dict(text_dim=16, dim=32, depth=4, heads=2, ff_mult=2, speaker_dim=8, n_speakers=1)


def nets(outer: int = 1, seed: int = 0):
    """A dit and a udit network with the same random weights (modulation included, so
    every block is active)."""
    torch.manual_seed(seed)
    dit = VelocityDiT(ModelConfig(**CFG), n_mels=10)
    for p in dit.parameters():
        nn.init.normal_(p, std=0.2)
    udit = VelocityDiT(ModelConfig(**CFG, velocity="udit", udit_outer=outer), n_mels=10)
    udit.load_state_dict(dit.state_dict())  # same parameters: the layout adds none
    return dit.eval(), udit.eval()


def inputs(b=2, n=9, lengths=(9, 6), seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 10, n, generator=g)
    cond = torch.randn(b, n, 16, generator=g)
    mask = torch.arange(n)[None] < torch.tensor(lengths)[:, None]
    return x, torch.rand(b, generator=g), cond, mask


def test_identity_middle_gives_the_dit_output():
    dit, udit = nets()
    for block in udit.blocks[1:-1]:  # adaLN-Zero middle blocks: the identity
        nn.init.zeros_(block.modulation.weight)
        nn.init.zeros_(block.modulation.bias)
    for block in dit.blocks[1:-1]:
        nn.init.zeros_(block.modulation.weight)
        nn.init.zeros_(block.modulation.bias)
    x, t, cond, mask = inputs()
    with torch.no_grad():
        torch.testing.assert_close(udit(x, t, cond, mask), dit(x, t, cond, mask))
        assert not torch.allclose(nets()[1](x, t, cond, mask), nets()[0](x, t, cond, mask))  # active middle differs


class AddConstant(nn.Module):
    def __init__(self, v: torch.Tensor):
        super().__init__()
        self.v = v

    def forward(self, h, c_act, mask, attention, rope):
        return h + self.v * mask[..., None].to(h.dtype)


class Record(nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, h, c_act, mask, attention, rope):
        self.seen.append((h.detach().clone(), mask.clone()))
        return h


def test_half_rate_pooling_and_the_residual_closed_form():
    _, udit = nets()
    record = Record()
    v = torch.arange(32, dtype=torch.float32) / 10
    udit.blocks = nn.ModuleList([nn.Identity(), record, AddConstant(v), nn.Identity()])
    udit.blocks[0].forward = lambda h, *a: h
    udit.blocks[3].forward = lambda h, *a: h
    h = torch.randn(2, 7, 32)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    out = udit._u_blocks(h, torch.zeros(2, 32), mask, "math", None)
    pooled, half_mask = record.seen[0]
    # frame pairs (0,1) (2,3) (4,5) (6,pad): a mask-weighted mean
    torch.testing.assert_close(pooled[0, :3], (h[0, 0:6:2] + h[0, 1:6:2]) / 2)
    torch.testing.assert_close(pooled[0, 3], h[0, 6])
    torch.testing.assert_close(pooled[1, :2], (h[1, 0:4:2] + h[1, 1:4:2]) / 2)
    assert half_mask.tolist() == [[True] * 4, [True, True, False, False]]
    # the middle's change (+v on real half frames) lands on both frames of each pair, nothing on padding
    torch.testing.assert_close(out[0], h[0] + v)
    torch.testing.assert_close(out[1, :4], h[1, :4] + v)
    torch.testing.assert_close(out[1, 4:], h[1, 4:])


@pytest.mark.parametrize("outer", [1, 2])
def test_padding_does_not_change_real_frames(outer):
    depth = dict(CFG, depth=5)
    torch.manual_seed(3)
    udit = VelocityDiT(ModelConfig(**depth, velocity="udit", udit_outer=outer), n_mels=10).eval()
    for p in udit.parameters():
        nn.init.normal_(p, std=0.2)
    x, t, cond, mask = inputs(b=1, n=7, lengths=(7,))
    with torch.no_grad():
        alone = udit(x, t, cond, mask)
        xp = torch.cat([x, torch.randn(1, 10, 4)], dim=2)  # garbage in 4 padded frames
        cp = torch.cat([cond, torch.randn(1, 4, 16)], dim=1)
        padded = udit(xp, t, cp, torch.arange(11)[None] < 7)
    torch.testing.assert_close(padded[..., :7], alone)
    assert torch.all(padded[..., 7:] == 0)


def test_config_rules():
    with pytest.raises(ConfigError, match="leave at least one middle block"):
        ModelConfig(depth=2, velocity="udit", udit_outer=1).validate()
    with pytest.raises(ConfigError, match="unknown model.velocity"):
        merge(preset("tiny"), {"model": {"velocity": "unet"}})
    ModelConfig(depth=3, velocity="udit").validate()


def udit_config(manifest, **training):
    from conftest import tiny_config

    return merge(tiny_config(manifest, **training), {"model": {"depth": 4, "velocity": "udit"}})


@pytest.mark.slow
def test_udit_overfits_one_utterance(tmp_path):
    from conftest import make_corpus
    from core.train import Trainer

    manifest = make_corpus(tmp_path / "one", n=1)
    cfg = merge(udit_config(manifest, steps=60, val_fraction=0.0, val_every=0, checkpoint_every=0, log_every=10,
                            lr=3e-3, warmup_steps=5, decay="constant", ema_decay=0.0), {"model": {"cond_drop_prob": 0.0}})
    Trainer(cfg, tmp_path / "run", progress=False).fit()
    mse = [json.loads(line)["mse"] for line in open(tmp_path / "run" / "metrics.jsonl") if '"mse"' in line]
    assert mse[-1] < 0.75 * mse[0], mse  # as the DiT's overfit test


def test_udit_checkpoint_samples_and_exports_like_the_dit(tiny_corpus, tmp_path):
    pytest.importorskip("onnxruntime")
    from core.onnx_export import export_onnx
    from core.sampling.synthesizer import Synthesizer
    from core.train import Trainer

    cfg = udit_config(tiny_corpus, steps=3, checkpoint_every=3, val_every=0, ema_decay=0.0)
    path = Trainer(cfg, tmp_path / "run", progress=False).fit()
    synth = Synthesizer.from_checkpoint(path, device="cpu", vocoder="griffin-lim")
    assert synth.model.velocity_net.outer == 1
    a = synth.synthesize("red green blue", seed=4, steps=3)
    assert a.audio.size > 0 and a.mel.shape[0] == 100
    export_onnx(path, tmp_path / "onnx")
    b = Synthesizer.from_onnx(tmp_path / "onnx", vocoder="griffin-lim").synthesize("red green blue", seed=4, steps=3)
    assert a.mel.shape == b.mel.shape and abs(a.mel - b.mel).max() < 1e-3
