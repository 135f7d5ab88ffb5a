"""core.train.resume: the train state record, the folder helpers and the config check.
The bit-identical resume itself is tested end to end in tests/test_train.py."""

import random

import pytest
import torch

from core.checkpoint import CheckpointError
from core.config import Config, ConfigError, merge
from core.train.records import LOGGED_TERMS, LossTerms, StepResult
from core.train.resume import TrainState, newest_readable, prune, resumed_config


def _state() -> TrainState:
    return TrainState(optimizer={"state": {}, "param_groups": []}, scheduler={"last_epoch": 3}, scaler={},
                      ema_updates=7, torch_rng=torch.get_rng_state(), generator_rng=torch.Generator().get_state(),
                      python_rng=random.getstate(), cuda_rng=[], epoch=2, position=5, loss_avg=0.25, bad_total=1)


def test_train_state_round_trips_through_a_checkpoint_file(tmp_path):
    s = _state()
    torch.save({"train_state": s.to_dict()}, tmp_path / "s.pt")
    back = TrainState.from_dict(torch.load(tmp_path / "s.pt", weights_only=True)["train_state"])
    assert (back.ema_updates, back.epoch, back.position, back.loss_avg, back.bad_total) == (7, 2, 5, 0.25, 1)
    assert torch.equal(back.torch_rng, s.torch_rng) and torch.equal(back.generator_rng, s.generator_rng)
    random.setstate(back.python_rng)          # a usable Python RNG state (tuples, not lists)
    assert back.python_rng == s.python_rng
    # the layout is the one checkpoints have had since format 1 (old runs still resume)
    assert set(s.to_dict()) == {"optimizer", "scheduler", "scaler", "ema", "rng", "data", "guard"}


@pytest.mark.parametrize("path, value, message", [
    (("data",), None, "no 'data.epoch'"),
    (("guard", "bad_total"), "x", "guard.bad_total has the wrong type"),
    (("rng", "torch"), [1, 2], "rng.torch has the wrong type"),
])
def test_a_damaged_train_state_is_a_checkpoint_error_naming_the_entry(path, value, message):
    d = _state().to_dict()
    target = d
    for k in path[:-1]:
        target = target[k]
    if value is None:
        target.pop(path[-1])
    else:
        target[path[-1]] = value
    with pytest.raises(CheckpointError, match=message.replace(".", r"\.")):
        TrainState.from_dict(d, "run/step_1.pt")


def test_newest_readable_skips_files_that_fail_and_prune_keeps_the_newest(tmp_path):
    for step in (1, 2, 3):
        (tmp_path / f"step_{step:08d}.pt").write_text(str(step))

    def load(path):
        if path.name.endswith("3.pt"):
            raise CheckpointError("torn")
        return int(path.read_text())

    assert newest_readable(tmp_path, "step_*.pt", load, (CheckpointError,)) == 2
    assert newest_readable(tmp_path, "none_*.pt", load, (CheckpointError,)) is None
    prune(tmp_path, "step_*.pt", 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000002.pt", "step_00000003.pt"]
    prune(tmp_path, "step_*.pt", 0)  # 0 keeps all
    assert len(list(tmp_path.iterdir())) == 2


def test_resumed_config_takes_the_runs_own_config_and_only_a_new_step_count(tmp_path):
    saved = Config()
    out = resumed_config(Config.from_dict(saved.to_dict()), merge(saved, {"training": {"steps": 99}}), tmp_path, 10)
    assert out.training.steps == 99 and out.to_dict() == merge(saved, {"training": {"steps": 99}}).to_dict()
    # never below the step already reached
    assert resumed_config(Config.from_dict(saved.to_dict()), merge(saved, {"training": {"steps": 5}}),
                          tmp_path, 10).training.steps == 10
    with pytest.raises(ConfigError, match=r"training\.lr=.* only training\.steps may change"):
        resumed_config(saved, merge(saved, {"training": {"lr": 1.0}}), tmp_path, 10)


def test_step_result_and_loss_terms_records():
    r = StepResult(skipped=False, loss=1.0, grad_norm=2.0, batch_size=4,
                   terms={"flow": 0.5, "mse": 0.5, "duration": 0.1, "prior": 0.0})
    assert list(r.logged()) == list(LOGGED_TERMS) and r.logged()["grad_norm"] == 2.0 and r.flow == 0.5
    skipped = StepResult(skipped=True, reason="loss is nan")
    assert skipped.reason and all(v != v for v in skipped.logged().values())   # NaN, never a stale number
    out = {k: torch.tensor(float(i)) for i, k in enumerate(["loss", "flow", "mse", "duration", "prior",
                                                            "per_example", "t", "unused"])}
    terms = LossTerms.from_module_output(out)
    assert float(terms.t) == 6.0 and float(terms.loss) == 0.0
    with pytest.raises(KeyError):
        LossTerms.from_module_output({"loss": torch.tensor(0.0)})
