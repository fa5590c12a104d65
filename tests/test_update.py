"""The plain policy-gradient update: its gradient, and one optimizer step per batch."""

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from tests_support import random_batch

from pgrun.algos.policy_gradient import PolicyGradientStep
from pgrun.config import AlgoConfig, PolicyConfig
from pgrun.policies import make_policy

OBS_DIM, T, N = 3, 13, 3


SPACES = {
    "categorical": gym.spaces.Discrete(4),
    "gaussian": gym.spaces.Box(low=-1.0, high=1.0, shape=(2,), dtype=np.float32),
}


def make_update(space, **algo):
    torch.manual_seed(0)
    policy = make_policy(OBS_DIM, space, PolicyConfig(hidden_sizes=[16], init="orthogonal"))
    config = AlgoConfig(estimator="reward_to_go", **algo)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr)
    return policy, optimizer, PolicyGradientStep(policy, optimizer, config)


@pytest.mark.parametrize("space", SPACES.values(), ids=SPACES.keys())
@pytest.mark.parametrize("minibatch_size", [1, 5, 16, 1000])
def test_minibatched_update_equals_full_batch_update(space, minibatch_size):
    full_policy, _, full_update = make_update(space, ent_coef=0.01, max_grad_norm=0.5)
    mini_policy, mini_optimizer, mini_update = make_update(
        space, ent_coef=0.01, max_grad_norm=0.5, minibatch_size=minibatch_size
    )
    batch = random_batch(full_policy, OBS_DIM, seed=1)
    weights = torch.randn(T, N)
    full_update(batch, weights)
    mini_update(batch, weights)
    for full, mini in zip(full_policy.parameters(), mini_policy.parameters(), strict=True):
        torch.testing.assert_close(mini, full, rtol=1e-5, atol=1e-6)
    assert {int(state["step"]) for state in mini_optimizer.state.values()} == {1}  # one optimizer step


@pytest.mark.parametrize("space", SPACES.values(), ids=SPACES.keys())
def test_gradient_is_the_weighted_score_function(space):
    # With SGD(lr=1) the step is -grad L = (1/n) sum_t Phi_t grad log pi(a_t|s_t), over valid steps only.
    policy, _, _ = make_update(space)
    batch = random_batch(policy, OBS_DIM, seed=2)
    weights = torch.randn(T, N)
    expected = [torch.zeros_like(p) for p in policy.parameters()]
    valid_steps = [(t, i) for t in range(T) for i in range(N) if batch.valid[t, i]]
    for t, i in valid_steps:
        logp = policy.distribution(batch.obs[t, i]).log_prob(batch.actions[t, i])
        grads = torch.autograd.grad(logp, list(policy.parameters()))
        for total, grad in zip(expected, grads, strict=True):
            total += weights[t, i] * grad / len(valid_steps)
    before = [p.detach().clone() for p in policy.parameters()]
    sgd = torch.optim.SGD(policy.parameters(), lr=1.0)
    PolicyGradientStep(policy, sgd, AlgoConfig(estimator="reward_to_go", minibatch_size=7))(batch, weights)
    for old, new, step in zip(before, policy.parameters(), expected, strict=True):
        torch.testing.assert_close(new.detach() - old, step, rtol=1e-4, atol=1e-6)


def test_diagnostics_report_a_real_update():
    policy, _, update = make_update(SPACES["categorical"], lr=0.05)
    batch = random_batch(policy, OBS_DIM, seed=3)
    frozen = copy.deepcopy(policy)
    info = update(batch, torch.randn(T, N))
    assert set(info) == {"train/loss", "train/entropy", "train/approx_kl", "train/grad_norm", "train/lr"}
    assert info["train/approx_kl"] > 0.0
    assert info["train/grad_norm"] > 0.0
    assert info["train/lr"] == 0.05
    assert 0.0 < info["train/entropy"] <= np.log(4) + 1e-6
    # entropy is that of the policy before the step
    with torch.no_grad():
        entropy = frozen.distribution(batch.flat(batch.obs)).entropy().mean().item()
    assert info["train/entropy"] == pytest.approx(entropy, rel=1e-5)
