"""The value network V_phi(s) of the rules that learn a baseline, and the factory they get it from."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn

from pgrun.config import PolicyConfig
from pgrun.networks.encoders import Encoder, make_encoder
from pgrun.networks.layers import linear, mlp
from pgrun.networks.observations import ObservationLayout

VALUE_HEAD_GAIN = 1.0
"""orthogonal gain of a value network's output layer"""


class ValueNetwork(nn.Module):
    """V_phi(s): obs [..., dim] -> [...], an MLP with an output gain of 1 (float vector observations)."""

    def __init__(self, obs_dim: int, hidden_sizes: list[int], activation: str, init: str) -> None:
        super().__init__()
        self.net = mlp(obs_dim, 1, hidden_sizes, activation, init, out_gain=VALUE_HEAD_GAIN)

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs).squeeze(-1)


class EncodedValueNetwork(nn.Module):
    """V_phi(s) = head(encoder(s)): an observation encoder (its own, or the policy's when they
    share it) and a linear head of gain 1."""

    def __init__(self, encoder: Encoder, init: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = linear(encoder.out_dim, 1, init, VALUE_HEAD_GAIN)

    def forward(self, obs: Tensor) -> Tensor:
        return self.from_features(self.encoder(obs))

    def from_features(self, features: Tensor) -> Tensor:
        """V from the encoder's output (when the policy computed it already)."""
        return self.head(features).squeeze(-1)


class ValueNetworkFactory(Protocol):
    def __call__(self, hidden_sizes: list[int], shared_encoder: Encoder | None = None) -> nn.Module:
        """A new V_phi for the run's observations; with `shared_encoder`, one that reads that
        encoder's features (only its head is its own)."""
        ...


def value_networks(
    observations: int | ObservationLayout, architecture: PolicyConfig, device: torch.device | None = None
) -> ValueNetworkFactory:
    """The factory an update rule gets: value networks over the run's observations (a layout,
    or a float vector of that many features), with the policy's encoder kind, activation and
    initialization, on `device` (initialized on the CPU, so that every device starts from the
    same weights). Float vectors with the MLP get the MLP value network of every earlier
    pgrun (the same parameters, drawn in the same order)."""

    def make_on_cpu(hidden_sizes: list[int], shared_encoder: Encoder | None = None) -> nn.Module:
        if shared_encoder is not None:
            return EncodedValueNetwork(shared_encoder, architecture.init)
        if isinstance(observations, int):
            return ValueNetwork(observations, hidden_sizes, architecture.activation, architecture.init)
        if observations.is_vector and architecture.encoder in ("auto", "mlp"):
            return ValueNetwork(observations.dim, hidden_sizes, architecture.activation, architecture.init)
        encoder = make_encoder(observations, architecture, hidden_sizes)
        return EncodedValueNetwork(encoder, architecture.init)

    def make(hidden_sizes: list[int], shared_encoder: Encoder | None = None) -> nn.Module:
        network = make_on_cpu(hidden_sizes, shared_encoder)
        return network if device is None else network.to(device)

    return make
