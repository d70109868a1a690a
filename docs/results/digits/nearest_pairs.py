"""Nearest-pair figures of the digits sweep: for each arm, seed 0, final step, the most copy-like
generated images beside their nearest training image (d1/d2 in the title), and grids of samples
and training images. Reads the sweep folder (cells' saved samples; run the sweep first).

    python docs/results/digits/nearest_pairs.py docs/results/digits
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from sigdiff.config import config_from_dict
from sigdiff.data.store import read_store
from sigdiff.metrics.memorization import neighbor_ratio
from sigdiff.metrics.plots import plot_image_grids
from sigdiff.training import subset_records


def main(sweep_dir: Path, seed: int = 0) -> None:
    record = json.loads((sweep_dir / "sweep.json").read_text())
    rows = [json.loads(line) for line in (sweep_dir / "results.jsonl").read_text().splitlines()]
    out_root = sweep_dir / "figures"
    for cell_id, values in record["cells"].items():
        cfg = config_from_dict(values)
        if cfg.seed != seed:
            continue
        step = cfg.steps
        samples = np.load(sweep_dir / "cells" / cell_id / "samples" / f"step_{step:08d}.npy")
        train_all, _ = read_store(cfg.data)
        train = train_all[subset_records(cfg, len(train_all))]
        ratio = neighbor_ratio(samples, train)
        out = out_root / cell_id
        out.mkdir(parents=True, exist_ok=True)
        plot_image_grids({"train": train, "generated": samples}, ratio, out)
        row = next(r for r in rows if r["cell"] == cell_id and r["step"] == step)
        print(f"{cell_id}: step {step}, memorized {ratio.fraction:.3f} "
              f"(sweep row {row['memorization.memorized_fraction']:.3f}) -> {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
