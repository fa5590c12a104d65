"""Update rules: each turns a batch and its per-step weights into one parameter update.

An algorithm is a config that names an estimator (pgrun.estimators) and an update rule
from UPDATE_RULES; nothing else differs between algorithms.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor

from pgrun.algos.policy_gradient import PolicyGradientStep
from pgrun.algos.ppo import PPOUpdate
from pgrun.algos.trust_region import TrustRegionStep
from pgrun.collector import Batch
from pgrun.config import AlgoConfig
from pgrun.policies import Policy


class UpdateRule(Protocol):
    def __call__(self, batch: Batch, weights: Tensor) -> dict[str, float]:
        """Update the parameters once; return diagnostics keyed "train/..."."""
        ...


UPDATE_RULES: dict[str, Callable[[Policy, torch.optim.Optimizer, AlgoConfig], UpdateRule]] = {
    "policy_gradient": PolicyGradientStep,
    "ppo": PPOUpdate,
    "trust_region": TrustRegionStep,
}
