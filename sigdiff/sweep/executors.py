"""Where a sweep's cells run: local processes, Ray tasks, or Slurm jobs through submitit.

An executor only decides *where* `run_cell` runs. The contract is the sweep folder: every cell
writes its rows, samples and `done.json` under ``OUT/cells/<id>/`` itself, so a cell finished by
any executor is skipped on a rerun with any other, and the results table is rebuilt from those
files in grid order whatever ran them. Remote executors therefore need ``OUT`` (and the sweep's
data) on a filesystem every worker sees: a cluster's shared filesystem.

- ``local``: ``jobs`` processes on this machine (the default; one cell at a time with ``jobs=1``).
- ``ray``: one Ray task per cell asking for ``cpus_per_cell`` CPUs and ``gpus_per_cell`` GPUs;
  ``ray.init()`` starts an embedded instance when no address is given (or ``RAY_ADDRESS`` is
  unset), ``ray_address`` joins a running cluster (``"auto"``, ``"ray://head:10001"``).
- ``slurm``: one Slurm job per cell, submitted as one job array by submitit with the partition,
  time limit, CPUs, GPUs and memory of the spec; job logs under ``OUT/slurm/``. ``slurm_cluster =
  "local"`` runs the jobs as local subprocesses through submitit's LocalExecutor (tests, dry runs).

Ray and submitit are optional extras: ``pip install 'sigdiff[ray]'`` / ``'sigdiff[slurm]'``.
"""

from __future__ import annotations

import importlib
import os
import platform
import re
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sigdiff.sweep.cell import _read_rows, run_cell
from sigdiff.sweep.config import Cell, ExecutorSpec, SweepConfig, SweepError

__all__ = ["check_executor", "run_cells"]

#: seconds between two looks at a remote sweep's cells (progress and finished jobs)
POLL_SECONDS = 2.0


def _require(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SweepError(f"--executor {extra} needs the {module!r} package, which is not "
                         f"installed: pip install 'sigdiff[{extra}]'") from None


def _check_devices(spec: ExecutorSpec, cells: Sequence[Cell]) -> None:
    if spec.gpus_per_cell == 0:
        return
    on_cpu = [c.id for c in cells if c.config.device == "cpu"]
    if on_cpu:
        raise SweepError(f"gpus_per_cell = {spec.gpus_per_cell}, but cells {on_cpu[:3]} train "
                         "on device 'cpu': set device = \"cuda\" (or \"auto\") in the sweep's "
                         "[train] table, or ask for no GPUs")


def check_executor(spec: ExecutorSpec, cells: Sequence[Cell]) -> None:
    """Refuse, before anything is written, an executor that cannot run these cells here."""
    _check_devices(spec, cells)
    if spec.kind == "ray":
        _require("ray", "ray")
    elif spec.kind == "slurm":
        _require("submitit", "slurm")
        if spec.slurm_cluster in (None, "slurm") and shutil.which("sbatch") is None:
            raise SweepError("--executor slurm: no Slurm on this machine (sbatch not found); run "
                             "the sweep from the cluster's login node, or use --executor local "
                             "or ray")


OnCell = Callable[[Cell], None]  # called in the driver when a cell has finished
OnRows = Callable[[int], None]  # called with the number of newly written checkpoint rows


def run_cells(spec: ExecutorSpec, sweep: SweepConfig, out_dir: Path, pending: Sequence[Cell],
              *, on_cell: OnCell, on_rows: OnRows) -> None:
    """Run `pending` cells on the spec's executor (checked by `check_executor`); `on_cell` after
    each finished cell. Cells that fail do not stop the others; the first failure is raised once
    every cell has ended."""
    if not pending:
        return
    if spec.kind == "local":
        _run_local(spec, sweep, out_dir, pending, on_cell, on_rows)
    elif spec.kind == "ray":
        _run_ray(spec, sweep, out_dir, pending, on_cell, on_rows)
    else:
        _run_slurm(spec, sweep, out_dir, pending, on_cell, on_rows)


# --- local ------------------------------------------------------------------------------------


def _run_cell_worker(cell: Cell, sweep: SweepConfig, out_dir: str, threads: int,
                     queue: Any) -> str:
    run_cell(cell, sweep, out_dir, threads=threads, on_event=lambda c, s: queue.put(1))
    return cell.id


def _run_local(spec: ExecutorSpec, sweep: SweepConfig, out_dir: Path, pending: Sequence[Cell],
               on_cell: OnCell, on_rows: OnRows) -> None:
    if spec.jobs <= 1:
        failed: list[Exception] = []
        for cell in pending:
            try:
                run_cell(cell, sweep, out_dir, threads=spec.cpus_per_cell,
                         on_event=lambda c, s: on_rows(1))
            except Exception as err:  # the others still run; raised below (Ctrl-C is not caught)
                failed.append(err)
            else:
                on_cell(cell)
        if failed:
            raise failed[0]
        return
    import multiprocessing as mp
    import queue as queue_mod
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")  # no forked torch thread pools
    errors: list[BaseException] = []
    with ctx.Manager() as manager, ProcessPoolExecutor(spec.jobs, mp_context=ctx) as pool:
        q = manager.Queue()
        futures: dict[Future[str], Cell] = {
            pool.submit(_run_cell_worker, c, sweep, str(out_dir), spec.cpus_per_cell, q): c
            for c in pending}
        remaining = set(futures)
        while remaining:
            finished, remaining = wait(remaining, timeout=1.0, return_when=FIRST_COMPLETED)
            while True:
                try:
                    on_rows(q.get_nowait())
                except queue_mod.Empty:
                    break
            for fut in finished:
                failure = fut.exception()
                if failure is not None:
                    errors.append(failure)
                else:
                    on_cell(futures[fut])
    if errors:
        raise errors[0]


# --- remote: shared progress ------------------------------------------------------------------


class _RowCounter:
    """Progress of remote cells, read from the rows they write to the shared sweep folder."""

    def __init__(self, out_dir: Path, cells: Sequence[Cell], on_rows: OnRows) -> None:
        self.paths = [out_dir / "cells" / c.id / "rows.jsonl" for c in cells]
        self.on_rows = on_rows
        self.seen = self._count()

    def _count(self) -> int:
        return sum(len(_read_rows(p)) for p in self.paths)

    def poll(self) -> None:
        now = self._count()
        if now > self.seen:
            self.on_rows(now - self.seen)
            self.seen = now


def _remote_cell(cell: Cell, sweep: SweepConfig, out_dir: str, threads: int, cwd: str) -> str:
    """A cell on a remote worker, run from the driver's working directory (the sweep's relative
    data paths are relative to it), which must be on a filesystem the worker shares."""
    if not os.path.isdir(out_dir):
        raise SweepError(f"cell {cell.id}: this worker ({platform.node()}) cannot see the sweep "
                         f"folder {out_dir}; remote executors need the sweep folder and its data "
                         "on a filesystem every worker mounts at the same path")
    os.chdir(cwd)
    run_cell(cell, sweep, out_dir, threads=threads)
    return cell.id


# --- ray --------------------------------------------------------------------------------------


def _run_ray(spec: ExecutorSpec, sweep: SweepConfig, out_dir: Path, pending: Sequence[Cell],
             on_cell: OnCell, on_rows: OnRows) -> None:
    ray = _require("ray", "ray")
    started = False
    if not ray.is_initialized():
        try:
            ray.init(address=spec.ray_address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as err:
            raise SweepError(f"could not start or join Ray (address {spec.ray_address!r}): "
                             f"{err}") from None
        started = True
    try:
        free = ray.cluster_resources()
        for name, want in (("CPU", spec.cpus_per_cell), ("GPU", spec.gpus_per_cell)):
            if want > free.get(name, 0):
                raise SweepError(f"each cell asks Ray for {want} {name}(s), but the cluster has "
                                 f"{free.get(name, 0):g}: lower --{name.lower()}s-per-cell or "
                                 "add nodes")
        task = ray.remote(_remote_cell).options(num_cpus=spec.cpus_per_cell,
                                             num_gpus=spec.gpus_per_cell, max_retries=0)
        refs = {task.remote(c, sweep, str(out_dir.resolve()), spec.cpus_per_cell, os.getcwd()): c
                for c in pending}
        counter = _RowCounter(out_dir, pending, on_rows)
        errors: list[BaseException] = []
        remaining = list(refs)
        while remaining:
            done, remaining = ray.wait(remaining, num_returns=1, timeout=POLL_SECONDS)
            counter.poll()
            for ref in done:
                try:
                    ray.get(ref)
                except ray.exceptions.RayTaskError as err:  # the cell's own exception, re-raised
                    errors.append(err.cause if isinstance(err.cause, BaseException) else err)
                else:
                    on_cell(refs[ref])
        if errors:
            raise errors[0]
    finally:
        if started:
            ray.shutdown()


# --- slurm (submitit) -------------------------------------------------------------------------


def _run_slurm(spec: ExecutorSpec, sweep: SweepConfig, out_dir: Path, pending: Sequence[Cell],
               on_cell: OnCell, on_rows: OnRows) -> None:
    submitit = _require("submitit", "slurm")
    executor = submitit.AutoExecutor(folder=out_dir / "slurm" / "%j", cluster=spec.slurm_cluster)
    params: dict[str, Any] = {"timeout_min": spec.time_min, "cpus_per_task": spec.cpus_per_cell,
                              "gpus_per_node": spec.gpus_per_cell, "nodes": 1,
                              "tasks_per_node": 1, "name": f"sigdiff-{_job_name(sweep.name)}"}
    if spec.mem_gb is not None:
        params["mem_gb"] = spec.mem_gb
    if executor.cluster == "slurm":
        params.update({f"slurm_{k}": v for k, v in (("partition", spec.partition),
                                                    ("account", spec.account)) if v})
        if spec.slurm_args:
            params["slurm_additional_parameters"] = dict(spec.slurm_args)
    executor.update_parameters(**params)
    with executor.batch():  # one job array
        jobs = [executor.submit(_remote_cell, c, sweep, str(out_dir.resolve()),
                                spec.cpus_per_cell, os.getcwd()) for c in pending]
    counter = _RowCounter(out_dir, pending, on_rows)
    errors: list[BaseException] = []
    waiting = dict(zip(jobs, pending))
    while waiting:
        time.sleep(POLL_SECONDS)
        counter.poll()
        for job in [j for j in waiting if j.done()]:
            cell = waiting.pop(job)
            try:
                job.result()
            except Exception as err:  # the cell's own error, or submitit's FailedJobError with
                # the job's whole traceback: its last error line, the cell and the log
                errors.append(SweepError(f"cell {cell.id} failed in Slurm job {job.job_id}: "
                                         f"{_last_error(str(err))} (full log: "
                                         f"{job.paths.stderr})"))
            else:
                on_cell(cell)
    counter.poll()
    if errors:
        raise errors[0]


def _last_error(text: str) -> str:
    """The last `Type: message` line of a remote traceback, without the module path."""
    found = re.findall(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception|Interrupt)): (.*)$", text,
                       flags=re.MULTILINE)
    if not found:
        return text.strip().splitlines()[-1] if text.strip() else "no message"
    kind, message = found[-1]
    return f"{kind}: {message}"


def _job_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)[:40]
