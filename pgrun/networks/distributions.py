"""Action distributions pi(.|s), one per kind of action space, chosen by the space.

A policy's head outputs a vector per state; its `ActionDistribution` turns that output into
the distribution's parameters ("params": all that defines pi(.|s), kept in the batch to
rebuild the old policy's distribution) and computes log-probabilities, entropies and
KL(pi_old || pi_new) in closed form from params alone. Those are the fast paths the update
rules use; `torch_distribution` gives the equivalent torch.distributions object, against
which the tests check them.

Which distribution an action space gets: pgrun.networks.action_spaces. This module holds the
base and the one-entry distributions (Discrete, Box); pgrun.networks.factored_distributions
the ones over several independent entries (MultiDiscrete, MultiBinary).
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Categorical as TorchCategorical
from torch.distributions import Distribution, Independent, Normal

from pgrun.config import PolicyConfig

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
NO_SHAPE = torch.Size()


class ActionDistribution(nn.Module):
    """pi(.|s) over one action space, from the policy head's output [..., size].

    Subclasses define the closed forms; `log_prob`, `entropy` and `kl` are functions of params
    (and of the space's fixed sizes) only, so that the old policy's distribution can be
    rebuilt from stored params.
    """

    size: int
    """how many outputs the policy head gives per state"""

    @staticmethod
    def unsupported(space: gym.Space) -> str | None:
        """Why this distribution cannot act in `space` (one line), or None if it can."""
        return None

    def params(self, output: Tensor) -> Tensor:
        """The distribution's params [..., P] from the head's output [..., size]."""
        raise NotImplementedError

    def sample(self, output: Tensor) -> Tensor:
        """a ~ pi(.|s) from the head's output, as the batch stores it."""
        raise NotImplementedError

    def mode(self, output: Tensor) -> Tensor:
        """The most likely action (argmax, mean): what a deterministic evaluation takes."""
        raise NotImplementedError

    def log_prob(self, params: Tensor, actions: Tensor) -> Tensor:
        """log pi(a|s), [...]."""
        raise NotImplementedError

    def entropy(self, params: Tensor) -> Tensor:
        """H[pi(.|s)], [...]."""
        raise NotImplementedError

    def kl(self, old_params: Tensor, new_params: Tensor) -> Tensor:
        """KL(pi_old(.|s) || pi_new(.|s)), [...]."""
        raise NotImplementedError

    def torch_distribution(self, params: Tensor) -> Distribution:
        """The same distribution as a torch.distributions object (sampling, reference checks)."""
        raise NotImplementedError

    def env_action(self, action: Tensor) -> np.ndarray:
        """The action as the env takes it (a numpy array, on the CPU wherever the policy is)."""
        raise NotImplementedError


class Categorical(ActionDistribution):
    """pi(a|s) = softmax(logits)_a over a Discrete(n, start) space; params are the logits [..., n]."""

    def __init__(self, space: gym.spaces.Discrete, config: PolicyConfig) -> None:
        super().__init__()
        self.size = int(space.n)
        self.start = int(space.start)

    def params(self, output: Tensor) -> Tensor:
        return output

    def sample(self, output: Tensor) -> Tensor:
        """argmax_a (logits_a + G_a), G_a = -log E_a with E_a ~ Exp(1) independent: by the
        Gumbel-max trick (Gumbel 1954; Maddison et al. 2014) distributed as softmax(logits),
        and about 3x cheaper than torch.multinomial at these sizes."""
        return (output - torch.empty_like(output).exponential_().log()).argmax(-1)

    def mode(self, output: Tensor) -> Tensor:
        return output.argmax(dim=-1)

    @staticmethod
    def log_prob(params: Tensor, actions: Tensor) -> Tensor:
        """log pi(a|s) = log softmax(logits)_a."""
        return params.log_softmax(-1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)

    @staticmethod
    def entropy(params: Tensor) -> Tensor:
        """H = -sum_a p_a log p_a, p = softmax(logits)."""
        log_p = params.log_softmax(-1).clamp(min=torch.finfo(params.dtype).min)
        return -(log_p.exp() * log_p).sum(-1)

    @staticmethod
    def kl(old_params: Tensor, new_params: Tensor) -> Tensor:
        """KL(pi_old || pi_new) = sum_a p_a (log p_a - log q_a), p = softmax(old), q = softmax(new)."""
        log_p = old_params.log_softmax(-1).clamp(min=torch.finfo(old_params.dtype).min)
        return (log_p.exp() * (log_p - new_params.log_softmax(-1))).sum(-1)

    @staticmethod
    def torch_distribution(params: Tensor) -> Distribution:
        return TorchCategorical(logits=params, validate_args=False)

    def env_action(self, action: Tensor) -> np.ndarray:
        return action.cpu().numpy() + self.start


class DiagonalGaussian(ActionDistribution):
    """pi(a|s) = N(mu(s), diag(exp(log_std))^2) over a 1-D Box; log_std is a state-independent
    parameter; params are [mean, log_std] concatenated, [..., 2 * act_dim].

    Actions are sampled unbounded and their log-probs computed on the unclipped sample; only
    the copy sent to the env is clipped to the Box bounds (unless config.clip_actions is false).
    """

    def __init__(self, space: gym.spaces.Box, config: PolicyConfig) -> None:
        super().__init__()
        self.size = int(space.shape[0])
        self.log_std = nn.Parameter(torch.full((self.size,), float(config.log_std_init)))
        self.register_buffer("low", torch.as_tensor(space.low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(space.high, dtype=torch.float32))
        self.clip_actions = config.clip_actions

    @staticmethod
    def unsupported(space: gym.Space) -> str | None:
        return None if len(space.shape) == 1 else "Box actions must be 1-D"

    def params(self, output: Tensor) -> Tensor:
        """[mu(s), log_std] from the head's output mu(s)."""
        return torch.cat([output, self.log_std.expand_as(output)], dim=-1)

    def sample(self, output: Tensor) -> Tensor:
        """a = mu + sigma * z, z ~ N(0, I), unclipped."""
        return output + self.log_std.exp() * torch.randn_like(output)

    def mode(self, output: Tensor) -> Tensor:
        return output

    @staticmethod
    def log_prob(params: Tensor, actions: Tensor) -> Tensor:
        """log pi(a|s) = sum_i [-(a_i - mu_i)^2 / (2 sigma_i^2) - log sigma_i - log sqrt(2 pi)]."""
        mean, log_std = params.chunk(2, dim=-1)
        return (-0.5 * ((actions - mean) * torch.exp(-log_std)).pow(2) - log_std - LOG_SQRT_2PI).sum(-1)

    @staticmethod
    def entropy(params: Tensor) -> Tensor:
        """H = sum_i [log sigma_i + 1/2 + log sqrt(2 pi)]."""
        _, log_std = params.chunk(2, dim=-1)
        return (log_std + 0.5 + LOG_SQRT_2PI).sum(-1)

    @staticmethod
    def kl(old_params: Tensor, new_params: Tensor) -> Tensor:
        """KL(pi_old || pi_new) = sum_i [log(s1_i / s0_i) + (s0_i^2 + (m0_i - m1_i)^2) / (2 s1_i^2) - 1/2]
        for pi_old = N(m0, s0^2), pi_new = N(m1, s1^2)."""
        mean0, log_std0 = old_params.chunk(2, dim=-1)
        mean1, log_std1 = new_params.chunk(2, dim=-1)
        log_ratio = log_std1 - log_std0
        spread = ((2 * log_std0).exp() + (mean0 - mean1).pow(2)) * (-2 * log_std1).exp()
        return (log_ratio + 0.5 * spread - 0.5).sum(-1)

    @staticmethod
    def torch_distribution(params: Tensor) -> Distribution:
        mean, log_std = params.chunk(2, dim=-1)
        return Independent(Normal(mean, log_std.exp(), validate_args=False), 1, validate_args=False)

    def env_action(self, action: Tensor) -> np.ndarray:
        return (torch.clamp(action, self.low, self.high) if self.clip_actions else action).cpu().numpy()
