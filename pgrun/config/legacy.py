"""Configs saved by older pgrun versions, read with today's key names.

A checkpoint, run.json and .hydra/config.yaml keep the config as the run resolved it; when
a key is renamed or added, resume, rerun and pgrun-plot read old runs through
`current_config`, which names each key as today and gives a key the run did not have the
value that run used.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

RENAMED_KEYS = {"algo.value_coef": "algo.value.coef", "algo.minibatch_size": "algo.chunk_size"}
"""old name -> today's name (saved configs are read by current_algo_keys)"""


def renamed_to(key: str, schema: type) -> str | None:
    """Today's name of the unknown dotted `key`, if it was renamed and the new name is a key
    of `schema`, the config class of the node that lacks it (A2CConfig for algo.value_coef
    with algo=a2c; vpg has no value network, so no algo.value.coef to point to)."""
    new = RENAMED_KEYS.get(key)
    if new is None:
        return None
    node = key.rpartition(".")[0]
    for name in new.removeprefix(f"{node}.").split("."):
        fields = typing.get_type_hints(schema) if dataclasses.is_dataclass(schema) else {}
        if name not in fields:
            return None
        schema = fields[name]
    return new


def current_algo_keys(algo: dict[str, Any]) -> dict[str, Any]:
    """A saved `algo` config with today's key names (a new dict; the input is unchanged).

    vpg, rtg, baseline and is called their memory chunks `minibatch_size` until that name was
    left to PPO's SGD minibatches (the only algorithm with `epochs`): it is `chunk_size` now.
    a2c's value loss weight was `value_coef` beside `value`; it is `value.coef` now, as PPO's.
    """
    if "minibatch_size" in algo and "epochs" not in algo and "chunk_size" not in algo:
        algo = {("chunk_size" if key == "minibatch_size" else key): value for key, value in algo.items()}
    if "value_coef" in algo:
        algo = dict(algo)
        algo["value"] = {**algo.get("value", {}), "coef": algo.pop("value_coef")}
    return dict(algo)


def current_config(config: dict[str, Any]) -> dict[str, Any]:
    """A saved config with today's keys (a new dict; the input is unchanged): the algo keys
    renamed (`current_algo_keys`), eval.starts=fixed for runs made before evaluations could
    start fresh (each evaluation then reset its copies with one seed), and a fitted V's
    value.lr_schedule=constant for runs made before it could follow the policy's."""
    config = dict(config)
    if "algo" in config:
        config["algo"] = current_algo_keys(config["algo"])
        value = config["algo"].get("value")
        if isinstance(value, dict) and "lr" in value and "lr_schedule" not in value:
            config["algo"]["value"] = {**value, "lr_schedule": "constant"}  # (V's lr was never annealed)
    if "eval" in config and "starts" not in config["eval"]:
        config["eval"] = {**config["eval"], "starts": "fixed"}
    return config
