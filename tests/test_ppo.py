"""PPO's surrogate losses and update loop."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from tests_support import random_batch

from pgrun.algos.policy_gradient import PolicyGradientStep
from pgrun.algos.ppo import PPOUpdate, clipped_surrogate
from pgrun.config import AlgoConfig, PolicyConfig, PPOConfig
from pgrun.policies import make_policy

OBS_DIM = 3
SPACES = {
    "categorical": gym.spaces.Discrete(4),
    "gaussian": gym.spaces.Box(low=-1.0, high=1.0, shape=(2,), dtype=np.float32),
}


def fresh_policy(space):
    torch.manual_seed(0)
    return make_policy(OBS_DIM, space, PolicyConfig(hidden_sizes=[16]))


def ppo_config(**overrides) -> PPOConfig:
    values = {"estimator": "gae", "update": "ppo", "max_grad_norm": None, "ent_coef": 0.0} | overrides
    return PPOConfig(**values)


def test_clipped_surrogate_at_ratio_one_has_the_vanilla_gradient():
    logits = torch.randn(10, 3, requires_grad=True)
    actions = torch.randint(0, 3, (10,))
    advantages = torch.randn(10)
    logp = torch.distributions.Categorical(logits=logits).log_prob(actions)
    loss, info = clipped_surrogate(logp, logp.detach(), advantages, clip=0.2)
    (clipped_grad,) = torch.autograd.grad(loss, logits, retain_graph=True)
    (vanilla_grad,) = torch.autograd.grad(-(logp * advantages).mean(), logits)
    torch.testing.assert_close(clipped_grad, vanilla_grad)
    assert info["train/clip_frac"] == 0.0


@pytest.mark.parametrize("space", SPACES.values(), ids=SPACES.keys())
def test_one_epoch_one_minibatch_ppo_step_equals_the_policy_gradient_step(space):
    ppo_policy, pg_policy = fresh_policy(space), fresh_policy(space)
    batch = random_batch(ppo_policy, OBS_DIM, seed=1)
    advantages = torch.randn(batch.rewards.shape, generator=torch.Generator().manual_seed(2))
    config = ppo_config(epochs=1, minibatch_size=None, target_kl=None)
    PPOUpdate(ppo_policy, torch.optim.SGD(ppo_policy.parameters(), lr=0.1), config)(batch, advantages)
    pg_config = AlgoConfig(estimator="reward_to_go")
    PolicyGradientStep(pg_policy, torch.optim.SGD(pg_policy.parameters(), lr=0.1), pg_config)(
        batch, advantages
    )
    for ppo_param, pg_param in zip(ppo_policy.parameters(), pg_policy.parameters(), strict=True):
        torch.testing.assert_close(ppo_param, pg_param)


def test_large_steps_clip_ratios_and_stop_the_epochs_early():
    policy = fresh_policy(SPACES["categorical"])
    batch = random_batch(policy, OBS_DIM, seed=3, steps=64, envs=4)
    advantages = torch.randn(batch.rewards.shape, generator=torch.Generator().manual_seed(4))
    config = ppo_config(epochs=10, minibatch_size=16, target_kl=0.01, lr=0.05)
    info = PPOUpdate(policy, torch.optim.Adam(policy.parameters(), lr=0.05), config)(batch, advantages)
    assert info["train/clip_frac"] > 0.0
    assert info["train/stopped_early"] == 1.0
    assert 0 < info["train/epochs"] < 10
    # without early stopping all epochs run
    policy = fresh_policy(SPACES["categorical"])
    config = ppo_config(epochs=3, minibatch_size=16, target_kl=None, lr=0.05)
    info = PPOUpdate(policy, torch.optim.Adam(policy.parameters(), lr=0.05), config)(batch, advantages)
    assert info["train/stopped_early"] == 0.0 and info["train/epochs"] == 3


@pytest.mark.parametrize(("lr", "factor"), [(0.1, 2.0), (1e-6, 0.5)])
def test_penalty_coefficient_adapts_to_the_measured_kl(lr, factor):
    policy = fresh_policy(SPACES["gaussian"])
    batch = random_batch(policy, OBS_DIM, seed=5, steps=32, envs=4)
    advantages = torch.randn(batch.rewards.shape, generator=torch.Generator().manual_seed(6))
    config = ppo_config(variant="penalty", epochs=4, minibatch_size=32, target_kl=0.01, kl_coef=1.0)
    update = PPOUpdate(policy, torch.optim.Adam(policy.parameters(), lr=lr), config)
    info = update(batch, advantages)
    assert info["train/kl_coef"] == 1.0
    assert update.kl_coef == factor
    assert (info["train/kl"] > 0.015) == (factor == 2.0)
