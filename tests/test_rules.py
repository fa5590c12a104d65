"""The update-rule contract, checked on every registered algorithm: what a rule learns from an
estimate (entropy bonus, value targets) and the state it hands to checkpoints."""

import dataclasses
import io

import pytest
import torch
from tests_support import SPACES, random_batch, random_like, small_policy, value_networks

from pgrun.algorithms import algorithms
from pgrun.algorithms.a2c import A2CValueConfig
from pgrun.algorithms.ppo import PPOValueConfig
from pgrun.config import OptimizerConfig, ValueConfig
from pgrun.estimation.estimators import Advantages

ALGORITHMS = algorithms()
WITH_ENTROPY_BONUS = [
    name for name, algo in ALGORITHMS.items() if "ent_coef" in algo.schema.__dataclass_fields__
]
FAST_VALUE_FIT = {  # settings under which V can fit a batch's targets in a few updates
    "baseline": {"value": ValueConfig(hidden_sizes=[32], lr=0.01, iters=300)},
    "ppo": {"value": PPOValueConfig(hidden_sizes=[32], lr=0.01, iters=300)},
    "trust_region": {"value": ValueConfig(hidden_sizes=[32], lr=0.01, iters=300)},
    "a2c": {"optim": OptimizerConfig(name="adam", lr=0.01), "value": A2CValueConfig(coef=1.0)},
}
UPDATES_TO_FIT = {"a2c": 300}  # a2c's critic takes one step per update


def build(name: str, space, seed: int = 0, **overrides):
    algorithm = ALGORITHMS[name]
    return algorithm.rule(algorithm.schema(**overrides), small_policy(space, seed=seed), value_networks)


def far_from_uniform(rule):
    """Random policy weights, so that the start is not already the entropy maximum."""
    with torch.no_grad():
        for p in rule.policy.parameters():
            p.copy_(random_like(p, seed=p.numel()))
    return rule


def through_a_file(state: dict) -> dict:
    """The state as a checkpoint would give it back: saved, and loaded with weights_only."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def entropy(rule, batch) -> float:
    with torch.no_grad():
        return rule.policy.distribution(batch.flat(batch.obs)).entropy().mean().item()


def test_every_shipped_estimator_need_is_met():
    # a rule either has a critic or its schema's estimators need none
    for name in ALGORITHMS:
        rule = build(name, SPACES["categorical"])
        estimators = dataclasses.fields(ALGORITHMS[name].schema)[0].metadata["choices"]
        assert (rule.critic is not None) == ("gae" in estimators), name


@pytest.mark.parametrize("space", SPACES.values(), ids=SPACES.keys())
@pytest.mark.parametrize("name", WITH_ENTROPY_BONUS)
def test_entropy_bonus_raises_the_entropy(name, space):
    # with Phi = 0 the bonus is the only force on the policy
    rule = far_from_uniform(build(name, space, ent_coef=0.5, optim=OptimizerConfig(lr=0.01)))
    batch = random_batch(rule.policy, seed=1)
    zero = torch.zeros_like(batch.rewards)
    estimate = Advantages(batch, zero, value_targets=zero)
    before = entropy(rule, batch)
    for _ in range(5):
        rule.update(estimate, progress=0.0)
    assert entropy(rule, batch) > before + 1e-3
    # and without it the policy does not move
    rule = far_from_uniform(build(name, space, ent_coef=0.0, optim=OptimizerConfig(lr=0.01)))
    params = [p.detach().clone() for p in rule.policy.parameters()]
    rule.update(estimate, progress=0.0)
    for old, new in zip(params, rule.policy.parameters(), strict=True):
        torch.testing.assert_close(new.detach(), old)


@pytest.mark.parametrize("name", FAST_VALUE_FIT)
def test_value_function_fits_the_estimators_targets_of_this_batch(name):
    rule = build(name, SPACES["categorical"], **FAST_VALUE_FIT[name])
    batch = random_batch(rule.policy, seed=2, steps=32, envs=4)
    obs = batch.flat(batch.obs)
    phi = torch.zeros_like(batch.rewards)
    # targets unlike the rewards; then new targets, as the next batch's estimate would bring
    for targets in (3.0 + 2.0 * batch.obs[..., 0], -4.0 + batch.obs[..., 1]):
        estimate = Advantages(batch, phi, value_targets=targets)
        for _ in range(UPDATES_TO_FIT.get(name, 1)):
            rule.update(estimate, progress=0.0)
        with torch.no_grad():
            values = rule.critic(obs)
        error = (values - batch.flat(targets)).pow(2).mean()
        assert error < 0.05 * batch.flat(targets).var(), name
        assert (values - batch.flat(batch.rewards)).pow(2).mean() > 10 * error


# every algorithm as shipped, and the states a default run never changes: PPO's penalty coefficient
STATE_CASES = {name: (name, {}) for name in ALGORITHMS} | {
    "ppo_penalty": ("ppo", {"variant": "penalty", "target_kl": 1e-4}),
}


@pytest.mark.parametrize("space", SPACES.values(), ids=SPACES.keys())
@pytest.mark.parametrize("case", STATE_CASES)
def test_state_dict_carries_everything_the_next_update_depends_on(case, space):
    name, overrides = STATE_CASES[case]
    trained = build(name, space, seed=0, **overrides)
    batch = random_batch(trained.policy, seed=3)
    estimate = Advantages(
        batch, random_like(batch.rewards, seed=4), value_targets=random_like(batch.rewards, 5)
    )
    for _ in range(2):
        trained.update(estimate, progress=0.1)
    restored = build(name, space, seed=1, **overrides)  # other initial weights, fresh optimizers
    restored.load_state_dict(through_a_file(trained.state_dict()))
    for rule in (trained, restored):
        torch.manual_seed(6)  # the same minibatch shuffles
        rule.update(estimate, progress=0.2)
    for a, b in zip(
        trained.state_dict()["policy"].values(), restored.state_dict()["policy"].values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    if trained.critic is not None:
        for a, b in zip(trained.critic.parameters(), restored.critic.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
