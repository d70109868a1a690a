"""Learning-contribution analysis and the `sigdiff timesteps show` command."""

from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner
from sigdiff.cli.timesteps import timesteps

from sigdiff._utils import make_generator
from sigdiff.contribution import (
    format_summary,
    learning_contribution,
    plot_contribution,
    timestep_summary,
)
from sigdiff.denoiser import Denoiser
from sigdiff.parameterization import Parameterization
from sigdiff.schedules import DiscreteSchedule
from sigdiff.timesteps import TIMESTEP_SAMPLERS, build_timestep_sampler
from sigdiff.weighting import LossWeightingConfig

LINEAR = DiscreteSchedule("linear", 1000)
T = LINEAR.T


def _sampler(name="uniform", **kw):
    return build_timestep_sampler(name, schedule=LINEAR, **kw)


def test_uniform_summary_is_exact() -> None:
    s = timestep_summary(_sampler())
    assert s["mean_t"] == pytest.approx(499.5)
    assert s["t_snr_1"] == int((LINEAR.log_snr > 0).sum()) == 259  # paper.md: SNR = 1 at t ≈ 259
    assert s["mass_snr_gt_1"] == pytest.approx(0.259)
    assert s["ess"] == pytest.approx(T) and s["kish_efficiency"] == pytest.approx(1.0)


def test_ci_gaussian_summary_moves_mass_to_signal_dominated_steps() -> None:
    sampler = _sampler("ci_gaussian", center=0.2, width=0.3)
    s = timestep_summary(sampler)
    p = sampler.pmf()
    assert s["mean_t"] == pytest.approx(200.5, abs=1.0)
    assert s["mass_snr_gt_1"] > 0.75
    assert s["ess"] == pytest.approx(float(1 / (p**2).sum()))
    assert s["ess"] < 0.3 * T


def test_kish_efficiency_of_a_two_level_law() -> None:
    # p = 2/T on the first half, 0 on the second, mixed 50/50 with uniform by the floor:
    # p_t = 1.5/T or 0.5/T, w = 1/(T p) = 2/3 or 2; Kish = (Σ p w)² / Σ p w² = 1/(0.75·4/9 + 0.25·4)
    sampler = _sampler("beta", a=1.0, b=1.0, floor=0.5)  # beta(1,1) = uniform -> sanity first
    assert timestep_summary(sampler)["kish_efficiency"] == pytest.approx(1.0)
    p = torch.where(torch.arange(T) < T // 2, 1.5 / T, 0.5 / T).double()
    w = 1 / (T * p)
    expected = float((p * w).sum() ** 2 / (p * w**2).sum())
    assert expected == pytest.approx(1 / (0.75 * 4 / 9 + 0.25 * 4))
    law = _sampler("loss_aware", uniform_prob=0.0)
    law.update(
        torch.arange(T).repeat(10), torch.where(torch.arange(T) < T // 2, 3.0, 1.0).repeat(10)
    )
    assert timestep_summary(law)["kish_efficiency"] == pytest.approx(expected)


def test_closed_form_dataset_matches_the_formula() -> None:
    ds = learning_contribution(_sampler(), bins=50)
    assert ds.sizes["bin"] == 50 and ds.attrs["estimator"] == "gaussian"
    assert float(ds.mass.sum()) == pytest.approx(1.0)
    assert float(ds.share.sum()) == pytest.approx(1.0)
    # eps, N(0, 1) data, Wiener filter: native loss 1/(1 + σ²), gradient 2·sqrt(loss).
    sig = LINEAR.sigmas
    grad = 2 * (1 / (1 + sig**2)).sqrt()
    share = (grad / grad.sum()).reshape(50, -1).sum(1)
    torch.testing.assert_close(torch.from_numpy(ds.share.values), share)
    assert ds.attrs["share_snr_gt_1"] == pytest.approx(float(grad[:259].sum() / grad.sum()))
    assert (ds.t_stop - ds.t_start == 20).all()


def test_importance_mode_keeps_the_uniform_contributions() -> None:
    uniform = learning_contribution(_sampler(), weighting=LossWeightingConfig("min_snr"))
    importance = learning_contribution(
        _sampler("ci_gaussian", center=0.2, width=0.3, mode="importance", floor=0.05),
        weighting=LossWeightingConfig("min_snr"),
    )
    torch.testing.assert_close(
        torch.from_numpy(importance.share.values), torch.from_numpy(uniform.share.values)
    )
    emphasis = learning_contribution(_sampler("ci_gaussian", center=0.2, width=0.3))
    assert emphasis.attrs["share_snr_gt_1"] > uniform.attrs["share_snr_gt_1"]


class _IdealEps(torch.nn.Module):
    """The Bayes-optimal ε-predictor for N(0, 1) data, times a learnable gain (1 at the optimum)."""

    def __init__(self, schedule: DiscreteSchedule) -> None:
        super().__init__()
        self.schedule = schedule
        self.gain = torch.nn.Parameter(torch.ones(()))

    def forward(self, x_in, c_noise, cond=None):
        sigma = self.schedule.sigma(c_noise.double()).float().view(-1, 1, 1)
        return self.gain * sigma / (1 + sigma**2).sqrt() * x_in  # ε̂ = σ/(1+σ²)·x


class _Zero(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gain = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x_in, c_noise, cond=None):
        return self.gain * x_in


def test_measured_loss_of_the_ideal_denoiser_matches_the_closed_form() -> None:
    data = torch.randn(64, 1, 2048, generator=make_generator(0))
    den = Denoiser(_IdealEps(LINEAR), Parameterization("eps"), schedule=LINEAR)
    measured = learning_contribution(_sampler(), denoiser=den, data=data, bins=10,
                                     samples_per_bin=4, generator=make_generator(1))  # fmt: skip
    closed = learning_contribution(_sampler(), bins=10)
    assert measured.attrs["estimator"] == "model"
    # Bins are wide (100 steps) and t is drawn inside them: compare loosely.
    assert torch.allclose(torch.from_numpy(measured.loss.values),
                          torch.from_numpy(closed.loss.values), atol=0.08)  # fmt: skip


def test_measured_gradient_norm_has_the_analytic_value() -> None:
    """F = a·c_in·x at a = 0: ∂/∂a mean((a c_in x − ε)²) = −2 mean(ε·c_in·x) ≈ −2σ/sqrt(1+σ²)."""
    data = torch.randn(64, 1, 4096, generator=make_generator(2))
    den = Denoiser(_Zero(), Parameterization("eps"), schedule=LINEAR)
    ds = learning_contribution(_sampler(), denoiser=den, data=data, bins=5, samples_per_bin=6,
                               generator=make_generator(3))  # fmt: skip
    sig = LINEAR.sigmas
    expected = (2 * sig / (1 + sig**2).sqrt()).reshape(5, -1).mean(1)
    assert torch.allclose(torch.from_numpy(ds.grad_norm.values), expected, atol=0.1)
    assert torch.allclose(torch.from_numpy(ds.loss.values), torch.ones(5, dtype=torch.float64),
                          atol=0.05)  # fmt: skip


def test_plot_writes_a_png(tmp_path) -> None:
    ds = learning_contribution(_sampler("ci_gaussian", center=0.2, width=0.3))
    path = plot_contribution(ds, tmp_path / "sub" / "profile.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    assert "mean t" in format_summary(ds)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="bins must be"):
        learning_contribution(_sampler(), bins=0)
    with pytest.raises(ValueError, match="both denoiser= and data="):
        learning_contribution(_sampler(), data=torch.zeros(2, 1, 8))
    den = Denoiser(_Zero(), Parameterization("eps"), schedule=LINEAR)
    with pytest.raises(ValueError, match="generator"):
        learning_contribution(_sampler(), denoiser=den, data=torch.zeros(2, 1, 8))


# --- CLI ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TIMESTEP_SAMPLERS))
def test_show_runs_for_every_sampler(name, tmp_path) -> None:
    out = tmp_path / f"{name}.png"
    res = CliRunner().invoke(timesteps, ["show", "--sampler", name, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "mean t" in res.output and "SNR > 1 mass" in res.output and out.exists()


def test_show_ci_gaussian_centre_0_2(tmp_path) -> None:
    out = tmp_path / "profile.png"
    args = ["show", "--sampler", "ci_gaussian", "--center", "0.2", "--width", "0.3",
            "--schedule", "linear", "--out", str(out), "--json"]  # fmt: skip
    res = CliRunner().invoke(timesteps, args)
    assert res.exit_code == 0, res.output
    payload = json.loads(res.output)
    assert payload["params"]["center"] == 0.2 and payload["png"] == str(out)
    assert math.isclose(payload["summary"]["mean_t"], 200.5, abs_tol=1.0)


def test_show_dry_run_writes_nothing(tmp_path) -> None:
    out = tmp_path / "x.png"
    res = CliRunner().invoke(timesteps, ["show", "--param", "tail=uniform", "--out", str(out),
                                         "--dry-run"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["params"]["tail"] == "uniform" and not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--center", "1.3", "--width", "0.3"], "centre must lie in [0, 1]"),
        (["--sampler", "beta", "--center", "0.2"], "unknown parameter(s) ['center']"),
        (["--tail", "wrap"], "unknown tail policy 'wrap'"),
        (["--floor", "-0.1"], "floor"),
        (["--weighting", "min_snr", "--weighting-param", "gamma=-1"], "gamma must be positive"),
        (["--param", "q"], "is not KEY=VALUE"),
        (["--sampler", "gauss"], "Invalid value"),
        (["--bins", "0"], "bins must be"),
    ],
)
def test_show_user_mistakes_exit_cleanly(args, message, tmp_path) -> None:
    res = CliRunner().invoke(timesteps, ["show", "--out", str(tmp_path / "x.png"), *args])
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
