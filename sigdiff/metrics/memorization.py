"""Memorization: the nearest-neighbour ratio test, distance to closest record, most-copied records.

The ratio rule follows Yoon et al. 2023 and Gu et al. 2023: a generated sample is memorized when
the distance to its nearest training record is under `threshold` (1/3) of the distance to the
second nearest. DCR (distance to closest record) of generated samples is set beside the DCR of
held-out real samples, the floor: generated data should sit no closer to the training set than
fresh real data does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from ._checks import as_signals, check_same_layout, flatten
from .neighbors import DEFAULT_MEMORY_MB, Neighbors, knn

MEMORIZATION_THRESHOLD = 1.0 / 3.0  # Yoon et al. 2023; Gu et al. 2023


@dataclass(frozen=True)
class NeighborRatio:
    """Per-sample d1, d2 (to the nearest and second nearest training record), d1/d2, and index."""

    d1: np.ndarray
    d2: np.ndarray
    ratio: np.ndarray
    nearest: np.ndarray
    threshold: float

    @property
    def memorized(self) -> np.ndarray:
        """Boolean mask: d1/d2 < threshold."""
        return self.ratio < self.threshold

    @property
    def fraction(self) -> float:
        """Fraction of samples memorized."""
        return float(self.memorized.mean())


def train_neighbors(
    samples: np.ndarray, train: np.ndarray, *, name: str = "samples", metric: str = "memorization",
    device: str | torch.device = "cpu", memory_mb: float = DEFAULT_MEMORY_MB,
) -> Neighbors:
    """The two nearest training records of each sample (validated, flattened to C*L vectors)."""
    s = as_signals(samples, name=name, metric=metric)
    t = as_signals(train, name="train", metric=metric)
    check_same_layout(t, s, names=("train", name), metric=metric)
    if len(t) < 2:
        raise ValueError(f"{metric}: the ratio test needs k = 2 neighbours; train has n = {len(t)}")
    return knn(flatten(s), flatten(t), k=2, device=device, memory_mb=memory_mb)


def neighbor_ratio(
    samples: np.ndarray, train: np.ndarray, *, threshold: float = MEMORIZATION_THRESHOLD,
    name: str = "samples", device: str | torch.device = "cpu",
    memory_mb: float = DEFAULT_MEMORY_MB,
) -> NeighborRatio:
    """The d1/d2 ratio test (Yoon et al. 2023; Gu et al. 2023) of `samples` against `train`.

    When d2 = 0 (duplicated training records) the sample is an exact copy: its ratio is 0.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"memorization: threshold must lie in (0, 1]; got {threshold}")
    nb = train_neighbors(samples, train, name=name, device=device, memory_mb=memory_mb)
    d1, d2 = nb.distances[:, 0], nb.distances[:, 1]
    ratio = np.divide(d1, d2, out=np.zeros_like(d1), where=d2 > 0)
    return NeighborRatio(d1=d1, d2=d2, ratio=ratio, nearest=nb.indices[:, 0], threshold=threshold)


def dcr_comparison(dcr_samples: np.ndarray, dcr_holdout: np.ndarray) -> dict[str, float]:
    """DCR of generated vs held-out samples: medians, their ratio, and two-sample tests.

    `p_closer` is the one-sided Mann-Whitney U p-value for "generated samples sit closer to the
    training set than held-out real samples"; small values flag copying. `ks_stat`/`ks_p` are the
    two-sided Kolmogorov-Smirnov test. `median_ratio` < 1 means closer than fresh real data.
    """
    med_s, med_h = float(np.median(dcr_samples)), float(np.median(dcr_holdout))
    mw = stats.mannwhitneyu(dcr_samples, dcr_holdout, alternative="less")
    ks = stats.ks_2samp(dcr_samples, dcr_holdout)
    return {
        "median_dcr_generated": med_s,
        "median_dcr_holdout": med_h,
        "median_ratio": med_s / med_h if med_h > 0 else float("inf"),
        "p_closer": float(mw.pvalue),
        "ks_stat": float(ks.statistic),
        "ks_p": float(ks.pvalue),
    }


def most_copied(nearest: np.ndarray, memorized: np.ndarray, *, top: int = 10) -> list[dict[str, int]]:
    """Training records most often the nearest neighbour of a memorized sample: index and count."""
    idx, counts = np.unique(nearest[memorized], return_counts=True)
    order = np.argsort(-counts, kind="stable")[:top]
    return [{"train_index": int(idx[i]), "count": int(counts[i])} for i in order]


def memorization_summary(
    generated: NeighborRatio, floor: NeighborRatio, *, top: int = 10
) -> dict[str, object]:
    """Ratio-test fraction, DCR comparison, exact copies and most-copied records, beside the floor."""
    return {
        "threshold": generated.threshold,
        "memorized_fraction": {"generated": generated.fraction, "floor": floor.fraction},
        "dcr": dcr_comparison(generated.d1, floor.d1),
        "exact_copies": {"generated": int((generated.d1 == 0).sum()),
                         "floor": int((floor.d1 == 0).sum())},
        "most_copied": most_copied(generated.nearest, generated.memorized, top=top),
    }


def memorization_report(
    samples: np.ndarray, train: np.ndarray, holdout: np.ndarray, *,
    threshold: float = MEMORIZATION_THRESHOLD, top: int = 10, device: str | torch.device = "cpu",
    memory_mb: float = DEFAULT_MEMORY_MB,
) -> dict[str, object]:
    """Ratio test, DCR and most-copied records for `samples`, each beside the holdout floor."""
    gen = neighbor_ratio(samples, train, threshold=threshold, device=device, memory_mb=memory_mb)
    floor = neighbor_ratio(holdout, train, threshold=threshold, name="holdout", device=device,
                           memory_mb=memory_mb)
    return memorization_summary(gen, floor, top=top)
