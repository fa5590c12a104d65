"""The MuJoCo reproduction report: pgrun's returns at 1M env steps next to the published ones.

Usage: python benchmarks/mujoco_report.py [RUNS_DIR] [--out docs/mujoco] [--seed-sets 0-2,3-5]
RUNS_DIR (default docs/mujoco/runs, the records benchmarks/mujoco.sh keeps with
benchmarks/keep_runs.py; or outputs/mujoco, the run dirs themselves) holds
<algo>_<env>_seed<k>/. Writes results.md and results.csv, and one learning-curve figure per
task and seed set made by pgrun-plot (<task>/seeds<a>-<b>/curves.png). Only finished runs
(with summary.json) count.

Seed sets are reported apart: the presets were chosen by looking at seed 0, so seeds 0-2
carry that selection and seeds 3-5, never looked at while choosing, are the held-out check.

Statistics, per (algo, task) over seeds: "final" is each seed's last evaluation (10
deterministic episodes at the end of the budget), as mean +- sample std over seeds; "last 5
evaluations" the mean of each seed's last five (steadier than one); "best" is each seed's
best evaluation during training, averaged over seeds (Tianshou's statistic).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

TASKS = {"halfcheetah": "HalfCheetah-v5", "hopper": "Hopper-v5", "walker2d": "Walker2d-v5"}

FLOORS = {
    ("ppo", "halfcheetah"): 3000,
    ("ppo", "hopper"): 2400,
    ("ppo", "walker2d"): 2500,
    ("trpo", "halfcheetah"): 2000,
    ("trpo", "hopper"): 2000,
    ("trpo", "walker2d"): 2500,
}

# (source, algo, statistic) -> returns at 1M env steps on (halfcheetah, hopper, walker2d)
PUBLISHED = [
    ("CleanRL ppo_continuous_action (v4, 3 seeds)", "ppo", "final", (1443, 2383, 2288)),
    ("SB3 zoo PPO (v3)", "ppo", "final", (5819, 2410, 3479)),
    ("Tianshou PPO (10 seeds)", "ppo", "best", (5784, 2609, 3589)),
    ("SB3 zoo TRPO (sb3-contrib, v3)", "trpo", "final", (1785, 3618, 4933)),
    ("Tianshou TRPO", "trpo", "best", (4471, 2046, 3827)),
    ("Tianshou NPG", "npg", "best", (3485, 1915, 2503)),
]

PHASES = ("env", "collect", "update", "eval")


@dataclass
class Seed:
    seed: int
    final: float
    best: float
    last_five: float
    """the mean of the seed's last 5 evaluations (its last 40k steps, evaluating every 10k)"""
    steps: int
    seconds: float
    phases: dict[str, float]
    commits: list[str]
    """the git commits the run's sessions ran (run.json; a resumed run has several)"""


def read_runs(root: Path) -> dict[tuple[str, str], list[Seed]]:
    """(algo, task) -> its finished seeds."""
    groups: dict[tuple[str, str], list[Seed]] = defaultdict(list)
    for summary_file in sorted(root.glob("*_seed*/summary.json")):
        name, seed = summary_file.parent.name.rsplit("_seed", 1)
        algo, task = name.split("_", 1)
        summary = json.loads(summary_file.read_text())
        rows = [json.loads(line) for line in (summary_file.parent / "metrics.jsonl").read_text().splitlines()]
        last = rows[-1]
        evaluations = [row["eval/return"] for row in rows if "eval/return" in row]
        provenance = json.loads((summary_file.parent / "run.json").read_text())
        commits = [
            ((session.get("git") or {}).get("commit") or "unrecorded")[:10]
            + ("+dirty" if (session.get("git") or {}).get("dirty") else "")
            for session in provenance.get("sessions", [])
        ]
        groups[algo, task].append(
            Seed(
                seed=int(seed),
                final=summary["final_eval_return"],
                best=summary["best_eval_return"],
                last_five=statistics.mean(evaluations[-5:]),
                steps=summary["env_steps"],
                seconds=summary["seconds"],
                phases={phase: last[f"time/{phase}"] for phase in PHASES if f"time/{phase}" in last},
                commits=commits,
            )
        )
    return groups


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:,.0f}"
    return f"{statistics.mean(values):,.0f} ± {statistics.stdev(values):,.0f}"


def where_time_goes(seeds: list[Seed]) -> str:
    """Shares of the wall-clock: env stepping, the rest of collection (policy inference and
    bookkeeping), updates, evaluation; from the runs that logged phase times."""
    timed = [seed for seed in seeds if set(PHASES) <= seed.phases.keys()]
    if not timed:
        return "-"
    total = sum(seed.seconds for seed in timed)
    env = sum(seed.phases["env"] for seed in timed)
    inference = sum(seed.phases["collect"] for seed in timed) - env
    update = sum(seed.phases["update"] for seed in timed)
    evaluation = sum(seed.phases["eval"] for seed in timed)
    shares = {"env": env, "inference": inference, "update": update, "eval": evaluation}
    return ", ".join(f"{name} {100 * seconds / total:.0f}%" for name, seconds in shares.items())


def in_set(groups: dict[tuple[str, str], list[Seed]], seeds: range) -> dict[tuple[str, str], list[Seed]]:
    """The groups' runs of the seeds in `seeds` (groups left without any dropped)."""
    kept = {key: [run for run in runs if run.seed in seeds] for key, runs in groups.items()}
    return {key: runs for key, runs in kept.items() if runs}


def code_line(groups: dict[tuple[str, str], list[Seed]]) -> str:
    """Which commits ran these runs, and how many runs each (a resumed run counts for each)."""
    counts: dict[str, int] = defaultdict(int)
    for runs in groups.values():
        for run in runs:
            for commit in dict.fromkeys(run.commits):
                counts[commit] += 1
    return (
        "Code: "
        + ", ".join(f"{commit} ({n} run{'s' * (n != 1)})" for commit, n in sorted(counts.items()))
        + "."
    )


def set_name(seeds: range, sep: str = " ") -> str:
    """'seeds 3-5' (sep='': the folder name 'seeds3-5')."""
    return f"seeds{sep}{seeds.start}-{seeds.stop - 1}"


def table(groups: dict[tuple[str, str], list[Seed]]) -> tuple[list[str], list[dict[str, str]]]:
    lines = [
        "| task | algo | seeds | final (mean ± std) | last 5 evaluations (mean) | best (mean) | floor | "
        "minutes per 1M steps | where the time goes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    for (algo, task), seeds in sorted(groups.items(), key=lambda item: (item[0][1], item[0][0])):
        finals, bests = [seed.final for seed in seeds], [seed.best for seed in seeds]
        floor = FLOORS.get((algo, task))
        minutes = statistics.mean(seed.seconds / seed.steps * 1e6 / 60 for seed in seeds)
        if floor is None:
            met = ""
        elif len(seeds) < 3:  # the floors are means over 3 seeds
            met = f" (to be judged: {len(seeds)} of 3 seeds)"
        else:
            met = " (met)" if statistics.mean(finals) >= floor else " (not met)"
        row = {
            "task": TASKS.get(task, task),
            "algo": algo,
            "seeds": str(len(seeds)),
            "final": mean_std(finals),
            "last_five": f"{statistics.mean(seed.last_five for seed in seeds):,.0f}",
            "best": f"{statistics.mean(bests):,.0f}",
            "floor": f"{floor:,}{met}" if floor is not None else "-",
            "minutes_per_1M": f"{minutes:.0f}",
            "time_split": where_time_goes(seeds),
        }
        rows.append(row)
        lines.append("| " + " | ".join(row.values()) + " |")
    return lines, rows


def published_table() -> list[str]:
    lines = ["| source | statistic | HalfCheetah | Hopper | Walker2d |", "|---|---|---|---|---|"]
    for source, _, statistic, returns in PUBLISHED:
        lines.append(f"| {source} | {statistic} | " + " | ".join(f"{value:,}" for value in returns) + " |")
    return lines


def figures(root: Path, out: Path, groups: dict[tuple[str, str], list[Seed]], seeds: range) -> list[str]:
    """One pgrun-plot figure per task with finished runs of `seeds`; the Markdown image lines."""
    images = []
    folder = set_name(seeds, sep="")
    for task in sorted({task for _, task in groups}):
        target = out / task / folder
        command = [
            str(Path(sys.executable).parent / "pgrun-plot"),
            str(root),
            "--where",
            f"env={task}",
            "seed=" + ",".join(map(str, seeds)),
            "--group",  # by algorithm alone: runs of one preset made by other pgrun versions may
            "algo",  # differ in config keys that do not change the run (added since, say)
            "--band",
            "ci",
            "--out",
            str(target),
        ]
        title = f"{TASKS.get(task, task)}, {set_name(seeds)}: eval return (mean and 95% CI over seeds)"
        subprocess.run([*command, "--title", title], check=True)
        images.append(f"![{task}, {set_name(seeds)}]({task}/{folder}/curves.png)")
    return images


def seed_sets(text: str) -> list[range]:
    """'0-2,3-5' -> [range(0, 3), range(3, 6)]."""
    sets = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        if not (first.isdigit() and (last or first).isdigit() and int(first) <= int(last or first)):
            raise argparse.ArgumentTypeError(
                f"{text!r}: give seed ranges FIRST-LAST, comma-separated, e.g. 0-2,3-5"
            )
        sets.append(range(int(first), int(last or first) + 1))
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="?", type=Path, default=Path("docs/mujoco/runs"))
    parser.add_argument("--out", type=Path, default=Path("docs/mujoco"))
    parser.add_argument("--no-figures", action="store_true", help="tables only")
    parser.add_argument(
        "--seed-sets", type=seed_sets, default="0-2,3-5", help="seed ranges reported apart (default 0-2,3-5)"
    )
    args = parser.parse_args()
    groups = read_runs(args.runs)
    if not groups:
        sys.exit(f"mujoco_report: no finished runs (summary.json) under {args.runs}")
    outside = sorted(
        f"{algo}_{task}_seed{run.seed}"
        for (algo, task), runs in groups.items()
        for run in runs
        if not any(run.seed in seeds for seeds in args.seed_sets)
    )
    if outside:
        print(f"mujoco_report: left out (in no --seed-sets range): {', '.join(outside)}", file=sys.stderr)
    if not any(in_set(groups, seeds) for seeds in args.seed_sets):
        sys.exit(f"mujoco_report: no finished run under {args.runs} has a seed in --seed-sets")
    args.out.mkdir(parents=True, exist_ok=True)
    report, all_rows, images = ["# pgrun at 1M env steps (v5 tasks)"], [], []
    for seeds in args.seed_sets:
        if not (chosen := in_set(groups, seeds)):
            continue
        lines, rows = table(chosen)
        report += ["", f"## {set_name(seeds)}", "", *lines, "", code_line(chosen)]
        all_rows += [{"seed_set": set_name(seeds), **row} for row in rows]
        if not args.no_figures:
            images += figures(args.runs, args.out, chosen, seeds)
    with open(args.out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(all_rows[0]))
        writer.writeheader()
        writer.writerows(all_rows)
    report += ["", "## Published", "", *published_table()]
    if images:
        report += ["", "## Learning curves", "", *images]
    (args.out / "results.md").write_text("\n".join(report) + "\n")
    print("\n".join(report))


if __name__ == "__main__":
    main()
