"""The guard inside the training loop: evaluate the EMA model at checkpoints, decide, move the
timestep sampler (with a controller), and write ``guard.json`` and ``guard.png``.

What one evaluation measures (`GuardMonitor.evaluate`), all in data units:

- memorization: ``n_samples`` records drawn from the EMA weights (fixed seed) against the records
  the run trains on, beside the held-out real records against the same training records (the
  floor): Fisher's exact test on the nearest-neighbour 1/3 rule counts and the Mann-Whitney test on
  the distances to the closest training record (`sigdiff.guard.decision`);
- alignment: the gate score of those samples against the held-out records
  (`sigdiff.metrics.gate`, references built once per run by `sigdiff.metrics.evaluate.prepare`:
  the held-out records are split in two halves, one the alignment target, one the real floor;
  with a ``--holdout`` store and ``train_subset``, the store's unused records are the floor and
  the whole holdout is the target).

The evaluation draws from its own generator and restores the global RNG, so a guarded run
trains on exactly the batches an unguarded one would (until a controller moves the sampler).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sigdiff._utils import atomic_write_text
from sigdiff.guard.config import GuardConfigError
from sigdiff.guard.decision import Decision, GuardEval, controller_move, decide, fraction_test
from sigdiff.timesteps import TimestepSamplerConfig

if TYPE_CHECKING:
    from sigdiff.config import TrainConfig
    from sigdiff.denoiser import Denoiser

__all__ = ["GUARD_FILE", "GUARD_PLOT", "GuardMonitor", "GuardStep", "guard_rows", "read_guard"]

GUARD_FILE = "guard.json"
GUARD_PLOT = "guard.png"
_SPLIT_STREAM = 4243  # seeds the guard's own holdout split apart from every other draw


def guard_rows(cfg: TrainConfig, rows: np.ndarray, n_store: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(rows the run trains on, store rows the guard holds out, or None when it reads
    ``guard.holdout``). With ``train_subset`` the rows outside the subset are held out (real
    records the run never sees); otherwise ``holdout_fraction`` of the rows, drawn by
    ``split_seed``."""
    g = cfg.guard
    if g is None or g.holdout is not None:
        return rows, None
    if len(rows) < n_store:
        return rows, np.setdiff1d(np.arange(n_store), rows)
    n_hold = round(g.holdout_fraction * len(rows))
    if n_hold < 2 or len(rows) - n_hold < 2:
        raise GuardConfigError(
            f"{cfg.data}: the guard cannot hold out {g.holdout_fraction:g} of {len(rows)} records "
            "and keep 2 on each side; pass --holdout STORE (real records the run never trains on) "
            "or use more data")
    rng = np.random.default_rng([g.split_seed, _SPLIT_STREAM])
    held = np.sort(rng.choice(len(rows), n_hold, replace=False))
    return np.delete(rows, held), rows[held]


@dataclass(frozen=True)
class GuardStep:
    """What the training loop does after an evaluation: stop, and/or train on from here with
    ``timesteps`` (a controller move; None: unchanged)."""

    evaluation: GuardEval
    decision: Decision
    timesteps: TimestepSamplerConfig | None


class GuardMonitor:
    """One run's guard: the real data, the evaluation context, the trace, the controller's moves."""

    def __init__(self, cfg: TrainConfig, train: np.ndarray, holdout: np.ndarray, *,
                 holdout_source: Mapping[str, Any], sampling_rate: float, signal_kind: str,
                 pool: np.ndarray | None = None) -> None:
        from sigdiff.metrics.evaluate import EvalConfig, prepare
        from sigdiff.metrics.memorization import neighbor_ratio

        assert cfg.guard is not None
        self.cfg, self.g = cfg, cfg.guard
        if len(holdout) < 4:
            raise GuardConfigError(f"the guard needs at least 4 held-out records (half of them "
                                   f"are the alignment target, half the real floor); got "
                                   f"{len(holdout)}")
        self.train, self.holdout = train, holdout
        self.holdout_source = dict(holdout_source)
        # with a pool (real records neither trained on nor held out) the whole holdout is the
        # alignment target and the gate's real floor comes from the pool; else the two halves
        self.ctx = prepare(train, holdout, n=self.g.n_samples, sampling_rate=sampling_rate,
                           pool=pool, config=EvalConfig(extras=()),
                           names=("training records", "held-out records"),
                           signal_kind=signal_kind)
        self.floor = neighbor_ratio(holdout, train, name="held-out records")
        self.trace: list[GuardEval] = []
        self.moves: list[dict[str, Any]] = []
        self.timesteps = cfg.timesteps

    # --- when ----------------------------------------------------------------------------
    def due(self, step: int) -> bool:
        """Evaluate at every ``every``-th checkpoint and at the last step."""
        return step % (self.cfg.checkpoint_every * self.g.every) == 0 or step == self.cfg.steps

    # --- measuring -----------------------------------------------------------------------
    def evaluate(self, step: int, denoiser: Denoiser, meta: Mapping[str, Any]) -> GuardEval:
        """Draw the guard's samples from ``denoiser`` (the EMA weights) and measure them."""
        from sigdiff.checkpoint import LoadedCheckpoint
        from sigdiff.generate import LoadedModel, generate
        from sigdiff.metrics.gate import gate_scores, measure_gate
        from sigdiff.metrics.memorization import dcr_comparison, neighbor_ratio
        from sigdiff.metrics.references import take

        was_training = denoiser.training
        model = LoadedModel(denoiser.eval(), self.cfg, LoadedCheckpoint(
            Path("."), step, {}, dict(meta), {}, {}, None))
        try:
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                x = generate(model, n=self.g.n_samples, seed=self.g.sample_seed,
                             sampler=self.g.sampler, steps=self.g.sampler_steps, grid=self.g.grid,
                             progress=False)
        finally:
            denoiser.train(was_training)
        nr = neighbor_ratio(x, self.train)
        dcr = dcr_comparison(nr.d1, self.floor.d1)
        k, k_floor = int(nr.memorized.sum()), int(self.floor.memorized.sum())
        ctx = self.ctx
        compared = take(x, ctx.n, np.random.default_rng([ctx.config.seed, 1]))
        measure = measure_gate(ctx.target, compared, metrics=ctx.meta["gate_metrics"],
                               sampling_rate=ctx.sampling_rate, draws=ctx.config.gate.draws,
                               seed=ctx.config.seed)
        gate = gate_scores(measure, ctx.gate_references, spec=ctx.config.gate, n=len(compared))
        score = float(gate["score"])  # type: ignore[arg-type]
        return GuardEval(
            step=step, n_generated=len(x), n_floor=len(self.holdout), memorized_generated=k,
            memorized_floor=k_floor,
            p_fraction=fraction_test(k, len(x), k_floor, len(self.holdout)),
            p_dcr=float(dcr["p_closer"]), dcr_median_ratio=float(dcr["median_ratio"]),
            gate_score=score, gate_se=float(gate["se"]),  # type: ignore[arg-type]
            gate_passes=(score <= self.g.level) if math.isfinite(score) else None,
            alpha=self.g.alpha)

    # --- deciding and acting ---------------------------------------------------------------
    def observe(self, step: int, denoiser: Denoiser, meta: Mapping[str, Any]) -> GuardStep:
        """Evaluate at ``step``, record it, move the sampler if the controller should, decide."""
        ev = self.evaluate(step, denoiser, meta)
        return self.record(ev)

    def record(self, ev: GuardEval) -> GuardStep:
        """Add an evaluation to the trace and act on it (split from `observe` for tests)."""
        self.trace.append(ev)
        moved = self._move(ev) if ev.copying else None
        return GuardStep(ev, self.decision(), moved)

    def _move(self, ev: GuardEval) -> TimestepSamplerConfig | None:
        if self.g.controller is None:
            return None
        move = controller_move(self.timesteps, self.g.controller)
        if move is None:
            return None  # at the limit: no move left, the guard's own rule applies
        self.timesteps, before, after = move
        self.moves.append({"step": ev.step, "param": self.g.controller.param, "from": before,
                           "to": after, "timesteps": _ts_dict(self.timesteps)})
        return self.timesteps

    def decision(self) -> Decision:
        last = self.moves[-1]["step"] if self.moves else None
        return decide(self.trace, patience=self.g.patience, mode=self.g.mode, level=self.g.level,
                      last_move_step=last)

    def keep_steps(self) -> set[int]:
        """Checkpoints the rotation must keep: the guard's current choice."""
        chosen = self.decision().chosen_step
        return set() if chosen is None else {chosen}

    # --- state (checkpoints) and report (guard.json, guard.png) --------------------------
    def state_json(self) -> str:
        """The trace and the moves as JSON: stored in every checkpoint's training state."""
        return json.dumps({"trace": [e.to_dict() for e in self.trace], "moves": self.moves})

    def load_state(self, text: str | None, step: int) -> None:
        """Restore the trace and the moves up to ``step`` (a resumed run's checkpoint)."""
        if not text:
            return
        state = json.loads(text)
        self.trace = [GuardEval.from_dict(e) for e in state["trace"] if e["step"] <= step]
        self.moves = [m for m in state["moves"] if m["step"] <= step]
        if self.moves:
            self.timesteps = TimestepSamplerConfig(**self.moves[-1]["timesteps"])

    def report(self) -> dict[str, Any]:
        from sigdiff.config import config_to_dict

        return {"config": config_to_dict(self.cfg)["guard"],
                "initial_timesteps": _ts_dict(self.cfg.timesteps),
                "holdout": self.holdout_source, "n_train": len(self.train),
                "n_holdout": len(self.holdout),
                "floor_memorized_fraction": float(self.floor.fraction),
                "evaluations": [e.to_dict() for e in self.trace], "moves": self.moves,
                "decision": self.decision().to_dict()}

    def write(self, run_dir: Path) -> None:
        """``guard.json`` (atomic) and ``guard.png``."""
        report = self.report()
        atomic_write_text(run_dir / GUARD_FILE, json.dumps(report, indent=2))
        plot_guard(report, run_dir / GUARD_PLOT)


def _ts_dict(ts: TimestepSamplerConfig) -> dict[str, Any]:
    return dataclasses.asdict(ts)


def read_guard(run_dir: str | Path) -> dict[str, Any] | None:
    """A run's guard.json, or None when the run was not guarded."""
    path = Path(run_dir) / GUARD_FILE
    if not path.is_file():
        return None
    try:
        out: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise GuardConfigError(f"{path}: unreadable guard record ({exc})") from exc
    return out


def plot_guard(report: Mapping[str, Any], path: Path) -> None:
    """Memorization (generated with its 95% Wilson band, and the held-out floor) and the gate
    score against step, the chosen checkpoint and the controller's moves marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evs = report["evaluations"]
    if not evs:
        return
    steps = np.array([e["step"] for e in evs])
    frac = np.array([e["fraction_generated"] for e in evs])
    lo, hi = np.array([e["fraction_generated_ci"] for e in evs]).T
    floor = np.array([e["fraction_floor"] for e in evs])
    gate = np.array([e["gate_score"] for e in evs])
    gse = np.array([e["gate_se"] for e in evs])
    copy = np.array([e["copying"] for e in evs])
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    ax1.fill_between(steps, lo, hi, alpha=0.25, color="C3", label="generated, 95% interval")
    ax1.plot(steps, frac, "o-", color="C3", label="generated")
    ax1.plot(steps[copy], frac[copy], "x", color="k", ms=9, label="copying (test rejects)")
    ax1.plot(steps, floor, "--", color="C0", label="held-out real records (floor)")
    ax1.set_ylabel("memorized fraction (1/3 rule)")
    ax1.legend(fontsize=8)
    ax2.errorbar(steps, gate, yerr=1.96 * gse, fmt="o-", color="C2", capsize=2,
                 label="gate score ± 1.96 SE")
    ax2.axhline(report["config"]["level"], color="k", ls=":", label="gate level")
    ax2.set_ylabel("alignment gate score (0 = real)")
    ax2.set_xlabel("training step")
    ax2.legend(fontsize=8)
    chosen = report["decision"]["chosen_step"]
    for ax in (ax1, ax2):
        if chosen is not None:
            ax.axvline(chosen, color="C1", lw=2, alpha=0.7)
        for m in report["moves"]:
            ax.axvline(m["step"], color="C4", ls="--", lw=1)
    title = f"guard: chosen step {chosen}" if chosen is not None else "guard: no clean step"
    if report["moves"]:
        title += f" ({len(report['moves'])} sampler moves, dashed)"
    ax1.set_title(title, fontsize=10)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def choose_checkpoint(run: str | Path, *, latest: bool = False) -> tuple[Path, str | None]:
    """The checkpoint `sigdiff sample --run` draws from, and a note saying why.

    A guarded run directory gives the guard's chosen checkpoint (unless ``latest``); a run
    without guard.json, or a checkpoint folder, gives what `find_checkpoint` gives."""
    from sigdiff.checkpoint import find_checkpoint, list_checkpoints

    run = Path(run)
    record = read_guard(run) if run.is_dir() else None
    if record is None or latest:
        return find_checkpoint(run), None
    chosen = record["decision"]["chosen_step"]
    last = find_checkpoint(run)
    if chosen is None:
        return last, (f"the guard found no checkpoint free of copying ({GUARD_FILE}); sampling "
                      f"from the latest, {last.name}: expect near-copies of the training records")
    found = [p for p in list_checkpoints(run) if p.name == f"step_{chosen:08d}"]
    if not found:
        raise GuardConfigError(f"{run / GUARD_FILE} chose step {chosen}, but {run}/checkpoints "
                               f"has no step_{chosen:08d}; pass --latest to sample from "
                               f"{last.name}")
    return found[0], (f"using the guard's choice, step {chosen} ({GUARD_FILE}: "
                      f"{record['decision']['reason']}); --latest samples from {last.name}")
