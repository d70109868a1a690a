"""The verdict on the paper's claim, in words, from paired differences at the end of training and
on the frontier."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from sigdiff.report._core import (
    GATE,
    LARGE_T,
    LEVELS,
    MEM,
    MEM_LP,
    SMALL_T,
    _arms,
    _at_step,
    _final,
    _label,
    _paired,
)
from sigdiff.report.tables import Frontier
from sigdiff.stats import Interval, t_interval


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
