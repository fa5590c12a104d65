"""The collector on real gymnasium envs: shapes, episode bookkeeping, truncation."""

import numpy as np
import pytest
import torch

from pgrun.collector import Collector
from pgrun.config import EnvConfig, PolicyConfig
from pgrun.envs import ObservationEncoder, make_vector_env
from pgrun.policies import make_policy


def make_collector(env: EnvConfig, unit: str, size: int, seed: int = 0) -> Collector:
    torch.manual_seed(seed)
    envs = make_vector_env(env, env.num_envs)
    encoder = ObservationEncoder(envs.single_observation_space)
    policy = make_policy(encoder.dim, envs.single_action_space, PolicyConfig())
    return Collector(envs, policy, encoder, unit, size, seed=seed)


def test_steps_mode_records_a_consistent_batch():
    collector = make_collector(EnvConfig(id="CartPole-v1", num_envs=3), "steps", 200)
    batch = collector.collect()
    assert batch.obs.shape == (67, 3, 4) and batch.actions.shape == (67, 3)
    assert batch.env_steps == 201 and bool(batch.valid.all())
    # next_obs[t] is obs[t+1] except where the episode ended (then the true final obs).
    continuing = ~batch.done[:-1]
    torch.testing.assert_close(batch.next_obs[:-1][continuing], batch.obs[1:][continuing])
    # CartPole ends by termination (pole fell); the batch edge truncates what still runs.
    assert bool(batch.terminated.any())
    assert bool((batch.truncated[-1] | batch.terminated[-1]).all())
    # log-probs are those of the recorded actions under the collecting policy
    with torch.no_grad():
        logp = collector.policy.distribution(batch.obs).log_prob(batch.actions)
    torch.testing.assert_close(batch.logp, logp)


def test_time_limit_is_truncation_not_termination():
    env = EnvConfig(id="Pendulum-v1", num_envs=2, max_episode_steps=5)
    batch = make_collector(env, "steps", 20).collect()
    assert not bool(batch.terminated.any())
    assert batch.truncated[:, 0].tolist() == [False, False, False, False, True] * 2
    assert batch.episode_lengths == [5] * 4
    ended = batch.truncated[:-1]
    assert int(ended.sum()) == 2
    # The final observation of a truncated episode is kept for bootstrapping: it is not the reset obs.
    final, reset = batch.next_obs[:-1][ended], batch.obs[1:][ended]
    assert bool((final != reset).any(dim=-1).all())


@pytest.mark.parametrize("episodes", [1, 5, 6])
def test_episodes_mode_returns_complete_episodes_in_fixed_shares(episodes):
    collector = make_collector(EnvConfig(id="CartPole-v1", num_envs=3), "episodes", episodes)
    for _ in range(2):
        batch = collector.collect()
        assert len(batch.episode_returns) == episodes
        per_env = (batch.done & batch.valid).sum(dim=0).tolist()
        assert sorted(per_env, reverse=True) == [episodes // 3 + (i < episodes % 3) for i in range(3)]
        # every valid step belongs to a complete episode: the last valid step of each env closes one
        for i in range(3):
            valid_steps = np.flatnonzero(batch.valid[:, i].numpy())
            if len(valid_steps):
                assert bool(batch.done[valid_steps[-1], i])
                assert valid_steps.tolist() == list(range(len(valid_steps)))
        # episode returns are the sums of their valid rewards (CartPole: 1 per step)
        assert sum(batch.episode_returns) == pytest.approx(batch.rewards[batch.valid].sum().item())
        assert batch.rewards[~batch.valid].abs().sum().item() == 0.0


def test_discrete_observations_are_one_hot(tests_dir):
    env = EnvConfig(id="corridor_env:Corridor-v0", num_envs=2)
    batch = make_collector(env, "episodes", 2).collect()
    assert batch.obs.shape[-1] == 4
    assert bool((batch.obs.sum(-1) == 1).all())
    assert all(
        ret == -length for ret, length in zip(batch.episode_returns, batch.episode_lengths, strict=True)
    )


def test_same_seed_same_batch():
    first = make_collector(EnvConfig(id="Acrobot-v1", num_envs=2), "steps", 64, seed=7).collect()
    second = make_collector(EnvConfig(id="Acrobot-v1", num_envs=2), "steps", 64, seed=7).collect()
    torch.testing.assert_close(first.obs, second.obs)
    torch.testing.assert_close(first.actions, second.actions)


@pytest.mark.parametrize("group", ["cartpole", "acrobot", "pendulum", "lunarlander"])
def test_shipped_env_groups_build_with_the_matching_policy(group, tests_dir):
    from omegaconf import OmegaConf

    from pgrun.policies import CategoricalPolicy, GaussianPolicy

    env = EnvConfig(
        **OmegaConf.to_container(OmegaConf.load(tests_dir.parent / "configs" / "env" / f"{group}.yaml"))
    )
    collector = make_collector(env, "steps", 8)
    expected = GaussianPolicy if group == "pendulum" else CategoricalPolicy
    assert isinstance(collector.policy, expected)
    assert collector.collect().rewards.shape == (2, env.num_envs)
