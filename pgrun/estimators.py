"""Estimators: pure functions from a batch's tensors to per-step weights Phi_t.

All tensors are time-major [T, N]. `done[t]` closes the episode (or recorded segment)
after step t; the sums below never reach across it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from pgrun.collector import Batch


def discounted_cumsum(x: Tensor, discount: Tensor) -> Tensor:
    """y_t = x_t + discount_t * y_{t+1}, with y_T = 0, along dim 0.

    discount_t = gamma * (1 - done_t) gives discounted sums that stop at episode ends.
    Computed as a reverse parallel scan (ceil(log2 T) vector steps, no loop over t):
    after the step with offset k, y_t sums x over [t, t + 2k) and a_t is the product of
    discount over the same window, so combining (a_t, y_t) with (a_{t+k}, y_{t+k}) doubles it.
    """
    y, a = x.clone(), discount.clone()
    k = 1
    while k < len(x):
        y_next, a_next = y.clone(), a.clone()
        y_next[:-k] = y[:-k] + a[:-k] * y[k:]
        a_next[:-k] = a[:-k] * a[k:]
        a_next[-k:] = 0.0
        y, a = y_next, a_next
        k *= 2
    return y


def reward_to_go(rewards: Tensor, done: Tensor, gamma: float) -> Tensor:
    """R_t = sum_{t'=t}^{end} gamma^(t'-t) r_t', the end being the step that closes t's episode."""
    return discounted_cumsum(rewards, gamma * (~done).to(rewards.dtype))


def episode_starts(done: Tensor) -> Tensor:
    """start_t: step t opens an episode (t == 0, or the previous step closed one)."""
    starts = torch.ones_like(done)
    starts[1:] = done[:-1]
    return starts


def total_return(rewards: Tensor, done: Tensor, gamma: float) -> Tensor:
    """R(tau) = sum_{t=0}^{end} gamma^t r_t of the step's episode, the same for all its steps.

    It is the reward-to-go at the episode's first step, carried forward to the rest.
    """
    rtg = reward_to_go(rewards, done, gamma)
    time = torch.arange(len(done)).unsqueeze(1).expand_as(done)
    last_start = torch.where(episode_starts(done), time, 0).cummax(dim=0).values
    return rtg.gather(0, last_start)


def normalize(weights: Tensor, valid: Tensor, eps: float = 1e-8) -> Tensor:
    """(Phi - mean) / (std + eps) over the valid steps of the whole batch."""
    values = weights[valid]
    if values.numel() < 2:
        return weights - values.mean()
    return (weights - values.mean()) / (values.std() + eps)


Estimator = Callable[[Batch, float], Tensor]

ESTIMATORS: dict[str, Estimator] = {
    "total_return": lambda batch, gamma: total_return(batch.rewards, batch.done, gamma),
    "reward_to_go": lambda batch, gamma: reward_to_go(batch.rewards, batch.done, gamma),
}
