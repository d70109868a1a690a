"""Diffusion-TS's benchmark protocol on Sines (issue 26, part 4): sigdiff's samples, held-out real
data and a copier of the training set, each scored by the four metrics of
`sigdiff.metrics.diffusion_ts` against the training data (as their configs do) and against
held-out real data, beside their published row and sigdiff's memorization figures.

    python docs/results/sines-protocol/run.py --out docs/results/sines-protocol

Resumable: every part (data, training, sampling, each repeat of each scoring, memorization) is
skipped when its output exists. Data, the run and the TS2Vec cache live under OUT/data/ (ignored
by git); parts/ holds the per-repeat scores, results.json / results.md the summary.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sigdiff.data.store import read_store
from sigdiff.metrics import diffusion_ts as dts
from sigdiff.metrics import memorization_report

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
SIGDIFF = str(Path(sys.executable).parent / "sigdiff")
SEED = 0  # metric repeats are spawned from it; the same seeds for every row against one reference
REPEATS = 5
COPIER_SEED = 7
SAMPLE = ["--sampler", "dpmpp_2m", "--steps", "25", "--seed", "1234"]
#: scored pairs (row, reference), in the order they run: the rows that need no model first
PAIRS = [("holdout", "train"), ("copier", "train"), ("sigdiff", "train"),
         ("sigdiff", "holdout"), ("copier", "holdout")]
#: their Table 1, Sines (mean ± their 95% t half-width over 5 runs); predictive of real data 0.094
PUBLISHED = {"discriminative": (0.006, 0.007), "predictive": (0.093, 0.000),
             "context_fid": (0.006, 0.000), "correlational": (0.015, 0.004)}
PUBLISHED_REAL_PREDICTIVE = 0.094


def _sh(cmd: list[str], log: Path) -> float:
    """Run a command from the repository root, appending to `log`; return its wall time."""
    t0 = time.time()
    print("$", " ".join(cmd), flush=True)
    with log.open("a") as fh:
        subprocess.run(cmd, cwd=ROOT, check=True, stdout=fh, stderr=subprocess.STDOUT)
    return time.time() - t0


def make_data(out: Path) -> dict[str, float]:
    """Training set (seed 0) and an independent held-out draw (seed 1) of the catalog's sines."""
    times = {}
    for name, seed in (("train", 0), ("holdout", 1)):
        store = out / "data" / f"{name}.zarr"
        if not store.exists():
            times[f"data_{name}_s"] = _sh([SIGDIFF, "data", "make", "sines", "--out", str(store),
                                           "--seed", str(seed)], out / "data" / "log.txt")
    return times


def train_and_sample(out: Path) -> dict[str, float]:
    """sigdiff's run (train.sh) and 10,000 samples from its EMA weights (DPM-Solver++(2M) 25)."""
    times, run, samples = {}, out / "data" / "run", out / "data" / "samples.zarr"
    if not samples.exists():
        if not (run / "checkpoints" / "step_00010000").exists():
            times["train_s"] = _sh(["bash", str(HERE / "train.sh")], out / "data" / "train_log.txt")
        times["sample_s"] = _sh([SIGDIFF, "sample", "--run", str(run), "--n", "10000",
                                 "--out", str(samples), *SAMPLE, "--quiet"],
                                out / "data" / "sample_log.txt")
    return times


def load_rows(out: Path) -> dict[str, np.ndarray]:
    """train, holdout, copier (draws with replacement from train) and, once sampled, sigdiff."""
    arrays = {name: read_store(out / "data" / f"{name}.zarr")[0] for name in ("train", "holdout")}
    rng = np.random.default_rng(COPIER_SEED)
    arrays["copier"] = arrays["train"][rng.integers(0, len(arrays["train"]), len(arrays["train"]))]
    if (out / "data" / "samples.zarr").exists():
        arrays["sigdiff"] = read_store(out / "data" / "samples.zarr")[0]
    return arrays


def _encoder(out: Path, ref: str, real_nlc: np.ndarray, seed: int,
             ) -> tuple[torch.nn.Module, np.ndarray]:
    """TS2Vec fitted on `ref` with `seed` and the reference's embeddings, cached on disk: every row
    scored against one reference in one repeat shares the encoder, as one call of theirs would."""
    cache = out / "data" / "ts2vec" / f"{ref}_{seed}"
    net: torch.nn.Module = torch.optim.swa_utils.AveragedModel(dts.TSEncoder(real_nlc.shape[2], **dts.TS2VEC_DIMS))
    if (cache / "ref_embeddings.npy").exists():
        net.load_state_dict(torch.load(cache / "encoder.pt", weights_only=True))
        return net, np.load(cache / "ref_embeddings.npy")
    net = dts.fit_ts2vec(real_nlc, seed=seed)
    emb = dts.encode_full_series(net, real_nlc)
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), cache / "encoder.pt")
    np.save(cache / "ref_embeddings.npy", emb)
    return net, emb


def score_repeat(out: Path, row: str, ref: str, arrays: dict[str, np.ndarray],
                 seed: int) -> dict[str, float]:
    """One repeat of the four metrics of `row` against `ref`, each with its wall time."""
    real, fake = arrays[ref], arrays[row][: len(arrays[ref])]
    res: dict[str, float] = {}
    t0 = time.time()
    res["discriminative"] = dts.discriminative_score(real, fake, seed=seed)
    t1 = time.time()
    res["predictive"] = dts.predictive_score(real, fake, seed=seed)
    t2 = time.time()
    net, emb_real = _encoder(out, ref, np.ascontiguousarray(real.transpose(0, 2, 1)), seed)
    emb_fake = dts.encode_full_series(net, np.ascontiguousarray(fake.transpose(0, 2, 1)))
    res["context_fid"] = dts.frechet_distance(emb_real, emb_fake)
    t3 = time.time()
    res["correlational"] = dts.correlational_draw(real, fake, seed=seed)
    res.update({"discriminative_s": t1 - t0, "predictive_s": t2 - t1, "context_fid_s": t3 - t2})
    return res


def score_pairs(out: Path, arrays: dict[str, np.ndarray]) -> None:
    """Every pair whose row exists, every repeat, one JSON file per (pair, repeat)."""
    for row, ref in PAIRS:
        if row not in arrays:
            print(f"skip {row} vs {ref}: no samples yet", flush=True)
            continue
        for r, seed in enumerate(dts.repeat_seeds(SEED, REPEATS)):
            path = out / "parts" / f"{row}_vs_{ref}" / f"repeat_{r}.json"
            if path.exists():
                continue
            res = score_repeat(out, row, ref, arrays, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"seed": seed, **res}, indent=1))
            print(row, "vs", ref, r, {k: round(v, 4) for k, v in res.items()}, flush=True)


def memorization(out: Path, arrays: dict[str, np.ndarray]) -> None:
    """sigdiff's memorized fraction and DCR of each row against the training set (floor: held-out)."""
    for row in ("sigdiff", "copier", "holdout"):
        path = out / "parts" / f"memorization_{row}.json"
        if row in arrays and not path.exists():
            rep = memorization_report(arrays[row], arrays["train"], arrays["holdout"], top=3)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(rep, indent=1, default=float))


def summarise_parts(out: Path) -> dict[str, object]:
    """Per pair: each metric's mean, std and 95% t half-width over its repeats, and wall times."""
    pairs: dict[str, object] = {}
    for row, ref in PAIRS:
        files = sorted((out / "parts" / f"{row}_vs_{ref}").glob("repeat_*.json"))
        if not files:
            continue
        reps = [json.loads(f.read_text()) for f in files]
        summary = {m: dts.summarise([r[m] for r in reps]) for m in dts.METRICS}
        summary["wall_s_per_repeat"] = {m: float(np.mean([r[f"{m}_s"] for r in reps]))
                                        for m in dts.METRICS if f"{m}_s" in reps[0]}
        pairs[f"{row}_vs_{ref}"] = summary
    mem = {p.stem.removeprefix("memorization_"): json.loads(p.read_text())
           for p in sorted((out / "parts").glob("memorization_*.json"))}
    return {"pairs": pairs, "memorization": mem, "published_diffusion_ts": PUBLISHED,
            "published_real_predictive": PUBLISHED_REAL_PREDICTIVE, "repeats": REPEATS,
            "seed": SEED, "copier_seed": COPIER_SEED, "sampler": SAMPLE}


def _cell(s: dict[str, object]) -> str:
    return f"{s['mean']:.3f} ± {s['ci95_half']:.3f} (sd {s['std']:.3f})"


def verdict(pairs: dict[str, object]) -> list[str]:
    """Plain statements: sigdiff against train (their protocol) beside their published row."""
    ours = pairs.get("sigdiff_vs_train")
    if not isinstance(ours, dict):
        return ["sigdiff's row is not scored yet."]
    lines = []
    for m, (mean, half) in PUBLISHED.items():
        s = ours[m]
        lo, hi = s["mean"] - s["ci95_half"], s["mean"] + s["ci95_half"]
        overlap = lo <= mean + half and mean - half <= hi
        at3 = round(s["mean"], 3)  # compared at the published precision, 3 decimals
        word = ("lower (better)" if at3 < mean else "higher (worse)" if at3 > mean else "equal")
        lines.append(f"- {m}: sigdiff {s['mean']:.4f} ± {s['ci95_half']:.4f} vs published "
                     f"{mean:.3f} ± {half:.3f}: {word} mean at 3 decimals; the 95% intervals "
                     f"{'overlap' if overlap else 'do not overlap'}.")
    return lines


def write_markdown(out: Path, res: dict[str, object]) -> None:
    """results.md: the table (mean ± their 95% t half-width, sd), published row, memorization."""
    pairs = res["pairs"]
    assert isinstance(pairs, dict)
    head = ("| row | scored against | discriminative | predictive (MAE) | Context-FID | "
            "correlational |\n|---|---|---|---|---|---|")
    lines = [f"# Sines, Diffusion-TS protocol: results (n = {REPEATS} metric repeats per cell)",
             "", "Each cell: mean ± 95% t half-width over the repeats (what their tables print as "
             "±), and the standard deviation; 10,000 records per row and per reference (the "
             "correlational score: 2,000 drawn with replacement from each per repeat, as theirs). "
             "Lower is better for all four.", "", head]
    for key, s in pairs.items():
        row, ref = key.split("_vs_")
        lines.append(f"| {row} | {ref} | " + " | ".join(_cell(s[m]) for m in dts.METRICS) + " |")
    pub = " | ".join(f"{m:.3f} ± {h:.3f}" for m, h in PUBLISHED.values())
    lines += [f"| Diffusion-TS (published, Table 1) | train | {pub} |",
              f"| real data (published) | train | — | {PUBLISHED_REAL_PREDICTIVE:.3f} | — | — |",
              "", "## sigdiff against the published row (their protocol: scored against train)",
              "", *verdict(pairs), "", "## Memorization against the training set", "",
              "| row | memorized fraction | floor (held-out real) | median DCR | median DCR ratio "
              "| exact copies |", "|---|---|---|---|---|---|"]
    mem = res["memorization"]
    assert isinstance(mem, dict)
    for row, m in mem.items():
        frac, dcr = m["memorized_fraction"], m["dcr"]
        lines.append(f"| {row} | {frac['generated']:.4f} | {frac['floor']:.4f} | "
                     f"{dcr['median_dcr_generated']:.4f} | {dcr['median_ratio']:.3f} | "
                     f"{m['exact_copies']['generated']} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--no-train", action="store_true",
                        help="score only the rows that need no model (held-out, copier)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = args.out.resolve()
    times = make_data(out)
    arrays = load_rows(out)
    score_pairs(out, arrays)  # the rows that exist: held-out and copier first
    if not args.no_train:
        times.update(train_and_sample(out))
        arrays = load_rows(out)
        score_pairs(out, arrays)
    memorization(out, arrays)
    res = summarise_parts(out)
    timing = out / "parts" / "wall_times.json"
    old = json.loads(timing.read_text()) if timing.exists() else {}
    timing.write_text(json.dumps({**old, **times}, indent=1))
    res["wall_times_s"] = {**old, **times}
    (out / "results.json").write_text(json.dumps(res, indent=1))
    write_markdown(out, res)
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
