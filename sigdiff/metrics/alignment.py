"""Distributional alignment between two sets of signals (N, C, L).

The paper's own metrics (PCA-Wasserstein and PCA-Jensen-Shannon, Vu et al. 2026) sit beside MMD²,
sliced and marginal Wasserstein, KS, PRDC (Naeem et al. 2020) and α-precision / β-recall /
authenticity (Alaa et al. 2022). Records are compared as flattened C*L vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats
from scipy.spatial.distance import jensenshannon

from ._checks import check_k, flatten
from .neighbors import DEFAULT_MEMORY_MB, distance_blocks, knn

PCA_COMPONENTS = 2  # the paper's 2D PCA view; configurable
JS_BINS = 50  # equal-width histogram bins over the joint range of both sets, per component
MULTI_BANDWIDTH_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)  # × the median-heuristic bandwidth
MMD_MAX_SAMPLES = 1000  # per set; larger sets are subsampled (seeded) for the O(N²) kernel
MMD_PERMUTATIONS = 200
SLICED_PROJECTIONS = 128
PRDC_K = 5  # Naeem et al. 2020
ALPHA_STEPS = 30  # α grid for α-precision / β-recall (Alaa et al. 2022)


# ----------------------------------------------------------------------------- 1D Wasserstein
def wasserstein_1d(
    u: np.ndarray, v: np.ndarray, *, u_weights: np.ndarray | None = None,
    v_weights: np.ndarray | None = None, p: float = 1.0,
) -> float:
    """W_p^p between two weighted 1D distributions, by integrating |F_u⁻¹ − F_v⁻¹|^p over (0, 1]."""
    u_val, u_cdf = _sorted_cdf(np.asarray(u, dtype=np.float64), u_weights)
    v_val, v_cdf = _sorted_cdf(np.asarray(v, dtype=np.float64), v_weights)
    qs = np.sort(np.concatenate([u_cdf, v_cdf]))  # breakpoints of both quantile functions
    delta = np.diff(qs, prepend=0.0)
    uq = u_val[np.minimum(np.searchsorted(u_cdf, qs, side="left"), len(u_val) - 1)]
    vq = v_val[np.minimum(np.searchsorted(v_cdf, qs, side="left"), len(v_val) - 1)]
    return float(np.sum(delta * np.abs(uq - vq) ** p))


def _sorted_cdf(values: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(values, kind="stable")
    w = np.ones(len(values)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w[order] / w.sum()
    return values[order], np.cumsum(w)


# ----------------------------------------------------------------------------- the paper's PCA
@dataclass(frozen=True)
class PCA:
    """Principal axes fitted on one set: `mean` (D,), `components` (k, D), `explained` ratios (k,)."""

    mean: np.ndarray
    components: np.ndarray
    explained: np.ndarray

    def transform(self, x: np.ndarray) -> np.ndarray:
        """(N, C, L) or (N, D) -> scores (N, k)."""
        return (flatten(np.asarray(x)).astype(np.float64) - self.mean) @ self.components.T


def fit_pca(x: np.ndarray, *, n_components: int = PCA_COMPONENTS) -> PCA:
    """PCA by SVD of the centred data (fitted on the training set in the paper's protocol)."""
    data = flatten(np.asarray(x)).astype(np.float64)
    if not 1 <= n_components <= min(data.shape):
        raise ValueError(f"PCA: n_components = {n_components} must lie in [1, {min(data.shape)}]")
    mean = data.mean(axis=0)
    _, s, vt = np.linalg.svd(data - mean, full_matrices=False)
    var = s**2
    return PCA(mean=mean, components=vt[:n_components], explained=var[:n_components] / var.sum())


def pca_distances(
    x: np.ndarray, y: np.ndarray, *, pca: PCA, n_bins: int = JS_BINS
) -> dict[str, float]:
    """The paper's PCA-Wasserstein and PCA-JS: per principal component, averaged over components.

    Wasserstein is the 1D W1 between the projected scores. Jensen-Shannon is the JS *distance*
    (base 2, in [0, 1]) between histograms with `n_bins` equal-width bins spanning the joint range
    of both sets on that component.
    """
    px, py = pca.transform(x), pca.transform(y)  # (N, k), (M, k)
    w, js = [], []
    for j in range(px.shape[1]):
        w.append(stats.wasserstein_distance(px[:, j], py[:, j]))
        edges = np.histogram_bin_edges(np.concatenate([px[:, j], py[:, j]]), bins=n_bins)
        hx, _ = np.histogram(px[:, j], bins=edges)
        hy, _ = np.histogram(py[:, j], bins=edges)
        js.append(float(jensenshannon(hx / hx.sum(), hy / hy.sum(), base=2)))
    return {"pca_wasserstein": float(np.mean(w)), "pca_js": float(np.mean(js))}


# ----------------------------------------------------------------------------- MMD²
@dataclass(frozen=True)
class MMDResult:
    """Unbiased MMD² (Gretton et al. 2012), its permutation p-value and the bandwidths used."""

    mmd2: float
    p_value: float
    bandwidths: tuple[float, ...]


def mmd2(
    x: np.ndarray, y: np.ndarray, *, kernel: str = "multi", n_permutations: int = MMD_PERMUTATIONS,
    max_samples: int = MMD_MAX_SAMPLES, seed: int = 0,
) -> MMDResult:
    """Unbiased MMD² with an RBF kernel and a permutation p-value.

    `kernel="median"`: one bandwidth, the median pairwise distance of the pooled sample;
    `kernel="multi"`: the mean of RBF kernels at MULTI_BANDWIDTH_FACTORS × that median.
    """
    if kernel not in ("median", "multi"):
        raise ValueError(f"MMD: unknown kernel {kernel!r}; valid choices: median, multi")
    rng = np.random.default_rng(seed)
    fx, fy = _subsample(flatten(x), max_samples, rng), _subsample(flatten(y), max_samples, rng)
    check_k(2, len(fx), name="first set", metric="MMD")
    check_k(2, len(fy), name="second set", metric="MMD")
    gram, bws = rbf_gram(np.concatenate([fx, fy]), kernel=kernel)
    is_x = np.zeros((1 + n_permutations, len(gram)))
    is_x[0, : len(fx)] = 1.0
    for i in range(1, n_permutations + 1):
        is_x[i, rng.permutation(len(gram))[: len(fx)]] = 1.0
    values = _mmd2_unbiased(gram, is_x)
    p = (1.0 + np.sum(values[1:] >= values[0])) / (1.0 + n_permutations)
    return MMDResult(mmd2=float(values[0]), p_value=float(p), bandwidths=bws)


def rbf_gram(z: np.ndarray, *, kernel: str = "multi") -> tuple[np.ndarray, tuple[float, ...]]:
    """RBF Gram matrix of the pooled rows `z` (n, D) with median-heuristic bandwidth(s)."""
    zt = torch.from_numpy(np.asarray(z, dtype=np.float64))
    d2 = torch.cdist(zt, zt).square_().numpy()  # (n, n)
    off_diag = d2[~np.eye(len(d2), dtype=bool)]
    median = float(np.sqrt(np.median(off_diag))) or 1.0
    factors = MULTI_BANDWIDTH_FACTORS if kernel == "multi" else (1.0,)
    bws = tuple(median * f for f in factors)
    return np.mean([np.exp(-d2 / (2.0 * b * b)) for b in bws], axis=0), bws


def mmd2_from_gram(gram: np.ndarray, n_x: int) -> float:
    """Unbiased MMD² when the first `n_x` rows of the pooled Gram matrix are the first set."""
    is_x = np.zeros((1, len(gram)))
    is_x[0, :n_x] = 1.0
    return float(_mmd2_unbiased(gram, is_x)[0])


def _mmd2_unbiased(gram: np.ndarray, is_x: np.ndarray) -> np.ndarray:
    """Unbiased MMD² for each row of the 0/1 membership matrix `is_x` (P, n+m)."""
    is_y = 1.0 - is_x
    n, m = is_x[0].sum(), is_y[0].sum()
    diag = np.diag(gram)
    kx = is_x @ gram  # (P, n+m)
    sxx = (kx * is_x).sum(1) - is_x @ diag  # Σ_{i≠j} k(x_i, x_j)
    syy = ((is_y @ gram) * is_y).sum(1) - is_y @ diag
    sxy = (kx * is_y).sum(1)
    return sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2.0 * sxy / (n * m)


def _subsample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= n else x[np.sort(rng.choice(len(x), n, replace=False))]


# ----------------------------------------------------------------------------- Wasserstein, KS
def random_projections(dim: int, n_projections: int, *, seed: int) -> np.ndarray:
    """Unit directions (dim, n_projections), Gaussian then normalised (the layout POT uses)."""
    proj = np.random.default_rng(seed).standard_normal((dim, n_projections))
    return proj / np.linalg.norm(proj, axis=0, keepdims=True)


def sliced_wasserstein(
    x: np.ndarray, y: np.ndarray, *, n_projections: int = SLICED_PROJECTIONS, p: float = 2.0,
    seed: int = 0, projections: np.ndarray | None = None,
) -> float:
    """Sliced Wasserstein-p: (mean over random directions of W_p^p of the projections)^(1/p)."""
    fx, fy = flatten(x).astype(np.float64), flatten(y).astype(np.float64)
    proj = projections if projections is not None else random_projections(
        fx.shape[1], n_projections, seed=seed)
    px, py = fx @ proj, fy @ proj  # (N, P), (M, P)
    per = [wasserstein_1d(px[:, j], py[:, j], p=p) for j in range(proj.shape[1])]
    return float(np.mean(per) ** (1.0 / p))


def marginal_distances(x: np.ndarray, y: np.ndarray) -> dict[str, list[float]]:
    """Per channel, values pooled over records and time: 1D Wasserstein-1 and the KS statistic."""
    out: dict[str, list[float]] = {"wasserstein": [], "ks": []}
    for c in range(x.shape[1]):
        u, v = x[:, c].ravel(), y[:, c].ravel()
        out["wasserstein"].append(float(stats.wasserstein_distance(u, v)))
        out["ks"].append(float(stats.ks_2samp(u, v).statistic))
    return out


# ----------------------------------------------------------------------------- PRDC
def prdc(
    real: np.ndarray, fake: np.ndarray, *, k: int = PRDC_K, device: str | torch.device = "cpu",
    memory_mb: float = DEFAULT_MEMORY_MB,
) -> dict[str, float]:
    """Precision, recall, density, coverage (Naeem et al. 2020) with k-NN balls, in bounded memory."""
    fr, ff = flatten(real), flatten(fake)
    check_k(k, len(fr), name="real set", metric="PRDC", self_excluded=True)
    check_k(k, len(ff), name="generated set", metric="PRDC", self_excluded=True)
    r_rad = knn(fr, fr, k=k, exclude_self=True, device=device, memory_mb=memory_mb).distances[:, -1]
    f_rad = knn(ff, ff, k=k, exclude_self=True, device=device, memory_mb=memory_mb).distances[:, -1]
    in_real = np.zeros(len(ff))  # per fake: number of real balls containing it
    recalled = np.zeros(len(fr), dtype=bool)
    nearest_fake = np.full(len(fr), np.inf)
    for sl, d in distance_blocks(ff, fr, memory_mb=memory_mb, device=device):  # d: (f, n_real)
        in_real[sl] = (d < r_rad[None, :]).sum(axis=1)
        recalled |= (d < f_rad[sl, None]).any(axis=0)
        nearest_fake = np.minimum(nearest_fake, d.min(axis=0))
    return {
        "precision": float((in_real > 0).mean()),
        "recall": float(recalled.mean()),
        "density": float(in_real.mean() / k),
        "coverage": float((nearest_fake < r_rad).mean()),
    }


# ----------------------------------------------------------------------------- α, β, authenticity
def alpha_beta_authenticity(
    real: np.ndarray, fake: np.ndarray, *, n_steps: int = ALPHA_STEPS,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """α-precision, β-recall and authenticity (Alaa et al. 2022), on raw vectors.

    The paper embeds data with a one-class network first; here the embedding is the identity (as
    in synthcity's un-embedded variant): the α-support of the real data is the ball around its
    mean holding an α fraction of real records; β-recall checks each real record's nearest
    generated sample lies both within that record's own nearest-real distance and within the
    β-support of the generated data. Scores are 1 − normalised area between curve and diagonal.
    Authenticity: fraction of generated samples farther from their nearest real record than that
    record is from its own nearest real neighbour.
    """
    fr, ff = flatten(real).astype(np.float64), flatten(fake).astype(np.float64)
    check_k(1, len(fr), name="real set", metric="alpha-precision", self_excluded=True)
    alphas = np.linspace(0.0, 1.0, n_steps)
    center = fr.mean(axis=0)
    radii = np.quantile(np.linalg.norm(fr - center, axis=1), alphas)
    fake_to_center = np.linalg.norm(ff - center, axis=1)
    r_r = knn(fr, fr, k=1, exclude_self=True, device=device).distances[:, 0]
    r_f = knn(fr, ff, k=1, device=device)
    closest = ff[r_f.indices[:, 0]]
    closest_d = np.linalg.norm(closest - ff.mean(axis=0), axis=1)
    closest_radii = np.quantile(closest_d, alphas)
    alpha_curve = np.array([(fake_to_center <= r).mean() for r in radii])
    beta_curve = np.array([((r_f.distances[:, 0] <= r_r) & (closest_d <= r)).mean()
                           for r in closest_radii])
    f_r = knn(ff, fr, k=1, device=device)
    authentic = f_r.distances[:, 0] > r_r[f_r.indices[:, 0]]
    return {
        "alpha_precision": float(1.0 - np.abs(alphas - alpha_curve).sum() / alphas.sum()),
        "beta_recall": float(1.0 - np.abs(alphas - beta_curve).sum() / alphas.sum()),
        "authenticity": float(authentic.mean()),
    }
