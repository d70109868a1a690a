"""Read throughput of batches of 64 x 1 x 256: store on disk vs in-memory tensor, the training
loop's own batches (`StepBatches`, held in memory or streamed from the store), and a ≥1 GB store
streamed through `ChunkedSignalDataset` with bounded memory.

    python benchmarks/data_read.py                 # small comparison + 1 GB store (deleted after)
    python benchmarks/data_read.py --big-gb 0      # small comparison only

Each phase of the big run is its own process so its peak RSS (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from sigdiff.data.dataset import ChunkedSignalDataset, SignalDataset, StepBatches
from sigdiff.data.store import StoreWriter, open_store, write_store

BATCH, LENGTH = 64, 256
SMALL_N = 32_768  # 32 MiB store
ROWS_PER_GIB = 2**30 // (4 * LENGTH)
WRITE_BLOCK = 16_384  # rows generated and appended at a time while writing the big store


def peak_rss_mib() -> float:
    """This process's peak resident memory: VmHWM (ru_maxrss survives exec, so it can report a
    parent's peak)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB -> MiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds)


def _time_loader(loader: DataLoader, limit: int) -> float:
    n, start = 0, time.perf_counter()
    for batch in loader:
        n += batch["x"].shape[0]
        if n >= limit:
            break
    return _rate(n, time.perf_counter() - start)


def _best(fn: Callable[[], float], repeats: int = 3) -> float:
    """Best of `repeats` runs after one warm-up (the machine is shared; best is least noisy)."""
    fn()
    return max(fn() for _ in range(repeats))


def small(tmp: Path) -> dict[str, float]:
    """samples/s for 64 x 1 x 256 batches: in-memory tensor vs the same data in a store."""
    x = np.random.default_rng(0).standard_normal((SMALL_N, 1, LENGTH)).astype(np.float32)
    store = write_store(tmp / "small.zarr", x, sampling_rate=1000.0)
    tensor = torch.from_numpy(x)
    g = torch.Generator().manual_seed(0)

    def tensor_batches() -> float:
        start = time.perf_counter()
        for _ in range(SMALL_N // BATCH):
            batch = tensor[torch.randint(0, SMALL_N, (BATCH,), generator=g)]  # (B, C, L)
            assert batch.shape == (BATCH, 1, LENGTH)
        return _rate(SMALL_N, time.perf_counter() - start)

    def random_rows() -> float:  # naive random access straight from the store
        rng, n, start = np.random.default_rng(0), 0, time.perf_counter()
        while n < 2048:
            n += len(store.read(rng.integers(0, SMALL_N, BATCH)))
        return _rate(n, time.perf_counter() - start)

    def step_batches(batches: StepBatches, n: int) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            for step in range(n // BATCH):
                assert batches.batch(step)[0].shape == (BATCH, 1, LENGTH)
            return _rate(n // BATCH * BATCH, time.perf_counter() - start)
        return run

    in_memory = StepBatches(store, batch_size=BATCH)
    streamed = StepBatches(store, batch_size=BATCH, memory_limit=0)
    mapped = DataLoader(SignalDataset(store), batch_size=BATCH, shuffle=True)
    chunked = DataLoader(ChunkedSignalDataset(store), batch_size=BATCH)
    return {
        "in_memory_tensor_random_batches": _best(tensor_batches),
        "in_memory_map_dataset_dataloader": _best(lambda: _time_loader(mapped, SMALL_N)),
        "store_chunked_dataset_dataloader": _best(lambda: _time_loader(chunked, SMALL_N)),
        "training_step_batches_in_memory": _best(step_batches(in_memory, SMALL_N)),
        "training_step_batches_streamed": _best(step_batches(streamed, 2048), repeats=1),
        "store_random_rows_no_chunk_awareness": _best(random_rows, repeats=1),
    }


def write_big(path: Path, gib: float) -> dict[str, float]:
    rows = int(gib * ROWS_PER_GIB)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    with StoreWriter(path, n_channels=1, length=LENGTH, sampling_rate=1000.0) as w:
        for i in range(0, rows, WRITE_BLOCK):
            k = min(WRITE_BLOCK, rows - i)
            w.append(rng.standard_normal((k, 1, LENGTH), dtype=np.float32))
    disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return {"rows": rows, "uncompressed_gib": rows * 4 * LENGTH / 2**30,
            "on_disk_gib": round(disk / 2**30, 3), "write_s": round(time.perf_counter() - start, 1),
            "peak_rss_mib": round(peak_rss_mib())}


def read_big(path: Path) -> dict[str, float]:
    base = peak_rss_mib()
    ds = ChunkedSignalDataset(open_store(path), seed=0, buffer_chunks=4)
    n, start = 0, time.perf_counter()
    for batch in DataLoader(ds, batch_size=BATCH):
        n += batch["x"].shape[0]
    return {"samples": n, "samples_per_s": _rate(n, time.perf_counter() - start),
            "read_s": round(time.perf_counter() - start, 1),
            "peak_rss_mib_before_read": round(base), "peak_rss_mib": round(peak_rss_mib())}


def _phase(name: str, path: Path, gib: float) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--phase", name, "--path", str(path), "--big-gb", str(gib)]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--big-gb", type=float, default=1.0)
    parser.add_argument("--dir", type=Path, default=None, help="where to put the stores")
    parser.add_argument("--phase", choices=["write", "read"], default=None)
    parser.add_argument("--path", type=Path, default=None)
    parser.add_argument("--skip-small", action="store_true")
    args = parser.parse_args()
    if args.phase == "write":
        print(json.dumps(write_big(args.path, args.big_gb)))
        return
    if args.phase == "read":
        print(json.dumps(read_big(args.path)))
        return
    tmp = Path(tempfile.mkdtemp(dir=args.dir, prefix="sigdiff-bench-"))
    try:
        if not args.skip_small:
            rates = small(tmp)
            peer = rates["in_memory_tensor_random_batches"]  # the floor every reader is held to
            report = {"batch": [BATCH, 1, LENGTH], "small_samples_per_s": rates,
                      "ratio_to_in_memory_tensor": {k: round(v / peer, 3) for k, v in rates.items()}}
            print(json.dumps(report, indent=1), flush=True)
        if args.big_gb > 0:
            big = tmp / "big.zarr"
            print(json.dumps({"big_write": _phase("write", big, args.big_gb)}, indent=1), flush=True)
            print(json.dumps({"big_read": _phase("read", big, args.big_gb)}, indent=1))
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
