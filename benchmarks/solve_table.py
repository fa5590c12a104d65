"""Summarize sweeps: per (algo, env), steps and seconds to reach target_return, final return.

Usage: python benchmarks/solve_table.py SWEEP_DIR [SWEEP_DIR ...]
Reads every job's .hydra/hydra.yaml, .hydra/config.yaml and summary.json; prints a Markdown table.
Jobs run without a target_return get "no target set" in the target columns; their final
returns and budgets are reported all the same.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from omegaconf import OmegaConf


def describe(values: list[float], fmt: str) -> str:
    """median (min to max), or '-' for no values."""
    if not values:
        return "-"
    low, middle, high = (format(v, fmt) for v in (min(values), statistics.median(values), max(values)))
    return f"{middle} ({low} to {high})"


def read_groups(sweeps: list[Path]) -> dict[tuple[str, str, float | None], list[dict]]:
    """(algo, env id, target_return or None) -> the summaries of its finished jobs."""
    groups: dict[tuple[str, str, float | None], list[dict]] = defaultdict(list)
    for sweep in sweeps:
        for summary_file in sorted(sweep.glob("*/summary.json")):
            job = summary_file.parent
            hydra = OmegaConf.load(job / ".hydra" / "hydra.yaml").hydra
            config = OmegaConf.load(job / ".hydra" / "config.yaml")
            key = (hydra.runtime.choices.algo, config.env.id, config.target_return)
            groups[key].append(json.loads(summary_file.read_text()))
    return groups


def row(algo: str, env: str, target: float | None, runs: list[dict]) -> list[str]:
    """One line of the table; without a target the columns about it say so, the rest is filled."""
    finals = describe([run["final_eval_return"] for run in runs], ".1f")
    budgets = describe([run["env_steps"] for run in runs], ",.0f")
    if target is None:
        return [f"{env} (no target set)", algo, "no target set", "-", "-", finals, budgets]
    reached = [run for run in runs if run["target_reached_at_step"] is not None]
    return [
        f"{env} (target {target:g})",
        algo,
        f"{len(reached)}/{len(runs)}",
        describe([run["target_reached_at_step"] for run in reached], ",.0f"),
        describe([run["target_reached_at_seconds"] for run in reached], ".0f"),
        finals,
        budgets,
    ]


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    groups = read_groups([Path(arg) for arg in sys.argv[1:]])
    if not groups:
        sys.exit(f"solve_table.py: error: no finished job (*/summary.json) in {' '.join(sys.argv[1:])}")
    print(
        "| env | algo | seeds reaching target | env steps to target | seconds to target "
        "| final eval return | budget (steps) |"
    )
    print("|---|---|---|---|---|---|---|")
    for (algo, env, target), runs in sorted(groups.items(), key=lambda item: (item[0][1], item[0][0])):
        print("| " + " | ".join(row(algo, env, target, runs)) + " |")


if __name__ == "__main__":
    main()
