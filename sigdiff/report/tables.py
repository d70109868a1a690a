"""The report's tables: the metric check, the final checkpoint beside the references, the
frontier (equal alignment, AUF), early stopping, the evaluation sampler as a factor, the stopping
rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sigdiff import frontier
from sigdiff.report._core import (
    ANCHORS,
    CHECKED,
    GATE,
    MEM,
    MEM_LP,
    METRICS,
    QUALITY,
    _arms,
    _at_step,
    _final,
    _fmt_ci,
    _label,
    _md_table,
    _n,
    _paired,
    _per_seed_reference,
    load_results,
    quality_axis,
    reference_rows,
)
from sigdiff.stats import Interval, t_interval


def metric_check(d: pd.DataFrame) -> tuple[str, dict[str, bool]]:
    """Does each metric rank the floor better than each reference in this sweep? Signed
    separation (positive = floor better), mean [95% CI] over seeds; the flag is 'no' unless the
    copier's interval lies above 0."""
    refs = reference_rows(d)[1:]
    header = ["metric", "floor", *(f"Δ {r}" for r in refs), "tells floor from its anchor"]
    rows, ok = [], {}
    for key in CHECKED:
        if f"{key}@floor" not in d:
            continue
        direction = METRICS.get(key, ("", "lower"))[1]
        floor = _per_seed_reference(d, key, "floor")
        cells = []
        for ref in refs:
            other = _per_seed_reference(d, key, ref)
            sep = (other - floor) if direction == "lower" else (floor - other)
            cells.append(t_interval(sep.dropna().to_numpy(dtype=float)))
        anchor = ANCHORS.get(key, "copier")
        sep_anchor = cells[refs.index(anchor)]
        ok[key] = bool(sep_anchor.n >= 2 and sep_anchor.low > 0)
        note = ("yes" if ok[key] else "**no**") + ("" if anchor == "copier" else f" ({anchor})")
        if key.startswith("alignment_vs_train"):
            note += " (rewards copying by construction)"
        rows.append([_label(key), t_interval(floor.to_numpy(dtype=float)).fmt(),
                     *(c.fmt() for c in cells), note])
    return _md_table(header, rows), ok


HEADLINE = [QUALITY, GATE, MEM, MEM_LP, "memorization.dcr_median_ratio",
            "memorization.dcr_median_ratio_lowpass", "alignment_vs_holdout.mmd2",
            "alignment_vs_holdout.c2st_1nn", "spectral.log_spectral_distance_db",
            "alignment_vs_train.pca_js"]


def headline_table(df: pd.DataFrame, n: int, flags: Mapping[str, bool] | None = None) -> str:
    """Final checkpoint per arm (mean [95% CI] over seeds), then the reference rows; the first
    column is the report's quality axis (`quality_axis`), the gate beside it on older rows."""
    d = df[df.train_subset == n]
    flags = flags or {}
    keys = headline_keys(d)
    header = ["arm", "final step"] + [_label(k) + ("" if flags.get(k, True) else " ⚠")
                                      for k in keys]
    rows = []
    for arm in _arms(d):
        last = int(d[d.arm == arm].step.max())
        rows.append([arm, str(last)] + [t_interval(_final(d, arm, k).to_numpy(dtype=float)).fmt()
                                        for k in keys])
    for ref in reference_rows(d):
        cells = []
        for k in keys:
            if k == GATE:
                cells.append("0" if ref == "floor" else "")
                continue
            s = _per_seed_reference(d, k, ref)
            cells.append(t_interval(s.to_numpy(dtype=float)).fmt() if len(s) else "")
        name = "**real-data floor**" if ref == "floor" else f"*reference: {ref}*"
        rows.append([name, "", *cells])
    return _md_table(header, rows)


def headline_keys(d: pd.DataFrame) -> list[str]:
    """The headline's columns: the quality axis first, then the other figures (rows without the
    quality score: the gate first, as before)."""
    axis, _ = quality_axis(d)
    return [axis, *(k for k in HEADLINE if k not in (QUALITY, GATE))] if axis == QUALITY \
        else [k for k in HEADLINE if k != QUALITY]


def _status(row: Mapping[str, Any], prefix: str) -> str:
    return (f"{row[prefix + '_reached']}/{row[prefix + '_at_first']}/{row[prefix + '_never']}")


@dataclass(frozen=True)
class Frontier:
    """One alignment axis's frontier: crossings per memorization figure (raw and low-passed),
    the per-run AUF and its per-arm summary."""

    crossings: dict[str, pd.DataFrame]
    runs: dict[str, pd.DataFrame]
    auf: dict[str, pd.DataFrame]


def frontier_on(d: pd.DataFrame, base: str, *, x_key: str, levels: Sequence[float],
                charge_never: bool = True) -> Frontier:
    """Crossings, AUF per run and per arm (never-reached levels charged as copying; empty
    without ``charge_never``: `paired_auf_table` counts them apart instead), for raw and low-passed
    memorization."""
    cross = {y: frontier.equal_alignment(d, x_key=x_key, y_key=y, levels=levels)
             for y in (MEM, MEM_LP)}
    if not charge_never:
        return Frontier(cross, {}, {})
    runs = {y: frontier.auf_from_crossings(c, levels=levels) for y, c in cross.items()}
    auf = {y: frontier.summarize_auf(r, baseline=base) for y, r in runs.items()}
    return Frontier(cross, runs, auf)


def equal_alignment_table(f: Frontier, base: str) -> str:
    """Memorization (raw and low-passed) at equal alignment, paired by seed, with statuses."""
    header = ["level", "arm", "seeds reached / at first ckpt / never (arm; base)",
              "Δ memorized fraction (paired)", "Δ low-passed (paired)", "arm mem.", "base mem."]
    rows: list[list[str]] = []
    raw, lp = (frontier.paired_at_levels(f.crossings[y], baseline=base) for y in (MEM, MEM_LP))
    for (_, r), (_, q) in zip(raw.iterrows(), lp.iterrows()):
        d_raw = Interval(r["mean"], r["low"], r["high"], int(r["n"]))
        d_lp = Interval(q["mean"], q["low"], q["high"], int(q["n"]))
        rows.append([f"{r['level']:.3g}", str(r["arm"]),
                     f"{_status(r, 'arm')}; {_status(r, 'base')}",
                     d_raw.fmt() + (f" ({int(r['n_censored_pairs'])} censored)"
                                    if r["n_censored_pairs"] else ""),
                     d_lp.fmt(), f"{r['arm_y']:.3g}", f"{r['base_y']:.3g}"])
    return _md_table(header, rows)


def auf_table(auf: pd.DataFrame, auf_lp: pd.DataFrame) -> str:
    header = ["arm", "AUF (memorized fraction)", "Δ vs baseline (paired)", "AUF low-passed",
              "Δ low-passed", "seeds with a level never reached"]
    rows = []
    for (_, a), (_, b) in zip(auf.iterrows(), auf_lp.iterrows()):
        rows.append([str(a["arm"]), Interval(a["mean"], a["low"], a["high"], int(a["n"])).fmt(),
                     Interval(a["diff_mean"], a["diff_low"], a["diff_high"],
                              int(a["diff_n"])).fmt() if a["diff_n"] else "—",
                     Interval(b["mean"], b["low"], b["high"], int(b["n"])).fmt(),
                     Interval(b["diff_mean"], b["diff_low"], b["diff_high"],
                              int(b["diff_n"])).fmt() if b["diff_n"] else "—",
                     f"{int(a['runs_with_never'])}/{int(a['n'])}"])
    return _md_table(header, rows)


def _iv(r: Mapping[str, Any]) -> Interval:
    return Interval(r["mean"], r["low"], r["high"], int(r["n"]), r["se"])


def paired_auf_table(f: Frontier, base: str) -> str:
    """Δ AUF (arm − base, paired by seed, raw and low-passed) over the grid levels every run of
    both arms reaches (`frontier.paired_auf`); levels some run never reaches are left out of
    the area and counted apart (seed × level pairs), not charged as copying."""
    raw, lp = (frontier.paired_auf(f.crossings[y], baseline=base) for y in (MEM, MEM_LP))
    total = f.crossings[MEM].level.nunique()
    rows = []
    for (_, r), (_, q) in zip(raw.iterrows(), lp.iterrows()):
        span = (f"{r['level_lo']:.3g} to {r['level_hi']:.3g} ({int(r['n_levels'])} of {total})"
                if r["n_levels"] else f"none of {total}")
        rows.append([str(r["arm"]), span, _iv(r).fmt(), f"{r['p']:.3g}", _iv(q).fmt(),
                     f"{q['p']:.3g}",
                     f"{int(r['arm_never'])}; {int(r['base_never'])}"])
    return _md_table(["arm", "levels every run of both reaches", "Δ AUF (memorized fraction)",
                      "p", "Δ AUF low-passed", "p", "seed × level never reached (arm; base)"],
                     rows)


def stopping_table(d: pd.DataFrame, sweep: Mapping[str, Any], base: str) -> str | None:
    """A run whose cosine schedule ends at k beside the constant-LR baseline's checkpoint at k."""
    cells = sweep.get("cells", {})
    base_cell = d[d.arm == base].iloc[0]["cell"]
    base_cfg = cells.get(base_cell)
    if not base_cfg:
        return None
    rows = []
    for arm in _arms(d):
        cfg = cells.get(d[d.arm == arm].iloc[0]["cell"])
        if arm == base or not cfg or cfg["timesteps"] != base_cfg["timesteps"] or \
                cfg["weighting"] != base_cfg["weighting"] or \
                cfg["optim"]["lr_schedule"] == base_cfg["optim"]["lr_schedule"]:
            continue
        k = int(cfg["steps"])
        for key in (MEM, MEM_LP, quality_axis(d)[0], "spectral.log_spectral_distance_db"):
            a, b = _final(d, arm, key), _at_step(d, base, k, key)
            rows.append([arm, str(k), _label(key), t_interval(a.to_numpy(dtype=float)).fmt(),
                         t_interval(b.to_numpy(dtype=float)).fmt(), _paired(a, b).fmt()])
    if not rows:
        return None
    return _md_table(["stopped run", "k", "metric", "run whose schedule ends at k",
                      f"{base} checkpoint at k", "Δ (paired)"], rows)


SAMPLER_FIGURES = [MEM, MEM_LP, GATE, "alignment_vs_holdout.mmd2",
                   "spectral.log_spectral_distance_db", "memorization.dcr_median_ratio"]


def stopping_rules_table(results_dir: str | Path, d: pd.DataFrame, base: str) -> str | None:
    """The stopping rules (`sigdiff.guard.compare`) per arm, paired against base + guard;
    None when no cell of the sweep was guarded."""
    from sigdiff.guard.compare import paired_selection, select_checkpoints

    sel = select_checkpoints(results_dir, d)
    if not (sel.rule.eq("guard") & sel.status.eq("ok")).any():
        return None
    p = paired_selection(sel, baseline=(base, "guard"))
    rows = [[r.arm, r.rule, f"{r.mean_step:.0f}", f"{r.memorized_fraction:.3f}",
             f"{r.gate:.3f}", _fmt_ci(r.d_mem, r.d_mem_low, r.d_mem_high, r.n),
             _fmt_ci(r.d_gate, r.d_gate_low, r.d_gate_high, r.n), f"{r.n} ({r.n_not_ok})"]
            for r in p.itertuples()]
    return _md_table(["arm", "rule", "mean step", "memorized", "gate", f"Δ mem. vs {base}+guard",
                      f"Δ gate vs {base}+guard", "n (n_not_ok)"], rows)


def sampler_table(d_all: pd.DataFrame, base: str, primary: str) -> str | None:
    """The evaluation sampler as a factor: every further sampler's figures beside the primary
    sampler's on the same checkpoints (same models, same seeds), paired by seed against the
    primary sampler (what the sampler changes) and against the baseline arm under the same
    sampler (whether an arm's effect survives the sampler change)."""
    others = [s for s in dict.fromkeys(d_all.sampler) if s != primary]
    if not others:
        return None
    axis, _ = quality_axis(d_all)
    figures_keys = [axis, *(k for k in SAMPLER_FIGURES if k != GATE)] if axis == QUALITY \
        else SAMPLER_FIGURES
    word = "quality" if axis == QUALITY else "gate"
    header = ["sampler", "arm", "step", *(_label(k) for k in figures_keys),
              "Δ mem. vs " + primary, f"Δ {word} vs " + primary, f"Δ mem. vs {base}",
              f"Δ {word} vs {base}"]
    rows = []

    def at(sampler: str, arm: str, step: int, key: str) -> pd.Series:
        g = d_all[(d_all.sampler == sampler) & (d_all.arm == arm) & (d_all.step == step)]
        return g.set_index("seed")[key].astype(float)

    for sampler in [primary, *others]:
        for arm in _arms(d_all):
            steps = sorted(d_all[(d_all.sampler == sampler) & (d_all.arm == arm)].step.unique())
            if sampler == primary:  # the primary rows only where another sampler was run
                steps = [st for st in steps if ((d_all.sampler != primary) &
                                                (d_all.arm == arm) & (d_all.step == st)).any()]
            for step in steps:
                figures = [t_interval(at(sampler, arm, step, k).to_numpy()).fmt()
                           for k in figures_keys]
                vs_primary = ["—", "—"] if sampler == primary else [
                    _paired(at(sampler, arm, step, k), at(primary, arm, step, k)).fmt()
                    for k in (MEM, axis)]
                has_base = arm != base and len(at(sampler, base, step, MEM))
                vs_base = [_paired(at(sampler, arm, step, k), at(sampler, base, step, k)).fmt()
                           if has_base else "—" for k in (MEM, axis)]
                rows.append([sampler, arm, str(int(step)), *figures, *vs_primary, *vs_base])
    return _md_table(header, rows)


def headline_tables(results_dir: str | Path) -> str:
    """The final-checkpoint comparison table(s) beside the references, for the terminal."""
    from sigdiff.report import _with_unmeasured

    df, _ = load_results(results_dir)
    df = _with_unmeasured(df)
    return "\n\n".join(f"training-set size {_n(int(n))} (mean [95% t-interval] over seeds):\n"
                       + headline_table(df, int(n)) for n in sorted(df.train_subset.unique()))
