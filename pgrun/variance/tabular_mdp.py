"""A small finite MDP whose policy gradient is known exactly, to measure estimators against.

`RandomMDP` is a gymnasium env (`env.id=pgrun.variance.tabular_mdp:RandomMDP`): S states
observed as Discrete(S), A actions, a start distribution, transitions and rewards drawn once
from `mdp_seed`, and episodes that end after `horizon` steps. Its `model` lets
`exact_gradient` compute, by dynamic programming over (t, s, a), what the estimators of
pgrun.variance estimate, with autograd through the policy network on every state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from pgrun.variance.gradients import flat_gradient


@dataclass(frozen=True)
class TabularModel:
    """start rho_0(s) [S], transition P(s'|s, a) [S, A, S], reward r(s, a) [S, A], horizon H."""

    start: np.ndarray
    transition: np.ndarray
    reward: np.ndarray
    horizon: int


def random_model(states: int, actions: int, horizon: int, seed: int) -> TabularModel:
    """rho_0 and every P(.|s, a) from a flat Dirichlet; rewards uniform in [1, 2]."""
    rng = np.random.default_rng(seed)
    return TabularModel(
        start=rng.dirichlet(np.ones(states)),
        transition=rng.dirichlet(np.ones(states), size=(states, actions)),
        reward=1.0 + rng.random((states, actions)),
        horizon=horizon,
    )


class RandomMDP(gym.Env):
    """The MDP of `random_model`; the episode terminates after `horizon` steps."""

    def __init__(self, states: int = 4, actions: int = 2, horizon: int = 6, mdp_seed: int = 1) -> None:
        self.model = random_model(states, actions, horizon, mdp_seed)
        self.observation_space = gym.spaces.Discrete(states)
        self.action_space = gym.spaces.Discrete(actions)
        self.state, self.t = 0, 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[int, dict]:
        super().reset(seed=seed)
        self.state = int(self.np_random.choice(len(self.model.start), p=self.model.start))
        self.t = 0
        return self.state, {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict]:
        reward = float(self.model.reward[self.state, action])
        probabilities = self.model.transition[self.state, action]
        self.state = int(self.np_random.choice(len(probabilities), p=probabilities))
        self.t += 1
        return self.state, reward, self.t >= self.model.horizon, False, {}


def exact_gradient(
    model: TabularModel, log_probs: Tensor, parameters: list[torch.nn.Parameter], gamma: float
) -> Tensor:
    """The expectation of the reward-to-go estimate, sum_t E[G_t grad log pi(a_t|s_t)], flat.

    log_probs [S, A]: log pi(a|s) for every state and action, differentiable in `parameters`.
    With d_t(s) the probability of s at step t and Q_t(s, a) = r(s, a) + gamma sum_s' P(s'|s, a)
    V_{t+1}(s') (V_H = 0), it is sum_t sum_s d_t(s) sum_a grad pi(a|s) Q_t(s, a), taken by
    autograd with d_t and Q_t held fixed. With gamma = 1 this is grad J (the policy gradient
    theorem); with gamma < 1 it is what the discounted reward-to-go estimates (not grad of the
    discounted J, which weights step t by gamma^t more; Nota & Thomas 2020).
    """
    pi = log_probs.double().exp()
    start, transition, reward = (
        torch.as_tensor(x, dtype=pi.dtype) for x in (model.start, model.transition, model.reward)
    )
    with torch.no_grad():
        q, v = [], torch.zeros(len(start), dtype=pi.dtype)
        for _ in range(model.horizon):
            q.insert(0, reward + gamma * transition @ v)
            v = (pi * q[0]).sum(-1)
        visits, d = [], start
        for _ in range(model.horizon):
            visits.append(d)
            d = torch.einsum("s,sa,sat->t", d, pi, transition)
    surrogate = sum((visits[t].unsqueeze(-1) * pi * q[t]).sum() for t in range(model.horizon))
    return flat_gradient(surrogate, parameters)
