"""LeWM modules, losses and generation: closed forms, the KV cache, causality, stop and
length limits, batch invariance and bad input (tiny sizes, CPU, a few seconds)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from core.config import ConfigError, LeWMConfig, merge, preset
from core.lewm import LeWMModel, generate
from core.lewm import losses as L
from core.lewm.audio_encoder import latent_mask
from core.lewm.exposure import add_feedback_noise, mix_fed_latents, scheduled_sampling_rate
from core.lewm.generate import MAX_LATENT_STEPS, length_limits
from core.lewm.learner import LeWMLoss


def tiny_model(seed: int = 0, **lewm) -> LeWMModel:
    cfg = merge(preset("lewm_tiny"), {"lewm": lewm}) if lewm else preset("lewm_tiny")
    torch.manual_seed(seed)
    return LeWMModel(dataclasses.replace(cfg.model, vocab_size=64), cfg.lewm, n_mels=100).eval()


def tokens_of(lengths, seed=0):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for i, n in enumerate(lengths):
        tokens[i, :n] = torch.randint(1, 64, (n,), generator=gen)
    return tokens, torch.arange(tokens.shape[1])[None] < torch.tensor(lengths)[:, None]


def gens(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


# ----------------------------------------------------------------------------- predictor


def test_kv_cache_steps_equal_one_causal_forward():
    model = tiny_model()
    pred = model.predictor
    tokens, mask = tokens_of([7, 4])
    memory = model.encode_text(tokens, mask)
    x = torch.randn(2, 9, pred.dim)
    full = pred(x, memory, mask)
    cache = pred.begin(memory)
    steps = [pred(x[:, i:i + 1], memory, mask, cache) for i in range(9)]
    assert cache.length == 9
    torch.testing.assert_close(torch.cat([s.pred for s in steps], 1), full.pred, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat([s.stop_logits for s in steps], 1), full.stop_logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("head, temperature", [("point", 0.0), ("gaussian", 0.0), ("gaussian", 0.7)])
def test_generation_with_the_cache_equals_full_recomputation(head, temperature):
    model = tiny_model(predictor_head=head)
    tokens, mask = tokens_of([6, 3])
    out = generate(model, tokens, mask, generators=gens([0, 1]), temperature=temperature, min_length_ratio=6.0,
                   max_length_ratio=8.0, prenet_dropout=False)
    assert out.steps > 5
    memory = model.encode_text(tokens, mask)
    again = model.teacher_forced(out.latents[:, :-1], memory, mask)      # one causal forward, no cache
    for b, n in enumerate(out.lengths.tolist()):
        want = again.pred[b, :n]
        if temperature > 0:   # each frame a sample: mean + T std eps, eps the row's n draws in order
            g = torch.Generator().manual_seed(b)
            eps = torch.stack([torch.randn(model.config.latent_dim, generator=g) for _ in range(n)])
            want = want + temperature * (0.5 * again.logvar[b, :n]).exp() * eps
            assert not torch.allclose(want, again.pred[b, :n])
        torch.testing.assert_close(want, out.latents[b, :n], atol=1e-5, rtol=1e-5)


def test_causal_mask_no_future_leak():
    model = tiny_model()
    tokens, mask = tokens_of([5])
    memory = model.encode_text(tokens, mask)
    x = torch.randn(1, 10, model.predictor.dim)
    y = x.clone()
    y[:, 6:] += torch.randn(1, 4, model.predictor.dim)
    a, b = model.predictor(x, memory, mask), model.predictor(y, memory, mask)
    torch.testing.assert_close(a.pred[:, :6], b.pred[:, :6], atol=0, rtol=0)
    torch.testing.assert_close(a.stop_logits[:, :6], b.stop_logits[:, :6], atol=0, rtol=0)
    assert not torch.allclose(a.pred[:, 6:], b.pred[:, 6:])


# ----------------------------------------------------------------------------- encoder / decoder


@pytest.mark.parametrize("factor", [2, 4])
def test_encoder_decoder_shapes_and_padding_invariance(factor):
    model = tiny_model(downsample_factor=factor)
    mel = torch.randn(2, 100, 33)
    mel_mask = torch.ones(2, 33, dtype=torch.bool)
    mel_mask[1, 21:] = False
    post = model.encode_audio(mel, mel_mask)
    frames = math.ceil(33 / factor)
    assert post.mu.shape == (2, frames, 8) and post.mask.sum(1).tolist() == [frames, math.ceil(21 / factor)]
    alone = model.encode_audio(mel[1:, :, :21], mel_mask[1:, :21])
    n = alone.mu.shape[1]
    torch.testing.assert_close(post.mu[1:, :n], alone.mu, atol=1e-5, rtol=1e-5)
    assert torch.all(post.mu[1, n:] == 0)
    decoded = model.decode(post.z, post.mask)
    assert decoded.shape == (2, 100, frames * factor)
    torch.testing.assert_close(decoded[1:, :, :n * factor], model.decode(alone.z, alone.mask), atol=1e-5, rtol=1e-5)


def test_kl_posterior_samples_in_training_and_mean_in_eval():
    model = tiny_model()
    mel, mask = torch.randn(1, 100, 16), torch.ones(1, 16, dtype=torch.bool)
    post = model.encode_audio(mel, mask)
    assert torch.equal(post.z, post.mu) and post.logvar is not None
    model.train()
    sample = model.encode_audio(mel, mask, torch.Generator().manual_seed(0))
    assert not torch.allclose(sample.z, sample.mu)
    sig = tiny_model(regularizer="sigreg").train()
    post = sig.encode_audio(mel, mask)
    assert post.logvar is None and torch.equal(post.z, post.mu)


# ----------------------------------------------------------------------------- losses


def test_kl_of_known_gaussians():
    # KL(N(1, 4) || N(0, 1)) = 0.5 (1 + 4 - 1 - log 4) per dimension
    mu = torch.ones(2, 3, 5)
    logvar = torch.full((2, 3, 5), math.log(4.0))
    mask = torch.tensor([[True, True, True], [True, False, False]])
    mu[1, 1:] = 100.0   # padded frames must not count
    assert float(L.gaussian_kl(mu, logvar, mask)) == pytest.approx(0.5 * (4.0 - math.log(4.0)), rel=1e-6)
    assert float(L.gaussian_kl(torch.zeros(1, 4, 2), torch.zeros(1, 4, 2), torch.ones(1, 4, dtype=torch.bool))) == 0.0


def test_kl_annealing_is_linear_over_the_fraction():
    assert L.kl_weight_at(0, 100, 0.01, 0.2) == 0.0
    assert L.kl_weight_at(10, 100, 0.01, 0.2) == pytest.approx(0.005)
    assert L.kl_weight_at(20, 100, 0.01, 0.2) == pytest.approx(0.01)
    assert L.kl_weight_at(95, 100, 0.01, 0.2) == pytest.approx(0.01)
    assert L.kl_weight_at(0, 100, 0.01, 0.0) == pytest.approx(0.01)


def _normal_quantiles(n: int) -> torch.Tensor:
    p = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    return math.sqrt(2.0) * torch.erfinv(2 * p - 1)


@pytest.mark.parametrize("shift", [0.0, 0.5, 1.0, 2.0])
def test_epps_pulley_matches_its_closed_form(shift):
    # the population N(mu, 1) (quantiles as samples): D = 2 sqrt(pi / 1.5) (1 - exp(-mu^2 / 6))
    x = (_normal_quantiles(20000) + shift).float()[:, None]
    want = 2 * math.sqrt(math.pi / 1.5) * (1 - math.exp(-shift ** 2 / 6))
    assert float(L.epps_pulley(x, knots=65)[0]) == pytest.approx(want, abs=2e-4)


def test_sigreg_near_zero_for_standard_normal_and_large_when_shifted_or_collapsed():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(4, 1000, 8, generator=gen)
    mask = torch.ones(4, 1000, dtype=torch.bool)
    normal = float(L.sigreg(z, mask, 64, generator=torch.Generator().manual_seed(1)))
    shifted = float(L.sigreg(z + 1.0, mask, 64, generator=torch.Generator().manual_seed(1)))
    collapsed = float(L.sigreg(torch.zeros_like(z), mask, 64, generator=torch.Generator().manual_seed(1)))
    assert normal < 2e-3 and shifted > 0.1 and collapsed > 0.3
    # padded frames are left out
    z2 = z.clone()
    z2[:, 900:] = 50.0
    mask[:, 900:] = False
    assert float(L.sigreg(z2, mask, 64, generator=torch.Generator().manual_seed(1))) < 2e-3


def test_prediction_copy_and_reconstruction_losses_closed_forms():
    z = torch.arange(5.0)[None, :, None].expand(2, 5, 3)          # z_t = t: copying is off by 1
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1, 3:] = False
    assert float(L.copy_baseline_mse(z, mask)) == pytest.approx(1.0)
    assert float(L.prediction_mse(z + 2.0, z, mask)) == pytest.approx(4.0)
    mel = torch.randn(2, 100, 40)
    mmask = torch.ones(2, 40, dtype=torch.bool)
    mmask[0, 30:] = False
    assert float(L.mel_l1(mel + 0.3, mel, mmask)) == pytest.approx(0.3, rel=1e-5)
    assert float(L.multi_resolution_spectral_loss(mel - 0.7, mel, mmask, [2, 4, 8])) == pytest.approx(0.7, rel=1e-4)
    assert float(L.multi_resolution_spectral_loss(mel, mel, mmask, [2, 4])) == 0.0


def test_stop_bce_with_pos_weight():
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    assert L.stop_targets(mask).tolist() == [[0, 0, 0, 1], [0, 1, 0, 0]]
    # logits 0: every real frame costs log 2, the last one w log 2; 6 real frames, 2 of them last
    w = 5.0
    want = (4 * math.log(2) + 2 * w * math.log(2)) / 6
    assert float(L.stop_bce(torch.zeros(2, 4), mask, w)) == pytest.approx(want, rel=1e-6)


# ----------------------------------------------------------------------------- exposure bias


def test_scheduled_sampling_rate_schedule():
    lc = LeWMConfig(scheduled_sampling="linear", ss_start=0.2, ss_end=0.6, ss_max_rate=0.5)
    assert scheduled_sampling_rate(10, 100, lc) == 0.0
    assert scheduled_sampling_rate(40, 100, lc) == pytest.approx(0.25)
    assert scheduled_sampling_rate(60, 100, lc) == pytest.approx(0.5)
    assert scheduled_sampling_rate(100, 100, lc) == pytest.approx(0.5)
    cos = dataclasses.replace(lc, scheduled_sampling="cosine")
    assert scheduled_sampling_rate(30, 100, cos) == pytest.approx(0.5 * (1 - math.cos(math.pi / 4)) / 2)
    assert scheduled_sampling_rate(40, 100, cos) == pytest.approx(0.25)
    assert scheduled_sampling_rate(80, 100, dataclasses.replace(lc, scheduled_sampling="off")) == 0.0


def test_mixing_rate_and_detached_predictions():
    teacher = torch.zeros(50, 200, 4, requires_grad=True)
    predicted = torch.ones(50, 200, 4, requires_grad=True)
    mixed, took = mix_fed_latents(teacher, predicted, 0.3, torch.Generator().manual_seed(0))
    assert abs(float(took.float().mean()) - 0.3) < 0.01          # 10000 Bernoulli(0.3) draws: sd 0.0046
    assert torch.equal(mixed[took], torch.ones_like(mixed[took])) and torch.equal(mixed[~took], torch.zeros_like(mixed[~took]))
    mixed.sum().backward()
    assert predicted.grad is None and teacher.grad is not None
    assert torch.equal(mix_fed_latents(teacher, predicted, 0.0)[0], teacher)
    assert torch.equal(mix_fed_latents(teacher, predicted, 1.0)[0], predicted)
    assert torch.equal(add_feedback_noise(teacher, 0.0), teacher)
    noisy = add_feedback_noise(torch.zeros(100000), 0.2, torch.Generator().manual_seed(0))
    assert float(noisy.std()) == pytest.approx(0.2, rel=0.02)


def test_learner_runs_a_second_pass_only_when_scheduled_sampling_is_on(monkeypatch):
    model = tiny_model(feedback_noise=0.0).train()
    tokens, mask = tokens_of([5, 4])
    mel, mel_mask = torch.randn(2, 100, 24), torch.ones(2, 24, dtype=torch.bool)
    calls = []
    real = model.teacher_forced
    monkeypatch.setattr(model, "teacher_forced", lambda fed, *a, **k: calls.append(fed.detach()) or real(fed, *a, **k))
    total = 100
    LeWMLoss(model, total, step_fn=lambda: 0)(tokens, mask, None, mel, mel_mask, torch.Generator().manual_seed(0))
    assert len(calls) == 1                      # before ss_start: teacher forcing only
    calls.clear()
    out = LeWMLoss(model, total, step_fn=lambda: 90)(tokens, mask, None, mel, mel_mask, torch.Generator().manual_seed(0))
    assert len(calls) == 2 and not torch.equal(calls[0], calls[1])
    assert float(out["ss_rate"]) == pytest.approx(model.config.ss_max_rate)


@pytest.mark.parametrize("passes", [2, 3, 4])
def test_learner_with_ss_passes_feeds_predictions_of_predictions(passes, monkeypatch):
    """At rate 1 (every fed frame replaced), pass k is fed pass k-1's predictions, so the
    last pass's prediction error is that of the chain tf(tf(...tf(teacher))) built by hand;
    only that last pass carries a graph."""
    model = tiny_model(feedback_noise=0.0, dropout=0.0, prenet_dropout=0.0, ss_start=0.0, ss_end=0.5,
                       ss_max_rate=1.0, ss_passes=passes).train()
    tokens, mask = tokens_of([5, 4])
    mel, mel_mask = torch.randn(2, 100, 24), torch.ones(2, 24, dtype=torch.bool)
    grads = []
    real = model.teacher_forced
    monkeypatch.setattr(model, "teacher_forced",
                        lambda fed, *a, **k: grads.append(torch.is_grad_enabled()) or real(fed, *a, **k))
    out = LeWMLoss(model, 100, step_fn=lambda: 90)(tokens, mask, None, mel, mel_mask, torch.Generator().manual_seed(0))
    assert grads == [False] * (passes - 1) + [True] and float(out["ss_rate"]) == 1.0
    with torch.no_grad():
        memory = model.encode_text(tokens, mask)
        x = model.normalize_mel(mel)
        post = model.encode_audio(x, mel_mask, torch.Generator().manual_seed(0))
        fed = post.mu[:, :-1]
        for _ in range(passes):
            pred = real(fed, memory, mask).pred
            fed = pred[:, :-1]
        want = L.prediction_mse(pred, post.mu, post.mask)
    assert float(out["pred"]) == pytest.approx(float(want), rel=1e-5)


def test_ss_passes_is_checked():
    for bad in (1, 9, 2.5, True):
        with pytest.raises(ConfigError, match="lewm.ss_passes must be an integer in 2..8"):
            dataclasses.replace(LeWMConfig(), ss_passes=bad).validate()


# ----------------------------------------------------------------------------- stopping and lengths


def test_length_limits_closed_form():
    lo, hi = length_limits([10, 3], factor=2, min_ratio=1.0, max_ratio=7.0)
    assert lo == [5, 2] and hi == [35, 11]
    assert length_limits([10 ** 6], 2, 0.0, 1000.0)[1] == [MAX_LATENT_STEPS]
    with pytest.raises(ValueError, match="length ratios"):
        length_limits([3], 2, 5.0, 4.0)


@pytest.mark.parametrize("bias, expect", [(100.0, "min"), (-100.0, "max")])
def test_stop_head_and_length_limits(bias, expect):
    model = tiny_model()
    with torch.no_grad():
        model.predictor.stop.bias.fill_(bias)
        model.predictor.stop.weight.zero_()
    tokens, mask = tokens_of([8, 3])
    out = generate(model, tokens, mask, generators=gens([0, 1]), min_length_ratio=2.0, max_length_ratio=5.0)
    lo, hi = length_limits([8, 3], 2, 2.0, 5.0)
    assert out.lengths.tolist() == (lo if expect == "min" else hi)
    assert out.stopped.tolist() == [expect == "min"] * 2
    assert out.steps == max(out.lengths.tolist())
    assert out.mel.shape[-1] == 2 * out.latents.shape[1] and out.mel_lengths.tolist() == [2 * n for n in out.lengths.tolist()]
    assert torch.all(out.mel[1, :, out.mel_lengths[1]:] == 0)


@pytest.mark.parametrize("head", ["point", "gaussian"])
def test_batched_generation_equals_single_items(head):
    model = tiny_model(predictor_head=head)
    with torch.no_grad():
        model.predictor.stop.bias.fill_(-100.0)   # lengths from the limits: different per row
    tokens, mask = tokens_of([9, 4, 6])
    kw = dict(temperature=0.5, min_length_ratio=1.0, max_length_ratio=4.0, prenet_dropout=True)
    batch = generate(model, tokens, mask, generators=gens([10, 11, 12]), **kw)
    for b in range(3):
        n = int(mask[b].sum())
        alone = generate(model, tokens[b:b + 1, :n], mask[b:b + 1, :n], generators=gens([10 + b]), **kw)
        k = int(alone.lengths[0])
        assert int(batch.lengths[b]) == k
        torch.testing.assert_close(batch.latents[b, :k], alone.latents[0, :k], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(batch.mel[b, :, :2 * k], alone.mel[0], atol=1e-4, rtol=1e-5)
    again = generate(model, tokens, mask, generators=gens([10, 11, 12]), **kw)
    assert torch.equal(again.latents, batch.latents)           # seeds reproduce
    other = generate(model, tokens, mask, generators=gens([20, 21, 22]), **kw)
    assert not torch.equal(other.latents, batch.latents)       # noise and prenet dropout act


# ----------------------------------------------------------------------------- bad input


def test_bad_input_errors():
    model = tiny_model()
    tokens, mask = tokens_of([4])
    with pytest.raises(ValueError, match="one generator per row"):
        generate(model, tokens, mask, generators=[])
    with pytest.raises(ValueError, match="temperature"):
        generate(model, tokens, mask, generators=gens([0]), temperature=-1.0)
    with pytest.raises(ValueError, match="token ids"):
        model.encode_text(torch.full((1, 3), 999), torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one real token"):
        model.encode_text(tokens, torch.zeros_like(mask))
    with pytest.raises(ValueError, match=r"\(batch, 100, frames\)"):
        model.encode_audio(torch.randn(1, 80, 10), torch.ones(1, 10, dtype=torch.bool))
    with pytest.raises(ValueError, match="latents must be"):
        model.decode(torch.randn(1, 5, 3), torch.ones(1, 5, dtype=torch.bool))
    assert latent_mask(torch.tensor([[True] * 5 + [False] * 3]), 2).sum() == 3


@pytest.mark.parametrize("override, match", [
    ({"lewm": {"downsample_factor": 3}}, "valid: 2, 4"),
    ({"lewm": {"regularizer": "vicreg"}}, "valid: kl, sigreg"),
    ({"lewm": {"scheduled_sampling": "exp"}}, "valid: off, linear, cosine"),
    ({"lewm": {"predictor_head": "laplace"}}, "valid: point, gaussian"),
    ({"lewm": {"kl_anneal_fraction": 1.5}}, "kl_anneal_fraction"),
    ({"lewm": {"ss_start": 0.9, "ss_end": 0.5}}, "ss_start"),
    ({"lewm": {"stop_pos_weight": 0.0}}, "stop_pos_weight"),
    ({"lewm": {"min_length_ratio": 9.0, "max_length_ratio": 3.0}}, "min_length_ratio"),
    ({"lewm": {"predictor_dim": 30, "predictor_heads": 4}}, "divisible"),
    ({"lewm": {"spectral_scales": [0]}}, "spectral_scales"),
    ({"lewm": {"laten_dim": 4}}, "valid: .*latent_dim"),
    ({"objective": {"name": "edm"}}, "applies to model.family 'flow' only"),
    ({"model": {"depth": 3}}, "applies to model.family 'flow' only"),
    ({"model": {"family": "jepa"}}, "valid: flow, lewm"),
])
def test_lewm_config_errors_name_the_setting(override, match):
    with pytest.raises(ConfigError, match=match):
        merge(preset("lewm_tiny"), override)


def test_flow_config_refuses_lewm_settings_and_presets_round_trip(tmp_path):
    with pytest.raises(ConfigError, match="lewm.latent_dim applies to model.family 'lewm' only"):
        merge(preset("tiny"), {"lewm": {"latent_dim": 4}})
    for name in ("lewm_tiny", "lewm_small", "lewm_demo"):
        cfg = preset(name)
        cfg.save(tmp_path / f"{name}.json")
        from core.config import Config

        assert Config.load(tmp_path / f"{name}.json") == cfg and cfg.family == "lewm"
