"""Which checkpoint each stopping rule hands a user, measured by the sweep's full evaluation.

For every cell of a sweep (one arm, one seed), three rules pick a checkpoint:

- ``guard``: what `sigdiff train --guard` (mode "stop") would have returned — the decision on
  the cell's guard trace (its guard.json) up to the first evaluation where it would have stopped,
  else on the whole trace;
- ``oracle``: hindsight early stopping — the best-aligned of the sweep's own evaluations (500
  samples by default) whose memorization is not significantly above the floor by the guard's two
  tests at that larger n;
- ``final``: the end of training.

The memorized fraction and the gate score at the picked step come from the sweep's rows (one
evaluation for every rule, so the rules are compared on equal terms). Paired by seed against a
baseline (arm, rule) with Student-t intervals: Δ memorization and Δ gate.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sigdiff.guard.decision import GuardEval, copying, decide, fraction_test
from sigdiff.guard.monitor import GUARD_FILE
from sigdiff.stats import t_interval

__all__ = ["RULES", "SELECTION_COLUMNS", "paired_selection", "select_checkpoints"]

RULES = ("guard", "oracle", "final")
SELECTION_COLUMNS = ("arm", "seed", "rule", "step", "memorized_fraction", "gate", "status")
MEM, FLOOR, GATE = ("memorization.memorized_fraction", "memorization.memorized_fraction@floor",
                    "gate.score")


def guard_stop_choice(record: dict[str, Any]) -> int | None:
    """The step a stop-mode guard returns on this trace: the decision at the first evaluation
    where it would have stopped, else at the last one."""
    cfg = record["config"]
    trace = [GuardEval.from_dict(e) for e in record["evaluations"]]
    moves = record.get("moves", [])
    for i in range(1, len(trace) + 1):
        last = max((m["step"] for m in moves if m["step"] <= trace[i - 1].step), default=None)
        d = decide(trace[:i], patience=cfg["patience"], mode="stop", level=cfg["level"],
                   last_move_step=last)
        if d.stop or i == len(trace):
            return d.chosen_step
    return None


def _oracle(run: pd.DataFrame, alpha: float) -> int | None:
    clean = []
    for _, r in run.iterrows():
        n, nf = int(r["n_samples"]), int(r["n_compared"])
        k, kf = round(r[MEM] * n), round(r[FLOOR] * nf)
        if not copying(fraction_test(k, n, kf, nf), float(r["memorization.dcr_p_closer"]), alpha):
            clean.append((r[GATE] if math.isfinite(r[GATE]) else math.inf, int(r["step"])))
    return min(clean)[1] if clean else None


def select_checkpoints(sweep_dir: str | Path, df: pd.DataFrame, *, alpha: float = 0.05
                       ) -> pd.DataFrame:
    """One row per (arm, seed, rule): the picked step and the sweep's figures there
    (``status``: "ok", "no guard" without a guard.json, "not evaluated" when the sweep has no
    row at the picked step, "none clean" when every evaluation copies)."""
    out = []
    for (arm, seed), run in df.sort_values("step").groupby(["arm", "seed"], sort=False):
        cell = run["cell"].iloc[0]
        by_step = run.set_index("step")
        path = Path(sweep_dir) / "cells" / cell / GUARD_FILE
        picks = {"final": (int(run["step"].max()), "ok"),
                 "oracle": (_oracle(run, alpha), "ok")}
        if path.is_file():
            picks["guard"] = (guard_stop_choice(json.loads(path.read_text())), "ok")
        else:
            picks["guard"] = (None, "no guard")
        for rule in RULES:
            step, status = picks[rule]
            if step is None and status == "ok":
                status = "none clean"
            if step is not None and step not in by_step.index:
                status = "not evaluated"
            ok = status == "ok"
            out.append({"arm": arm, "seed": int(seed), "rule": rule, "step": step,
                        "memorized_fraction": float(by_step.at[step, MEM]) if ok else np.nan,
                        "gate": float(by_step.at[step, GATE]) if ok else np.nan,
                        "status": status})
    return pd.DataFrame(out, columns=list(SELECTION_COLUMNS))


def paired_selection(sel: pd.DataFrame, *, baseline: tuple[str, str]) -> pd.DataFrame:
    """Per (arm, rule): mean memorization and gate, and the paired-by-seed differences against
    ``baseline`` = (arm, rule), with 95% t-intervals; n counts the seeds where both are known."""
    base = sel[(sel.arm == baseline[0]) & (sel.rule == baseline[1])].set_index("seed")
    rows = []
    for (arm, rule), g in sel.groupby(["arm", "rule"], sort=False):
        g = g.set_index("seed")
        seeds = [s for s in g.index if s in base.index and g.at[s, "status"] == "ok"
                 and base.at[s, "status"] == "ok"]
        dm = t_interval([g.at[s, "memorized_fraction"] - base.at[s, "memorized_fraction"]
                         for s in seeds])
        dg = t_interval([g.at[s, "gate"] - base.at[s, "gate"] for s in seeds])
        rows.append({"arm": arm, "rule": rule, "n": len(seeds),
                     "n_not_ok": int((g["status"] != "ok").sum()),
                     "memorized_fraction": float(g["memorized_fraction"].mean()),
                     "gate": float(g["gate"].mean()), "mean_step": float(g["step"].mean()),
                     "d_mem": dm.mean, "d_mem_low": dm.low, "d_mem_high": dm.high,
                     "d_mem_se": dm.se, "d_gate": dg.mean, "d_gate_low": dg.low,
                     "d_gate_high": dg.high, "d_gate_se": dg.se})
    return pd.DataFrame(rows)
