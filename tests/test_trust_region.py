"""Second-order machinery checked against linear algebra and autograd Hessians."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from tests_support import random_batch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from pgrun.algos.trust_region import (
    TrustRegionStep,
    backtracking_line_search,
    conjugate_gradient,
    fisher_vector_product,
    mean_kl,
)
from pgrun.config import PolicyConfig, TrustRegionConfig
from pgrun.policies import make_policy

SPACES = {
    "categorical": gym.spaces.Discrete(3),
    "gaussian": gym.spaces.Box(low=-1.0, high=1.0, shape=(2,), dtype=np.float32),
}
OBS_DIM = 3


@pytest.mark.parametrize("dim", [2, 5, 20])
def test_conjugate_gradient_solves_spd_systems(dim):
    generator = torch.Generator().manual_seed(dim)
    for _ in range(5):
        m = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
        a = m @ m.T + 0.1 * torch.eye(dim, dtype=torch.float64)
        b = torch.randn(dim, generator=generator, dtype=torch.float64)
        x, residual = conjugate_gradient(lambda v, a=a: a @ v, b, iters=10 * dim, tolerance=1e-20)
        torch.testing.assert_close(x, torch.linalg.solve(a, b), rtol=1e-6, atol=1e-8)
        assert residual < 1e-6


def small_policy(space, seed=0):
    torch.manual_seed(seed)
    policy = make_policy(OBS_DIM, space, PolicyConfig(hidden_sizes=[5], init="default")).double()
    if isinstance(space, gym.spaces.Box):
        with torch.no_grad():
            policy.log_std.copy_(torch.tensor([-0.3, 0.2]))
    return policy


@pytest.mark.parametrize("space", SPACES.values(), ids=SPACES.keys())
def test_fisher_vector_product_equals_explicit_kl_hessian(space):
    policy = small_policy(space)
    obs = torch.randn(32, OBS_DIM, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        old_params = policy.distribution_params(obs)
    named = dict(policy.named_parameters())
    theta_old = parameters_to_vector(named.values()).detach().clone()

    def as_parameters(theta):
        pieces = theta.split([p.numel() for p in named.values()])
        return {name: piece.view(p.shape) for (name, p), piece in zip(named.items(), pieces, strict=True)}

    def mean_kl_at(theta):
        new_params = torch.func.functional_call(policy, as_parameters(theta), (obs,))
        old, new = policy.distribution_from(old_params), policy.distribution_from(new_params)
        return torch.distributions.kl_divergence(old, new).mean()

    hessian = torch.autograd.functional.hessian(mean_kl_at, theta_old)
    damping = 0.05
    product = fisher_vector_product(policy, obs, old_params, damping)
    generator = torch.Generator().manual_seed(2)
    for _ in range(3):
        v = torch.randn(len(theta_old), generator=generator, dtype=torch.float64)
        torch.testing.assert_close(product(v), hessian @ v + damping * v, rtol=1e-6, atol=1e-9)
    # a Fisher matrix: symmetric positive semi-definite
    torch.testing.assert_close(hessian, hessian.T)
    assert torch.linalg.eigvalsh(hessian).min() > -1e-8


@pytest.mark.parametrize("space", SPACES.values(), ids=SPACES.keys())
def test_trpo_step_respects_the_kl_bound_and_improves_the_surrogate(space):
    policy = small_policy(space).float()
    batch = random_batch(policy, OBS_DIM, seed=3)
    advantages = torch.randn(batch.rewards.shape, generator=torch.Generator().manual_seed(4))
    config = TrustRegionConfig(estimator="gae", update="trust_region", max_kl=0.01)
    before = parameters_to_vector(policy.parameters()).detach().clone()
    info = TrustRegionStep(policy, None, config)(batch, advantages)
    assert info["train/step_accepted"] == 1.0
    assert info["train/kl"] <= config.max_kl * (1 + 1e-5)
    assert info["train/surrogate_improvement"] > 0
    assert not torch.equal(before, parameters_to_vector(policy.parameters()))
    # the KL reported is the KL measured between the old and the new policy
    with torch.no_grad():
        new = parameters_to_vector(policy.parameters()).clone()
        vector_to_parameters(before, policy.parameters())
        old_params = policy.distribution_params(batch.flat(batch.obs))
        vector_to_parameters(new, policy.parameters())
        assert mean_kl(policy, batch.flat(batch.obs), old_params).item() == pytest.approx(
            info["train/kl"], rel=1e-4
        )


def test_npg_takes_the_full_step_of_quadratic_kl_size():
    policy = small_policy(SPACES["categorical"]).float()
    batch = random_batch(policy, OBS_DIM, seed=5)
    advantages = torch.randn(batch.rewards.shape, generator=torch.Generator().manual_seed(6))
    config = TrustRegionConfig(
        estimator="gae", update="trust_region", max_kl=1e-4, line_search=False, cg_damping=0.0
    )
    info = TrustRegionStep(policy, None, config)(batch, advantages)
    assert info["train/backtracks"] == 0
    # for a small step the measured KL is close to its quadratic estimate delta
    assert info["train/kl"] == pytest.approx(config.max_kl, rel=0.1)


def test_line_search_rejects_a_bad_step_and_restores_the_parameters():
    policy = small_policy(SPACES["categorical"]).float()
    batch = random_batch(policy, OBS_DIM, seed=7)
    obs, actions = batch.flat(batch.obs), batch.flat(batch.actions)
    advantages = torch.randn(len(obs), generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        old_params = policy.distribution_params(obs)
        logp_old = policy.distribution_from(old_params).log_prob(actions)

    def surrogate():
        return ((policy.distribution(obs).log_prob(actions) - logp_old).exp() * advantages).mean()

    surrogate_old = surrogate()
    gradient = torch.cat(
        [g.reshape(-1) for g in torch.autograd.grad(surrogate_old, list(policy.parameters()))]
    )

    def evaluate():
        with torch.no_grad():
            return mean_kl(policy, obs, old_params).item(), (surrogate() - surrogate_old).item()

    before = parameters_to_vector(policy.parameters()).detach().clone()
    # downhill: every shrunken step lowers the surrogate
    accepted, tries = backtracking_line_search(policy, -0.1 * gradient, evaluate, 0.01, 10, 0.5)
    assert not accepted and tries == 10
    assert torch.equal(parameters_to_vector(policy.parameters()), before)
    # uphill but far too long: it backtracks until the KL fits
    accepted, tries = backtracking_line_search(policy, 1e3 * gradient, evaluate, 0.01, 30, 0.5)
    assert accepted and tries > 0
    kl, improvement = evaluate()
    assert kl <= 0.01 and improvement > 0
