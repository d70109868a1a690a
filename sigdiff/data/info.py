"""Store summaries: a printable description and a PNG of example signals and the mean spectrum."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sigdiff.data.store import SignalStore, StoreError

__all__ = ["check_png_target", "mean_power_spectrum", "plot_store", "summarize"]

_SPECTRUM_ROWS = 512  # rows averaged for the spectrum (evenly spaced through the store)
_EXAMPLES = 4
_GRID_IMAGES = 64
_MIN_SHOWN_PIXELS = 32  # small images are enlarged to at least this many pixels a side


def summarize(store: SignalStore) -> dict[str, Any]:
    """Shape, rate, duration, channels, label counts, normalisation stats, split and provenance."""
    info: dict[str, Any] = {
        "path": store.path,
        "kind": store.kind,
        "shape": [store.n_samples, store.n_channels, *store.spatial_shape],
        "sampling_rate_hz": store.sampling_rate if store.kind == "signal" else None,
        "duration_s": store.length / store.sampling_rate if store.kind == "signal" else None,
        "units": store.attrs.get("units"),
        "channels": store.attrs.get("channel_names"),
        "chunk_samples": store.chunk_samples,
        "norm_mean": [round(v, 6) for v in store.norm_mean.tolist()],
        "norm_std": [round(v, 6) for v in store.norm_std.tolist()],
    }
    if store.labels is not None:
        classes, counts = np.unique(store.labels, return_counts=True)
        info["label_counts"] = dict(zip(classes.tolist(), counts.tolist()))
    for key in ("split", "provenance", "sampling_rate_note", "license", "dataset"):
        if key in store.attrs:
            info[key] = store.attrs[key]
    return info


def mean_power_spectrum(
    store: SignalStore, *, rows: int = _SPECTRUM_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """(freqs_hz (F,), power (C, F)): |rfft|² averaged over up to `rows` evenly spaced samples."""
    idx = np.unique(np.linspace(0, store.n_samples - 1, min(rows, store.n_samples)).astype(int))
    x = store.read(idx).astype(np.float64)  # (n, C, L)
    power = (np.abs(np.fft.rfft(x, axis=-1)) ** 2).mean(axis=0) / store.length  # (C, F)
    return np.fft.rfftfreq(store.length, d=1.0 / store.sampling_rate), power


def check_png_target(png: str | Path) -> Path:
    """`png` as a Path, or a `StoreError` when no PNG can be written there."""
    out = Path(png)
    if out.suffix.lower() != ".png":
        raise StoreError(f"{out}: the figure is a PNG; give a path ending in .png")
    if not out.parent.is_dir():
        raise StoreError(f"{out}: folder {out.parent} does not exist; create it or choose "
                         "another --png path")
    if out.is_dir():
        raise StoreError(f"{out}: is a folder; give a file path ending in .png")
    return out


def plot_store(store: SignalStore, png: str | Path) -> Path:
    """Write a PNG: a few example signals (channel 0..C-1) and the mean power spectrum; for an
    image store, a grid of its first 64 images."""
    png = check_png_target(png)
    if store.kind == "image":
        from sigdiff.image import save_grid

        x = store.read(slice(0, _GRID_IMAGES))
        scale = max(1, -(-_MIN_SHOWN_PIXELS // min(store.spatial_shape)))
        return save_grid(x if x.shape[1] in (1, 3) else x[:, :1], png, ncols=8, scale=scale)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_ch = store.n_channels
    names = list(store.attrs.get("channel_names") or [f"channel {c}" for c in range(n_ch)])
    fig, axes = plt.subplots(n_ch, 2, figsize=(11, 2.6 + 1.9 * (n_ch - 1)), squeeze=False)
    t = np.arange(store.length) / store.sampling_rate
    examples = store.read(np.arange(min(_EXAMPLES, store.n_samples)))  # (k, C, L)
    freqs, power = mean_power_spectrum(store)
    for c in range(n_ch):  # small multiples: one row per channel
        ax_sig, ax_psd = axes[c]
        for i, row in enumerate(examples):
            ax_sig.plot(t, row[c], lw=0.8, label=f"record {i}")
        ax_sig.set(ylabel=f"{names[c]} ({store.attrs.get('units', '')})")
        ax_sig.legend(fontsize=6, loc="upper right")
        ax_psd.semilogy(freqs[1:], power[c, 1:] + 1e-20, lw=0.8, label=names[c])
        ax_psd.set(ylabel="mean power")
        ax_psd.legend(fontsize=6, loc="upper right")
    axes[0, 0].set_title("example records")
    axes[0, 1].set_title("mean spectrum (DC omitted)")
    axes[-1, 0].set_xlabel("time (s)")
    axes[-1, 1].set_xlabel("frequency (Hz)")
    fig.tight_layout()
    out = Path(png)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
