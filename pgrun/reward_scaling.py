"""Reward scaling by a running standard deviation of the discounted return.

Engstrom et al. (2020, "Implementation Matters in Deep Policy Gradients") found this
scaling, common in PPO implementations, to matter on MuJoCo tasks: each env copy keeps its
discounted return G_t = gamma * G_{t-1} + r_t (reset at episode ends), and the reward the
learner sees is r_t / sqrt(Var[G] + 1e-8), clipped to [-clip, clip]. The mean is not
subtracted: shifting rewards would change which policies are optimal.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pgrun.envs import RunningMeanStd


class RewardScaler:
    """Scales each step's rewards [N] of N env copies; the statistics go into checkpoints."""

    def __init__(self, num_envs: int, gamma: float, clip: float | None) -> None:
        self.gamma, self.clip = gamma, clip
        self.returns = np.zeros(num_envs)
        self.statistics = RunningMeanStd(1)

    def __call__(self, reward: np.ndarray, ended: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
        """The scaled rewards of one step; `ended`: the copies whose episode ended at it;
        `active`: the copies that took a step (default all; a copy that only reset did not)."""
        if active is None:
            self.returns = self.gamma * self.returns + reward
            self.statistics.update(self.returns.reshape(-1, 1))
        elif active.any():
            self.returns[active] = self.gamma * self.returns[active] + reward[active]
            self.statistics.update(self.returns[active].reshape(-1, 1))
        scaled = reward / self.statistics.std[0]
        self.returns[ended] = 0.0
        return scaled if self.clip is None else np.clip(scaled, -self.clip, self.clip)

    def restart(self) -> None:
        """Every copy starts a new episode (a batch of complete episodes resets the envs)."""
        self.returns[:] = 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"returns": torch.as_tensor(self.returns).clone(), "statistics": self.statistics.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.returns = state["returns"].numpy().copy()
        self.statistics.load_state_dict(state["statistics"])
