"""The policies' closed-form sampling, log-probs and entropies against torch.distributions."""

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from pgrun.config import PolicyConfig
from pgrun.networks.policy import make_policy
from pgrun.training.policy_file import read_policy

SPACES = {
    "categorical": gym.spaces.Discrete(4, start=-1),
    "gaussian": gym.spaces.Box(low=-1.0, high=1.0, shape=(3,)),
    "multi_categorical": gym.spaces.MultiDiscrete([3, 2, 4], start=[0, -1, 2]),
    "bernoulli": gym.spaces.MultiBinary(3),
}


def policy_and_obs(space: gym.Space):
    torch.manual_seed(0)
    # log-std away from 0 and a wide output layer, so a dropped sigma or a wrong sign shows
    policy = make_policy(5, space, PolicyConfig(init="default", log_std_init=-0.7))
    if hasattr(policy.action_distribution, "log_std"):
        with torch.no_grad():
            policy.action_distribution.log_std.add_(torch.linspace(-0.3, 0.4, 3))
    return policy, torch.randn(32, 5) * 3


@pytest.mark.parametrize("name", SPACES)
def test_closed_forms_equal_torch_distributions(name):
    policy, obs = policy_and_obs(SPACES[name])
    params = policy.distribution_params(obs)
    reference = policy.distribution_from(params)
    actions = reference.sample()
    torch.testing.assert_close(policy.log_prob_from(params, actions), reference.log_prob(actions))
    torch.testing.assert_close(policy.entropy_from(params), reference.entropy())


@pytest.mark.parametrize("name", SPACES)
def test_kl_and_its_gradient_equal_torch_distributions(name):
    policy, obs = policy_and_obs(SPACES[name])
    params = policy.distribution_params(obs)
    old_params = params.detach() + 0.5 * torch.randn(params.shape)  # another policy's params
    ours = policy.kl_from(old_params, params)
    theirs = torch.distributions.kl_divergence(
        policy.distribution_from(old_params), policy.distribution_from(params)
    )
    torch.testing.assert_close(ours, theirs)
    assert ours.mean() > 0.05  # far enough apart that a wrong direction or term would show
    policy.zero_grad()
    ours.mean().backward(retain_graph=True)  # (theirs shares the forward pass)
    our_grads = [p.grad.clone() for p in policy.parameters()]
    policy.zero_grad()
    theirs.mean().backward()
    for a, b in zip(our_grads, [p.grad for p in policy.parameters()], strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", SPACES)
def test_log_prob_gradients_equal_torch_distributions(name):
    policy, obs = policy_and_obs(SPACES[name])
    with torch.no_grad():
        actions = policy.distribution(obs).sample()
    weights = torch.randn(len(obs))

    def gradient(log_prob):
        policy.zero_grad()
        (weights * log_prob).sum().backward()
        return [p.grad.clone() for p in policy.parameters()]

    ours = gradient(policy.log_prob_from(policy.distribution_params(obs), actions))
    theirs = gradient(policy.distribution(obs).log_prob(actions))
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b)


def test_gaussian_sampling_draws_what_torch_distributions_draw():
    """Same random stream, same actions: the collector's fast path is the distribution's sample."""
    policy, obs = policy_and_obs(SPACES["gaussian"])
    with torch.no_grad():
        torch.manual_seed(1)
        expected = policy.distribution(obs).sample()
        torch.manual_seed(1)
        actions, output = policy.sample(obs)
        logp = policy.log_prob_from(policy.params_from_output(output), actions)
    assert torch.equal(actions, expected)
    torch.testing.assert_close(logp, policy.distribution(obs).log_prob(actions))


def test_gaussian_samples_have_the_policys_mean_and_std():
    policy, obs = policy_and_obs(SPACES["gaussian"])
    many = obs[:1].expand(20000, -1)
    with torch.no_grad():
        actions, _ = policy.sample(many)
        mean = policy.mode(obs[:1])[0]
    np.testing.assert_allclose(actions.mean(0), mean, atol=0.03)
    np.testing.assert_allclose(actions.std(0), policy.action_distribution.log_std.detach().exp(), rtol=0.03)


def test_categorical_samples_have_the_policys_probabilities():
    """Gumbel-max sampling: the frequency of each action is softmax(logits)_a."""
    policy, obs = policy_and_obs(SPACES["categorical"])
    torch.manual_seed(2)
    rows = obs[:2].repeat_interleave(100_000, dim=0)
    with torch.no_grad():
        actions, output = policy.sample(rows)
        logp = policy.log_prob_from(policy.params_from_output(output), actions)
        probabilities = policy.distribution_params(obs[:2]).softmax(-1)
    for row in range(2):
        drawn = actions[row * 100_000 : (row + 1) * 100_000]
        frequencies = torch.bincount(drawn, minlength=4).double() / len(drawn)
        # 4 standard errors of a frequency of 100,000 draws at most 0.0016 each
        np.testing.assert_allclose(frequencies, probabilities[row].double(), atol=0.0064)
    torch.testing.assert_close(logp, policy.distribution(rows).log_prob(actions))


@pytest.mark.parametrize("rows", [4, 256])  # below and above SIGMOID_TANH_MIN_ELEMENTS / 64
def test_tanh_is_torchs_tanh_in_value_gradient_and_hessian(rows):
    """The MLPs' tanh (by way of sigmoid on large inputs) against torch.tanh: values, first
    derivatives, and second derivatives (TRPO's Hessian-vector products differentiate twice)."""
    from pgrun.networks.layers import tanh

    torch.manual_seed(0)
    x = (torch.randn(rows, 64) * 3).requires_grad_()
    weights = torch.randn(rows, 64)
    if rows == 4:  # small inputs are torch's own tanh, to the bit
        assert torch.equal(tanh(x), torch.tanh(x))
    torch.testing.assert_close(tanh(x), torch.tanh(x), rtol=0, atol=3e-7)

    def derivatives(f):
        (grad,) = torch.autograd.grad((weights * f(x)).sum(), x, create_graph=True)
        (second,) = torch.autograd.grad((grad * weights).sum(), x)
        return grad, second

    (grad, second), (torch_grad, torch_second) = derivatives(tanh), derivatives(torch.tanh)
    torch.testing.assert_close(grad, torch_grad, rtol=1e-5, atol=1e-6)
    # 1 - tanh^2 near saturation turns tanh's 2e-7 into a few 1e-6 here (of values up to ~10)
    torch.testing.assert_close(second, torch_second, rtol=1e-4, atol=1e-5)


DATA = Path(__file__).resolve().parent / "data"


def legacy_state_dict(policy) -> dict[str, torch.Tensor]:
    """The state_dict as the policies before the encoder/head split named it: one MLP
    (`logits` or `mean`, linear layers at even indices) and log_std, low, high at the top."""
    prefix = "mean" if hasattr(policy.action_distribution, "log_std") else "logits"
    layers = [*policy.encoder.layers, policy.head]
    state = {}
    for index, layer in enumerate(layers):
        state[f"{prefix}.{2 * index}.weight"] = layer.weight.detach().clone()
        state[f"{prefix}.{2 * index}.bias"] = layer.bias.detach().clone()
    for name, value in policy.action_distribution.state_dict().items():
        state[name] = value.clone()
    return state


@pytest.mark.parametrize("name", ["categorical", "gaussian"])  # the action spaces pgrun had then
def test_a_state_dict_of_the_policies_before_the_split_loads_unchanged(name):
    torch.manual_seed(1)
    old = make_policy(5, SPACES[name], PolicyConfig(hidden_sizes=[7, 6], log_std_init=-0.2))
    torch.manual_seed(2)
    new = make_policy(5, SPACES[name], PolicyConfig(hidden_sizes=[7, 6]))
    new.load_state_dict(legacy_state_dict(old))
    obs = torch.randn(9, 5)
    assert torch.equal(new.distribution_params(obs), old.distribution_params(obs))
    assert new.state_dict().keys() == old.state_dict().keys()


def test_a_policy_file_written_before_the_redesign_acts_as_it_did():
    """tests/data/legacy_run_b26c809/policy.pt: PPO on Pendulum-v1 (normalized observations, one
    hidden layer of 8), written by pgrun at b26c809; the .json holds what that version
    computed from it for five observations: the same numbers, bit for bit on the Intel Xeon
    that computed them, to float32 rounding (1e-6) on other CPUs (an AMD EPYC's BLAS differs
    in the last bit of one of the ten)."""
    saved = read_policy(DATA / "legacy_run_b26c809" / "policy.pt")
    expected = json.loads((DATA / "legacy_policy_b26c809.json").read_text())
    obs = np.array(expected["obs"], dtype=np.float32)
    with torch.no_grad():
        features = saved.preprocessor(obs)
        params = saved.policy.distribution_params(features)
        actions = saved.policy.env_action(saved.policy.mode(features))
    torch.testing.assert_close(params, torch.tensor(expected["params"]), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(actions, expected["env_actions"], rtol=1e-6, atol=1e-7)
