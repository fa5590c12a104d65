"""A run's session: from a composed config (or a run dir to resume) to a finished run dir.

Owns what happens around the training loop: validating the config and claiming the run
dir (`new_run`), recording the session in run.json and the summary in summary.json
(`execute`), continuing a run from its checkpoint (`resume_run`), the console's start and end
lines, and leaving a run dir as it was when the run never started. The `pgrun` command and
the Python API (pgrun.api) both run through here. torch is imported when training starts,
not before, so that a config error answers at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from pgrun.config import Config, ConfigError, config_dir, one_line, to_config
from pgrun.config.presets import preset_line
from pgrun.errors import RunFailed
from pgrun.tracking.files import METRICS_FILE, WANDB_DIR, WANDB_RUN_ID_FILE
from pgrun.training.interrupt import Interrupted, StopRequests
from pgrun.training.rundir import (
    CHECKPOINT_DIR,
    LOCK_FILE,
    PROVENANCE_FILE,
    VIDEO_DIR,
    RunDirError,
    RunDirLock,
    RunRecord,
    claim_new_run_dir,
    holds_run,
    write_hydra_files,
)

if TYPE_CHECKING:
    from pgrun.training.callbacks import Callback
    from pgrun.training.loop import Training

SUMMARY_FILE = "summary.json"


def new_run(
    cfg: DictConfig,
    hydra_config: DictConfig,
    run_dir: Path,
    sweep_dir: Path | None = None,
    callbacks: Sequence[Callback] = (),
    from_command: bool = True,
    unique: bool = False,
) -> tuple[Config, dict[str, Any], Path]:
    """One new run of a composed config: validate, claim the run dir, train, write
    summary.json; the config, the summary and the run dir. `hydra_config`: the `hydra` node it
    was composed with (written to .hydra/ with it; its runtime.choices name the algorithm);
    `sweep_dir`: the sweep the run is a job of (its W&B group by default), None for a single
    run; `from_command`: as in `execute`; `unique`: `run_dir` is pgrun's default name, not the
    user's choice, so a taken one gives way to run_dir-2, -3, ... (rundir.claim_new_run_dir).

    Bad input (ConfigError, RunDirError) leaves the run dir as it was: what this run wrote
    in it is removed, and so is a dir that holds nothing else."""
    lock, claimed = None, run_dir
    try:
        config = to_config(cfg, preset=hydra_config.runtime.choices.get("tuned"))
        if sweep_dir is not None and config.log.wandb and config.log.wandb_group is None:
            config.log.wandb_group = str(sweep_dir)  # a sweep's jobs side by side in W&B
        lock, claimed = claim_new_run_dir(run_dir, unique)
        if claimed != run_dir:
            with read_write(hydra_config), open_dict(hydra_config):
                hydra_config.run.dir = hydra_config.runtime.output_dir = str(claimed)
        write_hydra_files(claimed, cfg, OmegaConf.create({"hydra": hydra_config}))
        choices = dict(hydra_config.runtime.choices)
        return config, execute(config, claimed, None, choices, callbacks, from_command), claimed
    except (ConfigError, RunDirError):
        if lock is not None:
            discard_new_run(claimed)  # the run never started
        elif not holds_run(run_dir):
            remove_if_empty(run_dir)  # what Hydra made for it
        raise
    finally:
        if lock is not None:
            lock.release()


def execute(
    config: Config,
    run_dir: Path,
    resume: dict[str, Any] | None = None,
    choices: dict[str, Any] | None = None,
    callbacks: Sequence[Callback] = (),
    from_command: bool = True,
) -> dict[str, Any]:
    """Train in `run_dir` (claimed and locked), keeping run.json's status and writing
    summary.json; `callbacks`: the user's (pgrun.training.callbacks). `from_command`: the
    process ends after a stop, so further signals are ignored on the way out (else, from
    Python, the previous handlers are restored: a notebook keeps its interrupt button)."""
    from pgrun.training.loop import train

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

    with StopRequests(ignore_after_stop=from_command) as stop:
        try:
            summary = train(config, run_dir, resume, stop, choices, on_start=on_start, callbacks=callbacks)
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


def resume_run(
    run_dir: Path, overrides: list[str], callbacks: Sequence[Callback] = (), from_command: bool = True
) -> tuple[Config, dict[str, Any] | None]:
    """Continue the run in `run_dir` from its newest readable checkpoint, with `overrides`
    (total_steps, log.*, checkpoint.*); its config and summary (None if it had nothing left
    to do). `from_command`: as in `execute`."""
    from pgrun.training.resume import resumed_config

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
            return config, None
        if config.stop_at_target and state["progress"]["reached_at_step"] is not None:
            print(
                f"pgrun: {run_dir} reached its target_return={config.target_return} at env step "
                f"{state['progress']['reached_at_step']:,} and stopped there (stop_at_target=true): "
                "nothing to resume",
                file=sys.stderr,
            )
            return config, None
        print(f"pgrun: resuming {run_dir} from {path.name} (env step {steps:,})", file=sys.stderr)
        if changes := RunRecord(run_dir).code_changes():
            print(
                f"pgrun: warning: the run's code has changed since its last session ({', '.join(changes)}): "
                "it may not continue exactly as it would have",
                file=sys.stderr,
            )
        schedule = getattr(getattr(config.algo, "optim", None), "lr_schedule", None)
        if schedule == "linear" and config.total_steps > config.schedule_steps:
            print(
                "pgrun: note: the learning rate's linear schedule ends at "
                f"schedule_steps={config.schedule_steps:,} (the run's first budget) and stays 0 after it; "
                f"pass schedule_steps={config.total_steps} to stretch it over the new budget instead",
                file=sys.stderr,
            )
        (run_dir / SUMMARY_FILE).unlink(missing_ok=True)
        return config, execute(config, run_dir, state, callbacks=callbacks, from_command=from_command)
    finally:
        lock.release()


def discard_new_run(run_dir: Path) -> None:
    """Remove what a run that never got to train wrote in the run dir it claimed (a dir that
    held no run), and the dir itself if that leaves it empty; keep anything else."""
    for folder in (".hydra", CHECKPOINT_DIR, VIDEO_DIR, WANDB_DIR):
        shutil.rmtree(run_dir / folder, ignore_errors=True)
    for name in (PROVENANCE_FILE, METRICS_FILE, LOCK_FILE, WANDB_RUN_ID_FILE):
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
