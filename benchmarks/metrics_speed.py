"""Nearest-neighbour memorization speed and peak memory: sigdiff vs scikit-learn vs prdc.

10,000 generated vs 50,000 training series of length 140 (ECG5000 beats plus noise, so many
near-duplicates), float32. Each method runs in a fresh subprocess; peak memory is the growth of
the process's peak resident set (VmHWM, reset once the data are loaded) over its size then.

    python benchmarks/metrics_speed.py [--n-gen 10000 --n-train 50000 --device cpu]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

PRDC_N = 10_000  # prdc builds dense N×N matrices: run it at this size (real and fake)


def make_data(n_gen: int, n_train: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from sigdiff.datasets import load_dataset

    rng = np.random.default_rng(seed)
    beats = load_dataset("ecg5000").signals[:, 0].astype(np.float64)  # the embedded beats

    def draw(n: int) -> np.ndarray:
        base = beats[rng.integers(0, len(beats), n)]
        return (base + 0.1 * rng.normal(size=base.shape)).astype(np.float32)
    return draw(n_gen), draw(n_train)


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        line = next(ln for ln in fh if ln.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def _reset_peak() -> float:
    """Reset the kernel's peak-RSS mark (VmHWM) and return the current RSS in MiB."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return _status_mb("VmRSS")


def run_method(method: str, n_gen: int, n_train: int, device: str) -> dict[str, object]:
    gen, train = make_data(n_gen, n_train)
    import torch  # noqa: F401  (imports before the baseline)
    from sklearn.neighbors import NearestNeighbors

    from sigdiff.metrics.alignment import prdc as sigdiff_prdc
    from sigdiff.metrics.neighbors import knn
    base = _reset_peak()
    t0 = time.perf_counter()
    if method == "sigdiff":
        out = knn(gen, train, k=2, device=device)
        d, i = out.distances, out.indices
    elif method == "sklearn":
        d, i = NearestNeighbors(n_neighbors=2, algorithm="brute").fit(train).kneighbors(gen)
    elif method == "prdc":
        import contextlib
        import io

        import prdc
        with contextlib.redirect_stdout(io.StringIO()):
            res = prdc.compute_prdc(train[:PRDC_N], gen[:PRDC_N], nearest_k=5)
        d, i = np.array([res["precision"], res["coverage"]]), np.zeros(1)
    elif method == "sigdiff_prdc":
        res = sigdiff_prdc(train[:PRDC_N], gen[:PRDC_N], k=5, device=device)
        d, i = np.array([res["precision"], res["coverage"]]), np.zeros(1)
    else:
        raise ValueError(method)
    seconds = time.perf_counter() - t0
    peak = _status_mb("VmHWM")
    np.save(f"/tmp/bench_{method}_d.npy", d)
    np.save(f"/tmp/bench_{method}_i.npy", i)
    return {"method": method, "seconds": round(seconds, 2), "peak_extra_mb": round(peak - base)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-gen", type=int, default=10_000)
    ap.add_argument("--n-train", type=int, default=50_000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--method")
    ap.add_argument("--skip", default="", help="comma-separated methods to leave out")
    args = ap.parse_args()
    if args.method:
        print(json.dumps(run_method(args.method, args.n_gen, args.n_train, args.device)))
        return
    rows = []
    for method in ("sigdiff", "sklearn", "sigdiff_prdc", "prdc"):
        if method in args.skip.split(","):
            continue
        cmd = [sys.executable, __file__, "--method", method, "--n-gen", str(args.n_gen),
               "--n-train", str(args.n_train), "--device", args.device]
        rows.append(json.loads(subprocess.run(cmd, check=True, capture_output=True,
                                              text=True).stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    if {"sigdiff", "sklearn"} <= {r["method"] for r in rows}:
        d1, d2 = np.load("/tmp/bench_sigdiff_d.npy"), np.load("/tmp/bench_sklearn_d.npy")
        i1, i2 = np.load("/tmp/bench_sigdiff_i.npy"), np.load("/tmp/bench_sklearn_i.npy")
        print(f"max |d_sigdiff - d_sklearn| = {np.abs(d1 - d2).max():.2e}; "
              f"nearest index agreement = {(i1[:, 0] == i2[:, 0]).mean():.4f}")
    if {"prdc", "sigdiff_prdc"} <= {r["method"] for r in rows}:
        print("prdc (precision, coverage):", np.load("/tmp/bench_prdc_d.npy"),
              "sigdiff:", np.load("/tmp/bench_sigdiff_prdc_d.npy"))
    print(f"n_gen={args.n_gen} n_train={args.n_train} length=140 device={args.device} "
          f"prdc at {PRDC_N}×{PRDC_N}")


if __name__ == "__main__":
    main()
