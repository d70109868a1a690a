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

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sigdiff import frontier
from sigdiff.stats import Interval, t_interval

__all__ = ["LEVELS", "Interval", "ReportError", "headline_tables", "t_interval", "write_report"]

MEM = "memorization.memorized_fraction"
MEM_LP = "memorization.memorized_fraction_lowpass"
GATE = "gate.score"
#: column → (label, better direction)
METRICS: dict[str, tuple[str, str]] = {
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
#: equal-alignment levels on the gate scale (1 = as far from real data as the copier / the
#: residual-noise set on the worst gate metric), a uniform grid: the AUF is the area under the
#: frontier over [0.5, 4] divided by its width (trapezoid rule, `sigdiff.frontier`)
LEVELS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
#: levels on one gate metric's own 0 (floor) – 1 (anchor) scale
SINGLE_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
#: a metric's anchor for the "does it tell real from its anchor" check: the gate's anchor for a
#: gate metric, else the copier
ANCHORS = {"spectral.log_spectral_distance_db": "residual_noise"}
#: the frontier is drawn on the joint gate and, for transparency, on each gate metric alone
AXES = {GATE: "joint gate", "gate.mmd2.score": "MMD² (0 floor, 1 copier)",
        "gate.c2st_1nn.score": "1-NN C2ST (0 floor, 1 copier)",
        "gate.log_spectral_distance_db.score": "log-spectral (0 floor, 1 residual noise)"}
SMALL_T = 0.4  # an arm whose signal mean u (E[t]/T under its learning signal) is below this: small t
LARGE_T = 0.6


class ReportError(ValueError):
    """The results directory is missing or holds no rows."""


# ----------------------------------------------------------------------------- loading
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


# ----------------------------------------------------------------------------- metric check
def metric_check(d: pd.DataFrame) -> tuple[str, dict[str, bool]]:
    """Does each metric rank the floor better than each reference in this sweep? Signed
    separation (positive = floor better), mean [95% CI] over seeds; the flag is 'no' unless the
    copier's interval lies above 0."""
    header = ["metric", "floor", *(f"Δ {r}" for r in REFERENCE_ROWS[1:]),
              "tells floor from its anchor"]
    rows, ok = [], {}
    for key in CHECKED:
        if f"{key}@floor" not in d:
            continue
        direction = METRICS.get(key, ("", "lower"))[1]
        floor = _per_seed_reference(d, key, "floor")
        cells = []
        for ref in REFERENCE_ROWS[1:]:
            other = _per_seed_reference(d, key, ref)
            sep = (other - floor) if direction == "lower" else (floor - other)
            cells.append(t_interval(sep.dropna().to_numpy(dtype=float)))
        anchor = ANCHORS.get(key, "copier")
        sep_anchor = cells[list(REFERENCE_ROWS[1:]).index(anchor)]
        ok[key] = bool(sep_anchor.n >= 2 and sep_anchor.low > 0)
        note = ("yes" if ok[key] else "**no**") + ("" if anchor == "copier" else f" ({anchor})")
        if key.startswith("alignment_vs_train"):
            note += " (rewards copying by construction)"
        rows.append([_label(key), t_interval(floor.to_numpy(dtype=float)).fmt(),
                     *(c.fmt() for c in cells), note])
    return _md_table(header, rows), ok


def _label(key: str) -> str:
    return METRICS[key][0] if key in METRICS else key


# ----------------------------------------------------------------------------- tables
def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


HEADLINE = [GATE, MEM, MEM_LP, "memorization.dcr_median_ratio",
            "memorization.dcr_median_ratio_lowpass", "alignment_vs_holdout.mmd2",
            "alignment_vs_holdout.c2st_1nn", "spectral.log_spectral_distance_db",
            "alignment_vs_train.pca_js"]


def headline_table(df: pd.DataFrame, n: int, flags: Mapping[str, bool] | None = None) -> str:
    """Final checkpoint per arm (mean [95% CI] over seeds), then the reference rows."""
    d = df[df.train_subset == n]
    flags = flags or {}
    header = ["arm", "final step"] + [_label(k) + ("" if flags.get(k, True) else " ⚠")
                                      for k in HEADLINE]
    rows = []
    for arm in _arms(d):
        last = int(d[d.arm == arm].step.max())
        rows.append([arm, str(last)] + [t_interval(_final(d, arm, k).to_numpy(dtype=float)).fmt()
                                        for k in HEADLINE])
    for ref in REFERENCE_ROWS:
        cells = []
        for k in HEADLINE:
            if k == GATE:
                cells.append("0" if ref == "floor" else "")
                continue
            s = _per_seed_reference(d, k, ref)
            cells.append(t_interval(s.to_numpy(dtype=float)).fmt() if len(s) else "")
        name = "**real-data floor**" if ref == "floor" else f"*reference: {ref}*"
        rows.append([name, "", *cells])
    return _md_table(header, rows)


def _status(row: Mapping[str, Any], prefix: str) -> str:
    return (f"{row[prefix + '_reached']}/{row[prefix + '_at_first']}/{row[prefix + '_never']}")


@dataclass(frozen=True)
class Frontier:
    """One alignment axis's frontier: crossings per memorization figure (raw and low-passed),
    the per-run AUF and its per-arm summary."""

    crossings: dict[str, pd.DataFrame]
    runs: dict[str, pd.DataFrame]
    auf: dict[str, pd.DataFrame]


def frontier_on(d: pd.DataFrame, base: str, *, x_key: str, levels: Sequence[float]) -> Frontier:
    """Crossings, AUF per run and per arm, for raw and low-passed memorization."""
    cross = {y: frontier.equal_alignment(d, x_key=x_key, y_key=y, levels=levels)
             for y in (MEM, MEM_LP)}
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
        rows.append([f"{r['level']:g}", str(r["arm"]),
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
        for key in (MEM, MEM_LP, GATE, "spectral.log_spectral_distance_db"):
            a, b = _final(d, arm, key), _at_step(d, base, k, key)
            rows.append([arm, str(k), _label(key), t_interval(a.to_numpy(dtype=float)).fmt(),
                         t_interval(b.to_numpy(dtype=float)).fmt(), _paired(a, b).fmt()])
    if not rows:
        return None
    return _md_table(["stopped run", "k", "metric", "run whose schedule ends at k",
                      f"{base} checkpoint at k", "Δ (paired)"], rows)


# ----------------------------------------------------------------------------- samplers
SAMPLER_FIGURES = [MEM, MEM_LP, GATE, "alignment_vs_holdout.mmd2",
                   "spectral.log_spectral_distance_db", "memorization.dcr_median_ratio"]


TSTR, AUG_GAIN, TRTR = ("downstream.tstr.macro_f1", "downstream.augmentation_gain",
                        "downstream.trtr.macro_f1")


def utility_section(d: pd.DataFrame, n: int, base: str, out: Path) -> list[str]:
    """Downstream utility (TSTR macro-F1, augmentation gain) against the memorized fraction over
    checkpoints and arms (a plot), and per arm at the final step (a table, paired by seed)."""
    tag = _n(n)
    arms = _arms(d)
    colors = _colors(arms)
    fig, axes = _figure(1, 2, (12, 4.5))
    for ax, key in zip(axes.flat, (TSTR, AUG_GAIN)):
        for arm in arms:
            g = d[d.arm == arm].groupby("step")[[MEM, key]].mean()
            ax.plot(g[MEM], g[key], marker="o", ms=3, color=colors[arm], label=arm)
            ax.plot(g[MEM].iloc[-1:], g[key].iloc[-1:], marker="s", ms=7, color=colors[arm])
        if key == TSTR:
            ax.axhline(float(d[TRTR].mean()), color="k", ls="--", lw=1, label="TRTR (real)")
        else:
            ax.axhline(0, color="k", ls="--", lw=1, label="no gain")
        ax.set_xlabel("memorized fraction")
        ax.set_ylabel("TSTR macro-F1" if key == TSTR else "augmentation gain in macro-F1")
    axes[0][0].legend(fontsize=6)
    fig.suptitle("utility against memorization: one point per checkpoint (mean over seeds), "
                 "square = final step", fontsize=9)
    fig.savefig(out / f"utility_n{tag}.png", dpi=110)
    final = d[d.step == d.groupby("cell").step.transform("max")]
    rows = []
    for arm in arms:
        a = final[final.arm == arm].set_index("seed")
        b = final[final.arm == base].set_index("seed")
        cells = [t_interval(a[k].to_numpy(dtype=float)).fmt() for k in (MEM, TSTR, AUG_GAIN)]
        deltas = ["—", "—"] if arm == base else [_paired(a[k], b[k]).fmt() for k in (TSTR, MEM)]
        rows.append([arm, *cells, *deltas])
    return ["### Utility against memorization", "",
            f"A classifier trained on each checkpoint's labelled samples and tested on the "
            f"holdout (TSTR), and on the real records plus as many synthetic ones (gain over "
            f"TRTR, mean TRTR macro-F1 {float(d[TRTR].mean()):.3f}); the trade-off a user buys.",
            "", f"![](utility_n{tag}.png)", "",
            _md_table(["arm", "memorized (final)", "TSTR macro-F1", "augmentation gain",
                       f"Δ TSTR vs {base}", f"Δ memorized vs {base}"], rows), ""]


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


def _fmt_ci(mean: float, low: float, high: float, n: int) -> str:
    from sigdiff.stats import Interval

    return Interval(mean, low, high, n).fmt()


def sampler_table(d_all: pd.DataFrame, base: str, primary: str) -> str | None:
    """The evaluation sampler as a factor: every further sampler's figures beside the primary
    sampler's on the same checkpoints (same models, same seeds), paired by seed against the
    primary sampler (what the sampler changes) and against the baseline arm under the same
    sampler (whether an arm's effect survives the sampler change)."""
    others = [s for s in dict.fromkeys(d_all.sampler) if s != primary]
    if not others:
        return None
    header = ["sampler", "arm", "step", *(_label(k) for k in SAMPLER_FIGURES),
              "Δ mem. vs " + primary, "Δ gate vs " + primary, f"Δ mem. vs {base}",
              f"Δ gate vs {base}"]
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
                           for k in SAMPLER_FIGURES]
                vs_primary = ["—", "—"] if sampler == primary else [
                    _paired(at(sampler, arm, step, k), at(primary, arm, step, k)).fmt()
                    for k in (MEM, GATE)]
                has_base = arm != base and len(at(sampler, base, step, MEM))
                vs_base = [_paired(at(sampler, arm, step, k), at(sampler, base, step, k)).fmt()
                           if has_base else "—" for k in (MEM, GATE)]
                rows.append([sampler, arm, str(int(step)), *figures, *vs_primary, *vs_base])
    return _md_table(header, rows)


# ----------------------------------------------------------------------------- claims
def reading(signal_u: float) -> str:
    """Which reading of "later denoising steps" an arm's emphasis is, by where its learning
    signal sits (``signal_mean_u``: E[t]/T under the contribution profile, so a loss weighting
    such as min-SNR counts as much as the timestep sampler)."""
    return "small t" if signal_u < SMALL_T else ("large t" if signal_u > LARGE_T else "middle")


SUMMARY_KEYS = ("mean_u", "signal_mean_u", "mass_snr_gt_1", "share_snr_gt_1", "ess_fraction")


def _contribution(sweep: Mapping[str, Any], cell: str) -> Any:
    """The closed-form learning-contribution profile of one cell's config (an xarray Dataset)."""
    from sigdiff.config import config_from_dict
    from sigdiff.contribution import learning_contribution

    cfg = config_from_dict(sweep["cells"][cell])
    return learning_contribution(cfg.timesteps.build(cfg.diffusion.build_schedule()),
                                 weighting=cfg.weighting,
                                 parameterization=cfg.diffusion.build_parameterization())


def contribution_summary(sweep: Mapping[str, Any], arms: Sequence[str],
                         cells: Mapping[str, str]) -> dict[str, dict[str, float]]:
    """Closed-form learning-contribution figures per arm (mean u = E[t]/T and others)."""
    return {arm: {k: float(_contribution(sweep, cells[arm]).attrs[k]) for k in SUMMARY_KEYS}
            for arm in arms}


def claim_rows(results_dir: str | Path, *, baseline: str | None = None
               ) -> list[dict[str, Any]]:
    """Per arm, size and evaluation sampler of one sweep: the paired differences the paper's
    claim is about — memorization at equal alignment (Δ AUF on the joint gate, frontier
    sampler only: the others are measured at single checkpoints), final memorized fraction and
    final alignment gate — against the baseline arm, with the setting spelled out."""
    d_all, sweep = load_results(results_dir, all_samplers=True)
    primary = primary_sampler(sweep)
    d = d_all[d_all.sampler == primary]
    base = _baseline(d, baseline)
    arms = _arms(d)
    first = {a: str(d[d.arm == a].iloc[0]["cell"]) for a in arms}
    summary = contribution_summary(sweep, arms, first) if sweep.get("cells") else {}
    data = sweep.get("raw", {}).get("data", {})
    source = data.get("dataset") or Path(str(data.get("train", "?"))).stem
    out = []
    for n in sorted(d.train_subset.unique()):
        dn, an = d[d.train_subset == n], d_all[d_all.train_subset == n]
        auf = frontier_on(dn, base, x_key=GATE, levels=list(LEVELS)).auf[MEM].set_index("arm")
        for arm in [a for a in _arms(dn) if a != base]:
            cfg = sweep.get("cells", {}).get(first[arm], {})
            param = cfg.get("diffusion", {}).get("parameterization", "?")
            mean_u = summary.get(arm, {}).get("signal_mean_u", float("nan"))
            a = auf.loc[arm]
            for sampler in dict.fromkeys(an[an.arm == arm].sampler):
                ds = an[an.sampler == sampler]
                if base not in set(ds.arm):
                    continue
                final = int(ds[ds.arm == arm].step.max())
                row = {"reading": reading(mean_u), "arm": arm, "baseline": base,
                       "mean_u": mean_u, "source": source, "train_subset": int(n),
                       "parameterization": param, "sampler": sampler, "final_step": final,
                       "d_auf": Interval(a["diff_mean"], a["diff_low"], a["diff_high"],
                                         int(a["diff_n"])) if sampler == primary else None}
                row["d_mem_final"], row["d_gate_final"] = final_comparison(ds, arm, base)
                out.append(row)
    return out


def claims_table(results_dirs: Sequence[str | Path]) -> str:
    """The "what we measured vs what the paper says" table over one or more sweeps."""
    rows = []
    for results in results_dirs:
        for r in claim_rows(results):
            setting = (f"{r['source']}, {_n(r['train_subset'])} records, {r['parameterization']}, "
                       f"{r['final_step']} steps, {r['sampler']}")
            rows.append([r["reading"], r["arm"], setting, r["d_mem_final"].fmt(),
                         r["d_gate_final"].fmt(),
                         r["d_auf"].fmt() if r["d_auf"] is not None else "— (one checkpoint)",
                         _claim_word(r)])
    return _md_table(["reading", "arm (vs its uniform baseline)", "setting",
                      "Δ final memorized fraction", "Δ final alignment gate (lower = closer to "
                      "real)", "Δ AUF (frontier, first crossings)",
                      "vs the paper (less memorization, better alignment)"], rows)


def _claim_word(r: Mapping[str, Any]) -> str:
    if r["d_mem_final"].n < 2:
        return "fewer than two paired seeds"
    outcome = equal_alignment_outcome(r["d_mem_final"], r["d_gate_final"])
    mem = {1: ", more memorization", -1: ", less memorization", 0: ""}[_sign(r["d_mem_final"])]
    what = {-1: "less memorization at equal alignment" + (
                " and better alignment" if _sign(r["d_gate_final"]) < 0 else ""),
            1: "more memorization at equal alignment",
            0: "no significant difference at equal alignment",
            2: "worse alignment" + mem}[outcome]
    if r["reading"] == "middle":  # not a reading of the paper: describe, do not judge
        return what + " (control)"
    return {-1: "agrees: ", 1: "**against**: ", 0: "", 2: "**against**: "}[outcome] + what


# ----------------------------------------------------------------------------- plots
def _figure(rows: int, cols: int, size: tuple[float, float]) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, constrained_layout=True)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, squeeze=False)


def _colors(arms: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {a: cmap(i % 10) for i, a in enumerate(arms)}


OVER_STEPS = [GATE, MEM, MEM_LP, "alignment_vs_holdout.mmd2", "spectral.log_spectral_distance_db",
              "alignment_vs_holdout.c2st_1nn"]


def plot_over_steps(d: pd.DataFrame, n: int, path: Path) -> Path:
    """Key figures against training step, mean and 95% CI over seeds, floor and copier lines."""
    arms = _arms(d)
    colors = _colors(arms)
    fig, axes = _figure(2, 3, (14, 7.5))
    for ax, key in zip(axes.flat, OVER_STEPS):
        for arm in arms:
            g = d[d.arm == arm].groupby("step")[key]
            cis = [(s, t_interval(v.to_numpy(dtype=float))) for s, v in g]
            steps = [s for s, _ in cis]
            ax.plot(steps, [c.mean for _, c in cis], marker="o", ms=3, color=colors[arm],
                    label=arm)
            ax.fill_between(steps, [c.low for _, c in cis], [c.high for _, c in cis],
                            color=colors[arm], alpha=0.15)
        if key == GATE:  # log scale: the floor (0) lies below the axis
            ax.axhline(1, color="grey", ls=":", lw=1, label="copier / residual noise (1)")
        for ref, style in (("floor", "--"), ("copier", ":")):
            s = _per_seed_reference(d, key, ref)
            if len(s):
                ax.axhline(float(s.mean()), color="k" if ref == "floor" else "grey", ls=style,
                           lw=1, label=f"{ref} (reference)")
        ax.set_title(_label(key), fontsize=9)
        ax.set_xlabel("training step")
        ax.set_xscale("log")
        if key in (GATE, "spectral.log_spectral_distance_db"):
            ax.set_yscale("log")
    axes[0][0].legend(fontsize=6)
    fig.suptitle(f"figures over training (n = {_n(n)} training records): mean and 95% t-interval "
                 "over seeds; dashed: real-data floor, dotted: copier", fontsize=9)
    fig.savefig(path, dpi=110)
    return path


def plot_contributions(sweep: Mapping[str, Any], arms: Sequence[str], cells: Mapping[str, str],
                       path: Path) -> tuple[Path, dict[str, dict[str, float]]]:
    """p(t) and the closed-form share of the learning signal per arm (sigdiff.contribution)."""
    colors = _colors(arms)
    fig, axes = _figure(2, 1, (8, 6.5))
    summary = {}
    for arm in arms:
        ds = _contribution(sweep, cells[arm])
        width = (ds.t_stop - ds.t_start).values
        axes[0][0].step(ds.t_start.values, ds.mass.values / width, where="post",
                        color=colors[arm], label=arm)
        axes[1][0].step(ds.t_start.values, ds.share.values, where="post", color=colors[arm])
        summary[arm] = {k: float(ds.attrs[k]) for k in SUMMARY_KEYS}
        t_snr = float(ds.attrs["t_snr_1"])
        T = int(ds.attrs["num_timesteps"])
    for ax in (axes[0][0], axes[1][0]):
        ax.axvline(t_snr, color="grey", ls=":", lw=1, label="SNR = 1")
        ax.set_xlim(0, T)
    axes[0][0].axhline(1 / T, color="k", ls="--", lw=1, label="uniform 1/T")
    axes[0][0].set_ylabel("p(t) per step")
    axes[0][0].legend(fontsize=7)
    axes[1][0].set_ylabel("share of learning signal p·w·λ·E‖∇L‖")
    axes[1][0].set_xlabel("timestep t (0 = clean; 'later denoising steps' = small t)")
    fig.suptitle("learning-contribution profile per arm (Gaussian closed form, "
                 "sigdiff.contribution)", fontsize=9)
    fig.savefig(path, dpi=110)
    return path, summary


def _n(n: int) -> str:
    return "all" if n < 0 else str(n)


# ----------------------------------------------------------------------------- verdict
def final_comparison(d: pd.DataFrame, arm: str, base: str) -> tuple[Interval, Interval]:
    """(Δ final memorized fraction, Δ final gate score) against the baseline, paired by seed, at
    the arm's final step (the baseline's checkpoint at the same step)."""
    step = int(d[d.arm == arm].step.max())

    def diff(key: str) -> Interval:
        return _paired(_at_step(d, arm, step, key).astype(float),
                       _at_step(d, base, step, key).astype(float))

    return diff(MEM), diff(GATE)


def equal_alignment_outcome(d_mem: Interval, d_gate: Interval) -> int:
    """+1 more / −1 less memorization than the baseline at equal or better alignment (the gate
    difference's interval includes 0 or lies below it); 0 no significant difference; 2 when the
    arm's alignment is significantly worse (not a comparison at equal alignment)."""
    if _sign(d_gate) > 0:
        return 2
    return _sign(d_mem)


def verdict(d: pd.DataFrame, base: str, summary: Mapping[str, Mapping[str, float]],
            gate: Frontier, flags: Mapping[str, bool]) -> str:
    """Plain-language verdict on "emphasis on the later denoising steps (small t) reduces
    memorization and improves alignment", read two ways, paired by seed: at the end of training
    where the arms' alignment does not differ significantly (memorization at equal alignment
    once alignment has saturated), and on the frontier over training (memorization at the first
    crossing of each alignment level, AUF); beside the paper's own metric."""
    def where(arm: str) -> float:
        return summary.get(arm, {}).get("signal_mean_u", 0.5)

    lines = []
    runs = gate.runs[MEM]
    never_by = runs.groupby("arm")["n_never"].sum()
    level_count = runs.groupby("arm")["n_levels"].sum()
    auf_by = gate.auf[MEM].set_index("arm")
    lp_by = gate.auf[MEM_LP].set_index("arm")
    outcome: dict[str, int] = {}
    first: dict[str, int] = {}
    for arm in [a for a in _arms(d) if a != base]:
        a, b = auf_by.loc[arm], lp_by.loc[arm]
        da = Interval(a["diff_mean"], a["diff_low"], a["diff_high"], int(a["diff_n"]))
        db = Interval(b["diff_mean"], b["diff_low"], b["diff_high"], int(b["diff_n"]))
        d_mem, d_gate = final_comparison(d, arm, base)
        paper = _paired(_final(d, arm, "alignment_vs_train.pca_js"),
                        _final(d, base, "alignment_vs_train.pca_js"))
        never, total = int(never_by.loc[arm].sum()), int(level_count.loc[arm].sum())
        outcome[arm] = equal_alignment_outcome(d_mem, d_gate)
        first[arm] = _sign(da) if _sign(da) == _sign(db) else 0
        lines.append(f"- **{arm}** (signal mean u = {where(arm):.2f}): at the final step Δ memorized "
                     f"fraction {d_mem.fmt()}, Δ gate score {d_gate.fmt()} "
                     f"({_outcome_words(outcome[arm])}); on the frontier Δ AUF {da.fmt()} raw, "
                     f"{db.fmt()} low-passed ({_direction(da)}; {never} of {total} seed × level "
                     "pairs never reached, counted as 1); max memorized fraction over training "
                     f"{_max_ci(d, arm, MEM).fmt()} (baseline {_max_ci(d, base, MEM).fmt()}); Δ "
                     f"final PCA-JS vs train (the paper's metric) {paper.fmt()}.")
    small = [a for a in outcome if where(a) < SMALL_T]
    large = [a for a in outcome if where(a) > LARGE_T]
    if not small:
        head = "No arm puts its emphasis at small t, so the paper's reading is not tested here."
    elif all(outcome[a] < 0 for a in small):
        head = ("**The claim holds at the end of training**: every small-t arm memorizes less "
                "than the baseline at equal or better alignment (paired intervals).")
    elif any(outcome[a] in (1, 2) for a in small):
        worse = [a for a in small if outcome[a] in (1, 2)]
        head = ("**The claim is contradicted at the end of training**: the small-t arm(s) "
                f"{', '.join(worse)} memorize *more* than {base} at equal alignment, or align "
                "worse (paired intervals excluding 0).")
    else:
        head = ("**The claim is not supported at the end of training**: no small-t arm "
                "memorizes significantly less than the baseline at equal alignment.")
    if large:
        head += (" The other reading, emphasis at large t: "
                 + "; ".join(f"{a} {_outcome_words(outcome[a])}" for a in large) + ".")
    if any(first.values()):
        head += (" On the frontier over training (first crossing of each alignment level): "
                 + "; ".join(f"{a} has {_direction_word(v)}" for a, v in first.items() if v)
                 + ".")
    else:
        head += (" On the frontier over training no arm differs from the baseline (AUF): every "
                 "arm reaches each alignment level it reaches before it copies, so stopping at "
                 "the first crossing protects every arm alike; the samplers differ in what "
                 "training past that point costs.")
    blind = [_label(k) for k, v in flags.items() if not v and not k.startswith("alignment_vs_tr")]
    note = ["Equal alignment at the end of training: the arm's final gate score does not differ "
            "significantly from the baseline's at the same step (or is better); Δ = arm − "
            f"{base}, paired by seed, mean [95% t-interval].",
            f"AUF = area under memorized fraction at the first crossing of each alignment level, "
            f"over the gate scale from {LEVELS[0]:g} to {LEVELS[-1]:g} (levels "
            f"{', '.join(f'{v:g}' for v in LEVELS)}), divided by its width (a level a seed never "
            "reaches counts as 1, as bad as a copier).",
            "The paper's metric (PCA-W/JS against the *training* set) is shown beside it: "
            "copying the training records improves it by construction, so an arm that copies "
            "more can look better on it."]
    if blind:
        note.append("Metrics that did not tell the floor from the copier in this sweep "
                    f"(flagged ⚠, not used for the verdict): {', '.join(blind)}.")
    return "\n".join([head, "", *lines, "", *note])


def _outcome_words(outcome: int) -> str:
    return {-1: "memorizes less at equal alignment", 1: "memorizes more at equal alignment",
            0: "no significant memorization difference at equal alignment",
            2: "aligns significantly worse (no comparison at equal alignment)"}[outcome]


def _max_ci(d: pd.DataFrame, arm: str, key: str) -> Interval:
    return t_interval(d[d.arm == arm].groupby("seed")[key].max().to_numpy(dtype=float))


def _sign(ci: Interval) -> int:
    """+1 / -1 when the interval lies above / below 0, else 0."""
    return 0 if not ci.excludes_zero else (1 if ci.mean > 0 else -1)


def _direction(ci: Interval) -> str:
    if ci.n < 2:
        return "fewer than two paired seeds: no interval"
    return {1: "higher AUF", -1: "lower AUF", 0: "no significant difference"}[_sign(ci)]


def _direction_word(sign: int) -> str:
    return {1: "a higher AUF (more memorization for its alignment, or alignment never reached)",
            -1: "a lower AUF", 0: "no significant AUF difference"}[sign]


# ----------------------------------------------------------------------------- report
def write_report(results_dir: str | Path, out_dir: str | Path, *,
                 baseline: str | None = None) -> Path:
    """Write `report.md` and the PNGs into `out_dir`; returns the Markdown path."""
    df_all, sweep = load_results(results_dir, all_samplers=True)
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
             "(0 = floor, 1 = residual-noise real data); its score is the worst of the three.",
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


def plot_emphasis(d: pd.DataFrame, summary: Mapping[str, Mapping[str, float]],
                  path: Path) -> bool:
    """Final memorized fraction per arm against its signal share at SNR > 1 and its signal
    mean u (two panels); False (nothing drawn) without the contribution summary."""
    arms = [a for a in _arms(d) if a in summary]
    if len(arms) < 2:
        return False
    colors = _colors(_arms(d))
    final = d[d.step == d.groupby("cell").step.transform("max")]
    fig, axes = _figure(1, 2, (12, 4.5))
    for ax, key, label in zip(axes.flat, ("share_snr_gt_1", "signal_mean_u"),
                              ("share of the learning signal at SNR > 1",
                               "signal mean u = E[t]/T under the learning signal")):
        for arm in arms:
            iv = t_interval(final[final.arm == arm][MEM].to_numpy(dtype=float))
            x = summary[arm][key]
            ax.errorbar([x], [iv.mean], yerr=[[iv.mean - iv.low], [iv.high - iv.mean]]
                        if iv.n > 1 else None, fmt="o", color=colors[arm], capsize=3, label=arm)
        ax.set_xlabel(label)
        ax.set_ylabel("final memorized fraction")
    axes[0][0].legend(fontsize=6)
    fig.savefig(path, dpi=110)
    return True


def _size_section(d: pd.DataFrame, n: int, base: str, sweep: Mapping[str, Any],
                  summary: Mapping[str, Mapping[str, float]], out: Path) -> list[str]:
    tag = _n(n)
    check_md, flags = metric_check(d)
    plot_over_steps(d, n, out / f"over_steps_n{tag}.png")
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
    stop = stopping_table(d, sweep, base)
    section = [f"## Training-set size {tag}", "", "### Verdict", "",
               verdict(d, base, summary, gate, flags), "",
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
               "### The frontier: memorization against alignment over training", "",
               f"![](frontier_raw_n{tag}.png)", "", f"![](frontier_lowpass_n{tag}.png)", "",
               "#### Area under the frontier (joint gate)", "",
               auf_table(gate.auf[MEM], gate.auf[MEM_LP]), "",
               "#### Memorization at equal alignment (joint gate; first crossing, interpolated)",
               "", "Status counts: seeds that reached the level between two checkpoints / "
               "already at the first checkpoint (left-censored: the value is an upper bound) / "
               "never. Δ uses the seeds where both arms reached it.", "",
               equal_alignment_table(gate, base), "",
               *per_axis]
    if stop:
        section += ["### Early stopping: a checkpoint is not a stopped run", "",
                    "Frontier studies here use a constant learning rate after warm-up, so a "
                    "checkpoint at step k is the model a run stopped at k gives. The row below "
                    "shows the difference once: a run whose cosine schedule ends at k beside "
                    "the constant-LR checkpoint at k (paired by seed).", "", stop, ""]
    return section


def headline_tables(results_dir: str | Path) -> str:
    """The final-checkpoint comparison table(s) beside the references, for the terminal."""
    df, _ = load_results(results_dir)
    return "\n\n".join(f"training-set size {_n(int(n))} (mean [95% t-interval] over seeds):\n"
                       + headline_table(df, int(n)) for n in sorted(df.train_subset.unique()))
