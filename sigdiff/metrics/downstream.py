"""Downstream validation: would a classifier trained on the synthetic data work on real data, and
does adding it help?

With labelled stores, one time-series classifier is trained four ways and always tested on real
records the generator never saw (the holdout), except TRTS:

- **TRTR** train on the real training records, test on the holdout (the reference);
- **TSTR** train on the synthetic records, test on the holdout (Esteban et al. 2017);
- **TRTS** train on the real training records, test on the synthetic records;
- **augmentation** train on the real training records plus ``augment`` × as many synthetic
  records drawn class-balanced (equal numbers per class where the synthetic set has them), test
  on the holdout.

Each is repeated over classifier seeds (accuracy, macro-F1, per-class recall; Student-t intervals
over seeds), and the same four are reported for the **copier** reference — a "synthetic" set of
the same size and label mix drawn with replacement from the training records — so TSTR is read
beside what plain copying would score.

Classifiers (`CLASSIFIERS`): ``minirocket`` — MiniRocket features (Dempster et al. 2021, aeon's
implementation) with a ridge classifier over a cross-validated α grid, the field's standard
fast, accurate baseline; ``fcn`` — the fully convolutional network of Wang et al. 2017 (three
conv-BN-ReLU blocks, global average pooling) at a quarter of its width, in torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

from sigdiff._utils import choice_error
from sigdiff.stats import t_interval

__all__ = ["CLASSIFIERS", "MODES", "TASKS", "DownstreamError", "classify_report", "copier_set",
           "downstream_stores", "fit_predict", "forecast_report"]

MODES = ("trtr", "tstr", "trts", "augmentation")
DEFAULT_SEEDS = 5


class DownstreamError(ValueError):
    """Stores that cannot be used for a downstream score (no labels, mismatched labels, shapes)."""


# --- classifiers -------------------------------------------------------------------------
def _minirocket(x: np.ndarray, y: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
    try:
        from aeon.transformations.collection.convolution_based import MiniRocket
    except ImportError:
        raise DownstreamError("the minirocket classifier needs aeon: pip install "
                              "'sigdiff[downstream]' (or pass --classifier fcn)") from None
    from sklearn.linear_model import RidgeClassifierCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    transform = MiniRocket(random_state=seed, n_jobs=1)
    f_train = transform.fit_transform(x.astype(np.float32))
    f_test = transform.transform(test.astype(np.float32))
    clf = make_pipeline(StandardScaler(), RidgeClassifierCV(alphas=np.logspace(-3, 3, 10)))
    return np.asarray(clf.fit(f_train, y).predict(f_test))


class _FCN(torch.nn.Module):
    """Wang, Yan & Oates 2017, FCN, at width 1/4: (32, 64, 32) filters of size (7, 5, 3) (odd
    sizes: symmetric "same" padding; the original uses 8, 5, 3)."""

    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        for c_in, c_out, k in ((channels, 32, 7), (32, 64, 5), (64, 32, 3)):
            layers += [torch.nn.Conv1d(c_in, c_out, k, padding="same"),
                       torch.nn.BatchNorm1d(c_out), torch.nn.ReLU()]
        self.body = torch.nn.Sequential(*layers)
        self.head = torch.nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean(dim=-1))  # global average pooling over time


FCN_EPOCHS = 60
FCN_BATCH = 32


def _fcn(x: np.ndarray, y: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
    classes = np.unique(y)
    idx = np.searchsorted(classes, y)
    mean, std = x.mean(axis=(0, 2), keepdims=True), x.std(axis=(0, 2), keepdims=True) + 1e-8
    xt = torch.from_numpy(((x - mean) / std).astype(np.float32))
    yt = torch.from_numpy(idx.astype(np.int64))
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _FCN(x.shape[1], len(classes))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    for _ in range(FCN_EPOCHS):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(0, len(xt), FCN_BATCH):
            b = perm[i:i + FCN_BATCH]
            if len(b) < 2:  # BatchNorm needs two records
                continue
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xt[b]), yt[b]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        logits = net(torch.from_numpy(((test - mean) / std).astype(np.float32)))
    return classes[logits.argmax(dim=1).numpy()]


Classifier = Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]
CLASSIFIERS: Mapping[str, Classifier] = {"minirocket": _minirocket, "fcn": _fcn}


def fit_predict(name: str, x: np.ndarray, y: np.ndarray, test: np.ndarray, *, seed: int
                ) -> np.ndarray:
    """Labels predicted for ``test`` by classifier ``name`` fitted on (x, y) with ``seed``."""
    if name not in CLASSIFIERS:
        raise choice_error("downstream classifier", name, CLASSIFIERS)
    if len(np.unique(y)) < 2:
        raise DownstreamError(f"a classifier needs at least two classes in its training set; "
                              f"got only {np.unique(y).tolist()}")
    return CLASSIFIERS[name](x, y, test, seed)


# --- the four ways ------------------------------------------------------------------------
def copier_set(x: np.ndarray, y: np.ndarray, like: np.ndarray, *, seed: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """A copier's "synthetic" set: per class of ``like`` (the synthetic labels), as many training
    records of that class drawn with replacement (classes absent from training: skipped)."""
    rng = np.random.default_rng([seed, 17])
    picks = []
    for c, n in zip(*np.unique(like, return_counts=True)):
        pool = np.flatnonzero(y == c)
        if len(pool):
            picks.append(rng.choice(pool, n, replace=True))
    idx = np.concatenate(picks)
    return x[idx], y[idx]


def _balanced(x: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` records with (as near as possible) equal numbers per class, without replacement
    while a class has records left, then with replacement."""
    classes = np.unique(y)
    per = np.full(len(classes), n // len(classes))
    per[: n % len(classes)] += 1
    idx = [rng.choice(np.flatnonzero(y == c), k, replace=k > (y == c).sum())
           for c, k in zip(classes, per)]
    out = np.concatenate(idx)
    return x[out], y[out]


@dataclass(frozen=True)
class Split:
    """One way of training and testing: the sets and what they are."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def _splits(real: tuple[np.ndarray, np.ndarray], holdout: tuple[np.ndarray, np.ndarray],
            synth: tuple[np.ndarray, np.ndarray], augment: float, seed: int
            ) -> dict[str, Split]:
    (xr, yr), (xh, yh), (xs, ys) = real, holdout, synth
    n_aug = round(augment * len(xr))
    xa, ya = _balanced(xs, ys, n_aug, np.random.default_rng([seed, 23]))
    return {"trtr": Split(xr, yr, xh, yh), "tstr": Split(xs, ys, xh, yh),
            "trts": Split(xr, yr, xs, ys),
            "augmentation": Split(np.concatenate([xr, xa]), np.concatenate([yr, ya]), xh, yh)}


def _scores(y: np.ndarray, pred: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    recall = recall_score(y, pred, labels=labels, average=None, zero_division=0)
    return {"accuracy": float(accuracy_score(y, pred)),
            "macro_f1": float(f1_score(y, pred, labels=labels, average="macro",
                                       zero_division=0)),
            "recall": {int(c): float(r) for c, r in zip(labels, recall) if (y == c).any()}}


def _summary(per_seed: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("accuracy", "macro_f1"):
        iv = t_interval([s[key] for s in per_seed])
        out[key] = {"mean": iv.mean, "low": iv.low, "high": iv.high, "se": iv.se, "n": iv.n}
    classes = sorted({c for s in per_seed for c in s["recall"]})
    out["recall"] = {c: t_interval([s["recall"][c] for s in per_seed if c in s["recall"]]).mean
                     for c in classes}
    out["per_seed"] = list(per_seed)
    return out


def check_labels(labels: Sequence[np.ndarray | None], names: Sequence[str]) -> None:
    """Refuse unlabelled stores and synthetic labels the real data does not have (labels and
    names of the training, holdout and synthetic stores, in that order)."""
    train_y, _, synth_y = labels
    for y, name in zip(labels, names):
        if y is None:
            raise DownstreamError(
                f"{name} has no labels: --downstream classify needs labelled stores (sample a "
                "class-conditional run with --label/--per-class); for unlabelled data use "
                "--downstream forecast (train-on-synthetic, test-on-real forecasting MAE)")
    assert train_y is not None and synth_y is not None
    unknown = sorted(set(np.unique(synth_y).tolist()) - set(np.unique(train_y).tolist()))
    if unknown:
        raise DownstreamError(f"{names[2]} has labels {unknown} that the training data "
                              f"({names[0]}) does not have; the stores do not describe the same "
                              "classes")


def classify_report(
    train: tuple[np.ndarray, np.ndarray], holdout: tuple[np.ndarray, np.ndarray],
    synthetic: tuple[np.ndarray, np.ndarray], *, classifier: str = "minirocket",
    seeds: int = DEFAULT_SEEDS, augment: float = 1.0, progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The four ways (module docstring) for the synthetic set and for the copier reference, each
    over ``seeds`` classifier seeds: per way accuracy and macro-F1 (mean, 95% t-interval, SE, n),
    mean per-class recall, and the confusion matrix of seed 0 (rows true, columns predicted)."""
    if classifier not in CLASSIFIERS:
        raise choice_error("downstream classifier", classifier, CLASSIFIERS)
    if seeds < 2:
        raise DownstreamError(f"seeds must be >= 2 for an interval, got {seeds}")
    if not (augment > 0 and math.isfinite(augment)):
        raise DownstreamError(f"augment must be a positive number, got {augment}")
    labels = np.unique(np.concatenate([train[1], holdout[1], synthetic[1]]))
    sets = {"synthetic": synthetic,
            "copier": copier_set(*train, synthetic[1], seed=0)}
    report: dict[str, Any] = {"classifier": classifier, "seeds": seeds, "augment": augment,
                              "labels": labels.tolist(),
                              "n": {"train": len(train[0]), "holdout": len(holdout[0]),
                                    "synthetic": len(synthetic[0])}}
    for set_name, synth in sets.items():
        per_mode: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
        confusion: dict[str, list[list[int]]] = {}
        for seed in range(seeds):
            for mode, sp in _splits(train, holdout, synth, augment, seed).items():
                if mode == "trtr" and set_name == "copier":  # the same as the synthetic's
                    continue
                if progress:
                    progress(f"{set_name} {mode} seed {seed}")
                pred = fit_predict(classifier, sp.train_x, sp.train_y, sp.test_x, seed=seed)
                per_mode[mode].append(_scores(sp.test_y, pred, labels))
                if seed == 0:
                    confusion[mode] = confusion_matrix(sp.test_y, pred, labels=labels).tolist()
        report[set_name] = {m: {**_summary(v), "confusion": confusion[m]}
                            for m, v in per_mode.items() if v}
    return report


# --- forecasting (unlabelled data) -----------------------------------------------------------
def forecast_report(train: np.ndarray, holdout: np.ndarray, synthetic: np.ndarray) -> dict[str, Any]:
    """Train-on-synthetic, test-on-real forecasting: MAE on the holdout of a ridge forecaster of
    each record's last 10% (`sigdiff.metrics.classifiers.predictive_score`) trained on the
    synthetic records, beside the same trained on the real training records (TRTR) and on a
    copier's set (the training records drawn with replacement, as many as the synthetic)."""
    from sigdiff.metrics.classifiers import predictive_score

    rng = np.random.default_rng([0, 17])
    copier = train[rng.choice(len(train), len(synthetic), replace=True)]
    out = {"trtr_mae": predictive_score(train, holdout),
           "tstr_mae": predictive_score(synthetic, holdout),
           "copier_tstr_mae": predictive_score(copier, holdout)}
    out["tstr_over_trtr"] = out["tstr_mae"] / out["trtr_mae"]
    return {"task": "forecast", "n": {"train": len(train), "holdout": len(holdout),
                                      "synthetic": len(synthetic)}, **out}


# --- stores in, report out ---------------------------------------------------------------------
def downstream_stores(train: str, holdout: str, samples: str, *, task: str, out_dir: str,
                      classifier: str = "minirocket", seeds: int = DEFAULT_SEEDS,
                      augment: float = 1.0, progress: bool = True) -> dict[str, Any]:
    """Read the three stores, run ``task`` ('classify' or 'forecast'), write downstream.json,
    downstream.md and (classify) confusion.png into ``out_dir``; returns the report."""
    import json
    from pathlib import Path

    from tqdm.auto import tqdm

    from sigdiff._utils import atomic_write_text
    from sigdiff.data.store import open_store

    if task not in TASKS:
        raise choice_error("downstream task", task, TASKS)
    stores = [open_store(p) for p in (train, holdout, samples)]
    shapes = {(s.n_channels, *s.spatial_shape) for s in stores}
    if len(shapes) != 1:
        raise DownstreamError(f"the stores hold records of different shapes {sorted(shapes)}; "
                              "give samples of the same data as the training records")
    xs = [s.read(np.arange(s.n_samples)) for s in stores]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if task == "forecast":
        report = forecast_report(*xs)
    else:
        ys = [s.labels for s in stores]
        check_labels(ys, names=(train, holdout, samples))
        n_fits = 7 * seeds
        with tqdm(total=n_fits, desc=f"downstream {classifier}", disable=not progress) as bar:
            def tick(what: str) -> None:
                bar.set_postfix_str(what)
                bar.update(1)

            report = classify_report(*zip(xs, ys), classifier=classifier,  # type: ignore[arg-type]
                                     seeds=seeds, augment=augment, progress=tick)
        report["task"] = "classify"
        plot_confusion(report, out / "confusion.png")
    atomic_write_text(out / "downstream.json", json.dumps(report, indent=2))
    atomic_write_text(out / "downstream.md", downstream_markdown(report))
    return report


TASKS = ("classify", "forecast")
WAY_NAMES = {"trtr": "TRTR (real → real)", "tstr": "TSTR (synthetic → real)",
             "trts": "TRTS (real → synthetic)", "augmentation": "augmentation (real + synthetic → real)"}


def downstream_markdown(report: Mapping[str, Any]) -> str:
    """The report as a Markdown table (mean [95% t-interval] over classifier seeds)."""
    if report["task"] == "forecast":
        return ("| forecasting MAE on the holdout | value |\n|---|---|\n"
                f"| TRTR | {report['trtr_mae']:.4g} |\n| TSTR | {report['tstr_mae']:.4g} |\n"
                f"| copier TSTR | {report['copier_tstr_mae']:.4g} |\n"
                f"| TSTR / TRTR | {report['tstr_over_trtr']:.3f} |\n")

    def fmt(v: Mapping[str, Any]) -> str:
        return f"{v['mean']:.3f} [{v['low']:.3f}, {v['high']:.3f}]"

    lines = [f"Classifier {report['classifier']}, {report['seeds']} seeds; n = "
             f"{report['n']}; augmentation adds {report['augment']:g}× the real training set "
             "in synthetic records, class-balanced.", "",
             "| set | way | accuracy | macro-F1 | recall per class |", "|---|---|---|---|---|"]
    for set_name in ("synthetic", "copier"):
        for way, v in report[set_name].items():
            rec = ", ".join(f"{c}: {r:.2f}" for c, r in v["recall"].items())
            lines.append(f"| {set_name} | {WAY_NAMES[way]} | {fmt(v['accuracy'])} | "
                         f"{fmt(v['macro_f1'])} | {rec} |")
    return "\n".join(lines) + "\n"


def plot_confusion(report: Mapping[str, Any], path: Any) -> None:
    """TRTR, TSTR and the copier's TSTR confusion matrices (seed 0, rows true, normalised)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("TRTR", report["synthetic"]["trtr"]["confusion"]),
              ("TSTR", report["synthetic"]["tstr"]["confusion"]),
              ("copier TSTR", report["copier"]["tstr"]["confusion"])]
    labels = report["labels"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    for ax, (title, cm) in zip(axes, panels):
        m = np.asarray(cm, dtype=float)
        norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black")
        ax.set(xticks=range(len(labels)), yticks=range(len(labels)), xticklabels=labels,
               yticklabels=labels, xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- per checkpoint (sweeps): utility beside memorization --------------------------------------
def trtr_score(train: tuple[np.ndarray, np.ndarray], holdout: tuple[np.ndarray, np.ndarray], *,
               classifier: str, seeds: int) -> float:
    """Mean holdout macro-F1 of the classifier trained on the real training records."""
    labels = np.unique(np.concatenate([train[1], holdout[1]]))
    return float(np.mean([_scores(holdout[1], fit_predict(classifier, *train, holdout[0],
                                                          seed=s), labels)["macro_f1"]
                          for s in range(seeds)]))


def utility_scores(train: tuple[np.ndarray, np.ndarray], holdout: tuple[np.ndarray, np.ndarray],
                   synthetic: tuple[np.ndarray, np.ndarray], *, classifier: str, seeds: int,
                   augment: float, trtr: float) -> dict[str, float]:
    """TSTR and augmentation (module docstring) holdout macro-F1 and accuracy, mean over
    ``seeds``, and the augmentation gain over ``trtr`` (the cell's TRTR macro-F1)."""
    labels = np.unique(np.concatenate([train[1], holdout[1], synthetic[1]]))
    got: dict[str, list[dict[str, Any]]] = {"tstr": [], "augmentation": []}
    for s in range(seeds):
        splits = _splits(train, holdout, synthetic, augment, s)
        for way in got:
            sp = splits[way]
            got[way].append(_scores(sp.test_y, fit_predict(classifier, sp.train_x, sp.train_y,
                                                           sp.test_x, seed=s), labels))
    out = {f"{way}.{key}": float(np.mean([r[key] for r in rs]))
           for way, rs in got.items() for key in ("macro_f1", "accuracy")}
    out["trtr.macro_f1"] = trtr
    out["augmentation_gain"] = out["augmentation.macro_f1"] - trtr
    return out
