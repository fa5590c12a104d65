"""Where pgrun's YAML config files are, and what they choose by default (read without composing)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf


def config_dir() -> Path:
    """configs/ inside the installed package (wheel), else the repository's (source, editable)."""
    package = Path(__file__).resolve().parent.parent
    packaged = package / "configs"
    return packaged if packaged.is_dir() else package.parent / "configs"


def group_choices(directory: Path, group: str) -> list[str]:
    """The names a config group can take: its YAML files' stems, sorted (["a2c", "baseline", ...])."""
    return sorted(path.stem for path in (directory / group).glob("*.yaml"))


def default_choices(directory: Path) -> dict[str, str]:
    """The groups configs/config.yaml chooses by default ({"algo": "vpg", "env": "cartpole", ...})."""
    entries = OmegaConf.to_container(OmegaConf.load(directory / "config.yaml").defaults, resolve=False)
    return {key: value for entry in entries if isinstance(entry, dict) for key, value in entry.items()}


def algo_schema_of(directory: Path, group: str) -> str:
    """The schema (pgrun.algorithms' registry name) behind algo group `group`: the
    `/schema/algo/NAME@_here_` its file's defaults name, or that of the group it extends
    (npg extends trpo, ppo_penalty ppo). KeyError for a group whose file names neither."""
    path = directory / "algo" / f"{group}.yaml"
    if not path.is_file():
        raise KeyError(group)
    for entry in OmegaConf.load(path).get("defaults", []):
        if isinstance(entry, str) and entry.startswith("/schema/algo/"):
            return entry.removeprefix("/schema/algo/").split("@")[0]
        if isinstance(entry, str) and entry != "_self_":
            return algo_schema_of(directory, entry)
    raise KeyError(group)
