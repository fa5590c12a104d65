"""Summarize a sweep: per (algo, env), env steps and seconds to first reach stop_return.

Usage: python benchmarks/solve_table.py SWEEP_DIR [SWEEP_DIR ...]
Reads every job's .hydra/config.yaml, .hydra/hydra.yaml and summary.json; prints a Markdown table.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from omegaconf import OmegaConf


def describe(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    return f"{format(statistics.median(values), fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def main() -> None:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for sweep in map(Path, sys.argv[1:]):
        for summary_file in sorted(sweep.glob("*/summary.json")):
            job = summary_file.parent
            hydra = OmegaConf.load(job / ".hydra" / "hydra.yaml").hydra
            config = OmegaConf.load(job / ".hydra" / "config.yaml")
            summary = json.loads(summary_file.read_text())
            groups[(hydra.runtime.choices.algo, config.env.id)].append({"seed": config.seed, **summary})
    print("| algo | env | seeds solved | env steps to solve, median (min-max) | seconds, median (min-max) |")
    print("|---|---|---|---|---|")
    for (algo, env), runs in sorted(groups.items()):
        solved = [run for run in runs if run["solved_at_step"] is not None]
        steps = [run["solved_at_step"] for run in solved]
        seconds = [run["solved_at_seconds"] for run in solved]
        cells = [algo, env, f"{len(solved)}/{len(runs)}", describe(steps, ",.0f"), describe(seconds, ".1f")]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
