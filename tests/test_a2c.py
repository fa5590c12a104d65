"""A2C: one update against the gradient of its loss computed by hand, on a linear policy and critic."""

import pytest
import torch
from tests_support import SPACES, random_batch, random_like, small_policy, value_networks

from pgrun.algorithms.a2c import A2C, A2CConfig, A2CValueConfig
from pgrun.algorithms.optim import RMSPROP_ALPHA
from pgrun.config import OptimizerConfig
from pgrun.estimation.estimators import Advantages

VALUE_COEF, ENT_COEF = 0.5, 0.1


def linear_a2c(optim: OptimizerConfig) -> A2C:
    """Softmax of a linear map for the policy, a linear critic: gradients a hand can write."""
    policy = small_policy(SPACES["categorical"], hidden_sizes=[])
    config = A2CConfig(value=A2CValueConfig(hidden_sizes=[], coef=VALUE_COEF), ent_coef=ENT_COEF, optim=optim)
    rule = A2C(config, policy, value_networks)
    with torch.no_grad():  # away from the near-uniform start, so every term matters
        for p in rule.optimizer.params:
            p.copy_(random_like(p, seed=p.numel()))
    return rule


def hand_gradient(rule: A2C, advantages: Advantages) -> list[torch.Tensor]:
    """dL/d(W, b) of the policy's logits z = W x + b and dL/d(u, c) of V = u x + c, for
    L = -(1/n) sum A log pi(a|x) + c_V (1/n) sum (V - R)^2 - c_H (1/n) sum H[pi(.|x)]:
      dL/dz = -(A/n) (onehot(a) - pi) + (c_H/n) pi (log pi + H)      (dH/dz_j = -pi_j (log pi_j + H))
      dL/dV = (2 c_V / n) (V - R)."""
    batch = advantages.batch
    x, a = batch.flat(batch.obs), batch.flat(batch.actions)
    phi, targets = batch.flat(advantages.phi), batch.flat(advantages.value_targets)
    n = len(x)
    actor, critic = rule.policy.head, rule.critic.net[0]
    w, b, u, c = actor.weight, actor.bias, critic.weight, critic.bias
    with torch.no_grad():
        pi = (x @ w.T + b).softmax(-1)
        entropy = -(pi * pi.log()).sum(-1, keepdim=True)
        onehot = torch.nn.functional.one_hot(a, pi.shape[-1]).float()
        dz = -(phi[:, None] / n) * (onehot - pi) + (ENT_COEF / n) * pi * (pi.log() + entropy)
        dv = (2 * VALUE_COEF / n) * ((x @ u.T + c).squeeze(-1) - targets)
        return [dz.T @ x, dz.sum(0), dv[None, :] @ x, dv.sum(0, keepdim=True)]


def one_update(optim: OptimizerConfig):
    """The change of every parameter in one update, the hand gradient, and the diagnostics."""
    rule = linear_a2c(optim)
    batch = random_batch(rule.policy, seed=1)
    advantages = Advantages(
        batch, random_like(batch.rewards, seed=2), value_targets=random_like(batch.rewards, seed=3)
    )
    expected = hand_gradient(rule, advantages)
    before = [p.detach().clone() for p in rule.optimizer.params]
    info = rule.update(advantages, progress=0.0)
    return [p.detach() - old for p, old in zip(rule.optimizer.params, before, strict=True)], expected, info


def test_one_sgd_step_is_minus_the_hand_computed_gradient():
    steps, gradient, info = one_update(OptimizerConfig(name="sgd", lr=1.0))
    for step, grad in zip(steps, gradient, strict=True):
        torch.testing.assert_close(step, -grad, rtol=1e-5, atol=1e-7)
    norm = torch.cat([g.flatten() for g in gradient]).norm().item()
    assert info["train/grad_norm"] == pytest.approx(norm, rel=1e-5)


def test_one_rmsprop_step_follows_the_rmsprop_rule_on_that_gradient():
    # from an empty state: v = (1 - alpha) g^2, step = -lr g / (sqrt(v) + eps)
    lr, eps = 7e-4, 1e-5
    steps, gradient, _ = one_update(OptimizerConfig(name="rmsprop", lr=lr, eps=eps))
    for step, grad in zip(steps, gradient, strict=True):
        expected = -lr * grad / (((1 - RMSPROP_ALPHA) * grad**2).sqrt() + eps)
        torch.testing.assert_close(step, expected, rtol=1e-4, atol=1e-8)


def test_two_tensorflow_form_rmsprop_steps_follow_that_rule():
    # s_0 = 1, s_k = alpha s_(k-1) + (1 - alpha) g_k^2; step_k = -lr g_k / sqrt(s_k + eps)
    # (steps well above float32's resolution at the weights; an eps that tells inside from outside the root)
    lr, eps, alpha = 0.05, 0.5, RMSPROP_ALPHA
    rule = linear_a2c(OptimizerConfig(name="rmsprop_tf", lr=lr, eps=eps))
    square_avg = [torch.ones_like(p) for p in rule.optimizer.params]
    for seed in (1, 4):
        batch = random_batch(rule.policy, seed=seed)
        advantages = Advantages(
            batch,
            random_like(batch.rewards, seed=seed + 1),
            value_targets=random_like(batch.rewards, seed=seed + 2),
        )
        gradient = hand_gradient(rule, advantages)
        before = [p.detach().clone() for p in rule.optimizer.params]
        rule.update(advantages, progress=0.0)
        for p, old, grad, s in zip(rule.optimizer.params, before, gradient, square_avg, strict=True):
            s.mul_(alpha).add_((1 - alpha) * grad**2)
            torch.testing.assert_close(p.detach() - old, -lr * grad / (s + eps).sqrt(), rtol=1e-4, atol=1e-7)


def test_with_a_shared_encoder_one_sgd_step_is_minus_the_joint_losss_gradient():
    """value.share_encoder: V is a head on the policy's encoder; one plain SGD step moves the
    encoder by the gradient of both terms of the joint loss, each head by its own."""
    torch.manual_seed(0)
    policy = small_policy(SPACES["categorical"])  # a hidden layer: an encoder worth sharing
    config = A2CConfig(
        value=A2CValueConfig(share_encoder=True, coef=VALUE_COEF),
        ent_coef=ENT_COEF,
        optim=OptimizerConfig(name="sgd", lr=1.0),
    )
    rule = A2C(config, policy, value_networks)
    assert rule.critic.encoder is policy.encoder
    learned = [*policy.parameters(), *rule.critic.head.parameters()]
    assert len(rule.optimizer.params) == len(learned)  # the shared encoder once
    batch = random_batch(policy, seed=1)
    phi, targets = random_like(batch.rewards, seed=2), random_like(batch.rewards, seed=3)
    obs, actions = batch.flat(batch.obs), batch.flat(batch.actions)
    params = policy.distribution_params(obs)
    values = rule.critic.head(policy.encoder(obs)).squeeze(-1)
    loss = -(batch.flat(phi) * policy.log_prob_from(params, actions)).mean()
    loss = loss + VALUE_COEF * (values - batch.flat(targets)).pow(2).mean()
    loss = loss - ENT_COEF * policy.entropy_from(params).mean()
    expected = [(p - g).detach() for p, g in zip(learned, torch.autograd.grad(loss, learned), strict=True)]
    rule.update(Advantages(batch, phi, value_targets=targets), progress=0.0)
    for p, after in zip(learned, expected, strict=True):
        torch.testing.assert_close(p.detach(), after, rtol=1e-5, atol=1e-7)
