"""Classifier-free guidance on the text for LeWM: text dropout in training
(``lewm.text_drop_prob``) and ``cond + cfg * (cond - uncond)`` in generation (``cfg``),
checked against the predictor run by hand on the generated latents (tiny sizes, CPU)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from core.config import ConfigError, LeWMConfig
from core.lewm import generate
from core.lewm import losses as L
from core.lewm.learner import LeWMLoss, text_kept
from test_lewm import gens, tiny_model, tokens_of


@pytest.mark.parametrize("cfg", [0.5, 2.0])
def test_guided_generation_equals_the_guided_predictor_on_its_own_latents(cfg):
    """Each generated latent is cond + cfg (cond - uncond) of one causal forward over the
    latents generated before it, with the text and with zeroed text features."""
    model = tiny_model(text_drop_prob=0.2)
    tokens, mask = tokens_of([6, 3])
    out = generate(model, tokens, mask, generators=gens([0, 1]), min_length_ratio=6.0, max_length_ratio=8.0,
                   prenet_dropout=False, cfg=cfg)
    plain = generate(model, tokens, mask, generators=gens([0, 1]), min_length_ratio=6.0, max_length_ratio=8.0,
                     prenet_dropout=False)
    assert out.steps > 5
    memory = model.encode_text(tokens, mask)
    fed = out.latents[:, :-1]
    cond = model.teacher_forced(fed, memory, mask).pred
    uncond = model.teacher_forced(fed, torch.zeros_like(memory), mask).pred
    for b, n in enumerate(out.lengths.tolist()):
        want = cond[b, :n] + cfg * (cond[b, :n] - uncond[b, :n])
        torch.testing.assert_close(out.latents[b, :n], want, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(out.latents[b, :n], plain.latents[b, :n], atol=1e-3)  # guidance acts


def test_guided_batch_equals_single_rows_with_noise_and_prenet_dropout():
    model = tiny_model(text_drop_prob=0.2)
    with torch.no_grad():
        model.predictor.stop.bias.fill_(-100.0)
    tokens, mask = tokens_of([9, 4])
    kw = dict(temperature=0.3, min_length_ratio=1.0, max_length_ratio=4.0, prenet_dropout=True, cfg=1.5)
    batch = generate(model, tokens, mask, generators=gens([3, 4]), **kw)
    for b in range(2):
        n = int(mask[b].sum())
        alone = generate(model, tokens[b:b + 1, :n], mask[b:b + 1, :n], generators=gens([3 + b]), **kw)
        k = int(alone.lengths[0])
        torch.testing.assert_close(batch.latents[b, :k], alone.latents[0, :k], atol=1e-5, rtol=1e-5)


def test_cfg_zero_is_plain_generation_and_bad_strengths_are_refused():
    model = tiny_model(text_drop_prob=0.2)
    tokens, mask = tokens_of([5])
    a = generate(model, tokens, mask, generators=gens([0]), max_length_ratio=4.0, cfg=0.0)
    b = generate(model, tokens, mask, generators=gens([0]), max_length_ratio=4.0)
    assert torch.equal(a.latents, b.latents)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="cfg"):
            generate(model, tokens, mask, generators=gens([0]), cfg=bad)
    untrained = tiny_model()      # text_drop_prob 0: no unconditional predictor to guide against
    with pytest.raises(ValueError, match="text_drop_prob > 0"):
        generate(untrained, tokens, mask, generators=gens([0]), cfg=1.0)


def test_text_kept_rate_and_seed():
    kept = text_kept(20000, 0.3, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert kept.dtype == torch.bool and abs(1.0 - kept.float().mean().item() - 0.3) < 0.02  # about 6 sd of the mean (sd 0.0032)
    again = text_kept(20000, 0.3, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert torch.equal(kept, again)


def test_learner_zeroes_the_dropped_rows_text_and_leaves_them_out_of_the_alignment(monkeypatch):
    """With row 0 dropped and row 1 kept, the logged prediction error and alignment penalty
    are those of a teacher-forced pass over [zeros, memory_1], the penalty on row 1 only."""
    from core.lewm import learner
    from core.lewm.alignment import guided_attention_loss

    model = tiny_model(text_drop_prob=0.5, feedback_noise=0.0, dropout=0.0, prenet_dropout=0.0,
                       scheduled_sampling="off", guided_attention_weight=1.0).train()
    monkeypatch.setattr(learner, "text_kept", lambda b, p, g, d: torch.tensor([False, True]))
    tokens, mask = tokens_of([5, 4])
    mel, mel_mask = torch.randn(2, 100, 24), torch.ones(2, 24, dtype=torch.bool)
    out = LeWMLoss(model, 100, step_fn=lambda: 50)(tokens, mask, None, mel, mel_mask, torch.Generator().manual_seed(0))
    cfg = model.config
    with torch.no_grad():
        memory = model.encode_text(tokens, mask)
        memory[0] = 0.0
        post = model.encode_audio(model.normalize_mel(mel), mel_mask, torch.Generator().manual_seed(0))
        tf = model.teacher_forced(post.mu[:, :-1], memory, mask, attention_layers=range(-cfg.guided_attention_layers, 0))
        want_pred = L.prediction_mse(tf.pred, post.mu, post.mask)
        rows = post.mask.clone()
        rows[0] = False
        want_align = guided_attention_loss(tf.cross_attention, rows, mask, cfg.guided_attention_sigma,
                                           cfg.guided_attention_heads)
    assert float(out["pred"]) == pytest.approx(float(want_pred), rel=1e-5)
    assert float(out["align"]) == pytest.approx(float(want_align), rel=1e-5)


@pytest.mark.parametrize("value", [0.6, -0.1, float("nan")])
def test_text_drop_prob_is_validated(value):
    with pytest.raises(ConfigError, match=r"lewm.text_drop_prob must be in \[0, 0.5\]"):
        dataclasses.replace(LeWMConfig(), text_drop_prob=value).validate()
    dataclasses.replace(LeWMConfig(), text_drop_prob=0.5).validate()
