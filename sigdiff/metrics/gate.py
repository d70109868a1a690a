"""The alignment gate: a joint criterion from metrics that rank real data above its references.

Each gate metric compares a candidate set with the alignment target (the holdout) and is put on a
common scale by its floor and its anchor reference, both measured the same way:

    score_m = (m(candidate) − m(floor)) / (m(anchor) − m(floor))

so 0 is "as aligned as unseen real data" and 1 is "as far off as the anchor" (the copier for the
distribution tests, the residual-noise real set for the spectrum). The joint gate score is the
largest of them (a generated set must be close to real in every respect), and a set *passes* when
it is at most `level`. A metric whose anchor does not sit clearly above its floor in this
evaluation (separation < 2 standard errors) cannot tell them apart here: it is flagged and left out
of the joint score rather than allowed to pass anything.

Standard errors come from the delete-half jackknife over the candidate's records (Shao & Wu 1989:
with d = n/2 deleted, SE² = mean over draws of (θ_half − mean θ_half)²); the target is held fixed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ._checks import flatten
from .alignment import MMD_MAX_SAMPLES, mmd2_from_gram, rbf_gram
from .spectral import log_spectral_distance, welch_psd

#: gate metric → the reference that marks 1 on its scale
GATE_ANCHORS: Mapping[str, str] = {
    "mmd2": "copier",
    "c2st_1nn": "copier",
    "log_spectral_distance_db": "residual_noise",
}
GATE_LEVEL = 0.5  # pass: at most half-way from real data to the anchor on every gate metric
GATE_DRAWS = 50  # delete-half jackknife draws for the standard errors
SEPARATION_SE = 2.0  # a usable metric's anchor sits this many SEs above its floor
SIGNAL_ONLY = ("log_spectral_distance_db",)


@dataclass(frozen=True)
class GateSpec:
    """Gate metrics with their anchors, the pass level and the jackknife draws."""

    anchors: Mapping[str, str] = field(default_factory=lambda: dict(GATE_ANCHORS))
    level: float = GATE_LEVEL
    draws: int = GATE_DRAWS

    def __post_init__(self) -> None:
        object.__setattr__(self, "anchors", dict(self.anchors))
        unknown = sorted(set(self.anchors) - set(GATE_ANCHORS))
        if unknown:
            raise ValueError(f"gate: unknown metric(s) {unknown}; valid: {sorted(GATE_ANCHORS)}")
        if not self.anchors:
            raise ValueError("gate: needs at least one metric")
        if self.level <= 0 or self.draws < 2:
            raise ValueError(f"gate: level must be > 0 and draws >= 2; got {self}")


def c2st_1nn(target: np.ndarray, candidate: np.ndarray) -> float:
    """Balanced leave-one-out 1-nearest-neighbour two-sample accuracy (Lopez-Paz & Oquab 2017;
    the 1-NN form of Xu et al. 2018): mean over the two sets of the fraction of records whose
    nearest other record comes from their own set. 0.5 = indistinguishable whatever the sizes;
    duplicated records (a copier) push it towards 1."""
    d = _pooled_distances(target, candidate)
    return _c2st_from_distances(d, len(target), np.arange(len(candidate)))


def _pooled_distances(target: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    z = torch.from_numpy(np.concatenate([flatten(target), flatten(candidate)]).astype(np.float64))
    d = torch.cdist(z, z).numpy()
    np.fill_diagonal(d, np.inf)
    return d


def _c2st_from_distances(d: np.ndarray, n_t: int, cand: np.ndarray) -> float:
    """Balanced 1-NN accuracy on the target rows and the candidate rows `cand` (0-based)."""
    rows = np.r_[np.arange(n_t), n_t + cand]
    sub = d[np.ix_(rows, rows)]
    is_target = np.arange(len(rows)) < n_t
    nearest_is_target = is_target[np.argmin(sub, axis=1)]
    acc_t = float(nearest_is_target[is_target].mean())
    acc_c = float((~nearest_is_target[~is_target]).mean())
    return 0.5 * (acc_t + acc_c)


@dataclass(frozen=True)
class GateMeasure:
    """Gate metric values of one candidate against the target, with jackknife SEs."""

    values: dict[str, float]
    draws: dict[str, np.ndarray]  # (B,) per metric: values on half-samples of the candidate

    def se(self, name: str) -> float:
        return float(self.draws[name].std(ddof=0))


def measure_gate(
    target: np.ndarray, candidate: np.ndarray, *, metrics: Sequence[str], sampling_rate: float,
    draws: int, seed: int,
) -> GateMeasure:
    """Gate metric values of `candidate` against `target` and their delete-half draws."""
    rng = np.random.default_rng([seed, 11])
    cand = candidate if len(candidate) <= MMD_MAX_SAMPLES else \
        candidate[np.sort(rng.choice(len(candidate), MMD_MAX_SAMPLES, replace=False))]
    n_t, n_c = len(target), len(cand)
    fns = {}
    if "mmd2" in metrics:
        gram, _ = rbf_gram(np.concatenate([flatten(target), flatten(cand)]))
        fns["mmd2"] = lambda idx: mmd2_from_gram(gram[np.ix_(np.r_[np.arange(n_t), n_t + idx],
                                                             np.r_[np.arange(n_t), n_t + idx])],
                                                 n_t)
    if "c2st_1nn" in metrics:
        dist = _pooled_distances(target, cand)
        fns["c2st_1nn"] = lambda idx: _c2st_from_distances(dist, n_t, idx)
    if "log_spectral_distance_db" in metrics:
        _, p_t = welch_psd(target, sampling_rate=sampling_rate)
        _, p_c = welch_psd(cand, sampling_rate=sampling_rate)
        m_t = p_t.mean(axis=0)
        fns["log_spectral_distance_db"] = lambda idx: log_spectral_distance(
            p_c[idx].mean(axis=0), m_t)
    full = np.arange(n_c)
    halves = [np.sort(rng.choice(n_c, n_c // 2, replace=False)) for _ in range(draws)]
    return GateMeasure(values={k: float(f(full)) for k, f in fns.items()},
                       draws={k: np.array([f(h) for h in halves]) for k, f in fns.items()})


def gate_scores(
    generated: GateMeasure, references: Mapping[str, GateMeasure], *, spec: GateSpec,
    n: int | None = None,
) -> dict[str, object]:
    """The gate block of a report: per metric its raw values, 0–1 score and SE, whether it can
    separate its floor from its anchor here, and the joint score (max over usable metrics);
    `n` is the number of compared records, reported with the score."""
    floor = references["floor"]
    per: dict[str, dict[str, object]] = {}
    joint_draws = []
    for name, anchor_name in spec.anchors.items():
        if name not in generated.values:
            continue
        anchor = references[anchor_name]
        gap = anchor.values[name] - floor.values[name]
        gap_se = float(np.hypot(anchor.se(name), floor.se(name)))
        usable = bool(gap > SEPARATION_SE * gap_se and gap > 0)
        score = (generated.values[name] - floor.values[name]) / gap if gap > 0 else float("nan")
        per[name] = {"value": generated.values[name], "floor": floor.values[name],
                     "anchor": anchor_name, "anchor_value": anchor.values[name],
                     "score": score, "se": generated.se(name) / gap if gap > 0 else float("nan"),
                     "separation_se": gap / gap_se if gap_se > 0 else float("inf"),
                     "usable": usable}
        if usable:
            joint_draws.append((generated.draws[name] - floor.values[name]) / gap)
    usable_scores = [float(v["score"]) for v in per.values() if v["usable"]]  # type: ignore[arg-type]
    joint = max(usable_scores) if usable_scores else float("nan")
    se = float(np.max(joint_draws, axis=0).std()) if joint_draws else float("nan")
    return {"score": joint, "se": se, "level": spec.level,
            "passes": bool(joint <= spec.level) if usable_scores else None,
            "metrics": per, "n": n}
