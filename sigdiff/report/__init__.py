"""`write_report(results_dir, out_dir)`: the memorization–alignment report of a sweep.

Reads `results.jsonl` and `sweep.json` written by `sigdiff.sweep` (rows in the schema of
`sigdiff.metrics.evaluate.flatten_report`) and writes `report.md` with PNGs:

- **metric check**: per metric, whether it ranks the real-data floor better than the copier and
  the corrupted references in this sweep (paired by seed, 95% intervals); a metric that cannot
  tell the floor from the copier is flagged wherever it appears;
- **final checkpoint** per arm beside the reference rows (floor, copier, noisy copies, residual
  noise, smoothed), raw and low-passed memorization, the gate, and the paper's metric;
- **the frontier**: memorization against the alignment gate over training, per seed; memorization
  at equal alignment, interpolated at the first crossing of each level and paired by seed, with
  every seed's status (reached / reached at the first checkpoint / never) counted; the area under
  the frontier (AUF) per arm, raw and low-passed;
- **early stopping, honestly**: a constant-LR checkpoint at step k beside a run whose schedule
  ends at k, when the sweep has one;
- the verdict on the paper's claim, from the frontier.

Intervals are 95% Student-t over seeds; differences with the baseline are paired by seed (same
seed = same training subset and sample noise).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from sigdiff import frontier
from sigdiff.report._core import (
    AXES,
    CHECKED,
    GATE,
    LEVELS,
    MEM,
    MEM_LP,
    METRICS,
    QUALITY,
    SINGLE_LEVELS,
    TSTR,
    ReportError,
    _arms,
    _baseline,
    _label,
    _md_table,
    _n,
    _per_seed_reference,
    load_results,
    primary_sampler,
    quality_axis,
)
from sigdiff.report.claims import SUMMARY_KEYS, claim_rows, claims_table, reading
from sigdiff.report.plots import (
    plot_contributions,
    plot_emphasis,
    plot_over_steps,
    utility_section,
)
from sigdiff.report.tables import (
    Frontier,
    auf_table,
    equal_alignment_table,
    frontier_on,
    headline_table,
    headline_tables,
    metric_check,
    paired_auf_table,
    sampler_table,
    stopping_rules_table,
    stopping_table,
)
from sigdiff.report.verdict import equal_alignment_outcome, quality_verdict, verdict
from sigdiff.stats import Interval, t_interval


def write_report(results_dir: str | Path, out_dir: str | Path, *,
                 baseline: str | None = None) -> Path:
    """Write `report.md` and the PNGs into `out_dir`; returns the Markdown path."""
    df_all, sweep = load_results(results_dir, all_samplers=True)
    df_all = _with_unmeasured(df_all)
    primary = primary_sampler(sweep)
    df = df_all[df_all.sampler == primary].reset_index(drop=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = _baseline(df, baseline)
    arms = _arms(df)
    first_cell = {arm: str(df[df.arm == arm].iloc[0]["cell"]) for arm in arms}
    sizes = sorted(df.train_subset.unique())
    row0 = df.iloc[0]
    parts = [f"# Sweep report: {sweep.get('name', Path(results_dir).name)}", "",
             f"{len(df)} evaluated checkpoints from {df.cell.nunique()} cells; arms: "
             f"{', '.join(arms)}; seeds: {sorted(df.seed.unique().tolist())} "
             f"({df.seed.nunique()}); training-set sizes: "
             f"{', '.join(_n(int(n)) for n in sizes)}. Baseline: **{base}**.", "",
             f"Each checkpoint: {int(row0['n_samples'])} generated samples; memorization on all "
             f"of them against the cell's own training records, raw and after a fixed low-pass; "
             f"alignment against the holdout (n = {int(row0['n_target'])}) with every compared "
             f"set (generated and references) at n = {int(row0['n_compared'])}. References per "
             "seed: the real-data floor (training-split records outside the cell's subset), a "
             "copier (draws with replacement from the training records), noisy copies, "
             "residual-noise real data and smoothed real data. The alignment gate joins MMD², "
             "the 1-NN two-sample test (0 = floor, 1 = copier) and the log-spectral distance "
             "(0 = floor, 1 = residual-noise real data); its score is the worst of the three."
             + (" The quality score (the report's quality axis) is 2·AUC − 1 of a "
                "cross-validated classifier telling each set from the held-out real records (0 "
                "= as good as unseen real records, 1 = always told apart); every reference, "
                "including the quality ladder's (blurred, noisy, mode-dropped real data), gets "
                "its own." if quality_axis(df)[0] == QUALITY else ""),
             "", "Intervals: 95% Student-t over seeds (mean ± t₀.₉₇₅,ₙ₋₁·s/√n); differences "
             "are paired by seed.", ""]
    summary: dict[str, dict[str, float]] = {}
    if sweep.get("cells"):
        _, summary = plot_contributions(sweep, arms, first_cell, out / "contribution.png")
        parts += ["## Learning-contribution profile", "", "![](contribution.png)", "",
                  _md_table(["arm", "mean u = E[t]/T", "signal mean u", "P(SNR>1)",
                             "signal share SNR>1", "ESS/T"],
                            [[a, *(f"{summary[a][k]:.3f}" for k in SUMMARY_KEYS)]
                             for a in arms]), "",
                  "Signal mean u: E[t]/T under the learning signal (the profile above), which "
                  "counts a loss weighting as much as the timestep sampler; it decides each "
                  "arm's reading (small t < 0.4 < middle < 0.6 < large t).", ""]
    for n in sizes:
        parts += _size_section(df[df.train_subset == n], int(n), base, sweep, summary, out)
        if TSTR in df:
            parts += utility_section(df[df.train_subset == n], int(n), base, out)
        rules = stopping_rules_table(results_dir, df[df.train_subset == n], base)
        if rules:
            parts += ["### Stopping rules: the guard, hindsight, the end of training", "",
                      "Which checkpoint each rule hands a user, read from this sweep's own "
                      "evaluation at that step: `guard` = what `sigdiff train --guard` (stop "
                      "mode) returns on the cell's guard trace; `oracle` = hindsight: the "
                      "best-aligned evaluated checkpoint whose memorization is not significantly "
                      "above the floor by the guard's tests; `final` = the last step. Mean over "
                      f"seeds; Δ paired by seed against {base} + guard [95% t-interval]; n = "
                      "seeds where both are known (n_not_ok: no guard trace, no clean "
                      "checkpoint, or no evaluation at the picked step).", "", rules, ""]
        table = sampler_table(df_all[df_all.train_subset == n], base, primary)
        if table:
            parts += ["### The evaluation sampler as a factor", "",
                      f"The same checkpoints sampled with further samplers (same seeds, "
                      f"{int(row0['n_samples'])} samples each) beside the frontier's sampler "
                      f"({primary}): mean [95% t-interval] over seeds; Δ paired by seed against "
                      f"the frontier sampler on the same models, and against {base} under the "
                      "same sampler. Sampler labels: name-steps-grid (the leading grid's last "
                      "model call is at t = 0, the trailing grid's at t = T/steps − 1).", "",
                      table, ""]
    md = out / "report.md"
    md.write_text("\n".join(parts))
    return md


def _with_unmeasured(df: pd.DataFrame) -> pd.DataFrame:
    """The report's columns that this data does not measure (spectra of images) as NaN, so the
    tables say n/a and the plots leave them out instead of failing."""
    from sigdiff.report.plots import OVER_STEPS
    from sigdiff.report.tables import HEADLINE, SAMPLER_FIGURES

    keys = dict.fromkeys([*METRICS, *CHECKED, *HEADLINE, *SAMPLER_FIGURES, *OVER_STEPS])
    missing = {k: float("nan") for k in keys if k not in df}
    return df.assign(**missing) if missing else df


def _size_section(d: pd.DataFrame, n: int, base: str, sweep: Mapping[str, Any],
                  summary: Mapping[str, Mapping[str, float]], out: Path) -> list[str]:
    tag = _n(n)
    check_md, flags = metric_check(d)
    plot_over_steps(d, n, out / f"over_steps_n{tag}.png")
    axis, note = quality_axis(d)
    front, frontier_md = (_gate_frontier(d, tag, base, out) if axis == GATE else
                          _quality_frontier(d, tag, base, out))
    stop = stopping_table(d, sweep, base)
    said = (verdict(d, base, summary, front, flags) if axis == GATE else
            quality_verdict(d, base, summary, front, flags))
    section = [f"## Training-set size {tag}", "", *([note, ""] if note else []), "### Verdict",
               "", said, "",
               "### Do the metrics tell real from copied and corrupted data here?", "",
               "Signed separation from the real-data floor, per seed's references "
               "(positive = the floor scores better, as it must), mean [95% t-interval]. "
               "Memorization needs to separate only the copies; alignment metrics all "
               "references. `sigdiff validate` runs the same check with more repeats.", "",
               check_md, "",
               "### Final checkpoint (mean [95% t-interval] over seeds) beside the references",
               "", headline_table(d, n, flags), "",
               "PCA-JS vs train is the paper's metric: a copier scores best on it by "
               "construction (its records *are* training records), so read it beside "
               "memorization.", "",
               f"![](over_steps_n{tag}.png)", "",
               *(["### Memorization against where the learning signal sits", "",
                  "Final memorized fraction (mean and 95% t-interval over seeds) of every arm "
                  "against the share of its learning signal from steps with SNR > 1 (the "
                  "low-noise, late denoising steps) and against its signal mean u.", "",
                  f"![](emphasis_n{tag}.png)", ""]
                 if plot_emphasis(d, summary, out / f"emphasis_n{tag}.png") else []),
               *frontier_md]
    if stop:
        section += ["### Early stopping: a checkpoint is not a stopped run", "",
                    "Frontier studies here use a constant learning rate after warm-up, so a "
                    "checkpoint at step k is the model a run stopped at k gives. The row below "
                    "shows the difference once: a run whose cosine schedule ends at k beside "
                    "the constant-LR checkpoint at k (paired by seed).", "", stop, ""]
    return section


def _gate_frontier(d: pd.DataFrame, tag: str, base: str, out: Path
                   ) -> tuple[Frontier, list[str]]:
    """The frontier on the alignment gate (rows without the quality score): the fixed gate
    levels, unreached levels charged as copying, and each gate metric alone."""
    levels = list(LEVELS)
    gate = frontier_on(d, base, x_key=GATE, levels=levels)
    for y_key, name in ((MEM, "raw"), (MEM_LP, "lowpass")):
        frontier.plot_frontier(d, x_key=GATE, y_key=y_key, levels=levels, x_log=True,
                               path=out / f"frontier_{name}_n{tag}.png",
                               x_label="alignment gate score (0 = real floor, 1 = copier)",
                               y_label=_label(y_key),
                               floor_y=float(_per_seed_reference(d, y_key, "floor").mean()),
                               floor_x=None)
    per_axis = []
    for key, label in AXES.items():
        if key == GATE or key not in d or d[key].isna().all():
            continue
        axis = frontier_on(d, base, x_key=key, levels=list(SINGLE_LEVELS))
        per_axis += [f"#### Frontier on {label} alone (levels {SINGLE_LEVELS[0]:g} to "
                     f"{SINGLE_LEVELS[-1]:g})", "", auf_table(axis.auf[MEM], axis.auf[MEM_LP]),
                     ""]
    return gate, ["### The frontier: memorization against alignment over training", "",
                  f"![](frontier_raw_n{tag}.png)", "", f"![](frontier_lowpass_n{tag}.png)", "",
                  "#### Area under the frontier (joint gate)", "",
                  auf_table(gate.auf[MEM], gate.auf[MEM_LP]), "",
                  "#### Memorization at equal alignment (joint gate; first crossing, "
                  "interpolated)", "", "Status counts: seeds that reached the level between two "
                  "checkpoints / already at the first checkpoint (left-censored: the value is an "
                  "upper bound) / never. Δ uses the seeds where both arms reached it.", "",
                  equal_alignment_table(gate, base), "", *per_axis]


def _quality_frontier(d: pd.DataFrame, tag: str, base: str, out: Path
                      ) -> tuple[Frontier, list[str]]:
    """The frontier on the validated quality score: levels from the data (quantiles of every
    checkpoint's score, all arms pooled, chosen before any arm is compared), never-reached
    levels reported apart from copying."""
    levels = frontier.data_levels(d[QUALITY]).tolist()
    front = frontier_on(d, base, x_key=QUALITY, levels=levels, charge_never=False)
    floor = _per_seed_reference(d, QUALITY, "floor")
    for y_key, name in ((MEM, "raw"), (MEM_LP, "lowpass")):
        frontier.plot_frontier(d, x_key=QUALITY, y_key=y_key, levels=levels,
                               path=out / f"frontier_{name}_n{tag}.png",
                               x_label=_label(QUALITY), y_label=_label(y_key),
                               floor_y=float(_per_seed_reference(d, y_key, "floor").mean()),
                               floor_x=float(floor.mean()) if len(floor) else None)
    grid = ", ".join(f"{v:.3g}" for v in levels)
    return front, [
        "### The frontier: memorization against quality over training", "",
        f"Quality levels from the data: the 5%, 15%, …, 95% quantiles of the quality score of "
        f"every checkpoint of every arm pooled ({d[QUALITY].min():.3g} to "
        f"{d[QUALITY].max():.3g} over {len(d)} checkpoints), chosen before any arm is compared: "
        f"{grid}.", "", f"![](frontier_raw_n{tag}.png)", "",
        f"![](frontier_lowpass_n{tag}.png)", "",
        "#### Area under the frontier (quality score), paired by seed", "",
        "Over the grid levels every run of both arms reaches; a level some run never reaches "
        "is left out of the area and counted in the last column (not charged as copying).", "",
        paired_auf_table(front, base), "",
        "#### Memorization at equal quality (first crossing, interpolated)", "",
        "Status counts: seeds that reached the level between two checkpoints / already at the "
        "first checkpoint (left-censored: the value is an upper bound) / never (reported here, "
        "not counted as copying). Δ uses the seeds where both arms reached it.", "",
        equal_alignment_table(front, base), ""]


__all__ = ["LEVELS", "Interval", "ReportError", "claim_rows", "claims_table",
           "equal_alignment_outcome", "headline_tables", "load_results", "primary_sampler",
           "reading", "t_interval", "write_report"]
