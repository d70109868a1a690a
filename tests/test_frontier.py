"""The memorization–alignment frontier: crossings, paired differences, AUF, plot."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from sigdiff.frontier import (
    AUF_COLUMNS,
    AUF_SUMMARY_COLUMNS,
    CROSSING_COLUMNS,
    PAIRED_AUF_COLUMNS,
    PAIRED_COLUMNS,
    area_under_frontier,
    common_level,
    crossing,
    data_levels,
    equal_alignment,
    level_grid,
    paired_at_levels,
    paired_auf,
    plot_frontier,
    summarize_auf,
)

STEPS = [100, 200, 300]
X = [0.9, 0.5, 0.2]
Y = [0.0, 0.1, 0.4]


def _frame(runs: dict[tuple[str, int], tuple[list[float], list[float], list[float]]]
           ) -> pd.DataFrame:
    rows = [{"arm": arm, "seed": seed, "step": s, "align": x, "mem": y}
            for (arm, seed), (steps, xs, ys) in runs.items()
            for s, x, y in zip(steps, xs, ys)]
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- crossing
def test_crossing_interpolates_by_hand() -> None:
    # level 0.3: x[1] = 0.5 > 0.3 ≥ x[2] = 0.2, so the crossing lies between steps 200 and 300;
    # f = (0.5 − 0.3)/(0.5 − 0.2) = 2/3; step = 200 + 2/3·100 = 266.67; y = 0.1 + 2/3·0.3 = 0.3
    c = crossing(STEPS, X, Y, 0.3)
    assert c.status == "reached"
    assert c.step == pytest.approx(200 + 200 / 3)
    assert c.y == pytest.approx(0.3)


def test_crossing_exactly_at_a_checkpoint_and_first_crossing_only() -> None:
    # level 0.5 = x[1]: f = (0.9 − 0.5)/(0.9 − 0.5) = 1, the checkpoint itself
    c = crossing(STEPS, X, Y, 0.5)
    assert (c.status, c.step, c.y) == ("reached", 200.0, pytest.approx(0.1))
    # non-monotone x: the first crossing counts; f = (0.9 − 0.5)/(0.9 − 0.4) = 0.8
    c = crossing([0, 10, 20, 30], [0.9, 0.4, 0.6, 0.2], [0.0, 0.5, 0.7, 0.9], 0.5)
    assert c.step == pytest.approx(8.0)
    assert c.y == pytest.approx(0.4)


def test_crossing_at_first_and_never() -> None:
    c = crossing(STEPS, X, Y, 0.95)
    assert (c.status, c.step, c.y) == ("at_first", 100.0, 0.0)
    c = crossing(STEPS, X, Y, 0.9)  # x[0] = level counts as already there
    assert c.status == "at_first"
    c = crossing(STEPS, X, Y, 0.1)
    assert c.status == "never"
    assert math.isnan(c.step) and math.isnan(c.y)


def test_crossing_rejects_nan_and_unsorted_steps() -> None:
    with pytest.raises(ValueError, match=r"run-7.*alignment.*\[200\.0\]"):
        crossing(STEPS, [0.9, float("nan"), 0.2], Y, 0.3, run="run-7")
    with pytest.raises(ValueError, match="memorization"):
        crossing(STEPS, X, [0.0, 0.1, float("nan")], 0.3)
    with pytest.raises(ValueError, match="increasing"):
        crossing([100, 300, 200], X, Y, 0.3)
    df = _frame({("a", 0): (STEPS, X, Y), ("b", 3): (STEPS, [0.9, 0.5, float("nan")], Y)})
    with pytest.raises(ValueError, match="arm 'b' seed 3"):
        equal_alignment(df, x_key="align", y_key="mem", levels=[0.3])


def test_duplicate_rows_are_an_error() -> None:
    df = _frame({("a", 0): (STEPS, X, Y)})
    with pytest.raises(ValueError, match="share an"):
        equal_alignment(pd.concat([df, df]), x_key="align", y_key="mem", levels=[0.3])


# ----------------------------------------------------------------------------- paired differences
SEEDS = range(5)
LEVELS = [0.5, 0.35]


def _pairing_frame() -> pd.DataFrame:
    steps = [100, 200, 300, 400]
    runs = {}
    for s in SEEDS:
        runs["base", s] = (steps, [1.0 - 0.01 * s, 0.6, 0.4, 0.3 - 0.01 * s],
                           [0.0, 0.05 + 0.01 * s, 0.1, 0.2 + 0.02 * s])
        x_new = [1.0, 0.7, 0.45, 0.32 + 0.005 * s]
        if s == 3:  # never reaches 0.35
            x_new = [1.0, 0.7, 0.45, 0.4]
        if s == 4:  # already at 0.5 at the first checkpoint
            x_new = [0.48, 0.44, 0.4, 0.3]
        runs["new", s] = (steps, x_new, [0.0, 0.02 * s, 0.04, 0.12 - 0.01 * s])
    return _frame(runs)


def _oracle_y(run: pd.DataFrame, level: float) -> float:
    """Memorization at the crossing of a run with decreasing x, by numpy's interpolation."""
    x, y = run["align"].to_numpy(), run["mem"].to_numpy()
    assert (np.diff(x) < 0).all()
    return float(np.interp(level, x[::-1], y[::-1])) if x[0] > level else float(y[0])


def test_equal_alignment_lists_every_run_and_level() -> None:
    df = _pairing_frame()
    cross = equal_alignment(df, x_key="align", y_key="mem", levels=LEVELS)
    assert tuple(cross.columns) == CROSSING_COLUMNS
    assert len(cross) == 2 * len(SEEDS) * len(LEVELS)
    new = cross[cross.arm == "new"].set_index(["seed", "level"])
    assert new.loc[(3, 0.35), "status"] == "never"
    assert new.loc[(4, 0.5), "status"] == "at_first"
    assert new.loc[(4, 0.5), "y"] == 0.0
    for (arm, seed), run in df.groupby(["arm", "seed"]):
        got = cross[(cross.arm == arm) & (cross.seed == seed)].set_index("level")
        for level in LEVELS:
            if got.loc[level, "status"] != "never":
                assert got.loc[level, "y"] == pytest.approx(_oracle_y(run, level))


def test_paired_at_levels_against_scipy() -> None:
    df = _pairing_frame()
    cross = equal_alignment(df, x_key="align", y_key="mem", levels=LEVELS)
    paired = paired_at_levels(cross, baseline="base")
    assert tuple(paired.columns) == PAIRED_COLUMNS
    assert list(paired.arm) == ["new", "new"]
    runs = {key: run for key, run in df.groupby(["arm", "seed"])}
    for level, seeds, n_never, n_at_first in ((0.5, [0, 1, 2, 3, 4], 0, 1),
                                              (0.35, [0, 1, 2, 4], 1, 0)):
        row = paired[paired.level == level].iloc[0]
        a = np.array([_oracle_y(runs["new", s], level) for s in seeds])
        b = np.array([_oracle_y(runs["base", s], level) for s in seeds])
        ci = stats.ttest_rel(a, b).confidence_interval(0.95)
        assert row["n"] == len(seeds)
        assert row["mean"] == pytest.approx(np.mean(a - b))
        assert (row["low"], row["high"]) == pytest.approx((ci.low, ci.high))
        assert row["se"] == pytest.approx(stats.sem(a - b))
        assert row["arm_y"] == pytest.approx(a.mean())
        assert row["base_y"] == pytest.approx(b.mean())
        assert (row["arm_never"], row["arm_at_first"]) == (n_never, n_at_first)
        assert row["arm_reached"] == 5 - n_never - n_at_first
        assert (row["base_reached"], row["base_at_first"], row["base_never"]) == (5, 0, 0)
        assert row["n_censored_pairs"] == n_at_first
        assert row["seeds_unmatched"] == 0
    assert paired.loc[paired.level == 0.35, "mean"].iloc[0] < 0  # the made-up arm memorizes less


def test_paired_with_too_few_pairs_and_unknown_baseline() -> None:
    cross = equal_alignment(_pairing_frame(), x_key="align", y_key="mem", levels=[0.05])
    row = paired_at_levels(cross, baseline="base").iloc[0]
    assert row["n"] == 0 and row["arm_never"] == 5 and row["base_never"] == 5
    assert math.isnan(row["mean"]) and math.isnan(row["low"])
    with pytest.raises(ValueError, match="not one of"):
        paired_at_levels(cross, baseline="uniform")


# ----------------------------------------------------------------------------- AUF
def _auf_frame() -> pd.DataFrame:
    return _frame({
        ("base", 0): ([0, 100, 200], [1.0, 0.5, 0.0], [0.0, 0.2, 0.6]),
        ("base", 1): ([0, 100, 200], [1.0, 0.5, 0.4], [0.0, 0.2, 0.3]),
    })


def test_auf_by_hand_with_never_penalty() -> None:
    # levels 0.25, 0.5, 0.75. Run 0: x 1.0 → 0.5 → 0.0, y 0 → 0.2 → 0.6:
    #   0.75: f = (1 − 0.75)/0.5 = 0.5, y = 0.1;  0.5: at checkpoint 1, y = 0.2;
    #   0.25: f = (0.5 − 0.25)/0.5 = 0.5, y = 0.2 + 0.5·0.4 = 0.4.
    #   trapezoid: 0.25·(0.4 + 0.2)/2 + 0.25·(0.2 + 0.1)/2 = 0.1125; / (0.75 − 0.25) = 0.225
    #   (the plain mean of the three would be 0.2333: the end levels weigh one half).
    # Run 1: x stops at 0.4, never reaches 0.25 → never_value 1.0:
    #   0.25·(1.0 + 0.2)/2 + 0.0375 = 0.1875; / 0.5 = 0.375. With never_value 0.5: 0.25.
    levels = [0.25, 0.5, 0.75]
    auf = area_under_frontier(_auf_frame(), x_key="align", y_key="mem", levels=levels)
    assert tuple(auf.columns) == AUF_COLUMNS
    assert auf.auf.tolist() == pytest.approx([0.225, 0.375])
    assert auf.n_never.tolist() == [0, 1]
    assert auf.n_at_first.tolist() == [0, 0]
    assert auf.n_levels.tolist() == [3, 3]
    auf = area_under_frontier(_auf_frame(), x_key="align", y_key="mem", levels=levels,
                              never_value=0.5)
    assert auf.auf.tolist() == pytest.approx([0.225, 0.25])


def test_auf_matches_scipy_trapezoid_on_an_uneven_grid() -> None:
    levels = np.array([0.1, 0.3, 0.35, 0.8, 0.95])
    df = _auf_frame()
    auf = area_under_frontier(df, x_key="align", y_key="mem", levels=levels)
    run = df[df.seed == 0]
    x, y = run["align"].to_numpy()[::-1], run["mem"].to_numpy()[::-1]
    ys = np.interp(levels, x, y)  # the run starts at x = 1.0, above every level
    expected = integrate.trapezoid(ys, levels) / (levels[-1] - levels[0])
    assert auf.auf.iloc[0] == pytest.approx(expected)
    with pytest.raises(ValueError, match="increasing"):
        area_under_frontier(df, x_key="align", y_key="mem", levels=[0.5, 0.25])


def test_summarize_auf_against_scipy() -> None:
    auf = pd.DataFrame({
        "arm": ["base"] * 4 + ["new"] * 4,
        "seed": [0, 1, 2, 3, 3, 2, 1, 0],  # pairing must follow the seed, not the row order
        "auf": [0.30, 0.42, 0.35, 0.50, 0.41, 0.30, 0.33, 0.21],
        "n_levels": 5,
        "n_never": [0, 0, 0, 0, 2, 0, 1, 0],
        "n_at_first": 0,
    })
    out = summarize_auf(auf, baseline="base").set_index("arm")
    assert tuple(out.reset_index().columns) == AUF_SUMMARY_COLUMNS
    base, new = np.array([0.30, 0.42, 0.35, 0.50]), np.array([0.21, 0.33, 0.30, 0.41])
    lo, hi = stats.t.interval(0.95, 3, loc=new.mean(), scale=stats.sem(new))
    assert (out.loc["new", "mean"], out.loc["new", "low"], out.loc["new", "high"]) == \
        pytest.approx((new.mean(), lo, hi))
    assert out.loc["new", "se"] == pytest.approx(stats.sem(new))
    assert out.loc["new", "runs_with_never"] == 2
    ci = stats.ttest_rel(new, base).confidence_interval(0.95)
    assert out.loc["new", "diff_mean"] == pytest.approx(np.mean(new - base))
    assert (out.loc["new", "diff_low"], out.loc["new", "diff_high"]) == \
        pytest.approx((ci.low, ci.high))
    assert out.loc["new", "diff_n"] == 4
    assert out.loc["base", "diff_n"] == 0 and math.isnan(out.loc["base", "diff_mean"])


def test_level_grid() -> None:
    assert level_grid(0.1, 0.5, 5) == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    with pytest.raises(ValueError):
        level_grid(0.5, 0.1, 5)
    with pytest.raises(ValueError):
        level_grid(0.1, 0.5, 1)


def test_data_levels_are_quantiles_of_the_pooled_values() -> None:
    df = _pairing_frame()
    got = data_levels(df["align"], quantiles=(0.1, 0.5, 0.9))
    assert got == pytest.approx(np.quantile(df["align"], [0.1, 0.5, 0.9]))
    assert data_levels([1.0, 1.0, 1.0]).tolist() == [1.0]  # distinct levels only
    assert data_levels([3.0, np.nan, 1.0], quantiles=(0, 1)).tolist() == [1.0, 3.0]
    with pytest.raises(ValueError):
        data_levels([np.nan])
    with pytest.raises(ValueError):
        data_levels([1.0, 2.0], quantiles=(1.5,))


def test_common_level_is_the_worst_runs_best_alignment() -> None:
    df = _pairing_frame()
    # base runs reach 0.30 − 0.01 s (worst: seed 0, 0.30); new seed 3 only reaches 0.40
    assert common_level(df, x_key="align", arms=["base"]) == pytest.approx(0.30)
    assert common_level(df, x_key="align", arms=["base", "new"]) == pytest.approx(0.40)
    with pytest.raises(ValueError, match="no rows"):
        common_level(df, x_key="align", arms=["nope"])


def test_paired_auf_over_common_levels_against_scipy() -> None:
    df = _pairing_frame()
    levels = [0.35, 0.5, 0.6]
    cross = equal_alignment(df, x_key="align", y_key="mem", levels=levels)
    out = paired_auf(cross, baseline="base")
    assert tuple(out.columns) == PAIRED_AUF_COLUMNS
    row = out.iloc[0]
    # new seed 3 never reaches 0.35, so the area runs over 0.5 and 0.6 only (the trapezoid mean
    # of two levels is their mean); that never-reached level is counted, not charged as 1
    assert (row["level_lo"], row["level_hi"], row["n_levels"]) == (0.5, 0.6, 2)
    assert (row["arm_never"], row["base_never"]) == (1, 0)
    diff = []
    for s in SEEDS:
        new, base = df[(df.arm == "new") & (df.seed == s)], df[(df.arm == "base") & (df.seed == s)]
        diff.append(np.mean([_oracle_y(new, lv) - _oracle_y(base, lv) for lv in (0.5, 0.6)]))
    ci = stats.ttest_1samp(diff, 0).confidence_interval(0.95)
    assert (row["n"], row["mean"]) == (5, pytest.approx(np.mean(diff)))
    assert (row["low"], row["high"]) == pytest.approx((ci.low, ci.high))
    assert row["p"] == pytest.approx(stats.ttest_1samp(diff, 0).pvalue)
    # a single common level: the difference there
    one = paired_auf(equal_alignment(df, x_key="align", y_key="mem", levels=[0.35, 0.5]),
                     baseline="base").iloc[0]
    assert one["n_levels"] == 1 and one["level_lo"] == one["level_hi"] == 0.5


# ----------------------------------------------------------------------------- plot
def test_plot_frontier_writes_a_png(tmp_path) -> None:
    path = plot_frontier(_pairing_frame(), x_key="align", y_key="mem", path=tmp_path / "f.png",
                         levels=LEVELS, x_label="MMD² vs holdout", y_label="memorized fraction",
                         floor_x=0.2, floor_y=0.01)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 1024
