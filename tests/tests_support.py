"""Helpers shared by the tests."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from pgrun.collector import Batch


def random_batch(policy, obs_dim: int, seed: int, steps: int = 13, envs: int = 3) -> Batch:
    """A batch of random observations with actions sampled from `policy`; a few padding steps."""
    generator = torch.Generator().manual_seed(seed)
    dtype = next(policy.parameters()).dtype
    obs = torch.randn(steps, envs, obs_dim, generator=generator, dtype=dtype)
    with torch.no_grad():
        distribution = policy.distribution(obs)
        actions = distribution.sample()
        logp = distribution.log_prob(actions)
    valid = torch.ones(steps, envs, dtype=torch.bool)
    valid[-3:, 0] = False  # padding, as in episode mode
    flags = torch.zeros(steps, envs, dtype=torch.bool)
    return Batch(
        obs=obs,
        next_obs=obs,
        actions=actions,
        logp=logp,
        rewards=torch.randn(steps, envs, generator=generator),
        terminated=flags,
        truncated=flags,
        valid=valid,
        episode_returns=[],
        episode_lengths=[],
    )


PGRUN = str(Path(sys.executable).parent / "pgrun")
TINY = [
    "total_steps=1200",
    "eval.every=600",
    "eval.episodes=2",
    "algo.batch_unit=steps",
    "algo.batch_size=400",
    "log.console=false",
]


def pgrun(
    *args: str, cwd: Path, tests_dir: Path | None = None, timeout: int = 600, extra_env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the installed `pgrun` command for real, without standard input."""
    env = dict(os.environ) | (extra_env or {})
    if tests_dir is not None:
        env["PYTHONPATH"] = f"{tests_dir}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return subprocess.run(
        [PGRUN, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
