"""The training loop: collector -> estimator -> update rule, once per iteration."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pgrun.algos import UPDATE_RULES
from pgrun.checkpoint import POLICY_FILE, save_policy
from pgrun.collector import Collector
from pgrun.config import Config, ConfigError, as_plain_dict
from pgrun.envs import ObservationEncoder, make_vector_env
from pgrun.estimators import ESTIMATORS, normalize
from pgrun.evaluate import Evaluator
from pgrun.logger import Logger
from pgrun.policies import make_policy

EVAL_SEED_OFFSET = 1_000_000


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def check_choices(config: Config) -> None:
    """Raise ConfigError if the config names an estimator, update rule or device pgrun lacks."""
    for key, value, known in [
        ("algo.estimator", config.algo.estimator, ESTIMATORS),
        ("algo.update", config.algo.update, UPDATE_RULES),
    ]:
        if value not in known:
            raise ConfigError(f"{key}={value!r} is not allowed: must be one of {', '.join(known)}")
    try:
        device = torch.device(config.device)
    except RuntimeError as error:
        raise ConfigError(f"device={config.device!r} is not a torch device: {error}") from error
    if device.type != "cpu":
        raise ConfigError(f"device={config.device!r} is not available here: pgrun runs on cpu")


def iteration_scalars(episode_returns: list[float], episode_lengths: list[int]) -> dict[str, float]:
    return {
        "charts/episodic_return": float(np.mean(episode_returns)) if episode_returns else float("nan"),
        "charts/episodic_length": float(np.mean(episode_lengths)) if episode_lengths else float("nan"),
        "charts/episodes": float(len(episode_returns)),
    }


def train(config: Config, run_dir: Path) -> dict[str, Any]:
    """Train one agent as configured, writing logs and the policy to `run_dir`.

    Returns a summary: final and best evaluation returns, the env steps and seconds at
    which stop_return was first reached (None if never), and total env steps.
    """
    check_choices(config)
    seed_everything(config.seed)
    torch.set_num_threads(config.torch_threads)
    algo = config.algo
    envs = make_vector_env(config.env, config.env.num_envs)
    eval_envs = make_vector_env(config.env, config.eval.episodes)
    encoder = ObservationEncoder(envs.single_observation_space)
    policy = make_policy(encoder.dim, envs.single_action_space, config.policy)
    optimizer = torch.optim.Adam(policy.parameters(), lr=algo.lr, eps=algo.adam_eps)
    update = UPDATE_RULES[algo.update](policy, optimizer, algo)
    estimate = ESTIMATORS[algo.estimator]
    collector = Collector(envs, policy, encoder, algo.batch_unit, algo.batch_size, seed=config.seed)
    evaluate = Evaluator(eval_envs, encoder, config.seed + EVAL_SEED_OFFSET, config.eval.deterministic)
    logger = Logger(
        run_dir, as_plain_dict(config), config.total_steps, config.log.console, config.log.tensorboard
    )

    steps, iteration, next_eval = 0, 0, config.eval.every
    start = time.perf_counter()
    evals: list[float] = []
    solved_at_step, solved_at_seconds = None, None
    try:
        while steps < config.total_steps:
            if algo.lr_schedule == "linear":
                optimizer.param_groups[0]["lr"] = algo.lr * (1 - steps / config.total_steps)
            batch = collector.collect()
            weights = estimate(batch, algo.gamma)
            if algo.normalize_weights:
                weights = normalize(weights, batch.valid)
            scalars = update(batch, weights)
            steps += batch.env_steps
            iteration += 1
            scalars |= iteration_scalars(batch.episode_returns, batch.episode_lengths)
            scalars["time/sps"] = steps / (time.perf_counter() - start)
            scalars["time/iteration"] = float(iteration)
            if steps >= next_eval or steps >= config.total_steps:
                while next_eval <= steps:
                    next_eval += config.eval.every
                returns = evaluate(policy)
                scalars["eval/return"] = float(returns.mean())
                scalars["eval/return_std"] = float(returns.std())
                evals.append(scalars["eval/return"])
            logger.log(steps, scalars)
            logger.iteration(iteration, steps, scalars)
            eval_return = scalars.get("eval/return", -np.inf)
            if config.stop_return is not None and eval_return >= config.stop_return:
                solved_at_step, solved_at_seconds = steps, time.perf_counter() - start
                break
    finally:
        logger.close()
        envs.close()
        eval_envs.close()
    if config.log.save_policy:
        save_policy(run_dir / POLICY_FILE, policy, as_plain_dict(config), encoder.dim)
    return {
        "final_eval_return": evals[-1] if evals else None,
        "best_eval_return": max(evals) if evals else None,
        "solved_at_step": solved_at_step,
        "solved_at_seconds": solved_at_seconds,
        "env_steps": steps,
        "seconds": time.perf_counter() - start,
    }
