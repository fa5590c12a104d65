"""Action distributions over several entries at once, each entry independent of the others:
MultiDiscrete (a categorical per entry) and MultiBinary (a Bernoulli per bit). Their
log-probabilities, entropies and KLs are sums over the entries of the one-entry closed forms.
"""

from __future__ import annotations

from typing import ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor
from torch.distributions import Bernoulli as TorchBernoulli
from torch.distributions import Categorical as TorchCategorical
from torch.distributions import Distribution, Independent, kl_divergence, register_kl
from torch.nn import functional as F

from pgrun.config import PolicyConfig
from pgrun.networks.distributions import NO_SHAPE, ActionDistribution, Categorical


class MultiCategorical(ActionDistribution):
    """pi(a|s) = prod_j softmax(logits_j)_{a_j}: independent categoricals over a MultiDiscrete
    space's entries (nvec flattened); params are the entries' logits side by side,
    [..., sum(nvec)]; actions [..., entries] hold each entry's index from 0."""

    def __init__(self, space: gym.spaces.MultiDiscrete, config: PolicyConfig) -> None:
        super().__init__()
        self.nvec = [int(n) for n in space.nvec.reshape(-1)]
        self.size = sum(self.nvec)
        self.shape = space.nvec.shape
        self.register_buffer("start", torch.as_tensor(np.asarray(space.start).reshape(-1), dtype=torch.int64))

    def params(self, output: Tensor) -> Tensor:
        return output

    def logits(self, params: Tensor) -> tuple[Tensor, ...]:
        return params.split(self.nvec, dim=-1)

    def sample(self, output: Tensor) -> Tensor:
        """Each entry by the Gumbel-max trick (as Categorical.sample)."""
        noisy = output - torch.empty_like(output).exponential_().log()
        return torch.stack([logits.argmax(-1) for logits in self.logits(noisy)], dim=-1)

    def mode(self, output: Tensor) -> Tensor:
        return torch.stack([logits.argmax(-1) for logits in self.logits(output)], dim=-1)

    def log_prob(self, params: Tensor, actions: Tensor) -> Tensor:
        """log pi(a|s) = sum_j log softmax(logits_j)_{a_j}."""
        return sum(
            Categorical.log_prob(logits, actions[..., j]) for j, logits in enumerate(self.logits(params))
        )

    def entropy(self, params: Tensor) -> Tensor:
        """H = sum_j H[softmax(logits_j)] (the entries are independent)."""
        return sum(Categorical.entropy(logits) for logits in self.logits(params))

    def kl(self, old_params: Tensor, new_params: Tensor) -> Tensor:
        """KL(pi_old || pi_new) = sum_j KL(softmax(old_j) || softmax(new_j))."""
        return sum(
            Categorical.kl(old, new)
            for old, new in zip(self.logits(old_params), self.logits(new_params), strict=True)
        )

    def torch_distribution(self, params: Tensor) -> Distribution:
        return IndependentCategoricals(self.logits(params))

    def env_action(self, action: Tensor) -> np.ndarray:
        return (action + self.start).cpu().numpy().reshape(*action.shape[:-1], *self.shape)


class IndependentCategoricals(Distribution):
    """Independent torch Categoricals, one per entry, as one distribution over the entries' index
    vector (sampling, and the reference the closed forms are tested against)."""

    arg_constraints: ClassVar[dict] = {}

    def __init__(self, logits: tuple[Tensor, ...]) -> None:
        self.parts = [TorchCategorical(logits=part, validate_args=False) for part in logits]
        super().__init__(batch_shape=logits[0].shape[:-1], validate_args=False)

    def sample(self, sample_shape: torch.Size = NO_SHAPE) -> Tensor:
        return torch.stack([part.sample(sample_shape) for part in self.parts], dim=-1)

    def log_prob(self, value: Tensor) -> Tensor:
        return sum(part.log_prob(value[..., j]) for j, part in enumerate(self.parts))

    def entropy(self) -> Tensor:
        return sum(part.entropy() for part in self.parts)


@register_kl(IndependentCategoricals, IndependentCategoricals)
def kl_independent_categoricals(p: IndependentCategoricals, q: IndependentCategoricals) -> Tensor:
    """KL between independent categoricals: the sum of the entries' KLs (torch's reference)."""
    return sum(kl_divergence(a, b) for a, b in zip(p.parts, q.parts, strict=True))


class Bernoulli(ActionDistribution):
    """pi(a|s) = prod_i p_i^a_i (1 - p_i)^(1 - a_i), p = sigmoid(logits): independent bits over a
    MultiBinary space (its shape flattened); params are the logits [..., n]; actions [..., n]
    are 0.0 / 1.0."""

    def __init__(self, space: gym.spaces.MultiBinary, config: PolicyConfig) -> None:
        super().__init__()
        self.shape = tuple(np.atleast_1d(space.n))
        self.size = int(np.prod(self.shape))

    def params(self, output: Tensor) -> Tensor:
        return output

    def sample(self, output: Tensor) -> Tensor:
        """a_i = 1 if u_i < p_i, u_i ~ U(0, 1)."""
        return (torch.rand_like(output) < torch.sigmoid(output)).to(output.dtype)

    def mode(self, output: Tensor) -> Tensor:
        return (output > 0).to(output.dtype)

    @staticmethod
    def log_prob(params: Tensor, actions: Tensor) -> Tensor:
        """log pi(a|s) = sum_i [a_i log p_i + (1 - a_i) log(1 - p_i)], with log p = -softplus(-l)
        and log(1 - p) = -softplus(l) (stable for large |l|)."""
        return -(F.softplus(-params) * actions + F.softplus(params) * (1 - actions)).sum(-1)

    @staticmethod
    def entropy(params: Tensor) -> Tensor:
        """H = sum_i [p_i softplus(-l_i) + (1 - p_i) softplus(l_i)]."""
        p = torch.sigmoid(params)
        return (p * F.softplus(-params) + (1 - p) * F.softplus(params)).sum(-1)

    @staticmethod
    def kl(old_params: Tensor, new_params: Tensor) -> Tensor:
        """KL(pi_old || pi_new) = sum_i [p_i (log p_i - log q_i) + (1 - p_i)(log(1 - p_i) - log(1 - q_i))],
        p = sigmoid(old), q = sigmoid(new)."""
        p = torch.sigmoid(old_params)
        log_p_ratio = F.softplus(-new_params) - F.softplus(-old_params)
        log_not_p_ratio = F.softplus(new_params) - F.softplus(old_params)
        return (p * log_p_ratio + (1 - p) * log_not_p_ratio).sum(-1)

    @staticmethod
    def torch_distribution(params: Tensor) -> Distribution:
        return Independent(TorchBernoulli(logits=params, validate_args=False), 1, validate_args=False)

    def env_action(self, action: Tensor) -> np.ndarray:
        return action.cpu().numpy().astype(np.int8).reshape(*action.shape[:-1], *self.shape)
