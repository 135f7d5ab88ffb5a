"""MeanFlow: the target against the closed-form average velocity of a Gaussian flow,
the JVP against finite differences, time sampling, weighting and the sampler."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.config import ConfigError, ObjectiveConfig
from core.flow import (MeanFlowObjective, Unconditional, adaptive_weight, build_objective, meanflow_jvp,
                       meanflow_sample, meanflow_target, meanflow_trajectory)

MU, S1 = 0.7, 1.3  # data x1 ~ N(MU, S1^2) per dimension, noise x0 ~ N(0, 1), independent


def _var(t):
    return (1 - t).square() + t.square() * S1 ** 2


def true_velocity(z, t):
    """Marginal velocity of the straight path: E[x1 - x0 | x_t = z]
    = MU + (t S1^2 - (1 - t)) / V_t (z - t MU), V_t = (1-t)^2 + t^2 S1^2."""
    t = t[:, None, None]
    return MU + (t * S1 ** 2 - (1 - t)) / _var(t) * (z - t * MU)


def true_average_velocity(z, r, t):
    """u*(z, r, t) = (phi_{r->t}(z) - z) / (t - r). The flow of the (affine) marginal
    velocity is the monotone affine map N(r MU, V_r) -> N(t MU, V_t):
    phi(z) = t MU + sqrt(V_t / V_r) (z - r MU)."""
    r, t = r[:, None, None], t[:, None, None]
    phi = t * MU + (_var(t) / _var(r)).sqrt() * (z - r * MU)
    return (phi - z) / (t - r)


def test_flow_map_solves_the_ode():
    # sanity check of the reference: d/dt phi_{r->t}(z) = v(phi, t), by central differences
    z = torch.randn(3, 2, 2, dtype=torch.float64)
    r = torch.full((3,), 0.2, dtype=torch.float64)
    t, h = torch.full((3,), 0.6, dtype=torch.float64), 1e-6
    phi = lambda tt: z + (tt - r)[:, None, None] * true_average_velocity(z, r, tt)
    dphi = (phi(t + h) - phi(t - h)) / (2 * h)
    torch.testing.assert_close(dphi, true_velocity(phi(t), t), rtol=1e-7, atol=1e-7)


def test_target_equals_true_average_velocity():
    g = torch.Generator().manual_seed(0)
    z = 2 * torch.randn(8, 3, 5, dtype=torch.float64, generator=g)
    r = torch.tensor([0.0, 0.0, 0.1, 0.3, 0.5, 0.2, 0.7, 0.95], dtype=torch.float64)
    t = torch.tensor([1.0, 0.4, 0.9, 0.35, 0.99, 0.8, 1.0, 0.97], dtype=torch.float64)
    target = meanflow_target(true_average_velocity, z, r, t, true_velocity(z, r))
    torch.testing.assert_close(target, true_average_velocity(z, r, t), rtol=1e-10, atol=1e-10)
    assert not target.requires_grad


def _mlp():
    torch.manual_seed(0)
    return _TinyU(3).double()


class _TinyU(torch.nn.Module):
    """u(z, r, t) = net(z, t, r): a per-frame MLP on [z, t, r]."""

    def __init__(self, c, hidden=32):
        super().__init__()
        self.a = torch.nn.Conv1d(c + 2, hidden, 1)
        self.b = torch.nn.Conv1d(hidden, c, 1)

    def forward(self, x, t, r):
        r = t if r is None else r
        tt = torch.stack([t, r], dim=1)[:, :, None].expand(-1, 2, x.shape[2])
        return self.b(torch.tanh(self.a(torch.cat([x, tt], dim=1))))


def test_target_is_v_when_r_equals_t():
    net = _mlp()
    obj = MeanFlowObjective()
    z = torch.randn(4, 3, 6, dtype=torch.float64)
    t = torch.tensor([0.1, 0.5, 0.9, 1.0], dtype=torch.float64)
    v = torch.randn_like(z)
    torch.testing.assert_close(meanflow_target(obj.average_velocity(net), z, t, t, v), v, rtol=0, atol=0)


def test_jvp_is_the_total_derivative_along_the_flow():
    net = _mlp()
    u = MeanFlowObjective().average_velocity(net)
    z = torch.randn(4, 3, 6, dtype=torch.float64)
    v = torch.randn_like(z)
    r = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    t = torch.tensor([0.5, 0.9, 0.3, 0.8], dtype=torch.float64)
    jv = meanflow_jvp(u, z, r, t, v)
    h = 1e-6
    fd = (u(z + h * v, r + h, t) - u(z - h * v, r - h, t)) / (2 * h)
    torch.testing.assert_close(jv.dudr, fd, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(jv.u, u(z, r, t))


def test_loss_gradient_equals_plain_forward_with_detached_target():
    net = _mlp()
    obj = MeanFlowObjective(r_neq_t_fraction=0.5)
    x1 = torch.randn(6, 3, 5, dtype=torch.float64)
    out = obj.loss(net, x1, None, generator=torch.Generator().manual_seed(4))
    out.loss.backward()
    grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    # replay: two logit-normal draws, the r != t coin, then the noise
    g = torch.Generator().manual_seed(4)
    a = torch.sigmoid(torch.randn(6, dtype=torch.float64, generator=g))
    b = torch.sigmoid(torch.randn(6, dtype=torch.float64, generator=g))
    coin = torch.rand(6, dtype=torch.float64, generator=g) < 0.5
    x0 = torch.randn(x1.shape, dtype=torch.float64, generator=g)
    r = torch.minimum(a, b)  # the state sits at the noisier draw in every row
    t = torch.where(coin, torch.maximum(a, b), r)
    z = (1 - r)[:, None, None] * x0 + r[:, None, None] * x1
    u = obj.average_velocity(net)
    target = meanflow_target(u, z, r, t, x1 - x0)
    sq = (u(z, r, t) - target).square().mean(dim=(1, 2))
    loss = (sq / (sq.detach() + 1e-3)).mean()  # adaptive weight, p = 1, c = 1e-3
    loss.backward()
    torch.testing.assert_close(out.loss, loss)
    torch.testing.assert_close(out.t, t)
    for ga, p in zip(grads, net.parameters()):
        torch.testing.assert_close(ga, p.grad)


def test_adaptive_weight_at_pinned_points():
    sq = torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(adaptive_weight(sq, 1.0, 1e-3), torch.tensor([1000.0, 1 / 1.001, 1 / 3.001],
                                                                            dtype=torch.float64))
    torch.testing.assert_close(adaptive_weight(sq, 0.5, 1.0), torch.tensor([1.0, 2 ** -0.5, 0.5],
                                                                          dtype=torch.float64))
    torch.testing.assert_close(adaptive_weight(sq, 0.0, 1e-3), torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("fraction", [0.0, 0.25, 1.0])
def test_time_sampling_order_and_fraction(fraction):
    obj = MeanFlowObjective(r_neq_t_fraction=fraction)
    r, t = obj.sample_times(20_000, generator=torch.Generator().manual_seed(0))
    assert (r <= t).all() and (r >= 0).all() and (t <= 1).all()
    assert (r < t).float().mean().item() == pytest.approx(fraction, abs=0.015)


def test_the_state_of_r_equals_t_rows_sits_at_the_noisier_draw():
    # In this time direction (t = 0 noise) the state z lives at r, the smaller (noisier) of the
    # two logit-normal draws, whether r != t or r = t: both groups' state times follow the law
    # of min(sigmoid(n1), sigmoid(n2)) = sigmoid(min(n1, n2)).  Reference by plain numpy Monte
    # Carlo, independent of the objective's code: E = 0.3806 for logit_mean 0, logit_std 1.
    from scipy import stats

    rng = np.random.default_rng(1)
    n = rng.standard_normal((2, 1_000_000))
    expected = float(np.mean(1 / (1 + np.exp(-n.min(axis=0)))))
    assert expected == pytest.approx(0.3806, abs=0.002)
    r, t = MeanFlowObjective(r_neq_t_fraction=0.25).sample_times(40_000, generator=torch.Generator().manual_seed(3))
    equal, distinct = r[r == t].numpy(), r[r < t].numpy()
    assert equal.mean() == pytest.approx(expected, abs=0.006)  # was 0.62, the mirrored law, before the fix
    assert distinct.mean() == pytest.approx(expected, abs=0.01)
    assert stats.ks_2samp(equal, distinct).pvalue > 0.01  # one distribution


def test_velocity_and_average_velocity_argument_order():
    seen = []

    def net(x, t, r):
        seen.append((t.clone(), None if r is None else r.clone()))
        return torch.zeros_like(x)

    obj = MeanFlowObjective()
    x = torch.zeros(2, 3, 4)
    obj.average_velocity(net)(x, torch.full((2,), 0.2), torch.full((2,), 0.7))  # u(z, r=0.2, t=0.7)
    assert torch.allclose(seen[-1][0], torch.tensor(0.7)) and torch.allclose(seen[-1][1], torch.tensor(0.2))
    obj.velocity(net)(x, 0.4)  # v(x, t) = u(x, t, t)
    assert torch.allclose(seen[-1][0], torch.tensor(0.4)) and torch.allclose(seen[-1][1], torch.tensor(0.4))


def test_sampler_with_true_average_velocity_is_exact():
    # phi_{0->1}(x0) = MU + S1 x0: one jump and several jumps both land there exactly
    x0 = torch.randn(3, 2, 4, dtype=torch.float64)
    one = meanflow_sample(true_average_velocity, x0, torch.tensor([0.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(one, MU + S1 * x0)
    grid = torch.tensor([0.0, 0.3, 0.5, 1.0], dtype=torch.float64)
    traj = meanflow_trajectory(true_average_velocity, x0, grid)
    assert traj.shape == (4, 3, 2, 4)
    torch.testing.assert_close(traj[0], x0)
    torch.testing.assert_close(traj[-1], MU + S1 * x0)
    torch.testing.assert_close(traj[-1], meanflow_sample(true_average_velocity, x0, grid))
    with pytest.raises(ValueError, match="grid"):
        meanflow_sample(true_average_velocity, x0, torch.tensor([0.0]))


class _AttentionU(torch.nn.Module):
    """A net using F.scaled_dot_product_attention over frames (no forward AD in the
    fused kernels): the objective must run it through the math backend."""

    def __init__(self, c=4):
        super().__init__()
        self.qkv = torch.nn.Conv1d(c + 2, 3 * c, 1)

    def forward(self, x, t, r):
        tt = torch.stack([t, r], dim=1)[:, :, None].expand(-1, 2, x.shape[2])
        q, k, v = self.qkv(torch.cat([x, tt], dim=1)).transpose(1, 2).chunk(3, dim=-1)
        return F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0].transpose(1, 2)


def test_loss_runs_through_sdpa_attention():
    torch.manual_seed(0)
    net = _AttentionU()
    out = MeanFlowObjective(r_neq_t_fraction=1.0).loss(net, torch.randn(2, 4, 6),
                                                       generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    assert torch.isfinite(out.loss) and all(p.grad is not None for p in net.parameters())


def test_from_config_and_validation():
    obj = build_objective(ObjectiveConfig(name="meanflow", r_neq_t_fraction=0.5, adaptive_p=0.5,
                                          logit_mean=-0.4))
    assert isinstance(obj, MeanFlowObjective)
    assert obj.r_neq_t_fraction == 0.5 and obj.adaptive_p == 0.5 and obj.time_sampling.logit_mean == -0.4
    with pytest.raises(ConfigError):
        MeanFlowObjective(r_neq_t_fraction=1.5)
    with pytest.raises(ConfigError):
        MeanFlowObjective(adaptive_c=0.0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("autocast", [False, True])
def test_loss_runs_through_sdpa_attention_on_cuda(autocast):
    # under bf16 autocast SDPA would pick the flash kernel, which has no forward-mode AD
    torch.manual_seed(0)
    net = _AttentionU(8).cuda()
    x1 = torch.randn(2, 8, 16, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        out = MeanFlowObjective(r_neq_t_fraction=1.0).loss(net, x1, generator=torch.Generator("cuda").manual_seed(0))
    out.loss.backward()
    assert torch.isfinite(out.loss) and all(p.grad is not None for p in net.parameters())


def test_loss_under_no_grad_matches_training_loss():
    # validation runs the loss without gradients; the JVP must still work and agree
    net = _mlp()
    obj = MeanFlowObjective(r_neq_t_fraction=1.0)
    x1 = torch.randn(3, 3, 5, dtype=torch.float64)
    a = obj.loss(net, x1, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        b = obj.loss(net, x1, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a.loss.detach(), b.loss)


def test_meanflow_target_refuses_a_state_that_is_not_batch_channels_frames():
    from core.flow import meanflow_target

    z, v = torch.zeros(4, 8), torch.zeros(4, 8)  # (B, D): once broadcast silently to (B, B, D)
    r, t = torch.zeros(4), torch.ones(4)
    with pytest.raises(ValueError, match=r"z must have shape \(B, C, T\), got \(4, 8\)"):
        meanflow_target(lambda z_, r_, t_: z_, z, r, t, v)


def test_adaptive_weight_does_not_depend_on_utterance_length():
    # the same per-frame error over 6 frames and over 12 (the clip twice), and over 6 real
    # frames padded to 12: one weight (per-element mean over real frames, not a sum)
    from core.flow.base import masked_mean_square

    err = torch.randn(1, 4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    short = masked_mean_square(err, None)
    long = masked_mean_square(torch.cat([err, err], dim=2), None)
    padded = masked_mean_square(torch.cat([err, 100 * err], dim=2), torch.arange(12)[None] < 6)
    torch.testing.assert_close(short, long)
    torch.testing.assert_close(short, padded)
    torch.testing.assert_close(adaptive_weight(short), adaptive_weight(long))


# ------------------------------------------------------------------ guidance trained in (cfg > 0)
def _replay_times_and_noise(x1, seed, fraction):
    """The loss's draws in its order: two logit-normal times, the r != t coin, the noise."""
    g = torch.Generator().manual_seed(seed)
    n = x1.shape[0]
    a = torch.sigmoid(torch.randn(n, dtype=x1.dtype, generator=g))
    b = torch.sigmoid(torch.randn(n, dtype=x1.dtype, generator=g))
    coin = torch.rand(n, dtype=x1.dtype, generator=g) < fraction
    x0 = torch.randn(x1.shape, dtype=x1.dtype, generator=g)
    r = torch.minimum(a, b)
    return r, torch.where(coin, torch.maximum(a, b), r), x0


@pytest.mark.parametrize("kappa", [0.0, 0.5])
def test_guidance_with_fields_equal_to_v_changes_nothing(kappa):
    # closed form: the straight path's own velocity at (z, r) is (x1 - z) / (1 - r) = x1 - x0.
    # Null (and, with kappa, conditional) velocities equal to it make v~ = (omega + kappa +
    # 1 - omega - kappa) v = v, whatever cfg: the loss is the unguided one.
    path_velocity = lambda x, t, r: (x1 - x) / (1 - t)[:, None, None]  # noqa: E731
    net = _mlp()

    def conditional(x, t, r):   # the trained network, except asked at r == t (the guidance's call)
        return path_velocity(x, t, r) if r is not None and torch.equal(r, t) else net(x, t, r)

    x1 = torch.randn(5, 3, 6, dtype=torch.float64)
    plain = MeanFlowObjective(r_neq_t_fraction=0.5).loss(net, x1, generator=torch.Generator().manual_seed(1))
    same_v = Unconditional(path_velocity, torch.zeros(5, dtype=torch.bool))
    obj = MeanFlowObjective(r_neq_t_fraction=0.5, cfg=3.0, cfg_kappa=kappa)
    guided = obj.loss(conditional if kappa else net, x1, generator=torch.Generator().manual_seed(1),
                      unconditional=same_v)
    torch.testing.assert_close(guided.loss, plain.loss, rtol=1e-12, atol=1e-12)


def test_guided_velocity_with_kappa_closed_form():
    # constant fields: u(. | null) = 1, u(. | c) = 5; cfg 2, kappa 0.5 -> omega = 3 * 0.5 = 1.5,
    # v~ = 1.5 v + 0.5 * 5 + (1 - 1.5 - 0.5) * 1 = 1.5 v + 1.5 on kept rows
    obj = MeanFlowObjective(cfg=2.0, cfg_kappa=0.5)
    v, z, r = torch.randn(2, 2, 3), torch.randn(2, 2, 3), torch.tensor([0.2, 0.7])
    null = Unconditional(lambda x, t, r_: torch.ones_like(x), torch.tensor([False, True]))
    out = obj.guided_velocity(v, z, r, null, lambda x, t, r_: 5 * torch.ones_like(x))
    torch.testing.assert_close(out[0], 1.5 * v[0] + 1.5)
    torch.testing.assert_close(out[1], v[1])
    with pytest.raises(ValueError, match="pass net"):
        obj.guided_velocity(v, z, r, null)


def test_guided_velocity_closed_form_and_dropped_rows():
    # a null field of zeros: v~ = (1 + cfg) v on kept rows, v on rows already dropped;
    # the null network is asked for the instantaneous velocity at the state's time (z, r, r)
    calls = []

    def zeros(x, t, r):
        calls.append((t.clone(), r.clone()))
        return torch.zeros_like(x)

    obj = MeanFlowObjective(cfg=2.0)
    v, z = torch.randn(3, 2, 4), torch.randn(3, 2, 4)
    r = torch.tensor([0.1, 0.5, 0.9])
    dropped = torch.tensor([False, True, False])
    out = obj.guided_velocity(v, z, r, Unconditional(zeros, dropped))
    torch.testing.assert_close(out[0], 3 * v[0])
    torch.testing.assert_close(out[1], v[1])
    torch.testing.assert_close(out[2], 3 * v[2])
    (t_seen, r_seen), = calls
    assert torch.equal(t_seen, r) and torch.equal(r_seen, r)
    with pytest.raises(ValueError, match=r"dropped must be a \(3,\) bool tensor"):
        obj.guided_velocity(v, z, r, Unconditional(zeros, torch.zeros(3)))


def _assert_replayed_loss(out, grads, net, u_out, target):
    """The objective's loss and gradients (``out``, ``grads``) equal the adaptively weighted
    (p = 1, c = 1e-3) mean square of ``u_out - target`` computed by hand."""
    sq = (u_out - target).square().mean(dim=(1, 2))
    loss = (sq / (sq.detach() + 1e-3)).mean()
    loss.backward()
    torch.testing.assert_close(out.loss, loss)
    for ga, p in zip(grads, net.parameters()):
        torch.testing.assert_close(ga, p.grad)


@pytest.mark.parametrize("kappa", [0.0, 0.5])
def test_guided_loss_equals_replay_with_the_guided_velocity_in_tangent_and_target(kappa):
    net, null = _mlp(), _TinyU(3).double()
    torch.nn.init.normal_(null.b.weight)            # a null field unlike the conditional one
    x1 = torch.randn(6, 3, 5, dtype=torch.float64)
    dropped = torch.tensor([False, False, True, False, True, False])
    obj = MeanFlowObjective(r_neq_t_fraction=0.5, cfg=1.5, cfg_kappa=kappa)
    out = obj.loss(net, x1, None, generator=torch.Generator().manual_seed(4), unconditional=Unconditional(null, dropped))
    out.loss.backward()
    grads = [p.grad.clone() for p in net.parameters()]
    assert all(p.grad is None for p in null.parameters()), "the guidance term must be stop-gradient"
    net.zero_grad()
    r, t, x0 = _replay_times_and_noise(x1, 4, 0.5)
    z = (1 - r)[:, None, None] * x0 + r[:, None, None] * x1
    v = x1 - x0
    omega = 2.5 * (1 - kappa)
    with torch.no_grad():
        guided = omega * v + kappa * net(z, r, r) + (1 - omega - kappa) * null(z, r, r)
    v_tilde = torch.where(dropped[:, None, None], v, guided)
    u = obj.average_velocity(net)
    target = meanflow_target(u, z, r, t, v_tilde)
    _assert_replayed_loss(out, grads, net, u(z, r, t), target)
    # rows with r == t regress on v~ itself (plain guided flow matching)
    same = r == t
    assert same.any()
    torch.testing.assert_close(target[same], v_tilde[same])


def test_guidance_needs_the_unconditional_network_and_valid_settings():
    obj = MeanFlowObjective(cfg=1.0)
    assert obj.wants_unconditional and not MeanFlowObjective().wants_unconditional
    with pytest.raises(ValueError, match="needs the unconditional network"):
        obj.loss(_mlp(), torch.randn(2, 3, 4, dtype=torch.float64))
    built = build_objective(ObjectiveConfig(name="meanflow", cfg=2.0, cfg_kappa=0.5))
    assert (built.cfg, built.cfg_kappa) == (2.0, 0.5)
    for bad in (-0.5, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match=r"objective.cfg must be a finite number >= 0"):
            ObjectiveConfig(name="meanflow", cfg=bad).validate()
    for cfg, kappa in ((2.0, 1.0), (2.0, -0.1), (0.0, 0.5)):
        with pytest.raises(ConfigError, match=r"objective.cfg/objective.cfg_kappa must satisfy 0 <= cfg_kappa < 1"):
            MeanFlowObjective(cfg=cfg, cfg_kappa=kappa)


class _ExactGaussianU(torch.nn.Module):
    """The exact fields of the Gaussian flow above as a network: net(z, t, r) = u*(z, r, t)
    for r < t and v*(z, t) for r == t (or r None)."""

    def forward(self, x, t, r):
        r = t if r is None else r
        gap = (t > r)[:, None, None]
        safe_t = torch.where(t > r, t, r + 0.5)  # keeps the unused branch finite (no 0 / 0)
        return torch.where(gap, true_average_velocity(x, r, safe_t), true_velocity(x, r))


def test_predicted_tangent_leaves_only_the_sample_noise_with_the_exact_field():
    # improved MeanFlow's tangent: du/dr along the network's own u(z, r, r). With the exact
    # fields, u - (t - r) du/dr = v*(z, r) (the MeanFlow identity), so each example's residual
    # is v*(z, r) - (x1 - x0): closed form, whether r < t or r == t.
    x1 = MU + S1 * torch.randn(6, 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    net = _ExactGaussianU()
    obj = MeanFlowObjective(r_neq_t_fraction=0.5, jvp_tangent="predicted")
    out = obj.loss(net, x1, None, generator=torch.Generator().manual_seed(4))
    r, t, x0 = _replay_times_and_noise(x1, 4, 0.5)
    z = (1 - r)[:, None, None] * x0 + r[:, None, None] * x1
    expected = (true_velocity(z, r) - (x1 - x0)).square().mean(dim=(1, 2))
    assert (r < t).any() and (r == t).any()
    torch.testing.assert_close(out.per_example, expected, rtol=1e-9, atol=1e-12)
    # the sample's tangent (MeanFlow) adds (t - r) du/dz . (v* - v) to that residual
    plain = MeanFlowObjective(r_neq_t_fraction=0.5).loss(net, x1, None, generator=torch.Generator().manual_seed(4))
    gap = r < t
    assert not torch.allclose(plain.per_example[gap], expected[gap])
    torch.testing.assert_close(plain.per_example[~gap], expected[~gap])


@pytest.mark.parametrize("cfg,kappa", [(0.0, 0.0), (1.5, 0.0), (1.5, 0.5)])
def test_predicted_tangent_loss_equals_replay(cfg, kappa):
    net, null = _mlp(), _TinyU(3).double()
    torch.nn.init.normal_(null.b.weight)
    x1 = torch.randn(6, 3, 5, dtype=torch.float64)
    dropped = torch.tensor([False, False, True, False, True, False])
    obj = MeanFlowObjective(r_neq_t_fraction=0.5, cfg=cfg, cfg_kappa=kappa, jvp_tangent="predicted")
    out = obj.loss(net, x1, None, generator=torch.Generator().manual_seed(4),
                   unconditional=Unconditional(null, dropped) if cfg else None)
    out.loss.backward()
    grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    r, t, x0 = _replay_times_and_noise(x1, 4, 0.5)
    z = (1 - r)[:, None, None] * x0 + r[:, None, None] * x1
    v = x1 - x0
    with torch.no_grad():
        own = net(z, r, r)
        if cfg:
            omega = (1 + cfg) * (1 - kappa)
            v = torch.where(dropped[:, None, None], v, omega * v + kappa * own + (1 - omega - kappa) * null(z, r, r))
    u = obj.average_velocity(net)
    target = v + (t - r)[:, None, None] * meanflow_jvp(u, z, r, t, own).dudr.detach()
    _assert_replayed_loss(out, grads, net, u(z, r, t), target)


def test_jvp_tangent_is_a_checked_choice():
    assert build_objective(ObjectiveConfig(name="meanflow", jvp_tangent="predicted")).jvp_tangent == "predicted"
    with pytest.raises(ConfigError, match="conditional, predicted"):
        ObjectiveConfig(name="meanflow", jvp_tangent="model").validate()
    with pytest.raises(ConfigError, match="conditional, predicted"):
        MeanFlowObjective(jvp_tangent="own")
    with pytest.raises(ConfigError, match="applies to meanflow only"):
        ObjectiveConfig(name="cfm", jvp_tangent="predicted").check_keys_apply()
