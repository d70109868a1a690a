"""`sigdiff sweep` and `sigdiff report`: parse, validate, print the plan, call one library function
(sigdiff.sweep.run_sweep / sigdiff.report.write_report)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from sigdiff.errors import USER_ERRORS

__all__ = ["claims_cmd", "report_cmd", "sweep_cmd"]



@click.command("sweep")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="sweep directory: data/, cells/<id>/, results.csv, results.jsonl")
@click.option("--executor", type=click.Choice(["local", "ray", "slurm"]), default=None,
              help="where cells run: local processes, Ray tasks or Slurm jobs (default: the "
                   "TOML's [executor] kind, else local); finished cells are skipped on any")
@click.option("--jobs", default=None, type=click.IntRange(min=1),
              help="local: cells trained in parallel processes  [default: 1]")
@click.option("--cpus-per-cell", default=None, type=click.IntRange(min=1),
              help="CPUs (torch threads) per cell, asked of Ray / Slurm  [default: 1]")
@click.option("--gpus-per-cell", default=None, type=click.IntRange(min=0),
              help="GPUs per cell, asked of Ray / Slurm (cells need device = cuda or auto)")
@click.option("--ray-address", default=None,
              help="ray: join this cluster ('auto', 'ray://head:10001'); default: RAY_ADDRESS, "
                   "else an embedded local instance")
@click.option("--partition", default=None, help="slurm: partition")
@click.option("--time-min", default=None, type=click.IntRange(min=1),
              help="slurm: time limit per cell, minutes  [default: 60]")
@click.option("--mem-gb", default=None, type=click.FloatRange(min=0, min_open=True),
              help="slurm: memory per cell, GB")
@click.option("--account", default=None, help="slurm: account")
@click.option("--slurm-cluster", default=None, hidden=True,
              help="submitit cluster: 'local' runs the Slurm path as local subprocesses (tests)")
@click.option("--report/--no-report", "with_report", default=True, show_default=True,
              help="write OUT/report/ (sigdiff report) when the sweep ends")
@click.option("--dry-run", is_flag=True, help="print the grid and stop")
@click.option("--quiet", is_flag=True, help="no progress bar")
def sweep_cmd(config: str, out: str, executor: str | None, with_report: bool, dry_run: bool,
              quiet: bool, **flags: Any) -> None:
    """Train and evaluate a grid of timestep samplers × training-set sizes × seeds (resumable:
    rerun the same command, with any executor, to continue a killed sweep)."""
    from sigdiff.sweep import describe, load_sweep, run_sweep

    try:
        sweep = load_sweep(config, out_dir=out)
        spec = sweep.executor.merged(kind=executor, **flags)
        click.echo(describe(sweep))
        click.echo("eval: " + json.dumps(sweep.eval.to_dict()))
        click.echo(f"executor: {spec.kind}" + (f" ({spec.jobs} processes)" if spec.kind == "local"
                                               else f" ({spec.cpus_per_cell} CPUs, "
                                               f"{spec.gpus_per_cell} GPUs per cell)"))
        if dry_run:
            return
        rows = run_sweep(sweep, out, executor=spec, progress=not quiet)
        click.echo(f"{len(rows)} rows in {Path(out) / 'results.csv'}")
        if with_report:
            _report(out, str(Path(out) / "report"), None)
    except click.ClickException:
        raise
    except USER_ERRORS as err:
        raise click.ClickException(str(err)) from err


def _report(results: str, out: str, baseline: str | None) -> None:
    from sigdiff.report import headline_tables, write_report

    path = write_report(results, out, baseline=baseline)
    click.echo(headline_tables(results))
    click.echo(f"report: {path}")


@click.command("report")
@click.argument("results", type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="directory for report.md and the PNGs")
@click.option("--baseline", default=None,
              help="arm label to compare against (default: the uniform arm)")
def report_cmd(results: str, out: str, baseline: str | None) -> None:
    """Write the memorization/alignment trade-off report of a sweep directory."""
    try:
        _report(results, out, baseline)
    except USER_ERRORS as err:
        raise click.ClickException(str(err)) from err


@click.command("claims")
@click.argument("results", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="also write the Markdown table to this file")
def claims_cmd(results: tuple[str, ...], out: str | None) -> None:
    """The paper's claim against one or more sweep directories: per arm, size, parameterization
    and evaluation sampler, memorization at equal alignment, final memorization and final
    alignment, paired by seed against each sweep's uniform arm (Markdown table)."""
    from sigdiff._utils import atomic_write_text
    from sigdiff.report import claims_table

    try:
        table = claims_table(results)
    except USER_ERRORS as err:
        raise click.ClickException(str(err)) from err
    click.echo(table)
    if out:
        atomic_write_text(out, table + "\n")
