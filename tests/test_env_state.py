"""Env state through episode replay: a restored vector env continues exactly where it was."""

import random

import gymnasium as gym
import numpy as np
import pytest

from pgrun.collection.env_state import EnvNotReplayable, episode_records, restore
from pgrun.collection.envs import make_vector_env
from pgrun.config import EnvConfig


def rollout(envs, actions):
    """Observations, rewards and episode ends of stepping `envs` through `actions`."""
    trace = []
    for action in actions:
        obs, reward, terminated, truncated, _ = envs.step(action)
        trace.append((obs.copy(), reward.copy(), terminated.copy(), truncated.copy()))
    return trace


@pytest.mark.parametrize(
    "env_id",
    [
        "CartPole-v1",
        "Acrobot-v1",
        "Pendulum-v1",
        "LunarLander-v3",
        "LunarLanderContinuous-v3",
        "HalfCheetah-v5",
        "Hopper-v5",
    ],
)
@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_a_restored_env_continues_mid_episode_exactly(env_id, vectorization):
    config = EnvConfig(id=env_id, vectorization=vectorization)
    envs = make_vector_env(config, 3)
    envs.action_space.seed(0)
    actions = [envs.action_space.sample() for _ in range(140)]
    envs.reset(seed=7)
    before = rollout(envs, actions[:90])  # random CartPole episodes end (and auto-reset) within 90 steps
    obs_now, records = before[-1][0], episode_records(envs)
    expected = rollout(envs, actions[90:])
    envs.close()

    fresh = make_vector_env(config, 3)
    fresh.reset(seed=123)  # somewhere else entirely
    restore(fresh, records, obs_now)
    replayed = rollout(fresh, actions[90:])
    fresh.close()
    for (obs_a, reward_a, term_a, trunc_a), (obs_b, reward_b, term_b, trunc_b) in zip(
        expected, replayed, strict=True
    ):
        np.testing.assert_array_equal(obs_a, obs_b)
        np.testing.assert_array_equal(reward_a, reward_b)
        np.testing.assert_array_equal(term_a, term_b)
        np.testing.assert_array_equal(trunc_a, trunc_b)


class GlobalRandomStart(gym.Env):
    """Starts from python's global `random`, not from np_random: not replayable."""

    observation_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.array([random.random()], dtype=np.float32), {}

    def step(self, action):
        return np.array([random.random()], dtype=np.float32), 0.0, False, False, {}


def test_an_env_with_randomness_outside_np_random_is_reported_not_silently_resumed():
    gym.register(id="GlobalRandomStart-v0", entry_point=GlobalRandomStart, max_episode_steps=50)
    config = EnvConfig(id="GlobalRandomStart-v0")
    envs = make_vector_env(config, 2)
    obs, _ = envs.reset(seed=0)
    obs, *_ = envs.step(np.array([0, 1]))
    records = episode_records(envs)
    with pytest.raises(EnvNotReplayable, match="cannot be resumed exactly"):
        restore(make_vector_env(config, 2), records, obs)
