"""Keep the record of finished runs in the repository, small: what reports and plots read.

Usage: python benchmarks/keep_runs.py RUN_DIR [RUN_DIR ...] --into docs/mujoco/runs

Run dirs (outputs/, git-ignored) hold checkpoints, event files and policies, and are lost
with the machine they ran on. For each finished run (with summary.json) this copies
summary.json, run.json, .hydra/ and the rows of metrics.jsonl that carry an evaluation,
with only the evaluation, episode-return and elapsed-time columns (the last row also with
where the time went), into INTO/<run dir name>/: what benchmarks/mujoco_report.py and
pgrun-plot read.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

KEPT_COLUMNS = ("step", "eval/return", "eval/return_std", "charts/episodic_return", "time/elapsed")
KEPT_FILES = ("summary.json", "run.json")


def kept_rows(metrics_file: Path) -> list[dict]:
    """The evaluation rows with KEPT_COLUMNS, and the last row with the time/ columns too
    (where the run's seconds went)."""
    rows = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
    evaluations = [row for row in rows[:-1] if "eval/return" in row]
    kept = [{key: value for key, value in row.items() if key in KEPT_COLUMNS} for row in evaluations]
    last = {key: value for key, value in rows[-1].items() if key in KEPT_COLUMNS or key.startswith("time/")}
    return [*kept, last]


def keep(run_dir: Path, into: Path) -> Path:
    target = into / run_dir.name
    if target.exists():
        shutil.rmtree(target)
    (target / ".hydra").mkdir(parents=True)
    for name in KEPT_FILES:
        shutil.copy2(run_dir / name, target / name)
    for path in (run_dir / ".hydra").glob("*.yaml"):
        shutil.copy2(path, target / ".hydra" / path.name)
    lines = [json.dumps(row) for row in kept_rows(run_dir / "metrics.jsonl")]
    (target / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--into", type=Path, required=True)
    args = parser.parse_args()
    for run_dir in args.runs:
        if not (run_dir / "summary.json").is_file():
            print(f"keep_runs: skipping {run_dir}: it did not finish (no summary.json)", file=sys.stderr)
            continue
        print(f"kept {keep(run_dir, args.into)}")


if __name__ == "__main__":
    main()
