"""``core train --init``: a new run from another checkpoint's weights (core.train.init_from)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from core import load_checkpoint
from core.config import ConfigError, merge, preset
from core.families import build_model
from core.train import Trainer
from core.train.init_from import plan_init, zero_when_new
from core.train.metrics import read_metrics

from conftest import make_corpus, tiny_config

INTERVAL = "velocity_net.interval_embed.mlp"


@pytest.fixture(scope="module")
def cfm_checkpoint(tiny_corpus, tmp_path_factory) -> Path:
    """A tiny flow-matching run trained 3 steps (its output layer has left zero)."""
    cfg = tiny_config(tiny_corpus, steps=3, checkpoint_every=3, val_every=0)
    return Trainer(cfg, tmp_path_factory.mktemp("cfm"), progress=False).fit()


def _init_config(corpus, source, objective="cfm", **training):
    t = {"steps": 2, "checkpoint_every": 2, "val_every": 0, "init": str(source), **training}
    return merge(tiny_config(corpus), {"objective": {"name": objective}, "training": t})


def test_plan_sorts_entries_and_refuses_a_shape_conflict():
    target = {"a.weight": torch.zeros(2, 3), "br.out.weight": torch.zeros(3), "br.out.bias": torch.zeros(3),
              "br.outer.weight": torch.zeros(3), "br.inp.weight": torch.zeros(3)}
    source = {"a.weight": torch.ones(2, 3), "old.weight": torch.ones(1)}
    plan = plan_init(target, source, zero=("br.out",))
    assert plan.loaded == ("a.weight",) and plan.unused == ("old.weight",)
    assert plan.zeroed == ("br.out.bias", "br.out.weight")  # "br.outer" is another module: not zeroed
    assert plan.fresh == ("br.inp.weight", "br.outer.weight")
    assert plan.counts() == {"loaded": 1, "zeroed": 2, "fresh": 2, "unused": 1}
    with pytest.raises(ConfigError, match=r"'a.weight' has shape \(3, 2\) in the checkpoint but \(2, 3\) in the new"):
        plan_init(target, {"a.weight": torch.ones(3, 2)}, where="x.pt")
    with pytest.raises(ConfigError, match="shares no weights"):
        plan_init(target, {"other": torch.ones(1)})


def test_meanflow_from_cfm_loads_every_weight_zeroes_the_interval_output_and_keeps_the_function(
        tmp_path, tiny_corpus, cfm_checkpoint):
    ck = load_checkpoint(cfm_checkpoint)
    cfg = _init_config(tiny_corpus, cfm_checkpoint, objective="meanflow")
    trainer = Trainer(cfg, tmp_path, progress=False)
    assert trainer.step == 0 and trainer.optimizer.state_dict()["state"] == {}  # a new run
    state = trainer.model.state_dict()
    for name, tensor in ck.weights.items():  # the EMA (sampling) weights, mel statistics too
        assert torch.equal(state[name], tensor), name
    assert not torch.equal(ck.weights["velocity_net.out_proj.weight"], ck.model_weights["velocity_net.out_proj.weight"])
    assert set(state) - set(ck.weights) == {f"{INTERVAL}.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")}
    assert zero_when_new(trainer.model) == ("velocity_net.interval_embed.mlp.2",)
    assert not state[f"{INTERVAL}.2.weight"].any() and not state[f"{INTERVAL}.2.bias"].any()
    assert state[f"{INTERVAL}.0.weight"].any()  # the inner layer keeps its random initialisation
    ema = trainer.ema.model.state_dict()
    assert all(torch.equal(ema[k], v) for k, v in state.items())  # the EMA starts from the loaded weights

    # zero-init keeps the function: the conditioning no longer sees t - r, so u(z, r, t) = v(z, r)
    source = build_model(ck.config)
    source.load_state_dict(ck.weights)
    source.eval()
    new = trainer.model.eval()
    g = torch.Generator().manual_seed(0)
    b, n = 2, 17
    x = torch.randn(b, ck.config.audio.n_mels, n, generator=g)
    cond = torch.randn(b, n, ck.config.model.text_dim, generator=g)
    mask = torch.ones(b, n, dtype=torch.bool)
    mask[1, 12:] = False
    spk = torch.randn(b, ck.config.model.speaker_dim, generator=g)
    t, r = torch.tensor([0.3, 0.8]), torch.tensor([0.1, 0.5])
    with torch.no_grad():
        v_t = source.velocity_net(x, t, cond, mask, spk)
        v_r = source.velocity_net(x, r, cond, mask, spk)
        u_tt = new.velocity_net(x, t, cond, mask, spk, r=t)
        u_rt = new.velocity_net(x, t, cond, mask, spk, r=r)
    assert v_t.abs().max() > 1e-3  # trained: not the all-zero output of a fresh network
    torch.testing.assert_close(u_tt, v_t, rtol=0, atol=1e-6)
    torch.testing.assert_close(u_rt, v_r, rtol=0, atol=1e-6)

    # the record: metrics row at step 0, config.json, every checkpoint
    init_row = read_metrics(tmp_path / "metrics.jsonl")[0]
    assert init_row["step"] == 0 and init_row["event"] == "init"
    record = init_row["init"]
    assert (record["path"], record["sha256"], record["step"]) == (str(cfm_checkpoint), ck.sha256, 3)
    assert record["zeroed"] == 2 and record["fresh"] == 2 and record["unused"] == 0
    assert record["loaded"] == len(ck.weights)
    assert json.loads((tmp_path / "config.json").read_text())["training"]["init"] == str(cfm_checkpoint)
    last = trainer.fit()
    assert load_checkpoint(last).extra["initialized_from"] == record

    # resuming takes the run's own checkpoint; training.init is neither re-applied nor compared
    more = Trainer(merge(cfg, {"training": {"steps": 3, "init": ""}}), tmp_path, progress=False, resume=True)
    assert more.step == 2 and more.initialized_from == record
    assert torch.equal(more.model.state_dict()["velocity_net.out_proj.weight"],
                       load_checkpoint(last).model_weights["velocity_net.out_proj.weight"])


def test_an_fp16_export_is_a_source_upcast_exactly(tmp_path, tiny_corpus, cfm_checkpoint):
    from core.export import export_checkpoint

    export = export_checkpoint(cfm_checkpoint, tmp_path / "voice.pt", "fp16")
    ck = load_checkpoint(export)
    assert ck.model_weights is None and ck.weights["velocity_net.out_proj.weight"].dtype == torch.float16
    trainer = Trainer(_init_config(tiny_corpus, export), tmp_path / "run", progress=False)
    state = trainer.model.state_dict()
    assert set(state) == set(ck.weights)  # same objective: nothing new, nothing unused
    for name, tensor in ck.weights.items():
        assert state[name].dtype == torch.float32 and torch.equal(state[name], tensor.float()), name
    assert trainer.initialized_from["sha256"] == ck.sha256 and trainer.initialized_from["step"] == 3


def test_mismatches_are_errors_naming_the_setting(tmp_path, tiny_corpus, cfm_checkpoint):
    cases = [
        ({"audio": {"n_mels": 80}}, r"mel settings differ: the checkpoint has audio.n_mels=100, the config 80"),
        ({"text": {"tokenizer": "chars"}}, r"text front ends differ: the checkpoint has text.tokenizer='bytes'"),
        ({"model": {"dim": 32}}, r"'velocity_net\.[\w.]+' has shape \(64(, \d+)?\) in the checkpoint but \(32"),
    ]
    for change, message in cases:
        with pytest.raises(ConfigError, match=message):
            Trainer(merge(_init_config(tiny_corpus, cfm_checkpoint), change), tmp_path / "x", progress=False)
    lewm = merge(preset("lewm_tiny"), {"training": {"data": str(tiny_corpus), "init": str(cfm_checkpoint)}})
    with pytest.raises(ConfigError, match="the checkpoint is a 'flow' model but the config's model.family is 'lewm'"):
        Trainer(lewm, tmp_path / "y", progress=False)
    other = make_corpus(tmp_path / "carol", n=4)
    rows = other.read_text().replace(",bob", ",carol")
    other.write_text(rows)
    with pytest.raises(ConfigError, match=r"speakers differ: the checkpoint has \['alice', 'bob'\], the data "
                                          r"\['alice', 'carol'\]"):
        Trainer(_init_config(other, cfm_checkpoint), tmp_path / "z", progress=False)
    from core.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        Trainer(_init_config(tiny_corpus, tmp_path / "missing.pt"), tmp_path / "w", progress=False)


def test_cli_init_starts_a_run_and_refuses_init_with_resume(tmp_path, tiny_corpus, cfm_checkpoint, capsys):
    from core.cli import main

    cfg_path = tmp_path / "cfg.json"
    tiny_config(tiny_corpus, val_every=0).save(cfg_path)
    base = ["train", "--config", str(cfg_path), "--out", str(tmp_path / "run"), "--no-progress"]
    assert main(base + ["--init", str(cfm_checkpoint), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--init starts a new run" in err[0] and "give one of them" in err[0]
    assert not (tmp_path / "run").exists()
    assert main(base + ["--init", str(cfm_checkpoint), "--objective", "meanflow", "--steps", "1"]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["training"]["init"] == str(cfm_checkpoint)
    assert read_metrics(tmp_path / "run" / "metrics.jsonl")[0]["init"]["step"] == 3


def test_init_step_counts_on_and_the_schedule_continues(tmp_path, tiny_corpus, cfm_checkpoint):
    """A run continued from an export (``training.init_step``): it starts at that step and its
    learning rate follows the same curve as a run from step 0 (closed form: warm-up 2 steps,
    then cosine to 0 at step 6: lr_k = lr * (1 + cos(pi (k - 2) / 4)) / 2)."""
    import math

    lr = 1e-3
    cfg = _init_config(tiny_corpus, cfm_checkpoint, steps=6, init_step=4, lr=lr, warmup_steps=2,
                       decay="cosine", log_every=1, checkpoint_every=100)
    trainer = Trainer(cfg, tmp_path, progress=False)
    assert trainer.step == 4 and trainer.optimizer.state_dict()["state"] == {}
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(lr * (1 + math.cos(math.pi * 2 / 4)) / 2)
    last = trainer.fit()
    assert last.name == "step_00000006.pt"
    # resumed with a longer schedule: the stored step and scheduler go on, to step 7
    resumed = Trainer(merge(cfg, {"training": {"steps": 7}}), tmp_path, progress=False, resume=True)
    assert resumed.step == 6
    assert resumed.fit().name == "step_00000007.pt"
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert rows[0]["event"] == "init" and rows[0]["step"] == 4
    logged = {r["step"]: r["lr"] for r in rows if "lr" in r}
    assert sorted(logged) == [5, 6, 7]
    # step 5 and 6 ran under total 6, step 7 under total 7 (the resumed schedule)
    assert logged[5] == pytest.approx(lr * (1 + math.cos(math.pi * 3 / 4)) / 2)
    assert logged[6] == pytest.approx(0.0, abs=1e-12)
    assert logged[7] == pytest.approx(0.0, abs=1e-12)
    # a plain run from step 0 logs the same rates at the same steps
    plain = Trainer(merge(tiny_config(tiny_corpus), {"training": {
        "steps": 6, "lr": lr, "warmup_steps": 2, "decay": "cosine", "log_every": 1, "checkpoint_every": 100,
        "val_every": 0}}), tmp_path / "plain", progress=False)
    plain.fit()
    plain_lr = {r["step"]: r["lr"] for r in read_metrics(tmp_path / "plain" / "metrics.jsonl") if "lr" in r}
    assert plain_lr[5] == pytest.approx(logged[5]) and plain_lr[6] == pytest.approx(logged[6])


def test_init_step_rules(tmp_path, tiny_corpus, cfm_checkpoint, capsys):
    from core.cli import main

    with pytest.raises(ConfigError, match="training.init_step needs training.init"):
        merge(tiny_config(tiny_corpus), {"training": {"init_step": 3}}).validate()
    with pytest.raises(ConfigError, match=r"training.init_step \(5\) must be below training.steps \(5\)"):
        _init_config(tiny_corpus, cfm_checkpoint, steps=5, init_step=5).validate()
    with pytest.raises(ConfigError, match="training.init_step must be >= 0"):
        _init_config(tiny_corpus, cfm_checkpoint, init_step=-1).validate()
    cfg_path = tmp_path / "cfg.json"
    tiny_config(tiny_corpus, val_every=0).save(cfg_path)
    assert main(["train", "--config", str(cfg_path), "--out", str(tmp_path / "run"), "--init-step", "2"]) == 2
    assert "--init-step continues a run from the checkpoint that --init names" in capsys.readouterr().err
    assert main(["train", "--config", str(cfg_path), "--out", str(tmp_path / "run"), "--no-progress",
                 "--init", str(cfm_checkpoint), "--init-step", "2", "--steps", "3"]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["training"]["init_step"] == 2
    assert (tmp_path / "run" / "checkpoints" / "step_00000003.pt").is_file()
    assert not (tmp_path / "run" / "checkpoints" / "step_00000001.pt").exists()
