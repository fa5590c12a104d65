"""How pgrun should step Atari env copies on this machine: gymnasium's sync and async vector
envs (pgrun's env.vectorization) against EnvPool, and what each is worth in a whole PPO run.

    python benchmarks/atari_vectorization.py [--steps 4000] [--out docs/atari/vectorization.md]

Part 1, the envs alone: 8 copies of Pong-v5 (sticky actions, the Atari preprocessing, 4 frames
stacked) stepped with random actions; agent steps per second. EnvPool is measured if it can be
imported (it is not one of pgrun's dependencies: `pip install envpool==0.8.4 gym==0.26.2 dm-env
optree` in a scratch environment, with PYTHONPATH pointing there); its row is left out otherwise.
Part 2, a PPO run at the ppo_atari preset with each of pgrun's vectorizations (one torch thread),
env steps per second of training (evaluation excluded).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
COPIES = 8
PRESET = ["algo=ppo", "env=pong", "env.atari.fire_on_reset=true"]


def gymnasium_rate(vectorization: str, steps: int) -> float:
    """Agent steps/s of pgrun's own vector env for Pong (env.vectorization=...)."""
    from pgrun.api import config_of
    from pgrun.collection.envs import make_vector_env

    config = config_of([*PRESET, f"env.vectorization={vectorization}"])
    envs = make_vector_env(config.env, COPIES)
    try:
        envs.reset(seed=0)
        actions = np.random.default_rng(0).integers(0, envs.single_action_space.n, (steps, COPIES))
        for row in actions[:50]:  # (warm-up: the workers' first steps)
            envs.step(row)
        start = time.perf_counter()
        for row in actions:
            envs.step(row)
        return steps * COPIES / (time.perf_counter() - start)
    finally:
        envs.close()


def envpool_rate(threads: int, steps: int) -> float | None:
    """Agent steps/s of EnvPool's Pong-v5 with the same preprocessing; None without EnvPool."""
    try:
        import envpool
    except ImportError:
        return None
    envs = envpool.make(
        "Pong-v5", env_type="gymnasium", num_envs=COPIES, batch_size=COPIES, num_threads=threads, seed=0,
        episodic_life=False, reward_clip=False, stack_num=4, img_height=84, img_width=84, noop_max=30,
        repeat_action_probability=0.25, max_episode_steps=27_000,
    )  # fmt: skip
    envs.reset()
    actions = np.random.default_rng(0).integers(0, 6, (steps, COPIES))
    for row in actions[:50]:
        envs.step(row)
    start = time.perf_counter()
    for row in actions:
        envs.step(row)
    return steps * COPIES / (time.perf_counter() - start)


def training_rate(vectorization: str, steps: int) -> float:
    """Env steps/s of training of a ppo_atari run with that vectorization (evaluation excluded)."""
    from pgrun.api import train

    result = train(
        [
            *PRESET, f"env.vectorization={vectorization}", f"total_steps={steps}", f"eval.every={10 * steps}",
            "eval.episodes=1", "log.console=false", "log.tensorboard=false", "log.save_policy=false",
            f"hydra.run.dir={os.environ['SCRATCH']}/{vectorization}",
        ]
    )  # fmt: skip
    summary = result.summary
    return summary["env_steps"] / (summary["seconds"] - summary["seconds_by_phase"]["eval"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4_000, help="vector steps per env measurement")
    parser.add_argument("--train-steps", type=int, default=8_192, help="env steps per training run")
    parser.add_argument("--out", type=Path, help="write the Markdown report here too")
    args = parser.parse_args()
    os.environ.setdefault("SCRATCH", str(Path(os.environ.get("TMPDIR", "/tmp")) / "pgrun_vectorization"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    lines = [
        "# Atari vectorization (benchmarks/atari_vectorization.py)",
        "",
        f"{datetime.date.today()}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; pgrun at {commit.stdout.strip()}.",
        f"Command: `python benchmarks/atari_vectorization.py {' '.join(sys.argv[1:])}`".rstrip(),
        "",
        f"| {COPIES} copies of Pong-v5 | agent steps/s |",
        "|---|---|",
    ]
    for vectorization in ("sync", "async"):
        lines.append(f"| gymnasium {vectorization} (env.vectorization={vectorization}) | "
                     f"{gymnasium_rate(vectorization, args.steps):,.0f} |")  # fmt: skip
        print(lines[-1], flush=True)
    for threads in (1, 2):
        rate = envpool_rate(threads, args.steps)
        if rate is not None:
            lines.append(f"| EnvPool 0.8, {threads} thread{'s' if threads > 1 else ''} | {rate:,.0f} |")
            print(lines[-1], flush=True)
    lines += ["", "| ppo_atari, one torch thread | env steps/s of training |", "|---|---|"]
    for vectorization in ("sync", "async"):
        rate = training_rate(vectorization, args.train_steps)
        lines.append(f"| env.vectorization={vectorization} | {rate:,.0f} |")
        print(lines[-1], flush=True)
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)


if __name__ == "__main__":
    main()
