"""Observation encoders: the part of a policy that turns observation features into a vector
its head reads, chosen by the observation space.

Today every observation pgrun accepts reaches the network as a flat feature vector (the
preprocessing in pgrun.collection.normalization flattens Box and one-hot encodes Discrete
observations), and the encoder is an MLP. A new encoder is one Encoder subclass and one
line in ENCODERS (and, if the space should choose it, in `encoder_name`).
"""

from __future__ import annotations

import itertools

import gymnasium as gym
from torch import Tensor, nn
from torch.nn import functional as F

from pgrun.config import PolicyConfig
from pgrun.networks.layers import ACTIVATIONS, HIDDEN_GAIN, linear


class Encoder(nn.Module):
    """features [..., in_dim] -> [..., out_dim]."""

    out_dim: int


class MLPEncoder(Encoder):
    """The hidden layers of an MLP, each followed by the activation: obs_dim -> hidden_sizes.
    With no hidden layers the features pass as they are.

    Computed as one call over the weights (no module call per layer: the collector calls the
    policy every env step), with pgrun's tanh (pgrun.networks.layers.tanh)."""

    def __init__(self, obs_dim: int, config: PolicyConfig) -> None:
        super().__init__()
        sizes = [obs_dim, *config.hidden_sizes]
        self.layers = nn.ModuleList(
            linear(n_in, n_out, config.init, HIDDEN_GAIN) for n_in, n_out in itertools.pairwise(sizes)
        )
        self.activation = ACTIVATIONS[config.activation][1]
        self.out_dim = sizes[-1]

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = self.activation(F.linear(x, layer.weight, layer.bias))
        return x


ENCODERS: dict[str, type[Encoder]] = {"mlp": MLPEncoder}
"""encoder name -> its class, built from (feature dim, policy config)"""


def encoder_name(observation_space: gym.Space | None) -> str:
    """The encoder an observation space gets: flat features (every space pgrun accepts) -> mlp."""
    return "mlp"


def make_encoder(name: str, obs_dim: int, config: PolicyConfig) -> Encoder:
    return ENCODERS[name](obs_dim, config)
