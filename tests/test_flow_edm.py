"""EDM: preconditioning identities, weightings, sigma sampling, the loss formula, and
the probability-flow conversion against the closed-form Gaussian flow velocity."""

import math

import pytest
import torch

from core.config import ConfigError, ObjectiveConfig
from core.flow import (EDMObjective, build_objective, edm_loss_weight, edm_preconditioning, karras_sigmas,
                       sigma_to_time)

SD = 0.5
SIGMAS = torch.tensor([0.002, 0.05, 0.5, 1.0, 3.0, 80.0], dtype=torch.float64)


def test_preconditioning_identities():
    p = edm_preconditioning(SIGMAS, SD)
    s2, sd2 = SIGMAS.square(), SD ** 2
    # c_skip + c_out^2 / sd^2 = sd^2/(s^2+sd^2) + s^2/(s^2+sd^2) = 1
    torch.testing.assert_close(p.c_skip + p.c_out.square() / sd2, torch.ones_like(SIGMAS))
    # c_in^2 (s^2 + sd^2) = 1: the network input has unit variance when data has std sd
    torch.testing.assert_close(p.c_in.square() * (s2 + sd2), torch.ones_like(SIGMAS))
    # c_out^2 * karras weight = 1 (Karras et al. 2022, eq. 8 / Table 1)
    torch.testing.assert_close(p.c_out.square() * edm_loss_weight(SIGMAS, "karras", SD), torch.ones_like(SIGMAS))
    torch.testing.assert_close(p.c_noise, SIGMAS.log() / 4)
    assert edm_preconditioning(torch.tensor([1.0]), SD).c_noise.item() == 0.0


def test_preconditioning_limits():
    small = edm_preconditioning(torch.tensor([1e-8], dtype=torch.float64), SD)
    big = edm_preconditioning(torch.tensor([1e8], dtype=torch.float64), SD)
    assert small.c_skip.item() == pytest.approx(1.0, abs=1e-12)
    assert small.c_out.item() == pytest.approx(0.0, abs=1e-7)
    assert big.c_skip.item() == pytest.approx(0.0, abs=1e-12)
    assert big.c_out.item() == pytest.approx(SD, rel=1e-9)


def test_denoiser_is_identity_at_zero_noise():
    obj = EDMObjective()
    x = torch.randn(3, 4, 5, dtype=torch.float64)
    net = lambda x_in, t, r: torch.tanh(x_in) + t[:, None, None]  # any bounded backbone
    d = obj.denoiser(net)(x, torch.full((3,), 1e-9, dtype=torch.float64))
    torch.testing.assert_close(d, x, atol=1e-8, rtol=0)


@pytest.mark.parametrize("sigma", [0.01, 0.5, 5.0, 50.0])
def test_effective_training_target_has_unit_variance(sigma):
    # Karras et al. 2022, App. B.6: with data of std sd, both the network input
    # c_in (x1 + s n) and its effective target (x1 - c_skip (x1 + s n)) / c_out have unit variance.
    g = torch.Generator().manual_seed(0)
    x1 = SD * torch.randn(200_000, dtype=torch.float64, generator=g)
    n = torch.randn(200_000, dtype=torch.float64, generator=g)
    p = edm_preconditioning(torch.tensor(sigma, dtype=torch.float64), SD)
    y = x1 + sigma * n
    assert (p.c_in * y).var().item() == pytest.approx(1.0, abs=0.015)
    assert ((x1 - p.c_skip * y) / p.c_out).var().item() == pytest.approx(1.0, abs=0.015)


def test_weightings_at_pinned_points():
    s = torch.tensor([0.1, 0.5, 1.0, 2.0], dtype=torch.float64)
    # karras: (s^2 + sd^2) / (s sd)^2 = 1/s^2 + 1/sd^2 -> 100+4, 4+4, 1+4, 0.25+4
    karras = torch.tensor([104.0, 8.0, 5.0, 4.25], dtype=torch.float64)
    torch.testing.assert_close(edm_loss_weight(s, "karras", SD), karras)
    # min_snr (Min-SNR-gamma): min(1/s^2, gamma = 5)
    torch.testing.assert_close(edm_loss_weight(s, "min_snr", SD, snr_clip=5.0),
                               torch.tensor([5.0, 4.0, 1.0, 0.25], dtype=torch.float64))
    # clipped_snr: clamp(1/s^2, 1e-4, 1e4) + 1/sd^2: the karras weight inside the clamp ...
    torch.testing.assert_close(edm_loss_weight(s, "clipped_snr", SD), karras)
    # ... and at its ends: s = 1e-3 (SNR 1e6 -> 1e4) and s = 1e3 (SNR 1e-6 -> 1e-4)
    extreme = torch.tensor([1e-3, 1e3], dtype=torch.float64)
    torch.testing.assert_close(edm_loss_weight(extreme, "clipped_snr", SD),
                               torch.tensor([1e4 + 4.0, 1e-4 + 4.0], dtype=torch.float64))
    # simplified (Option A): 1 / (sd^2 + s^2) = 1/0.26, 1/0.5, 1/1.25, 1/4.25
    torch.testing.assert_close(edm_loss_weight(s, "simplified", SD),
                               torch.tensor([1 / 0.26, 2.0, 0.8, 1 / 4.25], dtype=torch.float64))
    # normalized: karras / mean(karras) (mean = 121.25 / 4)
    torch.testing.assert_close(edm_loss_weight(s, "normalized", SD), karras / 30.3125)


def test_normalized_weight_is_detached_from_its_mean():
    s = torch.tensor([0.5, 1.0], dtype=torch.float64, requires_grad=True)
    w = edm_loss_weight(s, "normalized", SD)
    w[0].backward()
    # d/ds0 [k(s0) / c] with c treated as a constant: k'(0.5) / 6.5, k'(s) = -2 / s^3
    assert s.grad[0].item() == pytest.approx(-16.0 / 6.5)
    assert s.grad[1].item() == 0.0


def test_karras_sigmas_formula():
    sig = karras_sigmas(3, 0.002, 80.0)
    assert sig[0].item() == pytest.approx(80.0) and sig[-1].item() == pytest.approx(0.002)
    # Karras et al. 2022, eq. 5 at i = 1 of 3: the rho-mean of the ends
    mid = ((80.0 ** (1 / 7) + 0.002 ** (1 / 7)) / 2) ** 7
    assert sig[1].item() == pytest.approx(mid, rel=1e-12)
    assert (karras_sigmas(50).diff() < 0).all()


def test_discrete_sigma_sampling_with_filter():
    obj = EDMObjective(sigma_sampling="discrete", discrete_steps=11, discrete_filter_lo=0.1, discrete_filter_hi=0.9)
    allowed = karras_sigmas(11)[1:10].float()  # index fractions 0.1 .. 0.9: both extremes dropped
    s = obj.sample_sigma(5000, generator=torch.Generator().manual_seed(0))
    match = (s[:, None] == allowed[None, :])
    assert match.any(dim=1).all()
    counts = match.sum(dim=0).float()
    assert counts.min() > 0.8 * 5000 / 9  # every kept level is drawn about equally often
    assert not torch.isclose(s, torch.tensor(80.0)).any() and not torch.isclose(s, torch.tensor(0.002)).any()


def test_lognormal_sigma_moments():
    obj = EDMObjective(p_mean=-1.2, p_std=1.2)
    s = obj.sample_sigma(100_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert s.log().mean().item() == pytest.approx(-1.2, abs=0.02)
    assert s.log().std().item() == pytest.approx(1.2, abs=0.02)


def test_from_config_and_validation():
    obj = build_objective(ObjectiveConfig(name="edm", edm_weighting="min_snr", snr_clip=3.0))
    assert isinstance(obj, EDMObjective) and obj.weighting == "min_snr" and obj.snr_clip == 3.0
    with pytest.raises(ConfigError, match="karras, clipped_snr, min_snr, simplified, normalized"):
        EDMObjective(weighting="snr")
    with pytest.raises(ConfigError, match="lognormal, discrete"):
        EDMObjective(sigma_sampling="uniform")
    with pytest.raises(ConfigError, match="keeps none"):
        EDMObjective(sigma_sampling="discrete", discrete_steps=3, discrete_filter_lo=0.6, discrete_filter_hi=0.9)


class _Backbone(torch.nn.Module):
    def __init__(self, c=4):
        super().__init__()
        self.lin = torch.nn.Conv1d(c + 1, c, 1)

    def forward(self, x, t, r=None):
        tt = t[:, None, None].expand(-1, 1, x.shape[2])
        return self.lin(torch.cat([x, tt], dim=1))


def test_karras_loss_equals_unit_variance_f_space_mse():
    # With the karras weight, lambda ||D - x1||^2 = ||F - F_target||^2, F_target = (x1 - c_skip y) / c_out.
    torch.manual_seed(0)
    net = _Backbone().double()
    x1 = torch.randn(6, 4, 7, dtype=torch.float64)
    mask = torch.ones(6, 7, dtype=torch.bool)
    mask[2, 5:] = False
    obj = EDMObjective()
    out = obj.loss(net, x1, mask, generator=torch.Generator().manual_seed(3))
    # replay the generator: sigma (log-normal), then the noise
    g = torch.Generator().manual_seed(3)
    sigma = (-1.2 + 1.2 * torch.randn(6, dtype=torch.float64, generator=g)).exp()
    noise = torch.randn(x1.shape, dtype=torch.float64, generator=g)
    p = edm_preconditioning(sigma, SD)
    y = x1 + sigma[:, None, None] * noise
    f = net(p.c_in[:, None, None] * y, 1 / (1 + sigma.clamp(0.002, 80.0)), None)
    f_target = (x1 - p.c_skip[:, None, None] * y) / p.c_out[:, None, None]
    sq = (f - f_target).square() * mask[:, None, :]
    expected = (sq.sum(dim=(1, 2)) / (mask.sum(dim=1) * 4)).mean()
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(out.t, sigma_to_time(sigma))


# ---------------------------------------------------------------- probability-flow ODE

MU, S1 = 0.7, 1.3  # data x1 ~ N(MU, S1^2) per dimension; noise x0 ~ N(0, 1)


def _exact_backbone(obj):
    """The backbone F whose denoiser is the exact E[x1 | x1 + s n] for Gaussian data
    (= MU + S1^2 / (S1^2 + s^2) (y - MU)); it reads s back from its time input."""

    def net(x_in, t_net, r):
        s = (1 - t_net) / t_net
        p = edm_preconditioning(s, obj.sigma_data)
        y = x_in / p.c_in[:, None, None]
        d = MU + (S1 ** 2 / (S1 ** 2 + s.square()))[:, None, None] * (y - MU)
        return (d - p.c_skip[:, None, None] * y) / p.c_out[:, None, None]

    return net


def _true_velocity(x, t):
    """E[x1 - x0 | x_t = x] for the straight path: x_t ~ N(t MU, V_t), V_t = (1-t)^2 + t^2 S1^2,
    Cov(x1 - x0, x_t) = t S1^2 - (1 - t)."""
    t = t[:, None, None]
    var = (1 - t).square() + t.square() * S1 ** 2
    return MU + (t * S1 ** 2 - (1 - t)) / var * (x - t * MU)


def test_pf_ode_velocity_equals_closed_form_gaussian_flow():
    obj = EDMObjective()
    v = obj.velocity(_exact_backbone(obj))
    x = 2 * torch.randn(9, 3, 4, dtype=torch.float64)
    t = torch.tensor([0.02, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 0.98], dtype=torch.float64)
    torch.testing.assert_close(v(x, t), _true_velocity(x, t), rtol=1e-10, atol=1e-10)


def test_pf_ode_velocity_is_finite_at_the_ends():
    obj = EDMObjective()
    x = 2 * torch.randn(2, 3, 4, dtype=torch.float64)
    v = obj.velocity(_exact_backbone(obj))
    for t in (0.0, 1.0):
        tt = torch.full((2,), t, dtype=torch.float64)
        # only the backbone's noise input is clamped to [sigma_min, sigma_max]: at t = 0 the
        # error is about S1^2 / sigma_max * |x|, at t = 1 O(sigma_min)
        err = (v(x, t) - _true_velocity(x, tt)).abs()
        assert (err <= 0.03 * (1 + x.abs())).all()
    net = _Backbone(3)
    vf = obj.velocity(net)
    for t in (0.0, 1.0):
        assert torch.isfinite(vf(torch.randn(2, 3, 4), t)).all()


def test_pf_ode_transports_noise_to_gaussian_data():
    # The flow of the true velocity maps x0 to MU + S1 x0 (the monotone map N(0,1) -> N(MU, S1^2));
    # integrate the converted EDM velocity with RK4 from t = 0 to 1.
    obj = EDMObjective()
    v = obj.velocity(_exact_backbone(obj))
    x0 = torch.randn(4, 2, 3, dtype=torch.float64)
    x, steps = x0.clone(), 200
    for k in range(steps):
        t, h = k / steps, 1 / steps
        k1 = v(x, t)
        k2 = v(x + h / 2 * k1, t + h / 2)
        k3 = v(x + h / 2 * k2, t + h / 2)
        k4 = v(x + h * k3, t + h)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    torch.testing.assert_close(x, MU + S1 * x0, rtol=0, atol=1e-3)
    assert math.isfinite(x.abs().max().item())


def test_timestep_filter_truncates_the_lognormal_to_its_quantiles():
    from scipy import stats

    f, p_mean, p_std = 0.02, -1.2, 1.2
    obj = EDMObjective(timestep_filter=f)
    log_sigma = obj.sample_sigma(50_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64).log()
    lo, hi = p_mean + p_std * stats.norm.ppf(f), p_mean + p_std * stats.norm.ppf(1 - f)  # closed-form quantiles
    assert log_sigma.min() >= lo - 1e-9 and log_sigma.max() <= hi + 1e-9
    assert log_sigma.min() < lo + 0.01 and log_sigma.max() > hi - 0.01  # reaches both cut points
    a, b = (lo - p_mean) / p_std, (hi - p_mean) / p_std
    assert stats.kstest(log_sigma.numpy(), stats.truncnorm(a, b, loc=p_mean, scale=p_std).cdf).pvalue > 0.01
    # off by default: the baseline draws stay exactly what they were
    torch.testing.assert_close(EDMObjective().sample_sigma(5, generator=torch.Generator().manual_seed(1)),
                               (p_mean + p_std * torch.randn(5, generator=torch.Generator().manual_seed(1))).exp())


def test_timestep_filter_drops_the_end_levels_of_the_discrete_sampler():
    obj = EDMObjective(sigma_sampling="discrete", discrete_steps=1000, timestep_filter=0.02)
    # index fractions i / 999 in [0.02, 0.98]: i = 20 .. 979, 960 of the 1000 Karras sigmas
    assert len(obj.discrete_sigmas) == 960
    full = karras_sigmas(1000)
    torch.testing.assert_close(obj.discrete_sigmas, full[20:980])
    with pytest.raises(ConfigError, match=r"timestep_filter must be in \[0, 0.5\)"):
        EDMObjective(timestep_filter=0.5)
