"""Metric validation: does each metric rank real data better than copies and corrupted real data,
with intervals over repeated draws?

Every repeat builds the references of `sigdiff.metrics.references` afresh (a new floor, new copier
draws, new noise; with `train_subset`, a new training subset) through `evaluate.prepare`, and
records per metric and reference the signed separation

    Δ = m(ref) − m(floor)   where lower is better,   Δ = m(floor) − m(ref)   where higher is,

so Δ > 0 means the metric ranks the floor better, as it must. Across repeats Δ gets a Student-t
interval of its mean (ddof = 1); a reference is *separated* when the whole interval lies above 0.

Which separations a metric owes:

- memorization metrics: the copier and the noisy copies (corrupted real records are not copies,
  so they need not look memorized: reported, not required);
- alignment, spectral, gate and quality metrics: every reference (the quality score must rank
  the floor better than noisy, blurred, mode-dropped and copied sets alike);
- the paper's metric (`REWARDS_COPYING`): none — a copier scores best on it by construction.

A metric that cannot separate the floor from the copier is *flagged*; an alignment metric is
usable for the gate only when it separates its gate anchor (the copier, or the residual-noise set
for the spectral gate metric, as in `sigdiff.metrics.gate`).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .._utils import atomic_write_text
from ..stats import CONFIDENCE
from ..stats import t_interval as shared_t_interval
from .evaluate import DIRECTION, REWARDS_COPYING, SECTIONS, EvalConfig, EvalContext, prepare
from .references import DESCRIPTIONS

__all__ = ["judge_metric", "t_interval", "validate_metrics", "validate_stores",
           "validation_table", "write_validation"]

GATE_SECTION = "gate"
QUALITY_SECTION = "quality"  # the quality score (sigdiff.metrics.quality): owes every separation
MEMORIZATION_SECTION = "memorization"
#: |t| at which the heatmap's colours saturate (a zero-SE separation has t = ±∞).
T_CLIP = 10.0
T_SHOWN = 100.0  # larger |t| is written as ">100" in the heatmap
REWARDS_COPYING_NOTE = "rewards copying by construction"
Draws = Mapping[str, Sequence[float | None]]  # reference (floor included) → value per repeat


# ----------------------------------------------------------------------------- statistics
def t_interval(values: Sequence[float], *, confidence: float = CONFIDENCE) -> dict[str, Any]:
    """`sigdiff.stats.t_interval` as JSON-ready values: mean, interval of the mean (ddof = 1),
    standard error, n and t = mean / SE; None where undefined (fewer than 2 values)."""
    iv = shared_t_interval(values, confidence=confidence)
    if iv.n < 2:
        return {"mean": iv.mean if iv.n else None, "low": None, "high": None, "se": None,
                "n": iv.n, "t": None}
    se = iv.se
    t = iv.mean / se if se > 0 else (math.copysign(math.inf, iv.mean) if iv.mean else 0.0)
    return {"mean": iv.mean, "low": iv.low, "high": iv.high, "se": se, "n": iv.n, "t": t}


def signed_separation(floor: float, ref: float, direction: str) -> float:
    """Δ > 0 when the metric ranks the floor better than the reference."""
    return ref - floor if direction == "lower" else floor - ref


def required_references(section: str, references: Sequence[str]) -> tuple[str, ...]:
    """The references a metric of `section` must separate from the floor (see the module doc)."""
    if section in REWARDS_COPYING:
        return ()
    if section == MEMORIZATION_SECTION:
        return tuple(r for r in references if r == "copier" or r.startswith("noisy_copy"))
    return tuple(references)


def judge_metric(key: str, draws: Draws, *, gate_anchors: Mapping[str, str] | None = None,
                 confidence: float = CONFIDENCE) -> dict[str, Any]:
    """Separations, their intervals and the verdict of one metric `section.metric`, from its value
    per repeat for the floor and every reference (None where missing in a repeat)."""
    section, metric = key.split(".", 1)
    direction = DIRECTION.get(metric, "lower")
    refs = [r for r in draws if r != "floor"]
    floor = list(draws["floor"])
    seps: dict[str, dict[str, Any]] = {}
    required = required_references(section, refs)
    for ref in refs:
        paired = [None if f is None or r is None else signed_separation(f, r, direction)
                  for f, r in zip(floor, draws[ref])]
        iv = t_interval([v for v in paired if v is not None], confidence=confidence)
        separates = None if iv["low"] is None else bool(iv["low"] > 0)
        seps[ref] = {**iv, "separates": separates, "required": ref in required,
                     "values": paired}
    copier = seps.get("copier", {}).get("separates")
    missed = [r for r in required if seps[r]["separates"] is not True]
    rewards_copying = section in REWARDS_COPYING
    anchor = (gate_anchors or {}).get(metric, "copier")
    usable = (None if section == MEMORIZATION_SECTION else
              False if rewards_copying else seps.get(anchor, {}).get("separates") is True)
    known = [v for v in floor if v is not None]
    entry = {"section": section, "metric": metric, "direction": direction,
             "floor": {"mean": float(np.mean(known)) if known else None, "values": floor},
             "separations": seps, "separates_copier": copier,
             "separates_corrupted": {r: s["separates"] for r, s in seps.items() if r != "copier"},
             "required": list(required), "missed": missed,
             "passes": None if rewards_copying else not missed,
             "flagged": copier is not True, "usable_for_gate": usable,
             "gate_anchor": None if section == MEMORIZATION_SECTION else anchor,
             "note": REWARDS_COPYING_NOTE if rewards_copying else None}
    entry["verdict"] = _verdict(entry)
    return entry


def _verdict(e: Mapping[str, Any]) -> str:
    if e["note"]:
        return e["note"] + ("" if e["flagged"] else " (yet separates the copier here)")
    if e["flagged"]:
        return "**fails: cannot separate the copier**"
    if e["missed"]:
        return "misses " + ", ".join(e["missed"])
    return "passes"


# ----------------------------------------------------------------------------- the repeats
def _finite(v: Any) -> float | None:
    if v is None or isinstance(v, str):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def context_values(ctx: EvalContext) -> dict[str, dict[str, float | None]]:
    """`section.metric` → reference → value, for one prepared context (gate metrics as `gate.*`)."""
    out: dict[str, dict[str, float | None]] = {}
    for ref, res in ctx.reference_results.items():
        for section in SECTIONS:
            for metric, v in res[section].items():
                out.setdefault(f"{section}.{metric}", {})[ref] = _finite(v)
        for metric, v in ctx.gate_references[ref].values.items():
            out.setdefault(f"{GATE_SECTION}.{metric}", {})[ref] = _finite(v)
        out.setdefault(f"{QUALITY_SECTION}.score", {})[ref] = _finite(res["quality"]["score"])
    return out


def repeat_seed(seed: int, r: int) -> int:
    """The seed of repeat r, derived from (seed, r)."""
    return int(np.random.SeedSequence([seed, r]).generate_state(1)[0])


def _split(train: np.ndarray, subset: int, rng: np.random.Generator
           ) -> tuple[np.ndarray, np.ndarray]:
    """(a random training subset of `subset` records, the rest of `train` as the floor pool)."""
    picked = np.zeros(len(train), dtype=bool)
    picked[rng.choice(len(train), subset, replace=False)] = True
    return train[picked], train[~picked]


def validate_metrics(
    train: np.ndarray, holdout: np.ndarray, *, sampling_rate: float,
    pool: np.ndarray | None = None, train_subset: int | None = None, repeats: int = 10,
    n: int = 500, config: EvalConfig | None = None, seed: int = 0, progress: bool = True,
    source: str = "arrays", signal_kind: str = "generic",
) -> dict[str, Any]:
    """Separation of the floor from every reference, per metric, with t-intervals over `repeats`
    fresh draws (see the module docstring). With `train_subset`, each repeat trains on a random
    subset of `train` of that size and draws the floor from the rest of `train`; else the floor
    comes from `pool` (or the holdout's halves). `source` describes the data in the meta block."""
    if repeats < 2:
        raise ValueError(f"validate: an interval needs at least 2 repeats; got {repeats}")
    if train_subset is not None:
        if pool is not None:
            raise ValueError("validate: give a pool or a training subset, not both (with a "
                             "subset, the rest of the training records is the pool)")
        if not 2 <= train_subset < len(train):
            raise ValueError(f"validate: the training subset must hold 2 to {len(train) - 1} "
                             f"records (len(train) - 1); got {train_subset}")
    base = config or EvalConfig()
    start = time.perf_counter()
    values: dict[str, dict[str, list[float | None]]] = {}
    seeds, meta_ctx = [], {}
    for r in tqdm(range(repeats), desc="validate", disable=not progress):
        rs = repeat_seed(seed, r)
        tr, po = (train, pool) if train_subset is None else \
            _split(train, train_subset, np.random.default_rng([seed, r]))
        ctx = prepare(tr, holdout, n=n, sampling_rate=sampling_rate, pool=po,
                      config=replace(base, seed=rs), signal_kind=signal_kind)
        for key, by_ref in context_values(ctx).items():
            slot = values.setdefault(key, {})
            for ref, v in by_ref.items():
                slot.setdefault(ref, [None] * repeats)[r] = v
        seeds.append(rs)
        meta_ctx = ctx.meta
    references = [ref for ref in meta_ctx["references"] if ref != "floor"]
    metrics, not_validated = {}, {}
    for key, draws in values.items():
        full = {ref: draws.get(ref, [None] * repeats) for ref in ["floor", *references]}
        entry = judge_metric(key, full, gate_anchors=base.gate.anchors)
        if all(s["n"] == 0 for s in entry["separations"].values()):
            not_validated[key] = "floor only" if any(
                v is not None for v in full["floor"]) else "no value for this data"
        else:
            metrics[key] = entry
    meta = {"source": source, "kind": meta_ctx["kind"], "channels": meta_ctx["channels"],
            "spatial_shape": meta_ctx["spatial_shape"], "sampling_rate": sampling_rate,
            "n_train": len(train), "n_holdout": len(holdout),
            "n_pool": None if pool is None else len(pool), "train_subset": train_subset,
            "n_requested": n, "n_compared": meta_ctx["n_compared"],
            "n_train_per_repeat": meta_ctx["n_train"], "n_target": meta_ctx["n_target"],
            "n_floor_pool": meta_ctx["n_floor_pool"], "real_split": meta_ctx["real_split"],
            "signal_kind": signal_kind, "bands": meta_ctx["bands"],
            "repeats": repeats, "seed": seed, "repeat_seeds": seeds, "confidence": CONFIDENCE,
            "references": references, "not_validated": not_validated,
            "config": {**base.to_dict(), "seed": "per repeat: repeat_seeds"},
            "runtime_s": time.perf_counter() - start}
    return {"meta": meta, "metrics": metrics}


def validate_stores(
    train: str | os.PathLike[str], holdout: str | os.PathLike[str], *,
    pool: str | os.PathLike[str] | None = None, out_dir: str | os.PathLike[str],
    source: str | None = None, **options: Any,
) -> dict[str, Any]:
    """`validate_metrics` on sigdiff stores (their sampling rates must agree); writes the
    outputs of `write_validation` under `out_dir`. `options` go to `validate_metrics`."""
    from ..data.store import read_store
    from .spectral import signal_kind

    paths = [os.fspath(p) for p in (train, holdout, *([pool] if pool is not None else []))]
    loaded = [read_store(p) for p in paths]
    rates = {p: float(attrs["sampling_rate"]) for p, (_, attrs) in zip(paths, loaded)}
    if len(set(rates.values())) != 1:
        raise ValueError(f"validate: the stores' sampling rates differ: {rates}")
    arrays = [x for x, _ in loaded]
    result = validate_metrics(arrays[0], arrays[1], pool=arrays[2] if pool is not None else None,
                              sampling_rate=rates[paths[0]],
                              source=source or ", ".join(paths),
                              signal_kind=signal_kind(loaded[0][1]), **options)
    write_validation(result, out_dir)
    return result


# ----------------------------------------------------------------------------- outputs
def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3g}"


def _cell(sep: Mapping[str, Any]) -> str:
    text = f"{_fmt(sep['mean'])} [{_fmt(sep['low'])}, {_fmt(sep['high'])}]"
    return f"**{text}**" if sep["required"] and sep["separates"] is not True else text


def validation_table(result: Mapping[str, Any]) -> str:
    """The Markdown report: how to read it, the flagged metrics, one row per metric."""
    meta, metrics = result["meta"], result["metrics"]
    refs = meta["references"]
    pct = f"{100 * meta['confidence']:g}%"
    subset = (f"a random training subset of {meta['train_subset']} records per repeat, the floor "
              f"drawn from the other {meta['n_floor_pool']}" if meta["train_subset"] else
              f"{meta['n_train']} training records, the floor from {meta['real_split']}")
    lines = [
        f"# Metric validation: {meta['source']}", "",
        f"Each Δ is the signed separation of a reference from the real-data floor, mean over "
        f"{meta['repeats']} repeats with its {pct} Student-t interval: Δ = reference − floor "
        "where lower is better, floor − reference where higher is, so **Δ > 0 means the metric "
        "ranks real data better, as it must**. A reference is separated when the whole interval "
        "lies above 0; **bold** marks a required separation that fails. Memorization metrics "
        "owe it for the copier and the noisy copies only (corrupted real records are not copies); "
        "alignment, spectral and gate metrics for every reference. A metric that cannot separate "
        "the copier is flagged: do not rest a verdict on it, nor gate with it. Each repeat "
        f"redraws every set: n = {meta['n_compared']} records per set, {subset}, alignment "
        f"target n = {meta['n_target']}.", "",
        "References: " + "; ".join(f"`{k}`: {v}" for k, v in DESCRIPTIONS.items()) + ".", "",
    ]
    header = ("| metric | better | floor (mean) | "
        + " | ".join(f"Δ {r}" + (f" [{pct} CI]" if r == "copier" else "") for r in refs)
        + " | verdict |")
    lines += [*_flagged(metrics), "", header, "|" + "---|" * (len(refs) + 4)]
    for key, e in metrics.items():
        lines.append(f"| {key} | {e['direction']} | {_fmt(e['floor']['mean'])} | "
                     + " | ".join(_cell(e["separations"][r]) for r in refs)
                     + f" | {e['verdict']} |")
    if meta["not_validated"]:
        lines += ["", "Not validated here (no reference value to compare): " + ", ".join(
            f"{k} ({why})" for k, why in meta["not_validated"].items()) + "."]
    return "\n".join(lines) + "\n"


def _flagged(metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    fails = [k for k, e in metrics.items() if e["flagged"] and not e["note"]]
    misses = [f"{k} ({', '.join(e['missed'])})" for k, e in metrics.items()
              if not e["flagged"] and e["missed"]]
    copying = [k for k, e in metrics.items() if e["note"]]
    return ["## Flagged metrics", "",
            "- Cannot separate the floor from the copier (flagged, not used to gate): "
            + (", ".join(fails) or "none") + ".",
            "- Separate the copier but miss a required reference: " + (", ".join(misses) or "none")
            + ".",
            f"- {REWARDS_COPYING_NOTE.capitalize()} (the paper's metric; expected to fail the "
            "copier test): " + (", ".join(copying) or "none") + "."]


def plot_validation(result: Mapping[str, Any], path: Path) -> None:
    """Heatmap of t = mean / SE of every separation (metrics × references), diverging at 0."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    refs, metrics = result["meta"]["references"], result["metrics"]
    keys = list(metrics)
    seps = [[metrics[k]["separations"][r] for r in refs] for k in keys]
    t = np.array([[np.nan if s["t"] is None else s["t"] for s in row] for row in seps],
                 dtype=np.float64).reshape(len(keys), len(refs))
    fig = Figure(figsize=(2.0 + 1.1 * len(refs), 1.5 + 0.28 * len(keys)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_facecolor("lightgrey")  # NaN: missing for that reference
    im = ax.imshow(np.clip(t, -T_CLIP, T_CLIP), cmap="RdBu", vmin=-T_CLIP, vmax=T_CLIP,
                   aspect="auto")
    for (i, j), v in np.ndenumerate(t):
        if np.isnan(v):
            continue
        s = seps[i][j]
        text = f"{v:.1f}" if abs(v) < T_SHOWN else f"{'>' if v > 0 else '<−'}{T_SHOWN:g}"
        failed = s["required"] and s["separates"] is not True
        ax.text(j, i, text if s["required"] else f"({text})", ha="center", va="center",
                fontsize=6, fontweight="bold" if failed else "normal",
                color="white" if abs(v) > T_CLIP / 2 else "black")
    ax.set_xticks(range(len(refs)), refs, rotation=30, ha="right", fontsize=7)
    ax.set_yticks(range(len(keys)), keys, fontsize=7)
    fig.colorbar(im, ax=ax, label=f"t = mean Δ / SE (clipped at ±{T_CLIP:g})", shrink=0.5)
    ax.set_title(f"t > 0: floor ranked better; red: wrong way; bold: required, not separated; "
                 f"(·): not required; "
                 f"{result['meta']['repeats']} repeats", fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    tmp.replace(path)


def _json_safe(v: Any) -> Any:
    """NaN and ±∞ as null, numpy scalars as Python numbers: strict JSON."""
    if isinstance(v, Mapping):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_safe(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def write_validation(result: Mapping[str, Any], out_dir: str | os.PathLike[str]) -> Path:
    """validation.json, validation.md and validation.png under `out_dir` (each written to a
    temporary file, then renamed); returns the Markdown path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "validation.json",
                  json.dumps(_json_safe(result), indent=2, allow_nan=False))
    atomic_write_text(out / "validation.md", validation_table(result))
    plot_validation(result, out / "validation.png")
    return out / "validation.md"
