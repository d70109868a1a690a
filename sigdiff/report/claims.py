"""`sigdiff claims`: every paired test behind the "measured vs the paper" claims, across sweeps.

Per arm, training-set size and evaluation sampler, against the sweep's uniform arm, paired by
seed: the memorized fraction and the alignment gate at the final checkpoint (**equal steps**), and
— on the frontier's sampler, where every checkpoint was evaluated — the memorized fraction at the
first crossing of a common gate level and the area under the frontier over a level grid chosen
from the data (**equal gate**). Each test states its endpoint, n, Δ [95% t-interval], SE, the
paired t-test p and Holm's adjustment over every test of the table (one family); a plateau check
per arm says whether memorization still rises over the last checkpoint interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sigdiff import frontier
from sigdiff.report._core import (
    GATE,
    MEM,
    _arms,
    _baseline,
    _md_table,
    _n,
    load_results,
    primary_sampler,
)
from sigdiff.report.verdict import equal_level, final_comparison
from sigdiff.stats import Interval, holm, t_interval, t_pvalue

#: an arm that moves the mean of its learning signal (E[t]/T) by less than this from its
#: baseline's does not emphasise either end: "middle"
READING_SHIFT = 0.02


#: Holm-adjusted p below which a difference counts as shown
ALPHA = 0.05


def reading(signal_u: float, base_u: float) -> str:
    """Which reading of "later denoising steps" an arm's emphasis is: the direction in which it
    moves its learning signal away from its own baseline's (``signal_mean_u``: E[t]/T under the
    contribution profile, so a loss weighting such as min-SNR counts as much as the timestep
    sampler; the shift, not the level, so that what the parameterization does to both arms —
    eps puts every arm's signal at small t — is not read as the arm's emphasis)."""
    shift = signal_u - base_u
    return "middle" if not abs(shift) >= READING_SHIFT else ("small t" if shift < 0 else
                                                             "large t")


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


def _equal_gate(dn: pd.DataFrame, arm: str, base: str) -> tuple[float, Interval, int]:
    """(level, Δ memorized at each run's first crossing of it, pairs with an at-first upper
    bound) on the gate: `verdict.equal_level` with the gate as the axis."""
    return equal_level(dn, arm, base, x_key=GATE)


def _auf(cross: pd.DataFrame, arm: str, base: str) -> dict[str, Any]:
    pair = cross[cross.arm.isin([arm, base])]
    r = frontier.paired_auf(pair, baseline=base).iloc[0]
    return {"d_auf": Interval(r["mean"], r["low"], r["high"], int(r["n"]), r["se"]),
            "auf_levels": (r["level_lo"], r["level_hi"], int(r["n_levels"])),
            "auf_never": (int(r["arm_never"]), int(r["base_never"]))}


def claim_rows(results_dir: str | Path, *, baseline: str | None = None
               ) -> list[dict[str, Any]]:
    """Per arm, size and evaluation sampler of one sweep, against the baseline arm: Δ final
    memorized fraction and Δ final gate (equal steps) and, on the frontier's sampler, Δ memorized
    at a common gate level and Δ AUF over the data-driven grid (equal gate), with the setting
    spelled out and the levels recorded."""
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
        grid = frontier.data_levels(dn[GATE])  # all arms pooled, before any comparison
        cross = frontier.equal_alignment(dn, x_key=GATE, y_key=MEM, levels=grid)
        for arm in [a for a in _arms(dn) if a != base]:
            cfg = sweep.get("cells", {}).get(first[arm], {})
            u = summary.get(arm, {}).get("signal_mean_u", float("nan"))
            base_u = summary.get(base, {}).get("signal_mean_u", float("nan"))
            for sampler in dict.fromkeys(an[an.arm == arm].sampler):
                ds = an[an.sampler == sampler]
                if base not in set(ds.arm):
                    continue
                row = {"reading": reading(u, base_u), "arm": arm, "baseline": base,
                       "mean_u": u, "base_u": base_u, "source": source,
                       "results": str(results_dir), "train_subset": int(n),
                       "parameterization": cfg.get("diffusion", {}).get("parameterization",
                                                                        "?"),
                       "sampler": sampler, "primary": sampler == primary,
                       "final_step": int(ds[ds.arm == arm].step.max()), "grid": grid,
                       "n_checkpoints": len(dn), "d_mem_gate": None, "d_auf": None}
                row["d_mem_final"], row["d_gate_final"] = final_comparison(ds, arm, base)
                if sampler == primary:
                    level, iv, censored = _equal_gate(dn, arm, base)
                    row.update(gate_level=level, d_mem_gate=iv, gate_censored=censored,
                               **_auf(cross, arm, base))
                out.append(row)
    return out


def _setting(r: Mapping[str, Any]) -> str:
    return (f"{r['source']}, {_n(r['train_subset'])} records, {r['parameterization']}, "
            f"{r['final_step']} steps, {r['sampler']}")


def claim_tests(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One entry per paired test in ``rows`` (`claim_rows` of every sweep): endpoint, equal
    steps or equal gate, Δ, p and the Holm-adjusted p over all of them (one family)."""
    tests = []
    for i, r in enumerate(rows):
        final = f"final checkpoint ({r['final_step']} steps)"
        ends = [("memorized fraction", "equal steps", final, r["d_mem_final"]),
                ("alignment gate", "equal steps", final, r["d_gate_final"])]
        if r["d_mem_gate"] is not None:
            lo, hi, k = r["auf_levels"]
            arm_never, base_never = r["auf_never"]
            ends += [("memorized fraction", "equal gate",
                      f"first crossing of gate ≤ {r['gate_level']:.3g}"
                      + (f" ({r['gate_censored']} pairs at the first checkpoint)"
                         if r["gate_censored"] else ""), r["d_mem_gate"]),
                     ("AUF (memorized fraction)", "equal gate",
                      f"{k} grid levels {lo:.3g}–{hi:.3g} every run reaches; levels never "
                      f"reached: arm {arm_never}, baseline {base_never} seed × level",
                      r["d_auf"])]
        for endpoint, basis, where, iv in ends:
            tests.append({"setting_index": i, "endpoint": endpoint, "basis": basis,
                          "where": where, "d": iv, "p": t_pvalue(iv)})
    for t, adj in zip(tests, holm([t["p"] for t in tests])):
        t["p_holm"] = float(adj)
    return tests


def _shown(iv: Interval, p_holm: float) -> int:
    """+1 / −1 when the difference is shown after Holm (adjusted p < ALPHA), else 0."""
    return 0 if not p_holm < ALPHA else (1 if iv.mean > 0 else -1)


def _p(p: float) -> str:
    return "n/a" if np.isnan(p) else (f"{p:.2g}" if p >= 0.001 else f"{p:.1e}")


def plateau_rows(results_dir: str | Path) -> list[dict[str, Any]]:
    """Per arm and size (frontier sampler): the memorized fraction at the last two checkpoints
    and their paired difference over seeds (same run, so paired by seed)."""
    d, _ = load_results(results_dir)
    source = Path(results_dir).name
    out = []
    for (n, arm), g in d.groupby(["train_subset", "arm"], sort=False):
        steps = sorted(g.step.unique())
        if len(steps) < 2:
            continue
        prev, last = (g[g.step == s].set_index("seed")[MEM].astype(float) for s in steps[-2:])
        seeds = prev.index.intersection(last.index)
        out.append({"source": source, "train_subset": int(n), "arm": str(arm),
                    "steps": (int(steps[-2]), int(steps[-1])), "prev": float(prev.mean()),
                    "last": float(last.mean()),
                    "d": t_interval((last.loc[seeds] - prev.loc[seeds]).to_numpy())})
    return out


def _verdict(r: Mapping[str, Any], shown: Mapping[tuple[str, str], int]) -> str:
    """What the setting's tests show, after Holm; judged against the paper only for its own
    reading (small t), described for the others."""
    mem, gate = shown["memorized fraction", "equal steps"], shown["alignment gate", "equal steps"]
    words = {-1: "less memorization", 1: "more memorization", 0: "memorization n.s."}
    text = (f"equal steps: {words[mem]}, "
            + {-1: "better gate", 1: "worse gate", 0: "gate n.s."}[gate])
    eq = shown.get(("memorized fraction", "equal gate"))
    if eq is not None:
        text += f"; equal gate: {words[eq]}"
    if r["reading"] != "small t":
        return text + (" (control)" if r["reading"] == "middle" else " (the other reading)")
    if mem > 0 or gate > 0 or (eq or 0) > 0:
        return "**against** — " + text
    if mem < 0 and (eq is None or eq < 0):
        return "agrees — " + text
    return "not shown — " + text


def _levels_table(rows: Sequence[Mapping[str, Any]]) -> str:
    seen: dict[tuple[str, int], Mapping[str, Any]] = {}
    for r in rows:
        if r["primary"]:
            seen.setdefault((r["results"], r["train_subset"]), r)
    body = [[f"`{k[0]}`", _n(k[1]), r["sampler"], str(r["n_checkpoints"]),
             ", ".join(f"{v:.3g}" for v in r["grid"])] for k, r in seen.items()]
    return _md_table(["sweep", "records", "sampler", "checkpoints pooled (all arms × seeds × "
                      "steps)", "level grid: gate quantiles 5%, 15%, …, 95%"], body)


def _plateau_table(results_dirs: Sequence[str | Path]) -> tuple[str, int]:
    rows = [r for d in results_dirs for r in plateau_rows(d)]
    adj = holm([t_pvalue(r["d"]) for r in rows])
    body = [[f"`{r['source']}`, {_n(r['train_subset'])} records", r["arm"],
             f"{r['steps'][0]} → {r['steps'][1]}", f"{r['prev']:.3f} → {r['last']:.3f}",
             r["d"].fmt(), str(r["d"].n), _p(t_pvalue(r["d"])), _p(p),
             "**still rising**" if r["d"].excludes_zero and r["d"].mean > 0 else
             ("falling" if r["d"].excludes_zero else "no change shown")]
            for r, p in zip(rows, adj)]
    return _md_table(["sweep", "arm", "last interval (steps)", "memorized fraction (mean)",
                      "Δ [95% CI]", "n", "p", "Holm p (this table)",
                      "at the last checkpoint"], body), len(rows)


def claims_table(results_dirs: Sequence[str | Path]) -> str:
    """The claims document over one or more sweeps: definitions, the data-driven levels, every
    paired test with its Holm-adjusted p, the verdict per setting, and the plateau check."""
    rows = [r for results in results_dirs for r in claim_rows(results)]
    tests = claim_tests(rows)
    shown: list[dict[tuple[str, str], int]] = [{} for _ in rows]
    body = []
    for k, t in enumerate(tests, 1):
        r = rows[t["setting_index"]]
        shown[t["setting_index"]][t["endpoint"], t["basis"]] = _shown(t["d"], t["p_holm"])
        body.append([str(k), r["reading"], r["arm"], _setting(r), t["endpoint"], t["basis"],
                     t["where"], str(t["d"].n), t["d"].fmt(), f"{t['d'].se:.3g}", _p(t["p"]),
                     _p(t["p_holm"]),
                     {1: "arm higher", -1: "arm lower", 0: "not shown"}[
                         _shown(t["d"], t["p_holm"])]])
    verdicts = [[r["reading"], r["arm"], _setting(r), _verdict(r, s)]
                for r, s in zip(rows, shown)]
    plateau, m_plateau = _plateau_table(results_dirs)
    m = sum(np.isfinite(t["p"]) for t in tests)
    return "\n".join([
        "# Claims: what the committed rows show (generated; do not edit)", "",
        "Written by `sigdiff claims " + " ".join(str(d) for d in results_dirs)
        + " --out docs/results/claims.md`.", "", *_DEFINITIONS, "",
        f"**Family**: the {m} paired tests of Table 1 are one family and their p-values are "
        "Holm-adjusted together (the headline sentences are picked from this whole table, so "
        "the whole table is what a correction has to cover; per-endpoint families would be "
        f"smaller and less strict). Shown = Holm-adjusted p < {ALPHA:g}.", "",
        "## Levels chosen from the data (before any arm is compared)", "",
        _levels_table(rows), "",
        "## Table 1: every paired test (Δ = arm − uniform, same seed = same training records)",
        "", _md_table(["#", "reading", "arm (vs its uniform baseline)", "setting", "endpoint",
                       "basis", "where", "n", "Δ [95% CI]", "SE", "p (paired t)",
                       f"Holm p (m = {m})", "shown"], body), "",
        "## Table 2: per setting, after Holm", "",
        f"n.s.: not shown (Holm-adjusted p ≥ {ALPHA:g} in Table 1). Only the small-t reading is the "
        "paper's; the others are described, not judged against it.", "",
        _md_table(["reading", "arm", "setting", "what holds (vs the paper's claim: less "
                   "memorization and better alignment from emphasis on small t)"], verdicts),
        "", "## Table 3: plateau check (is memorization still rising at the end?)", "",
        f"Δ memorized fraction over the last checkpoint interval of each run, paired by seed "
        f"(frontier sampler); Holm over the {m_plateau} rows of this table (a family of its "
        "own: a different question from Table 1). \"Still rising\": the 95% interval lies "
        "above 0.", "", plateau])


_DEFINITIONS = [
    "- **Reading**: the direction in which the arm moves the mean of its learning signal "
    "(E[t]/T under the contribution profile of `sigdiff timesteps show`, which counts a loss "
    "weighting as much as the timestep sampler) away from its own uniform baseline's: toward "
    f"small t, toward large t, or by less than {READING_SHIFT:g} (middle). Taken from the arm, "
    "not from the parameterization both share.",
    "- **Equal steps**: both arms at the same final checkpoint. **Equal gate**: each run "
    "stopped where it first reaches a common alignment-gate level (linearly interpolated between "
    "the two checkpoints that bracket it): the tightest level every run of both arms reaches "
    "(the largest of the runs' best gate values), and the AUF over the levels of the recorded "
    "grid that every run of both arms reaches — levels some run never reaches are counted "
    "apart, not charged as copying. Both choices use the gate alone, before any memorization is "
    "compared; only the frontier's sampler, evaluated at every checkpoint, has them.",
    "- **The gate is not a validated quality score.** It is the worst of MMD², the 1-NN "
    "two-sample test (0 = real-data floor, 1 = copier) and the log-spectral distance (1 = "
    "residual-noise real data); in these sweeps its copy-sensitive parts decide it, so it is "
    "mostly a second copy detector and \"equal gate\" partly means \"equal copying\". It is the "
    "best equal-quality comparison the committed rows allow until a validated quality score "
    "re-evaluates them.",
    "- **n**: seeds paired; **Δ [95% CI]**: mean and Student-t interval of the per-seed "
    "differences; **SE**: s/√n; **p**: two-sided paired t-test.",
]
