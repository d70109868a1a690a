"""Evaluation figures: mean spectra, PCA scatter, DCR histograms, samples beside nearest records;
for images, grids of real and generated images and image pairs (sample | nearest training image)."""

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
GRID_IMAGES = 64  # images per sample grid (8 x 8)
PAIRS_SHOWN = 24  # image pairs in nearest_pairs.png, most copy-like first
PAIRS_PER_ROW = 4
MIN_SHOWN_PIXELS = 32  # small images (digits are 8 x 8) are enlarged to at least this size
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


def plot_nearest(samples: np.ndarray, train: np.ndarray, ratio: NeighborRatio, path: Path, *,
                 sampling_rate: float = 1.0) -> None:
    """The generated samples with the smallest d1/d2 (most copy-like) beside their nearest
    training record: one row per sample, one column per channel (the distance uses all of them),
    time in seconds."""
    order = np.argsort(ratio.ratio, kind="stable")[:N_NEAREST_SHOWN]
    n_ch = samples.shape[1]
    t = np.arange(samples.shape[-1]) / sampling_rate
    fig, axes = plt.subplots(len(order), n_ch, figsize=(3.2 + 3.8 * n_ch, 1.8 * len(order)),
                             squeeze=False, sharex=True)
    for row, i in enumerate(order):
        for c in range(n_ch):
            ax = axes[row, c]
            ax.plot(t, train[ratio.nearest[i], c], color=COLORS["train"], lw=2, alpha=0.6,
                    label=f"train #{ratio.nearest[i]}")
            ax.plot(t, samples[i, c], color=COLORS["generated"], lw=1, label=f"generated #{i}")
            if row == 0:
                ax.set_title(f"channel {c}", fontsize=8)
            if c == 0:
                ax.set_ylabel(f"d1/d2 = {ratio.ratio[i]:.3f}\nd1 = {ratio.d1[i]:.3g}", fontsize=7)
            if c == n_ch - 1:
                ax.legend(fontsize=6, loc="upper right")
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    _save(fig, path)


def plot_image_grids(sets: dict[str, np.ndarray], ratio: NeighborRatio, out: Path) -> None:
    """samples_grid.png, train_grid.png, and nearest_pairs.png: the most copy-like generated
    images, each beside its nearest training image, titled with d1/d2 (all on train's range)."""
    from sigdiff.image import save_grid

    train, gen = sets["train"], sets["generated"]
    value_range = (float(train.min()), float(train.max()))
    scale = max(1, -(-MIN_SHOWN_PIXELS // min(train.shape[2:])))
    for name, x in (("samples_grid.png", gen), ("train_grid.png", train)):
        save_grid(_displayable(x[:GRID_IMAGES]), out / name, ncols=8, scale=scale,
                  value_range=value_range)
    order = np.argsort(ratio.ratio, kind="stable")[:PAIRS_SHOWN]
    rows = -(-len(order) // PAIRS_PER_ROW)
    fig, axes = plt.subplots(rows, PAIRS_PER_ROW, figsize=(2.2 * PAIRS_PER_ROW, 1.4 * rows),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), order):
        pair = _displayable(np.stack([gen[i], train[ratio.nearest[i]]]))  # (2, C, H, W)
        side = np.concatenate([pair[0], np.full_like(pair[0][..., :1], value_range[1]), pair[1]],
                              axis=-1)  # (C, H, 2W + 1): generated | nearest training image
        img = side[0] if side.shape[0] == 1 else np.moveaxis(side, 0, -1)
        img = (img - value_range[0]) / max(value_range[1] - value_range[0], 1e-12)
        ax.imshow(np.clip(img, 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"#{i} | train #{ratio.nearest[i]}  d1/d2={ratio.ratio[i]:.2f}", fontsize=6)
    _save(fig, out / "nearest_pairs.png")


def _displayable(x: np.ndarray) -> np.ndarray:
    """Images shown as they are when C is 1 or 3; otherwise the first channel only."""
    return x if x.shape[1] in (1, 3) else x[:, :1]


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
