"""The training loop: collector -> estimator -> update rule, once per iteration, with
checkpoints a run resumes from exactly."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.utils import parameters_to_vector

from pgrun.advantages import make_estimator
from pgrun.algos import make_update_rule, schema_name
from pgrun.checkpoint import POLICY_FILE, save_checkpoint, save_policy
from pgrun.collector import Collector, EnvFault
from pgrun.config import Config, LogConfig, as_plain_dict
from pgrun.envs import ObservationEncoder, episode_step_limit, make_vector_env
from pgrun.errors import RunFailed, first_line
from pgrun.evaluate import Evaluator
from pgrun.interrupt import Interrupted, StopRequests
from pgrun.logger import Logger
from pgrun.policies import make_policy
from pgrun.reward_scaling import RewardScaler
from pgrun.rng import load_rng_state, rng_state, seed_everything
from pgrun.rundir import VIDEO_DIR
from pgrun.value import value_networks
from pgrun.video import check_rendering, record_episode, require_moviepy

EVAL_SEED_OFFSET = 1_000_000


class EpisodeStats:
    """Returns and lengths of the episodes finished since the last logged iteration."""

    def __init__(self) -> None:
        self.returns: list[float] = []
        self.lengths: list[int] = []

    def add(self, returns: list[float], lengths: list[int]) -> None:
        self.returns += returns
        self.lengths += lengths

    def scalars(self) -> dict[str, float]:
        """Their means (NaN, i.e. not logged, if none finished) and count; then start afresh."""
        returns, lengths = self.returns, self.lengths
        self.returns, self.lengths = [], []
        return {
            "charts/episodic_return": float(np.mean(returns)) if returns else float("nan"),
            "charts/episodic_length": float(np.mean(lengths)) if lengths else float("nan"),
            "charts/episodes": float(len(returns)),
        }


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
    """One run between iterations: its envs, learners, logger and counters.

    `state_dict()` is everything the next iteration depends on, so a run restored from it
    (`resume`) continues exactly as the uninterrupted run would (CPU, same code).
    """

    def __init__(
        self,
        config: Config,
        run_dir: Path,
        resume: dict[str, Any] | None = None,
        choices: dict[str, Any] | None = None,
    ) -> None:
        self.config, self.run_dir = config, run_dir
        self.video_on = config.eval.video
        self.algorithm = (choices or {}).get("algo") or schema_name(config.algo)
        """the algo group chosen (vpg, rtg, ...; several share a schema), else the schema's name"""
        limit, guard = episode_step_limit(config.env)
        if guard:
            print(
                f"pgrun: warning: env {config.env.id!r} has no time limit; episodes are truncated at "
                f"{limit:,} steps (set env.max_episode_steps to choose)",
                file=sys.stderr,
            )
        seed_everything(config.seed)
        torch.set_num_threads(config.torch_threads)
        if config.eval.video:
            require_moviepy("eval.video=true")
            check_rendering(config.env)
        self.envs = make_vector_env(config.env, config.env.num_envs)
        self.eval_envs = make_vector_env(config.env, config.eval.episodes)
        try:
            self.build(resume)
        except BaseException:
            self.envs.close()
            self.eval_envs.close()
            raise

    def build(self, resume: dict[str, Any] | None) -> None:
        config = self.config
        self.encoder = ObservationEncoder(
            self.envs.single_observation_space, normalize=config.env.normalize_obs, clip=config.env.clip_obs
        )
        self.policy = make_policy(self.encoder.dim, self.envs.single_action_space, config.policy)
        self.rule = make_update_rule(
            config.algo, self.policy, value_networks(self.encoder.dim, config.policy)
        )
        self.estimate = make_estimator(config.algo, self.policy)
        self.collector = Collector(
            self.envs,
            self.policy,
            self.encoder,
            config.algo.batch_unit,
            config.algo.batch_size,
            seed=config.seed,
            reward_scaler=(
                RewardScaler(config.env.num_envs, config.algo.gamma, config.env.clip_reward)
                if config.env.normalize_reward
                else None
            ),
        )
        self.evaluate = Evaluator(
            self.eval_envs, self.encoder, config.seed + EVAL_SEED_OFFSET, config.eval.deterministic
        )
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

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": as_plain_dict(self.config),
            "algorithm": schema_name(self.config.algo),
            "rule": self.rule.state_dict(),
            "estimator": self.estimate.state_dict(),
            "observation_statistics": self.encoder.statistics.state_dict() if self.encoder.statistics else {},
            "collector": self.collector.state_dict(),
            "rng": rng_state(),
            "progress": asdict(self.progress),
            "episodes": {"returns": list(self.episodes.returns), "lengths": list(self.episodes.lengths)},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rule.load_state_dict(state["rule"])
        self.estimate.load_state_dict(state["estimator"])
        if self.encoder.statistics is not None:
            self.encoder.statistics.load_state_dict(state["observation_statistics"])
        self.collector.load_state_dict(state["collector"])
        load_rng_state(state["rng"])
        self.progress = Progress(**state["progress"])
        self.episodes.add(state["episodes"]["returns"], state["episodes"]["lengths"])

    def iterate(self, started: float) -> None:
        """Collect, estimate, update; evaluate and log when due. `started`: the perf_counter
        value at which training (including earlier sessions) began."""
        config, progress = self.config, self.progress
        try:
            with progress.timed("collect"):
                batch = self.collector.collect()
            progress.add_seconds("env", self.collector.env_seconds)
        except EnvFault as fault:
            where = f"env step {progress.steps + fault.env_steps:,} (iteration {progress.iteration + 1})"
            raise RunFailed(
                f"{fault} at {where}: the env {config.env.id!r} is at fault, not the algorithm; "
                f"{self.kept_checkpoint()}"
            ) from fault
        with progress.timed("update"):
            advantages = self.estimate(batch, self.rule.critic)
            scalars = advantages.info | self.rule.update(
                advantages, progress=progress.steps / config.total_steps
            )
        progress.steps += batch.env_steps
        progress.iteration += 1
        self.check_finite(scalars)
        self.episodes.add(batch.episode_returns, batch.episode_lengths)
        last = progress.steps >= config.total_steps
        evaluated = progress.steps >= progress.next_eval or last
        if evaluated:
            while progress.next_eval <= progress.steps:
                progress.next_eval += config.eval.every
            with progress.timed("eval"):
                returns = self.evaluate(self.policy)
            scalars["eval/return"], scalars["eval/return_std"] = float(returns.mean()), float(returns.std())
            progress.evals.append(scalars["eval/return"])
            if self.video_on and (progress.steps >= progress.next_video or last):
                while progress.next_video <= progress.steps:
                    progress.next_video += config.eval.video_every
                with progress.timed("video"):
                    self.record_video()
        if evaluated or progress.steps >= progress.next_log:
            while progress.next_log <= progress.steps:
                progress.next_log += config.log.every
            scalars |= self.episodes.scalars()
            scalars["time/elapsed"] = time.perf_counter() - started
            scalars["time/sps"] = progress.steps / scalars["time/elapsed"]
            scalars |= {f"time/{phase}": seconds for phase, seconds in progress.phase_seconds.items()}
            self.logger.log(progress.steps, scalars)
            self.logger.iteration(progress.iteration, progress.steps, scalars)
        target = config.target_return
        if (
            progress.reached_at_step is None
            and target is not None
            and scalars.get("eval/return", -np.inf) >= target
        ):
            progress.reached_at_step = progress.steps
            progress.reached_at_seconds = time.perf_counter() - started
            progress.reached_at_training_seconds = (
                progress.reached_at_seconds
                - progress.phase_seconds["eval"]
                - progress.phase_seconds.get("video", 0.0)
            )

    def record_video(self) -> None:
        """One evaluation episode, on an env copy of its own (the evaluator's copies and the
        training's random streams are untouched), to videos/eval-step<env steps>.mp4 and to
        the logger."""
        config, steps = self.config, self.progress.steps
        try:
            frames, fps = record_episode(
                config.env,
                self.policy,
                self.encoder,
                config.seed + EVAL_SEED_OFFSET,
                config.eval.deterministic,
                self.run_dir / VIDEO_DIR / f"eval-step{steps:09d}.mp4",
                max_width=self.logger.video_width(steps),
            )
            self.logger.video("eval/video", frames, steps, fps)
        except Exception as error:  # a clip is not worth a run: warn, and record no more
            self.video_on = False
            print(
                f"pgrun: warning: no more videos in this run: recording one at env step {steps:,} failed "
                f"({type(error).__name__}: {first_line(error)})",
                file=sys.stderr,
            )

    def check_finite(self, scalars: dict[str, float]) -> None:
        """RunFailed naming the first non-finite loss or parameter after an update."""
        where = f"at iteration {self.progress.iteration} (env step {self.progress.steps:,})"
        kept = self.kept_checkpoint()
        for key, value in scalars.items():
            if key.endswith("loss") and not math.isfinite(value):
                raise RunFailed(
                    f"training diverged {where}: {key} is {value}; lower the learning rate or clip "
                    f"gradients; {kept}"
                )
        for name, module in (("policy", self.policy), ("critic", self.rule.critic)):
            if module is not None and not torch.isfinite(parameters_to_vector(module.parameters())).all():
                raise RunFailed(
                    f"training diverged {where}: the {name}'s parameters are not finite after an update "
                    f"from a finite loss (a non-finite gradient); lower the learning rate or clip "
                    f"gradients; {kept}"
                )

    def kept_checkpoint(self) -> str:
        if self.checkpoint_step is None:
            return "no checkpoint was written yet"
        return f"the last checkpoint (env step {self.checkpoint_step:,}) is kept"

    def checkpoint(self, started: float) -> None:
        self.progress.seconds = time.perf_counter() - started
        save_checkpoint(self.run_dir, self.state_dict(), self.progress.steps, self.config.checkpoint.keep)
        self.checkpoint_step = self.progress.steps

    def run(self, stop: StopRequests, on_start: Callable[[Training], None] | None = None) -> dict[str, Any]:
        """Train until total_steps (or the target, with stop_at_target), checkpointing every
        checkpoint.every env steps and at the end; on a stop request, checkpoint and raise
        Interrupted. `on_start(self)` is called once everything is built, before the first
        iteration. Returns the run's summary."""
        config, progress = self.config, self.progress
        if on_start is not None:
            on_start(self)
        started = time.perf_counter() - progress.seconds
        every = config.checkpoint.every
        next_checkpoint = (progress.steps // every + 1) * every
        try:
            while progress.steps < config.total_steps:
                self.iterate(started)
                if config.stop_at_target and progress.reached_at_step is not None:
                    break
                due = next_checkpoint <= progress.steps < config.total_steps
                if stop.requested or due:
                    self.checkpoint(started)
                    stop.last_checkpoint_step = self.checkpoint_step
                    next_checkpoint = (progress.steps // every + 1) * every
                if stop.requested:
                    raise Interrupted(stop.signum, self.checkpoint_step, immediate=False)
            if self.checkpoint_step != progress.steps:
                self.checkpoint(started)
            if config.log.save_policy:
                save_policy(
                    self.run_dir / POLICY_FILE,
                    self.policy,
                    as_plain_dict(config),
                    self.encoder,
                    self.envs.single_action_space,
                    self.rule.critic,
                )
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
        return {
            "final_eval_return": progress.evals[-1] if progress.evals else None,
            "best_eval_return": max(progress.evals) if progress.evals else None,
            "target_reached_at_step": progress.reached_at_step,
            "target_reached_at_seconds": progress.reached_at_seconds,
            "target_reached_at_training_seconds": progress.reached_at_training_seconds,
            "env_steps": progress.steps,
            "seconds": time.perf_counter() - started,
            "seconds_by_phase": dict(progress.phase_seconds),
        }

    def close(self, quietly: bool = False) -> None:
        """Flush and close the logs, shut the envs (and async workers) down; `quietly`: while
        another error is on its way (the run failed or was stopped), one from closing would
        only hide it."""
        for close in (lambda: self.logger.close(failed=quietly), self.envs.close, self.eval_envs.close):
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
) -> dict[str, Any]:
    """Train one agent as configured (continuing from a checkpoint's state if `resume`),
    writing logs, checkpoints and the policy to `run_dir`.

    `choices`: the config groups chosen ({"algo": "rtg", ...}): the HParams view names the
    algorithm. `on_start(training)`: called once the run is built, before it trains.
    Returns a summary: final and best evaluation returns, the env steps and seconds at
    which an evaluation first reached target_return (None if never), total env steps.
    """
    training = Training(config, run_dir, resume, choices)
    return training.run(stop if stop is not None else StopRequests(), on_start)
