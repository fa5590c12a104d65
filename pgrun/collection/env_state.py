"""Saving and restoring the state of a vector env by replaying each copy's current episode.

gymnasium has no API to read or write an env's state (CartPole's cart, MuJoCo's qpos,
Box2D's bodies), but it asks every env to draw its randomness from `np_random`. So an
episode is fully determined by how it started (the reset seed, or the state of
`np_random` before an unseeded reset; for an env with a generator of its own, such as the
ALE's, a wrapper's `outside_rng_state` too) and the actions taken since. `EpisodeRecorder`
keeps exactly that for one copy, as plain values and tensors that a checkpoint can hold;
`restore` resets each copy the same way and steps it through the same actions, which
brings the env, its wrappers (time limits) and its random generator to where they were.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv, VectorEnv

from pgrun.collection.observation_trees import stacked_equal
from pgrun.errors import EnvNotReplayable


class EpisodeRecorder(gym.Wrapper):
    """Records how the current episode started and the actions taken since (outermost wrapper).

    Its steps pass on only the info entries named in `info_keys` (log.info_keys): a vector env
    merges every copy's info into arrays at every step (HalfCheetah's six entries: ~13 us a
    step, a tenth of what collecting a step costs with one copy). The vector env still adds
    its own final_obs when a copy's episode ends.
    """

    def __init__(self, env: gym.Env, info_keys: Sequence[str] = ()) -> None:
        super().__init__(env)
        self.info_keys = tuple(info_keys)
        self.episode_start: dict[str, Any] = {"seed": None, "rng": None}
        self.episode_actions: list[np.ndarray] = []
        self.pending_record: dict[str, Any] | None = None
        self.outside_rng = env.has_wrapper_attr("outside_rng_state")
        """a wrapper reads and sets randomness the env keeps outside np_random (the ALE's)"""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        rng = None if seed is not None else copy.deepcopy(self.env.unwrapped.np_random.bit_generator.state)
        self.episode_start = {"seed": seed, "rng": rng}
        if seed is None and self.outside_rng:
            self.episode_start["outside_rng"] = self.env.get_wrapper_attr("outside_rng_state")()
        self.episode_actions = []
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> Any:
        self.episode_actions.append(np.array(action, copy=True))
        obs, reward, terminated, truncated, info = self.env.step(action)
        if not self.info_keys:
            return obs, reward, terminated, truncated, {}
        return obs, reward, terminated, truncated, {key: info[key] for key in self.info_keys if key in info}

    def episode_record(self) -> dict[str, Any]:
        """The episode so far: {"seed", "rng", "actions" (tensor [steps, *action shape])}."""
        actions = (
            torch.as_tensor(np.stack(self.episode_actions))
            if self.episode_actions
            else torch.empty(0, *self.action_space.shape)
        )
        return {**copy.deepcopy(self.episode_start), "actions": actions}

    def replay_pending_record(self) -> Any:
        """Reset and step as `pending_record` says (set through the vector env's set_attr);
        return the observation reached."""
        record, self.pending_record = self.pending_record, None
        if record["seed"] is not None:
            obs, _ = self.reset(seed=record["seed"])
        else:
            self.env.unwrapped.np_random.bit_generator.state = record["rng"]
            if "outside_rng" in record:
                self.env.get_wrapper_attr("set_outside_rng_state")(record["outside_rng"])
            obs, _ = self.reset()
        for action in record["actions"].numpy():
            obs, *_ = self.step(action)
        return obs


def episode_records(envs: VectorEnv) -> list[dict[str, Any]] | dict[str, Any]:
    """One record per env copy (see EpisodeRecorder.episode_record); for a natively
    vectorized env, a snapshot of its state instead (`native_state`)."""
    if is_native(envs):
        return native_state(envs)
    return list(envs.call("episode_record"))


def restore(envs: VectorEnv, records: list[dict[str, Any]] | dict[str, Any], expected_obs: Any) -> None:
    """Bring every copy back to its recorded episode; raise EnvNotReplayable unless each
    reaches the observation it had when the records were taken (`expected_obs`, [N, ...])."""
    if is_native(envs):
        load_native_state(envs, records)
        return
    envs.set_attr("pending_record", records)
    if not stacked_equal(envs.call("replay_pending_record"), expected_obs):
        raise EnvNotReplayable(
            "the env did not come back to its saved state when its episodes were replayed: it has "
            "randomness outside env.np_random or state a reset does not clear, so this run cannot "
            "be resumed exactly"
        )


def is_native(envs: VectorEnv) -> bool:
    """A natively vectorized env (gymnasium's vector_entry_point), not copies of a gym.Env."""
    return not isinstance(envs, (SyncVectorEnv, AsyncVectorEnv))


def native_state(envs: VectorEnv) -> dict[str, Any]:
    """A natively vectorized env's state: its numpy array attributes (CartPole's `state`,
    `steps`, `prev_done`) and its random generator. gymnasium's vector implementations keep
    all their state there, so setting these back restores the env exactly."""
    env = envs.unwrapped
    arrays = {
        name: torch.as_tensor(value).clone()
        for name, value in vars(env).items()
        if isinstance(value, np.ndarray)
    }
    return {"arrays": arrays, "rng": copy.deepcopy(env.np_random.bit_generator.state)}


def load_native_state(envs: VectorEnv, state: dict[str, Any]) -> None:
    if not isinstance(state, dict) or "arrays" not in state:
        raise EnvNotReplayable("the checkpoint recorded env copies, not a natively vectorized env")
    env = envs.unwrapped
    for name, value in state["arrays"].items():
        setattr(env, name, value.numpy().copy())
    env.np_random.bit_generator.state = state["rng"]
