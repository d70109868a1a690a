"""The cross-data-set tables of docs/metric-validation.md, from each folder's validation.json.

    python docs/metric-validation/summary.py > docs/metric-validation/summary.md
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).parent
SETS = {  # folder -> how it was made (the commands are in docs/metric-validation.md)
    "ecg5000": "ECG5000, 16 training beats",
    "ecg5000-64": "ECG5000, 64 training beats",
    "digits": "digits (8×8 images), 16",
    "sines": "sines (5 × 24), 16",
    "basicmotions": "BasicMotions IMU (6 × 100), 16",
    "ecgsyn": "ECGSYN (generated ECG), 16",
}
ROWS = ["quality.score", "gate.c2st_1nn", "gate.mmd2", "gate.log_spectral_distance_db",
        "alignment_vs_holdout.pca_wasserstein", "alignment_vs_holdout.sliced_wasserstein",
        "alignment_vs_holdout.coverage", "spectral.wasserstein_fourier_hz",
        "memorization.memorized_fraction", "memorization.memorized_fraction_lowpass"]


def _load() -> dict[str, dict]:
    return {name: json.loads((HERE / name / "validation.json").read_text())
            for name in SETS if (HERE / name / "validation.json").is_file()}


def _short(entry: dict | None) -> str:
    if entry is None:
        return "—"
    if entry["flagged"] and not entry["note"]:
        return "**fails: copier**"
    missed = entry["missed"]
    return "✓ all" if not missed else "misses " + ", ".join(missed)


def verdict_table(results: dict[str, dict]) -> str:
    head = "| metric | " + " | ".join(SETS[k] for k in results) + " |"
    lines = [head, "|" + "---|" * (len(results) + 1)]
    for key in ROWS:
        lines.append(f"| {key} | " + " | ".join(_short(r["metrics"].get(key))
                                                for r in results.values()) + " |")
    return "\n".join(lines)


def quality_table(results: dict[str, dict]) -> str:
    """Δ = score(reference) − score(floor) of the quality score, mean [95% CI] over repeats."""
    refs = list(next(iter(results.values()))["meta"]["references"])
    lines = ["| data set (n per set, repeats) | floor score | " + " | ".join(refs) + " |",
             "|" + "---|" * (len(refs) + 2)]
    for name, r in results.items():
        e = r["metrics"].get("quality.score")
        if e is None:  # validated before the quality score existed
            continue
        cells = []
        for ref in refs:
            s = e["separations"].get(ref)
            cells.append("—" if s is None or s["mean"] is None else
                         f"{s['mean']:.2f} [{s['low']:.2f}, {s['high']:.2f}]")
        meta = r["meta"]
        lines.append(f"| {SETS[name]} (n = {meta['n_compared']}, target {meta['n_target']}, "
                     f"{meta['repeats']}) | {e['floor']['mean']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    res = _load()
    print("## Verdicts per data set\n")
    print(verdict_table(res))
    print("\n## The quality score's separations (Δ = reference − floor, 95% t-interval)\n")
    print(quality_table(res))
