"""Memory of one batch of Atari-sized frames: 8 env copies x 128 steps of 84x84x4 uint8
observations (what AtariPreprocessing + FrameStackObservation(4) give), collected by pgrun's
collector, as stored (obs and next_obs) and as the peak RSS of the process that collected it.
With --ref COMMIT the same is measured with the code of that commit (a git worktree): before
issue #22, pgrun flattened image observations into float32 vectors.

    python benchmarks/batch_memory.py                 # the working tree
    python benchmarks/batch_memory.py --ref d98c0a7   # the code before image observations

The frames are random bytes from a stand-in env (no emulator needed); the policy is what
pgrun builds for the space (now the Nature CNN; before, an MLP over the flattened frame).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WORKER = r"""
import json, resource, sys
import gymnasium as gym
import numpy as np
import torch

class AtariSizedFrames(gym.Env):
    observation_space = gym.spaces.Box(0, 255, (84, 84, 4), dtype=np.uint8)
    action_space = gym.spaces.Discrete(6)
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.np_random.integers(0, 256, (84, 84, 4), dtype=np.uint8), {}
    def step(self, action):
        return self.np_random.integers(0, 256, (84, 84, 4), dtype=np.uint8), 0.0, False, False, {}

gym.register(id="AtariSizedFrames-v0", entry_point=AtariSizedFrames, max_episode_steps=10_000)
from pgrun.collection.collector import Collector
from pgrun.collection.envs import make_vector_env
from pgrun.collection.normalization import ObservationPreprocessor
from pgrun.config import EnvConfig, PolicyConfig
from pgrun.networks.policy import make_policy

torch.set_num_threads(1)
envs = make_vector_env(EnvConfig(id="AtariSizedFrames-v0", num_envs=8), 8)
preprocessor = ObservationPreprocessor(envs.single_observation_space)
layout = getattr(preprocessor, "layout", preprocessor.dim)  # (no layout before issue #22)
policy = make_policy(layout, envs.single_action_space, PolicyConfig())
batch = Collector(envs, policy, preprocessor, "steps", 8 * 128, seed=0).collect()
stored = {name: getattr(batch, name) for name in ("obs", "next_obs")}
print(json.dumps({"pgrun": __import__("pgrun").__file__,
    "dtype": str(batch.obs.dtype),
    "shape": list(batch.obs.shape),
    "bytes": {name: t.numel() * t.element_size() for name, t in stored.items()},
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def measure(pythonpath: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(pythonpath))  # (run from there too: `python -c` puts the cwd first)
    result = subprocess.run(
        [sys.executable, "-c", WORKER], env=env, cwd=pythonpath, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", help="measure the code of this git commit instead of the working tree")
    args = parser.parse_args()
    if args.ref is None:
        report = measure(ROOT)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            tree = Path(tmp) / "ref"
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(tree), args.ref],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            try:
                report = measure(tree)
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=True)
    total = sum(report["bytes"].values())
    print(f"pgrun from {report['pgrun']}")
    print(f"code: {args.ref or 'working tree'}")
    print(f"obs stored as {report['dtype']} {report['shape']}")
    for name, size in report["bytes"].items():
        print(f"  {name:9s} {size / 2**20:7.1f} MiB")
    peak = report["peak_rss_mib"]
    print(f"  together  {total / 2**20:7.1f} MiB; peak RSS of the collecting process {peak:.0f} MiB")


if __name__ == "__main__":
    main()
