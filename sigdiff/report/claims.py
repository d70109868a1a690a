"""`sigdiff claims`: the measured-vs-paper table across sweeps (reading, setting, Δ memorization,
Δ alignment, Δ AUF)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sigdiff.report._core import (
    GATE,
    LARGE_T,
    LEVELS,
    MEM,
    SMALL_T,
    _arms,
    _baseline,
    _md_table,
    _n,
    load_results,
    primary_sampler,
)
from sigdiff.report.tables import frontier_on
from sigdiff.report.verdict import _sign, equal_alignment_outcome, final_comparison
from sigdiff.stats import Interval


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
