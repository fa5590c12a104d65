"""The plain policy-gradient update: its gradient, and one optimizer step per batch."""

import copy

import numpy as np
import pytest
import torch
from tests_support import SPACES, random_batch, random_like, small_policy, value_networks

from pgrun.algorithms.policy_gradient import PolicyGradient, PolicyGradientConfig
from pgrun.config import OptimizerConfig
from pgrun.estimation.estimators import Advantages


def make_rule(space, chunk_size=None, ent_coef=0.0, optim=None):
    policy = small_policy(space)
    config = PolicyGradientConfig(
        chunk_size=chunk_size, ent_coef=ent_coef, optim=optim or OptimizerConfig(lr=0.01)
    )
    return policy, PolicyGradient(config, policy, value_networks)


@pytest.mark.parametrize("space", SPACES.values(), ids=SPACES.keys())
@pytest.mark.parametrize("chunk_size", [1, 5, 16, 1000])
def test_chunked_update_equals_full_batch_update(space, chunk_size):
    optim = OptimizerConfig(lr=0.01, max_grad_norm=0.5)
    full_policy, full_rule = make_rule(space, ent_coef=0.01, optim=optim)
    mini_policy, mini_rule = make_rule(space, chunk_size, ent_coef=0.01, optim=optim)
    batch = random_batch(full_policy, seed=1)
    advantages = Advantages(batch, random_like(batch.rewards, seed=2))
    full_rule.update(advantages, progress=0.0)
    mini_rule.update(advantages, progress=0.0)
    for full, mini in zip(full_policy.parameters(), mini_policy.parameters(), strict=True):
        torch.testing.assert_close(mini, full, rtol=1e-5, atol=1e-6)
    assert mini_rule.optimizer.steps == 1  # one optimizer step


@pytest.mark.parametrize("space", SPACES.values(), ids=SPACES.keys())
def test_gradient_is_the_weighted_score_function(space):
    # With SGD(lr=1) the step is -grad L = (1/n) sum_t Phi_t grad log pi(a_t|s_t), over valid steps only.
    policy, rule = make_rule(space, chunk_size=7, optim=OptimizerConfig(name="sgd", lr=1.0))
    batch = random_batch(policy, seed=2)
    phi = random_like(batch.rewards, seed=3)
    expected = [torch.zeros_like(p) for p in policy.parameters()]
    valid_steps = [(t, i) for t in range(len(phi)) for i in range(phi.shape[1]) if batch.valid[t, i]]
    for t, i in valid_steps:
        logp = policy.distribution(batch.obs[t, i]).log_prob(batch.actions[t, i])
        grads = torch.autograd.grad(logp, list(policy.parameters()))
        for total, grad in zip(expected, grads, strict=True):
            total += phi[t, i] * grad / len(valid_steps)
    before = [p.detach().clone() for p in policy.parameters()]
    rule.update(Advantages(batch, phi), progress=0.0)
    for old, new, step in zip(before, policy.parameters(), expected, strict=True):
        torch.testing.assert_close(new.detach() - old, step, rtol=1e-4, atol=1e-6)


def test_diagnostics_report_a_real_update():
    policy, rule = make_rule(SPACES["categorical"], optim=OptimizerConfig(lr=0.05))
    batch = random_batch(policy, seed=3)
    frozen = copy.deepcopy(policy)
    info = rule.update(Advantages(batch, random_like(batch.rewards, seed=4)), progress=0.0)
    assert set(info) == {"train/loss", "train/entropy", "train/approx_kl", "train/grad_norm", "train/lr"}
    assert info["train/approx_kl"] > 0.0
    assert info["train/grad_norm"] > 0.0
    assert info["train/lr"] == 0.05
    assert 0.0 < info["train/entropy"] <= np.log(4) + 1e-6
    # entropy is that of the policy before the step
    with torch.no_grad():
        entropy = frozen.distribution(batch.flat(batch.obs)).entropy().mean().item()
    assert info["train/entropy"] == pytest.approx(entropy, rel=1e-5)


def test_linear_schedule_anneals_the_learning_rate_with_progress():
    _, rule = make_rule(SPACES["categorical"], optim=OptimizerConfig(lr=0.1, lr_schedule="linear"))
    batch = random_batch(rule.policy, seed=5)
    advantages = Advantages(batch, random_like(batch.rewards, seed=6))
    assert rule.update(advantages, progress=0.25)["train/lr"] == pytest.approx(0.075)
    assert rule.update(advantages, progress=0.9)["train/lr"] == pytest.approx(0.01)
