"""The `pgrun` command: Hydra composes the config, pgrun validates it, claims the run dir
and trains; `resume=<run dir>` continues a run from its checkpoint and `rerun=<run dir>`
starts a new run with a finished run's config."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import hydra
from hydra._internal.hydra import Hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import pgrun
from pgrun.config import Config, ConfigError, register_schemas, to_config
from pgrun.errors import CheckpointError, EnvNotReplayable, RunFailed, one_line
from pgrun.help import help_page
from pgrun.interrupt import Interrupted, StopRequests
from pgrun.presets import NULLS, preset_line, preset_overrides
from pgrun.rundir import (
    CHECKPOINT_DIR,
    LOCK_FILE,
    PROVENANCE_FILE,
    VIDEO_DIR,
    WANDB_DIR,
    WANDB_RUN_ID_FILE,
    RunDirError,
    RunDirLock,
    RunRecord,
    claim_new_run_dir,
    holds_run,
    write_hydra_files,
)
from pgrun.sweeps import report_sweep_failures

if TYPE_CHECKING:
    from pgrun.train import Training

# torch, gymnasium and the training code are imported where a run starts, not here, so
# that --help and a config error answer at once (pgrun.lazy has the algorithms' side)

SUMMARY_FILE = "summary.json"
BAD_INPUT = (ConfigError, RunDirError, CheckpointError, HydraException, OmegaConfBaseException)


def config_dir() -> Path:
    """configs/ inside the installed package (wheel), else the repository's (source, editable)."""
    packaged = Path(__file__).resolve().parent / "configs"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "configs"


def discard_new_run(run_dir: Path) -> None:
    """Remove what a run that never got to train wrote in the run dir it claimed (a dir that
    held no run), and the dir itself if that leaves it empty; keep anything else."""
    for folder in (".hydra", CHECKPOINT_DIR, VIDEO_DIR, WANDB_DIR):
        shutil.rmtree(run_dir / folder, ignore_errors=True)
    for name in (PROVENANCE_FILE, "metrics.jsonl", LOCK_FILE, WANDB_RUN_ID_FILE):
        (run_dir / name).unlink(missing_ok=True)
    for path in run_dir.glob("events.out.tfevents.*"):
        path.unlink()
    remove_if_empty(run_dir)


def remove_if_empty(run_dir: Path) -> None:
    """Remove the empty log files Hydra opens in a run dir, then the dir if it is empty."""
    for path in run_dir.glob("*.log"):
        if path.stat().st_size == 0:
            path.unlink()
    if run_dir.is_dir() and not any(run_dir.iterdir()):
        run_dir.rmdir()


register_schemas()


def mode_from_command_line(_hydra: Any, config_name: str | None, overrides: list[str]) -> RunMode | None:
    """Hydra.get_mode without its compose: the run mode a `hydra.mode=` override sets, else
    None (Hydra then takes -m or its absence).

    Hydra composes the whole config once only to read `hydra.mode`, then again to run it:
    ~0.3 s, half the time a config error takes to answer. No pgrun config file sets
    hydra.mode, so the command line is the only place it can come from; a user's config
    file (--config-dir) that sets it is not read for it: use -m."""
    for override in overrides:
        key, _, value = override.partition("=")
        if key.lstrip("+") == "hydra.mode" and value in RunMode.__members__:
            return RunMode[value]
    return None


Hydra.get_mode = mode_from_command_line  # hydra-core is pinned (1.3.8): its private API holds


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def run(cfg: DictConfig) -> float | None:
    """One job: validate, claim the run dir, train, write summary.json; return the final or
    best eval return (`objective`), which a sweeper such as Optuna maximizes."""
    hydra_config = HydraConfig.get()
    run_dir = Path(hydra_config.runtime.output_dir)
    single_run = hydra_config.mode == RunMode.RUN
    lock = None
    try:
        config = to_config(cfg)
        if not single_run and config.log.wandb and config.log.wandb_group is None:
            # a sweep's jobs side by side in W&B
            config.log.wandb_group = str(hydra_config.sweep.dir)
        lock = claim_new_run_dir(run_dir)
        write_hydra_files(run_dir, cfg, OmegaConf.create({"hydra": hydra_config}))
        summary = execute(config, run_dir, choices=dict(hydra_config.runtime.choices))
    except (ConfigError, RunDirError) as error:
        if lock is not None:
            discard_new_run(run_dir)  # the run never started
        elif not holds_run(run_dir):
            remove_if_empty(run_dir)  # what Hydra made for it
        if single_run:
            fail(error)
        raise  # in a sweep, Hydra reports the failed job and the others go on
    except RunFailed as error:
        if single_run:
            fail(error, status=1)
        raise
    finally:
        if lock is not None:
            lock.release()
    return summary[f"{config.objective}_eval_return"]


def execute(
    config: Config, run_dir: Path, resume: dict[str, Any] | None = None, choices: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Train in `run_dir` (claimed and locked), keeping run.json's status and writing summary.json."""
    from pgrun.train import train

    record = RunRecord(run_dir)
    record.start(config=dataclasses.asdict(config), choices=choices)
    started = resume is not None

    def on_start(training: Training) -> None:
        """Once the run is built: say what runs where (a bad env or a missing extra stays
        one line alone); from here on the run dir holds a run, whatever happens."""
        nonlocal started
        if not started:
            print_start(training, (choices or {}).get("tuned"))
        started = True

    with StopRequests() as stop:
        try:
            summary = train(config, run_dir, resume=resume, stop=stop, choices=choices, on_start=on_start)
        except ConfigError as error:
            if not started:
                raise  # bad input: the caller discards the run dir it claimed
            with contextlib.suppress(OSError):
                record.end("failed", one_line(error))
            # a run that trained keeps its dir, checkpoints and logs
            raise RunFailed(f"{one_line(error)} (after training started; the run dir is kept)") from error
        except Interrupted as interrupted:
            interrupted.run_dir = run_dir
            with contextlib.suppress(OSError):  # the stop matters more than its record
                record.end("interrupted", f"stopped by {interrupted}", env_steps=interrupted.checkpoint_step)
            raise
        except BaseException as error:
            with contextlib.suppress(OSError):
                record.end("failed", one_line(error))
            raise
    (run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    record.end("finished", env_steps=summary["env_steps"])
    print(end_line(summary, run_dir), file=sys.stderr)
    return summary


def print_start(training: Training, preset: str | None) -> None:
    """The tuned preset applied, if any, and `pgrun: ppo on CartPole-v1, seed 0, 300,000 env
    steps -> RUN_DIR`, on stderr."""
    if (line := preset_line(config_dir(), preset)) is not None:
        print(line, file=sys.stderr)
    config = training.config
    print(
        f"pgrun: {training.algorithm} on {config.env.id}, seed {config.seed}, "
        f"{config.total_steps:,} env steps -> {training.run_dir}",
        file=sys.stderr,
    )


def end_line(summary: dict[str, Any], run_dir: Path) -> str:
    """`pgrun: done: final eval 500.0, best 500.0, 300,000 env steps in 1 min 23 s -> RUN_DIR`"""
    final, best = summary["final_eval_return"], summary["best_eval_return"]
    returns = "no evaluation" if final is None else f"final eval {final:,.1f}, best {best:,.1f}"
    return (
        f"pgrun: done: {returns}, {summary['env_steps']:,} env steps in {duration(summary['seconds'])} "
        f"-> {run_dir}"
    )


def duration(seconds: float) -> str:
    """4.2 -> '4.2 s', 83 -> '1 min 23 s', 7500 -> '2 h 5 min'."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def resume(run_dir: Path, overrides: list[str]) -> None:
    """Continue the run in `run_dir` from its newest readable checkpoint."""
    from pgrun.resume import resumed_config

    if not (run_dir / PROVENANCE_FILE).is_file() and not (run_dir / CHECKPOINT_DIR).is_dir():
        raise RunDirError(f"resume={run_dir}: not a pgrun run directory")
    lock = RunDirLock(run_dir)
    try:
        config, state, path = resumed_config(run_dir, overrides)
        steps = state["progress"]["steps"]
        if steps >= config.total_steps:
            print(
                f"pgrun: {run_dir} has finished its {steps:,} env steps (total_steps={config.total_steps}); "
                "pass a larger total_steps to extend it",
                file=sys.stderr,
            )
            return
        print(f"pgrun: resuming {run_dir} from {path.name} (env step {steps:,})", file=sys.stderr)
        if changes := RunRecord(run_dir).code_changes():
            print(
                f"pgrun: warning: the run's code has changed since its last session ({', '.join(changes)}): "
                "it may not continue exactly as it would have",
                file=sys.stderr,
            )
        (run_dir / SUMMARY_FILE).unlink(missing_ok=True)
        execute(config, run_dir, resume=state)
    finally:
        lock.release()


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


def hydra_overrides(overrides: list[str]) -> list[str]:
    """The command line's overrides as Hydra should compose them (group nulls and presets
    settled first: without_group_nulls, preset_overrides)."""
    return preset_overrides(config_dir(), without_group_nulls(overrides))


REQUIRED_GROUPS = ("algo", "env")


def without_group_nulls(overrides: list[str]) -> list[str]:
    """A ConfigError for `algo=null` or `env=null` (Hydra would raise a ValueError deep in
    composition); `experiment=null` as Hydra's `~experiment` (no experiment)."""
    for at, override in enumerate(overrides):
        key, _, value = override.partition("=")
        if value.lower() not in NULLS:
            continue
        if key in REQUIRED_GROUPS:
            names = sorted(path.stem for path in (config_dir() / key).glob("*.yaml"))
            raise ConfigError(f"{key}={value} is not allowed: choose one of {', '.join(names)}")
        if key == "experiment":
            overrides = [*overrides[:at], "~experiment", *overrides[at + 1 :]]
    return overrides


INTEGRAL_E_NOTATION = re.compile(r"^([^=]+=)(\d+(?:\.\d*)?[eE]\+?\d+)$")


def integral_e_notation_as_int(argument: str) -> str:
    """`total_steps=2e6` -> `total_steps=2000000`, so step counts can be written as floats."""
    match = INTEGRAL_E_NOTATION.match(argument)
    if match and float(match[2]).is_integer():
        return f"{match[1]}{int(float(match[2]))}"
    return argument


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
            resume(Path(saved["resume"]), others)
            return
        if "rerun" in saved:
            from pgrun.resume import rerun_overrides

            others = rerun_overrides(Path(saved["rerun"]), others)
        sys.argv = [sys.argv[0], *hydra_overrides(others)]
        run()
    except Interrupted as interrupted:
        stopped(interrupted)
    except (RunFailed, EnvNotReplayable, *BAD_INPUT) as error:
        if report_sweep_failures():
            sys.exit(1)
        fail(error, status=2 if isinstance(error, BAD_INPUT) else 1)
    except OSError as error:  # e.g. a run dir that cannot be created
        print(f"pgrun: error: {error.strerror or error}: {error.filename}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("pgrun: interrupted before training started", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
