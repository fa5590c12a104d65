"""PPO's surrogate losses against hand-computed values, and its update loop."""

import math

import pytest
import torch
from tests_support import SPACES, random_batch, random_like, small_policy, value_networks

from pgrun.algorithms.policy_gradient import PolicyGradient, PolicyGradientConfig
from pgrun.algorithms.ppo import PPO, PPOConfig, PPOValueConfig, clipped_surrogate, kl_penalized_surrogate
from pgrun.config import OptimizerConfig
from pgrun.estimation.estimators import Advantages
from pgrun.networks.distributions import DiagonalGaussian


def ppo_rule(space, optim=None, **overrides):
    policy = small_policy(space)
    config = PPOConfig(optim=optim or OptimizerConfig(lr=0.05), **overrides)
    return policy, PPO(config, policy, value_networks)


# (ratio, advantage) -> the per-step objective min(r A, clip(r, 0.8, 1.2) A) and its derivative in r
CLIP_CASES = {
    "inside, A > 0": (1.1, 2.0, 2.2, 2.0),
    "inside, A < 0": (0.9, -2.0, -1.8, -2.0),
    "above, A > 0: clipped": (1.5, 2.0, 2.4, 0.0),
    "above, A < 0: not clipped": (1.5, -2.0, -3.0, -2.0),
    "below, A > 0: not clipped": (0.5, 2.0, 1.0, 2.0),
    "below, A < 0: clipped": (0.5, -2.0, -1.6, 0.0),
}


@pytest.mark.parametrize(("ratio", "advantage", "objective", "d_ratio"), CLIP_CASES.values(), ids=CLIP_CASES)
def test_clipped_surrogate_hand_computed(ratio, advantage, objective, d_ratio):
    logp_old = torch.tensor([-1.0])
    logp = (logp_old + math.log(ratio)).requires_grad_(True)
    loss, clip_frac = clipped_surrogate(logp, logp_old, torch.tensor([advantage]), clip=0.2)
    assert loss.item() == pytest.approx(-objective)
    (grad,) = torch.autograd.grad(loss, logp)
    # d loss / d log r = -d objective / d r * r
    assert grad.item() == pytest.approx(-d_ratio * ratio)
    assert clip_frac.item() == (1.0 if ratio != pytest.approx(1.0, abs=0.2) else 0.0)


def test_clipped_surrogate_averages_over_steps():
    ratios = torch.tensor([1.1, 1.5, 0.5, 0.5])
    advantages = torch.tensor([2.0, 2.0, 2.0, -2.0])
    logp_old = torch.zeros(4)
    loss, clip_frac = clipped_surrogate(ratios.log(), logp_old, advantages, clip=0.2)
    assert loss.item() == pytest.approx(-(2.2 + 2.4 + 1.0 - 1.6) / 4)
    assert clip_frac.item() == 0.75


def gaussian(mean: float, std: float) -> torch.Tensor:
    """The params [mean, log_std] of a one-dimensional Gaussian policy at one state."""
    return torch.tensor([[mean, math.log(std)]])


def test_penalty_is_the_kl_from_the_old_policy_to_the_new():
    old, new = gaussian(0.0, 1.0), gaussian(0.5, 2.0)
    # KL(N(m0, s0) || N(m1, s1)) = log(s1 / s0) + (s0^2 + (m0 - m1)^2) / (2 s1^2) - 1/2
    old_to_new = math.log(2.0) + (1.0 + 0.25) / 8.0 - 0.5
    new_to_old = math.log(0.5) + (4.0 + 0.25) / 2.0 - 0.5
    assert abs(old_to_new - new_to_old) > 0.5  # the two directions are far apart here
    logp_old, logp = torch.tensor([-1.0]), torch.tensor([-0.5])
    kl = DiagonalGaussian.kl(old, new)
    loss, info = kl_penalized_surrogate(kl, logp, logp_old, torch.tensor([3.0]), beta=2.0)
    assert info["train/kl_penalty"] == pytest.approx(old_to_new)
    assert loss.item() == pytest.approx(-math.exp(0.5) * 3.0 + 2.0 * old_to_new, rel=1e-6)


@pytest.mark.parametrize("space", SPACES.values(), ids=SPACES.keys())
def test_one_epoch_one_minibatch_ppo_step_equals_the_policy_gradient_step(space):
    sgd = OptimizerConfig(name="sgd", lr=0.1)
    ppo_policy, ppo = ppo_rule(space, optim=sgd, epochs=1, minibatch_size=None, target_kl=None)
    pg_policy = small_policy(space)
    pg = PolicyGradient(PolicyGradientConfig(optim=sgd), pg_policy, value_networks)
    batch = random_batch(ppo_policy, seed=1)
    phi = random_like(batch.rewards, seed=2)
    ppo.policy_update(batch.flat(batch.obs), batch.flat(batch.actions), batch.flat(phi), progress=0.0)
    pg.update(Advantages(batch, phi), progress=0.0)
    for ppo_param, pg_param in zip(ppo_policy.parameters(), pg_policy.parameters(), strict=True):
        torch.testing.assert_close(ppo_param, pg_param)


@pytest.mark.parametrize("space", SPACES.values(), ids=SPACES.keys())
def test_policy_steps_are_clipped_to_max_grad_norm(space):
    sgd = OptimizerConfig(name="sgd", lr=0.1, max_grad_norm=1e-3)
    policy, rule = ppo_rule(space, optim=sgd, epochs=1, minibatch_size=None, target_kl=None)
    before = [p.detach().clone() for p in policy.parameters()]
    batch = random_batch(policy, seed=1)
    phi = random_like(batch.rewards, seed=2)
    info = rule.policy_update(batch.flat(batch.obs), batch.flat(batch.actions), batch.flat(phi), progress=0.0)
    step = sum(((p.detach() - b) ** 2).sum() for p, b in zip(policy.parameters(), before, strict=True)).sqrt()
    assert info["train/grad_norm"] > 1e-2  # the norm before clipping is reported
    assert step.item() == pytest.approx(0.1 * 1e-3, rel=1e-3)  # SGD moved lr * max_grad_norm


def test_large_steps_clip_ratios_and_stop_the_epochs_early():
    policy, rule = ppo_rule(SPACES["categorical"], epochs=10, minibatch_size=16, target_kl=0.01)
    batch = random_batch(policy, seed=3, steps=64, envs=4)
    obs, actions = batch.flat(batch.obs), batch.flat(batch.actions)
    phi = batch.flat(random_like(batch.rewards, seed=4))
    info = rule.policy_update(obs, actions, phi, progress=0.0)
    assert info["train/stopped_early"] == 1.0
    assert 0 < info["train/epochs"] < 10
    # without early stopping all epochs run, and the ratios leave the clip range
    policy, rule = ppo_rule(SPACES["categorical"], epochs=3, minibatch_size=16, target_kl=None)
    info = rule.policy_update(obs, actions, phi, progress=0.0)
    assert info["train/stopped_early"] == 0.0 and info["train/epochs"] == 3
    assert info["train/clip_frac"] > 0.0


def test_the_whole_batch_kl_stop_ends_the_epochs_at_the_first_epoch_over_the_limit():
    batch = random_batch(ppo_rule(SPACES["categorical"])[0], seed=3, steps=64, envs=4)
    obs, actions = batch.flat(batch.obs), batch.flat(batch.actions)
    phi = batch.flat(random_like(batch.rewards, seed=4))
    kls = []  # the whole-batch approximate KL after each epoch, without a stop
    for epochs in range(1, 11):
        torch.manual_seed(9)
        _, rule = ppo_rule(SPACES["categorical"], epochs=epochs, minibatch_size=16, target_kl=None)
        kls.append(rule.policy_update(obs, actions, phi, progress=0.0)["train/approx_kl"])
    first_over = next(epoch for epoch, kl in enumerate(kls, start=1) if kl > 1.5 * 0.01)
    torch.manual_seed(9)
    _, rule = ppo_rule(
        SPACES["categorical"], epochs=10, minibatch_size=16, target_kl=0.01, kl_stop_on="batch"
    )
    info = rule.policy_update(obs, actions, phi, progress=0.0)
    assert info["train/stopped_early"] == 1.0 and info["train/epochs"] == first_over < 10
    assert info["train/approx_kl"] == pytest.approx(kls[first_over - 1])


@pytest.mark.parametrize(("lr", "factor"), [(0.1, 2.0), (1e-6, 0.5)])
def test_penalty_coefficient_adapts_to_the_measured_kl(lr, factor):
    policy, rule = ppo_rule(
        SPACES["gaussian"], optim=OptimizerConfig(lr=lr), variant="penalty", epochs=4, minibatch_size=32,
        target_kl=0.01, kl_coef=1.0,
    )  # fmt: skip
    batch = random_batch(policy, seed=5, steps=32, envs=4)
    phi = batch.flat(random_like(batch.rewards, seed=6))
    info = rule.policy_update(batch.flat(batch.obs), batch.flat(batch.actions), phi, progress=0.0)
    assert info["train/kl_coef"] == 1.0
    assert rule.kl_coef == factor
    assert (info["train/kl"] > 0.015) == (factor == 2.0)


@pytest.mark.parametrize("target_kl", [None, 0.001], ids=["all epochs", "early stop"])
def test_value_fitted_on_the_policys_minibatches_leaves_both_fits_intact(target_kl):
    """value.iters == epochs and one minibatch size: one backward pass serves both networks.
    The policy takes exactly the steps it takes alone (same shuffles, no value gradient), and
    V takes all its iters passes of steps, even when the policy's epochs stop early."""
    config = dict(epochs=4, minibatch_size=13, target_kl=target_kl)
    value = PPOValueConfig(iters=4, minibatch_size=13, lr=0.01, max_grad_norm=None)
    joint_policy, joint = ppo_rule(SPACES["gaussian"], value=value, **config)
    alone_policy, alone = ppo_rule(SPACES["gaussian"], value=value, **config)
    assert joint.value.shares_minibatches_with(4, 13)
    batch = random_batch(joint_policy, seed=5, steps=13, envs=4)
    phi, targets = random_like(batch.rewards, seed=6), random_like(batch.rewards, seed=7) * 3
    torch.manual_seed(8)
    info = joint.update(Advantages(batch, phi, value_targets=targets), progress=0.0)
    torch.manual_seed(8)
    alone_info = alone.policy_update(batch.flat(batch.obs), batch.flat(batch.actions), batch.flat(phi), 0.0)
    assert info["train/stopped_early"] == alone_info["train/stopped_early"] == float(target_kl is not None)
    for a, b in zip(joint_policy.parameters(), alone_policy.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    n = int(batch.valid.sum())
    assert joint.value.optimizer.steps == 4 * -(-n // 13)
    with torch.no_grad():  # and V moved towards its targets
        before = (alone.value.net(batch.flat(batch.obs)) - batch.flat(targets)).pow(2).mean()
        after = (joint.value.net(batch.flat(batch.obs)) - batch.flat(targets)).pow(2).mean()
    assert after < 0.9 * before


def test_shuffled_minibatches_cover_every_row_once():
    from pgrun.batch import shuffled_minibatches

    torch.manual_seed(0)
    parts = shuffled_minibatches(10, 4)
    assert [len(part) for part in parts] == [4, 4, 2]
    assert sorted(torch.cat(parts).tolist()) == list(range(10))
    assert torch.cat(parts).tolist() != list(range(10))  # shuffled
    # one minibatch of every row: the rows in order, as a view
    rows = torch.arange(10.0)
    for size in (None, 10, 64):
        (whole,) = shuffled_minibatches(10, size)
        assert rows[whole].data_ptr() == rows.data_ptr() and torch.equal(rows[whole], rows)


@pytest.mark.parametrize(("schedule", "expected"), [("linear", 0.005), ("constant", 0.01)])
def test_the_value_networks_learning_rate_follows_its_schedule(schedule, expected):
    value = PPOValueConfig(iters=1, minibatch_size=None, lr=0.01, lr_schedule=schedule)
    policy, rule = ppo_rule(
        SPACES["gaussian"], optim=OptimizerConfig(lr=0.05, lr_schedule="linear"), value=value
    )
    batch = random_batch(policy, seed=5, steps=8, envs=2)
    advantages = Advantages(
        batch, random_like(batch.rewards, seed=6), value_targets=random_like(batch.rewards, seed=7)
    )
    rule.update(advantages, progress=0.5)
    assert rule.value.optimizer.lr == pytest.approx(expected)
    assert rule.optimizer.lr == pytest.approx(0.025)


def test_a_null_value_schedule_resolves_to_the_policys_and_older_runs_read_as_constant():
    from pgrun.api import config_of
    from pgrun.config.legacy import current_config

    assert (
        config_of(["algo=ppo", "tuned=null", "algo.optim.lr_schedule=linear"]).algo.value.lr_schedule
        == "linear"
    )
    assert config_of(["algo=ppo", "tuned=null"]).algo.value.lr_schedule == "constant"
    assert config_of(["algo=trpo", "tuned=null"]).algo.value.lr_schedule == "constant"  # trpo has no schedule
    old = {"algo": {"value": {"lr": 0.001}}, "eval": {"episodes": 10}}
    assert current_config(old)["algo"]["value"]["lr_schedule"] == "constant"
