"""Evaluation: the mean return of one episode on each of a separate set of env copies."""

from __future__ import annotations

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from pgrun.collection.normalization import ObservationPreprocessor
from pgrun.networks.policy import Policy

EVAL_SEED_OFFSET = 1_000_000
"""a run's evaluations reset their env copies with seeds from config.seed + this"""


class Evaluator:
    """Runs `envs.num_envs` episodes in parallel, one per copy, and reports their returns.

    Every evaluation resets the copies with the same seed, so all evaluations of a run (and
    of runs with the same seed) start from the same states and see the same env randomness:
    an eval return depends only on the policy, not on how many evaluations ran before.
    Sampling (deterministic=False) draws from a torch RNG seeded the same way each time,
    forked so that the training's random stream is left untouched.
    """

    def __init__(
        self, envs: VectorEnv, preprocessor: ObservationPreprocessor, seed: int, deterministic: bool
    ) -> None:
        self.envs, self.preprocessor, self.deterministic = envs, preprocessor, deterministic
        self.seed = seed

    def __call__(self, policy: Policy) -> np.ndarray:
        """The return of one episode per env copy, [num_envs]."""
        return self.episodes(policy)[0]

    def episodes(self, policy: Policy) -> tuple[np.ndarray, np.ndarray]:
        """The return and the length (env steps) of one episode per env copy, each [num_envs]."""
        n = self.envs.num_envs
        obs, _ = self.envs.reset(seed=self.seed)
        returns, running = np.zeros(n), np.ones(n, dtype=bool)
        lengths = np.zeros(n, dtype=np.int64)
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(self.seed)
            while running.any():
                features = self.preprocessor(obs)
                action = (
                    policy.mode(features) if self.deterministic else policy.distribution(features).sample()
                )
                obs, reward, terminated, truncated, _ = self.envs.step(policy.env_action(action))
                returns += reward * running
                lengths += running
                running &= ~(terminated | truncated)
        return returns, lengths
