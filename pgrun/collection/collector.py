"""The collector: runs the policy in a vector env and records one batch (pgrun.batch).

Termination (the MDP ended: no future reward) and truncation
(a time limit or the batch edge cut the episode: the future was not observed) are kept
apart; the collector records the true next observation of every step, including the
last observation of an auto-reset episode, so that value-based estimators can
bootstrap exactly where an episode was truncated.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import VectorEnv
from torch import Tensor

from pgrun.batch import Batch
from pgrun.collection.atari import LifeLoss
from pgrun.collection.early_ends import (
    STEP_OVERHEAD_BYTES,
    BatchTooLong,
    CollectionStopped,
    EnvFault,
    batch_memory_limit,
)
from pgrun.collection.env_state import episode_records, restore
from pgrun.collection.envs import next_step_autoreset
from pgrun.collection.normalization import ObservationPreprocessor, RewardScaler
from pgrun.collection.observation_trees import all_finite, copied, replace_rows, to_arrays, to_tensors
from pgrun.errors import first_line
from pgrun.networks.layers import device_of
from pgrun.networks.observations import space_leaves
from pgrun.networks.policy import Policy


class Collector:
    """Steps a vector env with a policy and returns batches of `size` steps or episodes.

    unit == "steps": each batch holds ceil(size / N) steps of every env copy; envs keep
    their state across batches, and an episode running at the batch edge is marked
    truncated in this batch and continues in the next one.
    unit == "episodes": every env copy is reset and runs its share of `size` complete
    episodes (a fixed count per copy, so short episodes are not over-represented); steps a
    copy takes after its share are padding (valid == False) and not counted in `env_steps`.

    A vector env that resets a copy in the step after its episode ended (a native one,
    AutoresetMode.NEXT_STEP) gives that step no transition: the action is ignored, the
    observation returned starts the next episode. Such a reset step is recorded as padding
    (invalid, closed, no reward; counted as an env step, as every call is), and its
    observation (the previous episode's last) is not folded into the observation statistics.
    """

    def __init__(
        self,
        envs: VectorEnv,
        policy: Policy,
        preprocessor: ObservationPreprocessor,
        unit: str,
        size: int,
        seed: int,
        reward_scaler: RewardScaler | None = None,
        info_keys: Sequence[str] = (),
        keep_features: bool = False,
        life_loss: LifeLoss | None = None,
        value_head: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.envs, self.policy, self.preprocessor = envs, policy, preprocessor
        self.device = device_of(policy)
        """where the policy acts: observations go there, actions come back (pgrun.training.device)"""
        self.reward_scaler = reward_scaler
        self.value_head = value_head
        """V(s) from the policy's encoder output, where V shares that encoder: the pass that
        samples a_t then records V(s_t) too (Batch.values), and the estimator needs none"""
        self.life_loss = life_loss
        """a lost life is terminal for the learner (env.atari.episodic_life; the info holds "lives")"""
        self.unit, self.size = unit, size
        self.num_envs = envs.num_envs
        self.obs = copied(envs.reset(seed=seed)[0])
        envs.action_space.seed(seed)
        self.next_step_autoreset = next_step_autoreset(envs)
        space = envs.single_observation_space
        self.obs_is_array = isinstance(space, gym.spaces.Box)
        """observations come as one array (else as dicts or tuples of arrays, or integers)"""
        self.float_obs = any(
            leaf.dtype is not None and np.issubdtype(leaf.dtype, np.floating)
            for _, leaf in space_leaves(space)
        )
        self.info_keys = tuple(info_keys)
        self.keep_features = keep_features and preprocessor.statistics is not None
        """record each s_t's features before normalization (Batch.features)"""
        self.resetting = np.zeros(self.num_envs, dtype=bool)
        """the copies whose next envs.step only resets them (NEXT_STEP autoreset)"""
        self.running_return = np.zeros(self.num_envs)
        self.running_length = np.zeros(self.num_envs, dtype=np.int64)
        self.env_seconds = 0.0
        """seconds the last `collect` spent inside envs.step"""
        self.stop_requested: Callable[[], bool] = lambda: False
        """asked before every env step; True stops the batch (CollectionStopped)"""

    def collect(self, step_limit: int | None = None) -> Batch:
        """One batch. An episode batch whose episodes have not all ended after `step_limit`
        env steps, or whose steps would fill half this machine's memory, raises BatchTooLong
        (an env whose episodes never end). A stop request raises CollectionStopped."""
        if self.unit == "episodes":
            self.obs = copied(self.envs.reset()[0])
            self.resetting[:] = False
            self.running_return[:], self.running_length[:] = 0.0, 0
            if self.reward_scaler is not None:
                self.reward_scaler.restart()
            quota = np.full(self.num_envs, self.size // self.num_envs)
            quota[: self.size % self.num_envs] += 1
            max_steps = None
        else:
            quota = None
            max_steps = -(-self.size // self.num_envs)
        every_copy = np.ones(self.num_envs, dtype=bool)
        episodes_done = np.zeros(self.num_envs, dtype=np.int64)
        # per step: the policy's tensors, and the env's arrays (made tensors once, at the end)
        steps: dict[str, list[Tensor]] = {"obs": [], "actions": [], "outputs": []}
        if self.value_head is not None:
            steps["values"] = []
        arrays: dict[str, list[np.ndarray]] = {
            "next_obs": [], "rewards": [], "terminated": [], "truncated": [], "valid": []
        }  # fmt: skip
        if self.keep_features:
            arrays["features"] = []
        episode_returns: list[float] = []
        episode_lengths: list[int] = []
        episode_info: dict[str, list[float]] = {key: [] for key in self.info_keys}
        env_steps = 0
        step_bytes, memory_limit = None, batch_memory_limit()
        self.env_seconds = 0.0
        with torch.no_grad():
            while True:
                if self.stop_requested():
                    raise CollectionStopped
                if quota is not None:
                    valid = episodes_done < quota
                    if not valid.any():
                        break
                    cost = int(valid.sum())
                    if step_limit is not None and env_steps >= step_limit:
                        raise BatchTooLong(env_steps, f"the limit of {step_limit:,}")
                    if step_bytes is not None and len(steps["obs"]) * step_bytes > memory_limit:
                        memory = f"about {memory_limit / 2**30:.1f} GB, half this machine's memory"
                        raise BatchTooLong(env_steps, memory)
                else:
                    if len(steps["obs"]) == max_steps:
                        break
                    valid = every_copy  # (never changed in place: the lines below make new arrays)
                    cost = self.num_envs
                # The statistics fold in s_t, then encode s_t and (below) s_{t+1} alike, so that
                # V(s_t) and the bootstrap V(s_{t+1}) see one normalization.
                resetting = self.resetting
                stepping = ~resetting if resetting.any() else None  # the copies that step (None: all)
                if stepping is not None:
                    valid = valid & stepping
                obs = self.preprocessor.update_and_encode(self.obs, fold=stepping)
                features = self.policy.encoder(obs.to(self.device))
                action, output = self.policy.sample_from_features(features)
                if self.value_head is not None:
                    steps["values"].append(self.value_head(features))
                next_obs, reward, terminated, truncated, info = self.step(action, env_steps)
                env_steps += cost
                ended = terminated | truncated
                any_ended = ended.any()  # most steps end no episode: their bookkeeping is skipped
                learned_reward = (
                    reward
                    if self.reward_scaler is None
                    else self.reward_scaler(reward, ended, active=stepping)
                )
                if self.life_loss is not None:
                    terminated = terminated | self.life_loss(info, ended)
                true_next_obs = next_obs
                if self.next_step_autoreset:  # the copies that ended return their last observation now
                    self.resetting = ended
                    truncated = truncated | resetting  # a reset step is a closed segment of its own
                elif any_ended:
                    rows = np.flatnonzero(ended)
                    true_next_obs = replace_rows(next_obs, rows, [info["final_obs"][i] for i in rows])
                self.running_return += reward
                self.running_length += 1 if stepping is None else stepping
                if any_ended:
                    finished = ended & valid
                    episode_returns += self.running_return[finished].tolist()
                    episode_lengths += self.running_length[finished].tolist()
                    if self.info_keys:
                        self.record_info(episode_info, info, finished)
                    self.running_return[ended] = 0.0
                    self.running_length[ended] = 0
                    if quota is not None:
                        episodes_done += ended
                steps["obs"].append(obs)
                steps["actions"].append(action)
                steps["outputs"].append(output)
                arrays["next_obs"].append(self.preprocessor.encode_array(true_next_obs))
                arrays["rewards"].append(learned_reward)
                arrays["terminated"].append(terminated)
                arrays["truncated"].append(truncated)
                arrays["valid"].append(valid)
                if self.keep_features:
                    arrays["features"].append(self.preprocessor.features(self.obs).astype(np.float32))
                if step_bytes is None:
                    step_bytes = STEP_OVERHEAD_BYTES + sum(
                        np.asarray(values[-1]).nbytes for values in [*steps.values(), *arrays.values()]
                    )
                self.obs = next_obs
            fields = {key: torch.stack(values) for key, values in steps.items()}
            # log pi_old(a_t|s_t), from the network outputs that sampled a_t, for the batch at once
            fields["params"] = self.policy.params_from_output(fields.pop("outputs"))
            fields["logp"] = self.policy.log_prob_from(fields["params"], fields["actions"])
        fields |= {key: torch.from_numpy(np.stack(values)) for key, values in arrays.items()}
        fields["rewards"] = fields["rewards"].float()
        # In steps mode the batch edge cuts every still-running episode.
        fields["truncated"][-1] |= ~fields["terminated"][-1]
        # Padding steps form segments of their own, closed before the next valid step.
        fields["rewards"] = fields["rewards"] * fields["valid"]
        return Batch(
            **fields,
            episode_returns=episode_returns,
            episode_lengths=episode_lengths,
            episode_info=episode_info,
            env_steps=env_steps,
        )

    def record_info(self, episode_info: dict[str, list[float]], info: dict, finished: np.ndarray) -> None:
        """Append the log.info_keys values of the episodes that `finished` at this step: from
        the final step's info (gymnasium's final_info; a native vector env's own info), where
        the env reported the key."""
        final = info if self.next_step_autoreset else info.get("final_info", {})
        for key in self.info_keys:
            if key in final:
                reported = finished & final.get(f"_{key}", finished)
                episode_info[key] += np.asarray(final[key])[reported].astype(float).tolist()

    def step(self, action: Tensor, env_steps: int) -> tuple[Any, ...]:
        """envs.step, with an env's exception or a non-finite reward or observation turned
        into EnvFault: the env's fault, which no learning rate will mend. The arrays returned
        are the collector's own copies: the batch keeps them across steps."""
        env_action = self.policy.env_action(action)
        start = time.perf_counter()
        try:
            next_obs, reward, terminated, truncated, info = self.envs.step(env_action)
        except Exception as error:
            raise EnvFault(
                f"the env raised {type(error).__name__}: {first_line(error)}", env_steps
            ) from error
        self.env_seconds += time.perf_counter() - start
        if not np.isfinite(reward).all():
            bad = reward[~np.isfinite(reward)][0]
            raise EnvFault(f"the env returned a non-finite reward ({bad})", env_steps)
        if self.float_obs and not (
            np.isfinite(next_obs).all() if self.obs_is_array else all_finite(next_obs)
        ):
            raise EnvFault("the env returned a non-finite observation", env_steps)
        return copied(next_obs), *map(copied, (reward, terminated, truncated)), info

    def state_dict(self) -> dict[str, Any]:
        """Where the envs are: their current observations, the returns and lengths of the
        episodes under way, and each copy's episode record (pgrun.collection.env_state)."""
        return {
            "obs": to_tensors(self.obs),
            "running_return": torch.as_tensor(self.running_return).clone(),
            "running_length": torch.as_tensor(self.running_length).clone(),
            "resetting": torch.as_tensor(self.resetting).clone(),
            "envs": episode_records(self.envs),
            "reward_scaler": self.reward_scaler.state_dict() if self.reward_scaler is not None else {},
            "life_loss": self.life_loss.state_dict() if self.life_loss is not None else {},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replay each copy's episode so the envs are where `state_dict` found them."""
        self.obs = to_arrays(state["obs"])
        restore(self.envs, state["envs"], self.obs)
        self.running_return = state["running_return"].numpy().copy()
        self.running_length = state["running_length"].numpy().copy()
        self.resetting = state["resetting"].numpy().copy()
        if self.reward_scaler is not None:
            self.reward_scaler.load_state_dict(state["reward_scaler"])
        if self.life_loss is not None:
            self.life_loss.load_state_dict(state.get("life_loss", {}))
