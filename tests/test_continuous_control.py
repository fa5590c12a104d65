"""The continuous-control essentials (issue 13), each with its effect checked: actions clipped
at the env only, a state-independent log-std, orthogonal initialization with its gains, and
separate policy and value networks. Observation normalization, reward scaling and their
clipping are checked in test_collector.py and test_reward_scaling.py."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from pgrun.collection.collector import Collector
from pgrun.collection.envs import make_vector_env
from pgrun.collection.normalization import ObservationPreprocessor
from pgrun.config import EnvConfig, PolicyConfig
from pgrun.networks.layers import mlp
from pgrun.networks.policy import make_policy
from pgrun.networks.value import value_networks


class ActionRecorder(gym.vector.VectorWrapper):
    def __init__(self, env):
        super().__init__(env)
        self.actions = []

    def step(self, actions):
        self.actions.append(np.array(actions, copy=True))
        return self.env.step(actions)


def pendulum_batch(clip_actions: bool):
    """A batch from a wide Gaussian policy on Pendulum (torque bounds +-2), and what the env got."""
    env = EnvConfig(id="Pendulum-v1", num_envs=2)
    torch.manual_seed(0)
    envs = ActionRecorder(make_vector_env(env, env.num_envs))
    encoder = ObservationPreprocessor(envs.single_observation_space)
    policy = make_policy(
        encoder.dim, envs.single_action_space, PolicyConfig(log_std_init=1.0, clip_actions=clip_actions)
    )
    batch = Collector(envs, policy, encoder, "steps", 200, seed=0).collect()
    return policy, batch, np.stack(envs.actions)


def test_the_env_gets_clipped_actions_and_the_update_the_unclipped_sample():
    policy, batch, sent = pendulum_batch(clip_actions=True)
    assert batch.actions.abs().max() > 2.5  # samples beyond the bounds were drawn ...
    np.testing.assert_array_equal(sent, batch.actions.clamp(-2.0, 2.0).numpy())  # ... and clipped at the env
    with torch.no_grad():  # the log-probs are those of the unclipped samples
        expected = policy.distribution(batch.obs).log_prob(batch.actions)
    torch.testing.assert_close(batch.logp, expected)


def test_without_clip_actions_the_env_gets_the_raw_sample():
    _, batch, sent = pendulum_batch(clip_actions=False)
    assert np.abs(sent).max() > 2.5
    np.testing.assert_array_equal(sent, batch.actions.numpy())


def test_log_std_is_one_learned_vector_for_every_state():
    policy = make_policy(3, gym.spaces.Box(-1.0, 1.0, shape=(2,)), PolicyConfig(log_std_init=-1.2))
    obs = torch.randn(5, 3) * 10
    params = policy.distribution_params(obs)
    _, log_std = params.chunk(2, dim=-1)
    torch.testing.assert_close(log_std, torch.full((5, 2), -1.2))
    actions = torch.zeros(5, 2)
    policy.log_prob_from(params, actions).sum().backward()
    assert (
        policy.action_distribution.log_std.grad is not None
        and policy.action_distribution.log_std.grad.abs().sum() > 0
    )


@pytest.mark.parametrize("sizes", [[64, 64], [256, 32]])
def test_orthogonal_init_uses_gain_sqrt2_in_hidden_layers_and_the_output_gain(sizes):
    torch.manual_seed(0)
    net = mlp(17, 6, sizes, "tanh", "orthogonal", out_gain=0.01)
    linears = [layer for layer in net if isinstance(layer, torch.nn.Linear)]
    for layer, gain in zip(linears, [2**0.5] * len(sizes) + [0.01], strict=True):
        weight = layer.weight.detach()
        rows, cols = weight.shape
        gram = weight @ weight.T if rows <= cols else weight.T @ weight  # orthonormal rows or columns
        torch.testing.assert_close(gram, gain**2 * torch.eye(min(rows, cols)), atol=1e-5, rtol=1e-4)
        assert torch.count_nonzero(layer.bias) == 0
    default = mlp(17, 6, sizes, "tanh", "default")
    weight = default[0].weight.detach()
    assert not torch.allclose(weight @ weight.T, 2 * torch.eye(sizes[0]), atol=1e-2)


def test_value_network_is_separate_from_the_policy_with_output_gain_one():
    config = PolicyConfig()
    policy = make_policy(17, gym.spaces.Box(-1.0, 1.0, shape=(6,)), config)
    value = value_networks(17, config)([64, 64])
    policy_storage = {p.data_ptr() for p in policy.parameters()}
    assert not policy_storage & {p.data_ptr() for p in value.parameters()}
    out = value.net[-1].weight.detach()
    torch.testing.assert_close(out @ out.T, torch.eye(1), atol=1e-5, rtol=1e-4)
