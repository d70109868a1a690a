"""`evaluate`: the one evaluation path of sigdiff — `sigdiff eval`, sweeps and the report all call
it and read the same result schema.

Every figure is reported for the generated set *and* for reference sets of the same size built by
`sigdiff.metrics.references`: the real-data **floor** (records unseen in training and distinct
from the alignment target), a **copier**, **noisy copies**, **residual-noise** real data and
**smoothed** real data. A metric is only trusted where it ranks the floor better than the copier
and the corrupted sets (`ranking` in the report; intervals in `sigdiff validate`).

- Memorization (nearest-neighbour 1/3 rule, DCR) is measured against the training records, raw
  and after a fixed low-pass (`memorization.*_lowpass`: residual noise cannot mask a copy there).
- Alignment and spectra are measured against the alignment target (the holdout), with the
  generated set subsampled to the references' size.
- The paper's metric (PCA-W/PCA-JS against the *training* set) is `alignment_vs_train`: copying
  the training records scores best on it by construction (a copy's projection *is* a training
  record's), so read it beside memorization, never alone.
- The gate (`sigdiff.metrics.gate`) joins the metrics that separate floor from anchor into one
  0 (real) – 1 (copier / corrupted) score with a standard error.

Where the real records come from: with `pool` (real records used neither for training nor as the
target) the target is the whole holdout and the floor is drawn from the pool; without it the
holdout is split in two halves (seeded): one is the target, the other the floor.

Images (N, C, H, W) go through the same code in pixel space; spectral figures are skipped for
them and the report says so under `meta.skipped`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .._utils import atomic_write_text, choice_error, unknown_keys
from ._checks import as_signals, check_k, check_same_layout, is_image
from .alignment import (
    MMD_PERMUTATIONS,
    PCA,
    PCA_COMPONENTS,
    PRDC_K,
    alpha_beta_authenticity,
    fit_pca,
    marginal_distances,
    mmd2,
    pca_distances,
    prdc,
    sliced_wasserstein,
)
from .classifiers import discriminative_score, predictive_score
from .gate import SIGNAL_ONLY, GateMeasure, GateSpec, c2st_1nn, gate_scores, measure_gate
from .memorization import (
    MEMORIZATION_THRESHOLD,
    NeighborRatio,
    dcr_comparison,
    most_copied,
    neighbor_ratio,
)
from .quality import QualityBasis, quality_line, quality_section
from .references import LOWPASS_FRACTION, ReferenceSpec, build_references, lowpass, take
from .spectral import default_bands, spectral_report
from .tsgbench import tsgbench_report

EXTRAS = ("alpha_beta", "tsgbench", "classifiers", "features")
DEFAULT_EXTRAS = ("alpha_beta", "tsgbench", "classifiers")
IMAGE_DEFAULT_EXTRAS = ("alpha_beta", "features")
#: Extras defined along a time axis, skipped (and reported as skipped) for images.
SIGNAL_ONLY_EXTRAS = ("tsgbench", "classifiers")
SKIP_REASON = "images: defined along a time axis (spectra, autocorrelation, forecasting)"
SECTIONS = ("memorization", "alignment_vs_holdout", "spectral", "alignment_vs_train")
Block = dict[str, float]
# Which way is better, for tables and for the ranking checks (memorization: "higher" = more
# copy-like is worse, so a copier must score *higher* memorization than the floor).
DIRECTION = {
    "memorized_fraction": "lower", "memorized_fraction_lowpass": "lower",
    "dcr_median_ratio": "higher", "dcr_median_ratio_lowpass": "higher", "dcr_p_closer": "higher",
    "exact_copies": "lower",
    "pca_wasserstein": "lower", "pca_js": "lower", "mmd2": "lower", "mmd2_p": "higher",
    "c2st_1nn": "lower", "sliced_wasserstein": "lower",
    "marginal_wasserstein": "lower", "marginal_ks": "lower", "precision": "higher",
    "recall": "higher", "density": "higher", "coverage": "higher", "alpha_precision": "higher",
    "beta_recall": "higher", "authenticity": "higher", "mdd": "lower", "acd": "lower",
    "sd": "lower", "kd": "lower", "discriminative": "lower", "predictive_mae": "lower",
    "frechet_learned": "lower", "log_spectral_distance_db": "lower",
    "wasserstein_fourier_hz": "lower", "coherence_abs_diff": "lower",
}
#: Metrics that reward copying by construction (reported, never ranked or gated).
REWARDS_COPYING = ("alignment_vs_train",)
WHY_TRAIN_METRIC = ("the paper's metric compares generated data with the *training* set, so a "
                    "copier (whose records are training records) scores best on it: read it "
                    "beside memorization, never alone")


@dataclass(frozen=True)
class EvalConfig:
    """Every knob of an evaluation in one place; `sigdiff eval` flags and a sweep's
    `[eval.metrics]` table set the same fields."""

    seed: int = 0
    threshold: float = MEMORIZATION_THRESHOLD
    k: int = PRDC_K
    n_components: int = PCA_COMPONENTS
    mmd_permutations: int = MMD_PERMUTATIONS
    extras: tuple[str, ...] | None = None  # None: the default for the data's kind
    lowpass: float = LOWPASS_FRACTION
    references: ReferenceSpec = field(default_factory=ReferenceSpec)
    gate: GateSpec = field(default_factory=GateSpec)
    #: spectral bands in Hz; None: `default_bands` for the data's sampling rate and kind
    bands: Mapping[str, tuple[float, float]] | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.extras is not None:
            object.__setattr__(self, "extras", tuple(self.extras))
            for e in self.extras:
                if e not in EXTRAS:
                    raise choice_error("evaluation extra", e, EXTRAS)
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"evaluate: threshold must lie in (0, 1]; got {self.threshold}")
        if not 0.0 < self.lowpass <= 1.0:
            raise ValueError(f"evaluate: lowpass (fraction of Nyquist) must lie in (0, 1]; got "
                             f"{self.lowpass}")
        if isinstance(self.references, Mapping):
            object.__setattr__(self, "references", ReferenceSpec(**self.references))
        if isinstance(self.gate, Mapping):
            object.__setattr__(self, "gate", GateSpec(**self.gate))
        if self.bands is not None:
            object.__setattr__(self, "bands", {k: tuple(v) for k, v in dict(self.bands).items()})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["references"]["noise_levels"] = list(self.references.noise_levels)
        return json.loads(json.dumps(d))


def eval_config_from_dict(values: Mapping[str, Any]) -> EvalConfig:
    """An EvalConfig from plain values (TOML / JSON); unknown keys are an error naming them."""
    message = unknown_keys(EvalConfig, values, where="eval.metrics")
    if message:
        raise ValueError(message)
    try:
        return EvalConfig(**values)
    except TypeError as exc:
        raise ValueError(f"evaluation config: {exc}") from exc


# ----------------------------------------------------------------------------- the context
@dataclass(frozen=True)
class EvalContext:
    """Everything an evaluation shares across generated sets: validated real data, the PCA, the
    low-passed training records and every reference's figures (computed once; a sweep reuses
    one context for all checkpoints of a training set)."""

    train: np.ndarray
    target: np.ndarray
    n: int  # records per compared set (references and the subsampled generated set)
    pca: PCA
    train_lowpass: np.ndarray
    sampling_rate: float
    bands: dict[str, tuple[float, float]]
    config: EvalConfig
    extras: tuple[str, ...]
    skipped: dict[str, str]
    images: bool
    references: dict[str, np.ndarray]
    reference_results: dict[str, dict[str, Any]]
    gate_references: dict[str, GateMeasure]
    floor_ratio: NeighborRatio
    floor_ratio_lowpass: NeighborRatio
    meta: dict[str, Any]
    quality: QualityBasis  # the quality axis' classifier features, fitted on the target


def split_real(holdout: np.ndarray, pool: np.ndarray | None, *, seed: int
               ) -> tuple[np.ndarray, np.ndarray, str]:
    """(alignment target, floor pool, how): the holdout and the pool, or the holdout's two halves."""
    if pool is not None:
        return holdout, pool, "pool"
    rng = np.random.default_rng([seed, 3])
    perm = rng.permutation(len(holdout))
    half = len(holdout) // 2
    return holdout[np.sort(perm[:half])], holdout[np.sort(perm[half:])], "holdout halves"


def prepare(
    train: np.ndarray, holdout: np.ndarray, *, n: int, sampling_rate: float,
    pool: np.ndarray | None = None, config: EvalConfig | None = None, progress: bool = False,
    names: tuple[str, str] = ("train", "holdout"), signal_kind: str = "generic",
) -> EvalContext:
    """Validate the real data, build the references of `n` records and measure them.
    `signal_kind` ('ecg' or 'generic') picks the default spectral bands."""
    cfg = config or EvalConfig()
    tr = as_signals(train, name=names[0], metric="evaluate")
    ho = as_signals(holdout, name=names[1], metric="evaluate")
    check_same_layout(tr, ho, names=names, metric="evaluate")
    po = None if pool is None else as_signals(pool, name="pool", metric="evaluate")
    if po is not None:
        check_same_layout(tr, po, names=(names[0], "pool"), metric="evaluate")
    target, floor_pool, how = split_real(ho, po, seed=cfg.seed)
    images = is_image(tr)
    extras = cfg.extras if cfg.extras is not None else (
        IMAGE_DEFAULT_EXTRAS if images else DEFAULT_EXTRAS)
    skipped = {e: SKIP_REASON for e in ["spectral", *extras] if images and
               (e == "spectral" or e in SIGNAL_ONLY_EXTRAS)}
    extras = tuple(e for e in extras if e not in skipped)
    n = min(n, len(floor_pool))
    for arr, what in ((tr, names[0]), (target, "the alignment target")):
        check_k(cfg.k, len(arr), name=what, metric="evaluate (PRDC)", self_excluded=True)
    check_k(cfg.k, n, name="the compared sets", metric="evaluate (PRDC)", self_excluded=True)
    if len(tr) < 2:
        raise ValueError(f"evaluate: the ratio test needs 2 training records; {names[0]} has "
                         f"{len(tr)}")
    refs = build_references(tr, floor_pool, n=n, spec=cfg.references, seed=cfg.seed)
    if cfg.references.mode_clusters and "mode_dropped" not in refs:
        skipped["mode_dropped"] = (f"the floor pool's {len(floor_pool)} records are too few to "
                                   f"cluster into {cfg.references.mode_clusters} modes")
    pca = fit_pca(tr, n_components=cfg.n_components)
    train_lp = lowpass(tr, cfg.lowpass)
    floor = refs["floor"]
    floor_ratio = neighbor_ratio(floor, tr, threshold=cfg.threshold, name="floor",
                                 device=cfg.device)
    floor_lp = neighbor_ratio(lowpass(floor, cfg.lowpass), train_lp, threshold=cfg.threshold,
                              name="floor", device=cfg.device)
    gate_metrics = [m for m in cfg.gate.anchors if not (images and m in SIGNAL_ONLY)]
    bands = dict(cfg.bands) if cfg.bands is not None else (
        {} if images else default_bands(sampling_rate, kind=signal_kind))
    meta = {"n_train": len(tr), "n_holdout": len(ho), "n_target": len(target),
            "n_floor_pool": len(floor_pool), "n_compared": n, "real_split": how,
            "channels": tr.shape[1], "length": None if images else tr.shape[2],
            "spatial_shape": list(tr.shape[2:]), "kind": "image" if images else "signal",
            "skipped": skipped, "sampling_rate": sampling_rate, "extras": list(extras),
            "bands": {k: list(v) for k, v in bands.items()}, "signal_kind": signal_kind,
            "references": list(refs), "gate_metrics": gate_metrics,
            "pca_explained": pca.explained.tolist(), "config": cfg.to_dict()}
    ctx = EvalContext(tr, target, n, pca, train_lp, sampling_rate, bands, cfg, extras, skipped,
                      images, refs, {}, {}, floor_ratio, floor_lp, meta,
                      QualityBasis.fit(target, seed=cfg.seed))
    bar = tqdm(refs.items(), desc="references", disable=not progress, total=len(refs))
    for name, x in bar:
        bar.set_postfix_str(name)
        ratios = (floor_ratio, floor_lp) if name == "floor" else None  # measured just above
        ctx.reference_results[name] = _measure(ctx, x, x, name=name, with_extras=name == "floor",
                                               ratios=ratios)
        ctx.gate_references[name] = measure_gate(
            target, x, metrics=gate_metrics, sampling_rate=sampling_rate,
            draws=cfg.gate.draws, seed=cfg.seed)
    return ctx


# ----------------------------------------------------------------------------- measuring a set
def _measure(ctx: EvalContext, full: np.ndarray, compared: np.ndarray, *, name: str,
             with_extras: bool,
             ratios: tuple[NeighborRatio, NeighborRatio] | None = None) -> dict[str, Any]:
    """Every figure of one set: memorization on `full` (its raw and low-passed nearest-neighbour
    ratios, unless already measured: `ratios`), alignment on `compared` (n records)."""
    cfg = ctx.config
    nr, lp = ratios or (
        neighbor_ratio(full, ctx.train, threshold=cfg.threshold, name=name, device=cfg.device),
        neighbor_ratio(lowpass(full, cfg.lowpass), ctx.train_lowpass, threshold=cfg.threshold,
                       name=name, device=cfg.device))
    dcr = dcr_comparison(nr.d1, ctx.floor_ratio.d1)
    dcr_lp = dcr_comparison(lp.d1, ctx.floor_ratio_lowpass.d1)
    memo = {"memorized_fraction": nr.fraction, "memorized_fraction_lowpass": lp.fraction,
            "dcr_median_ratio": dcr["median_ratio"],
            "dcr_median_ratio_lowpass": dcr_lp["median_ratio"],
            "dcr_p_closer": dcr["p_closer"], "exact_copies": int((nr.d1 == 0).sum())}
    extras = ctx.extras if with_extras else ()
    align = alignment_block(ctx.target, compared, pca=ctx.pca, k=cfg.k, seed=cfg.seed,
                            extras=extras, device=cfg.device,
                            mmd_permutations=cfg.mmd_permutations if with_extras else 0,
                            features_fit_on=ctx.train)
    if not with_extras:
        align.pop("mmd2_p", None)
    n_tr = min(len(compared), len(ctx.train))
    rng = np.random.default_rng([cfg.seed, 5])
    vs_train = {**pca_distances(take(compared, n_tr, rng), ctx.train, pca=ctx.pca),
                "mmd2": mmd2(ctx.train, compared, n_permutations=0, seed=cfg.seed).mmd2}
    spectral = {} if ctx.images else _flat_spectral(spectral_report(
        ctx.target, compared, sampling_rate=ctx.sampling_rate, bands=ctx.bands))
    return {"memorization": memo, "alignment_vs_holdout": align, "spectral": spectral,
            "alignment_vs_train": vs_train, "quality": ctx.quality.measure(compared),
            "_ratio": nr, "_dcr": dcr}


def evaluate_with(ctx: EvalContext, samples: np.ndarray, *, name: str = "samples",
                  progress: bool = False) -> dict[str, Any]:
    """The full report of one generated set against a prepared context."""
    return _evaluate(ctx, samples, name=name, progress=progress)[0]


def _evaluate(ctx: EvalContext, samples: np.ndarray, *, name: str, progress: bool
              ) -> tuple[dict[str, Any], NeighborRatio]:
    """The report and the generated set's nearest-neighbour ratios (reused by the plots)."""
    sa = as_signals(samples, name=name, metric="evaluate")
    check_same_layout(ctx.train, sa, names=("train", name), metric="evaluate")
    check_k(ctx.config.k, min(len(sa), ctx.n), name=name, metric="evaluate (PRDC)",
            self_excluded=True)
    rng = np.random.default_rng([ctx.config.seed, 1])
    compared = take(sa, ctx.n, rng)
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("generated", lambda: _measure(ctx, sa, compared, name=name, with_extras=True)),
        ("gate", lambda: measure_gate(ctx.target, compared, metrics=ctx.meta["gate_metrics"],
                                      sampling_rate=ctx.sampling_rate,
                                      draws=ctx.config.gate.draws, seed=ctx.config.seed)),
    ]
    results = []
    with tqdm(steps, desc="sigdiff eval", disable=not progress) as bar:
        for label, step in bar:
            bar.set_postfix_str(label)
            results.append(step())
    gen, gate_gen = results
    report: dict[str, Any] = {"meta": {**ctx.meta, "n_samples": len(sa)}}
    report["quality"] = quality_section(
        gen["quality"], {ref: ctx.reference_results[ref]["quality"] for ref in ctx.references})
    for section in SECTIONS:
        report[section] = {
            metric: {"generated": value,
                     **{ref: ctx.reference_results[ref][section].get(metric)
                        for ref in ctx.references}}
            for metric, value in gen[section].items()}
    report["memorization_detail"] = {
        "threshold": ctx.config.threshold, "lowpass_fraction": ctx.config.lowpass,
        "dcr": gen["_dcr"], "most_copied": most_copied(gen["_ratio"].nearest,
                                                       gen["_ratio"].memorized)}
    report["gate"] = gate_scores(gate_gen, ctx.gate_references, spec=ctx.config.gate,
                                 n=len(compared))
    report["ranking"] = ranking(report, list(ctx.references))
    return report, gen["_ratio"]


def ranking(report: Mapping[str, Any], references: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per metric (one draw): does it rank the floor better than the copier and than each
    corrupted reference? `None` where a value is missing. Metrics that reward copying by
    construction are listed with `rewards_copying`."""
    out: dict[str, dict[str, Any]] = {}
    corrupted = [r for r in references if r not in ("floor", "copier")]
    for section in SECTIONS:
        for metric, values in report[section].items():
            direction = DIRECTION.get(metric, "lower")
            key = f"{section}.{metric}"
            entry: dict[str, Any] = {"direction": direction,
                                     "floor_beats_copier": _beats(values, "copier", direction)}
            entry["floor_beats"] = {r: _beats(values, r, direction) for r in corrupted}
            if section in REWARDS_COPYING:
                entry["rewards_copying"] = True
            out[key] = entry
    return out


def _beats(values: Mapping[str, Any], ref: str, direction: str) -> bool | None:
    f, r = values.get("floor"), values.get(ref)
    if f is None or r is None or not (np.isfinite(f) and np.isfinite(r)):
        return None
    return bool(f < r) if direction == "lower" else bool(f > r)


def evaluate(
    train: np.ndarray, holdout: np.ndarray, samples: np.ndarray, *, sampling_rate: float,
    pool: np.ndarray | None = None, config: EvalConfig | None = None,
    out_dir: str | os.PathLike[str] | None = None, progress: bool = True,
    names: tuple[str, str, str] = ("train", "holdout", "samples"), signal_kind: str = "generic",
) -> dict[str, Any]:
    """Memorization (raw and low-passed), alignment, spectra, the paper's metric and the gate
    for `samples`, each beside the floor and the references. Arrays are (N, C, L) or images
    (N, C, H, W). With `out_dir`, writes metrics.json, metrics.md and PNGs there."""
    cfg = config or EvalConfig()
    sa = as_signals(samples, name=names[2], metric="evaluate")
    tr = as_signals(train, name=names[0], metric="evaluate")
    check_same_layout(tr, sa, names=(names[0], names[2]), metric="evaluate")
    check_k(cfg.k, len(sa), name=names[2], metric="evaluate (PRDC)", self_excluded=True)
    ctx = prepare(train, holdout, n=len(sa), sampling_rate=sampling_rate, pool=pool, config=cfg,
                  progress=progress, names=names[:2], signal_kind=signal_kind)
    report, ratio = _evaluate(ctx, sa, name=names[2], progress=progress)
    report["meta"]["stores"] = dict(zip(("train", "holdout", "samples"), names))
    if out_dir is not None:
        write_outputs(report, Path(out_dir), ctx=ctx, samples=sa, ratio=ratio)
    return report


def flatten_report(report: Mapping[str, Any]) -> dict[str, Any]:
    """The flat row a sweep writes per checkpoint: `section.metric` for the generated set,
    `section.metric@reference` for each reference, and `gate.*`."""
    row: dict[str, Any] = {}
    for section in SECTIONS:
        for metric, values in report[section].items():
            for source, v in values.items():
                key = f"{section}.{metric}" + ("" if source == "generated" else f"@{source}")
                row[key] = v
    quality = report["quality"]
    row.update({"quality.score": quality["score"], "quality.se": quality["se"]})
    row.update({f"quality.score@{ref}": v["score"] for ref, v in quality["references"].items()})
    gate = report["gate"]
    row.update({"gate.score": gate["score"], "gate.se": gate["se"], "gate.passes": gate["passes"],
                "gate.n": gate["n"]})
    for metric, g in gate["metrics"].items():
        for k in ("score", "se", "usable"):
            row[f"gate.{metric}.{k}"] = g[k]
    return row


def alignment_block(
    reference: np.ndarray, candidate: np.ndarray, *, pca: PCA, k: int, seed: int,
    extras: tuple[str, ...], device: str | torch.device, mmd_permutations: int,
    features_fit_on: np.ndarray | None = None,
) -> Block:
    """Every alignment figure of `candidate` against `reference`, as a flat name → value dict."""
    mmd = mmd2(reference, candidate, n_permutations=mmd_permutations, seed=seed)
    marg = marginal_distances(reference, candidate)
    block: Block = {
        **pca_distances(candidate, reference, pca=pca),
        "mmd2": mmd.mmd2,
        **({"mmd2_p": mmd.p_value} if mmd_permutations > 0 else {}),  # no p-value from 0 draws
        "sliced_wasserstein": sliced_wasserstein(reference, candidate, seed=seed),
        "marginal_wasserstein": float(np.mean(marg["wasserstein"])),
        "marginal_ks": float(np.mean(marg["ks"])),
        **prdc(reference, candidate, k=k, device=device),
        "c2st_1nn": c2st_1nn(reference, candidate),
    }
    if "alpha_beta" in extras:
        block.update(alpha_beta_authenticity(reference, candidate, device=device))
    if "tsgbench" in extras:
        block.update(tsgbench_report(reference, candidate))
    if "classifiers" in extras:
        block["discriminative"] = discriminative_score(reference, candidate, seed=seed)
        block["predictive_mae"] = predictive_score(candidate, reference)
    if "features" in extras:
        from .features import frechet_learned  # trains (or loads) a small encoder

        fit_on = reference if features_fit_on is None else features_fit_on
        block["frechet_learned"] = frechet_learned(reference, candidate, fit_on=fit_on, seed=seed)
    return block


def _flat_spectral(rep: Mapping[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in rep.items() if k != "band_power_rel_error"}
    flat.update({f"band_power_rel_error.{b}": v for b, v in rep["band_power_rel_error"].items()})
    return flat


# ----------------------------------------------------------------------------- outputs
TABLE_REFERENCES = ("floor", "copier", "residual_noise", "smoothed")


def markdown_table(report: Mapping[str, Any]) -> str:
    """One row per figure: generated beside the floor, the copier and the corrupted references,
    the better direction and whether the metric ranks floor < copier / floor < corrupted here."""
    refs = [r for r in report["meta"]["references"] if r in TABLE_REFERENCES or
            r.startswith("noisy_copy")]
    lines = [*axes_lines(report), "", _gate_line(report), "",
             "| section | metric | generated | " + " | ".join(refs) +
             " | better | ranks floor < copier / < corrupted |",
             "|" + "---|" * (len(refs) + 5)]
    for section in SECTIONS:
        for metric, values in report[section].items():
            rank = report["ranking"][f"{section}.{metric}"]
            corrupted = [v for v in rank["floor_beats"].values() if v is not None]
            ok = f"{_yes(rank['floor_beats_copier'])} / {sum(corrupted)} of {len(corrupted)}"
            if rank.get("rewards_copying"):
                ok += " (rewards copying)"
            lines.append(f"| {section.replace('_', ' ')} | {metric} | {_fmt(values['generated'])} | "
                         + " | ".join(_fmt(values.get(r)) for r in refs)
                         + f" | {rank['direction']} | {ok} |")
    d = report["memorization_detail"]
    lines += ["",
              f"Memorization: a sample is memorized when d1/d2 < {d['threshold']:.3g} "
              f"(nearest / second-nearest training record); `_lowpass` rows measure the same after "
              f"a fixed low-pass keeping {d['lowpass_fraction']:g} of the Nyquist band, where "
              "residual noise cannot mask a copy. DCR median ratio = median distance to the closest "
              "training record, generated / floor (< 1: closer than unseen real data); one-sided "
              f"Mann-Whitney p(generated closer) = {_fmt(d['dcr']['p_closer'])}.",
              f"Most-copied training records: {d['most_copied'][:5] or 'none'}.",
              f"Real data: {report['meta']['real_split']} (target n = {report['meta']['n_target']},"
              f" compared sets n = {report['meta']['n_compared']}).",
              f"alignment vs train is the paper's metric: {WHY_TRAIN_METRIC}.",
              "A metric that does not rank the floor better than the copier cannot tell copying "
              "from generalization here: do not rest a verdict on it (`sigdiff validate` gives "
              "the same check with intervals over repeats)."]
    for name, why in report["meta"].get("skipped", {}).items():
        lines.append(f"Skipped {name}: {why}.")
    return "\n".join(lines) + "\n"


def axes_lines(report: Mapping[str, Any]) -> list[str]:
    """The two axes, each beside its references: quality against held-out real records (every
    reference's score in a table) and memorization against the training records."""
    q = report["quality"]
    refs = list(q["references"])
    m = report["memorization"]
    raw, lp = m["memorized_fraction"], m["memorized_fraction_lowpass"]
    return [quality_line(q, shown=("copier", "noisy_real@0.05", "smoothed@1", "mode_dropped")),
            f"**Memorization (against the training records): {_fmt(raw['generated'])} memorized "
            f"({_fmt(lp['generated'])} low-passed)**; floor {_fmt(raw.get('floor'))} "
            f"({_fmt(lp.get('floor'))}), copier {_fmt(raw.get('copier'))} "
            f"({_fmt(lp.get('copier'))}). Two axes: a set can copy at good quality or be novel "
            "and poor; neither number is folded into the other.", "",
            "| quality score | generated | " + " | ".join(refs) + " |",
            "|" + "---|" * (len(refs) + 2),
            f"| {q['metric']} (SE {_fmt(q['se'])}) | {_fmt(q['score'])} | "
            + " | ".join(_fmt(q["references"][r]["score"]) for r in refs) + " |"]


def _gate_line(report: Mapping[str, Any]) -> str:
    g = report["gate"]
    parts = [f"{m} {_fmt(v['score'])} ± {_fmt(v['se'])} (0 = floor, 1 = {v['anchor']}"
             + ("" if v["usable"] else "; cannot separate floor from anchor here, not used")
             + ")" for m, v in g["metrics"].items()]
    verdict = {True: "passes", False: "fails", None: "undecided (no usable metric)"}[g["passes"]]
    return (f"**Alignment gate: {_fmt(g['score'])} ± {_fmt(g['se'])} (SE, n = {g['n']}) → "
            f"{verdict} at level {g['level']:g}.** Per metric: " + "; ".join(parts) + ".")


def _yes(v: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "n/a"}[v]


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    if isinstance(v, int | np.integer):
        return str(v)
    return f"{float(v):.4g}"


def write_outputs(report: Mapping[str, Any], out: Path, *, ctx: EvalContext,
                  samples: np.ndarray, ratio: NeighborRatio) -> None:
    """metrics.json, metrics.md and the PNGs under `out` (for images: sample grids instead of
    spectra). Written into a temporary folder first, then moved into place."""
    from . import plots

    out.mkdir(parents=True, exist_ok=True)
    sets = {"train": ctx.train, "holdout": ctx.target, "generated": samples}
    if ctx.images:
        plots.plot_image_grids(sets, ratio, out)
    else:
        plots.plot_spectra({**sets, "residual noise (ref.)": ctx.references["residual_noise"]},
                           out / "mean_spectrum.png", sampling_rate=ctx.sampling_rate)
        plots.plot_nearest(samples, ctx.train, ratio, out / "nearest_records.png",
                           sampling_rate=ctx.sampling_rate)
    plots.plot_pca(sets, out / "pca_scatter.png", pca=ctx.pca)
    plots.plot_dcr(ratio, ctx.floor_ratio, out / "dcr_histogram.png")
    atomic_write_text(out / "metrics.md", markdown_table(report))
    atomic_write_text(out / "metrics.json", json.dumps(report, indent=2, default=_json_default))


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def evaluate_stores(
    train: str | os.PathLike[str], holdout: str | os.PathLike[str],
    samples: str | os.PathLike[str], *, pool: str | os.PathLike[str] | None = None,
    config: EvalConfig | None = None, out_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """`evaluate` on sigdiff stores (train, holdout, samples, optional pool); their sampling
    rates must agree."""
    from ..data.store import read_store
    from .spectral import signal_kind

    paths = [os.fspath(p) for p in (train, holdout, samples, *([pool] if pool else []))]
    loaded = [read_store(p) for p in paths]
    rates = {p: float(attrs["sampling_rate"]) for p, (_, attrs) in zip(paths, loaded)}
    if len(set(rates.values())) != 1:
        raise ValueError(f"evaluate: the stores' sampling rates differ: {rates}")
    arrays = [x for x, _ in loaded]
    report = evaluate(arrays[0], arrays[1], arrays[2], pool=arrays[3] if pool else None,
                      sampling_rate=rates[paths[0]], config=config, out_dir=out_dir,
                      progress=progress, names=(paths[0], paths[1], paths[2]),
                      signal_kind=signal_kind(loaded[0][1]))
    return report
