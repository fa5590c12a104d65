"""Evaluation: the mean return of one episode on each of a separate set of env copies."""

from __future__ import annotations

import numpy as np
import torch
from gymnasium.vector import VectorEnv

from pgrun.envs import ObservationEncoder
from pgrun.policies import Policy


class Evaluator:
    """Runs `envs.num_envs` episodes in parallel, one per copy, and reports their returns.

    The copies are seeded once, so evaluation k of a run always sees the same start
    states, whatever the training did. Sampling (deterministic=False) draws from a forked
    torch RNG and leaves the training's random stream untouched.
    """

    def __init__(self, envs: VectorEnv, encoder: ObservationEncoder, seed: int, deterministic: bool) -> None:
        self.envs, self.encoder, self.deterministic = envs, encoder, deterministic
        self.seed = seed
        self.next_seed: int | None = seed

    def __call__(self, policy: Policy) -> np.ndarray:
        n = self.envs.num_envs
        obs, _ = self.envs.reset(seed=self.next_seed)
        self.next_seed = None
        returns, running = np.zeros(n), np.ones(n, dtype=bool)
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(self.seed)
            while running.any():
                features = self.encoder(obs)
                action = (
                    policy.mode(features) if self.deterministic else policy.distribution(features).sample()
                )
                obs, reward, terminated, truncated, _ = self.envs.step(policy.env_action(action))
                returns += reward * running
                running &= ~(terminated | truncated)
        return returns
