"""`evaluate`: every metric for a generator, each figure beside its real-data floor.

Memorization and DCR are measured against the training set; their floor is the held-out real data
against the same training set. Alignment is measured against the held-out data; its floor is an
equally sized real sample (drawn from the training set, never from the holdout) against the same
holdout, and the generated set is subsampled to that size so size-dependent metrics compare fairly.
The paper's training-set version of each alignment metric is reported too, as `alignment_vs_train`
(floor: holdout vs train); it rewards copying, so read it beside the memorization figures.

Images (N, C, H, W) go through the same code in pixel space (records flattened to C·H·W vectors).
Spectral and time-series-only figures are skipped for them, and the report says so under
`meta.skipped`; the Fréchet distance on a small encoder trained on the real images is a default.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .._utils import choice_error
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
from .memorization import (
    MEMORIZATION_THRESHOLD,
    NeighborRatio,
    memorization_summary,
    neighbor_ratio,
)
from .spectral import ECG_BANDS, spectral_report
from .tsgbench import tsgbench_report

EXTRAS = ("alpha_beta", "tsgbench", "classifiers", "features")
DEFAULT_EXTRAS = ("alpha_beta", "tsgbench", "classifiers")
IMAGE_DEFAULT_EXTRAS = ("alpha_beta", "features")
#: Extras defined along a time axis, skipped (and reported as skipped) for images.
SIGNAL_ONLY_EXTRAS = ("tsgbench", "classifiers")
SKIP_REASON = "images: defined along a time axis (spectra, autocorrelation, forecasting)"
Block = dict[str, float]
# Which way is better, for the Markdown table.
DIRECTION = {
    "memorized_fraction": "lower", "median_ratio": "≥ 1", "pca_wasserstein": "lower",
    "pca_js": "lower", "mmd2": "lower", "mmd2_p": "higher", "sliced_wasserstein": "lower",
    "marginal_wasserstein": "lower", "marginal_ks": "lower", "precision": "higher",
    "recall": "higher", "density": "≈ 1", "coverage": "higher", "alpha_precision": "higher",
    "beta_recall": "higher", "authenticity": "higher", "mdd": "lower", "acd": "lower",
    "sd": "lower", "kd": "lower", "discriminative": "lower", "predictive_mae": "lower",
    "frechet_learned": "lower", "log_spectral_distance_db": "lower",
    "wasserstein_fourier_hz": "lower", "coherence_abs_diff": "lower",
}


def evaluate(
    train: np.ndarray, holdout: np.ndarray, samples: np.ndarray, *, sampling_rate: float,
    out_dir: str | os.PathLike[str] | None = None, seed: int = 0,
    threshold: float = MEMORIZATION_THRESHOLD, k: int = PRDC_K,
    n_components: int = PCA_COMPONENTS, mmd_permutations: int = MMD_PERMUTATIONS,
    bands: Mapping[str, tuple[float, float]] = ECG_BANDS, extras: Sequence[str] | None = None,
    device: str | torch.device = "cpu", progress: bool = True,
    names: tuple[str, str, str] = ("train", "holdout", "samples"),
) -> dict[str, Any]:
    """Memorization, alignment (vs holdout and vs train) and spectral metrics with their floors.

    Arrays are (N, C, L) or images (N, C, H, W). `extras=None` means DEFAULT_EXTRAS for signals,
    IMAGE_DEFAULT_EXTRAS for images. With `out_dir`, writes metrics.json, metrics.md and PNGs there.
    """
    for e in extras or ():
        if e not in EXTRAS:
            raise choice_error("evaluation extra", e, EXTRAS)
    tr, ho, sa = (as_signals(x, name=n, metric="evaluate") for x, n in
                  zip((train, holdout, samples), names))
    images = is_image(tr)
    if extras is None:
        extras = IMAGE_DEFAULT_EXTRAS if images else DEFAULT_EXTRAS
    skipped = {e: SKIP_REASON for e in ["spectral", *extras] if images and
               (e == "spectral" or e in SIGNAL_ONLY_EXTRAS)}
    extras = tuple(e for e in extras if e not in skipped)
    check_same_layout(tr, ho, names=names[:2], metric="evaluate")
    check_same_layout(tr, sa, names=(names[0], names[2]), metric="evaluate")
    for arr, name in zip((tr, ho, sa), names):  # PRDC's k-NN balls need k others in every set
        check_k(k, len(arr), name=name, metric="evaluate (PRDC)", self_excluded=True)
    rng = np.random.default_rng(seed)
    n_eq = min(len(sa), len(tr))
    real_eq, gen_eq = _take(tr, n_eq, rng), _take(sa, n_eq, rng)  # equally sized, for alignment
    n_tr = min(len(sa), len(ho))
    gen_tr, ho_tr = _take(sa, n_tr, rng), _take(ho, n_tr, rng)
    pca = fit_pca(tr, n_components=n_components)
    align = partial(alignment_block, pca=pca, k=k, seed=seed, extras=tuple(extras),
                    device=device, mmd_permutations=mmd_permutations, features_fit_on=tr)
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("memorization: generated", lambda: neighbor_ratio(sa, tr, threshold=threshold,
                                                           name=names[2], device=device)),
        ("memorization: holdout floor", lambda: neighbor_ratio(ho, tr, threshold=threshold,
                                                               name=names[1], device=device)),
        ("alignment vs holdout: generated", lambda: align(ho, gen_eq)),
        ("alignment vs holdout: real floor", lambda: align(ho, real_eq)),
        ("alignment vs train: generated", lambda: align(tr, gen_tr)),
        ("alignment vs train: holdout floor", lambda: align(tr, ho_tr)),
    ]
    if not images:
        steps += [
            ("spectral: generated", lambda: spectral_report(
                ho, gen_eq, sampling_rate=sampling_rate, bands=bands)),
            ("spectral: real floor", lambda: spectral_report(
                ho, real_eq, sampling_rate=sampling_rate, bands=bands)),
        ]
    results = []
    with tqdm(steps, desc="sigdiff eval", disable=not progress) as bar:
        for label, step in bar:
            bar.set_postfix_str(label)
            results.append(step())
    mem_gen, mem_floor = results[0], results[1]
    report: dict[str, Any] = {
        "meta": {"n_train": len(tr), "n_holdout": len(ho), "n_samples": len(sa),
                 "n_alignment_vs_holdout": n_eq, "n_alignment_vs_train": n_tr,
                 "channels": tr.shape[1], "length": None if images else tr.shape[2],
                 "spatial_shape": list(tr.shape[2:]), "kind": "image" if images else "signal",
                 "skipped": skipped, "sampling_rate": sampling_rate,
                 "seed": seed, "k": k, "pca_components": n_components,
                 "pca_explained": pca.explained.tolist(), "extras": list(extras),
                 "stores": dict(zip(("train", "holdout", "samples"), names))},
        "memorization": memorization_summary(mem_gen, mem_floor),
        "alignment_vs_holdout": _pair(results[2], results[3]),
        "alignment_vs_train": _pair(results[4], results[5]),
        "spectral": {} if images else _pair(_flat_spectral(results[6]),
                                            _flat_spectral(results[7])),
    }
    if out_dir is not None:
        write_outputs(report, Path(out_dir), sets={"train": tr, "holdout": ho, "generated": sa},
                      pca=pca, ratios=(mem_gen, mem_floor), sampling_rate=sampling_rate)
    return report


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
        "mmd2": mmd.mmd2, "mmd2_p": mmd.p_value,
        "sliced_wasserstein": sliced_wasserstein(reference, candidate, seed=seed),
        "marginal_wasserstein": float(np.mean(marg["wasserstein"])),
        "marginal_ks": float(np.mean(marg["ks"])),
        **prdc(reference, candidate, k=k, device=device),
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


def _take(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return x if n >= len(x) else x[np.sort(rng.choice(len(x), n, replace=False))]


def _pair(generated: Mapping[str, Any], floor: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: {"generated": generated[name], "floor": floor[name]} for name in generated}


def _flat_spectral(rep: Mapping[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in rep.items() if k != "band_power_rel_error"}
    flat.update({f"band_power_rel_error.{b}": v for b, v in rep["band_power_rel_error"].items()})
    return flat


# ----------------------------------------------------------------------------- outputs
def markdown_table(report: Mapping[str, Any]) -> str:
    """A short Markdown table: one row per figure, generated beside its real-data floor."""
    mem = report["memorization"]
    rows = [("memorization vs train", f"memorized fraction (d1/d2 < {mem['threshold']:.3g})",
             mem["memorized_fraction"]["generated"], mem["memorized_fraction"]["floor"], "lower"),
            ("memorization vs train", "median DCR", mem["dcr"]["median_dcr_generated"],
             mem["dcr"]["median_dcr_holdout"], "≥ floor"),
            ("memorization vs train", "exact copies", mem["exact_copies"]["generated"],
             mem["exact_copies"]["floor"], "0")]
    for section in ("alignment_vs_holdout", "spectral", "alignment_vs_train"):
        for name, pair in report[section].items():
            rows.append((section.replace("_", " "), name, pair["generated"], pair["floor"],
                         DIRECTION.get(name.split(".")[0], "lower")))
    lines = ["| section | metric | generated | real floor | better |", "|---|---|---|---|---|"]
    lines += [f"| {s} | {m} | {_fmt(g)} | {_fmt(f)} | {d} |" for s, m, g, f, d in rows]
    d = mem["dcr"]
    lines += ["", f"DCR median ratio generated/holdout = {_fmt(d['median_ratio'])}; one-sided "
              f"Mann-Whitney p(generated closer) = {_fmt(d['p_closer'])}; KS = {_fmt(d['ks_stat'])} "
              f"(p = {_fmt(d['ks_p'])}).",
              f"Most-copied training records: {mem['most_copied'][:5] or 'none'}."]
    for name, why in report["meta"].get("skipped", {}).items():
        lines.append(f"Skipped {name}: {why}.")
    return "\n".join(lines) + "\n"


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, int | np.integer):
        return str(v)
    return f"{float(v):.4g}"


def write_outputs(
    report: Mapping[str, Any], out: Path, *, sets: dict[str, np.ndarray], pca: PCA,
    ratios: tuple[NeighborRatio, NeighborRatio], sampling_rate: float,
) -> None:
    """metrics.json, metrics.md and the PNGs under `out` (for images: sample grids instead of
    spectra)."""
    from . import plots

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(report, indent=2, default=_json_default))
    (out / "metrics.md").write_text(markdown_table(report))
    if is_image(sets["train"]):
        plots.plot_image_grids(sets, ratios[0], out)
    else:
        plots.plot_spectra(sets, out / "mean_spectrum.png", sampling_rate=sampling_rate)
        plots.plot_nearest(sets["generated"], sets["train"], ratios[0], out / "nearest_records.png")
    plots.plot_pca(sets, out / "pca_scatter.png", pca=pca)
    plots.plot_dcr(ratios[0], ratios[1], out / "dcr_histogram.png")


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def evaluate_stores(
    train: str | os.PathLike[str], holdout: str | os.PathLike[str],
    samples: str | os.PathLike[str], **options: Any,
) -> dict[str, Any]:
    """`evaluate` on three sigdiff stores; their sampling rates must agree."""
    from ..data.store import read_store

    paths = tuple(os.fspath(p) for p in (train, holdout, samples))
    loaded = [read_store(p) for p in paths]
    rates = {p: float(attrs["sampling_rate"]) for p, (_, attrs) in zip(paths, loaded)}
    if len(set(rates.values())) != 1:
        raise ValueError(f"evaluate: the stores' sampling rates differ: {rates}")
    return evaluate(*(x for x, _ in loaded), sampling_rate=rates[paths[0]],
                    names=(paths[0], paths[1], paths[2]), **options)
