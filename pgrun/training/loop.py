"""The training loop: collector -> estimator -> update rule, once per iteration, then the
callbacks (pgrun.training.callbacks); with checkpoints a run resumes from exactly."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pgrun.algorithms import schema_name
from pgrun.collection.early_ends import BatchTooLong, CollectionStopped, EnvFault
from pgrun.config import Config, LogConfig, as_plain_dict
from pgrun.errors import RunFailed
from pgrun.tracking.logger import Logger
from pgrun.training.build import RunParts, build_parts
from pgrun.training.callbacks import Callback, builtin_callbacks
from pgrun.training.checkpoint import save_checkpoint
from pgrun.training.episode_stats import EpisodeStats
from pgrun.training.interrupt import Interrupted, StopRequests
from pgrun.training.policy_file import describe_spaces
from pgrun.training.rng import load_rng_state, rng_state


@dataclass
class Progress:
    """The loop's counters and the summary's bookkeeping."""

    steps: int = 0
    iteration: int = 0
    next_eval: int = 0
    next_log: int = 0
    next_video: int = 0
    evals: list[float] = field(default_factory=list)
    reached_at_step: int | None = None
    reached_at_seconds: float | None = None
    reached_at_training_seconds: float | None = None
    """reached_at_seconds less the time spent evaluating"""
    seconds: float = 0.0
    """training seconds up to the last checkpoint, carried into a resumed run's time/elapsed"""
    phase_seconds: dict[str, float] = field(default_factory=dict)
    """seconds spent collecting (of them, stepping the envs), updating and evaluating"""

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the seconds the block takes to phase_seconds[phase]."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add_seconds(phase, time.perf_counter() - start)

    def add_seconds(self, phase: str, seconds: float) -> None:
        self.phase_seconds[phase] = self.phase_seconds.get(phase, 0.0) + seconds


def wandb_settings(log: LogConfig) -> dict[str, Any]:
    return {"project": log.wandb_project, "entity": log.wandb_entity, "group": log.wandb_group}


class Training:
    """One run between iterations: its parts (pgrun.training.build), logger, counters and callbacks.
    `state_dict()` is everything the next iteration depends on, so a run restored from it
    (`resume`) continues exactly as the uninterrupted run would (CPU, same code)."""

    def __init__(
        self,
        config: Config,
        run_dir: Path,
        resume: dict[str, Any] | None = None,
        choices: dict[str, Any] | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        """`choices`: the config groups chosen ({"algo": "rtg", ...}; the HParams view names the
        algorithm); `callbacks`: the user's, called after the built-in ones."""
        self.config, self.run_dir = config, run_dir
        self.algorithm = (choices or {}).get("algo") or schema_name(config.algo)
        """the algo group chosen (vpg, rtg, ...; several share a schema), else the schema's name"""
        self.parts: RunParts = build_parts(config)
        self.policy, self.rule = self.parts.policy, self.parts.rule
        try:
            self.progress = Progress(
                next_eval=config.eval.every, next_log=config.log.every, next_video=config.eval.video_every
            )
            self.episodes = EpisodeStats()
            if resume is not None:
                self.load_state_dict(resume)
            self.checkpoint_step: int | None = self.progress.steps if resume is not None else None
            self.logger = Logger(
                self.run_dir,
                as_plain_dict(config) | {"algorithm": self.algorithm},  # HParams: which algorithm ran
                config.total_steps,
                config.log.console,
                config.log.tensorboard,
                resume_step=self.checkpoint_step,
                wandb=wandb_settings(config.log) if config.log.wandb else None,
            )
        except BaseException:
            self.parts.close()
            raise
        self.callbacks: list[Callback] = [*builtin_callbacks(config), *callbacks]
        self.stop = StopRequests()
        self.started = time.perf_counter()
        """the perf_counter value at which training (earlier sessions included) began"""
        self.should_stop = False
        """set by a callback to end the run after this iteration, as a finished run (its last
        checkpoint and policy file are written; no evaluation is added)"""

    @property
    def at_budget(self) -> bool:
        """total_steps are done."""
        return self.progress.steps >= self.config.total_steps

    @property
    def done(self) -> bool:
        """Training is over: total_steps are done, the target is reached with stop_at_target,
        or a callback asked to stop."""
        reached = self.config.stop_at_target and self.progress.reached_at_step is not None
        return self.at_budget or reached or self.should_stop

    def state_dict(self) -> dict[str, Any]:
        parts = self.parts
        statistics = parts.preprocessor.statistics
        return {
            "config": as_plain_dict(self.config),
            "algorithm": schema_name(self.config.algo),
            "rule": self.rule.state_dict(),
            "estimator": parts.estimate.state_dict(),
            "observation_statistics": statistics.state_dict() if statistics else {},
            "spaces": describe_spaces(parts.preprocessor.space, parts.collector.envs.single_action_space),
            "collector": parts.collector.state_dict(),
            "rng": rng_state(),
            "progress": asdict(self.progress),
            "episodes": {
                "returns": list(self.episodes.returns),
                "lengths": list(self.episodes.lengths),
                "info": {key: list(values) for key, values in self.episodes.info.items()},
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        parts = self.parts
        self.rule.load_state_dict(state["rule"])
        parts.estimate.load_state_dict(state["estimator"])
        if parts.preprocessor.statistics is not None:
            parts.preprocessor.statistics.load_state_dict(state["observation_statistics"])
        parts.collector.load_state_dict(state["collector"])
        load_rng_state(state["rng"])
        self.progress = Progress(**state["progress"])
        episodes = state["episodes"]
        self.episodes.add(episodes["returns"], episodes["lengths"], episodes.get("info"))

    def collection_snapshot(self) -> dict[str, Any]:
        """The parts of state_dict() that collecting a batch changes (the envs, the observation
        statistics, the random generators): with the rest, the state before the batch."""
        statistics = self.parts.preprocessor.statistics
        return {
            "collector": self.parts.collector.state_dict(),
            "observation_statistics": statistics.state_dict() if statistics else {},
            "rng": rng_state(),
        }

    def iterate(self) -> dict[str, float]:
        """Collect, estimate, update; then the callbacks. Returns the iteration's scalars.

        A stop request during collection drops the partial batch and raises Interrupted
        with a checkpoint of the state before it (so the run resumes exactly)."""
        config, progress, parts = self.config, self.progress, self.parts
        before = self.collection_snapshot()
        try:
            with progress.timed("collect"):
                batch = parts.collector.collect(step_limit=config.total_steps).to(parts.device)
            progress.add_seconds("env", parts.collector.env_seconds)
        except CollectionStopped:
            if self.checkpoint_step != progress.steps:
                self.checkpoint(before)
            raise Interrupted(self.stop.signum, self.checkpoint_step, immediate=False) from None
        except BatchTooLong as error:
            raise RunFailed(
                f"{error} before its {config.algo.batch_size:,} episodes had all ended: the episodes "
                f"of {config.env.id!r} may never end; set env.max_episode_steps to cut them; "
                f"{self.kept_checkpoint()}"
            ) from error
        except EnvFault as fault:
            where = f"env step {progress.steps + fault.env_steps:,} (iteration {progress.iteration + 1})"
            raise RunFailed(
                f"{fault} at {where}: the env {config.env.id!r} is at fault, not the algorithm; "
                f"{self.kept_checkpoint()}"
            ) from fault
        with progress.timed("update"):
            advantages = parts.estimate(batch, self.rule.critic)
            scalars = advantages.info | self.rule.update(
                advantages, progress=min(progress.steps / (config.schedule_steps or config.total_steps), 1.0)
            )
        progress.steps += batch.env_steps
        progress.iteration += 1
        self.episodes.add(batch.episode_returns, batch.episode_lengths, batch.episode_info)
        for callback in self.callbacks:
            callback.after_iteration(self, scalars)
        return scalars

    def kept_checkpoint(self) -> str:
        if self.checkpoint_step is None:
            return "no checkpoint was written yet"
        return f"the last checkpoint (env step {self.checkpoint_step:,}) is kept"

    def checkpoint(self, collection_state: dict[str, Any] | None = None) -> None:
        """Write a checkpoint of the state now; with `collection_state` (collection_snapshot),
        of the state when that was taken, before the batch under way."""
        self.progress.seconds = time.perf_counter() - self.started
        state = self.state_dict() | (collection_state or {})
        save_checkpoint(self.run_dir, state, self.progress.steps, self.config.checkpoint.keep)
        self.checkpoint_step = self.progress.steps

    def run(
        self, stop: StopRequests | None = None, on_start: Callable[[Training], None] | None = None
    ) -> dict[str, Any]:
        """Train until done (`done`), calling the callbacks; on a stop request, checkpoint
        and raise Interrupted (a request during the last iteration lets the run finish).
        `on_start(self)` is called once everything is built, before the callbacks' on_start.
        Returns the run's summary."""
        progress = self.progress
        self.stop = stop if stop is not None else StopRequests()
        self.parts.collector.stop_requested = lambda: self.stop.requested
        try:
            if on_start is not None:
                on_start(self)
            self.started = time.perf_counter() - progress.seconds
            for callback in self.callbacks:
                callback.on_start(self)
            while not self.done:
                self.iterate()
                if self.stop.requested and not self.done:
                    if self.checkpoint_step != progress.steps:  # (a signal during a later callback)
                        self.checkpoint()
                    raise Interrupted(self.stop.signum, self.checkpoint_step, immediate=False)
            for callback in self.callbacks:
                callback.on_end(self)
        except OSError as error:
            self.close(quietly=True)
            raise RunFailed(
                f"cannot write the run's files ({error.strerror or error}: {error.filename}); "
                f"{self.kept_checkpoint()}"
            ) from error
        except BaseException:
            self.close(quietly=True)
            raise
        self.close()
        return self.summary()

    def summary(self) -> dict[str, Any]:
        progress = self.progress
        return {
            "final_eval_return": progress.evals[-1] if progress.evals else None,
            "best_eval_return": max(progress.evals) if progress.evals else None,
            "target_reached_at_step": progress.reached_at_step,
            "target_reached_at_seconds": progress.reached_at_seconds,
            "target_reached_at_training_seconds": progress.reached_at_training_seconds,
            "env_steps": progress.steps,
            "evaluation": {
                key: getattr(self.config.eval, key) for key in ("episodes", "deterministic", "starts")
            },
            "seconds": time.perf_counter() - self.started,
            "seconds_by_phase": dict(progress.phase_seconds),
        }

    def close(self, quietly: bool = False) -> None:
        """Flush and close the logs, shut the envs (and async workers) down; `quietly`: while
        another error is on its way (the run failed or was stopped), one from closing would
        only hide it."""
        for close in (lambda: self.logger.close(failed=quietly), self.parts.close):
            try:
                close()
            except Exception:
                if not quietly:
                    raise


def train(
    config: Config,
    run_dir: Path,
    resume: dict[str, Any] | None = None,
    stop: StopRequests | None = None,
    choices: dict[str, Any] | None = None,
    on_start: Callable[[Training], None] | None = None,
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """Train one agent as configured (continuing from a checkpoint's state if `resume`),
    writing logs, checkpoints and the policy to `run_dir`.

    `choices`: the config groups chosen ({"algo": "rtg", ...}): the HParams view names the
    algorithm. `on_start(training)`: called once the run is built, before it trains.
    Returns a summary: final and best evaluation returns, the env steps and seconds at
    which an evaluation first reached target_return (None if never), total env steps.
    """
    training = Training(config, run_dir, resume, choices, callbacks)
    return training.run(stop, on_start)
