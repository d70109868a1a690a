"""Loss weightings: oracles (diffusers compute_snr, Hang et al. per-target formulas, k-diffusion,
EDM), parameterization independence in x0 space, bad input."""

from __future__ import annotations

import dataclasses
import json
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sigdiff.denoiser import Denoiser
from sigdiff.losses import denoising_loss
from sigdiff.parameterization import Parameterization
from sigdiff.schedules import DiscreteSchedule
from sigdiff.weighting import LOSS_WEIGHTINGS, LossWeightingConfig, loss_weight, x0_weight

SCHED = DiscreteSchedule("linear", 1000)
T_IDX = torch.arange(0, 1000, 7)
SIGMA = SCHED.sigmas[T_IDX]
SNR = SIGMA.pow(-2)
KINDS = [Parameterization("eps"), Parameterization("x0"), Parameterization("v"),
         Parameterization("edm", sigma_data=0.5)]  # fmt: skip


def _diffusers_snr() -> torch.Tensor:
    from diffusers import DDPMScheduler
    from diffusers.training_utils import compute_snr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sch = DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02)
    return compute_snr(sch, T_IDX).double()


def test_snr_matches_diffusers_compute_snr() -> None:
    # diffusers works in float32: 1 − ᾱ_0 ≈ 1e-4 keeps ~4 significant digits.
    torch.testing.assert_close(SNR, _diffusers_snr(), rtol=5e-4, atol=0)


@pytest.mark.parametrize("gamma", [1.0, 5.0])
def test_min_snr_matches_hang_et_al_for_each_target(gamma) -> None:
    dsnr = _diffusers_snr()
    mins = torch.minimum(dsnr, torch.full_like(dsnr, gamma))
    expected = {"eps": mins / dsnr, "x0": mins, "v": mins / (dsnr + 1)}  # diffusers after #6307
    for kind, ref in expected.items():
        got = loss_weight("min_snr", SIGMA, parameterization=Parameterization(kind), gamma=gamma)
        torch.testing.assert_close(got, ref, rtol=5e-4, atol=1e-12)


def test_p2_on_eps_is_choi_et_al() -> None:
    got = loss_weight("p2", SIGMA, parameterization=Parameterization("eps"), k=1.0, gamma=0.5)
    torch.testing.assert_close(got, 1 / (1 + SNR).pow(0.5))


def test_soft_min_snr_reproduces_k_diffusion_on_edm() -> None:
    sd = 0.5
    got = loss_weight("soft_min_snr", SIGMA, parameterization=KINDS[3], gamma=1 / sd**2)
    kdiff = (SIGMA * sd) ** 2 / (SIGMA**2 + sd**2) ** 2  # k_diffusion.layers.weighting_soft_min_snr
    torch.testing.assert_close(got, kdiff)


def test_edm_weighting_is_the_native_edm_loss() -> None:
    torch.testing.assert_close(loss_weight("edm", SIGMA, parameterization=KINDS[3]),
                               torch.ones_like(SIGMA))  # fmt: skip
    sd = 0.5
    torch.testing.assert_close(
        x0_weight("edm", SIGMA, parameterization=KINDS[3]), (SIGMA**2 + sd**2) / (SIGMA * sd) ** 2
    )


def test_snr_weighting_is_the_eps_loss_and_none_is_native() -> None:
    for p in KINDS:
        assert torch.equal(loss_weight("none", SIGMA, parameterization=p), torch.ones_like(SIGMA))
    torch.testing.assert_close(
        loss_weight("snr", SIGMA, parameterization=Parameterization("eps")), torch.ones_like(SIGMA)
    )


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(2, 2, 3, padding=1)

    def forward(self, x, c_noise, cond=None):
        return self.conv(x) + 0.01 * c_noise.view(-1, 1, 1).float()


@pytest.mark.parametrize("name", sorted(set(LOSS_WEIGHTINGS) - {"none"}))
def test_weighted_native_loss_is_the_same_x0_objective_for_every_parameterization(name) -> None:
    """For a fixed x0-space error, loss_weight · native loss = w_x0 · ‖D − x0‖² whatever the target."""
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(6, 2, 16, generator=g), torch.randn(6, 2, 16, generator=g)
    sigma = SCHED.sigmas[torch.tensor([0, 50, 200, 400, 700, 999])].float()
    net = _Net()
    values = []
    for p in KINDS:
        d = Denoiser(net, p, schedule=SCHED)
        native = denoising_loss(d, x0, sigma, noise)
        x0_err = (d(x0 + sigma.view(-1, 1, 1) * noise, sigma) - x0).pow(2).flatten(1).mean(1)
        w = loss_weight(name, sigma, parameterization=p)
        torch.testing.assert_close(w * native, x0_weight(name, sigma, parameterization=p) * x0_err,
                                   rtol=2e-4, atol=1e-6)  # fmt: skip
        if p.kind != "edm":
            values.append(w * native / x0_err)
    for v in values[1:]:  # VP family: one x0-space weight
        torch.testing.assert_close(v, values[0], rtol=2e-4, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(gamma=st.floats(0.01, 100.0), log_sigma=st.floats(-6.0, 6.0))
def test_property_min_snr_caps_the_x0_weight(gamma, log_sigma) -> None:
    sigma = torch.tensor([log_sigma], dtype=torch.float64).exp()
    w = x0_weight("min_snr", sigma, parameterization=Parameterization("v"), gamma=gamma)
    soft = x0_weight("soft_min_snr", sigma, parameterization=Parameterization("v"), gamma=gamma)
    assert float(w) <= gamma * (1 + 1e-12) and float(w) <= float(sigma.pow(-2)) * (1 + 1e-12)
    assert float(soft) <= float(w) * (1 + 1e-9)  # the soft minimum lies below the hard one
    assert float(soft) >= float(w) / 2 * (1 - 1e-9)


def test_config_round_trip_and_weight() -> None:
    cfg = LossWeightingConfig("min_snr", params={"gamma": 3.0})
    back = LossWeightingConfig(**json.loads(json.dumps(dataclasses.asdict(cfg))))
    assert back == cfg
    p = Parameterization("v")
    torch.testing.assert_close(
        back.weight(SIGMA, p), loss_weight("min_snr", SIGMA, parameterization=p, gamma=3.0)
    )


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("min-snr", {}, "unknown loss weighting 'min-snr'.*min_snr"),
        ("min_snr", {"gama": 5.0}, r"unknown parameter\(s\) \['gama'\].*gamma"),
        ("min_snr", {"gamma": -1.0}, "gamma must be positive"),
        ("min_snr", {"gamma": 0.0}, "gamma must be positive"),
        ("soft_min_snr", {"gamma": -2.0}, "gamma must be positive"),
        ("p2", {"gamma": -0.5}, "gamma must not be negative"),
        ("p2", {"k": -1.0}, "k must not be negative"),
        ("p2", {"k": float("nan")}, "finite"),
        ("none", {"gamma": 1.0}, "valid: none"),
    ],
)
def test_bad_input(name, params, match) -> None:
    with pytest.raises(ValueError, match=match):
        loss_weight(name, SIGMA, parameterization=Parameterization("eps"), **params)
    with pytest.raises(ValueError, match=match):
        LossWeightingConfig(name, params=params)
