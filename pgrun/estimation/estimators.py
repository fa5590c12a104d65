"""The estimator role of an iteration: from a batch to the per-step coefficients Phi_t.

The policy-gradient estimate is (1/n) sum_t Phi_t grad log pi_theta(a_t|s_t); Phi_t is the
total return R(tau), the reward-to-go, or an advantage against a learned V(s). The math
lives in pgrun.estimation.functional as pure functions; this module feeds them, through one table of
estimators (ESTIMATORS), what each needs: the critic's V(s) for gae, the current policy's
importance ratios (and the batches it keeps) for importance_sampled.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from pgrun.batch import Batch, chunks, concat_batches
from pgrun.estimation.functional import (
    effective_sample_size,
    explained_variance,
    gae,
    importance_ratios,
    normalize,
    per_decision_weights,
    reward_to_go,
    total_return,
)
from pgrun.networks.policy import Policy

Reencode = Callable[[Tensor], Tensor]
"""raw observation features [T, N, dim] -> the encoded observations the policy reads now"""


@dataclass
class Advantages:
    """One estimate: Phi_t [T, N] for the batch it belongs to, and what else the update needs.

    batch          the steps Phi_t weights (importance_sampled: the reused batches side by side)
    phi            [T, N] Phi_t
    value_targets  [T, N] regression targets for V(s_t) (estimators that use a critic), else None
    importance     [T, N] importance weights w_t (importance_sampled), else None
    values         [T, N] V(s_t) as the critic gave them before the update (gae), else None
    """

    batch: Batch
    phi: Tensor
    value_targets: Tensor | None = None
    importance: Tensor | None = None
    info: dict[str, float] = field(default_factory=dict)
    values: Tensor | None = None

    def flat_values(self) -> Tensor | None:
        """V(s_t) of the batch's valid steps, [n_valid], if the estimator computed them."""
        return None if self.values is None else self.batch.flat(self.values)


class Estimator(Protocol):
    def __call__(self, batch: Batch, critic: nn.Module | None) -> Advantages: ...

    def state_dict(self) -> dict[str, Any]:
        """What the estimator keeps between iterations (for checkpoints), as tensors and plain values."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Stateless:
    """An estimator that keeps nothing between iterations."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class MonteCarlo(Stateless):
    """Phi_t from the observed rewards alone: R(tau) for every step (total_return) or the
    reward-to-go sum_{t'>=t} gamma^(t'-t) r_t' (reward_to_go); no critic."""

    def __init__(self, returns: Callable[[Tensor, Tensor, float], Tensor], gamma: float) -> None:
        self.returns, self.gamma = returns, gamma

    def __call__(self, batch: Batch, critic: nn.Module | None) -> Advantages:
        return Advantages(batch, self.returns(batch.rewards, batch.done, self.gamma))


class GeneralizedAdvantage(Stateless):
    """Phi_t = GAE(gamma, lambda) advantages against the critic's V (Schulman et al. 2016);
    value targets A_t + V(s_t), the lambda-returns."""

    def __init__(self, gamma: float, lam: float) -> None:
        self.gamma, self.lam = gamma, lam

    def __call__(self, batch: Batch, critic: nn.Module | None) -> Advantages:
        if critic is None:
            raise ValueError("the gae estimator needs an update rule with a critic")
        values, next_values = state_values(batch, critic)
        phi, targets = gae(
            batch.rewards, values, next_values, batch.terminated, batch.done, self.gamma, self.lam
        )
        info = {"train/explained_variance": explained_variance(values[batch.valid], targets[batch.valid])}
        return Advantages(batch, phi, value_targets=targets, info=info, values=values)


def state_values(batch: Batch, critic: nn.Module) -> tuple[Tensor, Tensor]:
    """V(s_t) and V(s_{t+1}) [T, N] of every step, without gradients.

    V(s_t) is the collection's (Batch.values) where it recorded them: the same parameters, no
    second pass. Observations stored as bytes (images; never normalized) are the same bytes in
    next_obs[t] and obs[t+1] wherever the episode went on, so there V(s_{t+1}) is the next
    step's V(s_t), and the critic reads only the observations that end a segment (an
    episode's last, the batch's last): on Atari a pass over the batch would cost a fifth of an
    iteration. Float observations, normalized with statistics that moved between t and t+1,
    are read twice (which keeps the runs of vector envs as they were)."""
    with torch.no_grad():
        values = critic(batch.obs) if batch.values is None else batch.values
        if batch.obs.dtype != torch.uint8:
            return values, critic(batch.next_obs)
        next_values = torch.empty_like(values)
        next_values[:-1] = values[1:]
        segment_ends = batch.done.clone()
        segment_ends[-1] = True
        next_values[segment_ends] = critic(batch.next_obs[segment_ends])
    return values, next_values


def current_log_probs(policy: Policy, batch: Batch, chunk: int | None) -> Tensor:
    """log pi_theta(a_t|s_t) under the current parameters, [T, N], computed in chunks."""
    obs, actions = batch.obs.flatten(0, 1), batch.actions.flatten(0, 1)
    with torch.no_grad():
        logp = torch.cat([policy.log_prob_of(obs[part], actions[part]) for part in chunks(len(obs), chunk)])
    return logp.reshape(batch.rewards.shape)


class ImportanceSampled:
    """Reward-to-go over the newest batch and the reuse_batches - 1 before it, each reward
    weighted for the current policy pi_theta by the ratios to the policy mu that collected it.

    per_decision (Precup et al. 2000): Phi_t = sum_{t'>=t} gamma^(t'-t) w_t' r_t',
    w_t' = prod_{k<=t'} rho_k, rho_k = pi(a_k|s_k) / mu(a_k|s_k): reward r_t' carries the
    weight of the actions that led to it, so E_mu[Phi_t grad log pi(a_t|s_t)] is pi's term.
    per_step: Phi_t = rho_t * reward-to-go_t (lower variance, biased). Then every rho_k is
    clamped to weight_clip, w truncated at weight_max, and divided by its mean if self_normalize.
    The estimator keeps the batches it reuses.

    With normalized observations, pi_theta must read an old batch's s_t as it reads a new one:
    `reencode` standardizes the batch's raw features (Batch.features) with the statistics in
    force now, for the older batches (the newest one is as its policy read it). Their next_obs
    are left as they were: no critic reads them.
    """

    def __init__(self, config: Any, policy: Policy, reencode: Reencode | None = None) -> None:
        self.config, self.policy, self.reencode = config, policy, reencode
        self.history: deque[Batch] = deque(maxlen=config.reuse_batches)

    def importance_weights(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        """The importance weights w_t [T, N] of a (possibly stale) batch, and their diagnostics."""
        config = self.config
        clip = tuple(config.weight_clip) if config.weight_clip is not None else None
        logp = current_log_probs(self.policy, batch, config.chunk_size)
        rho = importance_ratios(logp, batch.logp, clip)
        w = per_decision_weights(rho, batch.done) if config.is_weights == "per_decision" else rho
        if config.weight_max is not None:
            w = w.clamp(max=config.weight_max)
        if config.self_normalize:
            w = w / w[batch.valid].mean()
        valid = w[batch.valid]
        info = {
            "train/is_weight_mean": valid.mean().item(),
            "train/is_weight_max": valid.max().item(),
            "train/is_ess": effective_sample_size(valid),
            "train/is_ess_fraction": effective_sample_size(valid) / valid.numel(),
        }
        return w, info

    def __call__(self, batch: Batch, critic: nn.Module | None) -> Advantages:
        self.history.append(batch)
        # (batches read from a checkpoint are on the CPU: they join the new one's device)
        reused = [old.to(batch.obs.device) for old in list(self.history)[:-1]]
        if self.reencode is not None:
            reused = [
                replace(old, obs=self.reencode(old.features)) if old.features is not None else old
                for old in reused
            ]  # (a checkpoint older than Batch.features holds none: read as collected)
        sample = concat_batches([*reused, batch]) if reused else batch
        w, info = self.importance_weights(sample)
        rewards, done, gamma = sample.rewards.double(), sample.done, self.config.gamma
        if self.config.is_weights == "per_decision":
            phi = reward_to_go(w * rewards, done, gamma)
        else:
            phi = w * reward_to_go(rewards, done, gamma)
        return Advantages(sample, phi.float(), importance=w, info=info)

    def state_dict(self) -> dict[str, Any]:
        return {"history": [asdict(batch) for batch in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history.clear()
        self.history.extend(Batch(**fields) for fields in state["history"])


class Normalized:
    """Phi_t shifted and scaled over the batch (pgrun.estimation.functional.normalize): a constant
    baseline, carried by the importance weight under another policy's samples."""

    def __init__(self, estimator: Estimator) -> None:
        self.estimator = estimator

    def __call__(self, batch: Batch, critic: nn.Module | None) -> Advantages:
        estimate = self.estimator(batch, critic)
        estimate.phi = normalize(estimate.phi, estimate.batch.valid, importance=estimate.importance)
        return estimate

    def state_dict(self) -> dict[str, Any]:
        return self.estimator.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.estimator.load_state_dict(state)


ESTIMATORS: dict[str, Callable[[Any, Policy, Reencode | None], Estimator]] = {
    "total_return": lambda config, policy, reencode: MonteCarlo(total_return, config.gamma),
    "reward_to_go": lambda config, policy, reencode: MonteCarlo(reward_to_go, config.gamma),
    "gae": lambda config, policy, reencode: GeneralizedAdvantage(config.gamma, config.gae_lambda),
    "importance_sampled": ImportanceSampled,
}
"""Estimator name (algo.estimator) -> its constructor from the algorithm's config, the policy
and how to re-encode a reused batch's observations (None: as they were collected)."""

REUSES_BATCHES = ("importance_sampled",)
"""estimators that keep batches for later iterations: they need Batch.features to re-encode"""


def make_estimator(config: Any, policy: Policy, reencode: Reencode | None = None) -> Estimator:
    """The configured estimator, normalized over the batch if config.normalize_advantages."""
    estimator = ESTIMATORS[config.estimator](config, policy, reencode)
    return Normalized(estimator) if config.normalize_advantages else estimator
