"""Helpers shared by the tests: spaces, small policies and rules, batches, and the real CLI."""

import json
import os
import re
import struct
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from hydra import compose, initialize_config_dir

from pgrun.algorithms import register_schemas
from pgrun.batch import Batch
from pgrun.config import Config, PolicyConfig, config_dir, to_config
from pgrun.config.overrides import hydra_overrides
from pgrun.networks.policy import make_policy
from pgrun.networks.value import value_networks as run_value_networks
from pgrun.training.callbacks import Callback

OBS_DIM = 3
SPACES = {
    "categorical": gym.spaces.Discrete(4),
    "gaussian": gym.spaces.Box(low=-1.0, high=1.0, shape=(2,), dtype=np.float32),
    "multi_categorical": gym.spaces.MultiDiscrete([3, 2, 4], start=[0, -1, 2]),
    "bernoulli": gym.spaces.MultiBinary(3),
}


def small_policy(
    space: gym.Space, hidden_sizes: list[int] | None = None, seed: int = 0, init: str = "orthogonal"
):
    """A policy over OBS_DIM features with one small hidden layer (or as given), seeded."""
    torch.manual_seed(seed)
    sizes = [16] if hidden_sizes is None else hidden_sizes
    return make_policy(OBS_DIM, space, PolicyConfig(hidden_sizes=sizes, init=init))


value_networks = run_value_networks(OBS_DIM, PolicyConfig())
"""the value-network factory a rule receives, for OBS_DIM features"""


def random_batch(policy, obs_dim: int = OBS_DIM, seed: int = 0, steps: int = 13, envs: int = 3) -> Batch:
    """A batch of random observations with actions sampled from `policy`; a few padding steps."""
    generator = torch.Generator().manual_seed(seed)
    dtype = next(policy.parameters()).dtype
    obs = torch.randn(steps, envs, obs_dim, generator=generator, dtype=dtype)
    next_obs = torch.randn(steps, envs, obs_dim, generator=generator, dtype=dtype)
    with torch.no_grad():
        distribution = policy.distribution(obs)
        actions = distribution.sample()
        params = policy.distribution_params(obs)
        logp = policy.log_prob_from(params, actions)  # as the collector computes it
    valid = torch.ones(steps, envs, dtype=torch.bool)
    valid[-3:, 0] = False  # padding, as in episode mode
    terminated = torch.zeros(steps, envs, dtype=torch.bool)
    truncated = torch.zeros(steps, envs, dtype=torch.bool)
    truncated[-1] = True
    return Batch(
        obs=obs,
        next_obs=next_obs,
        actions=actions,
        logp=logp,
        params=params,
        rewards=torch.randn(steps, envs, generator=generator),
        terminated=terminated,
        truncated=truncated,
        valid=valid,
        episode_returns=[],
        episode_lengths=[],
    )


def random_like(tensor: torch.Tensor, seed: int) -> torch.Tensor:
    return torch.randn(tensor.shape, generator=torch.Generator().manual_seed(seed))


PGRUN = str(Path(sys.executable).parent / "pgrun")
TINY = ["total_steps=1200", "eval.every=600", "eval.episodes=2", "log.console=false", "log.every=1"]
STEP_BATCHES = ["algo.batch_size=400"]
"""for algorithms that collect batches of env steps: three batches in TINY's budget"""
EPISODE_BATCHES = ["algo.batch_size=4"]
"""for algorithms that collect complete episodes (vpg, rtg, is)"""
EPISODE_ALGOS = ("vpg", "rtg", "is")


def tiny(algo: str) -> list[str]:
    """Overrides for a short run of `algo` with batches that fit TINY's budget."""
    return [f"algo={algo}", *TINY, *(EPISODE_BATCHES if algo in EPISODE_ALGOS else STEP_BATCHES)]


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


def start_pgrun(run_dir: Path, *args: str) -> subprocess.Popen:
    """Start the installed `pgrun` command into `run_dir`, without standard input (to signal it)."""
    return subprocess.Popen(
        [PGRUN, *args, f"hydra.run.dir={run_dir}"],
        cwd=run_dir.parent,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_rows(process: subprocess.Popen, run_dir: Path, rows: int) -> None:
    """Wait (at most 300 s) until the run started has written `rows` rows of metrics."""
    deadline = time.monotonic() + 300
    while not ((run_dir / "metrics.jsonl").is_file() and len(metrics(run_dir)) >= rows):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def shipped_config(*overrides: str) -> Config:
    """The config `pgrun <overrides> log.console=false` composes, built in this process."""
    register_schemas()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        overrides = hydra_overrides(["log.console=false", *overrides])
        return to_config(compose("config", overrides=overrides))


def learning_rows(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock columns (time/*), which no two runs share."""
    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in metrics(run_dir)]


def saved_parameters(run_dir: Path) -> dict[str, torch.Tensor]:
    """The policy's and (if any) the value network's parameters in the run's policy.pt."""
    payload = torch.load(run_dir / "policy.pt", weights_only=True)
    value = {f"value.{k}": v for k, v in payload.get("value_state_dict", {}).items()}
    return payload["state_dict"] | value


def wandb_records(path: Path) -> list:
    """The protobuf Records of a W&B run file (`run-<id>.wandb`), read without W&B's service:
    a 7-byte header (":W&B", magic, version), then LevelDB-log records in 32 KiB blocks,
    each chunk with a 7-byte header (crc32, length, type: 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto.wandb_internal_pb2 import Record

    data, block, position, pending, records = path.read_bytes(), 32768, 7, b"", []
    assert data[:4] == b":W&B"
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack_from("<IHB", data, position)
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind == 0:  # zero padding
            continue
        pending += chunk
        if kind in (1, 4):
            records.append(Record.FromString(pending))
            pending = b""
    return records


START_LINE = re.compile(r"pgrun: (tuned preset \S+ applied |\S+ on \S+, seed \d+, [\d,]+ env steps -> )")
"""the lines a new run prints once it is built (pgrun.cli.train.print_start)"""


def after_start(stderr: str) -> list[str]:
    """stderr's lines without the start lines of a new run (preset applied, what runs where)."""
    return [line for line in stderr.strip().splitlines() if not START_LINE.match(line)]


def main_runner(monkeypatch, capsys, prog: str, main):
    """A command's main() run in this process (no interpreter start-up), as `prog ARGS`:
    returns (exit code, stdout, stderr) as a CompletedProcess."""

    def run(*args) -> subprocess.CompletedProcess:
        monkeypatch.setattr(sys, "argv", [prog, *map(str, args)])
        try:
            main()
            code = 0
        except SystemExit as exit:
            code = exit.code
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return run


class StopAt(Callback):
    """Ends the run (as a finished one: checkpoint written) after the iteration reaching `steps`."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def after_iteration(self, training, scalars) -> None:
        if training.progress.steps >= self.steps:
            training.should_stop = True
