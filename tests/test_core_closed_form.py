"""The diffusion core against closed forms, properties and its own contracts."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sigdiff import samplers
from sigdiff.denoiser import Denoiser
from sigdiff.losses import denoising_loss
from sigdiff.parameterization import (
    Parameterization,
    eps_to_x0,
    v_to_x0,
    x0_to_eps,
    x0_to_v,
)
from sigdiff.schedules import (
    DiscreteSchedule,
    TerminalSNRWarning,
    ddpm_timesteps,
    karras_sigmas,
    make_betas,
)

MU, S = 0.7, 0.5  # data ~ N(μ, s²) in every coordinate
N_SAMPLES = 100_000
# Discretisation budgets: first-order solvers get 250 steps, second-order ones 40.
STEPS = {"euler": 250, "ddim": 250, "ddpm": 250, "heun": 40, "dpmpp_2m": 40}
# Tolerances: the prior draw is standardised exactly, so the deterministic solvers' error is pure
# discretisation error (measured ≤ 1.3% on the std). Ancestral DDPM plugs the posterior *mean*
# of x0 into the posterior, which shrinks the variance by O(1/steps) (measured −2.3% / −3.0% at
# 250 steps on the two grids) and adds Monte-Carlo error from its injected noise (≈ 0.3%).
TOLERANCES = {  # name: (|mean error|, |relative std error|)
    "euler": (0.005, 0.02), "ddim": (0.005, 0.02), "heun": (0.005, 0.02),
    "dpmpp_2m": (0.005, 0.02), "ddpm": (0.01, 0.04),
}


def gaussian_denoiser(x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor | None = None):
    """The ideal denoiser for N(μ, s²) data: E[x0 | x] = μ + s²/(s²+σ²)(x − μ)."""
    s2 = sigma.reshape(-1, *([1] * (x.ndim - 1))) ** 2
    return MU + S**2 / (S**2 + s2) * (x - MU)


def _schedule(**kw: object) -> DiscreteSchedule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TerminalSNRWarning)
        return DiscreteSchedule(**kw)  # type: ignore[arg-type]


def _grid(kind: str, steps: int) -> torch.Tensor:
    if kind == "karras":
        return karras_sigmas(steps, sigma_min=0.002, sigma_max=80.0)
    return _schedule().sampling_sigmas(steps, spacing="trailing")


@pytest.mark.parametrize("name", sorted(samplers.SAMPLERS))
@pytest.mark.parametrize("grid", ["karras", "ddpm_trailing"])
def test_every_sampler_reproduces_gaussian_data(name: str, grid: str) -> None:
    sigmas = _grid(grid, STEPS[name])
    g = torch.Generator().manual_seed(0)
    z = torch.randn(N_SAMPLES, 1, 1, generator=g, dtype=torch.float64)
    z = (z - z.mean()) / z.std()  # exactly the prior's first two moments
    x = MU + z * math.sqrt(sigmas[0].item() ** 2 + S**2)  # the exact marginal at σ_max
    out = samplers.get_sampler(name)(gaussian_denoiser, x, sigmas, generator=g)
    mean_tol, std_tol = TOLERANCES[name]
    assert abs(out.mean().item() - MU) < mean_tol
    assert abs(out.std().item() / S - 1) < std_tol


def test_ddim_eta0_is_euler_and_eta1_is_ddpm() -> None:
    sigmas = _grid("ddpm_trailing", 40)
    x = torch.randn(64, 2, 16, generator=torch.Generator().manual_seed(1)) * 160
    run = lambda fn, **kw: fn(gaussian_denoiser, x, sigmas,  # noqa: E731
                              generator=torch.Generator().manual_seed(5), **kw)
    assert torch.equal(run(samplers.sample_ddim, eta=0.0), run(samplers.sample_euler))
    assert torch.equal(run(samplers.sample_ddim, eta=1.0), run(samplers.sample_ddpm))


def test_ddpm_direct_alpha_beta_implementation() -> None:
    """DDPM ancestral with σ_t² = β̃_t written directly in α/β form (Ho et al. 2020, Alg. 2)."""
    sched = _schedule()
    ab = sched.alphas_cumprod
    x_vp = torch.randn(256, 1, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    g = torch.Generator().manual_seed(9)
    x = x_vp.clone()
    for t in range(999, -1, -1):
        sigma = sched.sigmas[t].expand(x.shape[0])
        x0 = gaussian_denoiser(x / ab[t].sqrt(), sigma)  # the denoiser works in σ units
        ab_prev = ab[t - 1] if t > 0 else torch.tensor(1.0, dtype=torch.float64)
        beta = 1 - ab[t] / ab_prev
        mean = (ab_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - ab_prev) * x) / (1 - ab[t])
        if t > 0:
            var = (1 - ab_prev) / (1 - ab[t]) * beta
            mean = mean + var.sqrt() * torch.randn(x.shape, generator=g, dtype=x.dtype)
        x = mean
    ours = samplers.sample_ddpm(gaussian_denoiser, x_vp / ab[-1].sqrt(),
                                sched.sampling_sigmas(1000), generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(ours, x, atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("name", sorted(samplers.SAMPLERS))
def test_same_seed_gives_bitwise_identical_samples(name: str) -> None:
    sigmas = karras_sigmas(8, sigma_min=0.01, sigma_max=20.0)
    outs = []
    for _ in range(2):
        g = torch.Generator().manual_seed(42)
        x = samplers.prior_noise((4, 3, 10), sigma_max=20.0, generator=g)
        outs.append(samplers.get_sampler(name)(gaussian_denoiser, x, sigmas, generator=g))
    assert torch.equal(outs[0], outs[1])


sigma_st = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(sigma=sigma_st, seed=st.integers(0, 2**31 - 1))
def test_eps_x0_v_conversions_round_trip(sigma: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(3, 2, 5, generator=g, dtype=torch.float64)
    eps = torch.randn(3, 2, 5, generator=g, dtype=torch.float64)
    s = torch.full((3,), sigma, dtype=torch.float64)
    x = x0 + sigma * eps
    torch.testing.assert_close(eps_to_x0(x, x0_to_eps(x, x0, s), s), x0)
    torch.testing.assert_close(v_to_x0(x, x0_to_v(x, x0, s), s), x0, atol=1e-9, rtol=1e-7)


@pytest.mark.parametrize("kind", ["eps", "x0", "v", "edm"])
@settings(max_examples=30, deadline=None)
@given(sigma=sigma_st)
def test_denoiser_is_exact_when_the_network_outputs_its_target(kind: str, sigma: float) -> None:
    """D(x; σ) = x0 whenever F outputs the parameterization's target: checks c_skip/c_out/c_in."""
    param = Parameterization(kind, sigma_data=0.5 if kind == "edm" else 1.0)  # type: ignore[arg-type]
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 1, 8, generator=g, dtype=torch.float64)
    noise = torch.randn(2, 1, 8, generator=g, dtype=torch.float64)
    s = torch.full((2,), sigma, dtype=torch.float64)
    target = param.target(x0, noise, s)

    class Oracle(torch.nn.Module):
        def forward(self, x_in, c_noise, cond=None):
            _, _, c_in = param.scalings(s)
            torch.testing.assert_close(x_in, (x0 + sigma * noise) * c_in[:, None, None])
            return target

    den = Denoiser(Oracle(), param, schedule=_schedule())
    torch.testing.assert_close(den(x0 + sigma * noise, s), x0, atol=1e-9, rtol=1e-6)
    loss = denoising_loss(den, x0, s, noise)
    assert loss.shape == (2,)
    assert torch.all(loss == 0)


def test_loss_is_per_example_and_weighted() -> None:
    net = torch.nn.Conv1d(1, 1, 3, padding=1)
    den = Denoiser(lambda x, c, cond=None: net(x), Parameterization("eps"),  # type: ignore[arg-type]
                   schedule=_schedule())
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(5, 1, 16, generator=g), torch.randn(5, 1, 16, generator=g)
    sigma = torch.linspace(0.1, 10, 5)
    loss = denoising_loss(den, x0, sigma, noise)
    single = torch.stack([denoising_loss(den, x0[i:i + 1], sigma[i:i + 1], noise[i:i + 1])[0]
                          for i in range(5)])
    torch.testing.assert_close(loss, single)
    w = torch.arange(5.0)
    torch.testing.assert_close(denoising_loss(den, x0, sigma, noise, weight=w), loss * w)


@settings(max_examples=50, deadline=None)
@given(T=st.integers(2, 2000), frac=st.floats(0.0, 1.0),
       spacing=st.sampled_from(["leading", "trailing", "linspace"]),
       name=st.sampled_from(["linear", "scaled_linear", "cosine", "sigmoid"]))
def test_ddpm_grids_are_monotone_and_end_at_zero(T: int, frac: float, spacing: str, name: str) -> None:
    steps = max(1, round(frac * T))
    ts = ddpm_timesteps(T, steps, spacing=spacing)  # type: ignore[arg-type]
    assert len(ts) == steps and ts.min() >= 0 and ts.max() < T
    assert torch.all(ts[:-1] > ts[1:]), "timesteps strictly decreasing, no duplicates"
    sched = _schedule(name=name, num_timesteps=T)
    sig = sched.sampling_sigmas(steps, spacing=spacing)  # type: ignore[arg-type]
    assert sig[-1] == 0 and torch.all(sig[:-1] > sig[1:])


@settings(max_examples=50, deadline=None)
@given(steps=st.integers(1, 500), smin=st.floats(1e-4, 1.0), ratio=st.floats(1.01, 1e5),
       rho=st.floats(0.5, 10))
def test_karras_grid_monotone_endpoints(steps: int, smin: float, ratio: float, rho: float) -> None:
    sig = karras_sigmas(steps, sigma_min=smin, sigma_max=smin * ratio, rho=rho)
    assert len(sig) == steps + 1 and sig[-1] == 0
    assert math.isclose(sig[0].item(), smin * ratio, rel_tol=1e-7)
    if steps > 1:
        assert math.isclose(sig[-2].item(), smin, rel_tol=1e-7)
    assert torch.all(sig[:-1] > sig[1:])


def test_continuous_time_agrees_with_discrete_and_inverts() -> None:
    sched = _schedule(name="cosine")
    t = torch.arange(1000)
    torch.testing.assert_close(sched.sigma_at(t.double() / 999.0), sched.sigmas, rtol=1e-10, atol=0)
    tf = torch.rand(100, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 999
    torch.testing.assert_close(sched.timestep(sched.sigma(tf)), tf, rtol=0, atol=1e-9)
    torch.testing.assert_close(sched.log_snr, -2 * sched.sigmas.log())


def test_snr_crosses_one_near_t259_on_linear_schedule() -> None:
    crossing = int((_schedule().log_snr > 0).sum())  # steps with SNR > 1
    assert crossing in (259, 260)


def test_terminal_snr_warning_and_zero_snr_rescale() -> None:
    with pytest.warns(TerminalSNRWarning, match="not pure noise"):
        DiscreteSchedule("scaled_linear", beta_start=0.00085, beta_end=0.012)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TerminalSNRWarning)
        DiscreteSchedule("linear")  # reaches SNR 4e-5: no warning
        zs = DiscreteSchedule("scaled_linear", beta_start=0.00085, beta_end=0.012,
                              zero_terminal_snr=True)
    assert zs.alphas_cumprod[-1].item() < 1e-7


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: make_betas("quadratic", 100), "valid choices: cosine, linear"),
        (lambda: make_betas("linear", 100, beta_end=1.5), "beta_end must lie in"),
        (lambda: make_betas("linear", 100, beta_start=0.0), "beta_start must lie in"),
        (lambda: ddpm_timesteps(1000, 0), "positive integer"),
        (lambda: ddpm_timesteps(100, 101), "cannot exceed"),
        (lambda: ddpm_timesteps(100, 10, spacing="middle"), "valid choices: leading, linspace"),  # type: ignore[arg-type]
        (lambda: karras_sigmas(0, sigma_min=0.1, sigma_max=1), "positive integer"),
        (lambda: samplers.get_sampler("dpm_fast"), "valid choices: ddim, ddpm, dpmpp_2m"),
        (lambda: Parameterization("score"), "valid choices: edm, eps, v, x0"),  # type: ignore[arg-type]
        (lambda: Parameterization("edm", sigma_data=0.0), "sigma_data must be positive"),
        (lambda: Denoiser(torch.nn.Identity(), Parameterization("eps")), "needs the schedule"),
    ],
)
def test_bad_configuration_names_the_valid_choices(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_sampler_rejects_bad_grid_and_missing_generator() -> None:
    x = torch.zeros(2, 1, 4)
    with pytest.raises(ValueError, match="end at 0"):
        samplers.sample_euler(gaussian_denoiser, x, torch.tensor([1.0, 0.5]))
    with pytest.raises(ValueError, match="explicit generator"):
        samplers.sample_ddpm(gaussian_denoiser, x, torch.tensor([1.0, 0.0]))
