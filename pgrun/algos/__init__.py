"""The algorithms: one module each, listed here.

Each module defines ALGORITHMS, a dict from schema name to `Algorithm` (config schema and
update rule); configs/algo/<name>.yaml picks a schema and sets its defaults.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from pgrun.algos.rule import Algorithm, UpdateRule
from pgrun.config import AlgoConfig

if TYPE_CHECKING:
    from pgrun.policies import Policy
    from pgrun.value import ValueNetworkFactory

ALGORITHM_MODULES = ("policy_gradient", "ppo", "trust_region", "a2c")


def algorithms() -> dict[str, Algorithm]:
    """Every algorithm of the modules above, by schema name."""
    found: dict[str, Algorithm] = {}
    for module in ALGORITHM_MODULES:
        found |= importlib.import_module(f"pgrun.algos.{module}").ALGORITHMS
    return found


def schema_name(config: AlgoConfig) -> str:
    """The name under which `config`'s schema is registered (what a checkpoint records)."""
    for name, algorithm in algorithms().items():
        if type(config) is algorithm.schema:
            return name
    raise TypeError(f"no algorithm has the schema {type(config).__name__}")


def make_update_rule(
    config: AlgoConfig, policy: Policy, make_value_network: ValueNetworkFactory
) -> UpdateRule:
    """The update rule of the algorithm whose schema `config` is."""
    for algorithm in algorithms().values():
        if type(config) is algorithm.schema:
            return algorithm.rule(config, policy, make_value_network)
    raise TypeError(f"no algorithm has the schema {type(config).__name__}")
