"""Checking a composed config: unknown keys, the ranges and choices of `checked` fields,
and the fields that must fit together; each violation is one line naming the key, the value
and what is allowed.

OmegaConf enforces the types and rejects unknown keys while Hydra composes the config;
`to_config` then checks what types cannot say and returns the typed `Config`.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from pgrun.config.files import config_dir
from pgrun.config.legacy import renamed_to
from pgrun.config.presets import TUNED_DIR, preset_keys
from pgrun.config.schema import Config, ConfigError
from pgrun.errors import first_line


def slug(text: str) -> str:
    """A file-name-safe form of `text` ("my_pkg.envs:Corridor-v0" -> "my_pkg.envs_Corridor-v0")."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def as_typed(value: Any) -> str:
    """`value` as one writes it on the command line: true, null, tpu, [1, 2] (not True, None, 'tpu')."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(as_typed, value)) + "]"
    return str(value)


def _violation(rules: dict[str, Any], value: Any) -> str | None:
    if "choices" in rules and value not in rules["choices"]:
        return "must be one of " + ", ".join(map(str, rules["choices"]))
    if "pattern" in rules and not re.fullmatch(rules["pattern"], str(value)):
        return f"must be {rules['described']}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if rules.get("gt") is not None and not value > rules["gt"]:
        return f"must be > {rules['gt']}"
    if rules.get("ge") is not None and not value >= rules["ge"]:
        return f"must be >= {rules['ge']}"
    if rules.get("le") is not None and not value <= rules["le"]:
        return f"must be <= {rules['le']}"
    if rules.get("lt") is not None and not value < rules["lt"]:
        return f"must be < {rules['lt']}"
    return None


def validate(
    node: Any, prefix: str = "", defaults: Any = None, preset: str | None = None, refuse_ignored: bool = True
) -> None:
    """Check every `checked` field of a dataclass tree, the fields that must fit together, and
    that no field the others make useless (`ignored_keys`) differs from its default
    (`defaults`: the node's schema default; that of its parent's schema where it has one);
    raise ConfigError on the first violation. `preset`: the tuned preset applied, if any (an
    error names it when the preset set the key). `refuse_ignored=False` checks a saved config
    (resume): what a run already ran with is not refused for keys it did not use."""
    if type(defaults) is not type(node):
        defaults = type(node)()
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            validate(value, f"{key}.", getattr(defaults, f.name, None), preset, refuse_ignored)
            continue
        for item in value if isinstance(value, list) else [value]:
            if item is not None and (problem := _violation(dict(f.metadata), item)):
                raise ConfigError(f"{key}={as_typed(value)} is not allowed: {problem}")
    if hasattr(node, "inconsistency") and (found := node.inconsistency()):
        name, problem = found
        value = functools.reduce(getattr, name.split("."), node)
        raise ConfigError(f"{prefix}{name}={as_typed(value)} is not allowed: {problem}")
    if refuse_ignored and hasattr(node, "ignored_keys") and (ignored := node.ignored_keys()):
        for name, why in ignored.items():
            value = functools.reduce(getattr, name.split("."), node)
            if value != functools.reduce(getattr, name.split("."), defaults):
                why, key = why.replace("{prefix}", prefix), f"{prefix}{name}"
                if preset is not None and key in applied_preset_keys(preset):
                    way_out = (
                        f"it comes from the tuned preset {TUNED_DIR}/{preset}.yaml: tuned=null leaves it out"
                    )
                else:
                    way_out = "leave it out"
                raise ConfigError(f"{key}={as_typed(value)} does nothing {why}; {way_out}")


def applied_preset_keys(name: str) -> list[str]:
    """The keys tuned preset `name` sets; none where the `tuned` choice names no file (the
    default choice ${algo}_${env} is optional)."""
    exists = (config_dir() / TUNED_DIR / f"{name}.yaml").is_file()
    return preset_keys(config_dir(), name) if exists else []


def unknown_key(node: DictConfig, prefix: str = "") -> str | None:
    """The first key whose dataclass schema lacks it (a key added with '+key=...')."""
    schema = OmegaConf.get_type(node)
    if not dataclasses.is_dataclass(schema):
        return None  # a free-form dict such as env.kwargs
    names = {f.name for f in dataclasses.fields(schema)}
    for key in node:
        if key not in names:
            return f"{prefix}{key}"
        child = node[key]
        if isinstance(child, DictConfig) and (found := unknown_key(child, f"{prefix}{key}.")):
            return found
    return None


def ignored_paths(node: Any, prefix: str = "") -> set[str]:
    """The dotted keys of a validated config tree that do nothing with its other values."""
    found = {f"{prefix}{name}" for name in (node.ignored_keys() if hasattr(node, "ignored_keys") else {})}
    for f in dataclasses.fields(node):
        if dataclasses.is_dataclass(value := getattr(node, f.name)):
            found |= ignored_paths(value, f"{prefix}{f.name}.")
    return found


def to_config(cfg: DictConfig, preset: str | None = None, refuse_ignored: bool = True) -> Config:
    """Turn a composed DictConfig into a validated `Config` instance; `preset`: the tuned
    preset it was composed with (hydra's runtime.choices.tuned), if any; `refuse_ignored`:
    as in `validate` (False for a saved run's config)."""
    extra = unknown_key(cfg)
    if extra:
        parent = extra.rpartition(".")[0]
        renamed = renamed_to(extra, OmegaConf.get_type(OmegaConf.select(cfg, parent)) if parent else Config)
        hint = f": it is called {renamed} now" if renamed is not None else ""
        raise ConfigError(f"{extra} is not a known key of pgrun's config{hint}")
    try:
        config = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as error:  # e.g. a required value left missing
        message = str(error).splitlines()[0]
        raise ConfigError(f"{getattr(error, 'full_key', '') or 'config'}: {message}") from error
    if not isinstance(config, Config):
        raise ConfigError("config: the composed config is not a pgrun config")
    validate(config, preset=preset, refuse_ignored=refuse_ignored)
    if config.policy.log_std_init is None:  # the algorithm's reference value
        config.policy.log_std_init = type(config.algo).LOG_STD_INIT
    config.algo.resolve_defaults()
    return config


def as_plain_dict(config: Config) -> dict[str, Any]:
    """The config as nested dicts of plain values (for checkpoints and hparams)."""
    return dataclasses.asdict(config)


def one_line(error: BaseException) -> str:
    """A single line naming the bad key or value and, where known, what is allowed."""
    from hydra.errors import MissingConfigException, OverrideParseException  # (--help imports no hydra)

    if isinstance(error, MissingConfigException) and error.options:
        group, _, value = str(error.missing_cfg_file).rpartition("/")
        return f"{group}={value} is not allowed: must be one of {', '.join(error.options)}"
    if isinstance(error, OverrideParseException):
        return f"cannot parse override {error.override!r}: {str(error).splitlines()[0]}"
    first = first_line(error) or type(error).__name__
    if "Missing mandatory value: env.id" in str(error):
        return (
            "env.id is missing: this env group runs any game named by env.id (env=atari env.id=ALE/Pong-v5)"
        )
    cause = error.__cause__
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and cause.full_key:
        # object_type is the schema of the node that lacks the key (PPOConfig for algo=ppo)
        renamed = renamed_to(cause.full_key, cause.object_type)
        if renamed is not None:
            return f"{cause.full_key} is not a known key: it is called {renamed} now"
        if dataclasses.is_dataclass(cause.object_type):
            allowed = ", ".join(f.name for f in dataclasses.fields(cause.object_type))
            return f"{cause.full_key} is not a known key: known keys are {allowed}"
        return f"{cause.full_key} is not a known key (add a key to a dict such as env.kwargs with +key=value)"
    if isinstance(cause, OmegaConfBaseException) and cause.full_key:
        return f"{cause.full_key}: {str(cause).splitlines()[0]}"
    return first
