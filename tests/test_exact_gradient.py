"""The estimators against the exact policy gradient of a small finite MDP.

A tabular softmax policy pi(a|s) = softmax(theta[s])_a acts for H steps in an MDP with
known transitions and rewards. J(theta) and V^pi(s, t) come from backward dynamic
programming, and grad J from autograd through it. Each estimator's per-trajectory
gradient g = sum_t Phi_t grad log pi(a_t|s_t), averaged over many sampled trajectories,
must match grad J within a few standard errors (gamma = 1).
"""

from dataclasses import dataclass

import pytest
import torch

from pgrun.estimation.functional import (
    gae,
    importance_ratios,
    normalize,
    per_decision_weights,
    reward_to_go,
    total_return,
)

S, A, H = 3, 2, 4
TRAJECTORIES = 200_000
Z_TOLERANCE = 4.5  # standard errors allowed per gradient component


@dataclass
class MDP:
    start: torch.Tensor  # rho_0(s)         [S]
    transition: torch.Tensor  # P(s'|s, a)  [S, A, S]
    reward: torch.Tensor  # r(s, a)           [S, A]


def make_mdp() -> MDP:
    torch.manual_seed(0)  # Dirichlet.sample draws from the global generator
    generator = torch.Generator().manual_seed(0)
    return MDP(
        start=torch.distributions.Dirichlet(torch.ones(S)).sample().double(),
        transition=torch.distributions.Dirichlet(torch.ones(S)).sample((S, A)).double(),
        reward=1.0 + torch.rand(S, A, generator=generator, dtype=torch.float64),
    )


def values(mdp: MDP, theta: torch.Tensor) -> torch.Tensor:
    """V^pi(s, t) for t = 0..H (V(., H) = 0) by backward induction; differentiable in theta."""
    pi = theta.softmax(-1)
    v = [torch.zeros(S, dtype=torch.float64)]
    for _ in range(H):
        q = mdp.reward + mdp.transition @ v[0]  # Q(s, a) = r(s, a) + sum_s' P(s'|s, a) V(s')
        v.insert(0, (pi * q).sum(-1))
    return torch.stack(v)  # [H + 1, S]


def exact_gradient(mdp: MDP, theta: torch.Tensor) -> torch.Tensor:
    theta = theta.clone().requires_grad_(True)
    objective = mdp.start @ values(mdp, theta)[0]  # J = sum_s rho_0(s) V(s, 0)
    (grad,) = torch.autograd.grad(objective, theta)
    return grad


@dataclass
class Trajectories:
    states: torch.Tensor  # [H, M]
    actions: torch.Tensor  # [H, M]
    rewards: torch.Tensor  # [H, M]
    done: torch.Tensor  # [H, M], the horizon ends every episode


def sample(mdp: MDP, theta: torch.Tensor, count: int, seed: int) -> Trajectories:
    generator = torch.Generator().manual_seed(seed)
    pi = theta.softmax(-1)
    states, actions = [], []
    s = torch.multinomial(mdp.start, count, replacement=True, generator=generator)
    for _ in range(H):
        a = torch.multinomial(pi[s], 1, generator=generator).squeeze(1)
        states.append(s)
        actions.append(a)
        s = torch.multinomial(mdp.transition[s, a], 1, generator=generator).squeeze(1)
    states, actions = torch.stack(states), torch.stack(actions)
    done = torch.zeros(H, count, dtype=torch.bool)
    done[-1] = True
    return Trajectories(states, actions, mdp.reward[states, actions], done)


def score(theta: torch.Tensor, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """grad_theta log pi(a|s) for tabular softmax: row s gets onehot(a) - pi(.|s); [..., S, A]."""
    pi = theta.softmax(-1)
    row = torch.nn.functional.one_hot(states, S).double()
    column = torch.nn.functional.one_hot(actions, A).double() - pi[states]
    return row.unsqueeze(-1) * column.unsqueeze(-2)


def per_trajectory_gradients(theta, batch: Trajectories, phi: torch.Tensor) -> torch.Tensor:
    """g_i = sum_t Phi_t grad log pi(a_t|s_t), [M, S, A]."""
    return (phi.unsqueeze(-1).unsqueeze(-1) * score(theta, batch.states, batch.actions)).sum(0)


def z_scores(gradients: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    mean = gradients.mean(0)
    standard_error = gradients.std(0) / len(gradients) ** 0.5
    return (mean - exact) / standard_error


def total_variance(gradients: torch.Tensor) -> float:
    return gradients.var(0).sum().item()


@pytest.fixture(scope="module")
def setting():
    mdp = make_mdp()
    theta = torch.randn(S, A, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    batch = sample(mdp, theta, TRAJECTORIES, seed=2)
    v = values(mdp, theta).detach()
    time = torch.arange(H).unsqueeze(1).expand(H, TRAJECTORIES)
    true_values = v[time, batch.states]  # V^pi(s_t, t)
    next_values = torch.cat([true_values[1:], torch.zeros(1, TRAJECTORIES, dtype=torch.float64)])
    estimators = {
        "total_return": total_return(batch.rewards, batch.done, 1.0),
        "reward_to_go": reward_to_go(batch.rewards, batch.done, 1.0),
        "reward_to_go_minus_state_baseline": reward_to_go(batch.rewards, batch.done, 1.0)
        + torch.randn(H, S, generator=torch.Generator().manual_seed(3), dtype=torch.float64)[
            time, batch.states
        ],
        "gae_lambda_1_true_values": gae(
            batch.rewards, true_values, next_values, batch.done, batch.done, 1.0, 1.0
        )[0],
    }
    gradients = {name: per_trajectory_gradients(theta, batch, phi) for name, phi in estimators.items()}
    return mdp, theta, batch, exact_gradient(mdp, theta), gradients


def test_tabular_score_matches_autograd(setting):
    _, theta, batch, _, _ = setting
    for t, i in [(0, 0), (1, 5), (3, 17)]:
        logits = theta.clone().requires_grad_(True)
        s, a = batch.states[t, i], batch.actions[t, i]
        (grad,) = torch.autograd.grad(logits.log_softmax(-1)[s, a], logits)
        torch.testing.assert_close(score(theta, s, a), grad)


@pytest.mark.parametrize(
    "estimator",
    ["total_return", "reward_to_go", "reward_to_go_minus_state_baseline", "gae_lambda_1_true_values"],
)
def test_estimator_is_unbiased(setting, estimator):
    _, _, _, exact, gradients = setting
    assert exact.abs().max() > 0.05  # a gradient worth estimating
    z = z_scores(gradients[estimator], exact)
    assert z.abs().max() < Z_TOLERANCE, f"{estimator}: z-scores {z}"


def test_action_dependent_baseline_is_caught_as_biased(setting):
    _, theta, batch, exact, _ = setting
    action_baseline = torch.tensor([[0.0, 2.0], [1.0, -1.0], [0.5, 1.5]], dtype=torch.float64)
    phi = reward_to_go(batch.rewards, batch.done, 1.0) - action_baseline[batch.states, batch.actions]
    z = z_scores(per_trajectory_gradients(theta, batch, phi), exact)
    assert z.abs().max() > 10 * Z_TOLERANCE


def test_variance_ordering(setting):
    _, _, _, _, gradients = setting
    total = total_variance(gradients["total_return"])
    to_go = total_variance(gradients["reward_to_go"])
    with_true_values = total_variance(gradients["gae_lambda_1_true_values"])
    print(f"trace of per-trajectory gradient covariance: total return {total:.2f}, "
          f"reward-to-go {to_go:.2f}, reward-to-go - V^pi {with_true_values:.3f}")  # fmt: skip
    assert total > to_go > with_true_values


@pytest.fixture(scope="module")
def behaviour_samples(setting):
    """Trajectories of a behaviour policy mu != pi, and their per-decision weights under pi."""
    mdp, theta, _, _, _ = setting
    behaviour = theta + torch.randn(S, A, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    batch = sample(mdp, behaviour, TRAJECTORIES, seed=5)
    logp_target = theta.log_softmax(-1)[batch.states, batch.actions]
    logp_behaviour = behaviour.log_softmax(-1)[batch.states, batch.actions]
    w = per_decision_weights(importance_ratios(logp_target, logp_behaviour), batch.done)
    assert w.std() > 0.3  # the policies differ enough for the weights to matter
    return batch, w


def test_per_decision_importance_sampling_recovers_the_target_gradient(setting, behaviour_samples):
    _, theta, _, exact, _ = setting
    batch, w = behaviour_samples
    psi = reward_to_go(w * batch.rewards, batch.done, 1.0)
    z = z_scores(per_trajectory_gradients(theta, batch, psi), exact)
    assert z.abs().max() < Z_TOLERANCE, z
    # Unweighted, the behaviour samples estimate the wrong gradient.
    unweighted = per_trajectory_gradients(theta, batch, reward_to_go(batch.rewards, batch.done, 1.0))
    assert z_scores(unweighted, exact).abs().max() > 3 * Z_TOLERANCE


def test_importance_weighted_normalization_keeps_the_gradient_unbiased(setting, behaviour_samples):
    _, theta, _, exact, _ = setting
    batch, w = behaviour_samples
    psi = reward_to_go(w * batch.rewards, batch.done, 1.0)
    valid = torch.ones_like(batch.done)
    # normalize() subtracts w_t * b: the standardized weights are a positive multiple of an
    # unbiased estimate, so its direction (z-scores against the rescaled exact gradient) holds.
    normalized = normalize(psi, valid, importance=w)
    centered = psi - w * (psi.sum() / w.sum())
    torch.testing.assert_close(normalized * (centered.std() + 1e-8), centered)
    z = z_scores(per_trajectory_gradients(theta, batch, centered), exact)
    assert z.abs().max() < Z_TOLERANCE, z
    # A constant baseline without the weight is biased under another policy's samples.
    plain = psi - psi.mean()
    assert z_scores(per_trajectory_gradients(theta, batch, plain), exact).abs().max() > 3 * Z_TOLERANCE


def test_current_policy_as_behaviour_gives_weights_of_exactly_one(setting):
    _, theta, batch, _, _ = setting
    logp = theta.log_softmax(-1)[batch.states, batch.actions]
    rho = importance_ratios(logp, logp.clone())
    assert torch.equal(rho, torch.ones_like(rho))
    assert torch.equal(per_decision_weights(rho, batch.done), torch.ones_like(rho))
