"""Summarize sweeps: per (algo, env), steps and seconds to reach target_return, final return.

Usage: python benchmarks/solve_table.py SWEEP_DIR [SWEEP_DIR ...]
Reads every job's .hydra/hydra.yaml, .hydra/config.yaml and summary.json; prints a Markdown table.
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


def main() -> None:
    groups: dict[tuple[str, str, float], list[dict]] = defaultdict(list)
    for sweep in map(Path, sys.argv[1:]):
        for summary_file in sorted(sweep.glob("*/summary.json")):
            job = summary_file.parent
            hydra = OmegaConf.load(job / ".hydra" / "hydra.yaml").hydra
            config = OmegaConf.load(job / ".hydra" / "config.yaml")
            key = (hydra.runtime.choices.algo, config.env.id, config.target_return)
            groups[key].append(json.loads(summary_file.read_text()))
    print(
        "| env | algo | seeds reaching target | env steps to target | seconds to target "
        "| final eval return | budget (steps) |"
    )
    print("|---|---|---|---|---|---|---|")
    for (algo, env, target), runs in sorted(groups.items(), key=lambda item: (item[0][1], item[0][0])):
        reached = [run for run in runs if run["target_reached_at_step"] is not None]
        cells = [
            f"{env} (target {target:g})",
            algo,
            f"{len(reached)}/{len(runs)}",
            describe([run["target_reached_at_step"] for run in reached], ",.0f"),
            describe([run["target_reached_at_seconds"] for run in reached], ".0f"),
            describe([run["final_eval_return"] for run in runs], ".1f"),
            describe([run["env_steps"] for run in runs], ",.0f"),
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
