"""Do two versions of pgrun learn the same numbers? Runs ppo, trpo, a2c and rtg on CartPole-v1
and Pendulum-v1 (shipped defaults and tuned presets, short budgets) with the code of a git
commit and with the working tree, and compares their metrics.jsonl rows value for value
(the time/ columns aside, which measure the machine).

    python benchmarks/same_numbers.py --ref b26c809        # the commit before the redesign (#21)
    python benchmarks/same_numbers.py --ref HEAD~3 --only ppo_cartpole

Exit status 0 when every case is bit-identical, 1 otherwise (the first differing row and key
of each case are printed). The reference commit is checked out in a temporary git worktree and
run with the same Python (the same installed libraries).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMON = ["log.console=false", "log.tensorboard=false", "log.every=1", "eval.episodes=3", "eval.every=4000"]
CASES = {
    "ppo_cartpole": ["algo=ppo", "env=cartpole", "total_steps=12000"],
    "ppo_pendulum": ["algo=ppo", "env=pendulum", "total_steps=10240"],
    "trpo_cartpole": ["algo=trpo", "env=cartpole", "total_steps=16000"],
    "trpo_pendulum": ["algo=trpo", "env=pendulum", "total_steps=12000"],
    "a2c_cartpole": ["algo=a2c", "env=cartpole", "total_steps=8000"],
    "a2c_pendulum": ["algo=a2c", "env=pendulum", "total_steps=8000"],
    "rtg_cartpole": ["algo=rtg", "env=cartpole", "total_steps=12000"],
    "rtg_pendulum": ["algo=rtg", "env=pendulum", "total_steps=16000", "algo.batch_size=8"],
}
"""name -> the overrides of one run (seed 0); each takes a few seconds"""

RUNNER = """
import sys
try:
    from pgrun.cli.train import main
except ImportError:
    from pgrun.cli import main
sys.argv = ["pgrun", *sys.argv[1:]]
main()
"""


def run_case(tree: Path, overrides: list[str], run_dir: Path) -> list[dict]:
    """metrics.jsonl of one run of the code in `tree`, without time/ columns."""
    env = os.environ | {"PYTHONPATH": str(tree)}
    command = [sys.executable, "-c", RUNNER, *overrides, *COMMON, f"hydra.run.dir={run_dir}"]
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(overrides)} in {tree} failed: {done.stderr.strip()[-2000:]}")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{key: value for key, value in row.items() if not key.startswith("time/")} for row in rows]


def first_difference(before: list[dict], after: list[dict]) -> str | None:
    """Where two runs' rows first differ (bit for bit: floats compared by their exact value)."""
    if len(before) != len(after):
        return f"{len(before)} rows before, {len(after)} after"
    for index, (old, new) in enumerate(zip(before, after, strict=True)):
        if old.keys() != new.keys():
            return f"row {index}: keys {sorted(old.keys() ^ new.keys())} in only one"
        for key, value in old.items():
            same = value == new[key] or (
                isinstance(value, float) and math.isnan(value) and math.isnan(new[key])
            )
            if not same:
                return f"row {index} (step {old['step']}): {key} {value!r} before, {new[key]!r} after"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", required=True, help="the git commit to compare the working tree with")
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), help="these cases only")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    args = parser.parse_args()
    names = args.only or list(CASES)
    with tempfile.TemporaryDirectory(prefix="pgrun-same-") as scratch:
        worktree = Path(scratch) / "ref"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), args.ref],
            check=True,
            capture_output=True,
        )
        try:
            jobs = [
                (name, tree, label) for name in names for tree, label in ((worktree, "ref"), (ROOT, "now"))
            ]
            with ThreadPoolExecutor(args.jobs) as pool:
                results = dict(
                    zip(
                        [(name, label) for name, _, label in jobs],
                        pool.map(
                            lambda job: run_case(job[1], CASES[job[0]], Path(scratch) / job[2] / job[0]), jobs
                        ),
                        strict=True,
                    )
                )
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=False
            )
    failed = False
    for name in names:
        before, after = results[(name, "ref")], results[(name, "now")]
        problem = first_difference(before, after)
        failed |= problem is not None
        keys = len(before[0]) if before else 0
        verdict = "identical" if problem is None else f"DIFFERENT: {problem}"
        print(f"{name:<15} {len(before):3d} rows x {keys:2d} values: {verdict}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
