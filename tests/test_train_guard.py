"""The spike rule of the bad-step guard (core.train.guard): closed forms, a loss that
goes negative (LeWM's Gaussian NLL) and the guard state across a resume."""

from __future__ import annotations

import random

import pytest
import torch

from core.train.guard import DECAY, WEIGHT, is_spike, running_mean
from core.train.resume import TrainState


@pytest.mark.parametrize("loss, mean, spike", [(10.01, 1.0, True), (9.99, 1.0, False), (0.5, 1.0, False)])
def test_a_positive_loss_is_a_spike_above_factor_times_its_mean(loss, mean, spike):
    assert is_spike(loss, mean, mean, 10.0) is spike
    assert is_spike(loss, mean, None, 10.0) is spike            # |mean| stands in for the magnitude


def test_a_lower_negative_loss_is_not_a_spike():
    # the case that stopped a Gaussian-head run: -0.2395 against a running mean of -0.02402
    assert not is_spike(-0.2395, -0.02402, 0.05, 10.0)
    assert not is_spike(-0.2395, -0.02402, None, 10.0)
    # above the mean by more than 9 x the typical size 0.05 (0.45): a spike
    assert is_spike(-0.02402 + 0.46, -0.02402, 0.05, 10.0)
    assert not is_spike(-0.02402 + 0.44, -0.02402, 0.05, 10.0)


def test_no_mean_no_spike_and_the_running_mean():
    assert not is_spike(1e9, None, None, 10.0)
    assert running_mean(None, 3.0) == 3.0
    assert running_mean(2.0, 3.0) == DECAY * 2.0 + WEIGHT * 3.0 == pytest.approx(2.02)


def _state(**guard) -> TrainState:
    return TrainState(optimizer={"state": {}, "param_groups": []}, scheduler={"last_epoch": 3}, scaler={},
                      ema_updates=7, torch_rng=torch.get_rng_state(), generator_rng=torch.Generator().get_state(),
                      python_rng=random.getstate(), cuda_rng=[], epoch=2, position=5, bad_total=1, **guard)


def test_the_magnitude_mean_survives_a_resume_and_old_states_read_as_abs_mean():
    s = _state(loss_avg=-0.02, loss_abs_avg=0.05)
    assert TrainState.from_dict(s.to_dict()).loss_abs_avg == 0.05
    old = _state(loss_avg=-0.02).to_dict()
    del old["guard"]["loss_abs_avg"]                              # a checkpoint from before it was kept
    assert TrainState.from_dict(old).loss_abs_avg == 0.02
    assert TrainState.from_dict(_state(loss_avg=None).to_dict()).loss_abs_avg is None


def test_trainer_does_not_skip_a_step_whose_loss_is_far_below_a_negative_mean(tmp_path, tiny_cfg):
    from core.train import Trainer

    trainer = Trainer(tiny_cfg, tmp_path, progress=False)
    trainer.step, trainer.loss_avg, trainer.loss_abs_avg = 50, -1e-3, 1e-3
    real = trainer.loss_module.forward

    def lower(*a, **k):   # the real loss minus 100: far below the running mean, never a spike
        out = real(*a, **k)
        return {**out, "loss": out["loss"] - 100.0} if isinstance(out, dict) else out._replace(loss=out.loss - 100.0)

    trainer.loss_module.forward = lower
    out = trainer.train_step(next(trainer.batches()))
    assert out.loss < -90.0 and not out.skipped and trainer.step == 51   # the patched loss was used
    assert trainer.loss_abs_avg == pytest.approx(DECAY * 1e-3 + WEIGHT * abs(out.loss))
