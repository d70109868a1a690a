"""What every part of the report shares: the row columns it reads, the alignment levels, loading
a sweep's results, paired differences and Markdown tables."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sigdiff.stats import Interval, t_interval

MEM = "memorization.memorized_fraction"


MEM_LP = "memorization.memorized_fraction_lowpass"


GATE = "gate.score"


QUALITY = "quality.score"


#: column → (label, better direction)
METRICS: dict[str, tuple[str, str]] = {
    QUALITY: ("quality score (0 = real, 1 = always told apart)", "lower"),
    MEM: ("memorized fraction (1/3 rule)", "lower"),
    MEM_LP: ("memorized fraction, low-passed", "lower"),
    "memorization.dcr_median_ratio": ("DCR ratio gen/floor", "higher"),
    "memorization.dcr_median_ratio_lowpass": ("DCR ratio, low-passed", "higher"),
    GATE: ("alignment gate (0 real, 1 copier)", "lower"),
    "alignment_vs_holdout.mmd2": ("MMD² vs holdout", "lower"),
    "alignment_vs_holdout.c2st_1nn": ("1-NN two-sample acc.", "lower"),
    "spectral.log_spectral_distance_db": ("log-spectral dist. (dB)", "lower"),
    "alignment_vs_holdout.pca_wasserstein": ("PCA-W vs holdout", "lower"),
    "alignment_vs_holdout.coverage": ("coverage", "higher"),
    "alignment_vs_train.pca_wasserstein": ("PCA-W vs train (paper; rewards copying)", "lower"),
    "alignment_vs_train.pca_js": ("PCA-JS vs train (paper; rewards copying)", "lower"),
}


#: the metrics checked against the references in every report
CHECKED = [k for k in METRICS if k != GATE] + ["alignment_vs_holdout.pca_js",
                                               "alignment_vs_holdout.sliced_wasserstein"]


#: what each reference must score worse than the floor on (memorization: only copies must look
#: memorized; corrupted real data is not a copy)
REFERENCE_ROWS = ("floor", "copier", "noisy_copy@0.1", "noisy_copy@0.2", "residual_noise",
                  "smoothed")


#: the quality ladder's references (`sigdiff.metrics.references`), shown where a sweep has them
QUALITY_REFERENCES = ("smoothed@1", "noisy_real@0.05", "noisy_real@0.1", "noisy_real@0.2",
                      "mode_dropped")


def reference_rows(d: pd.DataFrame) -> tuple[str, ...]:
    """`REFERENCE_ROWS`, then the quality ladder's references these rows carry (older sweeps
    have none of them)."""
    def present(ref: str) -> bool:
        cols = [c for c in d.columns if c.endswith(f"@{ref}")]
        return any(d[c].notna().any() for c in cols)

    return REFERENCE_ROWS + tuple(r for r in QUALITY_REFERENCES if present(r))


#: the line a report on rows without the quality score carries
GATE_NOTE = ("These rows predate the validated quality score (`quality.score`, a classifier "
             "two-sample test against held-out real records): their quality axis is the "
             "alignment gate, which is **not** a validated quality score — an audit found it "
             "mostly a second copy detector (docs/results/claims.md). Read \"equal alignment\" "
             "below as equal gate, not equal quality.")


def quality_axis(d: pd.DataFrame) -> tuple[str, str | None]:
    """The report's quality axis and the note it must carry: (`QUALITY`, None) when every row
    carries the validated quality score, else (`GATE`, `GATE_NOTE`) (older sweeps, or a score
    some checkpoint could not measure)."""
    if QUALITY in d and len(d) and d[QUALITY].notna().all():
        return QUALITY, None
    if QUALITY in d and d[QUALITY].notna().any():
        missing = int(d[QUALITY].isna().sum())
        return GATE, (f"{missing} of {len(d)} checkpoints have no quality score, so the "
                      "quality axis falls back to the alignment gate, which is **not** a "
                      "validated quality score (mostly a second copy detector, "
                      "docs/results/claims.md).")
    return GATE, GATE_NOTE


#: equal-alignment levels on the gate scale (1 = as far from real data as the copier / the
#: residual-noise set on the worst gate metric), a uniform grid: the AUF is the area under the
#: frontier over [0.5, 4] divided by its width (trapezoid rule, `sigdiff.frontier`)
LEVELS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)


#: levels on one gate metric's own 0 (floor) – 1 (anchor) scale
SINGLE_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


#: a metric's anchor for the "does it tell real from its anchor" check: the gate's anchor for a
#: gate metric, residual noise for the quality score (a copier is real data: good quality),
#: else the copier
ANCHORS = {"spectral.log_spectral_distance_db": "residual_noise", QUALITY: "residual_noise"}


#: the frontier is drawn on the joint gate and, for transparency, on each gate metric alone
AXES = {GATE: "joint gate", "gate.mmd2.score": "MMD² (0 floor, 1 copier)",
        "gate.c2st_1nn.score": "1-NN C2ST (0 floor, 1 copier)",
        "gate.log_spectral_distance_db.score": "log-spectral (0 floor, 1 residual noise)"}


SMALL_T = 0.4  # an arm whose signal mean u (E[t]/T under its learning signal) is below this: small t


LARGE_T = 0.6


class ReportError(ValueError):
    """The results directory is missing or holds no rows."""


def primary_sampler(sweep: Mapping[str, Any]) -> str:
    """The label of the sweep's frontier sampler (`sigdiff.sweep.sampler_label`)."""
    from sigdiff.sweep import EvalSpec

    return EvalSpec(**sweep.get("raw", {}).get("eval", {})).label


def load_results(results_dir: str | Path, *, all_samplers: bool = False
                 ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The sweep's rows and its `sweep.json`. Only the primary sampler's rows (the frontier's)
    unless ``all_samplers``; a `sampler` column names each row's sampler."""
    d = Path(results_dir)
    path = d / "results.jsonl"
    if not path.is_file():
        raise ReportError(f"{d}: no results.jsonl (run `sigdiff sweep` with --out {d} first)")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        raise ReportError(f"{path} holds no rows yet")
    if MEM not in rows[0]:
        raise ReportError(f"{path} was written by an older sigdiff (no {MEM!r} column); rerun "
                          "`sigdiff sweep` on the same --out: it re-measures the saved samples")
    sweep = json.loads((d / "sweep.json").read_text()) if (d / "sweep.json").is_file() else {}
    df = pd.DataFrame(rows)
    df["train_subset"] = df["train_subset"].fillna(-1).astype(int)
    primary = primary_sampler(sweep)
    df["sampler"] = df["sampler"].fillna(primary) if "sampler" in df else primary
    if not all_samplers:
        df = df[df.sampler == primary].reset_index(drop=True)
    return df, sweep


def _arms(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df["arm"]))  # grid order


def _baseline(df: pd.DataFrame, baseline: str | None) -> str:
    arms = _arms(df)
    if baseline is not None:
        if baseline not in arms:
            raise ReportError(f"baseline arm {baseline!r} is not one of {arms}")
        return baseline
    for arm in arms:
        row = df[df.arm == arm].iloc[0]
        if json.loads(row["timesteps"])["name"] == "uniform" and \
                json.loads(row["weighting"])["name"] == "none":
            return arm
    return arms[0]


def _final(d: pd.DataFrame, arm: str, key: str) -> pd.Series:
    g = d[d.arm == arm]
    g = g.loc[g.groupby("seed")["step"].idxmax()]
    return g.set_index("seed")[key]


def _at_step(d: pd.DataFrame, arm: str, step: int, key: str) -> pd.Series:
    g = d[(d.arm == arm) & (d.step == step)]
    return g.set_index("seed")[key]


def _paired(a: pd.Series, b: pd.Series) -> Interval:
    common = a.index.intersection(b.index)
    return t_interval((a.loc[common] - b.loc[common]).to_numpy(dtype=float))


def _per_seed_reference(d: pd.DataFrame, key: str, ref: str) -> pd.Series:
    """One value per seed of a reference's figure (references are built once per seed's
    training subset and repeated on every row of it)."""
    col = f"{key}@{ref}"
    if col not in d:
        return pd.Series(dtype=float)
    return d.groupby("seed")[col].first().astype(float)


def _label(key: str) -> str:
    return METRICS[key][0] if key in METRICS else key


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


TSTR, AUG_GAIN, TRTR = ("downstream.tstr.macro_f1", "downstream.augmentation_gain",
                        "downstream.trtr.macro_f1")


def _fmt_ci(mean: float, low: float, high: float, n: int) -> str:
    from sigdiff.stats import Interval

    return Interval(mean, low, high, n).fmt()


def _n(n: int) -> str:
    return "all" if n < 0 else str(n)
