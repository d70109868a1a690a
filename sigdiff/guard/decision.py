"""The guard's decision on a trace of evaluations: pure functions, no model, no data.

One evaluation measures, at a training step, (a) memorization relative to the real-data floor by
two one-sided tests — Fisher's exact test of "more generated samples pass the nearest-neighbour
1/3 rule than held-out real records do" and the Mann-Whitney test of "generated samples sit
closer to the training records than held-out real records do" (DCR) — and (b) alignment to the
held-out records by the gate score (0 = as aligned as unseen real data, 1 = as far as the anchor
references; `sigdiff.metrics.gate`).

An evaluation is **copying** when either test rejects at α/2 (Bonferroni: the pair keeps a
family-wise level α). The guard keeps the **best-aligned** evaluation (lowest gate score; the
earlier step on ties) among those that are not copying, and says whether it passes the gate
(score ≤ level). With ``mode = "stop"`` the run ends once ``patience`` evaluations in a row are
copying (counted since the controller's last move, when a controller moves the sampler).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from scipy import stats

from sigdiff.guard.config import ControllerConfig
from sigdiff.timesteps import TimestepSamplerConfig

__all__ = ["Decision", "GuardEval", "controller_move", "copying", "decide", "fraction_test",
           "wilson_interval"]


@dataclass(frozen=True)
class GuardEval:
    """One evaluation of the guard at a training step (plain values, JSON-ready)."""

    step: int
    n_generated: int
    n_floor: int
    memorized_generated: int  # samples passing the 1/3 rule against the training records
    memorized_floor: int  # held-out real records passing it
    p_fraction: float  # Fisher exact, one-sided (generated fraction > floor fraction)
    p_dcr: float  # Mann-Whitney, one-sided (generated DCR < held-out DCR)
    dcr_median_ratio: float  # median DCR generated / held-out (< 1: closer than real data)
    gate_score: float  # joint alignment score (lower is better), nan when no gate metric usable
    gate_se: float
    gate_passes: bool | None
    alpha: float

    @property
    def fraction_generated(self) -> float:
        return self.memorized_generated / self.n_generated

    @property
    def fraction_floor(self) -> float:
        return self.memorized_floor / self.n_floor

    @property
    def copying(self) -> bool:
        return copying(self.p_fraction, self.p_dcr, self.alpha)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(copying=self.copying, fraction_generated=self.fraction_generated,
                   fraction_floor=self.fraction_floor,
                   fraction_generated_ci=list(wilson_interval(self.memorized_generated,
                                                              self.n_generated)),
                   fraction_floor_ci=list(wilson_interval(self.memorized_floor, self.n_floor)))
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GuardEval:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in values.items() if k in names})


def copying(p_fraction: float, p_dcr: float, alpha: float) -> bool:
    """Either one-sided test rejects "no closer to the training data than real data" at α/2."""
    return min(p_fraction, p_dcr) < alpha / 2


def fraction_test(memorized: int, n: int, memorized_floor: int, n_floor: int) -> float:
    """One-sided Fisher exact p-value for "the generated fraction exceeds the floor's"."""
    table = [[memorized, n - memorized], [memorized_floor, n_floor - memorized_floor]]
    return float(stats.fisher_exact(table, alternative="greater").pvalue)


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k/n (good at 0 and small n)."""
    if n == 0:
        return (math.nan, math.nan)
    z = float(stats.norm.ppf((1 + confidence) / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class Decision:
    """The guard's answer for a trace: the chosen step (None when every evaluation copies), why,
    whether the chosen one passes the gate, and whether training should stop now."""

    chosen_step: int | None
    reason: str
    passes_gate: bool | None
    stop: bool
    copying_streak: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _gate_key(e: GuardEval) -> tuple[float, int]:
    score = e.gate_score if math.isfinite(e.gate_score) else math.inf
    return (score, e.step)


def decide(trace: Sequence[GuardEval], *, patience: int, mode: str, level: float,
           last_move_step: int | None = None) -> Decision:
    """The decision after the evaluations in ``trace`` (ordered by step); see the module doc.

    ``last_move_step``: the step of the controller's last sampler move; the copying streak that
    stops the run only counts evaluations after it (the controller gets to act first)."""
    if not trace:
        return Decision(None, "no evaluation yet", None, False, 0)
    steps = [e.step for e in trace]
    if steps != sorted(set(steps)):
        raise ValueError(f"guard trace must be ordered by step without repeats, got {steps}")
    streak = 0
    for e in reversed(trace):
        if not e.copying or (last_move_step is not None and e.step <= last_move_step):
            break
        streak += 1
    stop = mode == "stop" and streak >= patience
    clean = [e for e in trace if not e.copying]
    if not clean:
        return Decision(None, f"every evaluation so far ({len(trace)}) copies: memorization is "
                        "significantly above the real-data floor at each one", None, stop, streak)
    best = min(clean, key=_gate_key)
    passes = best.gate_passes if math.isfinite(best.gate_score) else None
    if passes is None:
        how = "no gate metric could separate real data from its anchors here"
    elif passes:
        how = f"it passes the alignment gate (score {best.gate_score:.3f} ≤ {level})"
    else:
        how = (f"it does not pass the alignment gate (score {best.gate_score:.3f} > {level}): "
               "the best this run reached without copying")
    reason = (f"step {best.step}: best-aligned of the {len(clean)} of {len(trace)} evaluations "
              f"whose memorization is not significantly above the floor "
              f"({best.memorized_generated}/{best.n_generated} memorized vs "
              f"{best.memorized_floor}/{best.n_floor} held-out real records); {how}")
    return Decision(best.step, reason, passes, stop, streak)


def controller_move(ts: TimestepSamplerConfig, c: ControllerConfig
                    ) -> tuple[TimestepSamplerConfig, float, float] | None:
    """The controller's next sampler after a copying evaluation: ``c.param`` moved by ``c.by``,
    stopped at ``c.limit``; with the value before and after. None when it sits at the limit."""
    now = float(ts.floor if c.param == "floor" else ts.params[c.param])
    new = max(c.limit, now + c.by) if c.by < 0 else min(c.limit, now + c.by)
    if abs(new - c.limit) < 1e-9:  # 1 − 0.35 − 0.35 lands at 0.30000000000000004: snap
        new = c.limit
    if abs(new - now) < 1e-12:
        return None
    moved = (replace(ts, floor=new) if c.param == "floor" else
             replace(ts, params={**ts.params, c.param: new}))
    return moved, now, new
