"""The verdict on the paper's claim, in words, from paired differences at the end of training and
on the frontier."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pandas as pd

from sigdiff import frontier
from sigdiff.report._core import (
    GATE,
    LEVELS,
    MEM,
    MEM_LP,
    QUALITY,
    _arms,
    _at_step,
    _final,
    _label,
    _paired,
)
from sigdiff.report.tables import Frontier
from sigdiff.stats import Interval, t_interval


def final_comparison(d: pd.DataFrame, arm: str, base: str, *, x_key: str = GATE
                     ) -> tuple[Interval, Interval]:
    """(Δ final memorized fraction, Δ final quality axis ``x_key``) against the baseline, paired
    by seed, at the arm's final step (the baseline's checkpoint at the same step)."""
    step = int(d[d.arm == arm].step.max())

    def diff(key: str) -> Interval:
        return _paired(_at_step(d, arm, step, key).astype(float),
                       _at_step(d, base, step, key).astype(float))

    return diff(MEM), diff(x_key)


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
    from sigdiff.report.claims import reading  # the arm's shift from the baseline, not its level

    small = [a for a in outcome if reading(where(a), where(base)) == "small t"]
    large = [a for a in outcome if reading(where(a), where(base)) == "large t"]
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


def equal_level(d: pd.DataFrame, arm: str, base: str, *, x_key: str = QUALITY
                ) -> tuple[float, Interval, int]:
    """(level, Δ memorized fraction at each run's first crossing of it paired by seed, pairs with
    an at-first upper bound): the level is the tightest one every run of both arms reaches (the
    largest of the runs' best ``x_key``), chosen from the quality axis alone before memorization
    is compared."""
    pair = d[d.arm.isin([arm, base])]
    level = frontier.common_level(pair, x_key=x_key, arms=[arm, base])
    cross = frontier.equal_alignment(pair, x_key=x_key, y_key=MEM, levels=[level])
    r = frontier.paired_at_levels(cross, baseline=base).iloc[0]
    return level, Interval(r["mean"], r["low"], r["high"], int(r["n"]), r["se"]), \
        int(r["n_censored_pairs"])


def quality_verdict(d: pd.DataFrame, base: str, summary: Mapping[str, Mapping[str, float]],
                    quality: Frontier, flags: Mapping[str, bool]) -> str:
    """The verdict on the validated quality axis, equal steps and equal quality stated apart:
    at the final step, Δ memorized fraction and Δ quality score side by side (two axes, not one
    outcome); at equal quality, Δ memorized fraction at each run's first crossing of the common
    level every run of both arms reaches, and Δ AUF over the data-driven grid levels every run of
    both reaches (never-reached levels counted apart, not charged as copying)."""
    def where(arm: str) -> float:
        return summary.get(arm, {}).get("signal_mean_u", 0.5)

    auf = frontier.paired_auf(quality.crossings[MEM], baseline=base).set_index("arm")
    total = quality.crossings[MEM].level.nunique()
    lines, at_level, steps = [], {}, {}
    for arm in [a for a in _arms(d) if a != base]:
        d_mem, d_q = final_comparison(d, arm, base, x_key=QUALITY)
        level, iv, censored = equal_level(d, arm, base)
        at_level[arm], steps[arm] = _sign(iv), (_sign(d_mem), _sign(d_q))
        a = auf.loc[arm]
        span = (f"over the {int(a['n_levels'])} of {total} grid levels {a['level_lo']:.3g} to "
                f"{a['level_hi']:.3g} that every run of both reaches" if a["n_levels"] else
                f"no level of the {total}-level grid is reached by every run of both")
        paper = _paired(_final(d, arm, "alignment_vs_train.pca_js"),
                        _final(d, base, "alignment_vs_train.pca_js"))
        lines.append(
            f"- **{arm}** (signal mean u = {where(arm):.2f}): **equal steps** (step "
            f"{int(d[d.arm == arm].step.max())}): Δ memorized fraction {d_mem.fmt()}, Δ quality "
            f"score {d_q.fmt()}. **Equal quality** (first crossing of quality score ≤ "
            f"{level:.3g}, the tightest level every run of both arms reaches): Δ memorized "
            f"fraction {iv.fmt()}" + (f" ({censored} pairs at the first checkpoint: upper "
                                      "bounds)" if censored else "")
            + f"; Δ AUF {_iv(a).fmt()} {span} (seed × level pairs never reached: arm "
            f"{int(a['arm_never'])}, baseline {int(a['base_never'])}, reported apart). Max "
            f"memorized fraction over training {_max_ci(d, arm, MEM).fmt()} (baseline "
            f"{_max_ci(d, base, MEM).fmt()}); Δ final PCA-JS vs train (the paper's metric) "
            f"{paper.fmt()}.")
    return "\n".join([_quality_head(d, base, where, at_level, steps), "", *lines, "",
                      *_quality_notes(base, quality, flags)])


def _iv(r: pd.Series) -> Interval:
    return Interval(r["mean"], r["low"], r["high"], int(r["n"]), r["se"])


def _quality_head(d: pd.DataFrame, base: str, where: Callable[[str], float], at_level: Mapping[str, int],
                  steps: Mapping[str, tuple[int, int]]) -> str:
    from sigdiff.report.claims import reading  # the arm's shift from the baseline

    small = [a for a in at_level if reading(where(a), where(base)) == "small t"]
    large = [a for a in at_level if reading(where(a), where(base)) == "large t"]
    if not small:
        head = ("No arm puts its emphasis at small t, so the paper's reading is not tested "
                "here.")
    elif all(at_level[a] < 0 for a in small):
        head = ("**At equal quality the claim holds**: every small-t arm memorizes less than "
                f"{base} where both first reach a common quality level (paired intervals).")
    elif any(at_level[a] > 0 for a in small):
        head = ("**At equal quality the claim is contradicted**: "
                + ", ".join(a for a in small if at_level[a] > 0)
                + f" memorize(s) *more* than {base} at a common quality level (paired "
                "intervals excluding 0).")
    else:
        head = ("**At equal quality the claim is not supported**: no small-t arm memorizes "
                f"significantly less than {base} at a common quality level.")
    head += " At equal steps (final checkpoint), two axes: " + "; ".join(
        f"{a}: {_steps_words(*steps[a])}" for a in at_level) + "."
    if large:
        head += (" The other reading, emphasis at large t, at equal quality: "
                 + "; ".join(f"{a} {_level_words(at_level[a])}" for a in large) + ".")
    return head


def _steps_words(mem: int, quality: int) -> str:
    return ({1: "memorizes more", -1: "memorizes less", 0: "no significant memorization "
             "difference"}[mem] + ", " + {1: "worse quality", -1: "better quality",
                                         0: "no significant quality difference"}[quality])


def _level_words(sign: int) -> str:
    return {1: "memorizes more", -1: "memorizes less", 0: "no significant difference"}[sign]


def _quality_notes(base: str, quality: Frontier, flags: Mapping[str, bool]) -> list[str]:
    grid = sorted(quality.crossings[MEM].level.unique())
    blind = [_label(k) for k, v in flags.items() if not v and not k.startswith("alignment_vs_tr")]
    note = [f"Quality axis: {_label(QUALITY)}, 2·AUC − 1 of a cross-validated classifier "
            "two-sample test against held-out real records (`sigdiff.metrics.quality`). Δ = "
            f"arm − {base}, paired by seed, mean [95% t-interval]; equal steps and equal quality "
            "are two comparisons, never one number.",
            "Level grid (chosen from the data before any arm is compared: the 5%, 15%, …, 95% "
            "quantiles of every checkpoint's quality score, all arms pooled): "
            + ", ".join(f"{v:.3g}" for v in grid) + ". AUF = area under memorized fraction at "
            "the first crossing of each level, over the levels every run of both arms reaches, "
            "divided by their width; a level some run never reaches is left out and counted.",
            "The paper's metric (PCA-W/JS against the *training* set) is shown beside it: "
            "copying the training records improves it by construction."]
    if blind:
        note.append("Metrics that did not tell the floor from their anchor in this sweep "
                    f"(flagged ⚠, not used for the verdict): {', '.join(blind)}.")
    return note


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
