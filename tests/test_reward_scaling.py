"""Reward scaling by the running std of the discounted return, and observation clipping."""

import numpy as np
import torch

from pgrun.collection.collector import Collector
from pgrun.collection.envs import make_vector_env
from pgrun.collection.normalization import ObservationPreprocessor, RewardScaler
from pgrun.config import EnvConfig, PolicyConfig
from pgrun.networks.policy import make_policy


def test_rewards_are_divided_by_the_std_of_the_discounted_returns_seen_so_far():
    gamma = 0.9
    rewards = np.array([[1.0, -2.0], [0.5, 3.0], [2.0, 1.0], [-1.0, 0.0]])
    ended = np.array([[False, False], [False, True], [False, False], [True, False]])
    scaler = RewardScaler(num_envs=2, gamma=gamma, clip=None)
    returns, seen = np.zeros(2), []
    for reward, end in zip(rewards, ended, strict=True):
        returns = gamma * returns + reward  # G_t = gamma G_t-1 + r_t, per copy
        seen.extend(returns)
        expected = reward / np.sqrt(np.var(seen) + 1e-8)  # the std of every G so far, mean kept
        np.testing.assert_allclose(scaler(reward, end), expected, rtol=1e-4)
        returns[end] = 0.0  # a new episode starts its own return


def test_scaled_rewards_are_clipped_and_the_state_round_trips():
    scaler = RewardScaler(num_envs=1, gamma=0.99, clip=0.5)
    for _ in range(20):
        scaler(np.array([0.01]), np.array([False]))
    assert scaler(np.array([100.0]), np.array([False]))[0] == 0.5
    restored = RewardScaler(num_envs=1, gamma=0.99, clip=0.5)
    restored.load_state_dict(scaler.state_dict())
    step = (np.array([0.3]), np.array([False]))
    np.testing.assert_array_equal(restored(*step), scaler(*step))


def collector_for(env: EnvConfig, scaler: RewardScaler | None) -> Collector:
    torch.manual_seed(0)
    envs = make_vector_env(env, env.num_envs)
    encoder = ObservationPreprocessor(
        envs.single_observation_space, normalize=env.normalize_obs, clip=env.clip_obs
    )
    policy = make_policy(encoder.dim, envs.single_action_space, PolicyConfig())
    return Collector(envs, policy, encoder, "steps", 400, seed=0, reward_scaler=scaler)


def test_the_learner_sees_scaled_rewards_while_logged_returns_stay_raw():
    env = EnvConfig(id="CartPole-v1", num_envs=2)
    plain = collector_for(env, None).collect()
    scaled = collector_for(env, RewardScaler(2, gamma=0.99, clip=None)).collect()
    assert torch.equal(plain.actions, scaled.actions)  # same seed, same episodes
    assert bool((plain.rewards == 1.0).all())
    # returns that grow along the episodes have a std above 1: the learner's rewards shrink
    assert bool((scaled.rewards[20:] < 0.9).all())
    assert scaled.episode_returns == plain.episode_returns == [float(n) for n in plain.episode_lengths]


def test_normalized_observations_are_clipped_at_clip_obs():
    env = EnvConfig(id="Pendulum-v1", num_envs=2, normalize_obs=True, clip_obs=0.5)
    batch = collector_for(env, None).collect()
    assert batch.obs.abs().max() == 0.5  # standardized features reach past 0.5 and are cut there
