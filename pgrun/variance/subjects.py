"""What the lab measures: a policy at one point of a run, with its run's critic and update rule.

A subject comes from a checkpoint (of a run dir, chosen by env steps, or a file), or from a
config (a fresh initialization, as `pgrun OVERRIDES` would start). Its parts are built as the
run's (pgrun.training.build) and the checkpoint's learned state loaded into them.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pgrun.collection.normalization import RunningMeanStd
from pgrun.config import Config, ConfigError
from pgrun.errors import CheckpointError
from pgrun.networks.policy import Policy, make_policy
from pgrun.training.build import RunParts, build_parts
from pgrun.training.checkpoint import checkpoint_files, read_checkpoint
from pgrun.training.resume import saved_run_config
from pgrun.training.rundir import CHECKPOINT_DIR


@dataclass
class Subject:
    """A policy to measure: `label` names it, `env_steps` is where its run was."""

    label: str
    env_steps: int
    config: Config
    parts: RunParts
    progress: float
    """the fraction of its run's total_steps done (the update rule's schedules read it)"""
    reward_std: float = 1.0
    """with env.normalize_reward: the std its rewards were divided by (as its critic learned them)"""

    def close(self) -> None:
        self.parts.close()


def checkpoint_steps(path: Path) -> int:
    match = re.fullmatch(r"step_(\d+)\.pt", path.name)
    return int(match.group(1)) if match else 0


def chosen_checkpoints(source: Path, at: list[int] | None = None, every: bool = False) -> list[Path]:
    """The checkpoint files to measure: `source` itself if it is one; of a run dir, the one
    nearest each of `at` (env steps), every one (`every`), or the newest. ConfigError (one
    line) for a path that is neither, or a run dir without checkpoints."""
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise ConfigError(f"{source}: no such run dir or checkpoint file")
    files = checkpoint_files(source)
    if not files:
        raise ConfigError(
            f"{source} has no checkpoints to measure ({source / CHECKPOINT_DIR} is empty or missing; "
            "a run writes one every checkpoint.every env steps and at its end)"
        )
    if every:
        return files
    if not at:
        return [files[-1]]
    nearest = [min(files, key=lambda path: abs(checkpoint_steps(path) - steps)) for steps in at]
    return list(dict.fromkeys(nearest))


def without_video(config: Config) -> Config:
    return dataclasses.replace(config, eval=dataclasses.replace(config.eval, video=False))


def checkpoint_subject(path: Path) -> Subject:
    """The policy, critic and update rule of a checkpoint, in parts built from its config."""
    state = read_checkpoint(path)
    try:
        config = without_video(saved_run_config(state["config"], state["algorithm"]))
    except KeyError as error:
        raise CheckpointError(f"{path}: not a pgrun checkpoint (no {error})") from error
    parts = build_parts(config)
    try:
        parts.rule.load_state_dict(state["rule"])
        parts.estimate.load_state_dict(state["estimator"])
        if parts.preprocessor.statistics is not None:
            parts.preprocessor.statistics.load_state_dict(state["observation_statistics"])
    except BaseException:
        parts.close()
        raise
    steps = int(state["progress"]["steps"])
    reward_std = 1.0
    if config.env.normalize_reward:
        statistics = RunningMeanStd(1)
        statistics.load_state_dict(state["collector"]["reward_scaler"]["statistics"])
        reward_std = float(statistics.std[0])
    label = f"{path.parent.parent.name} at {steps:,} env steps"
    return Subject(label, steps, config, parts, steps / config.total_steps, reward_std)


def fresh_subject(config: Config) -> Subject:
    """The initial policy (and critic) of a run of `config`."""
    config = without_video(config)
    return Subject("initialization", 0, config, build_parts(config), 0.0)


def stale_policy(subject: Subject, updates: int) -> Policy:
    """A copy of the policy after `updates` more iterations of its run's algorithm from here
    (collect, estimate, update, as training does); the subject is left as it was.

    A checkpoint holds one policy, so the behaviour policy of importance sampling is made
    `updates` updates away forward: the ratio pi / mu then spans as many updates as a batch
    `updates` iterations old would.
    """
    parts = subject.parts
    statistics = parts.preprocessor.statistics
    saved: dict[str, Any] = copy.deepcopy(
        {"rule": parts.rule.state_dict(), "estimator": parts.estimate.state_dict()}
        | ({"statistics": statistics.state_dict()} if statistics is not None else {})
    )
    try:
        for _ in range(updates):
            advantages = parts.estimate(parts.collector.collect(), parts.rule.critic)
            parts.rule.update(advantages, progress=subject.progress)
        stale = make_policy(parts.preprocessor.layout, parts.envs.single_action_space, subject.config.policy)
        stale.load_state_dict(parts.policy.state_dict())
    finally:
        parts.rule.load_state_dict(saved["rule"])
        parts.estimate.load_state_dict(saved["estimator"])
        if statistics is not None:
            statistics.load_state_dict(saved["statistics"])
    return stale
