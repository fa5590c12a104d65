"""The value network V_phi(s) of the rules that learn a baseline, and the factory they get it from."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from pgrun.config import PolicyConfig
from pgrun.networks.layers import mlp


class ValueNetwork(nn.Module):
    """V_phi(s): obs [..., obs_dim] -> [...], an MLP with an output gain of 1."""

    def __init__(self, obs_dim: int, hidden_sizes: list[int], activation: str, init: str) -> None:
        super().__init__()
        self.net = mlp(obs_dim, 1, hidden_sizes, activation, init, out_gain=1.0)

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs).squeeze(-1)


ValueNetworkFactory = Callable[[list[int]], ValueNetwork]
"""hidden sizes -> a new V_phi for the run's observations, activation and initialization"""


def value_networks(obs_dim: int, architecture: PolicyConfig) -> ValueNetworkFactory:
    """The factory an update rule gets: value networks over obs_dim features, with the
    policy's activation and initialization."""

    def make(hidden_sizes: list[int]) -> ValueNetwork:
        return ValueNetwork(obs_dim, hidden_sizes, architecture.activation, architecture.init)

    return make
