"""The training loop: collector -> estimator -> update rule, once per iteration."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pgrun.advantages import make_estimator
from pgrun.algos import make_update_rule
from pgrun.checkpoint import POLICY_FILE, save_policy
from pgrun.collector import Collector
from pgrun.config import Config, as_plain_dict
from pgrun.envs import ObservationEncoder, make_vector_env
from pgrun.evaluate import Evaluator
from pgrun.logger import Logger
from pgrun.policies import make_policy
from pgrun.value import value_networks

EVAL_SEED_OFFSET = 1_000_000


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message is one line."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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


def train(config: Config, run_dir: Path) -> dict[str, Any]:
    """Train one agent as configured, writing logs and the policy to `run_dir`.

    Returns a summary: final and best evaluation returns, the env steps and seconds at
    which an evaluation first reached target_return (None if never), total env steps.
    """
    seed_everything(config.seed)
    torch.set_num_threads(config.torch_threads)
    envs = make_vector_env(config.env, config.env.num_envs)
    eval_envs = make_vector_env(config.env, config.eval.episodes)
    encoder = ObservationEncoder(envs.single_observation_space, normalize=config.env.normalize_obs)
    policy = make_policy(encoder.dim, envs.single_action_space, config.policy)
    rule = make_update_rule(config.algo, policy, value_networks(encoder.dim, config.policy))
    estimate = make_estimator(config.algo, policy)
    collector = Collector(
        envs, policy, encoder, config.algo.batch_unit, config.algo.batch_size, seed=config.seed
    )
    evaluate = Evaluator(eval_envs, encoder, config.seed + EVAL_SEED_OFFSET, config.eval.deterministic)
    logger = Logger(
        run_dir, as_plain_dict(config), config.total_steps, config.log.console, config.log.tensorboard
    )

    steps, iteration, next_eval, next_log = 0, 0, config.eval.every, config.log.every
    episodes = EpisodeStats()
    evals: list[float] = []
    reached_at_step, reached_at_seconds = None, None
    start = time.perf_counter()
    try:
        while steps < config.total_steps:
            batch = collector.collect()
            advantages = estimate(batch, rule.critic)
            scalars = advantages.info | rule.update(advantages, progress=steps / config.total_steps)
            steps += batch.env_steps
            iteration += 1
            episodes.add(batch.episode_returns, batch.episode_lengths)
            if not all(torch.isfinite(p).all() for p in policy.parameters()):
                raise TrainingDiverged(
                    f"training diverged after {steps} env steps: the policy's parameters are not finite "
                    f"(train/loss={scalars['train/loss']}); lower the learning rate or clip gradients. "
                    "No policy was saved"
                )
            last = steps >= config.total_steps
            evaluated = steps >= next_eval or last
            if evaluated:
                while next_eval <= steps:
                    next_eval += config.eval.every
                returns = evaluate(policy)
                scalars["eval/return"], scalars["eval/return_std"] = (
                    float(returns.mean()),
                    float(returns.std()),
                )
                evals.append(scalars["eval/return"])
            if evaluated or steps >= next_log:
                while next_log <= steps:
                    next_log += config.log.every
                scalars |= episodes.scalars()
                scalars["time/elapsed"] = time.perf_counter() - start
                scalars["time/sps"] = steps / scalars["time/elapsed"]
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
        save_policy(
            run_dir / POLICY_FILE,
            policy,
            as_plain_dict(config),
            encoder,
            envs.single_action_space,
            rule.critic,
        )
    return {
        "final_eval_return": evals[-1] if evals else None,
        "best_eval_return": max(evals) if evals else None,
        "target_reached_at_step": reached_at_step,
        "target_reached_at_seconds": reached_at_seconds,
        "env_steps": steps,
        "seconds": time.perf_counter() - start,
    }
