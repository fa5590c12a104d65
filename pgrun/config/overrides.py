"""What pgrun does to overrides (the command line's, or the Python API's) before Hydra composes
them: step counts written as floats, `algo=null` and `experiment=null`, and the tuned presets."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pgrun.config.files import config_dir, group_choices
from pgrun.config.presets import NULLS, preset_overrides
from pgrun.config.schema import ConfigError


def hydra_overrides(overrides: list[str]) -> list[str]:
    """Overrides as Hydra should compose them: step counts written as floats made integers
    (integral_e_notation_as_int), group nulls and presets settled (without_group_nulls,
    preset_overrides)."""
    arguments = [integral_e_notation_as_int(argument) for argument in overrides]
    return preset_overrides(config_dir(), without_group_nulls(arguments))


def chooses_run_dir(overrides: Sequence[str]) -> bool:
    """Whether the overrides set hydra.run.dir (also as +hydra.run.dir=... or ++hydra.run.dir=...)."""
    return any(override.partition("=")[0].lstrip("+~") == "hydra.run.dir" for override in overrides)


REQUIRED_GROUPS = ("algo", "env")


def without_group_nulls(overrides: list[str]) -> list[str]:
    """A ConfigError for `algo=null` or `env=null` (Hydra would raise a ValueError deep in
    composition); `experiment=null` as Hydra's `~experiment` (no experiment)."""
    for at, override in enumerate(overrides):
        key, _, value = override.partition("=")
        if value.lower() not in NULLS:
            continue
        if key in REQUIRED_GROUPS:
            names = group_choices(config_dir(), key)
            raise ConfigError(f"{key}={value} is not allowed: choose one of {', '.join(names)}")
        if key == "experiment":
            overrides = [*overrides[:at], "~experiment", *overrides[at + 1 :]]
    return overrides


PLAIN_NAME = re.compile(r"[\w-]+")


def check_group_choices(overrides: Sequence[str]) -> None:
    """A ConfigError for `algo=NAME` or `env=NAME` where configs/<group>/NAME.yaml does not
    exist: the error Hydra's composition would raise (and one_line words so), found without
    importing Hydra, so that a mistyped name answers at once. Only for overrides composed from
    pgrun's own config dir (no --config-dir, hydra.searchpath or experiment, which may add
    choices), and only for a plain name: a value Hydra would parse first (quoted, spaced, a
    sweep's ppo,a2c) is left to Hydra; nulls are without_group_nulls's."""
    for override in overrides:
        key, _, value = override.partition("=")
        if key in REQUIRED_GROUPS and PLAIN_NAME.fullmatch(value) and value.lower() not in NULLS:
            names = group_choices(config_dir(), key)
            if value not in names:
                raise ConfigError(f"{key}={value} is not allowed: must be one of {', '.join(names)}")


INTEGRAL_E_NOTATION = re.compile(r"^([^=]+=)(\d+(?:\.\d*)?[eE]\+?\d+)$")


def integral_e_notation_as_int(argument: str) -> str:
    """`total_steps=2e6` -> `total_steps=2000000`, so step counts can be written as floats."""
    match = INTEGRAL_E_NOTATION.match(argument)
    if match and float(match[2]).is_integer():
        return f"{match[1]}{int(float(match[2]))}"
    return argument
