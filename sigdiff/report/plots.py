"""The report's figures: figures over training, the learning-contribution profiles, memorization
against where the learning signal sits, and utility against memorization."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sigdiff.report._core import (
    AUG_GAIN,
    GATE,
    MEM,
    MEM_LP,
    QUALITY,
    TRTR,
    TSTR,
    _arms,
    _label,
    _md_table,
    _n,
    _paired,
    _per_seed_reference,
    quality_axis,
)
from sigdiff.report.claims import SUMMARY_KEYS, _contribution
from sigdiff.stats import t_interval


def utility_section(d: pd.DataFrame, n: int, base: str, out: Path) -> list[str]:
    """Downstream utility (TSTR macro-F1, augmentation gain) against the memorized fraction over
    checkpoints and arms (a plot), and per arm at the final step (a table, paired by seed)."""
    tag = _n(n)
    arms = _arms(d)
    colors = _colors(arms)
    fig, axes = _figure(1, 2, (12, 4.5))
    for ax, key in zip(axes.flat, (TSTR, AUG_GAIN)):
        for arm in arms:
            g = d[d.arm == arm].groupby("step")[[MEM, key]].mean()
            ax.plot(g[MEM], g[key], marker="o", ms=3, color=colors[arm], label=arm)
            ax.plot(g[MEM].iloc[-1:], g[key].iloc[-1:], marker="s", ms=7, color=colors[arm])
        if key == TSTR:
            ax.axhline(float(d[TRTR].mean()), color="k", ls="--", lw=1, label="TRTR (real)")
        else:
            ax.axhline(0, color="k", ls="--", lw=1, label="no gain")
        ax.set_xlabel("memorized fraction")
        ax.set_ylabel("TSTR macro-F1" if key == TSTR else "augmentation gain in macro-F1")
    axes[0][0].legend(fontsize=6)
    fig.suptitle("utility against memorization: one point per checkpoint (mean over seeds), "
                 "square = final step", fontsize=9)
    fig.savefig(out / f"utility_n{tag}.png", dpi=110)
    final = d[d.step == d.groupby("cell").step.transform("max")]
    rows = []
    for arm in arms:
        a = final[final.arm == arm].set_index("seed")
        b = final[final.arm == base].set_index("seed")
        cells = [t_interval(a[k].to_numpy(dtype=float)).fmt() for k in (MEM, TSTR, AUG_GAIN)]
        deltas = ["—", "—"] if arm == base else [_paired(a[k], b[k]).fmt() for k in (TSTR, MEM)]
        rows.append([arm, *cells, *deltas])
    return ["### Utility against memorization", "",
            f"A classifier trained on each checkpoint's labelled samples and tested on the "
            f"holdout (TSTR), and on the real records plus as many synthetic ones (gain over "
            f"TRTR, mean TRTR macro-F1 {float(d[TRTR].mean()):.3f}); the trade-off a user buys.",
            "", f"![](utility_n{tag}.png)", "",
            _md_table(["arm", "memorized (final)", "TSTR macro-F1", "augmentation gain",
                       f"Δ TSTR vs {base}", f"Δ memorized vs {base}"], rows), ""]


def _figure(rows: int, cols: int, size: tuple[float, float]) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, constrained_layout=True)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, squeeze=False)


def _colors(arms: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {a: cmap(i % 10) for i, a in enumerate(arms)}


OVER_STEPS = [GATE, MEM, MEM_LP, "alignment_vs_holdout.mmd2", "spectral.log_spectral_distance_db",
              "alignment_vs_holdout.c2st_1nn"]


def plot_over_steps(d: pd.DataFrame, n: int, path: Path) -> Path:
    """Key figures against training step, mean and 95% CI over seeds, floor and copier lines;
    the first panel is the report's quality axis (`quality_axis`)."""
    arms = _arms(d)
    colors = _colors(arms)
    fig, axes = _figure(2, 3, (14, 7.5))
    keys = [quality_axis(d)[0], *OVER_STEPS[1:]]
    for ax, key in zip(axes.flat, keys):
        if key not in d or d[key].isna().all():  # images: no spectra
            ax.set_title(f"{_label(key)}: not measured for this data", fontsize=9)
            ax.axis("off")
            continue
        for arm in arms:
            g = d[d.arm == arm].groupby("step")[key]
            cis = [(s, t_interval(v.to_numpy(dtype=float))) for s, v in g]
            steps = [s for s, _ in cis]
            ax.plot(steps, [c.mean for _, c in cis], marker="o", ms=3, color=colors[arm],
                    label=arm)
            ax.fill_between(steps, [c.low for _, c in cis], [c.high for _, c in cis],
                            color=colors[arm], alpha=0.15)
        if key == GATE:  # log scale: the floor (0) lies below the axis
            ax.axhline(1, color="grey", ls=":", lw=1, label="copier / residual noise (1)")
        refs = (("floor", "--"), ("residual_noise", ":")) if key == QUALITY else \
            (("floor", "--"), ("copier", ":"))
        for ref, style in refs:
            s = _per_seed_reference(d, key, ref)
            if len(s):
                ax.axhline(float(s.mean()), color="k" if ref == "floor" else "grey", ls=style,
                           lw=1, label=f"{ref} (reference)")
        ax.set_title(_label(key), fontsize=9)
        ax.set_xlabel("training step")
        ax.set_xscale("log")
        if key in (GATE, "spectral.log_spectral_distance_db"):
            ax.set_yscale("log")
    axes[0][0].legend(fontsize=6)
    fig.suptitle(f"figures over training (n = {_n(n)} training records): mean and 95% t-interval "
                 "over seeds; dashed: real-data floor, dotted: copier (quality: residual "
                 "noise)", fontsize=9)
    fig.savefig(path, dpi=110)
    return path


def plot_contributions(sweep: Mapping[str, Any], arms: Sequence[str], cells: Mapping[str, str],
                       path: Path) -> tuple[Path, dict[str, dict[str, float]]]:
    """p(t) and the closed-form share of the learning signal per arm (sigdiff.contribution)."""
    colors = _colors(arms)
    fig, axes = _figure(2, 1, (8, 6.5))
    summary = {}
    for arm in arms:
        ds = _contribution(sweep, cells[arm])
        width = (ds.t_stop - ds.t_start).values
        axes[0][0].step(ds.t_start.values, ds.mass.values / width, where="post",
                        color=colors[arm], label=arm)
        axes[1][0].step(ds.t_start.values, ds.share.values, where="post", color=colors[arm])
        summary[arm] = {k: float(ds.attrs[k]) for k in SUMMARY_KEYS}
        t_snr = float(ds.attrs["t_snr_1"])
        T = int(ds.attrs["num_timesteps"])
    for ax in (axes[0][0], axes[1][0]):
        ax.axvline(t_snr, color="grey", ls=":", lw=1, label="SNR = 1")
        ax.set_xlim(0, T)
    axes[0][0].axhline(1 / T, color="k", ls="--", lw=1, label="uniform 1/T")
    axes[0][0].set_ylabel("p(t) per step")
    axes[0][0].legend(fontsize=7)
    axes[1][0].set_ylabel("share of learning signal p·w·λ·E‖∇L‖")
    axes[1][0].set_xlabel("timestep t (0 = clean; 'later denoising steps' = small t)")
    fig.suptitle("learning-contribution profile per arm (Gaussian closed form, "
                 "sigdiff.contribution)", fontsize=9)
    fig.savefig(path, dpi=110)
    return path, summary


def plot_emphasis(d: pd.DataFrame, summary: Mapping[str, Mapping[str, float]],
                  path: Path) -> bool:
    """Final memorized fraction per arm against its signal share at SNR > 1 and its signal
    mean u (two panels); False (nothing drawn) without the contribution summary."""
    arms = [a for a in _arms(d) if a in summary]
    if len(arms) < 2:
        return False
    colors = _colors(_arms(d))
    final = d[d.step == d.groupby("cell").step.transform("max")]
    fig, axes = _figure(1, 2, (12, 4.5))
    for ax, key, label in zip(axes.flat, ("share_snr_gt_1", "signal_mean_u"),
                              ("share of the learning signal at SNR > 1",
                               "signal mean u = E[t]/T under the learning signal")):
        for arm in arms:
            iv = t_interval(final[final.arm == arm][MEM].to_numpy(dtype=float))
            x = summary[arm][key]
            ax.errorbar([x], [iv.mean], yerr=[[iv.mean - iv.low], [iv.high - iv.mean]]
                        if iv.n > 1 else None, fmt="o", color=colors[arm], capsize=3, label=arm)
        ax.set_xlabel(label)
        ax.set_ylabel("final memorized fraction")
    axes[0][0].legend(fontsize=6)
    fig.savefig(path, dpi=110)
    return True
