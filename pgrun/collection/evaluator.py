"""Evaluation: the mean return of one episode on each of a separate set of env copies."""

from __future__ import annotations

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from pgrun.collection.normalization import ObservationPreprocessor
from pgrun.networks.layers import device_of
from pgrun.networks.policy import Policy

EVAL_SEED_OFFSET = 1_000_000
"""a run's evaluations reset their env copies with seeds from config.seed + this"""


class Evaluator:
    """Runs `envs.num_envs` episodes in parallel, one per copy, and reports their returns.

    Evaluation `index` (the run's first is 0) resets the copies with `seed_for(index)`:
    with fresh starts (eval.starts=fresh) a seed of its own, derived from the run's seed and
    the index, so that each evaluation samples new start states and env randomness (as
    Stable-Baselines3's evaluations do), yet a run's evaluations are the same every time it
    runs or resumes; with fixed starts the same seed every time, so all evaluations of a run
    (and of runs with the same seed) start from the same states. Sampling
    (deterministic=False) draws from a torch RNG seeded with the same seed, forked so that
    the training's random stream is left untouched.
    """

    def __init__(
        self,
        envs: VectorEnv,
        preprocessor: ObservationPreprocessor,
        seed: int,
        deterministic: bool,
        fresh_starts: bool = False,
    ) -> None:
        self.envs, self.preprocessor, self.deterministic = envs, preprocessor, deterministic
        self.seed, self.fresh_starts = seed, fresh_starts

    def seed_for(self, index: int) -> int:
        """The seed evaluation `index` resets its copies with (copy i gets seed + i)."""
        if not self.fresh_starts:
            return self.seed
        return int(np.random.SeedSequence([self.seed, index]).generate_state(1)[0])

    def __call__(self, policy: Policy, index: int = 0) -> np.ndarray:
        """The return of one episode per env copy, [num_envs], in evaluation `index`."""
        return self.episodes(policy, index)[0]

    def episodes(self, policy: Policy, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The return and the length (env steps) of one episode per env copy, each [num_envs]."""
        n, seed = self.envs.num_envs, self.seed_for(index)
        obs, _ = self.envs.reset(seed=seed)
        returns, running = np.zeros(n), np.ones(n, dtype=bool)
        lengths = np.zeros(n, dtype=np.int64)
        device = device_of(policy)
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(seed)
            while running.any():
                features = self.preprocessor(obs).to(device)
                action = (
                    policy.mode(features) if self.deterministic else policy.distribution(features).sample()
                )
                obs, reward, terminated, truncated, _ = self.envs.step(policy.env_action(action))
                returns += reward * running
                lengths += running
                running &= ~(terminated | truncated)
        return returns, lengths
