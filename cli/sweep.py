"""`sigdiff sweep` and `sigdiff report`: parse, validate, print the plan, call one library function
(sigdiff.sweep.run_sweep / sigdiff.report.write_report)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sigdiff.errors import USER_ERRORS

__all__ = ["claims_cmd", "report_cmd", "sweep_cmd"]



@click.command("sweep")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="sweep directory: data/, cells/<id>/, results.csv, results.jsonl")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(min=1),
              help="cells trained in parallel processes (one thread each)")
@click.option("--report/--no-report", "with_report", default=True, show_default=True,
              help="write OUT/report/ (sigdiff report) when the sweep ends")
@click.option("--dry-run", is_flag=True, help="print the grid and stop")
@click.option("--quiet", is_flag=True, help="no progress bar")
def sweep_cmd(config: str, out: str, jobs: int, with_report: bool, dry_run: bool,
              quiet: bool) -> None:
    """Train and evaluate a grid of timestep samplers × training-set sizes × seeds (resumable:
    rerun the same command to continue a killed sweep)."""
    from sigdiff.sweep import describe, load_sweep, run_sweep

    try:
        sweep = load_sweep(config, out_dir=out)
        click.echo(describe(sweep))
        click.echo("eval: " + json.dumps(sweep.eval.to_dict()))
        if dry_run:
            return
        rows = run_sweep(sweep, out, jobs=jobs, progress=not quiet)
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
