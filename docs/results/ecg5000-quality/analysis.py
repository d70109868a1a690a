"""The pre-registered analysis of PREREGISTRATION.md, from the committed cell rows.

    python docs/results/ecg5000-quality/analysis.py > docs/results/ecg5000-quality/results.md

Until all 15 cells are in, it prints the determinism check and each finished cell's trajectory
only: no test is run on a partial design (the pre-registration fixes n = 5 pairs per arm).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from sigdiff import frontier
from sigdiff.stats import holm, t_interval, t_pvalue

HERE = Path(__file__).parent
COMMITTED = HERE.parent / "ecg5000"
BASE = "uniform"
Q, MEM = "quality.score", "memorization.memorized_fraction"
SEEDS, CELLS = 5, 15


def _rows(cells: Path) -> pd.DataFrame:
    rows = [json.loads(line) for f in sorted(cells.glob("*/rows.jsonl"))
            for line in f.read_text().splitlines() if line.strip()]
    df = pd.DataFrame(rows)
    return df[df.get("sampler", "dpmpp_2m-25-trailing").astype(str).str.startswith("dpmpp")]


def determinism(df: pd.DataFrame) -> str:
    """Largest |Δ memorized fraction| of every re-run row against the committed row."""
    old = _rows(COMMITTED / "cells").set_index(["cell", "step"])[MEM]
    new = df.set_index(["cell", "step"])[MEM]
    common = new.index.intersection(old.index)
    diff = (new[common] - old[common]).abs()
    exact = int((diff == 0).sum())
    return (f"Determinism check: {len(common)} rows compared with the committed re-test; "
            f"{exact} identical, largest |Δ memorized fraction| {diff.max():.4f} "
            f"(mean {diff.mean():.4f}).")


def _paired(arm: pd.Series, base: pd.Series) -> dict[str, float]:
    iv = t_interval((arm - base).dropna().to_numpy())
    return {"mean": iv.mean, "low": iv.low, "high": iv.high, "se": iv.se, "n": iv.n,
            "p": t_pvalue(iv)}


def endpoints(df: pd.DataFrame) -> tuple[float, list[dict[str, object]]]:
    """q* and the six pre-registered tests (E1–E3 × two arms) with Holm's adjustment."""
    q_star = float(df.groupby(["arm", "seed"])[Q].min().max())
    cross = frontier.equal_alignment(df, x_key=Q, y_key=MEM, levels=[q_star])
    e1 = cross.set_index(["arm", "seed"])["y"]
    last = df[df.step == df.step.max()].set_index(["arm", "seed"])
    tests = []
    for arm in (a for a in dict.fromkeys(df.arm) if a != BASE):
        for name, values in (("E1 memorized at equal quality", e1),
                             ("E2 memorized at 5,000 steps", last[MEM]),
                             ("E3 quality at 5,000 steps", last[Q])):
            tests.append({"arm": arm, "endpoint": name,
                          **_paired(values.xs(arm), values.xs(BASE))})
    for t, p in zip(tests, holm([t["p"] for t in tests])):
        t["p_holm"] = float(p)
    return q_star, tests


def main() -> None:
    df = _rows(HERE / "cells")
    cells = len(list((HERE / "cells").glob("*/done.json")))
    print("# ECG5000 v re-test on the quality axis: results\n")
    print(f"Cells finished: {cells} of {CELLS} ({df.cell.nunique()} with rows). "
          + determinism(df) + "\n")
    steps = sorted(df.step.unique())
    print("Trajectories per cell so far, quality score / memorized fraction at each step:\n")
    print("| arm | seed | " + " | ".join(str(s) for s in steps) + " |")
    print("|---|---|" + "---|" * len(steps))
    for (arm, seed), g in df.sort_values("step").groupby(["arm", "seed"], sort=False):
        cells_ = g.set_index("step")
        print(f"| {arm} | {seed} | " + " | ".join(
            f"{cells_.at[s, Q]:.2f} / {cells_.at[s, MEM]:.2f}" if s in cells_.index else "—"
            for s in steps) + " |")
    print()
    if cells < CELLS or df.groupby("arm").seed.nunique().min() < SEEDS:
        print("The pre-registered tests wait for all 15 cells (no test on a partial design).")
        return
    q_star, tests = endpoints(df)
    print(f"q* (tightest quality level every run reaches, pooled over arms) = {q_star:.3f}\n")
    print("| arm | endpoint | n | Δ (arm − uniform) [95% CI] | SE | p | Holm p |")
    print("|---|---|---|---|---|---|---|")
    for t in tests:
        print(f"| {t['arm']} | {t['endpoint']} | {t['n']} | {t['mean']:.3f} [{t['low']:.3f}, "
              f"{t['high']:.3f}] | {t['se']:.3f} | {t['p']:.3g} | {t['p_holm']:.3g} |")
    rising = df[df.step.isin([4000, 5000])].pivot_table(index=["arm", "seed"], columns="step",
                                                        values=MEM)
    for arm, g in rising.groupby(level="arm"):
        iv = t_interval((g[5000] - g[4000]).to_numpy())
        print(f"\nTrained long enough? {arm}: Δ memorized 4,000 → 5,000 {iv.fmt()}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
