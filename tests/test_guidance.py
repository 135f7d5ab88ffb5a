"""Classifier-free guidance: the combination rule, one batched forward per evaluation,
cfg = 0 as a single plain pass, and guidance on the network output being guidance on
the flow velocity for every objective (EDM's velocity is affine in the network output)."""

from __future__ import annotations

import math

import pytest
import torch

from core.config import ConfigError, ModelConfig, ObjectiveConfig
from core.flow import build_objective
from core.models import TTSModel
from core.sampling.guidance import check_cfg, combine_guidance, guided_net, model_net


class RecordingNet:
    """net(x, t, r, drop) = x * (1 + t) + 3 * drop: a closed form whose conditional and
    null rows differ by exactly 3; records every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, t, r, drop):
        self.calls.append({"batch": x.shape[0], "t": t, "r": r, "drop": drop})
        tt = t if t.dim() == 0 else t[:, None, None]
        out = x * (1 + tt)
        if drop is not None:
            out = out + 3.0 * drop.to(x.dtype)[:, None, None]
        return out


def test_combine_guidance_closed_form():
    c, u = torch.full((1, 2, 3), 2.0), torch.full((1, 2, 3), 0.5)
    assert torch.equal(combine_guidance(c, u, 0.0), c)
    assert torch.allclose(combine_guidance(c, u, 1.0), torch.full((1, 2, 3), 3.5))  # 2c - u
    # the other common form u + w (c - u) with w = 1 + cfg
    assert torch.allclose(combine_guidance(c, u, 2.5), u + 3.5 * (c - u))


def test_cfg_zero_is_one_plain_forward():
    net = RecordingNet()
    x = torch.randn(3, 4, 5)
    t = torch.full((3,), 0.25)
    out = guided_net(net, 0.0, batch=3, device="cpu")(x, t)
    assert len(net.calls) == 1 and net.calls[0]["batch"] == 3 and net.calls[0]["drop"] is None
    assert torch.allclose(out, x * 1.25)


def test_guidance_is_one_batched_forward_with_the_null_half():
    net = RecordingNet()
    x = torch.randn(2, 4, 5)
    t, r = torch.tensor([0.1, 0.7]), torch.tensor([0.0, 0.5])
    out = guided_net(net, 1.5, batch=2, device="cpu")(x, t, r)
    assert len(net.calls) == 1
    call = net.calls[0]
    assert call["batch"] == 4
    assert call["drop"].tolist() == [False, False, True, True]
    assert call["t"].tolist() == pytest.approx([0.1, 0.7, 0.1, 0.7])
    assert call["r"].tolist() == pytest.approx([0.0, 0.5, 0.0, 0.5])
    # cond = x (1 + t), uncond = cond + 3  ->  cond + 1.5 (cond - uncond) = cond - 4.5
    assert torch.allclose(out, x * (1 + t[:, None, None]) - 4.5)


def test_scalar_time_is_not_doubled():
    net = RecordingNet()
    x = torch.randn(2, 4, 5)
    guided_net(net, 1.0, batch=2, device="cpu")(x, torch.tensor(0.5))
    assert net.calls[0]["t"].dim() == 0 and net.calls[0]["r"] is None


def test_wrong_batch_is_an_error():
    with pytest.raises(ValueError, match="batch 2"):
        guided_net(RecordingNet(), 1.0, batch=2, device="cpu")(torch.randn(3, 4, 5), torch.tensor(0.5))


@pytest.mark.parametrize("bad", [-0.5, math.nan, math.inf, True, "2"])
def test_bad_cfg_is_refused(bad):
    with pytest.raises(ConfigError, match="cfg must be"):
        check_cfg(bad)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=40, text_dim=32, text_convnext_layers=1, text_transformer_layers=1, text_heads=2,
                      dim=32, depth=1, heads=2, speaker_dim=8, duration_layers=1, duration_channels=32)
    m = TTSModel(cfg, n_mels=12).eval()
    with torch.no_grad():  # the output layers start at zero: give them weights so outputs differ
        for p in m.velocity_net.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.1)
    return m


def _conditioning(model, batch=2):
    tokens = torch.randint(3, 40, (batch, 6), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(tokens, dtype=torch.bool)
    mask[1, 4:] = False
    return model.inference_conditioning(tokens * mask, mask)


@pytest.mark.parametrize("objective", ["cfm", "edm"])
def test_model_guidance_equals_guidance_on_the_velocity(model, objective):
    """v_guided = v_c + w (v_c - v_u), with v_c, v_u the objective's velocity of the
    conditional and the null-text network (EDM: v = a x + b F is affine in F)."""
    obj = build_objective(ObjectiveConfig(name=objective))
    cond = _conditioning(model)
    x = torch.randn(2, 12, cond.mel_mask.shape[1], generator=torch.Generator().manual_seed(2))
    t = torch.tensor(0.3)
    with torch.no_grad():
        guided = obj.velocity(model_net(model, cond, 2.0))(x, t)
        v_c = obj.velocity(lambda x_, t_, r=None: model.predict(x_, t_, cond, drop=torch.zeros(2, dtype=torch.bool)))(x, t)
        v_u = obj.velocity(lambda x_, t_, r=None: model.predict(x_, t_, cond, drop=torch.ones(2, dtype=torch.bool)))(x, t)
    assert (v_c - v_u).abs().max() > 1e-3  # the null condition matters
    assert torch.allclose(guided, v_c + 2.0 * (v_c - v_u), atol=1e-5)


def test_model_guidance_counts_one_forward(model, monkeypatch):
    cond = _conditioning(model)
    calls = []
    real = model.predict

    def counting(x, t, c, r=None, drop=None, attention=None):
        calls.append(x.shape[0])
        return real(x, t, c, r=r, drop=drop, attention=attention)

    monkeypatch.setattr(model, "predict", counting)
    x = torch.randn(2, 12, cond.mel_mask.shape[1])
    with torch.no_grad():
        model_net(model, cond, 0.0)(x, torch.full((2,), 0.5))
        model_net(model, cond, 3.0)(x, torch.full((2,), 0.5))
    assert calls == [2, 4]


def test_meanflow_guidance_equals_guidance_on_the_average_velocity():
    """MeanFlow: u_guided(z, r, t) = u_c + w (u_c - u_u) for the average velocity over [r, t],
    so a guided one-step jump is x0 + (t - r) u_guided (a MeanFlow model with the r input)."""
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=40, text_dim=32, text_convnext_layers=1, text_transformer_layers=1, text_heads=2,
                      dim=32, depth=1, heads=2, speaker_dim=8, duration_layers=1, duration_channels=32)
    mf = TTSModel(cfg, n_mels=12, meanflow=True).eval()
    with torch.no_grad():
        for p in mf.velocity_net.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.1)
    obj = build_objective(ObjectiveConfig(name="meanflow"))
    cond = _conditioning(mf)
    z = torch.randn(2, 12, cond.mel_mask.shape[1], generator=torch.Generator().manual_seed(3))
    r, t = torch.tensor([0.0, 0.2]), torch.tensor([1.0, 0.7])
    with torch.no_grad():
        guided = obj.average_velocity(model_net(mf, cond, 1.5))(z, r, t)
        keep, drop = torch.zeros(2, dtype=torch.bool), torch.ones(2, dtype=torch.bool)
        u_c = obj.average_velocity(lambda x_, t_, r_=None: mf.predict(x_, t_, cond, r=r_, drop=keep))(z, r, t)
        u_u = obj.average_velocity(lambda x_, t_, r_=None: mf.predict(x_, t_, cond, r=r_, drop=drop))(z, r, t)
    assert (u_c - u_u).abs().max() > 1e-3 and (u_c - obj.velocity(model_net(mf, cond, 0.0))(z, t)).abs().max() > 0
    assert torch.allclose(guided, u_c + 1.5 * (u_c - u_u), atol=1e-5)
