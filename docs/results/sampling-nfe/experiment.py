"""How many network evaluations (NFE) does sampling need on a trained ECG5000 model? (issue 16)

For each model (default: the final EMA checkpoints of the three 64-beat seed-4 cells of
docs/results/guard-controller, recreated bit-for-bit by rerunning that sweep) and the same 500
initial noises (seed 0):

- the converged deterministic solution: DPM-Solver++(2M) at 250 steps (250 NFE), checked against
  DDIM at 250 steps;
- ancestral DDPM at 1000 steps (1000 NFE; same initial noise, its own fresh noise per step);
- DDIM and DPM-Solver++(2M) at 10, 15, 20, 25, 35, 50 steps (NFE = steps) and Heun at 5, 8, 10,
  13, 18, 25 steps (NFE = 2·steps − 1).

Each setting is scored against the guard-controller sweep's held-out beats (the same split) by
MMD² (multi-bandwidth RBF, unbiased) and the log-spectral distance of the mean Welch spectra
(dB), and against the converged solution: MMD² between the two sample sets and the RMS distance
between the samples drawn from the same noise (data units). Each (model, setting) is written to
cells/<model>__<sampler>-<steps>.json as it finishes (resumable; samples are not kept).

    python docs/results/sampling-nfe/experiment.py run docs/results/sampling-nfe
    python docs/results/sampling-nfe/experiment.py summary docs/results/sampling-nfe
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent
MODELS = {  # name -> run folder (its last checkpoint, EMA weights)
    "uniform": RESULTS / "guard-controller/cells/uniform__n64__s4/run",
    "large-t": RESULTS / "guard-controller/cells/ci-large-t-wide-floor-c-0-8-w-0-6-floor-0-3__n64__s4/run",
    "controller": RESULTS / "guard-controller/cells/controller-floor-1-0-3-towards-large-t-c-0-8-w-0-6__n64__s4/run",
}
HOLDOUT = RESULTS / "guard-controller/data/holdout.zarr"
N, SEED = 500, 0
CONVERGED = ("dpmpp_2m", 250)
SETTINGS = ([("ddim", s) for s in (10, 15, 20, 25, 35, 50)]
            + [("dpmpp_2m", s) for s in (10, 15, 20, 25, 35, 50)]
            + [("heun", s) for s in (5, 8, 10, 13, 18, 25)]
            + [("ddim", 250), ("ddpm", 1000)])
TOLERANCE = 0.05  # "within 5% of the converged solution"


def nfe(sampler: str, steps: int) -> int:
    return 2 * steps - 1 if sampler == "heun" else steps


def _scores(x: np.ndarray, holdout: np.ndarray, converged: np.ndarray | None,
            fs: float) -> dict[str, float]:
    from sigdiff.metrics.alignment import mmd2
    from sigdiff.metrics.spectral import log_spectral_distance, welch_psd

    _, p_x = welch_psd(x, sampling_rate=fs)
    _, p_h = welch_psd(holdout, sampling_rate=fs)
    out = {"mmd2_holdout": mmd2(x, holdout, n_permutations=0).mmd2,
           "lsd_holdout_db": log_spectral_distance(p_x.mean(axis=0), p_h.mean(axis=0))}
    if converged is not None:
        _, p_c = welch_psd(converged, sampling_rate=fs)
        out["mmd2_converged"] = mmd2(x, converged, n_permutations=0).mmd2
        out["lsd_converged_db"] = log_spectral_distance(p_x.mean(axis=0), p_c.mean(axis=0))
        out["rms_to_converged"] = float(np.sqrt(((x - converged) ** 2).mean()))
    return out


def run(out: Path) -> None:
    from tqdm import tqdm

    from sigdiff.data.store import open_store
    from sigdiff.generate import generate, load_model

    cells = out / "cells"
    cells.mkdir(parents=True, exist_ok=True)
    store = open_store(HOLDOUT)
    holdout = store.read(np.arange(store.n_samples))
    fs = float(store.sampling_rate)
    todo = [(m, s, k) for m in MODELS for s, k in [CONVERGED, *SETTINGS]]
    converged: dict[str, np.ndarray] = {}
    for name, sampler, steps in tqdm(todo, desc="NFE study", unit="setting"):
        path = cells / f"{name}__{sampler}-{steps}.json"
        if path.is_file() and (sampler, steps) != CONVERGED:
            continue
        model = load_model(MODELS[name])
        t0 = time.perf_counter()
        x = generate(model, n=N, seed=SEED, sampler=sampler, steps=steps, batch_size=N,
                     progress=False)
        seconds = time.perf_counter() - t0
        if (sampler, steps) == CONVERGED:
            converged[name] = x
        row = {"model": name, "run": str(MODELS[name].relative_to(RESULTS)),
               "step": int(model.meta["step"]), "sampler": sampler, "steps": steps,
               "nfe": nfe(sampler, steps), "n": N, "seed": SEED, "seconds": round(seconds, 2),
               **_scores(x, holdout, None if (sampler, steps) == CONVERGED else converged[name],
                         fs)}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(row, indent=1))
        tmp.replace(path)


def summary(out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    conv = {r["model"]: r for r in rows if (r["sampler"], r["steps"]) == CONVERGED}
    models = sorted(conv)
    lines = [f"Models: {', '.join(models)} ({len(models)}); {N} samples each, same initial noise. "
             "Relative differences are to the converged solution "
             f"({CONVERGED[0]} × {CONVERGED[1]}) of the same model; worst over models.", "",
             "| sampler | NFE | MMD² vs holdout (mean) | max rel. Δ MMD² | LSD vs holdout dB (mean) "
             "| max rel. Δ LSD | MMD² to converged (mean) | RMS to converged (mean) | "
             f"within {TOLERANCE:.0%} on both |", "|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        if (r["sampler"], r["steps"]) != CONVERGED and r["model"] in conv:
            groups.setdefault((r["sampler"], r["steps"]), []).append(r)
    best = None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for (sampler, steps), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        rel_m = max(abs(r["mmd2_holdout"] / conv[r["model"]]["mmd2_holdout"] - 1) for r in rs)
        rel_l = max(abs(r["lsd_holdout_db"] / conv[r["model"]]["lsd_holdout_db"] - 1) for r in rs)
        ok = len(rs) == len(models) and rel_m <= TOLERANCE and rel_l <= TOLERANCE
        n = nfe(sampler, steps)
        if ok and n <= 25 and (best is None or n < best[2]):
            best = (sampler, steps, n)
        lines.append(
            f"| {sampler} | {n} | {np.mean([r['mmd2_holdout'] for r in rs]):.5f} | {rel_m:.1%} | "
            f"{np.mean([r['lsd_holdout_db'] for r in rs]):.3f} | {rel_l:.1%} | "
            f"{np.mean([r['mmd2_converged'] for r in rs]):.5f} | "
            f"{np.mean([r['rms_to_converged'] for r in rs]):.4f} | {'yes' if ok else 'no'} "
            f"({len(rs)} models) |")
    lines += ["", "| converged | NFE | MMD² vs holdout | LSD vs holdout dB |", "|---|---|---|---|"]
    for m in models:
        lines.append(f"| {m}: {CONVERGED[0]} × {CONVERGED[1]} | {conv[m]['nfe']} | "
                     f"{conv[m]['mmd2_holdout']:.5f} | {conv[m]['lsd_holdout_db']:.3f} |")
    lines += ["", f"Smallest setting with NFE ≤ 25 within {TOLERANCE:.0%} of the converged "
              f"solution on both, in every model: {best if best else 'none'}"]
    for sampler in ("ddim", "dpmpp_2m", "heun"):
        pts = sorted((nfe(s, k), rs) for (s, k), rs in groups.items() if s == sampler and k < 200)
        if not pts:
            continue
        xs = [p[0] for p in pts]
        for ax, key in zip(axes, ("mmd2_holdout", "lsd_holdout_db")):
            ys = [np.mean([r[key] / conv[r["model"]][key] for r in p[1]]) for p in pts]
            ax.plot(xs, ys, "o-", label=sampler)
    for ax, title in zip(axes, ("MMD² vs holdout / converged", "LSD vs holdout / converged")):
        ax.axhspan(1 - TOLERANCE, 1 + TOLERANCE, color="0.9")
        ax.axhline(1, color="k", lw=0.8)
        ax.set_xlabel("NFE")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "nfe.png", dpi=110)
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    {"run": run, "summary": summary}[sys.argv[1]](Path(sys.argv[2]))
