"""What periodic checkpointing costs a CartPole PPO run, as a fraction of its wall-clock.

Runs `pgrun algo=ppo env=cartpole` in this process for --steps env steps at the default
checkpoint interval (or --every), timing every checkpoint write (state gathering, the env
episode records, serialization, fsync, rename, rotation) against the run's own total, so the
ratio is measured within one run and does not depend on how busy the machine is. Prints a
Markdown table row.

    .venv/bin/python benchmarks/checkpoint_overhead.py [--steps 300000] [--every N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from pgrun.algorithms import register_schemas
from pgrun.config import config_dir, to_config
from pgrun.training.checkpoint import checkpoint_files
from pgrun.training.interrupt import StopRequests
from pgrun.training.loop import Training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300_000)
    parser.add_argument("--every", type=int, help="checkpoint.every (default: the shipped default)")
    parser.add_argument("--algo", default="ppo")
    args = parser.parse_args()
    overrides = [f"algo={args.algo}", "env=cartpole", f"total_steps={args.steps}", "log.console=false"]
    if args.every is not None:
        overrides.append(f"checkpoint.every={args.every}")
    register_schemas()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        config = to_config(compose("config", overrides=overrides))

    seconds_in_checkpoints: list[float] = []
    checkpoint = Training.checkpoint

    def timed_checkpoint(self: Training) -> None:
        tic = time.perf_counter()
        checkpoint(self)
        seconds_in_checkpoints.append(time.perf_counter() - tic)

    Training.checkpoint = timed_checkpoint  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as run_dir:
        tic = time.perf_counter()
        Training(config, Path(run_dir)).run(StopRequests())
        total = time.perf_counter() - tic
        size = checkpoint_files(Path(run_dir))[-1].stat().st_size
    count = len(seconds_in_checkpoints)
    spent = sum(seconds_in_checkpoints)
    print(
        "| algo | env steps | checkpoint.every | checkpoints | size | per checkpoint | in checkpoints "
        "| of the run |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.algo} | {args.steps:,} | {config.checkpoint.every:,} | {count} | {size / 1024:.0f} KiB "
        f"| {1000 * spent / count:.1f} ms | {spent:.2f} s of {total:.1f} s | {100 * spent / total:.2f}% |"
    )


if __name__ == "__main__":
    main()
