"""pgrun's defaults against the settings of the reference implementations they follow, on
CartPole-v1: where an algorithm's defaults differ from its reference's, the reference's
settings run beside them, so the README's defaults table can show what the difference does.

Every row is 5 seeds (0-4) of 300,000 env steps, evaluated as pgrun evaluates: 10
deterministic episodes every 10,000 steps from fresh start states, on CartPole's 4 env copies.

    python benchmarks/defaults_vs_references.py --out docs/defaults
    python benchmarks/defaults_vs_references.py --defaults outputs/multirun/cartpole_cmp2 --out docs/defaults
    python benchmarks/defaults_vs_references.py --smoke --only vpg ppo   # tiny budgets: it runs

`--defaults DIR` reuses finished runs of pgrun's defaults (e.g. `pgrun -m
experiment=compare_cartpole`) instead of running them again. The reference rows:
- vpg, rtg: the source material's REINFORCE (one episode per update; pgrun: 50 and 20);
- baseline: Spinning Up's VPG (pi lr 3e-4, V lr 1e-3, GAE 0.97, PyTorch's default init);
- trpo: Spinning Up's TRPO, which has pgrun's settings but PyTorch's default init;
- ppo, a2c: Stable-Baselines3 itself at its defaults (pgrun's equal them but for V's own
  optimizer and gradient clip), with pgrun's batches (4 env copies; PPO 512 steps each).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PGRUN = str(Path(sys.executable).parent / "pgrun")
TARGET = 475.0

ALGOS = ["vpg", "rtg", "baseline", "trpo", "ppo", "a2c"]
REFERENCES = {
    "vpg": ("one episode per update (source REINFORCE)", ["algo.batch_size=1", "env.num_envs=1"]),
    "rtg": ("one episode per update (source REINFORCE)", ["algo.batch_size=1", "env.num_envs=1"]),
    "baseline": (
        "Spinning Up VPG",
        ["algo.optim.lr=0.0003", "algo.value.lr=0.001", "algo.gae_lambda=0.97", "policy.init=default"],
    ),
    "trpo": ("Spinning Up TRPO (PyTorch's default init)", ["policy.init=default"]),
    "ppo": ("Stable-Baselines3 PPO", None),
    "a2c": ("Stable-Baselines3 A2C", None),
}
"""algo -> (what the row is, pgrun overrides; None: run Stable-Baselines3 itself)"""


def pgrun_runs(name: str, overrides: list[str], seeds: list[int], steps: int, out: Path) -> list[list[dict]]:
    """Run `pgrun -m OVERRIDES seed=...` into out/runs/<name>; each seed's eval rows."""
    folder = out / "runs" / name
    if not folder.is_dir():
        command = [
            PGRUN, "-m", *overrides, "env=cartpole", "tuned=null", f"total_steps={steps}",
            f"seed={','.join(map(str, seeds))}", "log.console=false", f"hydra.sweep.dir={folder}",
        ]  # fmt: skip
        subprocess.run(command, check=True, stdin=subprocess.DEVNULL, capture_output=True)
    return finished_runs([folder])


def finished_runs(folders: list[Path], algo: str | None = None) -> list[list[dict]]:
    """The eval rows ({"step", "eval/return"}, ...) of every finished run below `folders` (of
    algo group `algo` only, if given)."""
    from omegaconf import OmegaConf

    runs = []
    for summary in sorted(path for folder in folders for path in folder.rglob("summary.json")):
        run_dir = summary.parent
        if (
            algo is not None
            and OmegaConf.load(run_dir / ".hydra" / "hydra.yaml").hydra.runtime.choices.algo != algo
        ):
            continue
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        runs.append([row for row in rows if "eval/return" in row])
    return runs


def sb3_worker(algo: str, seed: int, steps: int, every: int) -> list[dict]:
    """Stable-Baselines3's PPO or A2C at its defaults on 4 CartPole copies (PPO: 512 steps each,
    pgrun's 2,048-step batch), evaluated every `every` steps on 10 episodes from fresh seeds."""
    import numpy as np
    import torch
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import Logger

    torch.set_num_threads(1)
    envs = make_vec_env("CartPole-v1", n_envs=4, seed=seed)
    if algo == "ppo":
        model = PPO("MlpPolicy", envs, n_steps=512, seed=seed, device="cpu")
    else:
        model = A2C("MlpPolicy", envs, seed=seed, device="cpu")
    evaluations = make_vec_env("CartPole-v1", n_envs=10)
    rows: list[dict] = []

    def evaluate(step: int) -> None:
        evaluations.seed(seed + 1_000_000 + 10 * len(rows))
        obs, returns = evaluations.reset(), np.zeros(10)
        running = np.ones(10, dtype=bool)
        while running.any():
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, done, _ = evaluations.step(action)
            returns += reward * running
            running &= ~done
        rows.append({"step": step, "eval/return": float(returns.mean())})

    class Every(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps // every > len(rows):
                evaluate(self.num_timesteps)
            return True

    model.set_logger(Logger(folder=None, output_formats=[]))  # (its default makes a /tmp/SB3-<time> dir)
    model.learn(total_timesteps=steps, callback=Every())
    evaluate(model.num_timesteps)
    return rows


def sb3_runs(algo: str, seeds: list[int], steps: int, every: int, out: Path) -> list[list[dict]]:
    """Each seed's eval rows of Stable-Baselines3's `algo`, one subprocess per seed, kept in
    out/runs/<algo>_sb3.json so that a second call reuses them."""
    kept = out / "runs" / f"{algo}_sb3.json"
    if kept.is_file():
        return json.loads(kept.read_text())
    runs = []
    for seed in seeds:
        command = [sys.executable, __file__, "--worker", json.dumps([algo, seed, steps, every])]
        with tempfile.TemporaryDirectory() as cwd:
            result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, check=True)
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_text(json.dumps(runs))
    return runs


def row(algo: str, settings: str, runs: list[list[dict]]) -> str:
    """One table row: final eval mean ± sample std over seeds, mean of the last five evals,
    seeds whose final eval reached the target."""
    finals = [rows[-1]["eval/return"] for rows in runs]
    last5 = [statistics.mean(r["eval/return"] for r in rows[-5:]) for rows in runs]
    std = statistics.stdev(finals) if len(finals) > 1 else float("nan")
    solved = sum(final >= TARGET for final in finals)
    return (
        f"| {algo} | {settings} | {len(runs)} | {statistics.mean(finals):.1f} ± {std:.1f} "
        f"| {statistics.mean(last5):.1f} | {solved}/{len(runs)} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "defaults_vs_references")
    parser.add_argument("--defaults", nargs="*", type=Path, default=[], help="finished runs of the defaults")
    parser.add_argument("--smoke", action="store_true", help="tiny budgets: checks the script runs")
    parser.add_argument("--only", nargs="*", choices=ALGOS, default=ALGOS, help="these algorithms only")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(sb3_worker(*json.loads(args.worker))))
        return
    seeds, steps, every = ([0], 8_192, 4_096) if args.smoke else ([0, 1, 2, 3, 4], 300_000, 10_000)
    args.out.mkdir(parents=True, exist_ok=True)
    lines = [
        f"CartPole-v1, seeds {seeds[0]}-{seeds[-1]}, {steps:,} env steps, 10 deterministic evaluation "
        f"episodes every {every:,} steps (fresh start states). Final: each seed's last evaluation, "
        "mean ± sample std over seeds; last 5: each seed's last five evaluations averaged; solved: "
        f"final >= {TARGET:g}. Command: `python benchmarks/defaults_vs_references.py`.",
        "",
        "| algo | settings | seeds | final | last 5 | solved |",
        "|---|---|---|---|---|---|",
    ]
    extra = [f"eval.every={every}"]
    for algo in args.only:
        defaults = finished_runs(args.defaults, algo) or pgrun_runs(
            f"{algo}_defaults", [f"algo={algo}", *extra], seeds, steps, args.out
        )
        lines.append(row(algo, "pgrun's defaults", defaults))
        settings, overrides = REFERENCES[algo]
        if overrides is None:
            reference = sb3_runs(algo, seeds, steps, every, args.out)
        else:
            reference = pgrun_runs(
                f"{algo}_reference", [f"algo={algo}", *overrides, *extra], seeds, steps, args.out
            )
        lines.append(row(algo, settings, reference))
        print("\n".join(lines[-2:]), flush=True)
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'results.md'}")


if __name__ == "__main__":
    main()
