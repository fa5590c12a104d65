"""The config of a saved run: continuing it (`resume=`) or starting a new run like it (`rerun=`).

A resumed run keeps its experiment: its checkpoint's config, where only the budget and the
logging and checkpoint settings and the device may change. A rerun composes a new run from the saved
run's resolved config (run.json), every value given as an override, so that changes to the
shipped YAML files since then do not change it; the user's overrides come last and win.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pgrun.algorithms import algorithms
from pgrun.config import Config, ConfigError, config_dir, to_config
from pgrun.config.files import algo_schema_of
from pgrun.config.legacy import current_config
from pgrun.config.validation import ignored_paths
from pgrun.training.checkpoint import load_checkpoint
from pgrun.training.rundir import PROVENANCE_FILE, RunDirError

RESUMABLE_KEYS = ("total_steps", "schedule_steps", "log", "checkpoint", "device", "compile")
"""top-level keys a resumed run may change: only schedule_steps (asked for by name) changes
what the run learns; total_steps extends the run on the schedule's horizon it started with;
device moves it (a run begun on a GPU goes on on a CPU, and the other way), compile changes
how its networks are run (both change its numbers only by float rounding)"""
SAVED_GROUPS = ("algo", "env")


def parse_overrides(arguments: list[str]) -> list[Override]:
    return OverridesParser.create().parse_overrides(arguments)


def typed_config(saved: dict[str, Any], algorithm: str) -> DictConfig:
    """A saved plain config, typed by pgrun's schema and the schema of its algorithm."""
    saved = current_config(saved)
    try:
        schema = OmegaConf.merge(
            OmegaConf.structured(Config), {"algo": OmegaConf.structured(algorithms()[algorithm].schema)}
        )
        return OmegaConf.merge(schema, saved)
    except (KeyError, OmegaConfBaseException) as error:
        raise ConfigError(f"the saved config does not fit this version of pgrun ({error})") from error


def saved_run_config(saved: dict[str, Any], algorithm: str) -> Config:
    """A run's saved config as this pgrun's checked Config (`typed_config`), the keys that did
    nothing in that run not refused (it ran with them)."""
    return to_config(typed_config(saved, algorithm), refuse_ignored=False)


def resumed_config(run_dir: Path, overrides: list[str]) -> tuple[Config, dict[str, Any], Path]:
    """The config to continue `run_dir` with, its newest readable checkpoint and that file.

    Raises ConfigError naming every override that would change the experiment."""
    state, path = load_checkpoint(run_dir)
    parsed = parse_overrides(overrides)
    refused = [
        override.input_line
        for override in parsed
        if override.key_or_group.split(".")[0] not in RESUMABLE_KEYS
        or override.is_delete()
        or override.is_sweep_override()
    ]
    if refused:
        raise ConfigError(
            f"resume cannot change {', '.join(refused)}: a resumed run keeps its experiment "
            "(only total_steps, schedule_steps, device, compile, log.* and checkpoint.* may change); to "
            f"change it, start a new run from this one's config: pgrun rerun={run_dir} {' '.join(refused)}"
        )
    config = typed_config(state["config"], state["algorithm"])
    if config.schedule_steps is None:  # the schedule ran over the budget the run started with
        config.schedule_steps = config.total_steps
    try:
        for override in parsed:
            OmegaConf.update(config, override.key_or_group, override.value(), merge=True)
    except OmegaConfBaseException as error:
        raise ConfigError(f"{error.full_key}: {str(error).splitlines()[0]}") from error
    return to_config(config, refuse_ignored=False), state, path


def hydra_literal(value: Any) -> str:
    """`value` written in Hydra's override grammar."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "\\'") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_literal(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}:{hydra_literal(item)}" for key, item in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as a Hydra override")


def leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"algo": {"optim": {"lr": 1e-3}}} -> {"algo.optim.lr": 1e-3}; empty dicts stay leaves."""
    found: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            found |= leaves(value, f"{prefix}{key}.")
        else:
            found[f"{prefix}{key}"] = value
    return found


def rerun_overrides(run_dir: Path, overrides: list[str]) -> list[str]:
    """Hydra overrides that compose the config `run_dir` ran with, then `overrides`."""
    record_file = run_dir / PROVENANCE_FILE
    if not record_file.is_file():
        raise RunDirError(f"rerun={run_dir}: not a pgrun run directory (no {PROVENANCE_FILE})")
    record = json.loads(record_file.read_text(encoding="utf-8"))
    parsed = parse_overrides(overrides)
    changed_groups = [o.input_line for o in parsed if o.key_or_group in SAVED_GROUPS]
    if changed_groups:
        raise ConfigError(
            f"rerun keeps the saved run's algorithm and env; {', '.join(changed_groups)} is a new "
            "experiment: start it without rerun="
        )
    mine = {override.key_or_group for override in parsed}
    saved = [f"{group}={record['choices'][group]}" for group in SAVED_GROUPS]
    saved_config = current_config(record["config"])
    try:
        schema = algo_schema_of(config_dir(), record["choices"]["algo"])
    except KeyError as error:
        raise ConfigError(
            f"rerun={run_dir}: algo={record['choices']['algo']} is not one of pgrun's algorithms "
            "(a config of your own, --config-dir): rerun reads pgrun's; start it again with its command"
        ) from error
    # keys that did nothing in that run (e.g. value.lr beside a shared encoder) stay unset
    ignored = ignored_paths(saved_run_config(saved_config, schema))
    for key, value in leaves(saved_config).items():
        if key in ignored:
            continue
        if not any(key == own or key.startswith(f"{own}.") for own in mine):
            saved.append(f"++{key}={hydra_literal(value)}")
    return [*saved, *overrides]
