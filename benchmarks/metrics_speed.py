"""Nearest-neighbour memorization speed and peak memory: sigdiff vs scikit-learn vs prdc.

10,000 generated vs 50,000 training series of length 140 (the embedded ECG5000 beats plus noise,
so many near-duplicates), float32, k = 2 (what the memorization metrics ask for). Methods:
sigdiff's default (`knn`, clustered search), sigdiff's plain screening (`method="screen"`, every
pair: the earlier implementation), scikit-learn's brute force (the peer), and the PRDC pair.
Each runs in a fresh subprocess with the same thread count (torch and BLAS/OpenMP); peak memory
is the growth of the peak resident set (VmHWM, reset once the data are loaded). Rounds are
interleaved (A B C, A B C, ...) and each method's median is reported with its ratio to
scikit-learn from the same run, and whether its neighbours equal scikit-learn's exactly.

    python benchmarks/metrics_speed.py [--n-gen 10000 --n-train 50000 --threads 2 --rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def run_method(method: str, n_gen: int, n_train: int, device: str, threads: int,
               out: Path) -> dict[str, object]:
    gen, train = make_data(n_gen, n_train)
    import torch
    from sklearn.neighbors import NearestNeighbors
    from threadpoolctl import threadpool_limits

    from sigdiff.metrics.alignment import prdc as sigdiff_prdc
    from sigdiff.metrics.neighbors import knn
    torch.set_num_threads(threads)
    threadpool_limits(threads)
    base = _reset_peak()
    t0 = time.perf_counter()
    if method in ("sigdiff", "sigdiff-screen"):
        nb = knn(gen, train, k=2, device=device,
                 method="screen" if method == "sigdiff-screen" else "auto")
        d, i = nb.distances, nb.indices
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
    np.save(out / f"{method}_d.npy", d)
    np.save(out / f"{method}_i.npy", i)
    return {"method": method, "seconds": round(seconds, 3), "peak_extra_mb": round(peak - base)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-gen", type=int, default=10_000)
    ap.add_argument("--n-train", type=int, default=50_000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--method")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--skip", default="", help="comma-separated methods to leave out")
    args = ap.parse_args()
    if args.method:
        print(json.dumps(run_method(args.method, args.n_gen, args.n_train, args.device,
                                    args.threads, args.out)))
        return
    methods = [m for m in ("sigdiff", "sigdiff-screen", "sklearn", "sigdiff_prdc", "prdc")
               if m not in args.skip.split(",")]
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for r in range(args.rounds):  # interleaved: every method once per round
            for method in methods:
                cmd = [sys.executable, __file__, "--method", method, "--n-gen", str(args.n_gen),
                       "--n-train", str(args.n_train), "--device", args.device,
                       "--threads", str(args.threads), "--out", str(out)]
                res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True)
                                 .stdout.strip().splitlines()[-1])
                runs[method].append(res)
                print(f"round {r + 1}: {res}", flush=True)
        flops = 2 * args.n_gen * args.n_train * 140  # the distance GEMM of brute force
        ref = statistics.median(x["seconds"] for x in runs["sklearn"]) if "sklearn" in runs else None
        print(f"\nk-NN (k = 2), {args.n_gen:,} generated × {args.n_train:,} training × 140, "
              f"{args.threads} thread(s), device {args.device}, median of {args.rounds} "
              f"interleaved rounds; brute-force work {flops / 1e9:.0f} GFLOP")
        print(f"{'method':<16}{'seconds':>9}{'speed-up vs sklearn':>21}{'peak MB':>9}"
              f"{'GFLOP/s equiv.':>16}  neighbours = sklearn's")
        for method in ("sigdiff", "sigdiff-screen", "sklearn"):
            if method not in runs:
                continue
            sec = statistics.median(x["seconds"] for x in runs[method])
            peak = max(x["peak_extra_mb"] for x in runs[method])
            same = ""
            if ref is not None:
                i1, i2 = np.load(out / f"{method}_i.npy"), np.load(out / "sklearn_i.npy")
                d1, d2 = np.load(out / f"{method}_d.npy"), np.load(out / "sklearn_d.npy")
                same = (f"{(i1 == i2).all(axis=1).mean():.4%} of rows, max |Δd| "
                        f"{np.abs(d1 - d2).max():.1e}")
            ratio = f"{ref / sec:.2f}×" if ref is not None else "-"
            print(f"{method:<16}{sec:>9.2f}{ratio:>21}{peak:>9}{flops / sec / 1e9:>16.1f}  {same}")
        if {"prdc", "sigdiff_prdc"} <= set(runs):
            sp = statistics.median(x["seconds"] for x in runs["prdc"])
            ss = statistics.median(x["seconds"] for x in runs["sigdiff_prdc"])
            print(f"PRDC at {PRDC_N}×{PRDC_N}: prdc {sp:.2f} s, sigdiff {ss:.2f} s "
                  f"({sp / ss:.2f}×); (precision, coverage): prdc",
                  np.load(out / "prdc_d.npy"), "sigdiff", np.load(out / "sigdiff_prdc_d.npy"))


if __name__ == "__main__":
    main()
