"""The near-copy filter at sampling (`sigdiff sample --reject-copies`).

A generated record is a **near-copy** when its distance to the closest training record (DCR,
Euclidean in data units over all channels and samples) is below the ``q``-quantile of the same
distance for held-out real records — records the model never saw. Near-copies are dropped and
redrawn (round r ≥ 1 draws with a seed derived from (seed, r); round 0 uses ``seed`` itself, so
with nothing rejected the output equals plain sampling; later rounds draw what is missing at the
acceptance rate seen so far, plus 20%) until ``n`` records are kept or
``max_rounds`` rounds are spent, which is an error naming what was reached.

What it promises: no emitted record lies closer to a training record than the threshold, which
is stated in the output's provenance with the quantile and the number of held-out records it came
from. What it does not: it is not differential privacy (the model, and so every kept record, still
depends on each training record; a record just outside the threshold can still reveal a
training record to someone who knows it); it says nothing of closeness in any other distance, of
records outside the training set, or of membership inference; and by construction it removes the
fraction ``q`` of what fresh real data would look like, so expect a small loss of alignment,
which is measured and reported (MMD² to the held-out records before and after).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from sigdiff.metrics._checks import flatten
from sigdiff.metrics.neighbors import knn

__all__ = ["CopyFilterError", "RejectReport", "copy_threshold", "dcr", "draw_without_copies"]

DEFAULT_QUANTILE = 0.05
DEFAULT_ROUNDS = 10


class CopyFilterError(ValueError):
    """The filter cannot reach the requested number of records, or its inputs are unusable."""


def dcr(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Distance of each record of ``x`` to its closest training record (data units)."""
    return knn(flatten(x), flatten(train), k=1).distances[:, 0]


def copy_threshold(train: np.ndarray, holdout: np.ndarray, quantile: float) -> float:
    """The ``quantile`` of held-out real records' DCR to the training records."""
    if not 0 < quantile < 1:
        raise CopyFilterError(f"--dcr-quantile must lie in (0, 1), got {quantile!r}")
    if len(holdout) < 10:
        raise CopyFilterError(f"the copy threshold needs at least 10 held-out real records to "
                              f"estimate a quantile; got {len(holdout)}: pass --holdout with more")
    return float(np.quantile(dcr(holdout, train), quantile))


@dataclass(frozen=True)
class RejectReport:
    """What the filter did: the threshold and where it came from, what it rejected, and the
    alignment (MMD² to the held-out records) of the first round's raw draw and of the output."""

    threshold: float
    quantile: float
    n_holdout: int
    n: int
    drawn: int
    rejected: int
    rounds: int
    min_dcr_kept: float
    mmd2_unfiltered: float
    mmd2_filtered: float

    @property
    def rejected_fraction(self) -> float:
        return self.rejected / self.drawn

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rejected_fraction": self.rejected_fraction}

    def summary(self) -> str:
        return (f"rejected {self.rejected} of {self.drawn} drawn records "
                f"({100 * self.rejected_fraction:.1f}%) closer to a training record than "
                f"{self.threshold:.4g} (the {self.quantile:g}-quantile of {self.n_holdout} "
                f"held-out records' DCR) in {self.rounds} round(s); alignment MMD² to the "
                f"held-out records {self.mmd2_unfiltered:.4g} unfiltered -> "
                f"{self.mmd2_filtered:.4g} filtered")


def round_seed(seed: int, r: int) -> int:
    """Round 0 draws with ``seed``; later rounds with a seed derived from (seed, r)."""
    if r == 0:
        return seed
    return int(np.random.SeedSequence([seed, r, 7331]).generate_state(1, dtype=np.uint64)[0]
               >> np.uint64(1))


def draw_without_copies(draw: Callable[[int, int], np.ndarray], *, n: int, seed: int,
                        train: np.ndarray, holdout: np.ndarray,
                        quantile: float = DEFAULT_QUANTILE, max_rounds: int = DEFAULT_ROUNDS,
                        ) -> tuple[np.ndarray, RejectReport]:
    """``n`` records from ``draw(n, seed)`` none of which lies closer to a training record than
    the threshold (module docstring); raises `CopyFilterError` after ``max_rounds`` rounds."""
    from sigdiff.metrics.alignment import mmd2

    if max_rounds < 1:
        raise CopyFilterError(f"max_rounds must be >= 1, got {max_rounds}")
    threshold = copy_threshold(train, holdout, quantile)
    kept: list[np.ndarray] = []
    n_kept = drawn = rejected = 0
    first: np.ndarray | None = None
    for r in range(max_rounds):
        need = n - n_kept  # later rounds draw what is missing at the rate seen so far, +20%
        m = n if r == 0 else min(n, math.ceil(1.2 * need * drawn / max(n_kept, 1)))
        x = draw(max(m, need), round_seed(seed, r))
        first = x if first is None else first
        keep = dcr(x, train) >= threshold
        rejected += int((~keep).sum())
        kept.append(x[keep][: n - n_kept])
        n_kept += len(kept[-1])
        drawn += len(x)
        if n_kept == n:
            break
    else:
        rate = n_kept / drawn
        raise CopyFilterError(
            f"only {n_kept} of {n} records were at least {threshold:.4g} from every training "
            f"record after {max_rounds} rounds ({drawn} drawn, {100 * rate:.1f}% kept): this "
            "model copies its training data too often for the filter. Sample from an earlier "
            "checkpoint (train with --guard), lower --dcr-quantile, or raise --max-rounds")
    out = np.concatenate(kept)
    assert first is not None
    report = RejectReport(
        threshold=threshold, quantile=quantile, n_holdout=len(holdout), n=n, drawn=drawn,
        rejected=rejected, rounds=r + 1,
        min_dcr_kept=float(dcr(out, train).min()),
        mmd2_unfiltered=float(mmd2(holdout, first, n_permutations=0, seed=0).mmd2),
        mmd2_filtered=float(mmd2(holdout, out, n_permutations=0, seed=0).mmd2))
    return out, report



def real_records(meta: dict[str, Any], run_dir: Any, holdout: str | None
                 ) -> tuple[np.ndarray, np.ndarray, str]:
    """(training records, held-out real records, where the held-out ones come from) of a run:
    ``holdout`` if given, else the guard's held-out records (guard.json), else the training
    store's records outside the run's ``train_subset``."""
    from pathlib import Path

    from sigdiff.data.store import StoreError, open_store
    from sigdiff.guard.monitor import read_guard

    data = meta.get("data")
    try:
        store = open_store(str(data))
    except (StoreError, FileNotFoundError, OSError) as exc:
        raise CopyFilterError(f"--reject-copies compares with the training records, but the "
                              f"run's training store {data!r} cannot be read ({exc})") from None
    rows = meta.get("train_records")
    rows = np.arange(store.n_samples) if rows is None else np.asarray(rows, dtype=np.int64)
    train = store.read(rows)
    if holdout is not None:
        held = open_store(holdout)
        if (held.n_channels, held.spatial_shape) != (store.n_channels, store.spatial_shape):
            raise CopyFilterError(f"--holdout {holdout}: records of shape "
                                  f"{(held.n_channels, *held.spatial_shape)} do not match the "
                                  f"training records' {(store.n_channels, *store.spatial_shape)}")
        return train, held.read(np.arange(held.n_samples)), f"--holdout {holdout}"
    record = read_guard(Path(run_dir)) if run_dir is not None else None
    if record is not None:
        src = record["holdout"]
        g = open_store(src["store"])
        idx = np.arange(g.n_samples) if src["rows"] is None else np.asarray(src["rows"])
        return train, g.read(idx), f"the guard's held-out records ({src['how']})"
    unused = np.setdiff1d(np.arange(store.n_samples), rows)
    if len(unused):
        return train, store.read(unused), "the training store's records outside train_subset"
    raise CopyFilterError("--reject-copies needs held-out real records (never trained on) to "
                          "set its threshold: pass --holdout STORE")
