"""Which action distribution an action space gets: the registry, keyed by space type.

A new kind of action space is one ActionDistribution subclass and one line in DISTRIBUTIONS.
"""

from __future__ import annotations

import gymnasium as gym

from pgrun.config import PolicyConfig
from pgrun.networks.distributions import ActionDistribution, Categorical, DiagonalGaussian
from pgrun.networks.factored_distributions import Bernoulli, MultiCategorical

DISTRIBUTIONS: dict[type[gym.Space], type[ActionDistribution]] = {
    gym.spaces.Box: DiagonalGaussian,
    gym.spaces.Discrete: Categorical,
    gym.spaces.MultiDiscrete: MultiCategorical,
    gym.spaces.MultiBinary: Bernoulli,
}
"""action space type -> the distribution a policy acting in it gets"""


def distribution_class(space: gym.Space) -> type[ActionDistribution] | None:
    """The registered distribution for the space's type (or a base type of it), else None."""
    for kind in type(space).__mro__:
        if kind in DISTRIBUTIONS:
            return DISTRIBUTIONS[kind]
    return None


def unsupported_action_space(space: gym.Space) -> str | None:
    """Why pgrun has no policy for this action space (one line), or None if it has one."""
    kind = distribution_class(space)
    if kind is None:
        names = " or ".join(space_type.__name__ for space_type in DISTRIBUTIONS)
        return f"env action space {space} is not supported: use {names}"
    reason = kind.unsupported(space)
    return None if reason is None else f"env action space {space} is not supported: {reason}"


def make_distribution(space: gym.Space, config: PolicyConfig) -> ActionDistribution:
    """The action distribution for `space` (TypeError if none is registered for it)."""
    if (problem := unsupported_action_space(space)) is not None:
        raise TypeError(problem)
    return distribution_class(space)(space, config)
