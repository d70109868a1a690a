"""Option parsing shared by the commands: ``KEY=VALUE`` pairs with TOML scalar values."""

from __future__ import annotations

import tomllib
from typing import Any

import click

__all__ = ["key_values", "parse_value"]


def parse_value(text: str) -> Any:
    """A TOML scalar or array (``0.2``, ``true``, ``"x"``, ``[1, 2]``); bare words are strings
    (``tail=uniform``)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def key_values(items: tuple[str, ...], option: str) -> list[tuple[str, Any]]:
    """``KEY=VALUE`` items of a repeated option, in order; a usage error names a bad one."""
    out = []
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=option)
        key, value = item.split("=", 1)
        out.append((key.strip(), parse_value(value.strip())))
    return out
