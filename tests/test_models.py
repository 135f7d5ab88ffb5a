"""Text encoder, duration predictor, DiT velocity net and the TTS model (CPU; one GPU test).

Time convention: t = 0 is Gaussian noise, t = 1 is data.  Most checks randomise the
zero-initialised (adaLN-Zero, output) weights first, otherwise the velocity is 0 and
comparisons could not fail.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from core.config import ConfigError, ModelConfig, preset
from core.models import (ATTENTION_MODES, DurationPredictor, TextEncoder, TTSModel, VelocityDiT,
                         durations_from_log)
from core.models.tts import gaussian_log_likelihood

N_MELS = 20


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: one intra-op thread is as fast, and on a shared, loaded
    2-core machine two spinning OpenMP threads made a training step ~50x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_model(n_mels: int = N_MELS, meanflow: bool = False, seed: int = 0, randomize: bool = True,
               **changes) -> TTSModel:
    cfg = dataclasses.replace(preset("tiny").model, **changes)
    torch.manual_seed(seed)
    model = TTSModel(cfg, n_mels=n_mels, meanflow=meanflow)
    if randomize:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def make_batch(lengths: list[tuple[int, int]], n_mels: int = N_MELS, seed: int = 0, vocab: int = 260):
    """Right-padded random tokens (B, L) and mel (B, n_mels, T) with their masks."""
    g = torch.Generator().manual_seed(seed)
    n_l = max(l for l, _ in lengths)
    n_t = max(t for _, t in lengths)
    tokens = torch.zeros(len(lengths), n_l, dtype=torch.long)
    mel = torch.zeros(len(lengths), n_mels, n_t)
    for b, (l, t) in enumerate(lengths):
        tokens[b, :l] = torch.randint(1, vocab, (l,), generator=g)
        mel[b, :, :t] = torch.randn(n_mels, t, generator=g)
    token_mask = tokens != 0
    mel_mask = torch.arange(n_t)[None, :] < torch.tensor([t for _, t in lengths])[:, None]
    return tokens, token_mask, mel, mel_mask


# --------------------------------------------------------------------------- shapes


def test_component_shapes():
    cfg = dataclasses.replace(preset("tiny").model, n_speakers=3)
    tokens, tmask, mel, mmask = make_batch([(6, 20), (4, 15)])
    spk = torch.randn(2, cfg.speaker_dim)
    hidden = TextEncoder(cfg)(tokens, tmask, spk)
    assert hidden.shape == (2, 6, cfg.text_dim)
    assert torch.all(hidden[1, 4:] == 0), "padded tokens are zeroed"
    log_d = DurationPredictor(cfg)(hidden, tmask, spk)
    assert log_d.shape == (2, 6) and torch.all(log_d[1, 4:] == 0)
    net = VelocityDiT(cfg, N_MELS)
    v = net(mel, torch.rand(2), torch.randn(2, 20, cfg.text_dim), mmask, spk)
    assert v.shape == mel.shape


def test_tts_model_shapes_and_records():
    model = tiny_model(n_speakers=2)
    tokens, tmask, mel, mmask = make_batch([(6, 20), (4, 15)])
    spk = torch.tensor([0, 1])
    enc = model.encode(tokens, tmask, spk)
    assert enc.hidden.shape == (2, 6, 64) and enc.mu.shape == (2, 6, N_MELS)
    assert enc.log_durations.shape == (2, 6) and enc.speaker_emb.shape == (2, 16)
    ali = model.align(enc, mel, mmask)
    assert ali.attn.shape == (2, 6, 20) and ali.durations.dtype == torch.long
    assert ali.durations.sum(1).tolist() == [20, 15]
    assert model.expand(enc.hidden, ali.attn).shape == (2, 20, 64)
    cond = model.conditioning(tokens, tmask, spk, mel, mmask)
    assert cond.cond.shape == (2, 20, 64) and cond.mel_mask.shape == (2, 20)
    assert set(cond.losses) == {"duration", "prior"} and all(v.dim() == 0 for v in cond.losses.values())
    assert cond.drop.tolist() == [False, False]  # eval mode: nothing dropped
    v = model.predict(torch.randn_like(mel), torch.rand(2), cond)
    assert v.shape == mel.shape and torch.all(v[1, :, 15:] == 0)
    inf = model.inference_conditioning(tokens, tmask, spk, durations=torch.full((2, 6), 3))
    assert inf.cond.shape == (2, 18, 64) and inf.mel_mask.sum(1).tolist() == [18, 12]
    rep = inf.repeat(2)
    assert rep.cond.shape == (4, 18, 64) and rep.drop.shape == (4,)


def test_mel_normalisation_buffers_in_state_dict():
    model = tiny_model()
    model.mel_mean.fill_(-5.0)
    model.mel_std.fill_(2.0)
    state = model.state_dict()
    assert state["mel_mean"].item() == -5.0 and state["mel_std"].item() == 2.0
    mel = torch.randn(1, N_MELS, 7)
    torch.testing.assert_close(model.normalize_mel(mel), (mel + 5.0) / 2.0)
    torch.testing.assert_close(model.denormalize_mel(model.normalize_mel(mel)), mel)
    fresh = tiny_model(seed=1)
    fresh.load_state_dict(state)
    assert fresh.mel_mean.item() == -5.0


# --------------------------------------------------------------------------- masks


def test_padding_does_not_change_real_outputs():
    model = tiny_model(n_speakers=3)
    lengths = [(5, 23), (9, 40)]
    tokens, tmask, mel, mmask = make_batch(lengths, seed=3)
    spk = torch.tensor([2, 0])
    durations = torch.tensor([[4, 5, 3, 6, 5, 0, 0, 0, 0], [5] * 8 + [0]])  # sums 23 and 40
    x = torch.randn(2, N_MELS, 40)
    t = torch.tensor([0.3, 0.8])
    with torch.no_grad():
        enc_b = model.encode(tokens, tmask, spk)
        enc_1 = model.encode(tokens[:1, :5], tmask[:1, :5], spk[:1])
        train_b = model.conditioning(tokens, tmask, spk, mel, mmask)
        train_1 = model.conditioning(tokens[:1, :5], tmask[:1, :5], spk[:1], mel[:1, :, :23], mmask[:1, :23])
        cond_b = model.inference_conditioning(tokens, tmask, spk, durations=durations[:, :9])
        cond_1 = model.inference_conditioning(tokens[:1, :5], tmask[:1, :5], spk[:1], durations=durations[:1, :5])
        v_b = model.predict(x, t, cond_b)
        v_1 = model.predict(x[:1, :, :23], t[:1], cond_1)
    for a, b in [(enc_b.hidden[:1, :5], enc_1.hidden), (enc_b.mu[:1, :5], enc_1.mu),
                 (enc_b.log_durations[:1, :5], enc_1.log_durations),
                 (train_b.cond[:1, :23], train_1.cond), (v_b[:1, :, :23], v_1)]:
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert torch.equal(train_b.attn[:1, :5, :23], train_1.attn)
    assert torch.all(v_b[0, :, 23:] == 0)


def test_attention_paths_agree_and_unknown_is_rejected():
    model = tiny_model()
    tokens, tmask, mel, mmask = make_batch([(6, 30), (3, 12)], seed=4)
    with torch.no_grad():
        h_sdpa = model.encode(tokens, tmask, attention="sdpa").hidden
        h_math = model.encode(tokens, tmask, attention="math").hidden
        cond = model.conditioning(tokens, tmask, None, mel, mmask)
        t = torch.tensor([0.1, 0.9])
        v_sdpa = model.predict(mel, t, cond, attention="sdpa")
        v_math = model.predict(mel, t, cond, attention="math")
    torch.testing.assert_close(h_sdpa, h_math, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(v_sdpa, v_math, atol=1e-5, rtol=1e-5)
    assert ATTENTION_MODES == ("sdpa", "math")
    with pytest.raises(ConfigError, match="unknown attention 'flash'; valid: sdpa, math"):
        model.predict(mel, t, cond, attention="flash")


# --------------------------------------------------------------------------- durations and prior


def test_duration_inference_rule():
    # exp(log d) * scale = [0.3, 1.49, 2.5, 7.0, pad]: round -> [0, 1, 2 (half to even), 7], clamp >= 1
    log_d = torch.log(torch.tensor([[0.3, 1.49, 2.5, 7.0, 5.0]]))
    mask = torch.tensor([[True, True, True, True, False]])
    assert durations_from_log(log_d, mask).tolist() == [[1, 1, 2, 7, 0]]
    assert durations_from_log(log_d, mask, duration_scale=2.0).tolist() == [[1, 3, 5, 14, 0]]
    assert durations_from_log(torch.full((1, 2), 1e4), torch.ones(1, 2, dtype=torch.bool)).min() > 0
    with pytest.raises(ValueError, match="duration_scale must be positive"):
        durations_from_log(log_d, mask, duration_scale=0.0)
    model = tiny_model()
    tokens, tmask, _, _ = make_batch([(6, 30), (3, 12)])
    with torch.no_grad():
        enc = model.encode(tokens, tmask)
        cond = model.inference_conditioning(tokens, tmask, duration_scale=1.5)
    expected = durations_from_log(enc.log_durations, tmask, 1.5)
    assert torch.equal(cond.durations, expected)
    assert cond.mel_mask.sum(1).tolist() == expected.sum(1).tolist()


def test_attn_from_durations_pinned():
    attn, mask = TTSModel.attn_from_durations(torch.tensor([[2, 1, 0], [1, 1, 1]]))
    assert attn.tolist() == [[[1, 1, 0], [0, 0, 1], [0, 0, 0]],
                             [[1, 0, 0], [0, 1, 0], [0, 0, 1]]]
    assert mask.tolist() == [[True, True, True], [True, True, True]]
    attn, mask = TTSModel.attn_from_durations(torch.tensor([[2, 0]]), max_frames=4)
    assert attn.shape == (1, 2, 4) and mask.tolist() == [[True, True, False, False]]


def test_training_losses_match_their_definitions():
    model = tiny_model()
    tokens, tmask, mel, mmask = make_batch([(6, 30), (3, 12)], seed=5)
    cond = model.conditioning(tokens, tmask, None, mel, mmask)
    enc = model.encode(tokens, tmask)
    # the alignment maximises the summed log-likelihood; prior = 0.5 * mean sq. error on real cells
    mu_frames = (cond.attn.transpose(1, 2) @ enc.mu).transpose(1, 2)
    err = ((mel - mu_frames) ** 2 * mmask[:, None, :]).sum() / (mmask.sum() * N_MELS)
    torch.testing.assert_close(cond.losses["prior"], 0.5 * err)
    log_d_target = torch.log(cond.durations.clamp(min=1).float())
    dur = ((enc.log_durations - log_d_target) ** 2 * tmask).sum() / tmask.sum()
    torch.testing.assert_close(cond.losses["duration"], dur)
    # log-likelihood helper equals the direct formula -0.5 |x - mu|^2
    direct = -0.5 * ((mel[:, None, :, :] - enc.mu[..., None]) ** 2).sum(2)
    torch.testing.assert_close(gaussian_log_likelihood(enc.mu, mel), direct, atol=1e-4, rtol=1e-5)
    # the duration predictor sees detached text features: its loss trains only itself
    model.zero_grad()
    cond.losses["duration"].backward()
    assert all(p.grad is None for p in model.text_encoder.parameters())
    assert any(p.grad is not None for p in model.duration_predictor.parameters())


# --------------------------------------------------------------------------- guidance dropout


def test_drop_uses_the_null_condition():
    model = tiny_model(n_speakers=2)
    tokens, tmask, mel, mmask = make_batch([(6, 30), (3, 12)], seed=6)
    spk = torch.tensor([1, 0])
    with torch.no_grad():
        cond = model.conditioning(tokens, tmask, spk, mel, mmask)
        x, t = torch.randn_like(mel), torch.tensor([0.4, 0.6])
        v_cond = model.predict(x, t, cond)
        v_drop = model.predict(x, t, cond, drop=torch.tensor([True, True]))
        null = model.velocity_net.null_cond.expand_as(cond.cond)
        v_null = model.predict(x, t, dataclasses.replace(cond, cond=null))
        v_mixed = model.predict(x, t, cond, drop=torch.tensor([True, False]))
    assert (v_drop - v_cond).abs().max() > 1e-3
    torch.testing.assert_close(v_drop, v_null)
    torch.testing.assert_close(v_mixed[0], v_drop[0])
    torch.testing.assert_close(v_mixed[1], v_cond[1])


def test_drop_sampling_rate_determinism_and_eval_mode():
    model = tiny_model(randomize=False, cond_drop_prob=0.3).train()
    tokens, tmask, mel, mmask = make_batch([(2, 3)] * 500, seed=7)
    draw = lambda: model.conditioning(tokens, tmask, None, mel, mmask,  # noqa: E731
                                      generator=torch.Generator().manual_seed(11)).drop
    d1, d2 = draw(), draw()
    assert torch.equal(d1, d2)
    # binomial(500, 0.3): mean 150, sd 10.2; +-4 sd
    assert 109 <= int(d1.sum()) <= 191
    model.eval()
    assert not draw().any()


# --------------------------------------------------------------------------- time inputs, MeanFlow, JVP


def test_meanflow_takes_r_and_plain_model_rejects_it():
    plain = tiny_model()
    mf = tiny_model(meanflow=True)
    tokens, tmask, mel, mmask = make_batch([(5, 20)], seed=8)
    x = torch.randn_like(mel)
    t = torch.tensor([0.7])
    with torch.no_grad():
        cond = plain.conditioning(tokens, tmask, None, mel, mmask)
        with pytest.raises(ValueError, match="not a MeanFlow model"):
            plain.predict(x, t, cond, r=torch.tensor([0.2]))
        u_rt = mf.predict(x, t, cond, r=torch.tensor([0.2]))
        u_tt = mf.predict(x, t, cond, r=t)
        u_default = mf.predict(x, t, cond)
        # a 0-d time broadcasts over the batch
        torch.testing.assert_close(plain.predict(x, t[0], cond), plain.predict(x, t, cond))
    torch.testing.assert_close(u_default, u_tt)
    assert (u_rt - u_tt).abs().max() > 1e-4


def test_jvp_through_velocity_matches_finite_difference():
    model = tiny_model(meanflow=True).double()
    tokens, tmask, mel, mmask = make_batch([(5, 18), (3, 11)], seed=9)
    cond = model.conditioning(tokens, tmask, None, mel.double(), mmask)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(mel.shape, generator=g, dtype=torch.float64)
    r = torch.tensor([0.2, 0.5], dtype=torch.float64)
    t = torch.tensor([0.6, 0.9], dtype=torch.float64)
    dx = torch.randn(mel.shape, generator=g, dtype=torch.float64)
    dr = torch.ones(2, dtype=torch.float64)

    def u(z, rr):
        return model.predict(z, t, cond, r=rr, attention="math")

    with torch.no_grad():
        out, tangent = torch.func.jvp(u, (x, r), (dx, dr))
        # central difference; the time features are sin(1000 r f), so third derivatives
        # in r reach ~1e9 and the O(eps^2) truncation error needs eps ~1e-7 (measured:
        # max error 5e-6 at eps=1e-6, 5e-8 at eps=1e-7, on outputs of size ~40)
        eps = 1e-7
        fd = (u(x + eps * dx, r + eps * dr) - u(x - eps * dx, r - eps * dr)) / (2 * eps)
    torch.testing.assert_close(out, u(x, r).detach())
    assert tangent.abs().max() > 1e-3
    torch.testing.assert_close(tangent, fd, rtol=1e-6, atol=1e-6)
    # the x-direction alone is smooth: tight agreement
    with torch.no_grad():
        _, tan_x = torch.func.jvp(u, (x, r), (dx, torch.zeros_like(dr)))
        fd_x = (u(x + 1e-5 * dx, r) - u(x - 1e-5 * dx, r)) / 2e-5
    torch.testing.assert_close(tan_x, fd_x, rtol=1e-7, atol=1e-9)


# --------------------------------------------------------------------------- precision, sizes, errors


def test_runs_under_bf16_autocast():
    model = tiny_model(meanflow=True)
    tokens, tmask, mel, mmask = make_batch([(6, 30), (3, 12)], seed=10)
    t = torch.tensor([0.3, 0.7])
    with torch.no_grad():
        cond32 = model.conditioning(tokens, tmask, None, mel, mmask)
        v32 = model.predict(mel, t, cond32, r=t / 2)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            cond16 = model.conditioning(tokens, tmask, None, mel, mmask)
            v16 = model.predict(mel, t, cond16, r=t / 2)
            inf16 = model.inference_conditioning(tokens, tmask)
    assert v16.dtype == torch.float32 and torch.isfinite(v16).all()
    assert torch.isfinite(inf16.cond).all()
    assert (v16 - v32).abs().max() < 0.1 * v32.abs().max()


def test_parameter_counts_of_presets():
    counts = {name: TTSModel(preset(name).model).num_parameters() for name in ("tiny", "small")}
    print("\nparameters: " + ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in counts.items()))
    assert counts["tiny"] < 1_000_000
    assert 1_000_000 <= counts["small"] <= 15_000_000


def test_input_errors_are_clear():
    model = tiny_model(n_speakers=2)
    tokens, tmask, mel, mmask = make_batch([(6, 30)])
    with pytest.raises(ValueError, match="has 2 speakers: pass speakers"):
        model.encode(tokens, tmask)
    with pytest.raises(ValueError, match=r"speaker ids must be in \[0, 2\)"):
        model.encode(tokens, tmask, torch.tensor([5]))
    with pytest.raises(ValueError, match="token ids must be in"):
        model.encode(tokens + 1000, tmask, torch.tensor([0]))
    with pytest.raises(ValueError, match="cannot be aligned"):
        model.conditioning(tokens, tmask, torch.tensor([0]), mel[:, :, :4], mmask[:, :4])
    with pytest.raises(ConfigError, match="divisible"):
        TTSModel(ModelConfig(dim=100, heads=3))


# --------------------------------------------------------------------------- learning


def test_tiny_model_overfits_one_utterance():
    torch.manual_seed(0)
    model = TTSModel(preset("tiny").model, n_mels=100).train()
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, 260, (1, 12), generator=g)
    tmask = torch.ones(1, 12, dtype=torch.bool)
    # smooth random "mel": a few random sinusoids over time per band, unit scale
    n_t = 60
    tt = torch.linspace(0, 1, n_t)
    freqs = torch.rand(100, 3, 1, generator=g) * 4
    phases = torch.rand(100, 3, 1, generator=g) * 2 * math.pi
    x1 = torch.sin(2 * math.pi * freqs * tt + phases).sum(1)[None] / math.sqrt(1.5)
    mmask = torch.ones(1, n_t, dtype=torch.bool)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(150):
        cond = model.conditioning(tokens, tmask, None, x1, mmask, generator=g)
        x0 = torch.randn(x1.shape, generator=g)
        t = torch.rand(1, generator=g)
        xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * x1
        v = model.predict(xt, t, cond)
        flow = ((v - (x1 - x0)) ** 2).mean()
        loss = flow + cond.losses["duration"] + cond.losses["prior"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append([loss.item(), flow.item(), cond.losses["duration"].item(), cond.losses["prior"].item()])
    first = torch.tensor(losses[:10]).mean(0)
    last = torch.tensor(losses[-10:]).mean(0)
    print(f"\noverfit (total, flow, duration, prior): {first.tolist()} -> {last.tolist()}")
    assert last[0] < 0.5 * first[0]
    assert last[1] < 0.75 * first[1], "the velocity net itself learns, not only the auxiliary heads"
    assert torch.all(last[2:] < 0.5 * first[2:])


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_sdpa_math_and_bf16():
    model = tiny_model(meanflow=True).cuda()
    tokens, tmask, mel, mmask = (x.cuda() for x in make_batch([(6, 30), (3, 12)], seed=12))
    t = torch.tensor([0.3, 0.7], device="cuda")
    with torch.no_grad():
        cond = model.conditioning(tokens, tmask, None, mel, mmask)
        v_sdpa = model.predict(mel, t, cond, attention="sdpa")
        v_math = model.predict(mel, t, cond, attention="math")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            v16 = model.predict(mel, t, cond)
    torch.testing.assert_close(v_sdpa, v_math, atol=1e-4, rtol=1e-4)
    assert v16.dtype == torch.float32 and torch.isfinite(v16).all()
    assert (v16 - v_sdpa).abs().max() < 0.1 * v_sdpa.abs().max()
    _, tangent = torch.func.jvp(lambda z: model.predict(z, t, cond, attention="math"), (mel,), (mel,))
    assert torch.isfinite(tangent).all()
