"""Callbacks: what a run does besides learning, at named points of the training loop.

The loop (pgrun.training.loop) calls, on every callback in order:
    on_start(training)                  once the run is built, before the first iteration
    after_iteration(training, scalars)  after each update; `scalars` is the iteration's
                                        diagnostics, which a callback may read and add to
    on_end(training)                    once training is over (not after a failure or a stop)
The built-in ones are, in this order: the divergence guard, evaluation, video, logging, the
target tracker, checkpointing and the policy file; a user's callbacks come after them, so
they see every scalar that was logged. A callback may end the run early by setting
`training.should_stop = True`: it then ends as a finished run does (the last checkpoint and
the policy file are written), without an evaluation of its own.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.nn.utils import parameters_to_vector

from pgrun.config import Config, as_plain_dict
from pgrun.errors import RunFailed, first_line
from pgrun.tracking.video import record_episode
from pgrun.training.policy_file import POLICY_FILE, save_policy
from pgrun.training.rundir import VIDEO_DIR

if TYPE_CHECKING:
    from pgrun.training.loop import Training


class Callback:
    """A piece of a run called at the loop's named points; every hook is optional."""

    def on_start(self, training: Training) -> None:
        """Once the run is built (or restored from a checkpoint), before its first iteration."""

    def after_iteration(self, training: Training, scalars: dict[str, float]) -> None:
        """After each iteration's update; training.progress counts it already."""

    def on_end(self, training: Training) -> None:
        """Once training is over (total_steps, the target with stop_at_target, or should_stop)."""


class DivergenceGuard(Callback):
    """RunFailed naming the first non-finite loss, or non-finite parameters, after an update."""

    def after_iteration(self, training: Training, scalars: dict[str, float]) -> None:
        progress = training.progress
        where = f"at iteration {progress.iteration} (env step {progress.steps:,})"
        kept = training.kept_checkpoint()
        for key, value in scalars.items():
            if key.endswith("loss") and not math.isfinite(value):
                raise RunFailed(
                    f"training diverged {where}: {key} is {value}; lower the learning rate or clip "
                    f"gradients; {kept}"
                )
        for name, module in (("policy", training.policy), ("critic", training.rule.critic)):
            if module is not None and not torch.isfinite(parameters_to_vector(module.parameters())).all():
                raise RunFailed(
                    f"training diverged {where}: the {name}'s parameters are not finite after an update "
                    f"from a finite loss (a non-finite gradient); lower the learning rate or clip "
                    f"gradients; {kept}"
                )


class Evaluation(Callback):
    """Every eval.every env steps and after the last iteration: eval/return and eval/return_std
    over eval.episodes episodes (pgrun.collection.evaluator)."""

    def after_iteration(self, training: Training, scalars: dict[str, float]) -> None:
        config, progress = training.config, training.progress
        if progress.steps < progress.next_eval and not training.at_budget:
            return
        while progress.next_eval <= progress.steps:
            progress.next_eval += config.eval.every
        with progress.timed("eval"):
            returns = training.parts.evaluate(training.policy, index=len(progress.evals))
        scalars["eval/return"], scalars["eval/return_std"] = float(returns.mean()), float(returns.std())
        progress.evals.append(scalars["eval/return"])


class Video(Callback):
    """With eval.video: one evaluation episode recorded, at the first evaluation at or after
    every eval.video_every env steps and at the last one, on an env copy of its own (the
    evaluator's copies and the training's random streams are untouched), to
    videos/eval-step<env steps>.mp4 and to the logger. A clip that fails is a warning, and
    the run goes on without video."""

    def __init__(self) -> None:
        self.on = True

    def after_iteration(self, training: Training, scalars: dict[str, float]) -> None:
        progress, config = training.progress, training.config
        if not self.on or "eval/return" not in scalars:
            return
        if progress.steps < progress.next_video and not training.at_budget:
            return
        while progress.next_video <= progress.steps:
            progress.next_video += config.eval.video_every
        with progress.timed("video"):
            self.record(training)

    def record(self, training: Training) -> None:
        config, steps, logger = training.config, training.progress.steps, training.logger
        try:
            frames, fps = record_episode(
                config.env,
                training.policy,
                training.parts.preprocessor,
                training.parts.evaluate.seed_for(len(training.progress.evals) - 1),
                config.eval.deterministic,
                training.run_dir / VIDEO_DIR / f"eval-step{steps:09d}.mp4",
                max_width=logger.video_width(steps),
            )
            logger.video("eval/video", frames, steps, fps)
        except Exception as error:  # a clip is not worth a run: warn, and record no more
            self.on = False
            print(
                f"pgrun: warning: no more videos in this run: recording one at env step {steps:,} failed "
                f"({type(error).__name__}: {first_line(error)})",
                file=sys.stderr,
            )


class Logging(Callback):
    """At every evaluation and once log.every env steps have passed since the last logged
    iteration: the iteration's scalars, the episodes finished since then (charts/) and the
    time spent (time/), to the logger (TensorBoard, metrics.jsonl, console, W&B)."""

    def after_iteration(self, training: Training, scalars: dict[str, float]) -> None:
        progress, config = training.progress, training.config
        if "eval/return" not in scalars and progress.steps < progress.next_log:
            return
        while progress.next_log <= progress.steps:
            progress.next_log += config.log.every
        scalars |= training.episodes.scalars()
        scalars["time/elapsed"] = time.perf_counter() - training.started
        scalars["time/sps"] = progress.steps / scalars["time/elapsed"]
        scalars |= {f"time/{phase}": seconds for phase, seconds in progress.phase_seconds.items()}
        training.logger.log(progress.steps, scalars)
        training.logger.iteration(progress.iteration, progress.steps, scalars)


class TargetTracker(Callback):
    """With target_return: the env steps and seconds at which an evaluation first reached it."""

    def after_iteration(self, training: Training, scalars: dict[str, float]) -> None:
        progress, target = training.progress, training.config.target_return
        if progress.reached_at_step is not None or target is None:
            return
        if scalars.get("eval/return", -np.inf) < target:
            return
        progress.reached_at_step = progress.steps
        progress.reached_at_seconds = time.perf_counter() - training.started
        progress.reached_at_training_seconds = (
            progress.reached_at_seconds
            - progress.phase_seconds["eval"]
            - progress.phase_seconds.get("video", 0.0)
        )


class Checkpointing(Callback):
    """A checkpoint every checkpoint.every env steps, when a stop is requested (the loop then
    raises Interrupted), and at the end."""

    def on_start(self, training: Training) -> None:
        self.every = training.config.checkpoint.every
        self.next = (training.progress.steps // self.every + 1) * self.every

    def after_iteration(self, training: Training, scalars: dict[str, float]) -> None:
        if training.done:
            return  # on_end writes the last one
        steps, stop = training.progress.steps, training.stop
        if stop.requested or self.next <= steps:
            training.checkpoint()
            stop.last_checkpoint_step = training.checkpoint_step
            self.next = (steps // self.every + 1) * self.every

    def on_end(self, training: Training) -> None:
        if training.checkpoint_step != training.progress.steps:
            training.checkpoint()


class PolicyFile(Callback):
    """With log.save_policy: policy.pt (pgrun.training.policy_file) at the end."""

    def on_end(self, training: Training) -> None:
        config = training.config
        save_policy(
            training.run_dir / POLICY_FILE,
            training.policy,
            as_plain_dict(config),
            training.parts.preprocessor,
            training.parts.envs.single_action_space,
            training.rule.critic,
            eval_seed=training.parts.evaluate.seed_for(len(evals) - 1)
            if (evals := training.progress.evals)
            else None,
        )


def builtin_callbacks(config: Config) -> list[Callback]:
    """The callbacks every run has, in the order the loop calls them."""
    callbacks = [DivergenceGuard(), Evaluation()]
    if config.eval.video:
        callbacks.append(Video())
    callbacks += [Logging(), TargetTracker(), Checkpointing()]
    if config.log.save_policy:
        callbacks.append(PolicyFile())
    return callbacks
