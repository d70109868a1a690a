"""The quality axis: can a trained classifier tell a set from held-out real records?

A classifier two-sample test (C2ST; Lopez-Paz & Oquab 2017), trained rather than 1-NN: each
record becomes random-convolution features (MiniRocket's kernels, Dempster et al. 2021: the 84
length-9 kernels with weights −1 and three +2, at exponentially spaced dilations, each output
summarised as the proportion of positive values above biases taken from the real records'
quantiles), and a ridge classifier (MiniRocket's) learns *candidate* against *held-out real*
under stratified k-fold cross-validation. The out-of-fold ROC AUC measures how far the candidate
is from real data in any respect the features see — residual noise and blur (the kernels are
zero-sum, so they respond to texture and slopes), shapes, amplitudes, the mix of modes, and the
loss of diversity of a set that repeats a few records.

    score = 2 · AUC − 1

is 0 for a set the classifier cannot tell from real records (unseen real records score 0 in
expectation, whatever the sizes: both classes are subsampled to the same size) and grows to 1
as quality drops. Its standard error combines DeLong's variance of each fold's AUC (DeLong et al.
1988) over the folds' disjoint test sets.

This is one axis of two: it is reported beside memorization (`sigdiff.metrics.memorization`,
against the training records), never folded into one number with it. Whether it earns its place
is measured by `sigdiff validate` (docs/metric-validation.md): it must rank the floor better than
noisy, blurred, mode-dropped and copied sets, with intervals over repeats.

Images (N, C, H, W) are read as two raster scans (row-major and column-major), so the same 1D
kernels see both axes.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import RidgeClassifierCV
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

KERNEL_LENGTH = 9
N_DILATIONS = 8  # exponentially spaced dilations up to (L − 1) / (KERNEL_LENGTH − 1), deduplicated
#: quantile levels of the real records' convolution outputs used as biases (per kernel, dilation)
BIAS_QUANTILES = (0.1, 0.3, 0.5, 0.7, 0.9)
FOLDS = 5
MAX_PER_CLASS = 1000  # records per class (seeded subsample) the classifier sees at most
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 10))
MIN_PER_CLASS = 2 * FOLDS  # each test fold needs at least two records of each class
QUALITY_METRIC = "c2st_auc"
DEFINITION = ("score = 2·AUC − 1 of a ridge classifier on random-convolution (MiniRocket) "
              "features, candidate vs held-out real records, stratified 5-fold cross-validated "
              "(0 = as good as unseen real records, 1 = always told apart)")


def _kernels() -> np.ndarray:
    """MiniRocket's 84 kernels (C(9, 3)): −1 everywhere, +2 at three positions; each sums to 3·2
    − 6 = 0, so a constant offset never changes its output. (84, 9)."""
    w = -np.ones((84, KERNEL_LENGTH), dtype=np.float32)
    for row, idx in enumerate(itertools.combinations(range(KERNEL_LENGTH), 3)):
        w[row, list(idx)] = 2.0
    return w


def _as_sequences(x: np.ndarray) -> np.ndarray:
    """Signals as they are; images (N, C, H, W) as their row- and column-major raster scans
    stacked on the channel axis: (N, 2C, H·W)."""
    if x.ndim == 3:
        return x
    n, c = x.shape[:2]
    rows = x.reshape(n, c, -1)
    cols = np.swapaxes(x, 2, 3).reshape(n, c, -1)
    return np.concatenate([rows, cols], axis=1)


def dilations(length: int) -> np.ndarray:
    """Exponentially spaced dilations 1 … (L − 1) / 8 (MiniRocket's spacing), deduplicated."""
    top = max((length - 1) / (KERNEL_LENGTH - 1), 1.0)
    return np.unique(np.floor(2.0 ** np.linspace(0, np.log2(top), N_DILATIONS)).astype(int))


@dataclass(frozen=True)
class RocketFeatures:
    """A fitted feature map: per dilation a (84, C, 9) weight and its (84, Q) biases, plus the
    per-channel standardisation of the real records it was fitted on."""

    weights: tuple[torch.Tensor, ...]
    biases: tuple[torch.Tensor, ...]
    dilations: tuple[int, ...]
    mean: np.ndarray
    std: np.ndarray

    @property
    def size(self) -> int:
        return sum(b.numel() for b in self.biases)

    def __call__(self, x: np.ndarray, *, chunk: int = 256) -> np.ndarray:
        """Features (N, size) of `x` (same layout as the fitted records): proportions in [0, 1]."""
        z = torch.from_numpy(((_as_sequences(x) - self.mean) / self.std).astype(np.float32))
        out = [torch.cat([_ppv(z[i:i + chunk], w, b, d)
                          for w, b, d in zip(self.weights, self.biases, self.dilations)], dim=1)
               for i in range(0, len(z), chunk)]
        return torch.cat(out).numpy()


def _conv(z: torch.Tensor, weight: torch.Tensor, dilation: int) -> torch.Tensor:
    """'same'-padded dilated convolution: (N, C, L) -> (N, 84, L)."""
    return F.conv1d(z, weight, dilation=dilation, padding=dilation * (KERNEL_LENGTH // 2))


def _ppv(z: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, dilation: int) -> torch.Tensor:
    """Proportion of positive values of (conv − bias) per kernel and bias: (N, 84·Q)."""
    y = _conv(z, weight, dilation)  # (N, 84, L)
    return (y[..., None] > bias[None, :, None, :]).float().mean(dim=2).flatten(1)


def fit_features(real: np.ndarray, *, seed: int) -> RocketFeatures:
    """Fit the feature map on real records (N, C, L) or images: the standardisation, a random
    channel subset per kernel and dilation (multichannel data, as MiniRocket's multivariate form)
    and the biases at `BIAS_QUANTILES` of the real records' outputs. Deterministic in `seed`."""
    seqs = _as_sequences(np.asarray(real, dtype=np.float32))
    axes = (0, 2)
    mean = seqs.mean(axis=axes, keepdims=True)[:1]
    std = seqs.std(axis=axes, keepdims=True)[:1] + 1e-8
    z = torch.from_numpy(((seqs - mean) / std).astype(np.float32))
    c = z.shape[1]
    gen = torch.Generator().manual_seed(int(seed))
    base = torch.from_numpy(_kernels())
    q = torch.tensor(BIAS_QUANTILES, dtype=torch.float32)
    weights, biases, dils = [], [], []
    for d in dilations(z.shape[-1]):
        mask = _channel_mask(c, gen)  # (84, C)
        w = base[:, None, :] * mask[:, :, None]  # (84, C, 9)
        y = _conv(z, w, int(d)).transpose(0, 1).reshape(84, -1)  # (84, N·L)
        weights.append(w)
        biases.append(torch.quantile(y, q, dim=1).T.contiguous())  # (84, Q)
        dils.append(int(d))
    return RocketFeatures(tuple(weights), tuple(biases), tuple(dils), mean, std)


def _channel_mask(c: int, gen: torch.Generator) -> torch.Tensor:
    """Per kernel a random non-empty subset of channels, of size 2^U(0, log2(min(C, 9) + 1))
    rounded down (MiniRocket's multivariate rule); all ones for one channel. (84, C)."""
    if c == 1:
        return torch.ones(84, 1)
    top = np.log2(min(c, KERNEL_LENGTH) + 1)
    sizes = torch.floor(2.0 ** (torch.rand(84, generator=gen) * top)).clamp(1, c).long()
    order = torch.argsort(torch.rand(84, c, generator=gen), dim=1)
    return (order < sizes[:, None]).float()


# ----------------------------------------------------------------------------- the two-sample test
@dataclass(frozen=True)
class TwoSample:
    """Cross-validated classifier two-sample test of one candidate against real records."""

    auc: float
    se: float  # standard error of the AUC (DeLong, per fold, combined)
    n: int  # records per class

    @property
    def score(self) -> float:
        return 2.0 * self.auc - 1.0

    @property
    def score_se(self) -> float:
        return 2.0 * self.se


def auc_delong(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    """ROC AUC = P(pos > neg) + ½ P(tie) (the Mann-Whitney statistic) and DeLong's variance."""
    pos, neg = np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])  # (m, n)
    auc = float(psi.mean())
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    var = (v10.var(ddof=1) / len(pos) if len(pos) > 1 else 0.0) + \
        (v01.var(ddof=1) / len(neg) if len(neg) > 1 else 0.0)
    return auc, float(var)


def c2st(real: np.ndarray, candidate: np.ndarray, *, seed: int, folds: int = FOLDS,
         max_per_class: int = MAX_PER_CLASS) -> TwoSample:
    """Out-of-fold AUC of a ridge classifier telling `candidate` (positive) from `real` features
    (rows are records). Both classes are subsampled to the same size m; each fold's AUC is
    measured on its own test records and the fold AUCs are averaged, weighted by test size."""
    m = min(len(real), len(candidate), max_per_class)
    if m < max(MIN_PER_CLASS, 2 * folds):
        raise ValueError(f"quality: the classifier two-sample test needs at least "
                         f"{max(MIN_PER_CLASS, 2 * folds)} records per set; got {m} (real "
                         f"{len(real)}, candidate {len(candidate)})")
    rng = np.random.default_rng([seed, 13])
    x = np.concatenate([real[np.sort(rng.choice(len(real), m, replace=False))],
                        candidate[np.sort(rng.choice(len(candidate), m, replace=False))]])
    y = np.r_[np.zeros(m, dtype=int), np.ones(m, dtype=int)]
    split = StratifiedKFold(folds, shuffle=True, random_state=int(rng.integers(2**31)))
    aucs, variances, sizes = [], [], []
    for tr, te in split.split(x, y):
        scaler = StandardScaler().fit(x[tr])
        clf = RidgeClassifierCV(alphas=RIDGE_ALPHAS).fit(scaler.transform(x[tr]), y[tr])
        s = clf.decision_function(scaler.transform(x[te]))
        auc, var = auc_delong(s[y[te] == 1], s[y[te] == 0])
        aucs.append(auc)
        variances.append(var)
        sizes.append(len(te))
    w = np.asarray(sizes, dtype=np.float64) / sum(sizes)
    return TwoSample(float(w @ np.asarray(aucs)), float(np.sqrt(w**2 @ np.asarray(variances))), m)


# ----------------------------------------------------------------------------- report blocks
def quality_entry(test: TwoSample) -> dict[str, float | int]:
    """The JSON entry of one set: score, its SE, the AUC and the records per class."""
    return {"score": test.score, "se": test.score_se, "auc": test.auc, "n": test.n}


def quality_section(generated: Mapping[str, Any], references: Mapping[str, Mapping[str, Any]]
                    ) -> dict[str, Any]:
    """The report's top-level `quality` block: the generated set's score beside every reference's
    (each measured the same way against the same held-out real records), and per reference
    whether this draw ranks the floor better (`floor_beats`)."""
    floor = (references.get("floor") or {}).get("score")
    beats = {name: None if floor is None or ref["score"] is None else bool(floor < ref["score"])
             for name, ref in references.items() if name != "floor"}
    return {"score": generated["score"], "se": generated["se"], "auc": generated["auc"],
            "n": generated["n"], "skipped": generated.get("skipped"), "metric": QUALITY_METRIC,
            "definition": DEFINITION,
            "references": {k: dict(v) for k, v in references.items()}, "floor_beats": beats}


def quality_line(section: Mapping[str, Any], *, shown: Sequence[str] = ()) -> str:
    """One Markdown line: the generated score ± SE beside the floor and the named references."""
    refs = section["references"]
    if section["score"] is None:
        return f"**Quality (against held-out real records): not measured** ({section['skipped']})."
    parts = [f"{name} {_num(refs[name]['score'])}" for name in ("floor", *shown) if name in refs]
    known = [v for v in section["floor_beats"].values() if v is not None]
    missed = [k for k, v in section["floor_beats"].items() if v is False]
    check = (f" In this draw the floor scores better than {sum(known)} of {len(known)} references"
             + (f" (not: {', '.join(missed)})" if missed else "") + "; `sigdiff validate` gives "
             "the same check with intervals over repeats.")
    return (f"**Quality (against held-out real records): {section['score']:.3f} ± "
            f"{section['se']:.3f}** (SE, n = {section['n']} per class; 0 = as good as unseen "
            "real records, 1 = always told apart). References: " + ", ".join(parts) + "."
            + check)


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


@dataclass(frozen=True)
class QualityBasis:
    """What every set's quality is measured against: the feature map fitted on the held-out real
    records (the alignment target) and their features, computed once per evaluation."""

    features: RocketFeatures
    target: np.ndarray  # (N_target, size) features of the held-out real records
    seed: int

    @classmethod
    def fit(cls, target: np.ndarray, *, seed: int) -> QualityBasis:
        fm = fit_features(target, seed=seed)
        return cls(fm, fm(target), seed)

    def measure(self, candidate: np.ndarray) -> dict[str, Any]:
        """The quality entry (score, SE, AUC, n per class) of `candidate` (records); score None
        with the reason when either set is too small for the cross-validated test."""
        m = min(len(self.target), len(candidate), MAX_PER_CLASS)
        if m < MIN_PER_CLASS:
            return {"score": None, "se": None, "auc": None, "n": m,
                    "skipped": f"needs at least {MIN_PER_CLASS} records in the held-out target "
                               f"and the candidate; got {len(self.target)} and {len(candidate)}"}
        rng = np.random.default_rng([self.seed, 17])  # only the records the test will use
        picked = candidate if len(candidate) <= m else \
            candidate[np.sort(rng.choice(len(candidate), m, replace=False))]
        return quality_entry(c2st(self.target, self.features(picked), seed=self.seed))
