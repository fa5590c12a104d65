"""The algorithms: the update rules, one module each, and the pieces they share.

Owns: each algorithm's config schema and update rule (a2c, policy_gradient, ppo,
trust_region: ALGORITHMS in each module), the UpdateRule contract (`rule`), the losses, the
optimizers and the fitting of value networks. An algorithm module's schema is importable
without torch (its torch-side modules are loaded lazily, pgrun.lazy), so composing a config
never imports torch. May import pgrun.config, pgrun.batch, pgrun.networks and
pgrun.estimation (the Advantages it learns from); never the collection, the training loop,
tracking or the CLI.

configs/algo/<name>.yaml picks a schema and sets its defaults.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from pgrun.algorithms.rule import Algorithm, UpdateRule
from pgrun.config import AlgoConfig, Config, slug

if TYPE_CHECKING:
    from pgrun.networks.policy import Policy
    from pgrun.networks.value import ValueNetworkFactory

ALGORITHM_MODULES = ("policy_gradient", "ppo", "trust_region", "a2c")


def algorithms() -> dict[str, Algorithm]:
    """Every algorithm of the modules above, by schema name."""
    found: dict[str, Algorithm] = {}
    for module in ALGORITHM_MODULES:
        found |= importlib.import_module(f"pgrun.algorithms.{module}").ALGORITHMS
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


def register_schemas() -> None:
    """Make the schemas (pgrun's and each algorithm's) and the ${pgrun_slug:...} resolver
    available to the YAML configs; once per process (Hydra's ConfigStore keeps them, and
    storing a schema converts it to a config again: a tenth of a second)."""
    if not OmegaConf.has_resolver("pgrun_slug"):
        OmegaConf.register_new_resolver("pgrun_slug", slug)
    store = ConfigStore.instance()
    if "pgrun_schema.yaml" in store.repo:  # (stored last: the others are there)
        return
    for name, algorithm in algorithms().items():
        store.store(group="schema/algo", name=name, node=algorithm.schema)
    store.store(name="pgrun_schema", node=Config)
