"""Second-order machinery checked against linear algebra and autograd Hessians."""

import gymnasium as gym
import pytest
import torch
from tests_support import OBS_DIM, SPACES, random_batch, random_like, small_policy, value_networks
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from pgrun.algorithms.trust_region import (
    TrustRegion,
    TrustRegionConfig,
    backtracking_line_search,
    conjugate_gradient,
    fisher_vector_product,
    mean_kl,
)


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


def double_policy(space, seed=0):
    """A small float64 policy (exact second-order comparisons), Gaussian stds not all equal."""
    policy = small_policy(space, hidden_sizes=[5], seed=seed, init="default").double()
    if isinstance(space, gym.spaces.Box):
        with torch.no_grad():
            policy.action_distribution.log_std.copy_(torch.tensor([-0.3, 0.2]))
    return policy


def trust_region(policy, **overrides):
    return TrustRegion(TrustRegionConfig(**overrides), policy, value_networks)


def policy_step(rule, batch, phi):
    return rule.policy_step(batch.flat(batch.obs), batch.flat(batch.actions), batch.flat(phi))


def explicit_kl_hessian(policy, obs, old_params):
    """The Hessian of the mean KL(pi_old || pi_theta) in theta at theta_old, by autograd."""
    named = dict(policy.named_parameters())
    theta_old = parameters_to_vector(named.values()).detach().clone()

    def as_parameters(theta):
        pieces = theta.split([p.numel() for p in named.values()])
        return {name: piece.view(p.shape) for (name, p), piece in zip(named.items(), pieces, strict=True)}

    def mean_kl_at(theta):
        new_params = torch.func.functional_call(policy, as_parameters(theta), (obs,))
        old, new = policy.distribution_from(old_params), policy.distribution_from(new_params)
        return torch.distributions.kl_divergence(old, new).mean()

    return torch.autograd.functional.hessian(mean_kl_at, theta_old), theta_old


@pytest.mark.parametrize("space", SPACES.values(), ids=SPACES.keys())
def test_fisher_vector_product_equals_explicit_kl_hessian(space):
    policy = double_policy(space)
    obs = torch.randn(32, OBS_DIM, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        old_params = policy.distribution_params(obs)
    hessian, theta_old = explicit_kl_hessian(policy, obs, old_params)
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
    policy = double_policy(space).float()
    batch = random_batch(policy, seed=3)
    before = parameters_to_vector(policy.parameters()).detach().clone()
    info = policy_step(trust_region(policy, max_kl=0.01), batch, random_like(batch.rewards, seed=4))
    assert info["train/step_accepted"] == 1.0
    assert info["train/kl"] <= 0.01 * (1 + 1e-5)
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
    policy = double_policy(SPACES["categorical"])
    batch = random_batch(policy, seed=5)
    rule = trust_region(policy, max_kl=1e-6, line_search=False, cg_damping=0.0)
    info = policy_step(rule, batch, random_like(batch.rewards, seed=6).double())
    assert info["train/backtracks"] == 0
    # for a small step the measured KL is close to its quadratic estimate delta
    assert info["train/kl"] == pytest.approx(1e-6, rel=0.05)


@pytest.mark.parametrize("space", SPACES.values(), ids=SPACES.keys())
def test_natural_gradient_step_is_the_solution_of_the_damped_fisher_system(space):
    # NPG's step is sqrt(2 delta / x^T (H + d I) x) x with x = (H + d I)^-1 g, g the surrogate's
    # gradient and H the autograd Hessian of the mean KL: with enough CG iterations, exactly.
    policy = double_policy(space)
    batch = random_batch(policy, seed=11)
    phi = random_like(batch.rewards, seed=12).double()
    obs, actions, flat_phi = batch.flat(batch.obs), batch.flat(batch.actions), batch.flat(phi)
    with torch.no_grad():
        old_params = policy.distribution_params(obs)
    hessian, theta_old = explicit_kl_hessian(policy, obs, old_params)
    logp = policy.distribution(obs).log_prob(actions)
    surrogate = (torch.exp(logp - logp.detach()) * flat_phi).mean()
    gradient = torch.cat([g.reshape(-1) for g in torch.autograd.grad(surrogate, list(policy.parameters()))])
    damping, delta = 0.1, 0.01
    damped = hessian + damping * torch.eye(len(theta_old), dtype=torch.float64)
    x = torch.linalg.solve(damped, gradient)
    expected_step = torch.sqrt(2 * delta / (x @ damped @ x)) * x
    rule = trust_region(policy, max_kl=delta, line_search=False, cg_damping=damping, cg_iters=10 * len(x))
    rule.policy_step(obs, actions, flat_phi)
    step = parameters_to_vector(policy.parameters()).detach() - theta_old
    assert (step - expected_step).norm() / expected_step.norm() < 1e-3
    # the plain gradient points elsewhere: a test that a gradient step would fail
    cosine = torch.nn.functional.cosine_similarity(gradient, expected_step, dim=0)
    assert cosine < 0.99


def test_trpo_backtracks_exactly_when_the_full_step_fails_its_checks():
    batch = random_batch(double_policy(SPACES["categorical"]), seed=13, steps=32)
    phi = random_like(batch.rewards, seed=14).double()
    settings = {"max_kl": 0.5, "cg_damping": 0.0, "backtrack_coef": 0.5}
    # the full natural-gradient step (no line search) breaks the measured KL bound or the improvement
    full = policy_step(
        trust_region(double_policy(SPACES["categorical"]), line_search=False, **settings), batch, phi
    )
    assert full["train/kl"] > 0.5 or full["train/surrogate_improvement"] <= 0
    info = policy_step(trust_region(double_policy(SPACES["categorical"]), **settings), batch, phi)
    assert info["train/backtracks"] > 0 and info["train/step_accepted"] == 1.0
    assert info["train/kl"] <= 0.5 and info["train/surrogate_improvement"] > 0
    # where the full step passes both checks, it is taken as it is
    settings["cg_damping"] = 0.1
    full = policy_step(
        trust_region(double_policy(SPACES["categorical"]), line_search=False, **settings), batch, phi
    )
    info = policy_step(trust_region(double_policy(SPACES["categorical"]), **settings), batch, phi)
    assert full["train/kl"] <= 0.5 and full["train/surrogate_improvement"] > 0
    assert info["train/backtracks"] == 0 and info["train/kl"] == pytest.approx(full["train/kl"])


def test_line_search_rejects_a_bad_step_and_restores_the_parameters():
    policy = double_policy(SPACES["categorical"]).float()
    batch = random_batch(policy, seed=7)
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


@pytest.mark.parametrize("line_search", [True, False], ids=["trpo", "npg"])
def test_a_zero_gradient_skips_the_step_instead_of_writing_nan(line_search):
    # every advantage equal (0 after normalization): g = 0, x = 0 and sqrt(2 delta / x^T F x) x = NaN
    policy = double_policy(SPACES["categorical"]).float()
    batch = random_batch(policy, seed=15)
    before = parameters_to_vector(policy.parameters()).detach().clone()
    info = policy_step(trust_region(policy, line_search=line_search), batch, torch.zeros_like(batch.rewards))
    assert torch.equal(parameters_to_vector(policy.parameters()), before)
    assert info["train/step_skipped"] == 1.0 and info["train/step_accepted"] == 0.0
    assert all(value == value for value in info.values()), info  # no NaN logged
    # a nonzero gradient is not skipped
    info = policy_step(
        trust_region(policy, line_search=line_search), batch, random_like(batch.rewards, seed=16)
    )
    assert info["train/step_skipped"] == 0.0 and info["train/step_accepted"] == 1.0


def test_trust_region_logs_the_surrogate_loss_at_the_parameters_it_keeps():
    # with normalized advantages -L(theta_old) = -E[A_t] = 0 for every batch: the row must move
    policy = double_policy(SPACES["categorical"]).float()
    batch = random_batch(policy, seed=17)
    phi = random_like(batch.rewards, seed=18)
    valid = batch.flat(phi)
    phi = (phi - valid.mean()) / valid.std()
    info = policy_step(trust_region(policy), batch, phi)
    assert info["train/surrogate_improvement"] > 0
    assert info["train/loss"] == pytest.approx(-info["train/surrogate_improvement"], abs=1e-6)
    assert info["train/loss"] < -1e-4
