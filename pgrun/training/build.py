"""The builder: from a validated config to the parts of a run, made in a fixed order.

The order is part of the run's reproducibility: the global generators are seeded first,
then every part that draws from them is made in the same sequence (the policy's and the
value network's initial weights, the envs' first reset).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
from gymnasium.vector import VectorEnv
from torch import Tensor

from pgrun.algorithms import make_update_rule
from pgrun.algorithms.rule import UpdateRule
from pgrun.collection.atari import LifeLoss
from pgrun.collection.collector import Collector
from pgrun.collection.envs import episode_step_limit, make_vector_env
from pgrun.collection.evaluator import EVAL_SEED_OFFSET, Evaluator
from pgrun.collection.normalization import ObservationPreprocessor, RewardScaler
from pgrun.config import Config, EnvConfig, is_atari_id
from pgrun.estimation.estimators import REUSES_BATCHES, Estimator, make_estimator
from pgrun.networks.policy import Policy, make_policy
from pgrun.networks.value import EncodedValueNetwork, value_networks
from pgrun.tracking.video import check_rendering, require_moviepy
from pgrun.training.device import compile_networks, resolve_device
from pgrun.training.memory import keep_freed_memory
from pgrun.training.rng import seed_everything


@dataclass
class RunParts:
    """What one iteration is made of: collector -> estimator -> update rule, and evaluation."""

    envs: VectorEnv
    eval_envs: VectorEnv
    preprocessor: ObservationPreprocessor
    policy: Policy
    rule: UpdateRule
    estimate: Estimator
    collector: Collector
    evaluate: Evaluator
    device: torch.device
    """where the networks learn (config key device); batches move there once per iteration"""

    def close(self) -> None:
        """Shut the envs (and async workers) down: both sets, even if closing the first fails."""
        try:
            self.envs.close()
        finally:
            self.eval_envs.close()


def warn_if_no_time_limit(config: Config) -> None:
    limit, guard = episode_step_limit(config.env)
    if guard:
        print(
            f"pgrun: warning: env {config.env.id!r} has no time limit; episodes are truncated at "
            f"{limit:,} steps (set env.max_episode_steps to choose)",
            file=sys.stderr,
        )


def episodic_life(config: EnvConfig) -> bool:
    """A lost life ends the learner's episode (env.atari.episodic_life, for an ALE game)."""
    return config.atari.episodic_life and is_atari_id(config.id)


def build_parts(config: Config) -> RunParts:
    """Seed the generators, make the envs, the networks, the estimator, the update rule, the
    collector and the evaluator; a failure closes the envs made so far."""
    device = resolve_device(config.device)
    warn_if_no_time_limit(config)
    seed_everything(config.seed)
    torch.set_num_threads(config.torch_threads)
    keep_freed_memory()
    if config.eval.video:
        require_moviepy("eval.video=true")
        check_rendering(config.env)
    lives = ["lives"] if episodic_life(config.env) else []
    envs = make_vector_env(config.env, config.env.num_envs, info_keys=[*config.log.info_keys, *lives])
    eval_envs = make_vector_env(config.env, config.eval.episodes)
    try:
        return build_learners(config, envs, eval_envs, device)
    except BaseException:
        envs.close()
        eval_envs.close()
        raise


def build_learners(config: Config, envs: VectorEnv, eval_envs: VectorEnv, device: torch.device) -> RunParts:
    observations = envs.single_observation_space
    preprocessor = ObservationPreprocessor(
        observations, normalize=config.env.normalize_obs, clip=config.env.clip_obs
    )
    if config.env.normalize_obs and preprocessor.layout.images:
        print(
            "pgrun: env.normalize_obs standardizes the vector entries only; images are scaled "
            "to [0, 1] inside the network",
            file=sys.stderr,
        )
    policy = make_policy(preprocessor.layout, envs.single_action_space, config.policy).to(device)
    rule = make_update_rule(config.algo, policy, value_networks(preprocessor.layout, config.policy, device))
    if config.compile:
        compile_networks(policy, rule.critic, device)
    reencode = preprocessor.reencode if preprocessor.statistics is not None else None
    estimate = make_estimator(config.algo, policy, reencode)
    env = config.env
    reward_scaler = (
        RewardScaler(env.num_envs, config.algo.gamma, env.clip_reward, env.sign_reward, env.normalize_reward)
        if env.normalize_reward or env.sign_reward
        else None
    )
    collector = Collector(
        envs,
        policy,
        preprocessor,
        config.algo.batch_unit,
        config.algo.batch_size,
        seed=config.seed,
        reward_scaler=reward_scaler,
        info_keys=config.log.info_keys,
        keep_features=config.algo.estimator in REUSES_BATCHES,
        life_loss=LifeLoss() if episodic_life(config.env) else None,
        value_head=shared_value_head(rule.critic, policy),
    )
    return RunParts(
        envs=envs,
        eval_envs=eval_envs,
        preprocessor=preprocessor,
        policy=policy,
        rule=rule,
        estimate=estimate,
        collector=collector,
        evaluate=Evaluator(
            eval_envs,
            preprocessor,
            config.seed + EVAL_SEED_OFFSET,
            config.eval.deterministic,
            fresh_starts=config.eval.starts == "fresh",
        ),
        device=device,
    )


def shared_value_head(critic: torch.nn.Module | None, policy: Policy) -> Callable[[Tensor], Tensor] | None:
    """V from the policy's encoder features, if the rule's critic is a head on that encoder
    (then the collection's one pass gives pi(.|s_t) and V(s_t)); else None."""
    if isinstance(critic, EncodedValueNetwork) and critic.encoder is policy.encoder:
        return critic.from_features
    return None
