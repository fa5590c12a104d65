"""The contract between the training loop and an algorithm.

An algorithm is a config schema (exactly the keys it uses) and an update rule. The rule
is built from its config, the policy and a factory of value networks for the run's
observations (used by the rules that learn V(s)); it owns everything it
learns (the policy's parameters, a value network, optimizers, schedules, counters),
turns one estimate of Phi_t into one update, and hands its whole state to checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pgrun.config import AlgoConfig

if TYPE_CHECKING:
    from torch import nn

    from pgrun.estimation.estimators import Advantages
    from pgrun.networks.policy import Policy
    from pgrun.networks.value import ValueNetworkFactory


class UpdateRule(Protocol):
    policy: Policy
    critic: nn.Module | None
    """V(s) for the estimator (obs [..., obs_dim] -> [...]), or None for a rule without one"""

    def update(self, advantages: Advantages, progress: float) -> dict[str, float]:
        """Learn from one estimate (its batch, Phi_t, value targets) when a fraction `progress`
        of the step budget is done; return diagnostics keyed "train/..."."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything the rule learns or counts, as tensors and plain values."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Algorithm:
    """A config schema, registered with Hydra as schema/algo/<name>, and the rule it builds."""

    schema: type[AlgoConfig]
    rule: Callable[[Any, Policy, ValueNetworkFactory], UpdateRule]
