"""The `pgrun` command: Hydra composes the config, pgrun validates it and calls `train`."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from pgrun.config import ConfigError, register_schemas, to_config
from pgrun.train import TrainingDiverged, train

SUMMARY_FILE = "summary.json"


def config_dir() -> Path:
    """configs/ inside the installed package (wheel), else the repository's (source, editable)."""
    packaged = Path(__file__).resolve().parent / "configs"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "configs"


def discard_run_dir(run_dir: Path) -> None:
    """Remove what Hydra put in a run dir for a run that never started; keep anything else."""
    shutil.rmtree(run_dir / ".hydra", ignore_errors=True)
    for log_file in run_dir.glob("*.log"):
        log_file.unlink()
    if run_dir.is_dir() and not any(run_dir.iterdir()):
        run_dir.rmdir()


register_schemas()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def run(cfg: DictConfig) -> float | None:
    """One job: validate, train, write summary.json; return the final or best eval return
    (`objective`), which a sweeper such as Optuna maximizes."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        config = to_config(cfg)
        summary = train(config, run_dir)
    except ConfigError as error:
        discard_run_dir(run_dir)
        if HydraConfig.get().mode == RunMode.RUN:
            fail(error)
        raise  # in a sweep, Hydra reports the failed job and the others go on
    except TrainingDiverged as error:
        if HydraConfig.get().mode == RunMode.RUN:
            fail(error, status=1)
        raise
    (run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary[f"{config.objective}_eval_return"]


def one_line(error: BaseException) -> str:
    """A single line naming the bad key or value and, where known, what is allowed."""
    if isinstance(error, MissingConfigException) and error.options:
        group, _, value = str(error.missing_cfg_file).rpartition("/")
        return f"{group}={value} is not allowed: must be one of {', '.join(error.options)}"
    if isinstance(error, OverrideParseException):
        return f"cannot parse override {error.override!r}: {str(error).splitlines()[0]}"
    first = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
    cause = error.__cause__
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and cause.full_key:
        # object_type is the schema of the node that lacks the key (PPOConfig for algo=ppo)
        if dataclasses.is_dataclass(cause.object_type):
            allowed = ", ".join(f.name for f in dataclasses.fields(cause.object_type))
            return f"{cause.full_key} is not a known key: known keys are {allowed}"
        return f"{cause.full_key} is not a known key (add a key to a dict such as env.kwargs with +key=value)"
    if isinstance(cause, OmegaConfBaseException) and cause.full_key:
        return f"{cause.full_key}: {str(cause).splitlines()[0]}"
    return first


def fail(error: BaseException, status: int = 2) -> NoReturn:
    """One line on stderr; exit 2 for bad input, 1 for a run that failed on its own."""
    print(f"pgrun: error: {one_line(error)}", file=sys.stderr)
    sys.exit(status)


def main() -> None:
    """Console entry point: errors in the user's config end in one line on stderr and exit 2."""
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # let errors reach us instead of Hydra's printer
    try:
        run()
    except TrainingDiverged as error:
        fail(error, status=1)
    except (ConfigError, HydraException, OmegaConfBaseException) as error:
        fail(error)


if __name__ == "__main__":
    main()
