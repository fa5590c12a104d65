"""PPO on a GPU: train env steps/s of pgrun on Atari (the ppo_atari preset on Pong) and on
CartPole with many env copies, with `device=cuda`, beside the same runs on the CPU.

    python benchmarks/gpu.py [--steps N] [--out docs/speed_gpu.md]
    python benchmarks/gpu.py --smoke    # every case on the CPU, tiny budgets: the script runs

Without a CUDA device it says so and measures nothing (exit status 0): the numbers it exists
for need a GPU. Each run is a fresh `pgrun` process (evaluation excluded from the rate).
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PGRUN = Path(sys.executable).parent / "pgrun"

CASES = {
    "Pong (ppo_atari: 8 copies x 128 steps, Nature CNN)": ["algo=ppo", "env=pong"],
    "CartPole-v1 (256 native copies x 32 steps, 4 epochs of 2,048)": [
        "algo=ppo", "env=cartpole", "~tuned", "env.vectorization=native", "env.num_envs=256",
        "algo.batch_size=8192", "algo.minibatch_size=2048", "algo.epochs=4",
        "algo.value.iters=4", "algo.value.minibatch_size=2048",
    ],
}  # fmt: skip
"""what each case runs, before its device and budget"""
SMOKE = {
    label: ["env.atari.screen_size=42", "algo.batch_size=1024", "algo.epochs=1", "algo.value.iters=1"]
    if "Pong" in label
    else []
    for label in CASES
}
"""--smoke: 8,192 steps of each case on the CPU; Pong at 42x42 (the Nature CNN's smallest), one epoch"""


def steps_per_second(overrides: list[str], device: str, steps: int) -> float:
    """One pgrun run's train env steps/s (its evaluation time left out)."""
    with tempfile.TemporaryDirectory() as run_dir:
        command = [str(PGRUN), *overrides, f"device={device}", f"total_steps={steps}"]
        command += [
            f"eval.every={10 * steps}",
            "eval.episodes=1",
            "log.console=false",
            "log.tensorboard=false",
        ]
        command += ["log.save_policy=false", f"hydra.run.dir={run_dir}"]
        subprocess.run(command, check=True, capture_output=True, stdin=subprocess.DEVNULL)
        summary = json.loads((Path(run_dir) / "summary.json").read_text())
    training = summary["seconds"] - summary["seconds_by_phase"].get("eval", 0.0)
    return summary["env_steps"] / training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=65_536, help="env steps per run")
    parser.add_argument("--out", type=Path, help="write the Markdown table here too")
    parser.add_argument("--smoke", action="store_true", help="every case on the CPU, tiny budgets")
    args = parser.parse_args()
    import torch

    if args.smoke:
        for label, overrides in CASES.items():
            rate = steps_per_second([*overrides, *SMOKE[label]], "cpu", 8_192)
            print(f"| {label} | cpu {rate:,.0f} steps/s (smoke) |")
        return
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU build"
        print(
            f"benchmarks/gpu.py: no CUDA device here (torch {torch.__version__}, {build}): nothing measured"
        )
        return
    name = torch.cuda.get_device_name(0)
    lines = [
        f"# pgrun on a GPU (benchmarks/gpu.py)\n\n{datetime.date.today()}; {name}; "
        f"torch {torch.__version__}; {args.steps:,} env steps per run, evaluation excluded.\n",
        "| task | cuda steps/s | cpu steps/s | cuda / cpu |",
        "|---|---|---|---|",
    ]
    started = time.perf_counter()
    for label, overrides in CASES.items():
        gpu = steps_per_second(overrides, "cuda", args.steps)
        cpu = steps_per_second(overrides, "cpu", args.steps)
        lines.append(f"| {label} | {gpu:,.0f} | {cpu:,.0f} | {gpu / cpu:.2f}x |")
        print(lines[-1], flush=True)
    lines.append(f"\n({time.perf_counter() - started:.0f} s in all.)")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out is not None:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
