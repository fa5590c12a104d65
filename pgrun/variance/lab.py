"""The measurement: K independent batches at a fixed policy, every estimator's gradient
estimate on each, and how those estimates scatter around a reference gradient.

    for each subject (a checkpoint, or an initialization):
        reference g*   exact (a tabular model, pgrun.variance.tabular_mdp), else the mean of M
                       estimates on M more batches (value_baseline if there is a critic, else
                       reward_to_go)
        K batches of E_max episodes under pi; each estimator's g on the first E_b episodes of
        each, for every batch size b (paired: the same batches for every on-policy estimator;
        is:K gets K batches of the stale policy mu)
        per estimator and size: pgrun.variance.statistics.summarize(g_1..g_K, g*)

Batch sizes are given in env steps: B steps are E = max(1, round(B / L)) episodes, L the
mean episode length under the policy (from a pilot sample), so that every batch holds a
fixed number of complete episodes and the estimates stay unbiased.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass, field

import gymnasium as gym
import torch
from torch import Tensor, nn
from tqdm import tqdm

from pgrun.algorithms.value_fitting import FittedValue
from pgrun.batch import Batch
from pgrun.collection.envs import make_vector_env, resolve_env_id
from pgrun.config import ConfigError, ValueConfig
from pgrun.estimation.functional import effective_sample_size, explained_variance, reward_to_go
from pgrun.networks.policy import Policy
from pgrun.networks.value import value_networks
from pgrun.training.rng import seed_everything
from pgrun.variance.estimators import EstimatorSpec, coefficients, normalized, parse_estimator
from pgrun.variance.gradients import episode_estimate
from pgrun.variance.sampling import EpisodeSampler, episode_ranks, first_episodes
from pgrun.variance.statistics import Reference, summarize
from pgrun.variance.subjects import Subject, stale_policy
from pgrun.variance.tabular_mdp import TabularModel, exact_gradient

DEFAULT_ESTIMATORS = ("total_return", "reward_to_go", "value_baseline", "gae:0.95", "reward_to_go+norm")


@dataclass
class Settings:
    """How to measure (pgrun-variance's options)."""

    estimators: list[str] = field(default_factory=lambda: list(DEFAULT_ESTIMATORS))
    batch_steps: list[int] = field(default_factory=lambda: [1000, 5000])
    batches: int = 100
    """K: independent batches per batch size"""
    reference_batches: int | None = None
    """M: batches of the largest size behind a sampled reference (default K)"""
    gamma: float | None = None
    """discount of the returns (default: the run's algo.gamma)"""
    num_envs: int = 16
    seed: int = 0
    critic_fit_steps: int = 50_000
    """env steps to fit a critic on when the run has none and an estimator needs one"""
    progress: bool = True

    def checked(self) -> list[EstimatorSpec]:
        specs = [parse_estimator(name) for name in self.estimators]
        if self.batches < 2:
            raise ConfigError(f"--batches={self.batches} is not allowed: must be >= 2 (a variance needs two)")
        if not self.batch_steps or min(self.batch_steps) < 1:
            raise ConfigError(f"--batch-steps={self.batch_steps} is not allowed: each must be >= 1")
        if self.reference_batches is not None and self.reference_batches < 2:
            raise ConfigError(f"--reference-batches={self.reference_batches} is not allowed: must be >= 2")
        if self.num_envs < 1:
            raise ConfigError(f"--envs={self.num_envs} is not allowed: must be >= 1")
        if len(set(self.estimators)) < len(self.estimators):
            raise ConfigError(f"--estimators {' '.join(self.estimators)}: each may be named once")
        if self.gamma is not None and not 0.0 <= self.gamma <= 1.0:
            raise ConfigError(f"--gamma={self.gamma} is not allowed: must be in [0, 1]")
        return specs


def tabular_model(subject: Subject) -> TabularModel | None:
    """The env's exact model, if it has one (pgrun.variance.tabular_mdp)."""
    env = gym.make(resolve_env_id(subject.config.env.id), **subject.config.env.kwargs)
    model = getattr(env.unwrapped, "model", None)
    env.close()
    return model if isinstance(model, TabularModel) else None


def flat_log_probs(policy: Policy, batch: Batch) -> Tensor:
    """log pi(a_t|s_t) [T, N], differentiable in the policy's parameters."""
    return policy.log_prob_of(batch.obs.flatten(0, 1), batch.actions.flatten(0, 1)).reshape(
        batch.rewards.shape
    )


def all_state_log_probs(subject: Subject, states: int, actions: int) -> Tensor:
    """log pi(a|s) [S, A] of a Discrete-observation, Discrete-action policy, for every s and a."""
    obs = subject.parts.preprocessor(torch.arange(states).numpy())
    return torch.stack(
        [subject.parts.policy.log_prob_of(obs, torch.full((states,), a)) for a in range(actions)], dim=1
    )


def fitted_critic(subject: Subject, sampler: EpisodeSampler, gamma: float, steps: int) -> nn.Module:
    """V(s) regressed on the discounted reward-to-go of `steps` env steps of fresh episodes
    (for runs whose algorithm learns none), with the policy's architecture."""
    print(f"pgrun-variance: fitting a critic on {steps:,} env steps (the run has none)", file=sys.stderr)
    obs, targets, collected = [], [], 0
    while collected < steps:
        batch = sampler.batch(sampler.collector.num_envs)
        returns = reward_to_go(batch.rewards.double(), batch.done, gamma)
        obs.append(batch.flat(batch.obs))
        targets.append(batch.flat(returns).float())
        collected += int(batch.valid.sum())
    value = FittedValue(
        ValueConfig(hidden_sizes=list(subject.config.policy.hidden_sizes), iters=50, minibatch_size=256),
        value_networks(subject.parts.preprocessor.layout, subject.config.policy),
    )
    value.fit(torch.cat(obs), torch.cat(targets))
    return value.net


class Measurement:
    """One subject's measurement under `settings` (see the module docstring)."""

    def __init__(self, subject: Subject, settings: Settings, specs: list[EstimatorSpec]) -> None:
        self.subject, self.settings, self.specs = subject, settings, specs
        self.gamma = settings.gamma if settings.gamma is not None else subject.config.algo.gamma
        self.policy = subject.parts.policy
        self.parameters = list(self.policy.parameters())
        env = subject.config.env
        self.reward_units = (subject.reward_std, env.clip_reward if env.normalize_reward else None)
        """the rewards the run learned from (pgrun.variance.sampling.EpisodeSampler)"""

    def run(self) -> list[dict]:
        subject, settings = self.subject, self.settings
        stale = {spec.stale for spec in self.specs if spec.off_policy}
        behaviour = {k: stale_policy(subject, k) for k in sorted(stale)}  # before reseeding
        seed_everything(settings.seed)
        envs = make_vector_env(subject.config.env, settings.num_envs, record=False)
        try:
            sampler = EpisodeSampler(
                envs, self.policy, subject.parts.preprocessor, settings.seed, *self.reward_units
            )
            self.critic = subject.parts.rule.critic
            if self.critic is None and any(spec.uses_critic for spec in self.specs):
                self.critic = fitted_critic(subject, sampler, self.gamma, settings.critic_fit_steps)
            self.episodes = self.episode_counts(sampler)
            reference, explained = self.reference(sampler)
            self.estimates, extras = self.estimate_all(sampler, behaviour)
        finally:
            envs.close()
        return self.rows(self.estimates, extras, reference, explained)

    def episode_counts(self, sampler: EpisodeSampler) -> dict[int, int]:
        """Batch steps -> episodes, from the mean episode length of a pilot sample."""
        steps = episodes = 0
        while steps < max(self.settings.batch_steps):
            batch = sampler.batch(sampler.collector.num_envs)
            steps, episodes = steps + int(batch.valid.sum()), episodes + len(batch.episode_lengths)
        self.mean_length = steps / episodes
        return {b: max(1, round(b / self.mean_length)) for b in self.settings.batch_steps}

    def reference(self, sampler: EpisodeSampler) -> tuple[Reference, float]:
        """g* (exact, or sampled as the module docstring says) and the critic's explained
        variance of the discounted reward-to-go on the reference batches (nan without one)."""
        model = tabular_model(self.subject)
        if model is not None:
            log_probs = all_state_log_probs(self.subject, *model.reward.shape)
            self.reference_kind = "exact"
            return Reference(exact_gradient(model, log_probs, self.parameters, self.gamma)), float("nan")
        spec = parse_estimator("value_baseline" if self.critic is not None else "reward_to_go")
        self.reference_kind = f"sampled ({spec.name})"
        count = self.settings.reference_batches or self.settings.batches
        largest, estimates, predicted, returns = max(self.episodes.values()), [], [], []
        for _ in self.progress(range(count), "reference"):
            batch = sampler.batch(largest)
            phi = coefficients(spec, batch, self.gamma, self.critic).phi
            estimates.append(
                episode_estimate(
                    flat_log_probs(self.policy, batch), phi, batch.valid, largest, self.parameters
                )
            )
            if self.critic is not None:
                with torch.no_grad():
                    predicted.append(batch.flat(self.critic(batch.obs)).double())
                returns.append(batch.flat(reward_to_go(batch.rewards.double(), batch.done, self.gamma)))
        stacked = torch.stack(estimates)
        explained = (
            explained_variance(torch.cat(predicted), torch.cat(returns)) if predicted else float("nan")
        )
        return Reference(stacked.mean(0), stacked), explained

    def progress(self, items: range, what: str) -> range:
        return tqdm(items, desc=f"pgrun-variance: {what}", leave=False, disable=not self.settings.progress)

    def estimate_all(
        self, sampler: EpisodeSampler, behaviour: dict[int, Policy]
    ) -> tuple[dict[tuple[str, int], list[Tensor]], dict[tuple[str, int], dict[str, list[float]]]]:
        """Per (estimator, batch steps): the K estimates, and per-batch extras (steps, scale, ESS)."""
        estimates: dict[tuple[str, int], list[Tensor]] = defaultdict(list)
        extras: dict[tuple[str, int], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        largest = max(self.episodes.values())
        samplers = {
            k: EpisodeSampler(
                sampler.collector.envs,
                policy,
                sampler.preprocessor,
                self.settings.seed + k,
                *self.reward_units,
            )
            for k, policy in behaviour.items()
        }
        for _ in self.progress(range(self.settings.batches), "batches"):
            batch = sampler.batch(largest)
            self.add(batch, [s for s in self.specs if not s.off_policy], None, estimates, extras)
            for k, stale_sampler in samplers.items():
                batch = stale_sampler.batch(largest)
                self.add(
                    batch, [s for s in self.specs if s.off_policy and s.stale == k], k, estimates, extras
                )
        return estimates, extras

    def add(
        self, batch: Batch, specs: list[EstimatorSpec], stale: int | None, estimates: dict, extras: dict
    ) -> None:
        """Every spec's estimate on `batch`, for every batch size (its first E_b episodes)."""
        if not specs:
            return
        logp = flat_log_probs(self.policy, batch)
        ranks = episode_ranks(batch)
        for spec in specs:
            coefficient = coefficients(spec, batch, self.gamma, self.critic, logp.detach() if stale else None)
            for steps_b, episodes in self.episodes.items():
                steps = first_episodes(ranks, episodes)
                phi, scale = normalized(coefficient, steps) if spec.normalized else (coefficient.phi, 1.0)
                estimates[spec.name, steps_b].append(
                    episode_estimate(logp, phi, steps, episodes, self.parameters)
                )
                extra = extras[spec.name, steps_b]
                extra["steps"].append(float(steps.sum()))
                extra["scale"].append(scale)
                if coefficient.importance is not None:
                    last = steps & batch.done  # an episode's weight is w at its last step
                    extra["ess_fraction"].append(
                        effective_sample_size(coefficient.importance[last]) / episodes
                    )

    def rows(self, estimates: dict, extras: dict, reference: Reference, explained: float) -> list[dict]:
        rows = []
        for spec in self.specs:
            for steps_b, episodes in self.episodes.items():
                extra = extras[spec.name, steps_b]
                scale = sum(extra["scale"]) / len(extra["scale"])
                summary = summarize(
                    torch.stack(estimates[spec.name, steps_b]) / scale, reference, self.settings.seed
                )
                rows.append(
                    {
                        "subject": self.subject.label,
                        "env_steps": self.subject.env_steps,
                        "estimator": spec.name,
                        "batch_steps": steps_b,
                        "episodes": episodes,
                        "mean_steps": sum(extra["steps"]) / len(extra["steps"]),
                        "batches": self.settings.batches,
                        **vars(summary),
                        "relative_bias": summary.bias / reference.gradient.norm().item(),
                        "scale": scale,
                        "ess_fraction": sum(extra["ess_fraction"]) / len(extra["ess_fraction"])
                        if extra["ess_fraction"]
                        else float("nan"),
                        "explained_variance": explained if spec.uses_critic else float("nan"),
                        "reference": self.reference_kind,
                        "gamma": self.gamma,
                    }
                )
        for row in rows:  # the variance relative to total_return's on the same batches
            base = next(
                (
                    r
                    for r in rows
                    if r["estimator"] == "total_return" and r["batch_steps"] == row["batch_steps"]
                ),
                None,
            )
            row["variance_ratio"] = row["total_variance"] / base["total_variance"] if base else float("nan")
        return rows
