"""Time grids: endpoints, monotonicity, closed forms, F5-TTS's tables and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from core.config import ConfigError
from core.sampling import EPSS_STEPS, SCHEDULES, time_grid

# (schedule, coef) pairs covering each schedule's valid range (None = the default).
CASES = ([("linear", None), ("power", None), ("sway", None)]
         + [("power", c) for c in (0.25, 0.5, 1.0, 1.5, 2.0, 3.0)]
         + [("sway", c) for c in (-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0)])


def test_public_names():
    assert SCHEDULES == ("linear", "power", "sway", "epss")
    assert EPSS_STEPS == (5, 6, 7, 10, 12, 16)


@pytest.mark.parametrize("schedule,coef", CASES)
def test_endpoints_length_and_strictly_increasing(schedule, coef):
    for steps in range(1, 65):
        for dtype in (torch.float32, torch.float64):
            t = time_grid(steps, schedule, coef, dtype=dtype)
            assert t.dtype == dtype and t.shape == (steps + 1,)
            assert t[0].item() == 0.0 and t[-1].item() == 1.0  # exactly, not approximately
            assert bool((t[1:] > t[:-1]).all()), (schedule, coef, steps, dtype)


@pytest.mark.parametrize("steps", EPSS_STEPS)
def test_epss_endpoints_and_monotone(steps):
    t = time_grid(steps, "epss")
    assert t.shape == (steps + 1,) and t[0].item() == 0.0 and t[-1].item() == 1.0
    assert bool((t[1:] > t[:-1]).all())


def test_epss_matches_f5_tts_tables():
    # Pinned from F5-TTS, SWivid/F5-TTS src/f5_tts/model/utils.py, get_epss_timesteps
    # (integers on a 1/32 lattice).
    f5 = {
        5: [0, 2, 4, 8, 16, 32],
        6: [0, 2, 4, 6, 8, 16, 32],
        7: [0, 2, 4, 6, 8, 16, 24, 32],
        10: [0, 2, 4, 6, 8, 12, 16, 20, 24, 28, 32],
        12: [0, 2, 4, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32],
        16: [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32],
    }
    for steps, ticks in f5.items():
        t = time_grid(steps, "epss", dtype=torch.float64)
        assert t.tolist() == [k / 32 for k in ticks]  # k/32 is exact in binary


def test_linear_is_uniform():
    assert time_grid(4).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert time_grid(1, "linear").tolist() == [0.0, 1.0]


def test_power_closed_form():
    # u = 0, 1/4, 1/2, 3/4, 1; u**2 and u**0.5 by hand.
    t2 = time_grid(4, "power", 2.0, dtype=torch.float64)
    assert t2.tolist() == [0.0, 1 / 16, 1 / 4, 9 / 16, 1.0]
    assert torch.equal(time_grid(4, "power", dtype=torch.float64), t2)  # default coef is 2
    t_half = time_grid(4, "power", 0.5, dtype=torch.float64)
    expected = [0.0, 0.5, 0.7071067811865476, 0.8660254037844386, 1.0]  # sqrt(1/2), sqrt(3)/2
    torch.testing.assert_close(t_half, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-15)
    assert torch.equal(time_grid(7, "power", 1.0), time_grid(7, "linear"))


def test_sway_closed_form():
    # coef = -1: t = 1 - cos(pi/2 u) at u = 1/4, 1/2, 3/4; the cosines from Python's math.cos:
    # cos(pi/8) = 0.9238795325112867, cos(pi/4) = 0.7071067811865476, cos(3 pi/8) = 0.3826834323650898.
    t = time_grid(4, "sway", -1.0, dtype=torch.float64)
    expected = [0.0, 0.07612046748871326, 0.2928932188134524, 0.6173165676349102, 1.0]
    torch.testing.assert_close(t, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-15)
    assert torch.equal(time_grid(4, "sway", dtype=torch.float64), t)  # default coef is -1
    # coef = 0.5, u = 1/4: 0.25 + 0.5 * (cos(pi/8) - 1 + 0.25) = 0.33693976625564337
    assert time_grid(4, "sway", 0.5, dtype=torch.float64)[1].item() == pytest.approx(0.33693976625564337, abs=1e-15)
    assert torch.equal(time_grid(9, "sway", 0.0), time_grid(9, "linear"))


@pytest.mark.parametrize("coef", [-1.0, -0.3, 0.4, 1.0])
def test_sway_matches_f5_tts_formula(coef):
    # F5-TTS (cfm.py, sample): t = t + coef * (cos(pi / 2 * t) - 1 + t) on linspace(0, 1, steps + 1).
    u = torch.linspace(0, 1, 33, dtype=torch.float64)
    reference = u + coef * (torch.cos(math.pi / 2 * u) - 1 + u)
    torch.testing.assert_close(time_grid(32, "sway", coef, dtype=torch.float64), reference, rtol=0, atol=1e-15)


def test_negative_sway_and_large_power_crowd_the_noise_end():
    for steps in (4, 10, 32):
        first_linear = 1 / steps
        assert time_grid(steps, "sway", -1.0)[1] < first_linear < time_grid(steps, "sway", 1.0)[1]
        assert time_grid(steps, "power", 2.0)[1] < first_linear < time_grid(steps, "power", 0.5)[1]


def test_sway_minus_one_stays_strictly_increasing_at_many_steps():
    # Its derivative vanishes at u = 0, so the first gap is ~ pi^2 / (8 steps^2); still > 0.
    t = time_grid(2000, "sway", -1.0)
    assert bool((t[1:] > t[:-1]).all())
    assert t[1].item() == pytest.approx(math.pi ** 2 / (8 * 2000 ** 2), rel=1e-5)


def test_device_and_dtype_arguments():
    t = time_grid(5, "epss", dtype=torch.float64, device="cpu")
    assert t.dtype == torch.float64 and t.device.type == "cpu"
    assert time_grid(8, "sway", dtype=torch.bfloat16).dtype == torch.bfloat16


def test_unknown_schedule_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown time schedule 'cosine'; valid: linear, power, sway, epss"):
        time_grid(10, "cosine")


@pytest.mark.parametrize("steps", [0, -3])
def test_steps_below_one(steps):
    with pytest.raises(ConfigError, match=r"steps must be >= 1"):
        time_grid(steps)


@pytest.mark.parametrize("steps", [2.5, "10", True, None])
def test_steps_not_an_integer(steps):
    with pytest.raises(ConfigError, match=r"steps must be an integer"):
        time_grid(steps)


def test_epss_unsupported_step_count_lists_supported():
    with pytest.raises(ConfigError, match=r"defined for steps 5, 6, 7, 10, 12, 16 only, got steps=8"):
        time_grid(8, "epss")


@pytest.mark.parametrize("coef", [-1.01, 1.5, -2.0])
def test_sway_coef_out_of_range(coef):
    with pytest.raises(ConfigError, match=r"sway coef must be in \[-1.0, 1.0\]"):
        time_grid(10, "sway", coef)


@pytest.mark.parametrize("coef", [0.0, -1.0])
def test_power_coef_not_positive(coef):
    with pytest.raises(ConfigError, match=r"power coef must be > 0"):
        time_grid(10, "power", coef)


@pytest.mark.parametrize("schedule", ["sway", "power"])
@pytest.mark.parametrize("coef", [float("nan"), float("inf"), "0.5"])
def test_coef_not_a_finite_number(schedule, coef):
    with pytest.raises(ConfigError, match=r"coef must be a finite number"):
        time_grid(10, schedule, coef)


@pytest.mark.parametrize("schedule,steps", [("linear", 10), ("epss", 10)])
def test_coef_given_to_a_schedule_without_one(schedule, steps):
    with pytest.raises(ConfigError, match=rf"the {schedule} schedule takes no coef"):
        time_grid(steps, schedule, 0.5)


def test_grid_that_collapses_in_its_dtype_is_an_error():
    # (1/64) ** 60 underflows float32 to 0, so t[1] == t[0].
    with pytest.raises(ConfigError, match=r"not strictly increasing in torch.float32"):
        time_grid(64, "power", 60.0)
    # bf16 resolves ~2**-8 near 1, coarser than 1/1000 steps.
    with pytest.raises(ConfigError, match=r"not strictly increasing in torch.bfloat16"):
        time_grid(1000, "linear", dtype=torch.bfloat16)


def test_integer_dtype_refused():
    with pytest.raises(ConfigError, match=r"floating point"):
        time_grid(4, dtype=torch.int64)
