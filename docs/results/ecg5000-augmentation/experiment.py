"""Rare-class augmentation on ECG5000 (issue 15): do class-conditional synthetic beats raise the
holdout macro-F1 of a classifier trained on a small real subset, against oversampling the real
records (the honest baseline)?

Per seed s (≥ 5) and per size k (real beats per class, where available):

1. split the embedded 500 ECG5000 beats 80/20, stratified, with seed s;
2. draw min(k, available) training beats per class (seed s): the small real set;
3. train a class-conditional diffusion model on it (v-prediction, U-Net base 8, label dropout 0.1
   for classifier-free guidance, constant LR, EMA), seed s;
4. top every class up to the largest class count of the small set in three ways:
   ``real`` (no top-up), ``oversample`` (real beats of the class drawn with replacement),
   ``synthetic`` (class-conditional samples, DPM-Solver++ 25; guidance 1 = plain conditional) and
   ``synthetic-cfg2`` (guidance 2);
5. MiniRocket + ridge (sigdiff.metrics.downstream, 3 classifier seeds, averaged) on each training
   set, tested on the 100 held-out beats: macro-F1 over the classes present in the holdout, and
   per-class recall; the synthetic beats' memorized fraction against the small real set.

Each (size, seed) cell is written to cells/k{k}_s{s}.json when it finishes (resumable: finished
cells are skipped); `summary` pairs methods by seed with Student-t intervals and plots them.

    python docs/results/ecg5000-augmentation/experiment.py run  docs/results/ecg5000-augmentation
    python docs/results/ecg5000-augmentation/experiment.py summary docs/results/ecg5000-augmentation
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SEEDS = (0, 1, 2, 3, 4)
SIZES = (16, 64)
STEPS = 3000
CLASSIFIER_SEEDS = 3
METHODS = ("real", "oversample", "synthetic", "synthetic-cfg2")
CLASSES = (1, 2, 3, 4, 5)  # ECG5000's classes (5 is absent from the 100-beat holdouts here)


def _train_config(data: Path, seed: int) -> dict:
    return {"data": str(data), "steps": STEPS, "batch_size": 32, "seed": seed,
            "checkpoint_every": STEPS, "keep_last": 1, "log_every": 100, "ema_decay": 0.995,
            "conditional": True, "label_dropout": 0.1,
            "model": {"name": "unet", "preset": "small", "overrides": {"base_channels": 8}},
            "optim": {"lr": 1e-3, "warmup_steps": 50, "lr_schedule": "constant"},
            "diffusion": {"parameterization": "v"}}


def _subset(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 31])
    rows = [rng.choice(np.flatnonzero(y == c), min(k, int((y == c).sum())), replace=False)
            for c in np.unique(y)]
    return np.sort(np.concatenate(rows))


def _macro_f1(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
              test_y: np.ndarray) -> dict:
    from sklearn.metrics import f1_score, recall_score

    from sigdiff.metrics.downstream import fit_predict

    present = np.unique(test_y)
    f1s, recalls = [], []
    for cs in range(CLASSIFIER_SEEDS):
        pred = fit_predict("minirocket", train_x, train_y, test_x, seed=cs)
        f1s.append(f1_score(test_y, pred, labels=present, average="macro", zero_division=0))
        recalls.append(recall_score(test_y, pred, labels=present, average=None, zero_division=0))
    return {"macro_f1": float(np.mean(f1s)),
            "recall": {int(c): float(r) for c, r in zip(present, np.mean(recalls, axis=0))}}


def run_cell(out: Path, k: int, seed: int) -> dict:
    from sigdiff.datasets import make_dataset

    from sigdiff.config import load_config
    from sigdiff.data.store import open_store, split_store, write_store
    from sigdiff.generate import generate, load_model
    from sigdiff.metrics.memorization import neighbor_ratio
    from sigdiff.training import train

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        make_dataset("ecg5000", tmp / "full.zarr", seed=0)
        split_store(tmp / "full.zarr", holdout=0.2, seed=seed, out_train=tmp / "train.zarr",
                    out_holdout=tmp / "holdout.zarr")
        tr, ho = open_store(tmp / "train.zarr"), open_store(tmp / "holdout.zarr")
        assert tr.labels is not None and ho.labels is not None
        rows = _subset(tr.labels, k, seed)
        x, y = tr.read(rows), tr.labels[rows]
        xh, yh = ho.read(np.arange(ho.n_samples)), ho.labels
        write_store(tmp / "small.zarr", x, sampling_rate=tr.sampling_rate, labels=y)
        train(load_config(overrides=_train_config(tmp / "small.zarr", seed)),
              run_dir=tmp / "run", progress=False)
        model = load_model(tmp / "run")
        classes, counts = np.unique(y, return_counts=True)
        top = counts.max()
        rng = np.random.default_rng([seed, 37])
        sets: dict[str, tuple[np.ndarray, np.ndarray]] = {"real": (x, y)}
        over = [rng.choice(np.flatnonzero(y == c), top - n, replace=True)
                for c, n in zip(classes, counts)]
        idx = np.concatenate(over)
        sets["oversample"] = (np.concatenate([x, x[idx]]), np.concatenate([y, y[idx]]))
        memorized = {}
        for name, guidance in (("synthetic", 1.0), ("synthetic-cfg2", 2.0)):
            parts, labels = [], []
            for c, n in zip(classes, counts):
                if top - n:
                    parts.append(generate(model, n=int(top - n), seed=int(1000 * seed + c),
                                          steps=25, label=int(c), guidance=guidance,
                                          progress=False))
                    labels.append(np.full(top - n, c))
            xs, ys = np.concatenate(parts), np.concatenate(labels)
            memorized[name] = neighbor_ratio(xs, x).fraction
            sets[name] = (np.concatenate([x, xs]), np.concatenate([y, ys]))
        scores = {m: _macro_f1(*sets[m], xh, yh) for m in METHODS}
    return {"k": k, "seed": seed, "n_real": len(x),
            "class_counts": {int(c): int(n) for c, n in zip(classes, counts)},
            "holdout_counts": {int(c): int((yh == c).sum()) for c in np.unique(yh)},
            "added_per_method": int(top * len(classes) - len(x)), "scores": scores,
            "synthetic_memorized_fraction": memorized,
            "seconds": round(time.perf_counter() - t0, 1)}


def run(out: Path) -> None:
    cells = out / "cells"
    cells.mkdir(parents=True, exist_ok=True)
    for seed in SEEDS:  # seed-major: a stopped run still holds both sizes at the first seeds
        for k in SIZES:
            path = cells / f"k{k}_s{seed}.json"
            if path.is_file():
                continue
            result = run_cell(out, k, seed)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(result, indent=2))
            tmp.replace(path)
            print(f"k={k} seed={seed}: " + ", ".join(
                f"{m} {result['scores'][m]['macro_f1']:.3f}" for m in METHODS)
                + f" ({result['seconds']} s)", flush=True)


def summary(out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sigdiff.stats import t_interval

    results = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    lines = ["| k per class | method | macro-F1 (mean [95% CI]) | Δ vs oversample | Δ vs real | n |",
             "|---|---|---|---|---|---|"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, k in enumerate(SIZES):
        rs = sorted((r for r in results if r["k"] == k), key=lambda r: r["seed"])
        if not rs:
            continue
        f1 = {m: np.array([r["scores"][m]["macro_f1"] for r in rs]) for m in METHODS}
        for j, m in enumerate(METHODS):
            iv = t_interval(f1[m])
            d_over = t_interval(f1[m] - f1["oversample"]) if m != "oversample" else None
            d_real = t_interval(f1[m] - f1["real"]) if m != "real" else None
            se = f" (SE {d_over.se:.3f})" if d_over is not None and d_over.n > 1 else ""
            lines.append(f"| {k} | {m} | {iv.fmt()} | "
                         f"{d_over.fmt() + se if d_over else '—'} | "
                         f"{d_real.fmt() if d_real else '—'} | {iv.n} |")
            ax.errorbar(i + 0.15 * j, iv.mean, yerr=[[iv.mean - iv.low], [iv.high - iv.mean]]
                        if iv.n > 1 else None, fmt="o", color=f"C{j}", capsize=3,
                        label=m if i == 0 else None)
    ax.set_xticks([i + 0.225 for i in range(len(SIZES))],
                  [f"{k} real beats per class" for k in SIZES])
    ax.set_ylabel("holdout macro-F1 (MiniRocket)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "augmentation.png", dpi=110)
    # per-class recall (the rare classes are what augmentation is for) and the synthetic beats'
    # memorized fraction against the small real set they were trained on
    lines += ["", "Per-class holdout recall (mean over the seeds whose holdout has the class, their "
              "number in brackets) and the synthetic beats' memorized fraction (1/3 rule, against "
              "the small real training set):", "",
              "| k per class | method | " + " | ".join(f"recall class {c}" for c in CLASSES)
              + " | memorized |", "|---|---|" + "---|" * (len(CLASSES) + 1)]
    for k in SIZES:
        rs = [r for r in results if r["k"] == k]
        if not rs:
            continue
        for m in METHODS:
            rec = [[r["scores"][m]["recall"][str(c)] for r in rs if str(c) in r["scores"][m]["recall"]]
                   for c in CLASSES]
            mem = ([r["synthetic_memorized_fraction"][m] for r in rs]
                   if m in rs[0]["synthetic_memorized_fraction"] else None)
            mem_txt = t_interval(np.array(mem)).fmt() if mem else "—"
            lines.append(f"| {k} | {m} | " + " | ".join(
                f"{np.mean(v):.3f} ({len(v)})" if v else "— (0)" for v in rec)
                         + f" | {mem_txt} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    {"run": run, "summary": summary}[sys.argv[1]](Path(sys.argv[2]))
