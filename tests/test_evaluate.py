"""The evaluator: one episode per env copy, from fresh or fixed start states."""

import numpy as np
import torch

from pgrun.collection.envs import make_vector_env
from pgrun.collection.evaluator import Evaluator
from pgrun.collection.normalization import ObservationPreprocessor
from pgrun.config import EnvConfig, PolicyConfig
from pgrun.networks.policy import make_policy


def evaluator(env_id: str, episodes: int, deterministic: bool, seed: int = 5, fresh_starts: bool = False):
    envs = make_vector_env(EnvConfig(id=env_id), episodes)
    encoder = ObservationPreprocessor(envs.single_observation_space)
    torch.manual_seed(0)
    policy = make_policy(encoder.dim, envs.single_action_space, PolicyConfig(hidden_sizes=[8]))
    return Evaluator(envs, encoder, seed, deterministic, fresh_starts), policy


def test_returns_are_those_of_one_complete_episode_per_copy(tests_dir):
    evaluate, policy = evaluator("corridor_env:Corridor-v0", episodes=3, deterministic=False)
    with torch.no_grad():
        for p in policy.parameters():
            p.zero_()
        policy.head.bias.copy_(torch.tensor([0.0, 5.0]))  # mostly right, sometimes left
    returns = evaluate(policy)
    # -1 per step, at least 3 steps to the end; no return mixes two episodes (each <= 20 steps)
    assert returns.shape == (3,)
    assert np.all(returns <= -3) and np.all(returns >= -20)


def test_every_evaluation_starts_from_the_same_states():
    evaluate, policy = evaluator("CartPole-v1", episodes=4, deterministic=True)
    first = evaluate(policy)
    for _ in range(2):  # a third evaluation sees what the first saw
        evaluate(policy)
    np.testing.assert_array_equal(evaluate(policy), first)
    # and a new evaluator with the same seed (another run, or a resumed one) sees it too
    again, _ = evaluator("CartPole-v1", episodes=4, deterministic=True)
    np.testing.assert_array_equal(again(policy), first)
    other, _ = evaluator("CartPole-v1", episodes=4, deterministic=True, seed=6)
    assert not np.array_equal(other(policy), first)


def test_fresh_starts_give_each_evaluation_new_states_the_same_in_every_run():
    evaluate, policy = evaluator("Pendulum-v1", episodes=3, deterministic=True, fresh_starts=True)
    returns = [evaluate(policy, index) for index in range(3)]
    assert not np.array_equal(returns[0], returns[1]) and not np.array_equal(returns[1], returns[2])
    assert len({evaluate.seed_for(index) + copy for index in range(50) for copy in range(3)}) == 150
    # a resumed run (a new evaluator with the same seed) sees at evaluation k what the first saw
    again, _ = evaluator("Pendulum-v1", episodes=3, deterministic=True, fresh_starts=True)
    np.testing.assert_array_equal(again(policy, 2), returns[2])
    np.testing.assert_array_equal(again(policy, 0), returns[0])
    # fixed starts: index does not matter
    fixed, _ = evaluator("Pendulum-v1", episodes=3, deterministic=True)
    np.testing.assert_array_equal(fixed(policy, 0), fixed(policy, 7))


def test_stochastic_evaluation_repeats_and_leaves_the_training_rng_alone():
    evaluate, policy = evaluator("Pendulum-v1", episodes=2, deterministic=False)
    torch.manual_seed(123)
    expected_draw = torch.rand(1)
    torch.manual_seed(123)
    first = evaluate(policy)
    assert torch.equal(torch.rand(1), expected_draw)
    np.testing.assert_array_equal(evaluate(policy), first)
