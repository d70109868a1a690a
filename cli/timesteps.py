"""``sigdiff timesteps``: inspect a training timestep sampler without training.

``sigdiff timesteps show --sampler ci_gaussian --center 0.2 --width 0.3 --schedule linear
--out profile.png`` prints the resolved sampler, the summary of
``sigdiff.contribution.learning_contribution`` and writes its plot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from sigdiff.cli._options import key_values

from sigdiff.contribution import format_summary, learning_contribution, plot_contribution
from sigdiff.parameterization import PARAMETERIZATIONS, Parameterization
from sigdiff.schedules import SCHEDULES, DiscreteSchedule
from sigdiff.timesteps import MODES, TIMESTEP_SAMPLERS, TimestepSamplerConfig
from sigdiff.weighting import LOSS_WEIGHTINGS, LossWeightingConfig

__all__ = ["timesteps"]

#: ci_gaussian shortcuts: option name → sampler parameter.
_CI_OPTIONS = ("center", "width", "c_l", "c_h", "q", "z_l", "z_h", "tail")


def _pairs(items: tuple[str, ...], option: str) -> dict[str, Any]:
    return dict(key_values(items, option))


@click.group("timesteps")
def timesteps() -> None:
    """Training timestep samplers: where along the trajectory learning happens."""


@timesteps.command("show")
@click.option(
    "--sampler",
    default="ci_gaussian",
    show_default=True,
    type=click.Choice(sorted(TIMESTEP_SAMPLERS)),
)
@click.option("--center", type=float, help="ci_gaussian: interval centre, fraction of T")
@click.option("--width", type=float, help="ci_gaussian: interval width, fraction of T")
@click.option("--c-l", "c_l", type=float, help="ci_gaussian: interval start, fraction of T")
@click.option("--c-h", "c_h", type=float, help="ci_gaussian: interval end, fraction of T")
@click.option("--q", type=float, help="ci_gaussian: confidence level of the interval (0.95)")
@click.option("--z-l", "z_l", type=float, help="ci_gaussian: z-score window start")
@click.option("--z-h", "z_h", type=float, help="ci_gaussian: z-score window end")
@click.option("--tail", type=str, help="tail policy: resample, uniform or clamp")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="any sampler parameter (e.g. logit_std=0.8); repeatable",
)
@click.option("--mode", default="emphasis", show_default=True, type=click.Choice(MODES))
@click.option(
    "--floor", default=0.0, show_default=True, type=float, help="fraction of uniform draws mixed in"
)
@click.option("--continuous", is_flag=True, help="fractional timesteps instead of integers")
@click.option("--schedule", default="linear", show_default=True, type=click.Choice(SCHEDULES))
@click.option("--num-timesteps", default=1000, show_default=True, type=int)
@click.option("--zero-terminal-snr", is_flag=True, help="rescale the schedule (Lin et al. 2024)")
@click.option(
    "--weighting", default="none", show_default=True, type=click.Choice(sorted(LOSS_WEIGHTINGS))
)
@click.option("--weighting-param", "wparams", multiple=True, metavar="KEY=VALUE")
@click.option(
    "--parameterization", default="eps", show_default=True, type=click.Choice(PARAMETERIZATIONS)
)
@click.option(
    "--sigma-data",
    default=1.0,
    show_default=True,
    type=float,
    help="data std (edm parameterization and the Gaussian estimate)",
)
@click.option("--bins", default=50, show_default=True, type=int)
@click.option(
    "--out",
    default="timesteps.png",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="PNG of p(t), log-SNR(t) and the contribution share",
)
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
@click.option("--dry-run", is_flag=True, help="print the resolved options and stop")
def show(sampler: str, params: tuple[str, ...], mode: str, floor: float, continuous: bool,
         schedule: str, num_timesteps: int, zero_terminal_snr: bool, weighting: str,
         wparams: tuple[str, ...], parameterization: str, sigma_data: float, bins: int,
         out: str, as_json: bool, dry_run: bool, **ci: Any) -> None:  # fmt: skip
    """Print the summary of a timestep sampler (mean t, mass where SNR > 1, effective sample
    size, share of the learning signal) and write its plot, without training."""
    sampler_params = {k: v for k, v in ci.items() if v is not None} | _pairs(params, "--param")
    try:
        cfg = TimestepSamplerConfig(sampler, mode=mode, floor=floor, continuous=continuous,
                                    params=sampler_params)  # fmt: skip
        wcfg = LossWeightingConfig(weighting, params=_pairs(wparams, "--weighting-param"))
        sched = DiscreteSchedule(schedule, num_timesteps, zero_terminal_snr=zero_terminal_snr,
                                 warn_terminal_snr=False)  # fmt: skip
        param = Parameterization(
            parameterization,  # type: ignore[arg-type]  # a click.Choice of PARAMETERIZATIONS
            sigma_data if parameterization == "edm" else 1.0,
        )
        built = cfg.build(sched)
        resolved = {"sampler": built.name, "params": built.params, "mode": mode, "floor": floor,
                    "continuous": continuous, "schedule": schedule, "num_timesteps": num_timesteps,
                    "weighting": weighting, "weighting_params": dict(wcfg.params),
                    "parameterization": parameterization, "bins": bins, "out": out}  # fmt: skip
        if dry_run:
            click.echo(json.dumps(resolved, indent=2))
            return
        ds = learning_contribution(built, weighting=wcfg, parameterization=param, bins=bins,
                                   data_std=sigma_data)  # fmt: skip
        path = plot_contribution(ds, Path(out))
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    if as_json:
        summary = {k: v for k, v in ds.attrs.items() if isinstance(v, int | float)}
        click.echo(json.dumps({**resolved, "summary": summary, "png": str(path)}, indent=2))
    else:
        click.echo(format_summary(ds))
        click.echo(f"wrote          {path}")
