"""The diffusion core against diffusers (an independent implementation in VP/α-β form)."""

from __future__ import annotations

import warnings

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from sigdiff import samplers  # noqa: E402
from sigdiff.denoiser import Denoiser  # noqa: E402
from sigdiff.parameterization import Parameterization  # noqa: E402
from sigdiff.schedules import DiscreteSchedule, append_zero, ddpm_timesteps  # noqa: E402

# diffusers computes its schedules in float32: agreement is to float32 rounding.
SCHEDULE_ATOL = 1e-6
# Whole sampling trajectories in float32 accumulate rounding over tens of steps.
TRAJECTORY_ATOL = 2e-4

DIFFUSERS_NAMES = {"linear": "linear", "scaled_linear": "scaled_linear",
                   "cosine": "squaredcos_cap_v2", "sigmoid": "sigmoid"}


def _schedule(name: str = "linear", **kw: object) -> DiscreteSchedule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return DiscreteSchedule(name, **kw)  # type: ignore[arg-type]


class EpsNet(torch.nn.Module):
    """A fixed, smooth, nonlinear 'network' of (x_vp, t): an oracle model both codebases share."""

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None):
        t = torch.as_tensor(t, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        return 0.6 * torch.tanh(x) + 0.2 * torch.sin(3 * x + t / 200.0)


def _model_output(x_vp: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
    tt = torch.full((x_vp.shape[0],), float(t)) if not torch.is_tensor(t) or t.ndim == 0 else t
    return EpsNet()(x_vp, tt)


@pytest.mark.parametrize("name", list(DIFFUSERS_NAMES))
@pytest.mark.parametrize("zero_snr", [False, True])
def test_alphas_cumprod_match_diffusers(name: str, zero_snr: bool) -> None:
    ours = _schedule(name, zero_terminal_snr=zero_snr)
    ref = diffusers.DDPMScheduler(beta_schedule=DIFFUSERS_NAMES[name],
                                  rescale_betas_zero_snr=zero_snr)
    torch.testing.assert_close(ours.alphas_cumprod.float(), ref.alphas_cumprod,
                               atol=SCHEDULE_ATOL, rtol=0)
    torch.testing.assert_close(ours.betas.float(), ref.betas, atol=SCHEDULE_ATOL, rtol=1e-5)


def test_add_noise_matches_diffusers() -> None:
    sched = _schedule()
    ref = diffusers.DDPMScheduler()
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(8, 2, 64, generator=g)
    noise = torch.randn(8, 2, 64, generator=g)
    t = torch.randint(0, 1000, (8,), generator=g)
    sigma = sched.sigmas[t].float()
    _, _, c_in = Parameterization("eps").scalings(sigma)
    ours = c_in[:, None, None] * (x0 + sigma[:, None, None] * noise)  # what the network sees
    torch.testing.assert_close(ours, ref.add_noise(x0, noise, t), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_timestep_spacings_match_diffusers(spacing: str) -> None:
    for steps in (1, 7, 17, 50, 1000):
        ref = diffusers.DDIMScheduler(timestep_spacing=spacing)
        ref.set_timesteps(steps)
        assert torch.equal(ddpm_timesteps(1000, steps, spacing=spacing), ref.timesteps)


def _run_diffusers(scheduler, z: torch.Tensor, *, seed: int, **step_kw: object) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    sample = z * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        model_in = scheduler.scale_model_input(sample, t)
        out = _model_output(model_in, t)
        sample = scheduler.step(out, t, sample, generator=g, **step_kw).prev_sample
    return sample


def _run_ours(fn, sched: DiscreteSchedule, timesteps: torch.Tensor, z: torch.Tensor, *,
              seed: int, **kw: object) -> torch.Tensor:
    sigmas = append_zero(sched.sigmas[timesteps])
    den = Denoiser(EpsNet(), Parameterization("eps"), schedule=sched)
    x = z * (1 + sigmas[0] ** 2).sqrt().float()  # DDPM's x_T ~ N(0, I) in σ units
    g = torch.Generator().manual_seed(seed)  # float32 draws, like diffusers' randn_tensor
    return fn(den, x, sigmas, generator=g, **kw)


def _z(shape: tuple[int, ...] = (6, 1, 32)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(123))


@pytest.mark.parametrize("steps", [1000, 20])
def test_ddpm_ancestral_matches_diffusers(steps: int) -> None:
    sched = _schedule()
    ref = diffusers.DDPMScheduler(clip_sample=False, variance_type="fixed_small")
    ref.set_timesteps(steps)
    z = _z()
    expected = _run_diffusers(ref, z, seed=7)
    got = _run_ours(samplers.sample_ddpm, sched, ref.timesteps, z, seed=7)
    torch.testing.assert_close(got, expected, atol=TRAJECTORY_ATOL, rtol=TRAJECTORY_ATOL)


def test_single_ddpm_step_posterior_mean_and_variance() -> None:
    """One step from t to t−1: posterior mean and variance (Ho et al. 2020, eq. 7)."""
    sched = _schedule()
    ref = diffusers.DDPMScheduler(clip_sample=False, variance_type="fixed_small")
    t = 400
    x_vp = _z()
    eps = _model_output(x_vp, t)
    ab, ab_prev = sched.alphas_cumprod[t], sched.alphas_cumprod[t - 1]
    s, s_prev = sched.sigmas[t].item(), sched.sigmas[t - 1].item()
    sigma_down, sigma_up = samplers.ancestral_step(s, s_prev, 1.0)
    var_ref = ref._get_variance(t)
    # σ_up is the DDPM std expressed in σ units: σ_up² ᾱ_{t−1} = β̃_t
    torch.testing.assert_close(torch.tensor(sigma_up**2 * ab_prev.item()).float(),
                               var_ref.float(), atol=1e-8, rtol=1e-5)
    x0_hat = (x_vp - (1 - ab).sqrt() * eps) / ab.sqrt()
    mean_ours = (x0_hat + (x_vp / ab.sqrt() - x0_hat) * sigma_down / s) * ab_prev.sqrt()
    coef_x0 = ab_prev.sqrt() * ref.betas[t] / (1 - ab)
    coef_xt = ref.alphas[t].sqrt() * (1 - ab_prev) / (1 - ab)
    torch.testing.assert_close(mean_ours.float(), (coef_x0 * x0_hat + coef_xt * x_vp).float(),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize(("spacing", "steps"), [("leading", 17), ("trailing", 10)])
def test_ddim_matches_diffusers(eta: float, spacing: str, steps: int) -> None:
    sched = _schedule()
    ref = diffusers.DDIMScheduler(clip_sample=False, set_alpha_to_one=True,
                                  timestep_spacing=spacing)
    ref.set_timesteps(steps)
    z = _z()
    expected = _run_diffusers(ref, z, seed=3, eta=eta)
    got = _run_ours(samplers.sample_ddim, sched, ref.timesteps, z, seed=3, eta=eta)
    torch.testing.assert_close(got, expected, atol=TRAJECTORY_ATOL, rtol=TRAJECTORY_ATOL)


@pytest.mark.parametrize("steps", [5, 10, 25])
def test_dpmpp_2m_matches_diffusers(steps: int) -> None:
    sched = _schedule()
    ref = diffusers.DPMSolverMultistepScheduler(
        algorithm_type="dpmsolver++", solver_order=2, lower_order_final=True,
        final_sigmas_type="zero", thresholding=False)
    ref.set_timesteps(steps)
    z = _z()
    expected = _run_diffusers(ref, z, seed=0)
    got = _run_ours(samplers.sample_dpmpp_2m, sched, ref.timesteps, z, seed=0)
    torch.testing.assert_close(got, expected, atol=TRAJECTORY_ATOL, rtol=TRAJECTORY_ATOL)


def test_euler_matches_diffusers_euler_discrete() -> None:
    sched = _schedule()
    ref = diffusers.EulerDiscreteScheduler(timestep_spacing="leading")
    ref.set_timesteps(30)
    z = _z()
    expected = _run_diffusers(ref, z, seed=0)
    got = _run_ours(samplers.sample_euler, sched, ref.timesteps.round().long(), z, seed=0)
    torch.testing.assert_close(got, expected, atol=TRAJECTORY_ATOL, rtol=TRAJECTORY_ATOL)
