"""The ``sigdiff`` command: a thin click group; each command parses, validates and calls one
library function."""

from __future__ import annotations

import click

from sigdiff import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sigdiff")
def cli() -> None:
    """sigdiff: diffusion models for 1D signals with measured control over memorization."""


def main() -> None:
    cli()
