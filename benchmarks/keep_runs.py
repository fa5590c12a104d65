"""Keep the record of finished runs in the repository, small: what reports and plots read.

Usage: python benchmarks/keep_runs.py RUN_DIR [RUN_DIR ...] --into docs/mujoco/runs
           [--unfinished] [--train-every STEPS]

Run dirs (outputs/, git-ignored) hold checkpoints, event files and policies, and are lost
with the machine they ran on. For each finished run (with summary.json) this copies
summary.json, run.json, .hydra/ and the rows of metrics.jsonl that carry an evaluation,
with only the evaluation, episode-return and elapsed-time columns (the last row also with
where the time went), into INTO/<run dir name>/: what benchmarks/mujoco_report.py and
pgrun-plot read. --unfinished keeps runs stopped by a signal too (run.json's status
"interrupted", and where they stopped; no summary.json: `pgrun-plot --unfinished` reads
them, the MuJoCo report does not); --train-every keeps the first row with a training return
in each STEPS env steps besides (a curve between evaluations far apart).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

KEPT_COLUMNS = ("step", "eval/return", "eval/return_std", "charts/episodic_return", "time/elapsed")
KEPT_FILES = ("summary.json", "run.json")


def kept_rows(metrics_file: Path, train_every: int | None = None) -> list[dict]:
    """The evaluation rows with KEPT_COLUMNS, with `train_every` the first row with a training
    return in each [k train_every, (k + 1) train_every) too, and the last row with the time/
    columns (where the run's seconds went)."""
    rows = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
    kept, next_training_row = [], None if train_every is None else 0
    for row in rows[:-1]:
        training = next_training_row is not None and "charts/episodic_return" in row
        if training and row["step"] >= next_training_row:
            next_training_row = (row["step"] // train_every + 1) * train_every
        elif "eval/return" not in row:
            continue
        kept.append({key: value for key, value in row.items() if key in KEPT_COLUMNS})
    last = {key: value for key, value in rows[-1].items() if key in KEPT_COLUMNS or key.startswith("time/")}
    return [*kept, last]


def keep(run_dir: Path, into: Path, train_every: int | None = None) -> Path:
    target = into / run_dir.name
    if target.exists():
        shutil.rmtree(target)
    (target / ".hydra").mkdir(parents=True)
    for name in KEPT_FILES:
        if (run_dir / name).is_file():  # (an interrupted run has no summary.json)
            shutil.copy2(run_dir / name, target / name)
    for path in (run_dir / ".hydra").glob("*.yaml"):
        shutil.copy2(path, target / ".hydra" / path.name)
    lines = [json.dumps(row) for row in kept_rows(run_dir / "metrics.jsonl", train_every)]
    (target / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return target


def status(run_dir: Path) -> str | None:
    """run.json's status of the run (running, finished, interrupted, failed), None without one."""
    try:
        return json.loads((run_dir / "run.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--into", type=Path, required=True)
    parser.add_argument("--unfinished", action="store_true", help="keep interrupted runs too")
    parser.add_argument("--train-every", type=int, metavar="STEPS", help="a training-return row per STEPS")
    args = parser.parse_args()
    if args.train_every is not None and args.train_every <= 0:
        parser.error(f"--train-every={args.train_every} is not allowed: give a positive number of env steps")
    for run_dir in args.runs:
        stopped_as = status(run_dir)
        if not (run_dir / "summary.json").is_file() and not (args.unfinished and stopped_as == "interrupted"):
            why = f"it did not finish (no summary.json; run.json's status: {stopped_as})"
            if stopped_as == "interrupted":
                why += "; --unfinished keeps it"
            print(f"keep_runs: skipping {run_dir}: {why}", file=sys.stderr)
            continue
        print(f"kept {keep(run_dir, args.into, args.train_every)}")


if __name__ == "__main__":
    main()
