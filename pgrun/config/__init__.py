"""The config: its typed schema, its checks and its files; what Hydra composes a run from.

Owns: the dataclass schema (`schema`: pgrun's keys, AlgoConfig that each algorithm extends),
the range and consistency checks (`validation`), where the YAML files are (`files`), and the
tuned presets read from them (`presets`). May import omegaconf and hydra, never torch nor any
other subpackage of pgrun: every other part reads its config from here.

The names most callers need are importable from `pgrun.config` itself.
"""

from pgrun.config.files import config_dir, default_choices
from pgrun.config.schema import (
    AlgoConfig,
    AtariConfig,
    CheckpointConfig,
    Config,
    ConfigError,
    EnvConfig,
    EvalConfig,
    LogConfig,
    OptimizerConfig,
    PolicyConfig,
    ValueConfig,
    ValueNetworkConfig,
    checked,
    is_atari_id,
)
from pgrun.config.validation import as_plain_dict, one_line, slug, to_config, unknown_key, validate

__all__ = [
    "AlgoConfig",
    "AtariConfig",
    "CheckpointConfig",
    "Config",
    "ConfigError",
    "EnvConfig",
    "EvalConfig",
    "LogConfig",
    "OptimizerConfig",
    "PolicyConfig",
    "ValueConfig",
    "ValueNetworkConfig",
    "as_plain_dict",
    "checked",
    "config_dir",
    "default_choices",
    "is_atari_id",
    "one_line",
    "slug",
    "to_config",
    "unknown_key",
    "validate",
]
