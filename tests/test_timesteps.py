"""Training timestep samplers: contract, goodness of fit, oracles, limits, bad input."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from sigdiff._utils import make_generator
from sigdiff.schedules import DiscreteSchedule
from sigdiff.timesteps import (
    TIMESTEP_SAMPLERS,
    TimestepSamplerConfig,
    build_timestep_sampler,
    sample_timesteps,
)

LINEAR = DiscreteSchedule("linear", 1000)
T = LINEAR.T

# (name, params) pairs covering every sampler, both ci_gaussian forms and every tail policy.
CASES: list[tuple[str, dict]] = [
    ("uniform", {}),
    ("stratified", {}),
    ("ci_gaussian", {}),
    ("ci_gaussian", {"center": 0.2, "width": 0.3}),
    ("ci_gaussian", {"center": 0.05, "width": 0.4, "tail": "uniform"}),
    ("ci_gaussian", {"c_l": 0.7, "c_h": 1.1, "q": 0.8, "tail": "clamp"}),
    ("ci_gaussian", {"z_l": -1.0, "z_h": 3.0}),
    ("ci_gaussian", {"z_l": 0.5, "z_h": 2.0, "tail": "uniform"}),
    ("logit_normal", {}),
    ("logit_normal", {"logit_mean": -0.5, "logit_std": 0.7}),
    ("mode", {}),
    ("mode", {"mode_scale": -0.8}),
    ("lognormal", {}),
    ("lognormal", {"p_mean": 0.5, "p_std": 2.0, "tail": "uniform"}),
    ("lognormal", {"tail": "clamp"}),
    ("beta", {}),
    ("beta", {"a": 0.6, "b": 0.8}),
    ("loss_aware", {}),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in p.items())}" for n, p in CASES]


def _ok_continuous(params: dict) -> bool:
    return params.get("tail") != "clamp"


# Every valid (sampler, time domain) pair: clamp puts atoms at the ends, so it exists only in
# discrete time (its rejection for continuous time is tested separately below).
COMBOS = [(n, p, c) for (n, p), i in zip(CASES, IDS) for c in (False, True)
          if not (c and not _ok_continuous(p))]
COMBO_IDS = [f"{i}-{'continuous' if c else 'discrete'}" for (n, p), i in zip(CASES, IDS)
             for c in (False, True) if not (c and not _ok_continuous(p))]


def _build(name: str, params: dict, **kw) -> object:
    return build_timestep_sampler(name, schedule=LINEAR, **params, **kw)


def test_every_registered_sampler_is_covered() -> None:
    assert {n for n, _ in CASES} == set(TIMESTEP_SAMPLERS)


@pytest.mark.parametrize(("name", "params", "continuous"), COMBOS, ids=COMBO_IDS)
@pytest.mark.parametrize("mode", ["emphasis", "importance"])
class TestSamplerContract:
    """What every timestep sampler guarantees to the training loop."""

    def _sampler(self, name, params, continuous, mode, floor=0.0):
        return _build(name, params, continuous=continuous, mode=mode, floor=floor)

    def test_shapes_dtypes_range(self, name, params, continuous, mode) -> None:
        s = self._sampler(name, params, continuous, mode)
        t, w = s.sample(257, generator=make_generator(0))
        assert t.shape == w.shape == (257,)
        assert w.dtype == torch.float32 and torch.isfinite(w).all() and (w > 0).all()
        if continuous:
            assert t.dtype == torch.float32
            assert (t >= 0).all() and (t <= T - 1).all()
        else:
            assert t.dtype == torch.int64
            assert (t >= 0).all() and (t < T).all()
        if mode == "emphasis":
            assert (w == 1).all()

    def test_same_seed_same_draws_and_generator_respected(
        self, name, params, continuous, mode
    ) -> None:
        s = self._sampler(name, params, continuous, mode)
        torch.manual_seed(123)
        before = torch.random.get_rng_state()
        a = s.sample(64, generator=make_generator(7))
        assert torch.equal(torch.random.get_rng_state(), before)  # global RNG untouched
        b = s.sample(64, generator=make_generator(7))
        c = s.sample(64, generator=make_generator(8))
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert not torch.equal(a[0], c[0])

    def test_pmf_is_a_distribution(self, name, params, continuous, mode) -> None:
        s = self._sampler(name, params, continuous, mode, floor=0.1)
        p = s.pmf()
        assert p.shape == (T,) and p.dtype == torch.float64
        assert (p >= 0).all() and math.isclose(float(p.sum()), 1.0, abs_tol=1e-9)
        assert float(p.min()) >= 0.1 / T * (1 - 1e-9)  # the floor is there

    def test_config_round_trip(self, name, params, continuous, mode) -> None:
        cfg = TimestepSamplerConfig(name, mode=mode, continuous=continuous, params=params)
        back = TimestepSamplerConfig(**json.loads(json.dumps(dataclasses.asdict(cfg))))
        assert back == cfg
        a = cfg.build(LINEAR).sample(32, generator=make_generator(3))
        b = back.build(LINEAR).sample(32, generator=make_generator(3))
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


# --- goodness of fit ------------------------------------------------------------------------
def _chisquare(t: torch.Tensor, p: torch.Tensor, cells: int = 50) -> float:
    """Pearson χ² p-value of integer draws against pmf p, on `cells` equal groups of steps
    (groups with expected count < 5 are merged into their neighbour)."""
    obs = torch.bincount(t, minlength=T).double().reshape(cells, -1).sum(1).numpy()
    exp = (p.reshape(cells, -1).sum(1) * len(t)).numpy()
    o, e, acc_o, acc_e = [], [], 0.0, 0.0
    for oi, ei in zip(obs, exp):
        acc_o, acc_e = acc_o + oi, acc_e + ei
        if acc_e >= 5:
            o.append(acc_o)
            e.append(acc_e)
            acc_o = acc_e = 0.0
    o[-1] += acc_o
    e[-1] += acc_e
    e = np.asarray(e) * sum(o) / sum(e)
    return float(stats.chisquare(o, e).pvalue)


@pytest.mark.parametrize("floor", [0.0, 0.2])
@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_discrete_chi_square_against_own_pmf(name, params, floor) -> None:
    s = _build(name, params, floor=floor)
    n = 40_000
    draws = [s.sample(200, generator=make_generator(i))[0] for i in range(n // 200)]
    assert _chisquare(torch.cat(draws), s.pmf()) > 1e-3


@pytest.mark.parametrize("floor", [0.0, 0.2])
@pytest.mark.parametrize(
    ("name", "params"),
    [c for c in CASES if _ok_continuous(c[1])],
    ids=[i for i, c in zip(IDS, CASES) if _ok_continuous(c[1])],
)
def test_continuous_ks_against_own_cdf(name, params, floor) -> None:
    s = _build(name, params, continuous=True, floor=floor)
    t = torch.cat([s.sample(500, generator=make_generator(i))[0] for i in range(20)])
    res = stats.kstest(t.double().numpy(), lambda x: s.cdf(torch.from_numpy(x)).numpy())
    assert res.pvalue > 1e-3
    # The density integrates to the CDF (trapezoid on a fine grid between the 1% and 99% points).
    lo, hi = np.quantile(t.numpy(), [0.01, 0.99])
    grid = torch.linspace(float(lo), float(hi), 4001, dtype=torch.float64)
    integral = torch.trapezoid(s.pdf(grid), grid)
    assert float(integral) == pytest.approx(float(s.cdf(grid[-1:]) - s.cdf(grid[:1])), abs=2e-3)


def test_loss_aware_fit_after_updates() -> None:
    s = _build("loss_aware", {"history": 2})
    t = torch.arange(T)
    for _ in range(2):
        s.update(t, (t.double() / T) ** 2 + 0.01)
    assert not torch.allclose(s.pmf(), torch.full((T,), 1 / T, dtype=torch.float64))
    draws = torch.cat([s.sample(500, generator=make_generator(i))[0] for i in range(60)])
    assert _chisquare(draws, s.pmf()) > 1e-3


# --- oracles ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("scheme", "name", "dparams", "params"),
    [
        ("logit_normal", "logit_normal", {"logit_mean": 0.3, "logit_std": 0.8},
         {"logit_mean": 0.3, "logit_std": 0.8}),
        ("mode", "mode", {"mode_scale": 1.29}, {"mode_scale": 1.29}),
        ("mode", "mode", {"mode_scale": -0.5}, {"mode_scale": -0.5}),
    ],
)  # fmt: skip
def test_sd3_densities_match_diffusers_draw_for_draw(scheme, name, dparams, params) -> None:
    from diffusers.training_utils import compute_density_for_timestep_sampling

    u = compute_density_for_timestep_sampling(
        scheme, 4096, generator=make_generator(11), **dparams
    ).double()
    s = _build(name, params, continuous=True)
    t, _ = s.sample(4096, generator=make_generator(11))
    torch.testing.assert_close(t.double() / (T - 1), u, atol=2e-6, rtol=0)
    # Discrete: diffusers' SD3 scripts index with (u * T).long(); ours is ⌊u·T⌋.
    td, _ = _build(name, params).sample(4096, generator=make_generator(11))
    assert (td == (u * T).long().clamp(max=T - 1)).float().mean() > 0.999


def test_lognormal_matches_edm_sigma_law() -> None:
    """σ(t) of the continuous draws is log-normal(P_mean, P_std) truncated to the schedule's range."""
    s = _build("lognormal", {"p_mean": -1.2, "p_std": 1.2}, continuous=True)
    t = torch.cat([s.sample(1000, generator=make_generator(i))[0] for i in range(10)])
    log_sigma = LINEAR.sigma(t.double()).log().numpy()
    a, b = (math.log(LINEAR.sigma_min) + 1.2) / 1.2, (math.log(LINEAR.sigma_max) + 1.2) / 1.2
    assert stats.kstest(log_sigma, stats.truncnorm(a, b, loc=-1.2, scale=1.2).cdf).pvalue > 1e-3


def test_ci_gaussian_interval_matches_scipy_truncnorm() -> None:
    s = _build("ci_gaussian", {"c_l": 0.1, "c_h": 0.5, "q": 0.9}, continuous=True)
    mu, sd = 0.3, 0.2 / stats.norm.ppf(0.95)
    u = np.linspace(0, 1, 101)
    ref = stats.truncnorm((0 - mu) / sd, (1 - mu) / sd, loc=mu, scale=sd)
    np.testing.assert_allclose(s.pdf(torch.from_numpy(u * (T - 1))).numpy() * (T - 1), ref.pdf(u))
    np.testing.assert_allclose(s.cdf(torch.from_numpy(u * (T - 1))).numpy(), ref.cdf(u), atol=1e-12)


def test_ci_gaussian_z_form_matches_scipy_truncnorm() -> None:
    s = _build("ci_gaussian", {"z_l": -1.0, "z_h": 3.0})
    ref = stats.truncnorm(-1.0, 3.0)
    edges = -1.0 + 4.0 * np.arange(T + 1) / T  # cell k covers z in [edges[k], edges[k+1])
    np.testing.assert_allclose(s.pmf().numpy(), np.diff(ref.cdf(edges)), atol=1e-12)


@pytest.mark.parametrize(("name", "params"), CASES, ids=IDS)
def test_importance_weights_are_unbiased_for_the_uniform_objective(name, params) -> None:
    s = _build(name, params, mode="importance", floor=0.01)
    loss = torch.linspace(0, 1, T, dtype=torch.float64) ** 2 + 0.1 * torch.cos(torch.arange(T))
    # Exact: Σ p_t · 1/(T p_t) · L_t = mean L.
    w_all = 1 / (T * s.pmf())
    assert float((s.pmf() * w_all * loss).sum()) == pytest.approx(float(loss.mean()), rel=1e-9)
    t, w = s.sample(100_000, generator=make_generator(5))
    est = (w.double() * loss[t]).mean()
    se = (w.double() * loss[t]).std() / math.sqrt(len(t))
    assert abs(float(est - loss.mean())) < 5 * float(se)


def test_continuous_importance_weights_are_unbiased() -> None:
    s = _build("ci_gaussian", {"center": 0.3, "width": 0.4}, continuous=True, mode="importance",
               floor=0.05)  # fmt: skip
    t, w = s.sample(200_000, generator=make_generator(9))
    f = (t.double() / (T - 1)) ** 2  # ∫ u² du = 1/3 under uniform t
    vals = w.double() * f
    assert abs(float(vals.mean()) - 1 / 3) < 5 * float(vals.std()) / math.sqrt(len(t))


# --- limits -------------------------------------------------------------------------------
def _tv(p: torch.Tensor, q: torch.Tensor) -> float:
    return 0.5 * float((p - q).abs().sum())


UNIFORM = torch.full((T,), 1 / T, dtype=torch.float64)


@pytest.mark.parametrize("tail", ["resample", "uniform"])
def test_very_wide_interval_approaches_uniform(tail) -> None:
    tvs = [
        _tv(_build("ci_gaussian", {"center": 0.3, "width": w, "tail": tail}).pmf(), UNIFORM)
        for w in (1.0, 10.0, 100.0, 1000.0)
    ]
    assert all(a > b for a, b in itertools.pairwise(tvs)) and tvs[-1] < 1e-3


def test_very_wide_interval_with_clamp_piles_the_tails_on_the_ends() -> None:
    p = _build("ci_gaussian", {"center": 0.3, "width": 1000.0, "tail": "clamp"}).pmf()
    assert float(p[0]) == pytest.approx(0.5, abs=2e-3)  # clamp is not a way to get uniform
    assert float(p[-1]) == pytest.approx(0.5, abs=2e-3)


@pytest.mark.parametrize("z_center", [0.0, 1.5, -2.0])
def test_z_score_width_to_zero_approaches_uniform(z_center) -> None:
    tvs = [
        _tv(_build("ci_gaussian", {"z_l": z_center - w, "z_h": z_center + w}).pmf(), UNIFORM)
        for w in (1.0, 0.1, 0.01, 0.001)
    ]
    assert all(a > b for a, b in itertools.pairwise(tvs)) and tvs[-1] < 1e-3


def test_tail_policies_conserve_mass_and_place_it_as_named() -> None:
    params = {"center": 0.05, "width": 0.4, "q": 0.95}
    sd = 0.2 / stats.norm.ppf(0.975)
    below, inside = (
        stats.norm.cdf(-0.05 / sd),
        stats.norm.cdf(0.95 / sd) - stats.norm.cdf(-0.05 / sd),
    )
    p = {
        tail: _build("ci_gaussian", {**params, "tail": tail}).pmf()
        for tail in ("resample", "uniform", "clamp")
    }
    for q in p.values():
        assert float(q.sum()) == pytest.approx(1.0, abs=1e-12)
    cell0 = stats.norm.cdf((1 / T - 0.05) / sd) - stats.norm.cdf(-0.05 / sd)
    assert float(p["clamp"][0]) == pytest.approx(below + cell0, rel=1e-7)  # atom at t = 0
    assert float(p["resample"][0]) == pytest.approx(cell0 / inside, rel=1e-7)
    assert float(p["uniform"][0]) == pytest.approx(cell0 + (1 - inside) / T, rel=1e-7)
    assert float(p["uniform"][-1]) == pytest.approx((1 - inside) / T, rel=1e-6)


def test_floor_mixes_uniform_exactly() -> None:
    base = _build("ci_gaussian", {"center": 0.2, "width": 0.3}).pmf()
    mixed = _build("ci_gaussian", {"center": 0.2, "width": 0.3}, floor=0.25).pmf()
    torch.testing.assert_close(mixed, 0.75 * base + 0.25 / T)


def test_center_0_2_emphasises_small_t() -> None:
    s = _build("ci_gaussian", {"center": 0.2, "width": 0.3})
    mean_t = float((s.pmf() * torch.arange(T)).sum())
    assert mean_t == pytest.approx(0.2 * T, abs=1.0)


@settings(max_examples=40, deadline=None)
@given(
    center=st.floats(0.0, 1.0),
    width=st.floats(1e-3, 5.0),
    q=st.floats(0.05, 0.999),
    tail=st.sampled_from(["resample", "uniform", "clamp"]),
    floor=st.floats(0.0, 1.0),
)
def test_property_ci_gaussian_pmf_and_draws(center, width, q, tail, floor) -> None:
    s = _build("ci_gaussian", {"center": center, "width": width, "q": q, "tail": tail}, floor=floor)
    p = s.pmf()
    assert (p >= 0).all() and float(p.sum()) == pytest.approx(1.0, abs=1e-9)
    t, _ = s.sample(64, generator=make_generator(0))
    assert (p[t] > 0).all()  # never draws a timestep of zero probability


# --- loss_aware state ------------------------------------------------------------------------
def test_loss_aware_follows_improved_diffusion_formula() -> None:
    sched = DiscreteSchedule("linear", 20, warn_terminal_snr=False)
    s = build_timestep_sampler("loss_aware", schedule=sched, mode="importance")
    t = torch.arange(20)
    s.update(t[:10], torch.ones(10))  # not warmed up: still uniform
    torch.testing.assert_close(s.pmf(), torch.full((20,), 0.05, dtype=torch.float64))
    for k in range(12):  # more than history: only the last 10 count
        s.update(t, (t + 1.0) * (k + 1))
    hist = torch.stack([(t + 1.0) * (k + 1) for k in range(2, 12)], dim=1).double()
    w = hist.pow(2).mean(1).sqrt()
    expected = w / w.sum() * (1 - 0.001) + 0.001 / 20
    torch.testing.assert_close(s.pmf(), expected)
    fresh = build_timestep_sampler("loss_aware", schedule=sched, mode="importance")
    fresh.load_state_dict(json.loads(json.dumps(s.state_dict())))
    torch.testing.assert_close(fresh.pmf(), s.pmf())
    a, b = s.sample(16, generator=make_generator(1)), fresh.sample(16, generator=make_generator(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_update_is_a_no_op_for_stateless_samplers() -> None:
    s = _build("ci_gaussian", {})
    before = s.pmf().clone()
    s.update(torch.arange(10), torch.rand(10))
    assert torch.equal(s.pmf(), before) and s.state_dict() == {}


# --- drop-in use -------------------------------------------------------------------------------
def test_drop_in_drives_a_diffusers_ddpm_training_step() -> None:
    from diffusers import DDPMScheduler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scheduler = DDPMScheduler(num_train_timesteps=1000)
    g = make_generator(0)
    x0 = torch.randn(16, 1, 64, generator=g)
    noise = torch.randn(16, 1, 64, generator=g)
    timesteps = sample_timesteps(16, generator=g, center=0.2, width=0.3)
    assert timesteps.dtype == torch.int64 and timesteps.shape == (16,)
    noisy = scheduler.add_noise(x0, noise, timesteps)
    ab = scheduler.alphas_cumprod[timesteps].view(-1, 1, 1)
    torch.testing.assert_close(noisy, ab.sqrt() * x0 + (1 - ab).sqrt() * noise)
    net = torch.nn.Conv1d(1, 1, 3, padding=1)
    loss = torch.nn.functional.mse_loss(net(noisy), noise)
    loss.backward()
    assert net.weight.grad is not None and torch.isfinite(net.weight.grad).all()
    # Same generator state → same timesteps; the law is the one build_timestep_sampler gives.
    a = sample_timesteps(8, generator=make_generator(4), sampler="logit_normal", logit_std=0.5)
    b = _build("logit_normal", {"logit_std": 0.5}).sample(8, generator=make_generator(4))[0]
    assert torch.equal(a, b)


# --- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("nope", {}, "unknown timestep sampler 'nope'.*ci_gaussian"),
        ("ci_gaussian", {"c_l": 0.5, "c_h": 0.5}, "c_l < c_h"),
        ("ci_gaussian", {"c_l": 0.6, "c_h": 0.2}, "c_l < c_h"),
        ("ci_gaussian", {"center": 0.2, "width": 0.0}, "width must be positive"),
        ("ci_gaussian", {"center": 0.2, "width": -1.0}, "width must be positive"),
        ("ci_gaussian", {"center": 1.2, "width": 0.2}, "centre must lie in"),
        ("ci_gaussian", {"center": -0.1, "width": 0.2}, "centre must lie in"),
        ("ci_gaussian", {"q": 1.0}, "q must lie in"),
        ("ci_gaussian", {"q": 0.0}, "q must lie in"),
        ("ci_gaussian", {"z_l": 1.0, "z_h": -1.0}, "z_l < z_h"),
        ("ci_gaussian", {"z_l": -1.0, "z_h": 1.0, "q": 0.9}, "q applies"),
        ("ci_gaussian", {"center": 0.2, "c_h": 0.5}, "one of"),
        ("ci_gaussian", {"center": 0.2}, "together"),
        ("ci_gaussian", {"tail": "wrap"}, "unknown tail policy 'wrap'.*clamp"),
        ("ci_gaussian", {"centre": 0.2}, r"unknown parameter\(s\) \['centre'\].*center"),
        ("ci_gaussian", {"floor": -0.1}, "floor"),
        ("ci_gaussian", {"floor": 1.5}, "floor"),
        ("ci_gaussian", {"mode": "weighted"}, "unknown timestep sampling mode"),
        ("ci_gaussian", {"tail": "clamp", "continuous": True}, "point masses"),
        ("uniform", {"a": 1.0}, "valid: none"),
        ("beta", {"a": 0.0}, "a must be a positive"),
        ("logit_normal", {"logit_std": -1.0}, "logit_std must be a positive"),
        ("mode", {"mode_scale": 2.0}, "mode_scale must lie in"),
        ("lognormal", {"p_std": 0.0}, "p_std must be a positive"),
        ("lognormal", {"p_mean": 30.0, "p_std": 0.1}, "only"),
        ("loss_aware", {"history": 2.5}, "history must be a positive integer"),
        ("loss_aware", {"uniform_prob": -0.1}, "uniform_prob"),
    ],
)
def test_bad_input_says_what_is_wrong(name, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        _build(name, kwargs)


def test_config_validates_on_construction() -> None:
    with pytest.raises(ValueError, match="width must be positive"):
        TimestepSamplerConfig("ci_gaussian", params={"center": 0.5, "width": -0.1})
    with pytest.raises(ValueError, match="unknown timestep sampler"):
        TimestepSamplerConfig("gaussian")


def test_batch_size_and_generator_are_checked() -> None:
    s = _build("uniform", {})
    with pytest.raises(ValueError, match="batch_size"):
        s.sample(0, generator=make_generator(0))
    with pytest.raises(TypeError, match="Generator"):
        s.sample(4, generator=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pmf"):
        s.pdf(torch.zeros(1))
