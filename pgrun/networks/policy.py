"""Policies pi_theta(a|s): the protocol every policy implements, and the one implementation,
an observation encoder, a linear head and an action distribution chosen by the spaces.

    features -> encoder (pgrun.networks.encoders) -> head -> output
             -> action distribution (pgrun.networks.distributions)

The collector samples through `sample`; the estimators and update rules read the policy
only through `Policy`'s methods, whose log-prob, entropy and KL are the distribution's closed
forms on params (the tensor that defines pi(.|s), [..., P]).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from torch import Tensor, nn
from torch.distributions import Distribution
from torch.nn import functional as F

from pgrun.config import PolicyConfig
from pgrun.networks.action_spaces import make_distribution
from pgrun.networks.distributions import ActionDistribution
from pgrun.networks.encoders import Encoder, make_encoder, vector_layout
from pgrun.networks.layers import linear
from pgrun.networks.observations import ObservationLayout

POLICY_HEAD_GAIN = 0.01
"""orthogonal gain of the head: small, so that a new policy starts near uniform (or near mean 0)"""


class Policy(Protocol):
    """What the collector, the estimators, the update rules and evaluation use of a policy.

    obs [..., dim] are stored observation vectors (pgrun.networks.observations); params
    [..., P] define pi(.|s); actions are as the batch stores them ([...] for Discrete,
    [..., entries] for Box, MultiDiscrete and MultiBinary)."""

    encoder: nn.Module
    """what reads the observations (pgrun.networks.encoders); a value network may share it"""

    def __call__(self, obs: Tensor) -> Tensor:
        """The params of pi(.|s) (as `distribution_params`)."""
        ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> Any: ...

    def distribution_params(self, obs: Tensor) -> Tensor:
        """params [..., P] of pi(.|s), differentiable in theta."""
        ...

    def params_from_features(self, features: Tensor) -> Tensor:
        """params from the encoder's output, [..., encoder.out_dim]."""
        ...

    def sample(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """a ~ pi(.|s), and the network output it was sampled from (`params_from_output`
        turns a stack of those into params, once per batch)."""
        ...

    def sample_from_features(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """`sample` from the encoder's output (when a value head reads the same features)."""
        ...

    def params_from_output(self, output: Tensor) -> Tensor: ...

    def log_prob_from(self, params: Tensor, actions: Tensor) -> Tensor:
        """log pi(a|s) [...] in closed form."""
        ...

    def log_prob_of(self, obs: Tensor, actions: Tensor) -> Tensor:
        """log pi(a|s) under the current parameters."""
        ...

    def entropy_from(self, params: Tensor) -> Tensor: ...

    def kl_from(self, old_params: Tensor, new_params: Tensor) -> Tensor:
        """KL(pi_old(.|s) || pi_new(.|s)) [...] in closed form."""
        ...

    def distribution(self, obs: Tensor) -> Distribution:
        """pi(.|s) as a torch.distributions object (stochastic evaluation, reference checks)."""
        ...

    def mode(self, obs: Tensor) -> Tensor:
        """The most likely action (deterministic evaluation)."""
        ...

    def env_action(self, action: Tensor) -> np.ndarray:
        """The action as the env takes it."""
        ...


class StochasticPolicy(nn.Module):
    """pi(.|s) = distribution(head(encoder(s))): the Policy of every action space.

    Parameters in order: the distribution's own (a Gaussian's log_std), the encoder's, the
    head's: a flat view of them (the optimizers', TRPO's step) is laid out, and summed over,
    as in the earlier policies, where log_std came before the MLP's layers.
    """

    def __init__(self, encoder: Encoder, action_distribution: ActionDistribution, init: str) -> None:
        super().__init__()
        self.action_distribution = action_distribution  # (registered first: see the parameter order)
        self.encoder = encoder
        self.head = linear(encoder.out_dim, action_distribution.size, init, POLICY_HEAD_GAIN)
        self.register_load_state_dict_pre_hook(upgrade_legacy_keys)

    def output(self, obs: Tensor) -> Tensor:
        """head(encoder(obs)), [..., distribution size]."""
        return self.output_from_features(self._modules["encoder"](obs))

    def output_from_features(self, features: Tensor) -> Tensor:
        """head(features). The collector calls this every env step, where nn.Module's
        attribute lookup of submodules and a module call cost ~5 us of a ~30 us policy step:
        the head is read from the module's registry (always the current one) and applied as
        the function nn.Linear applies (the same numbers)."""
        head = self._modules["head"]
        return F.linear(features, head.weight, head.bias)

    def forward(self, obs: Tensor) -> Tensor:
        return self.distribution_params(obs)

    def distribution_params(self, obs: Tensor) -> Tensor:
        return self._modules["action_distribution"].params(self.output(obs))

    def params_from_features(self, features: Tensor) -> Tensor:
        """params from the encoder's output (which a value network sharing the encoder reads too)."""
        return self._modules["action_distribution"].params(self.output_from_features(features))

    def sample(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        return self.sample_from_features(self._modules["encoder"](obs))

    def sample_from_features(self, features: Tensor) -> tuple[Tensor, Tensor]:
        output = self.output_from_features(features)
        return self._modules["action_distribution"].sample(output), output

    def params_from_output(self, output: Tensor) -> Tensor:
        return self.action_distribution.params(output)

    def log_prob_from(self, params: Tensor, actions: Tensor) -> Tensor:
        return self._modules["action_distribution"].log_prob(params, actions)

    def log_prob_of(self, obs: Tensor, actions: Tensor) -> Tensor:
        return self.log_prob_from(self.distribution_params(obs), actions)

    def entropy_from(self, params: Tensor) -> Tensor:
        return self._modules["action_distribution"].entropy(params)

    def kl_from(self, old_params: Tensor, new_params: Tensor) -> Tensor:
        return self._modules["action_distribution"].kl(old_params, new_params)

    def distribution_from(self, params: Tensor) -> Distribution:
        return self.action_distribution.torch_distribution(params)

    def distribution(self, obs: Tensor) -> Distribution:
        return self.distribution_from(self.distribution_params(obs))

    def mode(self, obs: Tensor) -> Tensor:
        return self.action_distribution.mode(self.output(obs))

    def env_action(self, action: Tensor) -> np.ndarray:
        return self._modules["action_distribution"].env_action(action)  # (every env step: see output)


LEGACY_LAYER = re.compile(r"^(logits|mean)\.(\d+)\.(weight|bias)$")
"""a layer of the one MLP of the policies before the encoder/head split (pgrun <= b26c809)"""


def upgrade_legacy_keys(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    """Rename, in place, the keys of a policy saved before the encoder/head split: the MLP's
    layers logits.<2k>/mean.<2k> become encoder.layers.<k> and its last one head; log_std,
    low and high move to action_distribution. The parameters are the same numbers in the
    same order, so checkpoints and policy files of those versions load and act unchanged."""
    layers = {}
    for key in [key for key in state_dict if key.startswith(prefix)]:
        if match := LEGACY_LAYER.match(key[len(prefix) :]):
            layers[key] = (int(match[2]), match[3])
        elif key[len(prefix) :] in ("log_std", "low", "high"):
            state_dict[f"{prefix}action_distribution.{key[len(prefix) :]}"] = state_dict.pop(key)
    if not layers:
        return
    last = max(index for index, _ in layers.values())
    for key, (index, kind) in layers.items():
        name = "head" if index == last else f"encoder.layers.{index // 2}"
        state_dict[f"{prefix}{name}.{kind}"] = state_dict.pop(key)


def make_policy(
    observations: int | ObservationLayout, action_space: gym.Space, config: PolicyConfig
) -> StochasticPolicy:
    """The policy for an observation layout (or a float vector of that many features) and an
    action space: the encoder policy.encoder names (auto: by the layout,
    pgrun.networks.encoders.encoder_name) and the action space's distribution."""
    layout = vector_layout(observations) if isinstance(observations, int) else observations
    return StochasticPolicy(
        make_encoder(layout, config), make_distribution(action_space, config), config.init
    )
