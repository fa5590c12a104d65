"""The training loop: collector -> estimator -> update rule, once per iteration."""

from __future__ import annotations

import random
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pgrun.algos import UPDATE_RULES
from pgrun.checkpoint import POLICY_FILE, save_policy
from pgrun.collector import Batch, Collector, concat_batches
from pgrun.config import ActorCriticConfig, Config, ConfigError, ImportanceConfig, as_plain_dict
from pgrun.envs import ObservationEncoder, make_vector_env
from pgrun.evaluate import Evaluator
from pgrun.logger import Logger
from pgrun.policies import make_policy
from pgrun.value import ValueFunction
from pgrun.weights import estimate_weights

EVAL_SEED_OFFSET = 1_000_000


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message is one line."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def check_choices(config: Config) -> None:
    """Raise ConfigError if the config names an update rule or a device pgrun lacks."""
    if config.algo.update not in UPDATE_RULES:
        allowed = ", ".join(UPDATE_RULES)
        raise ConfigError(f"algo.update={config.algo.update!r} is not allowed: must be one of {allowed}")
    try:
        device = torch.device(config.device)
    except RuntimeError as error:
        raise ConfigError(f"device={config.device!r} is not a torch device: {error}") from error
    if device.type != "cpu":
        raise ConfigError(f"device={config.device!r} is not supported: pgrun runs its networks on cpu")


def episode_scalars(batch: Batch) -> dict[str, float]:
    """Means over the episodes that finished in the batch (NaN, i.e. not logged, if none did)."""
    returns, lengths = batch.episode_returns, batch.episode_lengths
    return {
        "charts/episodic_return": float(np.mean(returns)) if returns else float("nan"),
        "charts/episodic_length": float(np.mean(lengths)) if lengths else float("nan"),
        "charts/episodes": float(len(returns)),
    }


def train(config: Config, run_dir: Path) -> dict[str, Any]:
    """Train one agent as configured, writing logs and the policy to `run_dir`.

    Returns a summary: final and best evaluation returns, the env steps and seconds at
    which an evaluation first reached target_return (None if never), total env steps.
    """
    check_choices(config)
    seed_everything(config.seed)
    torch.set_num_threads(config.torch_threads)
    algo = config.algo
    envs = make_vector_env(config.env, config.env.num_envs)
    eval_envs = make_vector_env(config.env, config.eval.episodes)
    encoder = ObservationEncoder(envs.single_observation_space, normalize=config.env.normalize_obs)
    policy = make_policy(encoder.dim, envs.single_action_space, config.policy)
    value_function = None
    if isinstance(algo, ActorCriticConfig):
        value_function = ValueFunction(encoder.dim, algo.value, config.policy.activation, config.policy.init)
    optimizer = torch.optim.Adam(policy.parameters(), lr=algo.lr, eps=algo.adam_eps)
    update = UPDATE_RULES[algo.update](policy, optimizer, algo)
    collector = Collector(envs, policy, encoder, algo.batch_unit, algo.batch_size, seed=config.seed)
    history: deque[Batch] = deque(maxlen=algo.reuse_batches if isinstance(algo, ImportanceConfig) else 1)
    evaluate = Evaluator(eval_envs, encoder, config.seed + EVAL_SEED_OFFSET, config.eval.deterministic)
    logger = Logger(
        run_dir, as_plain_dict(config), config.total_steps, config.log.console, config.log.tensorboard
    )

    steps, iteration, next_eval = 0, 0, config.eval.every
    evals: list[float] = []
    reached_at_step, reached_at_seconds = None, None
    start = time.perf_counter()
    try:
        while steps < config.total_steps:
            if algo.lr_schedule == "linear":
                optimizer.param_groups[0]["lr"] = algo.lr * (1 - steps / config.total_steps)
            batch = collector.collect()
            history.append(batch)
            sample = concat_batches(history) if len(history) > 1 else batch
            weights = estimate_weights(algo, sample, policy, value_function)
            scalars = weights.info | update(sample, weights.phi)
            if value_function is not None and weights.value_targets is not None:
                scalars |= value_function.fit(sample.flat(sample.obs), sample.flat(weights.value_targets))
            steps += batch.env_steps
            iteration += 1
            if not all(torch.isfinite(p).all() for p in policy.parameters()):
                raise TrainingDiverged(
                    f"training diverged after {steps} env steps: the policy's parameters are not finite "
                    f"(train/loss={scalars['train/loss']}); lower algo.lr or set algo.max_grad_norm. "
                    "No policy was saved"
                )
            scalars |= episode_scalars(batch)
            scalars["time/elapsed"] = time.perf_counter() - start
            scalars["time/sps"] = steps / scalars["time/elapsed"]
            if steps >= next_eval or steps >= config.total_steps:
                while next_eval <= steps:
                    next_eval += config.eval.every
                returns = evaluate(policy)
                scalars["eval/return"], scalars["eval/return_std"] = (
                    float(returns.mean()),
                    float(returns.std()),
                )
                evals.append(scalars["eval/return"])
            logger.log(steps, scalars)
            logger.iteration(iteration, steps, scalars)
            target = config.target_return
            if (
                reached_at_step is None
                and target is not None
                and scalars.get("eval/return", -np.inf) >= target
            ):
                reached_at_step, reached_at_seconds = steps, time.perf_counter() - start
                if config.stop_at_target:
                    break
    finally:
        logger.close()
        envs.close()
        eval_envs.close()
    if config.log.save_policy:
        value_net = value_function.net if value_function is not None else None
        save_policy(run_dir / POLICY_FILE, policy, as_plain_dict(config), encoder, value_net)
    return {
        "final_eval_return": evals[-1] if evals else None,
        "best_eval_return": max(evals) if evals else None,
        "target_reached_at_step": reached_at_step,
        "target_reached_at_seconds": reached_at_seconds,
        "env_steps": steps,
        "seconds": time.perf_counter() - start,
    }
