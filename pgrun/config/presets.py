"""Tuned presets (configs/tuned/<algo>_<env>.yaml): which one applies to a command, and
which keys it sets, read from the files without composing a config."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from pgrun.config.files import default_choices, group_choices
from pgrun.config.schema import ConfigError

TUNED_DIR = "tuned"


NULLS = ("null", "none")
"""how a command line says a config group gets no choice (any case)"""


def preset_overrides(config_dir: Path, overrides: list[str]) -> list[str]:
    """`overrides` as Hydra should see them: `tuned=null` (no preset) as Hydra's `~tuned`; a
    preset that does not exist as a ConfigError; and `~tuned` added where env.id names
    another env than the env group's own (without_foreign_preset)."""
    for at, override in enumerate(overrides):
        key, _, value = override.partition("=")
        if key != "tuned":
            continue
        if value.lower() in (*NULLS, ""):
            overrides = [*overrides[:at], "~tuned", *overrides[at + 1 :]]
        elif not (config_dir / TUNED_DIR / f"{value}.yaml").is_file():
            shipped = group_choices(config_dir, TUNED_DIR)
            raise ConfigError(f"tuned={value} is not a preset; must be one of {', '.join(shipped)}, or null")
    return without_foreign_preset(config_dir, overrides)


def without_foreign_preset(config_dir: Path, overrides: list[str]) -> list[str]:
    """`overrides`, plus `~tuned` when env.id names another env than the env group's own:
    configs/tuned/<algo>_<env>.yaml is tuned for that group's env (ppo_cartpole for
    CartPole-v1), not for whatever `env.id=...` runs under the default group; a group whose
    id is missing (`id: ???`, env=atari) is made for any id. A preset chosen on the command
    line (tuned=..., ~tuned) stays."""
    values = {key.lstrip("+~"): value for key, _, value in (o.partition("=") for o in overrides)}
    if "env.id" not in values or "tuned" in values:
        return overrides
    group_file = config_dir / "env" / f"{values.get('env', default_choices(config_dir)['env'])}.yaml"
    group = OmegaConf.load(group_file) if group_file.is_file() else OmegaConf.create()
    if OmegaConf.is_missing(group, "id"):
        return overrides  # a group for any id of a family (env=atari: any ALE game)
    if values["env.id"] == group.get("id"):
        return overrides
    # beside env.id: Hydra's argument parser wants the overrides together
    at = next(i for i, o in enumerate(overrides) if o.partition("=")[0].lstrip("+~") == "env.id")
    return [*overrides[: at + 1], "~tuned", *overrides[at + 1 :]]


def preset_files(config_dir: Path, name: str) -> list[Path]:
    """The files preset `name` is made of: the ones its defaults list names (depth first),
    then its own."""
    path = config_dir / TUNED_DIR / f"{name}.yaml"
    files = []
    for entry in OmegaConf.load(path).get("defaults", []):
        if isinstance(entry, str) and entry != "_self_":
            files += preset_files(config_dir, entry)
    return [*files, path]


def dotted_keys(tree: dict, prefix: str = "") -> list[str]:
    """{"algo": {"lr": 0.1, "value": {"iters": 5}}} -> ["algo.lr", "algo.value.iters"]"""
    keys = []
    for key, value in tree.items():
        keys += dotted_keys(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]
    return keys


def preset_keys(config_dir: Path, name: str) -> list[str]:
    """The dotted keys preset `name` sets (its defaults' included), in file order."""
    keys: dict[str, None] = {}
    for path in preset_files(config_dir, name):
        content = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        content.pop("defaults", None)
        keys |= dict.fromkeys(dotted_keys(content))
    return list(keys)


def preset_line(config_dir: Path, name: str | None) -> str | None:
    """`pgrun: tuned preset tuned/NAME.yaml applied (KEYS)...`, for the console; None where
    the config's `tuned` choice (`${algo}_${env}`, optional) names no file, so none applied."""
    if name is None or not (config_dir / TUNED_DIR / f"{name}.yaml").is_file():
        return None
    keys = preset_keys(config_dir, name)
    return (
        f"pgrun: tuned preset {TUNED_DIR}/{name}.yaml applied ({len(keys)} keys: {', '.join(keys)}); "
        "command-line keys win over it, tuned=null leaves it out"
    )
