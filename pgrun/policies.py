"""Stochastic policies pi_theta(a|s): categorical for Discrete actions, diagonal Gaussian for Box."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, Normal
from torch.nn import functional as F

from pgrun.config import PolicyConfig

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)

SIGMOID_TANH_MIN_ELEMENTS = 8192
"""inputs at least this large get tanh by way of sigmoid (`tanh`); measured on 64-wide layers
with one torch thread, torch.tanh is as fast below (128 rows) and up to 3x slower above"""


class SigmoidTanh(torch.autograd.Function):
    """tanh(x) = 2 sigmoid(2x) - 1, differentiated as tanh: d tanh(x)/dx = 1 - tanh(x)^2.

    torch's CPU tanh is about 8x slower per element than its sigmoid (one torch thread,
    float32: 35 us against 4 us for a 256 x 64 activation), and a minibatch step of PPO on
    CartPole spends a fifth of its time there. The two forms agree to 2e-7.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        y = torch.sigmoid(x * 2).mul_(2).sub_(1)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)  # grad * (1 - y^2), in one kernel


def tanh(x: Tensor) -> Tensor:
    """tanh(x): torch.tanh on small inputs, SigmoidTanh on large ones (where it is faster)."""
    return SigmoidTanh.apply(x) if x.numel() >= SIGMOID_TANH_MIN_ELEMENTS else torch.tanh(x)


ACTIVATIONS: dict[str, tuple[type[nn.Module], Callable[[Tensor], Tensor]]] = {
    "tanh": (nn.Tanh, tanh),
    "relu": (nn.ReLU, torch.relu),
    "elu": (nn.ELU, F.elu),
    "gelu": (nn.GELU, F.gelu),
    "silu": (nn.SiLU, F.silu),
}
"""name -> (the layer, the function it applies)"""


class MLP(nn.Sequential):
    """Linear layers with an activation between them, computed as one call: the same
    parameters and state_dict as nn.Sequential, without a module call per layer (the
    collector calls the policy every env step, where that overhead is ~10% of a step), and
    its numbers but for tanh on large inputs (`tanh`: within 3e-7).
    Built once by `mlp`; slicing it or adding layers afterwards is not supported."""

    def __init__(self, *layers: nn.Module, activation: Callable[[Tensor], Tensor]) -> None:
        super().__init__(*layers)
        self.linears = [layer for layer in layers if isinstance(layer, nn.Linear)]
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        *hidden, output = self.linears
        for layer in hidden:
            x = self.activation(F.linear(x, layer.weight, layer.bias))
        return F.linear(x, output.weight, output.bias)


def mlp(
    in_dim: int, out_dim: int, hidden_sizes: list[int], activation: str, init: str, out_gain: float = 0.01
) -> MLP:
    """in_dim -> hidden_sizes (with activation) -> out_dim.

    With init == "orthogonal": hidden weights orthogonal with gain sqrt(2), the output
    layer with `out_gain` (small for a policy, so it starts near uniform), zero biases.
    """
    sizes = [in_dim, *hidden_sizes, out_dim]
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        linear = nn.Linear(n_in, n_out)
        is_output = i == len(sizes) - 2
        if init == "orthogonal":
            nn.init.orthogonal_(linear.weight, gain=out_gain if is_output else math.sqrt(2))
            nn.init.zeros_(linear.bias)
        layers.append(linear)
        if not is_output:
            layers.append(ACTIVATIONS[activation][0]())
    return MLP(*layers, activation=ACTIVATIONS[activation][1])


class StochasticPolicy(nn.Module):
    """What both policy families compute the same way from their own `distribution_params`
    (obs -> the params that define pi(.|s)), `distribution_from` and `log_prob_from`."""

    def forward(self, obs: Tensor) -> Tensor:
        return self.distribution_params(obs)

    def distribution(self, obs: Tensor) -> Distribution:
        return self.distribution_from(self.distribution_params(obs))

    def log_prob_of(self, obs: Tensor, actions: Tensor) -> Tensor:
        """log pi(a|s) under the current parameters."""
        return self.log_prob_from(self.distribution_params(obs), actions)


class CategoricalPolicy(StochasticPolicy):
    """pi(a|s) = softmax(logits_theta(s))_a over a Discrete(n, start) space."""

    def __init__(self, obs_dim: int, space: gym.spaces.Discrete, config: PolicyConfig) -> None:
        super().__init__()
        self.logits = mlp(obs_dim, int(space.n), config.hidden_sizes, config.activation, config.init)
        self.start = int(space.start)

    def distribution_params(self, obs: Tensor) -> Tensor:
        """The logits [..., n]: all that defines pi(.|s), kept to rebuild an old policy's distribution."""
        return self.logits(obs)

    @staticmethod
    def distribution_from(params: Tensor) -> Distribution:
        return Categorical(logits=params, validate_args=False)

    def sample(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """a ~ softmax(logits(s)), and the logits (`params_from_output` makes them pi's params).

        By the Gumbel-max trick (Gumbel 1954; Maddison et al. 2014): argmax_a (logits_a + G_a)
        with G_a = -log E_a, E_a ~ Exp(1) independent, is distributed as softmax(logits);
        about 3x cheaper than torch.multinomial at these sizes."""
        logits = self.logits(obs)
        return (logits - torch.empty_like(logits).exponential_().log()).argmax(-1), logits

    @staticmethod
    def params_from_output(logits: Tensor) -> Tensor:
        """The distribution's params from the network's output: the logits themselves."""
        return logits

    @staticmethod
    def log_prob_from(params: Tensor, actions: Tensor) -> Tensor:
        """log pi(a|s) = log softmax(logits)_a."""
        return params.log_softmax(-1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)

    @staticmethod
    def entropy_from(params: Tensor) -> Tensor:
        """H = -sum_a p_a log p_a, p = softmax(logits)."""
        log_p = params.log_softmax(-1).clamp(min=torch.finfo(params.dtype).min)
        return -(log_p.exp() * log_p).sum(-1)

    @staticmethod
    def kl_from(old_params: Tensor, new_params: Tensor) -> Tensor:
        """KL(pi_old || pi_new) = sum_a p_a (log p_a - log q_a), p = softmax(old), q = softmax(new)."""
        log_p = old_params.log_softmax(-1).clamp(min=torch.finfo(old_params.dtype).min)
        return (log_p.exp() * (log_p - new_params.log_softmax(-1))).sum(-1)

    def mode(self, obs: Tensor) -> Tensor:
        return self.logits(obs).argmax(dim=-1)

    def env_action(self, action: Tensor) -> np.ndarray:
        return action.numpy() + self.start


class GaussianPolicy(StochasticPolicy):
    """pi(a|s) = N(mu_theta(s), diag(exp(log_std))^2), log_std a state-independent parameter.

    Actions are sampled unbounded and their log-probs computed on the unclipped sample;
    only the copy sent to the env is clipped to the Box bounds (unless config.clip_actions
    is false).
    """

    def __init__(self, obs_dim: int, space: gym.spaces.Box, config: PolicyConfig) -> None:
        super().__init__()
        act_dim = int(space.shape[0])
        self.mean = mlp(obs_dim, act_dim, config.hidden_sizes, config.activation, config.init)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(config.log_std_init)))
        self.register_buffer("low", torch.as_tensor(space.low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(space.high, dtype=torch.float32))
        self.clip_actions = config.clip_actions

    def distribution_params(self, obs: Tensor) -> Tensor:
        """[mean, log_std] concatenated, [..., 2 * act_dim]: all that defines pi(.|s)."""
        return self.params_from_output(self.mean(obs))

    @staticmethod
    def distribution_from(params: Tensor) -> Distribution:
        mean, log_std = params.chunk(2, dim=-1)
        return Independent(Normal(mean, log_std.exp(), validate_args=False), 1, validate_args=False)

    def sample(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """a = mu + sigma * z, z ~ N(0, I) (unclipped), and mu (`params_from_output` makes it
        pi's params)."""
        mean = self.mean(obs)
        return mean + self.log_std.exp() * torch.randn_like(mean), mean

    def params_from_output(self, mean: Tensor) -> Tensor:
        """The distribution's params [..., 2 * act_dim] from the network's output mu(s)."""
        return torch.cat([mean, self.log_std.expand_as(mean)], dim=-1)

    @staticmethod
    def log_prob_from(params: Tensor, actions: Tensor) -> Tensor:
        """log pi(a|s) = sum_i [-(a_i - mu_i)^2 / (2 sigma_i^2) - log sigma_i - log sqrt(2 pi)]."""
        mean, log_std = params.chunk(2, dim=-1)
        return (-0.5 * ((actions - mean) * torch.exp(-log_std)).pow(2) - log_std - LOG_SQRT_2PI).sum(-1)

    @staticmethod
    def entropy_from(params: Tensor) -> Tensor:
        """H = sum_i [log sigma_i + 1/2 + log sqrt(2 pi)]."""
        _, log_std = params.chunk(2, dim=-1)
        return (log_std + 0.5 + LOG_SQRT_2PI).sum(-1)

    @staticmethod
    def kl_from(old_params: Tensor, new_params: Tensor) -> Tensor:
        """KL(pi_old || pi_new) = sum_i [log(s1_i / s0_i) + (s0_i^2 + (m0_i - m1_i)^2) / (2 s1_i^2) - 1/2]
        for pi_old = N(m0, s0^2), pi_new = N(m1, s1^2)."""
        mean0, log_std0 = old_params.chunk(2, dim=-1)
        mean1, log_std1 = new_params.chunk(2, dim=-1)
        log_ratio = log_std1 - log_std0
        spread = ((2 * log_std0).exp() + (mean0 - mean1).pow(2)) * (-2 * log_std1).exp()
        return (log_ratio + 0.5 * spread - 0.5).sum(-1)

    def mode(self, obs: Tensor) -> Tensor:
        return self.mean(obs)

    def env_action(self, action: Tensor) -> np.ndarray:
        return (torch.clamp(action, self.low, self.high) if self.clip_actions else action).numpy()


Policy = CategoricalPolicy | GaussianPolicy


def make_policy(obs_dim: int, action_space: gym.Space, config: PolicyConfig) -> Policy:
    """The policy family that matches the action space."""
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalPolicy(obs_dim, action_space, config)
    if isinstance(action_space, gym.spaces.Box):
        return GaussianPolicy(obs_dim, action_space, config)
    raise TypeError(f"no policy for action space {action_space}")
