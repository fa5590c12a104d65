"""Estimators: pure functions from a batch's tensors to the per-step coefficients Phi_t.

All tensors are time-major [T, N]. `done[t]` closes the episode (or recorded segment)
after step t; the sums below never reach across it.
"""

from __future__ import annotations

import torch
from torch import Tensor


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
    time = torch.arange(len(done), device=done.device).unsqueeze(1).expand_as(done)
    last_start = torch.where(episode_starts(done), time, 0).cummax(dim=0).values
    return rtg.gather(0, last_start)


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    done: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimation; returns (advantages, value targets).

    A_t = sum_l (gamma*lam)^l delta_{t+l} within t's episode,
    delta_t = r_t + gamma * V(s_{t+1}) * (1 - terminated_t) - V(s_t),
    value target A_t + V(s_t). A terminated step does not bootstrap; a truncated one
    (time limit or batch edge) bootstraps from V of its true final observation.
    lam = 1 gives reward-to-go (bootstrapped at truncation) minus V(s_t); lam = 0 gives delta_t.
    """
    deltas = rewards + gamma * (~terminated).to(rewards.dtype) * next_values - values
    advantages = discounted_cumsum(deltas, gamma * lam * (~done).to(rewards.dtype))
    return advantages, advantages + values


def episode_cumsum(x: Tensor, done: Tensor) -> Tensor:
    """y_t = sum of x_k over k from the first step of t's episode up to t (a forward scan)."""
    restart = (~episode_starts(done)).to(x.dtype)
    return discounted_cumsum(x.flip(0), restart.flip(0)).flip(0)


def importance_ratios(
    logp: Tensor, logp_behaviour: Tensor, clip: tuple[float, float] | None = None
) -> Tensor:
    """rho_t = pi(a_t|s_t) / mu(a_t|s_t), clamped to [low, high] if `clip` is given (float64)."""
    rho = (logp.double() - logp_behaviour.double()).exp()
    return rho if clip is None else rho.clamp(clip[0], clip[1])


def per_decision_weights(rho: Tensor, done: Tensor) -> Tensor:
    """w_t = prod_{k=start..t} rho_k over t's episode, computed as exp of a sum of logs."""
    # A ratio of 0 (clip low 0) gives log -inf; a finite floor keeps the scan's products free of NaN.
    return episode_cumsum(rho.log().clamp(min=-1e4), done).exp()


def effective_sample_size(w: Tensor) -> float:
    """ESS = (sum w)^2 / sum w^2 (Kong 1992): how many equally weighted samples the
    importance-weighted ones are worth."""
    return (w.sum() ** 2 / (w**2).sum()).item()


def normalize(phi: Tensor, valid: Tensor, importance: Tensor | None = None, eps: float = 1e-8) -> Tensor:
    """(Phi - w b) / (std + eps) over the valid steps of the whole batch, b = sum Phi / sum w.

    Without importance weights (w = 1) this is (Phi - mean) / std: a constant baseline
    (Williams 1992) and a rescaled step. With samples from another policy mu, a baseline
    keeps the gradient unbiased only when it carries the step's importance weight,
    E_mu[w_t b grad log pi(a_t|s_t)] = 0, whereas E_mu[b grad log pi(a_t|s_t)] != 0.
    """
    centered, std = centered_and_std(phi, valid, importance)
    return centered if std is None else centered / (std + eps)


def centered_and_std(
    phi: Tensor, valid: Tensor, importance: Tensor | None = None
) -> tuple[Tensor, Tensor | None]:
    """Phi - w b, b = sum Phi / sum w over the valid steps, and the std of that over them
    (None with fewer than two): the two pieces of `normalize`."""
    w = torch.ones_like(phi) if importance is None else importance.to(phi.dtype)
    baseline = phi[valid].sum() / w[valid].sum()
    centered = phi - w * baseline
    return centered, (centered[valid].std() if valid.sum() >= 2 else None)


def explained_variance(predicted: Tensor, targets: Tensor) -> float:
    """1 - Var[targets - predicted] / Var[targets]: 1 is perfect, 0 no better than a constant."""
    variance = targets.var()
    if variance == 0:
        return float("nan")
    return (1 - (targets - predicted).var() / variance).item()
