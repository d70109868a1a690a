"""The learning-contribution analysis: how much of the training signal each timestep carries.

The paper's argument (Vu et al. 2026, ../shared/paper.md) is that uniform timestep sampling gives
unequal *gradient* contributions across the trajectory because the SNR differs between steps. For
a schedule, a timestep sampler (p_t and its weights w_t), a loss weighting λ_t and a
parameterization, the expected weighted-loss gradient decomposes over timesteps as

    contribution_t = p_t · w_t · λ_t · g_t,        share_t = contribution_t / Σ_s contribution_s

where g_t = E‖∇_θ L_t‖ is the mean per-example gradient norm of the *native* loss at step t
(the weights are positive scalars, so they scale the norm). ``share`` is each step's fraction of
the total learning signal; ``loss_share`` is the same with the mean loss in place of g_t.

Two estimators of the loss and g_t:

- ``model`` (a ``Denoiser`` and data given): Monte Carlo per bin — per-example native loss and
  per-example ‖∇_θ L‖ by autograd at timesteps drawn uniformly inside the bin;
- ``gaussian`` (no model, no training): the Bayes-optimal denoiser of Gaussian data
  x0 ~ N(0, s²I), D* = s²/(s² + σ²)·x, whose x0-space MSE is s²σ²/(s² + σ²); the native loss is
  that over c_out², and g_t is the norm of its gradient with respect to the network output F,
  2·sqrt(native loss) per coordinate. This assumes ∂F/∂θ is of comparable size at every step —
  what the c_in/c_out preconditioning aims for — so read it as a proxy, not a measurement.

Summary statistics (attributes of the returned dataset):

- ``mean_t``: E[t] under the sampler (cell midpoints for continuous samplers);
- ``mass_snr_gt_1``: P(SNR_t > 1), the signal-dominated steps (t < ``t_snr_1``);
- ``ess`` = 1/Σ_t p_t², the effective number of distinct timesteps (T for uniform), and
  ``ess_fraction`` = ess/T;
- ``kish_efficiency`` = (E_p[w])²/E_p[w²] for the importance weights w_t = 1/(T·p_t): the Kish
  effective sample size per draw of an estimate of the *uniform* objective under this proposal
  (1 for uniform; what ``importance`` mode pays in variance, or what emphasis gives up);
- ``share_snr_gt_1``: the fraction of the learning signal from SNR > 1 steps;
- ``signal_mean_u``: E[t]/(T−1) under the learning signal (the contribution profile), which,
  unlike ``mean_u``, counts a loss weighting: min-SNR-γ on uniform t puts it at small t.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from sigdiff.denoiser import Denoiser
from sigdiff.losses import denoising_loss
from sigdiff.parameterization import Parameterization
from sigdiff.timesteps import TimestepSampler
from sigdiff.weighting import LossWeightingConfig

__all__ = ["format_summary", "learning_contribution", "plot_contribution", "timestep_summary"]


def timestep_summary(sampler: TimestepSampler) -> dict[str, float]:
    """Mean t, mass where SNR > 1, effective sample sizes (module docstring), as floats."""
    p = sampler.pmf()
    T = sampler.T
    steps = torch.arange(T, dtype=torch.float64)
    if sampler.continuous:  # cell k covers fractional t in [k, k+1)·(T−1)/T
        steps = (steps + 0.5) * (T - 1) / T
    snr_gt_1 = sampler.schedule.log_snr > 0
    w = 1.0 / (T * p)
    kish = float((p * w).sum() ** 2 / (p * w**2).sum()) if bool((p > 0).all()) else 0.0
    ess = float(1.0 / (p**2).sum())
    return {
        "mean_t": float((p * steps).sum()),
        "mean_u": float((p * steps).sum()) / (T - 1),
        "mass_snr_gt_1": float(p[snr_gt_1].sum()),
        "t_snr_1": float(int(snr_gt_1.sum())),
        "ess": ess,
        "ess_fraction": ess / T,
        "kish_efficiency": kish,
    }


def _gaussian_loss_and_grad(
    sigma: torch.Tensor, parameterization: Parameterization, s: float
) -> tuple[torch.Tensor, torch.Tensor]:
    mse_x0 = s**2 * sigma**2 / (s**2 + sigma**2)  # Wiener filter error for N(0, s²) data
    c_out = parameterization.scalings(sigma)[1]
    native = mse_x0 / c_out**2
    return native, 2 * native.sqrt()


def _model_loss_and_grad(
    denoiser: Denoiser,
    data: torch.Tensor,
    t_bins: list[tuple[int, int]],
    sigmas: torch.Tensor,
    n: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    params = [q for q in denoiser.parameters() if q.requires_grad]
    device = data.device
    loss_b, grad_b = [], []
    for start, stop in t_bins:
        t = torch.randint(start, stop, (n,), generator=generator)
        rows = torch.randint(0, data.shape[0], (n,), generator=generator)
        x0 = data[rows]  # (n, C, L)
        noise = torch.randn(x0.shape, generator=generator).to(device)
        sigma = sigmas[t].to(device=device, dtype=x0.dtype)
        losses, norms = [], []
        for i in range(n):  # per-example gradients: one backward each
            loss = denoising_loss(denoiser, x0[i : i + 1], sigma[i : i + 1], noise[i : i + 1])[0]
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            norms.append(math.sqrt(sum(float(g.pow(2).sum()) for g in grads if g is not None)))
            losses.append(float(loss.detach()))
        loss_b.append(float(np.mean(losses)))
        grad_b.append(float(np.mean(norms)))
    return torch.tensor(loss_b, dtype=torch.float64), torch.tensor(grad_b, dtype=torch.float64)


def learning_contribution(
    sampler: TimestepSampler,
    *,
    weighting: LossWeightingConfig | None = None,
    parameterization: Parameterization | None = None,
    bins: int = 50,
    denoiser: Denoiser | None = None,
    data: torch.Tensor | None = None,
    samples_per_bin: int = 8,
    generator: torch.Generator | None = None,
    data_std: float | None = None,
) -> xr.Dataset:
    """Per-timestep-bin mass, SNR, mean loss, mean gradient norm and share of the learning signal.

    ``weighting`` defaults to ``none``; ``parameterization`` to the denoiser's, else eps. With
    ``denoiser`` and ``data`` (N, C, L) the loss and gradient norm are measured (``generator``
    required); otherwise the Gaussian closed form with data std ``data_std`` (default σ_data)
    is used. Returns an ``xarray.Dataset`` over dim ``bin`` with the summary in ``attrs``.
    """
    T = sampler.T
    if not isinstance(bins, int) or not 1 <= bins <= T:
        raise ValueError(f"bins must be an integer in [1, {T}], got {bins!r}")
    if (denoiser is None) != (data is None):
        raise ValueError("give both denoiser= and data= to measure, or neither for the closed form")
    weighting = weighting or LossWeightingConfig()
    if parameterization is None:
        parameterization = denoiser.parameterization if denoiser else Parameterization("eps")
    edges = np.linspace(0, T, bins + 1).round().astype(int)
    t_bins = [(int(a), int(b)) for a, b in itertools.pairwise(edges)]
    index = torch.from_numpy(np.repeat(np.arange(bins), np.diff(edges)))  # (T,) bin of each t

    sigmas = sampler.schedule.sigmas  # (T,) float64
    p = sampler.pmf()
    w = torch.ones(T, dtype=torch.float64) if sampler.mode == "emphasis" else 1.0 / (T * p)
    lam = weighting.weight(sigmas, parameterization).double()

    if denoiser is not None and data is not None:
        if generator is None:
            raise ValueError("measuring with a model needs generator= (a torch.Generator)")
        loss_b, grad_b = _model_loss_and_grad(
            denoiser, data, t_bins, sigmas, samples_per_bin, generator
        )
        loss_t, grad_t = loss_b[index], grad_b[index]
        estimator = "model"
    else:
        s = data_std if data_std is not None else parameterization.sigma_data
        loss_t, grad_t = _gaussian_loss_and_grad(sigmas, parameterization, s)
        loss_b = _bin_mean(loss_t, index, bins)
        grad_b = _bin_mean(grad_t, index, bins)
        estimator = "gaussian"

    contrib_t = p * w * lam * grad_t  # (T,)
    loss_contrib_t = p * w * lam * loss_t
    mass = _bin_sum(p, index, bins)
    contrib = _bin_sum(contrib_t, index, bins)
    eff_w = torch.where(mass > 0, _bin_sum(p * w * lam, index, bins) / mass,
                        _bin_mean(w * lam, index, bins))  # fmt: skip
    log_snr = _bin_mean(sampler.schedule.log_snr, index, bins)
    summary = timestep_summary(sampler)
    total = float(contrib_t.sum())
    summary["share_snr_gt_1"] = (
        float(contrib_t[sampler.schedule.log_snr > 0].sum()) / total if total > 0 else float("nan")
    )
    u = torch.arange(sampler.T, dtype=torch.float64) / (sampler.T - 1)
    summary["signal_mean_u"] = (
        float((contrib_t * u).sum()) / total if total > 0 else float("nan")
    )
    starts = np.array([a for a, _ in t_bins])
    stops = np.array([b for _, b in t_bins])
    ds = xr.Dataset(
        {
            "mass": ("bin", mass.numpy()),
            "log_snr": ("bin", log_snr.numpy()),
            "snr": ("bin", log_snr.exp().numpy()),
            "sigma": ("bin", (-log_snr / 2).exp().numpy()),
            "weight": ("bin", eff_w.numpy()),
            "loss": ("bin", loss_b.numpy()),
            "grad_norm": ("bin", grad_b.numpy()),
            "contribution": ("bin", contrib.numpy()),
            "share": ("bin", (contrib / contrib.sum()).numpy()),
            "loss_share": ("bin", _normalise(_bin_sum(loss_contrib_t, index, bins)).numpy()),
        },
        coords={
            "bin": np.arange(bins),
            "t_start": ("bin", starts),
            "t_stop": ("bin", stops),
            "t_center": ("bin", (starts + stops - 1) / 2),
        },
        attrs={
            **summary,
            "sampler": sampler.name,
            "sampler_params": repr(sampler.params),
            "mode": sampler.mode,
            "floor": sampler.floor,
            "continuous": int(sampler.continuous),
            "schedule": sampler.schedule.name,
            "num_timesteps": T,
            "weighting": weighting.name,
            "weighting_params": repr(dict(weighting.params)),
            "parameterization": parameterization.kind,
            "estimator": estimator,
        },
    )
    ds["log_snr"].attrs["long_name"] = "mean log-SNR over the bin's timesteps"
    ds["share"].attrs["long_name"] = "share of the learning signal p·w·λ·E‖∇L‖"
    return ds


def _bin_sum(x: torch.Tensor, index: torch.Tensor, bins: int) -> torch.Tensor:
    return torch.zeros(bins, dtype=torch.float64).index_add_(0, index, x.double())


def _bin_mean(x: torch.Tensor, index: torch.Tensor, bins: int) -> torch.Tensor:
    counts = torch.bincount(index, minlength=bins).double()
    return _bin_sum(x, index, bins) / counts


def _normalise(x: torch.Tensor) -> torch.Tensor:
    total = x.sum()
    return x / total if total > 0 else torch.full_like(x, float("nan"))


def format_summary(ds: xr.Dataset) -> str:
    """The human-readable summary ``sigdiff timesteps show`` prints."""
    a: dict[str, Any] = ds.attrs
    T = a["num_timesteps"]
    kind = "continuous" if a["continuous"] else "discrete"
    return "\n".join(
        [
            f"sampler        {a['sampler']} {a['sampler_params']} mode={a['mode']} "
            f"floor={a['floor']:g} ({kind})",
            f"schedule       {a['schedule']}, T={T}; loss weighting {a['weighting']} "
            f"{a['weighting_params']} on {a['parameterization']}",
            f"mean t         {a['mean_t']:.1f}  (u = {a['mean_u']:.3f})",
            f"SNR > 1 mass   {a['mass_snr_gt_1']:.3f}  (SNR > 1 for t < {int(a['t_snr_1'])}; "
            f"uniform: {a['t_snr_1'] / T:.3f})",
            f"ESS 1/Σp²      {a['ess']:.1f}  ({a['ess_fraction']:.1%} of T)",
            f"Kish eff.      {a['kish_efficiency']:.3g}  (of importance weights 1/(T·p_t))",
            f"signal share   {a['share_snr_gt_1']:.3f} from SNR > 1 steps "
            f"({a['estimator']} estimate of loss and gradient norm)",
        ]
    )


def plot_contribution(ds: xr.Dataset, path: str | Path, *, title: str | None = None) -> Path:
    """Write a PNG with p(t), log-SNR(t) and the contribution share per bin; returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    a = ds.attrs
    T = a["num_timesteps"]
    width = (ds.t_stop - ds.t_start).values
    left = ds.t_start.values
    fig = Figure(figsize=(7.5, 7.0), constrained_layout=True)
    FigureCanvasAgg(fig)
    ax_p, ax_snr, ax_share = fig.subplots(3, 1, sharex=True)
    ax_p.bar(left, ds.mass.values / width, width=width, align="edge", color="tab:blue", alpha=0.8)
    ax_p.axhline(1 / T, color="k", ls="--", lw=1, label="uniform 1/T")
    ax_p.set_ylabel("p(t) per step")
    ax_p.legend(loc="upper right")
    ax_snr.plot(ds.t_center.values, ds.log_snr.values, color="tab:red")
    ax_snr.axhline(0.0, color="k", lw=0.8)
    ax_snr.set_ylabel("log SNR(t)")
    ax_share.bar(left, ds.share.values, width=width, align="edge", color="tab:green", alpha=0.8,
                 label="gradient share")  # fmt: skip
    ax_share.step(left, ds.loss_share.values, where="post", color="tab:olive", label="loss share")
    ax_share.set_ylabel("share of learning signal")
    ax_share.set_xlabel("timestep t (0 = clean)")
    ax_share.legend(loc="upper right")
    for ax in (ax_p, ax_snr, ax_share):
        ax.axvline(a["t_snr_1"], color="grey", ls=":", lw=1)
    ax_share.set_xlim(0, T)
    fig.suptitle(
        title
        or f"{a['sampler']} {a['sampler_params']} ({a['mode']}), {a['schedule']}: "
        f"mean t {a['mean_t']:.0f}, SNR>1 mass {a['mass_snr_gt_1']:.2f}",
        fontsize=9,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
