"""The ``sigdiff`` command: a thin click group; each command parses, validates and calls one
library function."""

from __future__ import annotations

import click
from sigdiff.cli.data import data
from sigdiff.cli.eval import eval_cmd
from sigdiff.cli.sweep import claims_cmd, report_cmd, sweep_cmd
from sigdiff.cli.timesteps import timesteps
from sigdiff.cli.train import sample_cmd, train_cmd
from sigdiff.cli.validate import validate_cmd

from sigdiff import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sigdiff")
def cli() -> None:
    """sigdiff: diffusion models for 1D signals with measured control over memorization."""


cli.add_command(data)
cli.add_command(train_cmd)
cli.add_command(sample_cmd)
cli.add_command(eval_cmd, name="eval")
cli.add_command(timesteps)
cli.add_command(sweep_cmd)
cli.add_command(report_cmd)
cli.add_command(claims_cmd)
cli.add_command(validate_cmd)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
