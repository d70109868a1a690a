"""Reference sets every metric must rank: real data (the floor), copies, and corrupted real data.

A metric earns a place in a verdict only if it tells these apart (see `sigdiff.metrics.validation`
and `docs/metric-validation.md`). Each reference has the sample count of the generated set it
stands beside, so size-dependent estimators (mean spectra, histograms, k-NN balls) compare fairly:

- ``floor``: real records seen neither in training nor as the alignment target (what an ideal
  generator would emit).
- ``copier``: n draws *with replacement* from the training records (a generator that only copies).
- ``noisy_copy@s``: the copier's draws plus Gaussian noise of standard deviation s × the training
  data's per-channel standard deviation (copies a residual-noise sampler would emit).
- ``residual_noise``: the floor plus Gaussian noise at the level the sampler's last step leaves
  (real shapes, the texture of an under-trained last denoising step).
- ``smoothed``: the floor low-pass filtered by a Gaussian kernel (real shapes, detail lost);
  ``smoothed@s``: the same with a lighter kernel of std s samples (the blur ladder's first rung).
- ``noisy_real@s``: the floor plus Gaussian noise of s × the training data's std (the quality
  ladder: real shapes under growing noise, none of them a copy).
- ``mode_dropped``: real records unseen in training from all but one mode: the floor pool's
  k-means clusters (`MODE_CLUSTERS`, on the low-passed records) less the second-largest one, so a
  generator that never emits a sizeable part of the distribution has its reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Noise levels of the noisy copies, × the training data's per-channel std.
NOISE_LEVELS = (0.05, 0.1, 0.2, 0.4)
#: σ of the last non-zero point of the default sampling grid (DPM-Solver++(2M), 25 trailing steps
#: on the DDPM linear schedule: t = 39, σ = √((1 − ᾱ)/ᾱ) = 0.14) in units of the data's std:
#: what a sample keeps when the model never learned that last step.
RESIDUAL_SIGMA = 0.14
#: std of the Gaussian smoothing kernel, in samples (pixels for images) along every spatial axis.
SMOOTH_SIGMA = 2.0
#: the lighter blur of the quality ladder (``smoothed@1``)
LIGHT_SMOOTH_SIGMA = 1.0
#: noise levels of the noisy real sets of the quality ladder, × the training data's std
REAL_NOISE_LEVELS = (0.05, 0.1, 0.2)
#: k-means clusters of the floor pool; the mode-dropped set leaves out the second-largest
MODE_CLUSTERS = 4
#: Fraction of the Nyquist band kept by the fixed low-pass of band-limited memorization.
LOWPASS_FRACTION = 0.25


@dataclass(frozen=True)
class ReferenceSpec:
    """Which references to build and how strongly to corrupt them."""

    noise_levels: tuple[float, ...] = NOISE_LEVELS
    residual_sigma: float = RESIDUAL_SIGMA
    smooth_sigma: float = SMOOTH_SIGMA
    real_noise_levels: tuple[float, ...] = REAL_NOISE_LEVELS
    light_smooth_sigma: float | None = LIGHT_SMOOTH_SIGMA
    mode_clusters: int | None = MODE_CLUSTERS  # None: no mode-dropped set

    def __post_init__(self) -> None:
        for name in ("noise_levels", "real_noise_levels"):
            object.__setattr__(self, name, tuple(float(s) for s in getattr(self, name)))
        levels = (*self.noise_levels, *self.real_noise_levels, self.residual_sigma,
                  self.smooth_sigma, self.light_smooth_sigma or 1.0)
        if any(s <= 0 for s in levels):
            raise ValueError(f"references: noise levels and smoothing sigmas must be positive; "
                             f"got {self}")
        if self.mode_clusters is not None and self.mode_clusters < 2:
            raise ValueError(f"references: mode_clusters must be at least 2 (one is dropped) or "
                             f"None; got {self.mode_clusters}")

    @property
    def names(self) -> tuple[str, ...]:
        """Reference names in report order (the floor first)."""
        light = (f"smoothed@{self.light_smooth_sigma:g}",) if self.light_smooth_sigma else ()
        return ("floor", "copier", *(noisy_name(s) for s in self.noise_levels),
                "residual_noise", "smoothed", *light,
                *(real_noise_name(s) for s in self.real_noise_levels),
                *(("mode_dropped",) if self.mode_clusters else ()))


def noisy_name(level: float) -> str:
    """`noisy_copy@0.1` for noise level 0.1."""
    return f"noisy_copy@{level:g}"


def real_noise_name(level: float) -> str:
    """`noisy_real@0.1` for noise level 0.1."""
    return f"noisy_real@{level:g}"


#: What each reference is, for tables.
DESCRIPTIONS = {
    "floor": "real records unseen in training (the floor)",
    "copier": "draws with replacement from the training records",
    "noisy_copy": "copier + Gaussian noise (level × data std)",
    "residual_noise": "floor + the noise a sampler's untrained last step leaves",
    "smoothed": "floor, Gaussian-smoothed along time (@s: kernel std s samples; plain: 2)",
    "noisy_real": "floor + Gaussian noise (level × data std)",
    "mode_dropped": "real records unseen in training from all but one k-means mode",
}


def channel_std(x: np.ndarray) -> np.ndarray:
    """Per-channel std over records and every spatial axis, shaped to broadcast: (C, 1[, 1])."""
    axes = (0, *range(2, x.ndim))
    return np.asarray(x.std(axis=axes, keepdims=True)[0], dtype=np.float64) + 1e-12


def smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along every spatial axis (time, or height and width), edges reflected."""
    return ndimage.gaussian_filter(x, sigma=(0, 0, *([sigma] * (x.ndim - 2))),
                                   mode="reflect").astype(np.float32)


def lowpass(x: np.ndarray, fraction: float = LOWPASS_FRACTION) -> np.ndarray:
    """Ideal low-pass along every spatial axis, keeping frequencies up to `fraction` × Nyquist.

    An orthogonal projection onto the low-frequency Fourier basis (zero phase), so distances
    between projected records are distances between their band-limited versions: white residual
    noise loses (1 − fraction) of its energy while smooth signal shapes are kept.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"low-pass: fraction of Nyquist must lie in (0, 1]; got {fraction}")
    out = np.asarray(x, dtype=np.float64)
    for axis in range(2, out.ndim):
        n = out.shape[axis]
        spec = np.fft.rfft(out, axis=axis)
        keep = np.arange(spec.shape[axis]) <= fraction * (n // 2)
        shape = [1] * out.ndim
        shape[axis] = -1
        out = np.fft.irfft(spec * keep.reshape(shape), n=n, axis=axis)
    return out.astype(np.float32)


def take(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n records without replacement (all of them, in order, when n ≥ len(x))."""
    return x if n >= len(x) else x[np.sort(rng.choice(len(x), n, replace=False))]


def build_references(
    train: np.ndarray, floor: np.ndarray, *, n: int, spec: ReferenceSpec, seed: int,
) -> dict[str, np.ndarray]:
    """Every reference set of `n` records, keyed by name (see the module docstring).

    `train` are the training records (N, C, ...), `floor` real records unseen in training (at
    least n of them). Noise is in units of the training data's per-channel std. Deterministic in
    `seed`; the noisy copies share the copier's draws, so they differ from it by noise alone.
    """
    if len(floor) < n:
        raise ValueError(f"references: the floor needs n = {n} real records; got {len(floor)}")
    rng = np.random.default_rng([seed, 7])
    std = channel_std(train)
    real = take(floor, n, rng)
    copies = train[rng.integers(0, len(train), size=n)]
    sets: dict[str, np.ndarray] = {"floor": real, "copier": copies}
    for level in spec.noise_levels:
        noise = rng.standard_normal(copies.shape) * std * level
        sets[noisy_name(level)] = (copies + noise).astype(np.float32)
    noise = rng.standard_normal(real.shape) * std * spec.residual_sigma
    sets["residual_noise"] = (real + noise).astype(np.float32)
    sets["smoothed"] = smooth(real, spec.smooth_sigma)
    if spec.light_smooth_sigma:
        sets[f"smoothed@{spec.light_smooth_sigma:g}"] = smooth(real, spec.light_smooth_sigma)
    for level in spec.real_noise_levels:
        noise = rng.standard_normal(real.shape) * std * level
        sets[real_noise_name(level)] = (real + noise).astype(np.float32)
    if spec.mode_clusters and len(floor) >= 2 * spec.mode_clusters:  # else: too few to cluster
        sets["mode_dropped"] = mode_dropped(floor, n=n, clusters=spec.mode_clusters, seed=seed,
                                            rng=rng)
    return sets


def mode_clusters(x: np.ndarray, *, clusters: int, seed: int) -> np.ndarray:
    """k-means labels (N,) of records on their low-passed, standardised form (the shapes, not the
    noise), clusters numbered by size, largest first. Deterministic in `seed`."""
    from sklearn.cluster import KMeans

    z = lowpass(x).reshape(len(x), -1)
    z = (z - z.mean(axis=0)) / (z.std(axis=0) + 1e-8)
    labels = KMeans(clusters, n_init=4, random_state=seed).fit_predict(z)
    order = np.argsort(-np.bincount(labels, minlength=clusters), kind="stable")
    return np.argsort(order)[labels]


def mode_dropped(pool: np.ndarray, *, n: int, clusters: int, seed: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Up to n records of `pool` (real, unseen in training) outside its second-largest k-means
    cluster: a generator that dropped one sizeable mode. Fewer than n when the rest is smaller."""
    if len(pool) < 2 * clusters:
        raise ValueError(f"references: the mode-dropped set needs at least {2 * clusters} real "
                         f"records in the floor pool to cluster; got {len(pool)} (set "
                         f"mode_clusters = None to leave it out)")
    labels = mode_clusters(pool, clusters=clusters, seed=seed)
    return take(pool[labels != 1], n, rng)
