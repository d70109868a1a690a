"""The fair memorization–alignment frontier: memorization compared at equal alignment.

Each (arm, seed) is one training run evaluated at increasing steps; alignment ``x`` (lower is
better) usually falls with training while memorization ``y`` (lower is less copying) rises. Two
arms are compared fairly by stopping each run at the first moment it reaches an alignment level
and reading its memorization there:

- :func:`crossing`: for one run, the first crossing of ``x ≤ level``, linearly interpolated
  between the two checkpoints that bracket it, with a status ``reached`` / ``at_first`` (already
  aligned at the first checkpoint, left-censored) / ``never``;
- :func:`equal_alignment`: the crossing of every (arm, seed, level);
- :func:`paired_at_levels`: per level, arm − baseline of the memorization at the crossing, paired
  by seed over the seeds where both runs reached the level, with a Student-t interval and the count
  of every status, so that no seed is dropped silently;
- :func:`area_under_frontier` (AUF): per run, the memorization at the crossing averaged over the
  alignment interval spanned by a level grid (unreached levels pay ``never_value``), and
  :func:`summarize_auf`: AUF per arm and paired by seed against the baseline;
- :func:`data_levels` and :func:`common_level`: levels chosen from the data (quantiles of the
  pooled alignment values; the tightest level every run of two arms reaches), before any arm's
  memorization is compared; :func:`paired_auf`: arm − baseline AUF over the grid levels every
  run of both reaches, never-reached levels counted apart instead of charged as copying;
- :func:`plot_frontier`: memorization against alignment over training, one panel per arm.

Intervals are two-sided Student-t intervals mean ± t_{(1+c)/2, n−1}·s/√n with s the sample
standard deviation (ddof 1); pairing by seed assumes that the same seed means the same training
subset and sampling noise in every arm.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from sigdiff.stats import CONFIDENCE, t_interval

__all__ = [
    "AUF_COLUMNS",
    "AUF_SUMMARY_COLUMNS",
    "CROSSING_COLUMNS",
    "DATA_QUANTILES",
    "PAIRED_AUF_COLUMNS",
    "PAIRED_COLUMNS",
    "STATUSES",
    "Crossing",
    "area_under_frontier",
    "auf_from_crossings",
    "common_level",
    "crossing",
    "data_levels",
    "equal_alignment",
    "level_grid",
    "paired_at_levels",
    "paired_auf",
    "plot_frontier",
    "summarize_auf",
]

Status = Literal["reached", "at_first", "never"]
STATUSES: tuple[Status, ...] = ("reached", "at_first", "never")
#: statuses whose memorization value is usable in a comparison (at_first is an upper bound)
_USABLE: tuple[Status, ...] = ("reached", "at_first")
#: AUF of a level the run never reaches: as bad as a model that copies its training set
NEVER_VALUE = 1.0

CROSSING_COLUMNS = ("arm", "seed", "level", "status", "step", "y")
PAIRED_COLUMNS = (
    "level", "arm", "baseline", "n", "mean", "low", "high", "se", "arm_y", "base_y",
    "n_censored_pairs", "arm_reached", "arm_at_first", "arm_never",
    "base_reached", "base_at_first", "base_never", "seeds_unmatched",
)
AUF_COLUMNS = ("arm", "seed", "auf", "n_levels", "n_never", "n_at_first")
AUF_SUMMARY_COLUMNS = (
    "arm", "n", "mean", "low", "high", "se", "runs_with_never",
    "diff_n", "diff_mean", "diff_low", "diff_high", "diff_se",
)
PAIRED_AUF_COLUMNS = ("arm", "baseline", "level_lo", "level_hi", "n_levels", "n", "mean", "low",
                      "high", "se", "p", "arm_never", "base_never")
#: quantiles of the pooled alignment values that make the data-driven level grid (5%, 15%, …, 95%)
DATA_QUANTILES = (0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95)


# ----------------------------------------------------------------------------- one run
@dataclass(frozen=True)
class Crossing:
    """Where one run first reaches an alignment level: status, (interpolated) step and memorization.

    ``at_first``: the run was already at or below the level at its first checkpoint, so the true
    crossing lies before it; ``step``/``y`` are those of the first checkpoint, and since
    memorization grows with training ``y`` is an upper bound on memorization at the crossing.
    ``never``: no checkpoint reaches the level; ``step`` and ``y`` are nan.
    """

    status: Status
    step: float
    y: float

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown crossing status {self.status!r}; valid: {STATUSES}")


def _run_arrays(
    steps: Sequence[float] | np.ndarray,
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    run: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three arrays as float64, checked: same length ≥ 1, finite, steps strictly increasing."""
    s, xs, ys = (np.asarray(a, dtype=np.float64) for a in (steps, x, y))
    if s.ndim != 1 or s.shape != xs.shape or s.shape != ys.shape or s.size == 0:
        raise ValueError(f"{run}: steps, x, y must be 1-D of one length ≥ 1, "
                         f"got shapes {s.shape}, {xs.shape}, {ys.shape}")
    for name, a in (("step", s), ("alignment x", xs), ("memorization y", ys)):
        bad = ~np.isfinite(a)
        if bad.any():
            raise ValueError(f"{run}: non-finite {name} (a failed evaluation?) at steps "
                             f"{s[bad].tolist()}")
    if (np.diff(s) <= 0).any():
        raise ValueError(f"{run}: steps must be strictly increasing, got {s.tolist()}")
    return s, xs, ys


def crossing(
    steps: Sequence[float] | np.ndarray,
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    level: float,
    *,
    run: str = "run",
) -> Crossing:
    """First crossing of ``x ≤ level`` of one run (arrays sorted by step), linearly interpolated.

    With i the first checkpoint at or below the level (x[i−1] > level ≥ x[i]):
    f = (x[i−1] − level)/(x[i−1] − x[i]), step = s[i−1] + f·(s[i] − s[i−1]),
    y = y[i−1] + f·(y[i] − y[i−1]). Non-finite values raise ``ValueError`` naming ``run``.
    """
    if not math.isfinite(level):
        raise ValueError(f"{run}: level must be finite, got {level!r}")
    s, xs, ys = _run_arrays(steps, x, y, run)
    if xs[0] <= level:
        return Crossing("at_first", float(s[0]), float(ys[0]))
    hits = np.flatnonzero(xs <= level)
    if hits.size == 0:
        return Crossing("never", math.nan, math.nan)
    i = int(hits[0])
    f = (xs[i - 1] - level) / (xs[i - 1] - xs[i])  # in (0, 1]: x[i−1] > level ≥ x[i]
    return Crossing(
        "reached",
        float(s[i - 1] + f * (s[i] - s[i - 1])),
        float(ys[i - 1] + f * (ys[i] - ys[i - 1])),
    )


# ----------------------------------------------------------------------------- all runs
def level_grid(lo: float, hi: float, n: int) -> np.ndarray:
    """``n`` uniformly spaced alignment levels from ``lo`` to ``hi`` inclusive (float64)."""
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"need finite lo < hi, got lo={lo!r}, hi={hi!r}")
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer ≥ 2, got {n!r}")
    return np.linspace(lo, hi, n)


def data_levels(values: Sequence[float] | np.ndarray, *,
                quantiles: Sequence[float] = DATA_QUANTILES) -> np.ndarray:
    """A level grid from the data: the ``quantiles`` of the pooled alignment values (every
    checkpoint of every run, all arms together — nothing that depends on which arm is which),
    distinct and ascending, so the levels lie where the runs actually are."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    q = np.asarray(quantiles, dtype=np.float64)
    if x.size == 0 or q.size == 0 or ((q < 0) | (q > 1)).any():
        raise ValueError(f"need finite values and quantiles in [0, 1], got {x.size} values, "
                         f"quantiles {q.tolist()}")
    return np.unique(np.quantile(x, q))


def common_level(df: pd.DataFrame, *, x_key: str, arms: Sequence[str]) -> float:
    """The tightest alignment level every run of ``arms`` reaches: the largest of the runs'
    best (smallest) ``x`` over training."""
    d = df[df["arm"].isin(list(arms))]
    if d.empty:
        raise ValueError(f"no rows of arms {list(arms)}")
    return float(d.groupby(["arm", "seed"])[x_key].min().max())


def _levels(levels: Sequence[float] | np.ndarray) -> np.ndarray:
    lv = np.asarray(levels, dtype=np.float64)
    if lv.ndim != 1 or lv.size == 0 or not np.isfinite(lv).all():
        raise ValueError(f"levels must be a non-empty 1-D sequence of finite numbers, got {levels!r}")
    return lv


def _runs(df: pd.DataFrame, x_key: str, y_key: str) -> Iterator[tuple[str, int, pd.DataFrame]]:
    """(arm, seed, rows sorted by step) per run; arms in order of appearance, seeds ascending."""
    missing = [c for c in ("arm", "seed", "step", x_key, y_key) if c not in df.columns]
    if missing:
        raise ValueError(f"missing columns {missing}; have {list(df.columns)}")
    if df.empty:
        raise ValueError("no rows")
    dup = df.duplicated(["arm", "seed", "step"], keep=False)
    if dup.any():
        first = df.loc[dup, ["arm", "seed", "step"]].iloc[0].tolist()
        raise ValueError(f"{int(dup.sum())} rows share an (arm, seed, step), e.g. {first}: "
                         "select one configuration (e.g. one train_subset) first")
    for arm in dict.fromkeys(df["arm"]):
        g = df[df["arm"] == arm]
        for seed in sorted(set(g["seed"])):
            yield str(arm), int(seed), g[g["seed"] == seed].sort_values("step")


def equal_alignment(
    df: pd.DataFrame, *, x_key: str, y_key: str, levels: Sequence[float] | np.ndarray
) -> pd.DataFrame:
    """The :func:`crossing` of every (arm, seed, level): columns ``CROSSING_COLUMNS``.

    ``df`` holds one row per (arm, seed, step); every run appears at every level, whatever its
    status (``step`` and ``y`` nan for ``never``).
    """
    lv = _levels(levels)
    rows = []
    for arm, seed, run in _runs(df, x_key, y_key):
        arrays = (run["step"].to_numpy(), run[x_key].to_numpy(), run[y_key].to_numpy())
        for level in lv:
            c = crossing(*arrays, float(level), run=f"arm {arm!r} seed {seed}")
            rows.append((arm, seed, float(level), c.status, c.step, c.y))
    return pd.DataFrame(rows, columns=list(CROSSING_COLUMNS))


# ----------------------------------------------------------------------------- statistics
def _columns(values: np.ndarray, confidence: float, prefix: str = "") -> dict[str, float | int]:
    """n, mean, Student-t interval (ddof 1) and SE of `values` as prefixed columns."""
    iv = t_interval(values, confidence=confidence)
    return {f"{prefix}n": iv.n, f"{prefix}mean": iv.mean, f"{prefix}low": iv.low,
            f"{prefix}high": iv.high, f"{prefix}se": iv.se}


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def _check_baseline(arms: Sequence[str], baseline: str) -> None:
    if baseline not in arms:
        raise ValueError(f"baseline arm {baseline!r} is not one of {list(arms)}")


def _status_counts(prefix: str, runs: pd.DataFrame) -> dict[str, int]:
    counts = runs["status"].value_counts()
    return {f"{prefix}_{s}": int(counts.get(s, 0)) for s in STATUSES}


def _paired_level(arm: pd.DataFrame, base: pd.DataFrame, confidence: float) -> dict[str, Any]:
    """arm − base of ``y`` over the seeds usable in both (frames of one level, indexed by seed)."""
    a_ok = arm.index[arm["status"].isin(_USABLE)]
    b_ok = base.index[base["status"].isin(_USABLE)]
    seeds = a_ok.intersection(b_ok).sort_values()
    diff = (arm.loc[seeds, "y"] - base.loc[seeds, "y"]).to_numpy(dtype=np.float64)
    censored = (arm.loc[seeds, "status"] == "at_first") | (base.loc[seeds, "status"] == "at_first")
    return {
        **_columns(diff, confidence),
        "arm_y": float(arm.loc[seeds, "y"].mean()) if len(seeds) else math.nan,
        "base_y": float(base.loc[seeds, "y"].mean()) if len(seeds) else math.nan,
        "n_censored_pairs": int(censored.sum()),
        **_status_counts("arm", arm),
        **_status_counts("base", base),
        "seeds_unmatched": len(arm.index.symmetric_difference(base.index)),
    }


def paired_at_levels(
    crossings: pd.DataFrame, *, baseline: str, confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """Per level and non-baseline arm: arm − baseline memorization at equal alignment, by seed.

    ``crossings`` is :func:`equal_alignment`'s output. The difference is taken over the seeds where
    both runs reached the level (``reached`` or ``at_first``); ``n_censored_pairs`` of them involve
    an ``at_first`` upper bound. The status counts of each side and ``seeds_unmatched`` (seeds
    run by only one of the two arms) account for every seed left out. Columns ``PAIRED_COLUMNS``;
    ``arm_y``/``base_y`` are the two sides' means over the paired seeds.
    """
    _check_confidence(confidence)
    arms = list(dict.fromkeys(crossings["arm"]))
    _check_baseline(arms, baseline)
    rows = []
    for level, at in crossings.groupby("level", sort=False):
        base = at[at["arm"] == baseline].set_index("seed")
        for arm in arms:
            if arm != baseline:
                other = at[at["arm"] == arm].set_index("seed")
                rows.append({"level": float(level), "arm": arm, "baseline": baseline,
                             **_paired_level(other, base, confidence)})
    return pd.DataFrame(rows, columns=list(PAIRED_COLUMNS))


# ----------------------------------------------------------------------------- area under frontier
def _trapezoid_mean(values: np.ndarray, grid: np.ndarray) -> float:
    """∫ of the piecewise-linear interpolant of ``values`` over ``grid``, divided by its range."""
    area = np.sum(np.diff(grid) * (values[1:] + values[:-1]) / 2)  # trapezoid rule
    return float(area / (grid[-1] - grid[0]))


def area_under_frontier(
    df: pd.DataFrame,
    *,
    x_key: str,
    y_key: str,
    levels: Sequence[float] | np.ndarray,
    never_value: float = NEVER_VALUE,
) -> pd.DataFrame:
    """Per (arm, seed): memorization at the crossing averaged over the alignment levels (AUF).

    AUF = (1/(ℓ_K − ℓ_1)) ∫ y*(ℓ) dℓ by the trapezoid rule over the strictly increasing ``levels``
    ℓ_1 < … < ℓ_K, with y*(ℓ) the memorization at the crossing of level ℓ: the mean over the
    alignment interval of the piecewise-linear interpolant. On a uniform grid this is the mean
    with the two end levels weighted by one half, not the plain mean of the K values. A level the
    run never reaches counts ``never_value``; an ``at_first`` level counts its upper bound.
    Columns ``AUF_COLUMNS``: ``n_never``/``n_at_first`` count those levels out of ``n_levels``.
    """
    lv = _auf_levels(levels, never_value)
    return auf_from_crossings(equal_alignment(df, x_key=x_key, y_key=y_key, levels=lv),
                              levels=lv, never_value=never_value)


def _auf_levels(levels: Sequence[float] | np.ndarray, never_value: float) -> np.ndarray:
    lv = _levels(levels)
    if lv.size < 2 or (np.diff(lv) <= 0).any():
        raise ValueError(f"AUF needs ≥ 2 strictly increasing levels, got {lv.tolist()}")
    if not math.isfinite(never_value):
        raise ValueError(f"never_value must be finite, got {never_value!r}")
    return lv


def auf_from_crossings(
    cross: pd.DataFrame, *, levels: Sequence[float] | np.ndarray,
    never_value: float = NEVER_VALUE,
) -> pd.DataFrame:
    """`area_under_frontier` from crossings already computed by `equal_alignment` at `levels`
    (so a caller that also tabulates them does not compute them twice)."""
    lv = _auf_levels(levels, never_value)
    rows = []
    for (arm, seed), run in cross.groupby(["arm", "seed"], sort=False):
        never = (run["status"] == "never").to_numpy()
        y = np.where(never, never_value, run["y"].to_numpy(dtype=np.float64))
        rows.append((arm, seed, _trapezoid_mean(y, lv), len(lv), int(never.sum()),
                     int((run["status"] == "at_first").sum())))
    return pd.DataFrame(rows, columns=list(AUF_COLUMNS))


def summarize_auf(
    auf: pd.DataFrame, *, baseline: str, confidence: float = CONFIDENCE
) -> pd.DataFrame:
    """AUF per arm over seeds, and arm − baseline paired by seed: columns ``AUF_SUMMARY_COLUMNS``.

    ``auf`` is :func:`area_under_frontier`'s output. ``runs_with_never`` counts the arm's seeds
    with at least one unreached level (their AUF includes the ``never_value`` penalty). The
    ``diff_*`` columns are nan (``diff_n`` 0) on the baseline's own row.
    """
    _check_confidence(confidence)
    arms = list(dict.fromkeys(auf["arm"]))
    _check_baseline(arms, baseline)
    base = auf[auf["arm"] == baseline].set_index("seed")["auf"]
    rows = []
    for arm in arms:
        g = auf[auf["arm"] == arm].set_index("seed")
        seeds = g.index.intersection(base.index).sort_values()
        diff = (g.loc[seeds, "auf"] - base.loc[seeds]).to_numpy(dtype=np.float64)
        if arm == baseline:  # no comparison with itself
            diff = diff[:0]
        rows.append({"arm": arm, **_columns(g["auf"].to_numpy(np.float64), confidence),
                     "runs_with_never": int((g["n_never"] > 0).sum()),
                     **_columns(diff, confidence, "diff_")})
    return pd.DataFrame(rows, columns=list(AUF_SUMMARY_COLUMNS))


def _y_by_level(cross: pd.DataFrame, arm: str) -> pd.DataFrame:
    """seed × level table of one arm's memorization at the crossing (nan where never reached)."""
    g = cross[cross["arm"] == arm]
    y = g["y"].where(g["status"].isin(_USABLE))
    return g.assign(y=y).pivot(index="seed", columns="level", values="y")


def paired_auf(cross: pd.DataFrame, *, baseline: str, confidence: float = CONFIDENCE
               ) -> pd.DataFrame:
    """Per non-baseline arm: arm − baseline AUF, paired by seed, over the levels of the grid
    that every run of both arms reaches (``reached`` or ``at_first``); a level some run never
    reaches is left out of the area and counted (``arm_never``/``base_never``: seed × level
    pairs over the whole grid), not charged as copying. One common level: the difference there.
    ``p``: the paired t-test. Columns ``PAIRED_AUF_COLUMNS``."""
    from sigdiff.stats import t_pvalue

    _check_confidence(confidence)
    arms = list(dict.fromkeys(cross["arm"]))
    _check_baseline(arms, baseline)
    base = _y_by_level(cross, baseline)
    rows = []
    for arm in [a for a in arms if a != baseline]:
        y = _y_by_level(cross, arm)
        seeds = y.index.intersection(base.index)
        diff = y.loc[seeds] - base.loc[seeds]
        common = diff.columns[diff.notna().all(axis=0).to_numpy()].to_numpy(np.float64)
        d = diff[common].to_numpy(np.float64)
        per_seed = (d[:, 0] if len(common) == 1 else
                    np.array([_trapezoid_mean(r, common) for r in d]) if len(common) else
                    np.array([]))
        iv = t_interval(per_seed, confidence=confidence)
        rows.append({"arm": arm, "baseline": baseline,
                     "level_lo": common.min() if len(common) else math.nan,
                     "level_hi": common.max() if len(common) else math.nan,
                     "n_levels": len(common), "n": iv.n, "mean": iv.mean, "low": iv.low,
                     "high": iv.high, "se": iv.se, "p": t_pvalue(iv),
                     "arm_never": int(y.isna().to_numpy().sum()),
                     "base_never": int(base.isna().to_numpy().sum())})
    return pd.DataFrame(rows, columns=list(PAIRED_AUF_COLUMNS))


# ----------------------------------------------------------------------------- plot
#: panels per row of the frontier figure
_PANEL_COLS = 3


def _panels(n: int) -> tuple[Any, list[Any]]:
    """A figure on the Agg canvas with n panels sharing both axes (no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = min(n, _PANEL_COLS)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(4.2 * cols, 3.6 * rows), constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _draw_crossings(ax: Any, cross: pd.DataFrame) -> None:
    """Mark where each run crosses each level (x: reached; open ▽: at_first upper bound)."""
    reached, first = (cross[cross["status"] == s] for s in ("reached", "at_first"))
    ax.scatter(reached["level"], reached["y"], marker="x", s=22, color="k", linewidths=0.8,
               zorder=3, label="crossing")
    ax.scatter(first["level"], first["y"], marker="v", s=22, facecolors="none", edgecolors="k",
               linewidths=0.8, zorder=3, label="at first checkpoint (upper bound)")


def plot_frontier(
    df: pd.DataFrame,
    *,
    x_key: str,
    y_key: str,
    path: str | Path,
    levels: Sequence[float] | np.ndarray | None = None,
    x_label: str | None = None,
    y_label: str | None = None,
    floor_x: float | None = None,
    floor_y: float | None = None,
    x_log: bool = False,
) -> Path:
    """Memorization against alignment over training, one panel per arm, one line per seed (PNG).

    Markers at checkpoints, the last step labelled; dashed verticals at ``levels`` with the
    crossings marked; floor lines (dotted: alignment, dash-dot: memorization) at ``floor_x``/``floor_y`` when given. Labels default to
    the column names. Returns ``path``.
    """
    runs = list(_runs(df, x_key, y_key))
    arms = list(dict.fromkeys(arm for arm, _, _ in runs))
    seeds = sorted({seed for _, seed, _ in runs})
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    color = {seed: cmap(i % 10) for i, seed in enumerate(seeds)}  # same seed, same colour
    cross = equal_alignment(df, x_key=x_key, y_key=y_key, levels=levels) if levels is not None \
        else None
    fig, axes = _panels(len(arms))
    for ax, arm in zip(axes, arms):
        for _, seed, run in (r for r in runs if r[0] == arm):
            x, y = run[x_key].to_numpy(), run[y_key].to_numpy()
            ax.plot(x, y, lw=0.9, marker="o", ms=2.5, alpha=0.8, color=color[seed],
                    label=f"seed {seed}")
            ax.annotate(str(int(run["step"].iloc[-1])), (x[-1], y[-1]), fontsize=6,
                        color=color[seed])
        if cross is not None:
            for level in dict.fromkeys(cross["level"]):
                ax.axvline(level, color="0.5", ls="--", lw=0.8)
            _draw_crossings(ax, cross[cross["arm"] == arm])
        if floor_x is not None:
            ax.axvline(floor_x, color="k", ls=":", lw=1, label="floor (alignment)")
        if floor_y is not None:
            ax.axhline(floor_y, color="k", ls="-.", lw=1, label="floor (memorization)")
        if x_log:
            ax.set_xscale("log")
        ax.set_title(f"{arm} ({sum(r[0] == arm for r in runs)} seeds)", fontsize=9)
        ax.set_xlabel(f"{x_label or x_key} (← better)")
        ax.set_ylabel(y_label or y_key)
    axes[0].legend(fontsize=6, loc="best")
    fig.suptitle("memorization against alignment over training (one line per seed, last step "
                 "labelled; dashed: equal-alignment levels)", fontsize=9)
    fig.savefig(path, dpi=110)
    return Path(path)
