"""Trainer: metrics, checkpoints, bit-identical resume, the NaN/spike guard, SIGKILL."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from core import load_checkpoint
from core.config import merge
from core.train import Callback, Trainer, TrainingError
from core.train.metrics import TimeBins, read_metrics
from core.train.setup import lr_factor

from conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]


def test_lr_schedule_closed_form():
    # warm-up: (s+1)/W; cosine: 0.5 (1 + cos(pi p)), p = (s - W) / (T - W)
    assert lr_factor(0, 4, 20, "cosine") == pytest.approx(0.25)
    assert lr_factor(3, 4, 20, "cosine") == pytest.approx(1.0)
    assert lr_factor(12, 4, 20, "cosine") == pytest.approx(0.5)
    assert lr_factor(20, 4, 20, "cosine") == pytest.approx(0.0)
    assert lr_factor(12, 4, 20, "linear") == pytest.approx(0.5)
    assert lr_factor(12, 4, 20, "constant") == 1.0


def test_time_bins():
    bins = TimeBins(10)
    bins.add(torch.tensor([0.0, 0.05, 0.55, 1.0]), torch.tensor([1.0, 3.0, 5.0, 7.0]))
    m = bins.means()
    assert m[0] == 2.0 and m[5] == 5.0 and m[9] == 7.0 and m[1] is None


def test_train_writes_metrics_checkpoints_and_config(tmp_path, tiny_cfg):
    trainer = Trainer(tiny_cfg, tmp_path, progress=False)
    last = trainer.fit()
    assert last == tmp_path / "checkpoints" / "step_00000006.pt"
    rows = read_metrics(tmp_path / "metrics.jsonl")
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4, 5, 6]
    for r in train_rows:
        assert len(r["t_bins"]) == 10
        for key in ("flow", "duration", "prior", "lr", "grad_norm", "examples_per_s"):
            assert math.isfinite(r[key])
    assert sum(1 for r in rows if "val_loss" in r) == 2
    ck = load_checkpoint(last)
    assert ck.step == 6 and ck.speakers == ["alice", "bob"]
    assert ck.config.model.n_speakers == 2 and ck.config.model.vocab_size == trainer.data.tokenizer.vocab_size
    assert json.loads((tmp_path / "config.json").read_text())["model"]["n_speakers"] == 2
    # the EMA weights differ from the raw ones after training
    assert any(not torch.equal(ck.weights[k], ck.model_weights[k]) for k in ck.weights if ck.weights[k].is_floating_point())


class StopAt(Callback):
    def __init__(self, step):
        self.at = step

    def on_step_end(self, trainer, step, losses):
        if step == self.at:
            trainer.request_stop()


@pytest.mark.parametrize("objective", [{"name": "cfm"}, {"name": "meanflow"}, {"name": "meanflow", "cfg": 1.0}],
                         ids=["cfm", "meanflow", "meanflow-guided"])
def test_resume_is_bit_identical(tmp_path, tiny_corpus, objective):
    cfg = merge(tiny_config(tiny_corpus, steps=8, checkpoint_every=100, val_every=0),
                {"objective": objective})
    full = Trainer(cfg, tmp_path / "a", progress=False)
    full.fit()
    part = Trainer(cfg, tmp_path / "b", progress=False, callbacks=[StopAt(3)])
    assert part.fit().name == "step_00000003.pt"
    resumed = Trainer(cfg, tmp_path / "b", progress=False, resume=True)
    assert resumed.step == 3
    resumed.fit()
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    ea, eb = full.ema.model.state_dict(), resumed.ema.model.state_dict()
    assert all(torch.equal(ea[k], eb[k]) for k in ea)
    la = [r["loss"] for r in read_metrics(tmp_path / "a" / "metrics.jsonl") if "loss" in r]
    lb = [r["loss"] for r in read_metrics(tmp_path / "b" / "metrics.jsonl") if "loss" in r]
    assert la == lb


def test_meanflow_guidance_asks_the_model_for_the_null_condition_of_every_row(tmp_path, tiny_corpus):
    # objective.cfg > 0: each step makes one extra call with every row's text dropped, and
    # hands the objective the rows the conditional call dropped (cond_drop_prob 0.1)
    cfg = merge(tiny_config(tiny_corpus, steps=2, val_every=0), {"objective": {"name": "meanflow", "cfg": 2.0}})
    trainer = Trainer(cfg, tmp_path, progress=False)
    drops, seen = [], []
    real_predict = trainer.model.predict

    def predict(x, t, cond, r=None, drop=None, attention=None):
        drops.append(None if drop is None else drop.clone())
        return real_predict(x, t, cond, r=r, drop=drop, attention=attention)

    real_loss = trainer.objective.loss

    def loss(net, x1, mask, generator=None, unconditional=None):
        seen.append(unconditional)
        return real_loss(net, x1, mask, generator=generator, unconditional=unconditional)

    trainer.model.predict = predict
    trainer.objective.loss = loss
    trainer.fit()
    assert len(seen) == 2 and all(u is not None for u in seen)
    null_calls = [d for d in drops if d is not None and bool(d.all())]
    assert len(null_calls) == 2, "one unconditional forward per step"
    assert all(u.dropped.dtype == torch.bool and u.dropped.shape == d.shape for u, d in zip(seen, null_calls))


def test_nan_guard_skips_and_stops(tmp_path, tiny_cfg, monkeypatch):
    trainer = Trainer(merge(tiny_cfg, {"training": {"max_bad_steps": 3}}), tmp_path, progress=False)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    real = trainer.loss_module.forward

    def nan_forward(*a, **k):
        out = real(*a, **k)
        out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(trainer.loss_module, "forward", nan_forward)
    with pytest.raises(TrainingError, match="3 consecutive bad steps"):
        trainer.fit()
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "a NaN step changed the weights"
    events = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r.get("event") == "bad_step"]
    assert len(events) == 3 and "nan" in events[0]["reason"]


def test_spike_guard_skips_one_step(tmp_path, tiny_cfg):
    trainer = Trainer(tiny_cfg, tmp_path, progress=False)
    trainer.step, trainer.loss_avg = 50, 1e-6   # a running mean far below any real loss
    out = trainer.train_step(next(trainer.batches()))
    assert out.skipped and "spike" in out.reason and trainer.step == 50


def test_resume_skips_torn_newest_checkpoint(tmp_path, tiny_cfg):
    Trainer(tiny_cfg, tmp_path, progress=False).fit()
    (tmp_path / "checkpoints" / "step_00000099.pt").write_bytes(b"PK\x03\x04 torn")
    resumed = Trainer(merge(tiny_cfg, {"training": {"steps": 8}}), tmp_path, progress=False, resume=True)
    assert resumed.step == 6


def test_sigkill_resume_loses_at_most_the_steps_since_checkpoint(tmp_path, tiny_corpus):
    cfg = tiny_config(tiny_corpus, steps=400, checkpoint_every=2, val_every=0, log_every=1)
    cfg_path = tmp_path / "cfg.json"
    cfg.save(cfg_path)
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "core", "train", "--config", str(cfg_path), "--out", str(run),
                             "--device", "cpu", "--no-progress"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(list((run / "checkpoints").glob("step_*.pt"))) < 2:
            time.sleep(0.2)
        assert len(list((run / "checkpoints").glob("step_*.pt"))) >= 2, "no checkpoints were written"
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    logged = max(r["step"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r)
    resumed = Trainer(cfg, run, progress=False, resume=True)
    assert resumed.step % 2 == 0 and logged - resumed.step <= 2
    start = resumed.step
    resumed.config.training.steps = start + 2
    resumed.fit()
    steps = [r["step"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, start + 3)), "metrics history must be continuous after resume"


def test_audio_sample_written(tmp_path, tiny_corpus):
    import soundfile as sf

    cfg = tiny_config(tiny_corpus, steps=2, sample_every=2, checkpoint_every=0, val_every=0)
    Trainer(cfg, tmp_path, progress=False).fit()
    wav = tmp_path / "samples" / "step_00000002.wav"
    info = sf.info(str(wav))
    assert info.samplerate == 24000 and info.frames > 0


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["cfm", "edm", "meanflow"])
def test_overfitting_one_utterance_drives_loss_down(tmp_path, objective):
    from conftest import make_corpus

    manifest = make_corpus(tmp_path / "one", n=1)
    cfg = merge(tiny_config(manifest, steps=60, val_fraction=0.0, val_every=0, checkpoint_every=0, log_every=10,
                            lr=3e-3, warmup_steps=5, decay="constant", ema_decay=0.0),
                {"objective": {"name": objective}, "model": {"cond_drop_prob": 0.0}})
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    trainer.fit()
    # "mse": the unweighted error (MeanFlow's adaptive loss stays near 1 by design)
    flow = [r["mse"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "mse" in r]
    # first logged window (steps 1-10) vs last (steps 51-60).  Seen on this machine:
    # cfm 1.75 -> 1.06; a model that learns nothing stays at its first value.
    assert flow[-1] < 0.75 * flow[0], flow


def test_resume_refuses_a_changed_config_except_the_step_count(tmp_path, tiny_cfg):
    from core.config import ConfigError

    Trainer(tiny_cfg, tmp_path / "run", progress=False).fit()
    for change, key in (({"training": {"lr": 5e-4}}, "training.lr"), ({"objective": {"name": "edm"}}, "objective.name"),
                        ({"training": {"data": str(tmp_path)}}, "training.data")):
        with pytest.raises(ConfigError, match=rf"--resume: .* was trained with {key}=.* but the config given says"):
            Trainer(merge(tiny_cfg, change), tmp_path / "run", progress=False, resume=True)
    more = Trainer(merge(tiny_cfg, {"training": {"steps": 9}}), tmp_path / "run", progress=False, resume=True)
    assert more.config.training.steps == 9 and more.step == 6


def test_resume_with_a_changed_option_exits_2_with_one_line(tmp_path, tiny_cfg):
    cfg_path = tmp_path / "cfg.json"
    tiny_cfg.save(cfg_path)
    run = tmp_path / "run"
    Trainer(tiny_cfg, run, progress=False).fit()
    proc = subprocess.run([sys.executable, "-m", "core", "train", "--config", str(cfg_path), "--out", str(run),
                           "--resume", "--objective", "meanflow", "--no-progress"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "objective.name='cfm'" in lines[0], proc.stderr


def test_the_removed_num_workers_key_loads_at_zero_and_is_refused_otherwise(tiny_cfg):
    from core.config import Config, ConfigError

    data = tiny_cfg.to_dict()
    data["training"]["num_workers"] = 0  # as every checkpoint written before its removal holds it
    assert Config.from_dict(data).training.lr == tiny_cfg.training.lr
    data["training"]["num_workers"] = 4
    with pytest.raises(ConfigError, match="training.num_workers was removed"):
        Config.from_dict(data)


@pytest.mark.parametrize("objective, calls", [("meanflow", [(0.0, 1.0)]), ("cfm", [(None, None)] * 10)])
def test_training_samples_use_the_objectives_own_sampler(tmp_path, tiny_corpus, objective, calls):
    from core.train.samples import write_sample

    trainer = Trainer(merge(tiny_config(tiny_corpus, steps=1), {"objective": {"name": objective}}), tmp_path,
                      progress=False)
    seen, real = [], trainer.ema.model.predict

    def spy(x, t, cond, r=None, **kw):
        seen.append((None, None) if r is None else (float(r.flatten()[0]), float(t.flatten()[0])))
        return real(x, t, cond, r=r, **kw)

    trainer.ema.model.predict = spy
    assert write_sample(trainer).is_file()
    # MeanFlow: one jump u(x0, r=0, t=1); flow matching: 10 Euler evaluations of v(x, t)
    assert seen == calls


def test_edm_sigma_data_defaults_to_the_std_of_the_normalised_mels_and_is_checked(tmp_path, tiny_corpus):
    from core.config import ConfigError

    cfg = merge(tiny_config(tiny_corpus, steps=1), {"objective": {"name": "edm"}})
    trainer = Trainer(cfg, tmp_path / "auto", progress=False)
    assert trainer.objective.sigma_data == 1.0  # unset: what normalize_mel feeds (unit std)
    with pytest.raises(ConfigError, match=r"objective.sigma_data is 0.5 but the mels this run feeds the objective "
                                          r"have std 1.0"):
        Trainer(merge(cfg, {"objective": {"sigma_data": 0.5}}), tmp_path / "old", progress=False)


def test_resume_ignores_settings_the_runs_objective_never_reads(tmp_path, tiny_cfg):
    # a run written when EDM's sigma_data defaulted to 0.5 (a cfm run never reads it) resumes
    from dataclasses import replace

    Trainer(tiny_cfg, tmp_path, progress=False).fit()
    newest = sorted((tmp_path / "checkpoints").glob("step_*.pt"))[-1]
    ck = torch.load(newest, weights_only=True)
    ck["config"]["objective"]["sigma_data"] = 0.5
    torch.save(ck, newest)
    resumed = Trainer(merge(tiny_cfg, {"training": {"steps": 8}}), tmp_path, progress=False, resume=True)
    assert resumed.step == 6 and replace(resumed.config.objective, sigma_data=None) == tiny_cfg.objective
