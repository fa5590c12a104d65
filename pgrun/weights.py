"""From a batch to the per-step weights Phi_t: the estimator role of an iteration.

The math lives in pgrun.estimators as pure functions; this module feeds them what the
config asks for: V(s) from the value function for gae, the current policy's importance
ratios for importance-sampled algorithms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pgrun.algos.policy_gradient import minibatches
from pgrun.collector import Batch
from pgrun.config import ActorCriticConfig, AlgoConfig, ImportanceConfig
from pgrun.estimators import (
    effective_sample_size,
    gae,
    importance_ratios,
    normalize,
    per_decision_weights,
    reward_to_go,
    total_return,
)
from pgrun.policies import Policy
from pgrun.value import ValueFunction, explained_variance


@dataclass
class Weights:
    """Phi_t [T, N] for the update rule, value targets [T, N] for the value function (if any)."""

    phi: Tensor
    value_targets: Tensor | None
    info: dict[str, float]


def current_log_probs(policy: Policy, batch: Batch, chunk: int | None) -> Tensor:
    """log pi_theta(a_t|s_t) under the current parameters, [T, N], computed in chunks."""
    obs, actions = batch.obs.flatten(0, 1), batch.actions.flatten(0, 1)
    with torch.no_grad():
        logp = torch.cat(
            [policy.distribution(obs[part]).log_prob(actions[part]) for part in minibatches(len(obs), chunk)]
        )
    return logp.reshape(batch.rewards.shape)


def importance_weights(config: ImportanceConfig, policy: Policy, batch: Batch) -> tuple[Tensor, dict]:
    """The importance weights w_t of a (possibly stale) batch and their diagnostics.

    per_decision: w_t = prod_{k<=t} rho_k within the episode; per_step: w_t = rho_t.
    Then truncation at weight_max and self-normalization (w / mean w), as configured.
    """
    clip = tuple(config.weight_clip) if config.weight_clip is not None else None
    rho = importance_ratios(current_log_probs(policy, batch, config.minibatch_size), batch.logp, clip)
    w = per_decision_weights(rho, batch.done) if config.is_weights == "per_decision" else rho
    if config.weight_max is not None:
        w = w.clamp(max=config.weight_max)
    valid = w[batch.valid]
    if config.self_normalize:
        w = w / valid.mean()
        valid = w[batch.valid]
    info = {
        "train/is_weight_mean": valid.mean().item(),
        "train/is_weight_max": valid.max().item(),
        "train/is_ess": effective_sample_size(valid),
        "train/is_ess_fraction": effective_sample_size(valid) / valid.numel(),
    }
    return w, info


def estimate_weights(
    config: AlgoConfig, batch: Batch, policy: Policy, value_function: ValueFunction | None
) -> Weights:
    """Phi_t as the config's estimator defines it, normalized over the batch if configured."""
    rewards, done, gamma = batch.rewards, batch.done, config.gamma
    value_targets, info, w = None, {}, None
    if config.estimator == "gae":
        assert isinstance(config, ActorCriticConfig) and value_function is not None
        values, next_values = value_function(batch.obs), value_function(batch.next_obs)
        phi, value_targets = gae(
            rewards, values, next_values, batch.terminated, done, gamma, config.gae_lambda
        )
        info["train/explained_variance"] = explained_variance(values[batch.valid], value_targets[batch.valid])
    elif isinstance(config, ImportanceConfig):
        w, info = importance_weights(config, policy, batch)
        if config.is_weights == "per_decision":
            # Psi_t = sum_{t'>=t} gamma^(t'-t) w_t' r_t': reward r_t' carries the weight of the
            # actions that led to it, so E_mu[Psi_t grad log pi(a_t|s_t)] is pi's gradient term.
            phi = reward_to_go(w * rewards.double(), done, gamma)
        else:
            phi = w * reward_to_go(rewards.double(), done, gamma)
    elif config.estimator == "total_return":
        phi = total_return(rewards, done, gamma)
    else:
        phi = reward_to_go(rewards, done, gamma)
    if config.normalize_weights:
        phi = normalize(phi, batch.valid, importance=w)
    return Weights(phi.float(), value_targets, info)
