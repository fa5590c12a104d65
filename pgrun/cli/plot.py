"""The `pgrun-plot` command: learning curves and a results table of the runs under some
folders, grouped by their resolved configs (the work is pgrun.analysis.plot's).

    pgrun-plot outputs/multirun/2026-11-22/10-00-00            # every run below the folder
    pgrun-plot SWEEP_A SWEEP_B --group algo --where algo=ppo,trpo --x time --stat iqm --out docs/
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pgrun.analysis.plot import band_name, group_curve, plot, table_row, write_table
from pgrun.analysis.run_groups import ABSENT, Run, differing_settings, find_runs, group_runs, select_runs
from pgrun.cli.one_line import OneLineParser, fail
from pgrun.config import ConfigError, as_plain_dict, config_dir
from pgrun.config.files import algo_schema_of
from pgrun.training.resume import saved_run_config

PROG = "pgrun-plot"
DESCRIPTION = "Learning curves and a results table of runs, grouped by their resolved configs."


def with_todays_keys(config: dict[str, Any], choices: dict[str, str]) -> dict[str, Any]:
    """A run's config with the keys its pgrun version lacked, at the value they stand for
    (today's default, or the value older runs used: pgrun.config.legacy), typed by today's
    schema of its algorithm, and the defaults that resolve by algorithm resolved (a null
    policy.log_std_init as what the run used); unchanged where it does not fit that schema."""
    try:
        schema = algo_schema_of(config_dir(), choices.get("algo", ""))
        return as_plain_dict(saved_run_config(config, schema))
    except (ConfigError, KeyError, OSError):
        return config


def logged_scalars(runs: Iterable[Run]) -> list[str]:
    return sorted({key for run in runs for row in run.rows for key in row} - {"step"})


def runs_with_metric(runs: list[Run], metric: str, x_axis: str) -> list[Run]:
    """The runs that logged `metric` (with the x axis); the others are named on stderr.
    Exits with an error listing what was logged when no run did."""
    kept = [run for run in runs if len(run.series(metric, x_axis)[0])]
    if not kept:
        logged = logged_scalars(runs)
        shown = ", ".join(logged[:12]) + (f" and {len(logged) - 12} more" if len(logged) > 12 else "")
        axis = "" if x_axis == "steps" else " with time/elapsed"
        fail(PROG, f"no run logged {metric!r}{axis}; logged: {shown}")
    for run in runs:
        if run not in kept:
            print(f"pgrun-plot: skipping {run.path}: it logged no {metric!r}", file=sys.stderr)
    return kept


def check_group_keys(runs: list[Run], keys: list[str] | None) -> None:
    """Exits with an error naming a --group key that no run has."""
    for key in keys or []:
        if all(run.value(key) == ABSENT for run in runs):
            choices = sorted({c for run in runs for c in run.choices})
            fail(
                PROG,
                f"no run has {key!r} (a preset choice such as "
                f"{', '.join(choices)}, or a dotted config key such as algo.optim.lr)",
            )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineParser(prog=PROG, description=DESCRIPTION)
    parser.add_argument("folders", nargs="+", type=Path, help="sweep folders or run dirs")
    parser.add_argument(
        "--metric", default="eval/return", help="logged scalar to plot, e.g. charts/episodic_return"
    )
    parser.add_argument(
        "--group", nargs="*", help="preset choices or config keys to group by (default: all that differ)"
    )
    parser.add_argument("--x", choices=("steps", "time"), default="steps", help="env steps or wall-clock")
    parser.add_argument("--stat", choices=("mean", "iqm"), default="mean", help="curve: mean or IQM")
    parser.add_argument(
        "--band", choices=("ci", "std"), default="ci", help="95%% bootstrap CI of --stat, or sample std"
    )
    parser.add_argument(
        "--where", nargs="*", default=[], help="keep runs whose choice or config key has a value: key=v1,v2"
    )
    parser.add_argument("--out", type=Path, help="output folder (default: <first folder>/plots)")
    parser.add_argument("--title", default="", help="plot title")
    parser.add_argument(
        "--unfinished",
        action="store_true",
        help="read runs that did not finish too (under way, interrupted, failed): their rows so far",
    )
    args = parser.parse_args(argv)
    if args.band == "std" and args.stat != "mean":
        parser.error("--band std goes with --stat mean (use --band ci for the IQM)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    missing = [str(folder) for folder in args.folders if not folder.is_dir()]
    if missing:
        fail(PROG, f"not a folder: {', '.join(missing)}")
    runs = find_runs(args.folders, complete=with_todays_keys, unfinished_too=args.unfinished)
    if not runs:
        kind = "run" if args.unfinished else "finished run"
        fail(PROG, f"no {kind} under {', '.join(map(str, args.folders))}")
    runs = select_runs(runs, args.where)
    if not runs:
        fail(PROG, f"no run matches --where {' '.join(args.where)}")
    runs = runs_with_metric(runs, args.metric, args.x)
    check_group_keys(runs, args.group)
    groups = group_runs(runs, args.group)
    out = args.out or args.folders[0] / "plots"
    out.mkdir(parents=True, exist_ok=True)
    rows = [table_row(label, group, args.metric) for label, group in groups.items()]
    write_table(rows, out, args.metric, differing_settings(groups))
    curves = [
        group_curve(label, group, args.metric, args.x, args.stat, args.band)
        for label, group in groups.items()
    ]
    paths = plot(curves, out, args.metric, args.x, band_name(args.stat, args.band), args.title)
    print((out / "results.md").read_text(), end="")
    print(f"wrote {', '.join(map(str, paths))}, {out / 'results.md'}, {out / 'results.csv'}")


if __name__ == "__main__":
    main()
