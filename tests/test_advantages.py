"""The estimator role (pgrun.estimation.estimators): the table, what each estimator feeds the math, the
importance-sampling wrapper and its history, normalization."""

import pytest
import torch
from tests_support import OBS_DIM, SPACES, random_batch, random_like, shipped_config, small_policy

from pgrun.algorithms.policy_gradient import BaselineConfig, ImportanceSampledConfig, PolicyGradientConfig
from pgrun.batch import Batch
from pgrun.estimation.estimators import ESTIMATORS, ImportanceSampled, Normalized, make_estimator
from pgrun.estimation.functional import reward_to_go, total_return
from pgrun.training.build import build_parts


class LinearCritic(torch.nn.Module):
    """V(s) = 10 * s[0] + 1: a critic whose values the test can predict."""

    def forward(self, obs):
        return 10 * obs[..., 0] + 1


def episode_batch() -> Batch:
    """One env, two episodes: steps 0-2 (terminated), steps 3-4 (truncated by the time limit)."""
    obs = torch.arange(5.0).reshape(5, 1, 1).expand(5, 1, OBS_DIM).clone()
    next_obs = obs + 1
    terminated = torch.tensor([[False], [False], [True], [False], [False]])
    truncated = torch.tensor([[False], [False], [False], [False], [True]])
    return Batch(
        obs=obs, next_obs=next_obs, actions=torch.zeros(5, 1, dtype=torch.long), logp=torch.zeros(5, 1),
        rewards=torch.tensor([[1.0], [2.0], [3.0], [4.0], [5.0]]), terminated=terminated, truncated=truncated,
        valid=torch.ones(5, 1, dtype=torch.bool), episode_returns=[6.0], episode_lengths=[3],
    )  # fmt: skip


def test_the_table_names_every_estimator_an_algorithm_accepts():
    from pgrun.algorithms import algorithms

    accepted = {
        name
        for algo in algorithms().values()
        for name in algo.schema.__dataclass_fields__["estimator"].metadata["choices"]
    }
    assert accepted == set(ESTIMATORS)


@pytest.mark.parametrize(
    ("name", "returns"), [("total_return", total_return), ("reward_to_go", reward_to_go)]
)
def test_monte_carlo_estimators_feed_the_rewards_and_episode_ends(name, returns):
    batch = episode_batch()
    estimate = make_estimator(
        PolicyGradientConfig(estimator=name, gamma=0.5, normalize_advantages=False), None
    )
    result = estimate(batch, critic=None)
    torch.testing.assert_close(result.phi, returns(batch.rewards, batch.done, 0.5))
    assert result.value_targets is None and result.batch is batch


def test_gae_estimator_evaluates_the_critic_on_both_observations():
    batch = episode_batch()
    config = BaselineConfig(gamma=0.5, gae_lambda=0.0, normalize_advantages=False)
    result = make_estimator(config, None)(batch, LinearCritic())
    # lambda = 0: A_t = r_t + gamma V(s_t+1) (1 - terminated) - V(s_t), V(s) = 10 s + 1
    v = [1.0, 11.0, 21.0, 31.0, 41.0]
    next_v = [11.0, 21.0, 31.0, 41.0, 51.0]
    expected = [1 + 0.5 * next_v[0] - v[0], 2 + 0.5 * next_v[1] - v[1], 3 - v[2],
                4 + 0.5 * next_v[3] - v[3], 5 + 0.5 * next_v[4] - v[4]]  # fmt: skip
    torch.testing.assert_close(result.phi, torch.tensor(expected).unsqueeze(1))
    torch.testing.assert_close(result.value_targets, result.phi + torch.tensor(v).unsqueeze(1))
    assert "train/explained_variance" in result.info
    with pytest.raises(ValueError, match="critic"):
        make_estimator(config, None)(batch, None)


def test_normalization_standardizes_over_the_valid_steps():
    batch = random_batch(small_policy(SPACES["categorical"]), seed=1)
    config = BaselineConfig(normalize_advantages=True)
    estimate = make_estimator(config, None)
    assert isinstance(estimate, Normalized)
    phi = estimate(batch, LinearCritic()).phi[batch.valid]
    assert phi.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert phi.std().item() == pytest.approx(1.0, abs=1e-4)


def importance_config(**overrides) -> ImportanceSampledConfig:
    return ImportanceSampledConfig(
        **({"gamma": 0.9, "normalize_advantages": False, "weight_max": None} | overrides)
    )


def test_importance_sampling_keeps_the_last_batches_and_weighs_them_for_the_current_policy():
    policy = small_policy(SPACES["categorical"])
    estimator = ImportanceSampled(importance_config(reuse_batches=2), policy)
    batches = [random_batch(policy, seed=seed) for seed in range(3)]
    first = estimator(batches[0], None)
    # on-policy the ratios are 1: the plain reward-to-go
    assert first.batch is batches[0]
    torch.testing.assert_close(first.importance, torch.ones_like(first.importance, dtype=torch.float64))
    torch.testing.assert_close(first.phi, reward_to_go(batches[0].rewards, batches[0].done, 0.9))
    with torch.no_grad():  # the policy moves on; the kept batches become off-policy
        for p in policy.parameters():
            p.add_(0.3 * random_like(p, seed=7))
    estimator(batches[1], None)
    third = estimator(batches[2], None)
    assert list(estimator.history) == batches[1:]  # reuse_batches = 2: the oldest was dropped
    assert third.batch.rewards.shape[1] == 2 * batches[0].rewards.shape[1]
    torch.testing.assert_close(third.batch.rewards[:, :3], batches[1].rewards)
    # per-decision weights: products of pi / mu along each episode of the reused batches
    sample = third.batch
    with torch.no_grad():
        rho = (policy.log_prob_of(sample.obs, sample.actions) - sample.logp).double().exp()
    w = rho.clone()
    for t in range(1, len(w)):
        w[t] = torch.where(sample.done[t - 1], rho[t], w[t - 1] * rho[t])
    torch.testing.assert_close(third.importance, w)
    torch.testing.assert_close(third.phi, reward_to_go(w * sample.rewards.double(), sample.done, 0.9).float())


def test_per_step_weights_and_truncation():
    policy = small_policy(SPACES["gaussian"])
    batch = random_batch(policy, seed=4)
    estimator = ImportanceSampled(importance_config(is_weights="per_step", weight_max=1.1), policy)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.5 * random_like(p, seed=8))
        rho = (policy.log_prob_of(batch.obs, batch.actions) - batch.logp).double().exp()
    result = estimator(batch, None)
    assert rho.max() > 1.1 and rho.min() < 0.9  # the truncation matters here
    torch.testing.assert_close(result.importance, rho.clamp(max=1.1))
    expected = rho.clamp(max=1.1) * reward_to_go(batch.rewards.double(), batch.done, 0.9)
    torch.testing.assert_close(result.phi, expected.float())


def test_reused_batches_are_read_with_the_observation_statistics_in_force_now(tests_dir):
    # corridor_env:Clock's raw observation at step t of an episode is [t, 3t + 1], so the
    # encoding a reused batch must have is known: standardized with today's running statistics
    config = shipped_config(
        "algo=is", "env.id=corridor_env:Clock", "env.normalize_obs=true", "env.num_envs=1",
        "algo.batch_size=2", "algo.reuse_batches=3",
    )  # fmt: skip
    parts = build_parts(config)
    try:
        for _ in range(3):
            batch = parts.collector.collect()
            estimate = parts.estimate(batch, parts.rule.critic)
            parts.rule.update(estimate, 0.0)
    finally:
        parts.close()
    statistics = parts.preprocessor.statistics
    sample = estimate.batch
    assert sample.obs.shape[1] == 3  # the two reused batches, then the newest
    t = torch.arange(len(sample.obs), dtype=torch.float64) % 4
    raw = torch.stack([t, 3 * t + 1], dim=-1)
    now = ((raw - torch.from_numpy(statistics.mean)) / torch.from_numpy(statistics.std)).float()
    for column in (0, 1):
        valid = sample.valid[:, column]
        torch.testing.assert_close(sample.obs[valid, column], now[valid])
    # the newest batch is read as its policy read it
    torch.testing.assert_close(sample.obs[:, 2][sample.valid[:, 2]], batch.obs[:, 0][batch.valid[:, 0]])
