"""The `pgrun` command, a thin caller of the run session (pgrun.training.session) that the
Python API calls too: a run given as overrides alone is composed as pgrun.train composes it
(`run_composed`); a sweep (-m) and anything else of Hydra's own (--cfg, --config-dir,
hydra.* keys) go through Hydra's app, whose jobs run the same session. `resume=<run dir>`
continues a run from its checkpoint and `rerun=<run dir>` starts a new run with a finished
run's config. Errors end in one line on stderr: exit 2 for bad input, 1 for a run that
failed, 130/143 for a stop."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pgrun
from pgrun.cli.help import help_page
from pgrun.config import ConfigError, config_dir, one_line
from pgrun.config.overrides import (
    check_group_choices,
    chooses_run_dir,
    hydra_overrides,
    integral_e_notation_as_int,
)
from pgrun.errors import CheckpointError, EnvNotReplayable, RunFailed
from pgrun.training.interrupt import Interrupted

if TYPE_CHECKING:
    from omegaconf import DictConfig

# Hydra, torch, gymnasium and the training code are imported where a run starts, not here,
# so that --help answers at once and a mistyped algo= or env= soon (pgrun.lazy has the
# algorithms' side)


def bad_input() -> tuple[type[BaseException], ...]:
    """The errors that are the user's input (exit 2): config, run dir, checkpoint, Hydra's
    and OmegaConf's own."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from pgrun.training.rundir import RunDirError

    return ConfigError, RunDirError, CheckpointError, HydraException, OmegaConfBaseException


def run(cfg: DictConfig) -> float | None:
    """One job of Hydra's app (the run, or one of a sweep's): pgrun.training.session.new_run;
    return the final or best eval return (`objective`), which a sweeper such as Optuna
    maximizes."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from pgrun.training.rundir import RunDirError
    from pgrun.training.session import new_run

    hydra_config = HydraConfig.get()
    single_run = hydra_config.mode == RunMode.RUN
    try:
        config, summary, _ = new_run(
            cfg,
            hydra_config,
            Path(hydra_config.runtime.output_dir),
            sweep_dir=None if single_run else Path(hydra_config.sweep.dir),
            unique=single_run and not chooses_run_dir(hydra_config.overrides.hydra),
        )
    except (ConfigError, RunDirError) as error:
        if single_run:
            fail(error)
        raise  # in a sweep, Hydra reports the failed job and the others go on
    except RunFailed as error:
        if single_run:
            fail(error, status=1)
        raise
    return summary[f"{config.objective}_eval_return"]


def run_hydra_app() -> None:
    """Hydra's application over `run`, on sys.argv (sweeps, --cfg, --config-dir, hydra.* keys)."""
    import hydra

    from pgrun.algorithms import register_schemas

    register_schemas()
    hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")(run)()


def composes_by_itself(arguments: list[str]) -> bool:
    """Whether the command line is one run given as overrides alone (hydra.run.dir included):
    no flag (-m, --cfg, --config-dir, ...), no other hydra.* key and no experiment (whose
    file may set hydra.* keys), which Hydra's app handles."""
    for argument in arguments:
        key = argument.partition("=")[0].lstrip("+~")
        if (
            argument.startswith("-")
            or key == "experiment"
            or (key.startswith("hydra") and key != "hydra.run.dir")
        ):
            return False
    return True


def run_composed(overrides: list[str]) -> None:
    """One run, composed once with Hydra's public compose API and run as pgrun.train runs it
    (Hydra's app composes a config twice: once only to read hydra.mode); bad input and
    failures are raised, for main to report."""
    check_group_choices(overrides)  # (before Hydra is imported: a mistyped algo= answers at once)
    from pgrun.api import run_overrides

    run_overrides(overrides, None, (), from_command=True)


def fail(error: BaseException, status: int = 2) -> NoReturn:
    """One line on stderr; exit 2 for bad input, 1 for a run that failed on its own."""
    print(f"pgrun: error: {one_line(error)}", file=sys.stderr)
    sys.exit(status)


def stopped(interrupted: Interrupted) -> NoReturn:
    """One line saying where the run stopped and how to resume it; exit 130 (SIGINT) or 143 (SIGTERM)."""
    run_dir = getattr(interrupted, "run_dir", None)
    if interrupted.checkpoint_step is None:
        where = "before its first checkpoint; nothing to resume"
        if run_dir is not None:
            where += f" (start it again with: pgrun rerun={run_dir})"
    else:
        how = "stopped at once" if interrupted.immediate else "checkpoint written"
        where = f"{how} at env step {interrupted.checkpoint_step:,}; resume with: pgrun resume={run_dir}"
    print(f"pgrun: interrupted by {interrupted}: {where}", file=sys.stderr)
    sys.exit(interrupted.exit_status)


def main() -> None:
    """Console entry point: errors in the user's config end in one line on stderr and exit 2."""
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # let errors reach us instead of Hydra's printer
    arguments = [integral_e_notation_as_int(argument) for argument in sys.argv[1:]]
    if "--help" in arguments or "-h" in arguments:
        print(help_page(config_dir()))
        return
    if "--version" in arguments:
        print(f"pgrun {pgrun.__version__}")
        return
    saved = {
        key: value for key, _, value in (a.partition("=") for a in arguments) if key in ("resume", "rerun")
    }
    others = [a for a in arguments if a.partition("=")[0] not in saved]
    try:
        if len(saved) > 1:
            raise ConfigError("resume= and rerun= cannot be given together")
        if "resume" in saved:
            if "-m" in others or "--multirun" in others:
                raise ConfigError("resume= continues one run: resume the jobs of a sweep one by one")
            from pgrun.training.session import resume_run

            resume_run(Path(saved["resume"]), others)
            return
        if "rerun" in saved:
            from pgrun.training.resume import rerun_overrides

            others = rerun_overrides(Path(saved["rerun"]), others)
        if composes_by_itself(others):
            run_composed(others)
        else:
            sys.argv = [sys.argv[0], *hydra_overrides(others)]
            run_hydra_app()
    except Interrupted as interrupted:
        stopped(interrupted)
    except (RunFailed, EnvNotReplayable, *bad_input()) as error:
        from pgrun.cli.sweeps import report_sweep_failures

        if report_sweep_failures():
            sys.exit(1)
        fail(error, status=2 if isinstance(error, bad_input()) else 1)
    except OSError as error:  # e.g. a run dir that cannot be created
        print(f"pgrun: error: {error.strerror or error}: {error.filename}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("pgrun: interrupted before training started", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
