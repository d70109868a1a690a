"""Evaluation figures: mean spectra, PCA scatter, DCR histograms, samples beside nearest records."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from .alignment import PCA
from .memorization import NeighborRatio
from .spectral import welch_psd

N_NEAREST_SHOWN = 6
SCATTER_MAX = 2000  # points per set in the PCA scatter
COLORS = {"train": "tab:blue", "holdout": "tab:green", "generated": "tab:red"}


def plot_spectra(sets: dict[str, np.ndarray], path: Path, *, sampling_rate: float) -> None:
    """Mean Welch spectrum of each set, one panel per channel (log power)."""
    n_ch = next(iter(sets.values())).shape[1]
    fig, axes = plt.subplots(n_ch, 1, figsize=(7, 2.6 * n_ch), squeeze=False)
    for name, x in sets.items():
        freqs, psd = welch_psd(x, sampling_rate=sampling_rate)
        for c in range(n_ch):
            axes[c, 0].semilogy(freqs, psd[:, c].mean(axis=0), label=name, color=COLORS.get(name))
    for c in range(n_ch):
        axes[c, 0].set(xlabel="frequency (Hz)", ylabel=f"power, channel {c}")
    axes[0, 0].legend()
    _save(fig, path)


def plot_pca(sets: dict[str, np.ndarray], path: Path, *, pca: PCA) -> None:
    """Scatter on the first two principal components fitted on the training set."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, x in sets.items():
        z = pca.transform(x[:SCATTER_MAX])
        ax.scatter(z[:, 0], z[:, 1] if z.shape[1] > 1 else np.zeros(len(z)), s=4, alpha=0.4,
                   label=name, color=COLORS.get(name))
    ax.set(xlabel="PC1", ylabel="PC2", title="PCA fitted on train")
    ax.legend(markerscale=3)
    _save(fig, path)


def plot_dcr(generated: NeighborRatio, floor: NeighborRatio, path: Path) -> None:
    """Histograms of distance to closest training record: generated vs held-out real."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.histogram_bin_edges(np.concatenate([generated.d1, floor.d1]), bins=40).tolist()
    ax.hist(floor.d1, bins=bins, alpha=0.6, density=True, label="holdout (floor)",
            color=COLORS["holdout"])
    ax.hist(generated.d1, bins=bins, alpha=0.6, density=True, label="generated",
            color=COLORS["generated"])
    ax.set(xlabel="distance to closest training record", ylabel="density")
    ax.legend()
    _save(fig, path)


def plot_nearest(samples: np.ndarray, train: np.ndarray, ratio: NeighborRatio, path: Path) -> None:
    """The generated samples with the smallest d1/d2 (most copy-like) beside their nearest record."""
    order = np.argsort(ratio.ratio, kind="stable")[:N_NEAREST_SHOWN]
    fig, axes = plt.subplots(len(order), 1, figsize=(7, 1.8 * len(order)), squeeze=False)
    for ax, i in zip(axes[:, 0], order):
        ax.plot(train[ratio.nearest[i], 0], color=COLORS["train"], lw=2, alpha=0.6,
                label=f"train #{ratio.nearest[i]}")
        ax.plot(samples[i, 0], color=COLORS["generated"], lw=1, label=f"generated #{i}")
        ax.set_title(f"d1/d2 = {ratio.ratio[i]:.3f}, d1 = {ratio.d1[i]:.3g}", fontsize=8)
        ax.legend(fontsize=7, loc="upper right")
    _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
