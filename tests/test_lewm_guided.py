"""Guided attention (core.lewm.alignment): the DC-TTS penalty against its closed form,
the explicit attention equal to SDPA, and the learner adding exactly weight x penalty."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from core.config import ConfigError, merge, preset
from core.lewm import LeWMModel
from core.lewm.alignment import guided_attention_loss, guided_attention_weights
from core.lewm.learner import LeWMLoss
from core.lewm.predictor import _Attention


def _mask(lengths, width):
    return torch.arange(width)[None] < torch.tensor(lengths)[:, None]


def test_weights_match_the_dc_tts_closed_form_with_each_examples_lengths():
    frames, tokens = _mask([4, 3], 5), _mask([5, 2], 6)
    w = guided_attention_weights(frames, tokens, 0.4)
    assert w.shape == (2, 5, 6)
    for b, (T, N) in enumerate([(4, 5), (3, 2)]):
        for t in range(5):
            for n in range(6):
                want = 1 - math.exp(-((n / N - t / T) ** 2) / (2 * 0.4 ** 2)) if t < T and n < N else 0.0
                assert float(w[b, t, n]) == pytest.approx(want, abs=1e-6)
    assert float(w[0, 0, 0]) == 0.0 and float(w[0, 2, 0]) > 0.0   # zero on the diagonal, not off it
    with pytest.raises(ValueError, match="sigma"):
        guided_attention_weights(frames, tokens, 0.0)


def test_loss_is_the_expected_penalty_per_row_for_one_hot_and_uniform_attention():
    T, N, sigma = 6, 4, 0.3
    frames, tokens = _mask([T], T), _mask([N], N)
    w = guided_attention_weights(frames, tokens, sigma)[0]
    # head 0 one-hot on column n_t = (2 t) mod N; head 1 uniform; head 2 garbage, not counted with heads=2
    cols = [(2 * t) % N for t in range(T)]
    a = torch.zeros(1, 3, T, N)
    a[0, 0, torch.arange(T), torch.tensor(cols)] = 1.0
    a[0, 1] = 1.0 / N
    a[0, 2] = torch.rand(T, N)
    one_hot = sum(float(w[t, cols[t]]) for t in range(T)) / T
    uniform = float(w.mean())
    got = guided_attention_loss([a], frames, tokens, sigma, heads=2)
    assert float(got) == pytest.approx((one_hot + uniform) / 2, rel=1e-6)
    # two layers average; a diagonal attention (one-hot on n = t N / T, here T = N) costs 0
    diag = torch.eye(5)[None, None]
    assert float(guided_attention_loss([diag], _mask([5], 5), _mask([5], 5), sigma, heads=1)) == 0.0
    assert float(guided_attention_loss([a, a[:, 1:]], frames, tokens, sigma, heads=1)) == pytest.approx(
        (one_hot + uniform) / 2, rel=1e-6)
    assert float(guided_attention_loss([], frames, tokens, sigma, heads=1)) == 0.0


def test_padded_rows_do_not_count():
    frames, tokens = _mask([2], 4), _mask([3], 3)
    a = torch.full((1, 1, 4, 3), 1 / 3)
    b = a.clone()
    b[0, 0, 2:] = torch.tensor([1.0, 0.0, 0.0])                 # changes only padded rows
    assert float(guided_attention_loss([a], frames, tokens, 0.4, 1)) == float(guided_attention_loss([b], frames, tokens, 0.4, 1))


def test_explicit_attention_equals_sdpa_and_masks_padding():
    torch.manual_seed(0)
    att = _Attention(16, 4)
    x, mem = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    k, v = att.keys_values(mem)
    mask = _mask([7, 4], 7)[:, None, None, :]
    y, weights = att.attend_with_weights(x, k, v, mask)
    torch.testing.assert_close(y, att.attend(x, k, v, mask), atol=1e-6, rtol=1e-5)
    assert weights.shape == (2, 4, 5, 7)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 5))
    assert float(weights.detach()[1, :, :, 4:].abs().max()) == 0.0


def _tiny(**lewm):
    cfg = merge(preset("lewm_tiny"), {"lewm": {"feedback_noise": 0.0, **lewm}})
    torch.manual_seed(0)
    return LeWMModel(dataclasses.replace(cfg.model, vocab_size=64), cfg.lewm, n_mels=100)


def test_predictor_returns_the_asked_layers_weights_without_changing_its_output():
    model = _tiny().eval()
    tokens = torch.randint(1, 64, (2, 6))
    tmask = _mask([6, 4], 6)
    memory = model.encode_text(tokens, tmask)
    fed = torch.randn(2, 9, model.config.latent_dim)
    plain = model.teacher_forced(fed, memory, tmask)
    asked = model.teacher_forced(fed, memory, tmask, attention_layers=(-1, 0))
    torch.testing.assert_close(asked.pred, plain.pred, atol=1e-5, rtol=1e-5)
    assert plain.cross_attention == [] and len(asked.cross_attention) == 2
    assert asked.cross_attention[0].shape == (2, model.config.predictor_heads, 10, 6)


@pytest.mark.parametrize("ss", ["off", "linear"])
def test_learner_adds_exactly_weight_times_the_logged_penalty(ss):
    tokens = torch.randint(1, 64, (2, 5), generator=torch.Generator().manual_seed(1))
    tmask = _mask([5, 3], 5)
    mel, mel_mask = torch.randn(2, 100, 20), _mask([20, 14], 20)
    step = 90 if ss == "linear" else 0
    outs = []
    for weight in (0.0, 2.5):
        model = _tiny(guided_attention_weight=weight, scheduled_sampling=ss).train()
        outs.append(LeWMLoss(model, 100, step_fn=lambda: step)(tokens, tmask, None, mel, mel_mask,
                                                               torch.Generator().manual_seed(0)))
    align = float(outs[0]["align"])
    assert 0.0 < align < 1.0 and float(outs[1]["align"]) == pytest.approx(align, rel=1e-6)
    assert float((outs[1]["loss"] - outs[0]["loss"]).detach()) == pytest.approx(2.5 * align, rel=1e-4)
    # and the term reaches the predictor's cross-attention queries of the last layer
    model = _tiny(guided_attention_weight=1.0, prediction_weight=0.0, reconstruction_weight=0.0,
                  spectral_weight=0.0, stop_weight=0.0, kl_weight=0.0).train()
    out = LeWMLoss(model, 100, step_fn=lambda: 0)(tokens, tmask, None, mel, mel_mask, torch.Generator().manual_seed(0))
    out["loss"].backward()
    assert float(model.predictor.layers[-1].cross_attn.q.weight.grad.abs().sum()) > 0


@pytest.mark.parametrize("override, match", [
    ({"guided_attention_weight": -1.0}, "guided_attention_weight"),
    ({"guided_attention_sigma": 0.0}, "guided_attention_sigma"),
    ({"guided_attention_layers": 3}, r"guided_attention_layers must be an integer in \[1, lewm.predictor_layers = 2\]"),
    ({"guided_attention_heads": 0}, "guided_attention_heads"),
    ({"guided_attention_heads": 1.5}, "guided_attention_heads"),
])
def test_guided_attention_settings_are_validated(override, match):
    with pytest.raises(ConfigError, match=match):
        merge(preset("lewm_tiny"), {"lewm": override}).validate()


# ----------------------------------------------------------------------------- the attention stop


def _one_hot_attention(model, monkeypatch):
    """Make the predictor's reported cross-attention one-hot on token ``frame index``
    (clamped to the row's last token): a diagonal reader one token per frame."""
    real = model.predictor.forward

    def forward(x, memory, memory_mask, cache=None, attention_layers=()):
        start = 0 if cache is None else cache.length
        res = real(x, memory, memory_mask, cache, attention_layers)
        if attention_layers:
            b, t, n = x.shape[0], x.shape[1], memory.shape[1]
            last = memory_mask.long().sum(1) - 1                                          # (B,)
            idx = torch.minimum(torch.arange(start, start + t)[None], last[:, None])      # (B, t)
            a = torch.nn.functional.one_hot(idx, n).float()[:, None].expand(b, model.config.predictor_heads, t, n)
            res.cross_attention = [a for _ in attention_layers]
        return res

    monkeypatch.setattr(model.predictor, "forward", forward)


@pytest.mark.parametrize("margin", [0.0, 2.0, 2.5])
def test_attention_stop_ends_each_row_when_its_attention_reaches_the_text_end(margin, monkeypatch):
    from core.lewm import generate

    model = _tiny().eval()
    with torch.no_grad():
        model.predictor.stop.bias.fill_(-100.0)                 # the stop head never fires
        model.predictor.stop.weight.zero_()
    _one_hot_attention(model, monkeypatch)
    lengths = [9, 5]
    tokens = torch.randint(1, 64, (2, 9), generator=torch.Generator().manual_seed(0))
    mask = _mask(lengths, 9)
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    out = generate(model, tokens, mask, generators=gens, min_length_ratio=0.0, max_length_ratio=20.0,
                   attention_stop=margin)
    # step s (1-based) reads token s - 1: it ends at the first s with s - 1 >= n - 1 - margin
    want = [max(1, math.ceil(n - margin)) for n in lengths]
    assert out.lengths.tolist() == want
    assert out.stopped.tolist() == [True, True] and out.by_attention.tolist() == [True, True]
    off = generate(model, tokens, mask, generators=[torch.Generator().manual_seed(s) for s in (0, 1)],
                   min_length_ratio=0.0, max_length_ratio=20.0)
    assert off.by_attention is None and off.stopped.tolist() == [False, False]   # the maximum length
    assert off.lengths.tolist() == [90, 50]
    # the minimum length still holds
    held = generate(model, tokens, mask, generators=[torch.Generator().manual_seed(s) for s in (0, 1)],
                    min_length_ratio=6.0, max_length_ratio=20.0, attention_stop=margin)
    assert held.lengths.tolist() == [max(w, math.ceil(6.0 * n / 2)) for w, n in zip(want, lengths)]
    with pytest.raises(ValueError, match="attention_stop"):
        generate(model, tokens, mask, generators=gens, attention_stop=-1.0)


def test_synthesizer_takes_the_attention_stop_from_the_checkpoint(tiny_lewm_checkpoint, tmp_path, monkeypatch):
    import core
    from core import load_checkpoint, save_checkpoint
    import core.lewm.synthesizer as S

    ck = load_checkpoint(tiny_lewm_checkpoint)
    plain = core.Synthesizer.from_checkpoint(tiny_lewm_checkpoint, device="cpu", vocoder="griffin-lim")
    assert plain.attention_stop is None
    lewm = dataclasses.replace(ck.config.lewm, stop_on_attention=True, attention_stop_margin=1.5)
    path = save_checkpoint(tmp_path / "att.pt", config=dataclasses.replace(ck.config, lewm=lewm), weights=ck.weights,
                           speakers=ck.speakers)
    synth = core.Synthesizer.from_checkpoint(path, device="cpu", vocoder="griffin-lim")
    assert synth.attention_stop == 1.5
    seen = []
    real = S.generate
    monkeypatch.setattr(S, "generate", lambda *a, **k: seen.append(k["attention_stop"]) or real(*a, **k))
    synth.synthesize("Hi there.", seed=0, max_length_ratio=3.0)
    assert seen == [1.5]


@pytest.mark.parametrize("override, match", [
    ({"stop_on_attention": "yes"}, "stop_on_attention must be true or false"),
    ({"attention_stop_margin": -0.5}, "attention_stop_margin"),
])
def test_attention_stop_settings_are_validated(override, match):
    with pytest.raises(ConfigError, match=match):
        merge(preset("lewm_tiny"), {"lewm": override}).validate()


# ----------------------------------------------------------------------------- the loss on decoded predictions


def test_predicted_mel_loss_is_the_decoded_predictions_l1_and_trains_only_the_predictor():
    from core.lewm import losses as L

    tokens = torch.randint(1, 64, (2, 5), generator=torch.Generator().manual_seed(1))
    tmask = _mask([5, 3], 5)
    mel, mel_mask = torch.randn(2, 100, 20), _mask([20, 14], 20)
    outs = []
    for weight in (0.0, 3.0):
        model = _tiny(predicted_mel_weight=weight, scheduled_sampling="off").train()
        outs.append(LeWMLoss(model, 100)(tokens, tmask, None, mel, mel_mask, torch.Generator().manual_seed(0)))
    value = float(outs[0]["pred_mel"])
    assert float(outs[1]["pred_mel"]) == pytest.approx(value, rel=1e-6)
    assert float((outs[1]["loss"] - outs[0]["loss"]).detach()) == pytest.approx(3.0 * value, rel=1e-4)
    # the closed form: L1 of decode(predictions) against the normalised target, recomputed by hand
    model = _tiny(predicted_mel_weight=1.0, scheduled_sampling="off", prediction_weight=0.0, kl_weight=0.0,
                  reconstruction_weight=0.0, spectral_weight=0.0, stop_weight=0.0, prenet_dropout=0.0).train()
    gen = torch.Generator().manual_seed(0)
    out = LeWMLoss(model, 100)(tokens, tmask, None, mel, mel_mask, gen)
    gen = torch.Generator().manual_seed(0)
    x = model.normalize_mel(mel) * mel_mask[:, None, :].float()
    memory = model.encode_text(tokens, tmask, None)
    post = model.encode_audio(x, mel_mask, gen)
    res = model.teacher_forced(post.mu[:, :-1], memory, tmask)
    decoded = model.decode(res.pred, post.mask)
    want = L.mel_l1(decoded, x[..., :decoded.shape[-1]], mel_mask[:, :decoded.shape[-1]])
    assert float(out["pred_mel"]) == pytest.approx(float(want.detach()), rel=1e-5)
    out["loss"].backward()
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0.0 for p in model.decoder.parameters())
    assert float(model.predictor.out.weight.grad.abs().sum()) > 0
