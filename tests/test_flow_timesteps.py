"""Time samplers (moments against closed forms / quadrature) and loss weightings."""

import math

import numpy as np
import pytest
import torch

from core.config import ConfigError, ObjectiveConfig
from core.flow import TimeSampling, loss_weight, sample_time

N = 200_000  # sample size: standard error of a mean of a [0, 1] variable <= 0.5 / sqrt(N) ~ 1e-3


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_uniform_moments():
    t = sample_time(N, "uniform", generator=_gen(), dtype=torch.float64)
    assert t.shape == (N,) and t.dtype == torch.float64
    assert t.min() >= 0 and t.max() < 1
    # U[0, 1]: mean 1/2, variance 1/12
    assert t.mean().item() == pytest.approx(0.5, abs=4e-3)
    assert t.var().item() == pytest.approx(1 / 12, abs=2e-3)


def _logit_normal_moments(m, s):
    """Mean and variance of sigmoid(m + s n), n ~ N(0, 1), by Gauss-Hermite quadrature
    of the density (probabilists' weights, 80 nodes)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / math.sqrt(2 * math.pi)
    vals = 1 / (1 + np.exp(-(m + s * nodes)))
    mean = float(np.sum(weights * vals))
    var = float(np.sum(weights * vals ** 2)) - mean ** 2
    return mean, var


def test_logit_normal_quadrature_matches_trapezoid_of_density():
    # cross-check of the reference itself: integrate t p(t) over (0, 1) with
    # p(t) = N(logit t; m, s^2) / (t (1 - t)).
    m, s = -0.5, 0.8
    t = np.linspace(1e-9, 1 - 1e-9, 400_001)
    logit = np.log(t / (1 - t))
    dens = np.exp(-0.5 * ((logit - m) / s) ** 2) / (s * math.sqrt(2 * math.pi) * t * (1 - t))
    mean = np.trapezoid(t * dens, t)
    assert np.trapezoid(dens, t) == pytest.approx(1.0, abs=1e-6)
    assert mean == pytest.approx(_logit_normal_moments(m, s)[0], abs=1e-6)


@pytest.mark.parametrize("m,s", [(0.0, 1.0), (-0.5, 0.8), (1.0, 1.5)])
def test_logit_normal_moments(m, s):
    spec = TimeSampling(kind="logit_normal", logit_mean=m, logit_std=s)
    t = sample_time(N, spec, generator=_gen(1), dtype=torch.float64)
    mean, var = _logit_normal_moments(m, s)
    assert t.min() > 0 and t.max() < 1
    assert t.mean().item() == pytest.approx(mean, abs=4e-3)
    assert t.var().item() == pytest.approx(var, abs=2e-3)


def test_range_moments_and_bounds():
    lo, hi = 0.2, 0.7
    t = sample_time(N, TimeSampling(kind="range", t_lo=lo, t_hi=hi), generator=_gen(2), dtype=torch.float64)
    assert t.min() >= lo and t.max() < hi
    assert t.mean().item() == pytest.approx((lo + hi) / 2, abs=3e-3)
    assert t.var().item() == pytest.approx((hi - lo) ** 2 / 12, abs=1e-3)


def test_sample_time_from_objective_config():
    cfg = ObjectiveConfig(time_sampling="range", t_lo=0.4, t_hi=0.5)
    t = sample_time(1000, cfg, generator=_gen())
    assert t.min() >= 0.4 and t.max() < 0.5
    assert t.dtype == torch.float32


def test_generator_makes_samples_reproducible():
    for kind in ("uniform", "logit_normal", "range"):
        a = sample_time(16, kind, generator=_gen(5))
        b = sample_time(16, kind, generator=_gen(5))
        c = sample_time(16, kind, generator=_gen(6))
        assert torch.equal(a, b)
        assert not torch.equal(a, c)


def test_unknown_sampler_lists_valid_names():
    with pytest.raises(ConfigError, match="uniform, logit_normal, range"):
        sample_time(4, "cosine")


@pytest.mark.parametrize("kwargs", [dict(logit_std=0.0), dict(t_lo=0.6, t_hi=0.5), dict(t_hi=1.5)])
def test_bad_sampler_parameters_raise(kwargs):
    with pytest.raises(ConfigError):
        TimeSampling(kind="range", **kwargs)


def test_loss_weights_at_pinned_points():
    t = torch.tensor([0.0, 0.25, 0.5, 1.0])
    assert torch.equal(loss_weight(t, "none"), torch.ones(4))
    assert torch.equal(loss_weight(t, "linear"), t)
    assert torch.equal(loss_weight(t, "quadratic"), torch.tensor([0.0, 0.0625, 0.25, 1.0]))


def test_unknown_weighting_lists_valid_names():
    with pytest.raises(ConfigError, match="none, linear, quadratic"):
        loss_weight(torch.zeros(2), "cubic")
