"""The LeWM predictor's Gaussian head: the NLL against torch's reference, the bounded
log-variance, sampling, the gradients the learner gives each part, a tiny overfit, and a
checkpoint through the trainer into the Synthesizer (the KV-cache and batch-equals-single
checks of the head are in test_lewm.py)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import core
from core.config import Config, ConfigError, LeWMConfig, merge, preset, to_dict
from core.lewm import LeWMModel
from core.lewm import losses as L
from core.lewm.gaussian_head import LOGVAR_MAX, LOGVAR_MIN, bounded_logvar, sample_latents
from core.lewm.learner import LeWMLoss
from core.train.metrics import read_metrics

from test_lewm import tiny_model, tokens_of
from test_lewm_train import _utterances, lewm_config

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- the loss


def test_gaussian_nll_matches_torch_and_its_closed_form():
    gen = torch.Generator().manual_seed(0)
    mean, target = torch.randn(2, 5, 4, generator=gen), torch.randn(2, 5, 4, generator=gen)
    logvar = torch.randn(2, 5, 4, generator=gen)
    full = torch.ones(2, 5, dtype=torch.bool)
    ref = F.gaussian_nll_loss(mean, target, logvar.exp(), full=True, eps=0.0)
    assert float(L.gaussian_nll(mean, logvar, target, full)) == pytest.approx(float(ref), rel=1e-6)
    # padded frames do not count: the reference on the real frames only
    mask = full.clone()
    mask[1, 2:] = False
    ref = F.gaussian_nll_loss(mean[mask], target[mask], logvar[mask].exp(), full=True, eps=0.0)
    assert float(L.gaussian_nll(mean, logvar, target, mask)) == pytest.approx(float(ref), rel=1e-6)
    # unit variance: half the MSE plus 0.5 log(2 pi)
    zero = torch.zeros_like(logvar)
    want = 0.5 * float(L.prediction_mse(mean, target, mask)) + 0.5 * math.log(2 * math.pi)
    assert float(L.gaussian_nll(mean, zero, target, mask)) == pytest.approx(want, rel=1e-6)


# ----------------------------------------------------------------------------- the head


def test_bounded_logvar_is_a_smooth_clamp():
    raw = torch.linspace(-1000.0, 1000.0, 20001, dtype=torch.float64)
    out = bounded_logvar(raw)
    top = LOGVAR_MIN + math.log1p(math.exp(LOGVAR_MAX - LOGVAR_MIN))  # softplus(max - min) above min
    assert top - LOGVAR_MAX == pytest.approx(math.log1p(math.exp(-10.0)))
    assert torch.all(out >= LOGVAR_MIN) and torch.all(out <= top) and torch.all(out.diff() >= 0)
    assert float(out[0]) == pytest.approx(LOGVAR_MIN, abs=1e-12) and float(out[-1]) == pytest.approx(top, abs=1e-12)
    inside = torch.linspace(-5.0, -1.0, 9, dtype=torch.float64)      # well inside: close to the identity
    assert float((bounded_logvar(inside) - inside).abs().max()) < 0.05
    x = torch.tensor([-40.0, -3.0, 0.0, 40.0], dtype=torch.float64, requires_grad=True)
    bounded_logvar(x).sum().backward()
    assert torch.all(x.grad > 0)                                      # unlike a hard clamp, never zero


def test_sampling_is_the_mean_at_temperature_zero_and_scales_the_std():
    mean = torch.full((200000, 1), 0.5)
    logvar = torch.full((200000, 1), math.log(0.25))                 # std 0.5
    eps = torch.randn(200000, 1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sample_latents(mean, logvar, 0.0, eps), mean)
    x = sample_latents(mean, logvar, 2.0, eps)                       # std T * 0.5 = 1
    assert float(x.mean()) == pytest.approx(0.5, abs=0.01) and float(x.std()) == pytest.approx(1.0, rel=0.01)
    with pytest.raises(ValueError, match="temperature"):
        sample_latents(mean, logvar, -1.0, eps)


def test_the_point_head_has_no_logvar_and_old_configs_load_as_point():
    point, gauss = tiny_model(), tiny_model(predictor_head="gaussian")
    assert point.predictor.logvar is None and not any(k.startswith("predictor.logvar") for k in point.state_dict())
    extra = set(gauss.state_dict()) - set(point.state_dict())
    assert extra == {"predictor.logvar.proj.weight", "predictor.logvar.proj.bias"}
    # a config written before the option existed has no predictor_head: it is a point predictor
    data = to_dict(preset("lewm_tiny"))
    del data["lewm"]["predictor_head"]
    assert Config.from_dict(data).lewm.predictor_head == "point"
    with pytest.raises(ConfigError, match="unknown lewm.predictor_head 'mdn'; valid: point, gaussian"):
        LeWMConfig(predictor_head="mdn").validate()
    with pytest.raises(ConfigError, match="lewm.predictor_head applies to model.family 'lewm' only"):
        merge(preset("tiny"), {"lewm": {"predictor_head": "gaussian"}})


def test_gaussian_outputs_are_bounded_and_cached_steps_match_one_forward():
    model = tiny_model(predictor_head="gaussian")
    pred = model.predictor
    tokens, mask = tokens_of([5, 3])
    memory = model.encode_text(tokens, mask)
    x = torch.randn(2, 7, pred.dim)
    full = pred(x, memory, mask)
    assert full.logvar.shape == full.pred.shape == (2, 7, model.config.latent_dim)
    assert torch.all(full.logvar > LOGVAR_MIN) and torch.all(full.logvar < LOGVAR_MAX + 1e-4)
    cache = pred.begin(memory)
    steps = [pred(x[:, i:i + 1], memory, mask, cache) for i in range(7)]
    torch.testing.assert_close(torch.cat([s.logvar for s in steps], 1), full.logvar, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- the learner


def _batch():
    tokens, mask = tokens_of([6, 4])
    mel = torch.randn(2, 100, 24, generator=torch.Generator().manual_seed(3))
    mel_mask = torch.ones(2, 24, dtype=torch.bool)
    mel_mask[1, 18:] = False
    return tokens, mask, None, mel, mel_mask


def test_learner_gaussian_terms_and_gradients():
    # only the prediction term: the other weights 0, no noise, no scheduled sampling, eval mode
    only_pred = dict(reconstruction_weight=0.0, spectral_weight=0.0, stop_weight=0.0, kl_weight=0.0,
                     feedback_noise=0.0, scheduled_sampling="off", prenet_dropout=0.0)
    gauss = tiny_model(predictor_head="gaussian", **only_pred)
    ref_model = tiny_model(predictor_head="gaussian", **only_pred)
    ref_model.load_state_dict(gauss.state_dict())
    point = tiny_model(**only_pred)
    point.load_state_dict({k: v for k, v in gauss.state_dict().items() if not k.startswith("predictor.logvar")})
    batch = _batch()
    out_g = LeWMLoss(gauss, 100)(*batch)
    out_p = LeWMLoss(point, 100)(*batch)
    # the logged pred is the MSE of the mean, as the point head's; the point head logs no NLL
    assert float(out_g["pred"]) == pytest.approx(float(out_p["pred"]), rel=1e-6) and float(out_p["nll"]) == 0.0
    # reference: torch's NLL on the real frames with the targets as fixed data, plus the targets' MSE pull
    tokens, token_mask, _, mel, mel_mask = batch
    post = ref_model.encode_audio(ref_model.normalize_mel(mel) * mel_mask[:, None, :], mel_mask)
    res = ref_model.teacher_forced(post.mu[:, :-1], ref_model.encode_text(tokens, token_mask), token_mask)
    m = post.mask
    nll = F.gaussian_nll_loss(res.pred[m], post.mu[m].detach(), res.logvar[m].exp(), full=True, eps=0.0)
    ref = nll + ((res.pred.detach()[m] - post.mu[m]) ** 2).mean()
    assert float(out_g["nll"]) == pytest.approx(float(nll.detach()), rel=1e-5)
    assert float(out_g["loss"].detach()) == pytest.approx(float(ref.detach()), rel=1e-5)
    out_g["loss"].backward()
    ref.backward()
    for (name, p), r in zip(gauss.named_parameters(), ref_model.parameters()):
        got, want = (torch.zeros_like(p) if x.grad is None else x.grad for x in (p, r))   # None: not reached
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-4, msg=name)
    assert gauss.predictor.logvar.proj.weight.grad.abs().sum() > 0


def test_tiny_overfit_with_the_gaussian_head():
    cfg = merge(preset("lewm_tiny"), {"lewm": {"scheduled_sampling": "off", "prenet_dropout": 0.0,
                                               "feedback_noise": 0.0, "predictor_head": "gaussian"}})
    torch.manual_seed(0)
    model = LeWMModel(dataclasses.replace(cfg.model, vocab_size=260), cfg.lewm).train()
    tokens, token_mask, mel, mel_mask = _utterances()
    model.mel_mean.fill_(float(mel.mean()))
    model.mel_std.fill_(float(mel.std()))
    learner = LeWMLoss(model, 150)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for step in range(150):
        out = learner(tokens, token_mask, None, mel, mel_mask, torch.Generator().manual_seed(step))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        history.append({k: float(out[k].detach()) for k in ("loss", "nll", "pred", "copy")})
    # the last 20 steps' means: a single step of this small-batch Adam run can spike (seen: NLL
    # 0.02 at step 150 between -0.8s, after rounding-level changes to the attention kernel)
    first = history[0]
    last = {k: sum(h[k] for h in history[-20:]) / 20 for k in history[0]}
    assert last["nll"] < first["nll"] - 1.0, (first, last)          # nats per dimension
    assert last["pred"] < last["copy"]                               # the mean beats copying the previous frame
    # the variance is calibrated: the NLL is near that of the best single variance for this MSE,
    # 0.5 (log MSE + 1 + log 2 pi) (runs here: -0.67 against -0.68 with the explicit attention of
    # the guided layers, -0.46 against -0.49 with SDPA everywhere; first NLL 1.35)
    assert last["nll"] < 0.5 * (math.log(last["pred"]) + 1 + math.log(2 * math.pi)) + 0.2
    assert all(math.isfinite(v) for v in last.values())


# ----------------------------------------------------------------------------- trainer to Synthesizer


@pytest.fixture(scope="module")
def gaussian_run(tiny_corpus, tmp_path_factory):
    from core.train import Trainer

    out = tmp_path_factory.mktemp("gaussian_run")
    cfg = merge(lewm_config(tiny_corpus, steps=3, checkpoint_every=3, val_every=0),
                {"lewm": {"predictor_head": "gaussian"}})
    return out, Trainer(cfg, out, progress=False).fit()


def test_a_gaussian_checkpoint_trains_logs_its_nll_and_synthesizes(gaussian_run):
    run, path = gaussian_run
    rows = [r for r in read_metrics(run / "metrics.jsonl") if "loss" in r]
    assert len(rows) == 3 and all(math.isfinite(r["nll"]) and r["nll"] != 0.0 for r in rows)
    synth = core.Synthesizer.from_checkpoint(path, device="cpu", vocoder="griffin-lim")
    assert synth.model.config.predictor_head == "gaussian"
    kw = dict(max_length_ratio=4.0, seed=5)
    mean = synth.synthesize("A red fox.", temperature=0.0, **kw)
    hot = synth.synthesize("A red fox.", temperature=1.0, **kw)
    assert hot.settings["temperature"] == 1.0 and hot.settings["family"] == "lewm"
    # seeded: rendering again from the settings is identical; another seed or temperature 0 differs
    assert np.array_equal(synth.synthesize("A red fox.", temperature=1.0, **kw).mel, hot.mel)
    assert np.array_equal(synth.synthesize("A red fox.", temperature=0.0, **kw).mel, mean.mel)
    other = synth.synthesize("A red fox.", temperature=1.0, max_length_ratio=4.0, seed=6)
    assert not np.array_equal(hot.mel, mean.mel) and not np.array_equal(hot.mel, other.mel)


def test_the_copy_baseline_report_reads_the_mean(gaussian_run, tiny_corpus):
    # benchmarks/lewm_table.py's teacher-forced numbers: pred is the MSE of the Gaussian head's mean
    import csv
    import importlib.util

    import soundfile as sf

    spec = importlib.util.spec_from_file_location("lewm_table", ROOT / "benchmarks" / "lewm_table.py")
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    synth = core.Synthesizer.from_checkpoint(gaussian_run[1], device="cpu", vocoder="griffin-lim")
    with open(tiny_corpus, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["speaker"] == "alice"][:2]
    items = [(r["text"], sf.read(tiny_corpus.parent / r["audio_path"], dtype="float32")[0]) for r in rows]
    got = table.teacher_forced_losses(synth, items, synth.speaker_id("alice"))
    assert got["pred_mse"] > 0 and got["copy_mse"] > 0
    assert got["pred_over_copy"] == pytest.approx(got["pred_mse"] / got["copy_mse"])
    # the same number from the first clip alone, by hand: MSE(mean, mu) over its latent frames
    text, audio = items[0]
    model = synth.model
    with torch.no_grad():
        mel = torch.from_numpy(table._mel(audio, synth.config.audio))[None]
        post = model.encode_audio(model.normalize_mel(mel), torch.ones(1, mel.shape[-1], dtype=torch.bool))
        tokens = torch.tensor([synth.front_end(text)])
        memory = model.encode_text(tokens, tokens > 0, torch.tensor([synth.speaker_id("alice")]))
        res = model.teacher_forced(post.mu[:, :-1], memory, tokens > 0)
    assert res.logvar is not None
    alone = table.teacher_forced_losses(synth, items[:1], synth.speaker_id("alice"))
    assert alone["pred_mse"] == pytest.approx(float(((res.pred - post.mu) ** 2).mean()), rel=1e-5)
