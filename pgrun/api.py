"""The Python API: train a run, continue it, and load a trained agent, from a notebook or a script.

    import pgrun

    result = pgrun.train(["algo=ppo", "env=cartpole", "total_steps=20000"])
    result.final_eval_return, result.run_dir, result.metrics()[-1]
    agent = pgrun.load(result.run_dir)          # or a policy.pt file
    action = agent.act(observation)

`train` takes the overrides the `pgrun` command takes (presets, `algo=null` and `2e6` step
counts alike), composes them with Hydra's public compose API, and runs the same session the
command runs (pgrun.training.session): the same run dir, files, checkpoints and numbers.
Errors are raised, not printed: ConfigError and RunDirError for bad input (the run dir is
left as it was), RunFailed for a run that failed, Interrupted for a stop (Ctrl-C).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict, read_write

from pgrun.algorithms import register_schemas
from pgrun.config import Config, config_dir, to_config
from pgrun.config.overrides import chooses_run_dir, hydra_overrides
from pgrun.tracking.files import METRICS_FILE
from pgrun.training.session import SUMMARY_FILE, new_run, resume_run

if TYPE_CHECKING:
    from pgrun.training.callbacks import Callback
    from pgrun.training.policy_file import SavedPolicy


@dataclass
class RunResult:
    """A finished run: its directory, summary (summary.json) and config."""

    run_dir: Path
    summary: dict[str, Any]
    config: Config

    @property
    def final_eval_return(self) -> float | None:
        return self.summary["final_eval_return"]

    @property
    def best_eval_return(self) -> float | None:
        return self.summary["best_eval_return"]

    def metrics(self) -> list[dict[str, float]]:
        """The logged rows of metrics.jsonl: {"step": env steps, "eval/return": ..., ...}."""
        lines = (self.run_dir / METRICS_FILE).read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


def compose_config(overrides: Sequence[str] = ()) -> tuple[DictConfig, DictConfig]:
    """The job's config and Hydra's node (its run dir resolved, group choices), composed from
    `overrides` as the `pgrun` command composes them. Hydra's global state is left as it was,
    so this works inside another Hydra application too."""
    register_schemas()
    global_hydra = GlobalHydra.instance()
    outer_hydra = global_hydra.hydra if global_hydra.is_initialized() else None
    outer_config = HydraConfig.instance().cfg
    global_hydra.clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3", job_name="pgrun"):
            cfg = compose("config", overrides=hydra_overrides(list(overrides)), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)  # what ${hydra:...} in hydra.run.dir reads
        hydra_config = cfg.hydra
        with read_write(hydra_config), open_dict(hydra_config):
            hydra_config.run.dir = str(hydra_config.run.dir)  # resolved while ${hydra:} can be read
            hydra_config.mode = RunMode.RUN
    finally:
        HydraConfig.instance().cfg = outer_config
        if outer_hydra is not None:  # (initialize_config_dir puts back a copy of its own)
            GlobalHydra.instance().clear()
            GlobalHydra.instance().initialize(outer_hydra)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg, hydra_config


def config_of(overrides: Sequence[str] = ()) -> Config:
    """The validated config `overrides` compose, without running anything."""
    cfg, hydra_config = compose_config(overrides)
    return to_config(cfg, preset=hydra_config.runtime.choices.get("tuned"))


def train(
    overrides: Sequence[str] = (), run_dir: str | Path | None = None, callbacks: Sequence[Callback] = ()
) -> RunResult:
    """Train one run as `pgrun OVERRIDES` would, in `run_dir` (default: hydra.run.dir, under
    outputs/ of the current directory); `callbacks` are called after the built-in ones
    (pgrun.training.callbacks.Callback). Returns the finished run."""
    return run_overrides(overrides, run_dir, callbacks, from_command=False)


def run_overrides(
    overrides: Sequence[str], run_dir: str | Path | None, callbacks: Sequence[Callback], from_command: bool
) -> RunResult:
    """`train`, and the `pgrun` command's single run (`from_command`: see session.execute)."""
    cfg, hydra_config = compose_config(overrides)
    directory = Path(os.path.abspath(run_dir if run_dir is not None else hydra_config.run.dir))
    with read_write(hydra_config), open_dict(hydra_config):
        hydra_config.run.dir = hydra_config.runtime.output_dir = str(directory)  # as Hydra's app records it
    chosen = run_dir is not None or chooses_run_dir(overrides)
    config, summary, directory = new_run(
        cfg, hydra_config, directory, callbacks=callbacks, from_command=from_command, unique=not chosen
    )
    return RunResult(directory, summary, config)


def resume(
    run_dir: str | Path, overrides: Sequence[str] = (), callbacks: Sequence[Callback] = ()
) -> RunResult:
    """Continue the run in `run_dir` from its newest checkpoint, as `pgrun resume=RUN_DIR
    OVERRIDES` would (only total_steps, schedule_steps, device, log.* and checkpoint.* may
    change)."""
    directory = Path(os.path.abspath(run_dir))
    config, summary = resume_run(directory, list(overrides), callbacks, from_command=False)
    if summary is None:  # it had nothing left to do
        summary = json.loads((directory / SUMMARY_FILE).read_text(encoding="utf-8"))
    return RunResult(directory, summary, config)


class Agent:
    """A trained policy with its observation preprocessing, ready to act in its env."""

    def __init__(self, saved: SavedPolicy) -> None:
        self.policy, self.preprocessor = saved.policy, saved.preprocessor
        self.config, self.action_space = saved.config, saved.action_space
        self.observation_space = saved.preprocessor.space

    def act(self, observation: Any, deterministic: bool = True) -> Any:
        """The action for one observation, as the env takes it (or for a batch of them,
        [N, *observation shape] -> [N, ...]; a Dict space's batch is a dict of such arrays);
        deterministic: the distribution's mode (argmax,
        mean), else a sample."""
        import numpy as np
        import torch

        from pgrun.collection.observation_trees import add_batch_axis, pick
        from pgrun.networks.observations import space_leaves

        path, leaf = space_leaves(self.observation_space)[0]  # one observation has its shape
        single = np.shape(pick(observation, path)) == leaf.shape
        with torch.no_grad():
            features = self.preprocessor(add_batch_axis(observation) if single else observation)
            if deterministic:
                action = self.policy.mode(features)
            else:
                action = self.policy.distribution(features).sample()
        actions = self.policy.env_action(action)
        return actions[0] if single else actions


def load(path: str | Path) -> Agent:
    """The agent in a run dir (its policy.pt, or while the run has none its newest checkpoint),
    a policy file or a checkpoint; PolicyFileError (one line) if there is none or it is not a
    pgrun policy file or checkpoint."""
    from pgrun.training.policy_file import policy_path, read_policy

    path = Path(path)
    return Agent(read_policy(policy_path(path)))
