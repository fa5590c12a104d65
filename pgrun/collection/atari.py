"""ALE games (Atari 2600; pip install 'pgrun[atari]'): the standard preprocessing, made of
gymnasium's own wrappers, and the two things pgrun adds around them.

Each env copy is, innermost first:
    gymnasium.make(id, frameskip=1)   the game, one emulator frame per step
    ALERandomness                     saves and restores the ALE's own random state (sticky actions)
    AtariPreprocessing                no-op starts, frame skip with max-pooling, 84x84 grayscale
    FireOnReset                       with env.atari.fire_on_reset only
    FrameStackObservation             the last env.atari.frame_stack frames: [4, 84, 84] uint8
    TimeLimit                         env.max_episode_steps, in agent steps
Rewards reach the collector as the game scores them: the learner's view (env.sign_reward,
env.atari.episodic_life through `LifeLoss`) is the collector's business, so logged
returns are game scores and episodes are whole games.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from pgrun.config import AtariConfig, ConfigError

FIRE = "FIRE"


def is_ale_env(env_id: str) -> bool:
    """The registered id makes an ALE game (ale_py's AtariEnv)."""
    return str(gym.spec(env_id).entry_point).startswith("ale_py")


def atari_make_kwargs(env_id: str, kwargs: dict[str, Any], config: AtariConfig) -> dict[str, Any]:
    """gymnasium.make's keyword arguments for an ALE game: frameskip=1 (AtariPreprocessing skips
    frames) and no time limit of gymnasium's (it would count emulator frames; pgrun's counts
    agent steps). A frameskip of the user's beside env.atari.frame_skip > 1 is refused."""
    frameskip = kwargs.get("frameskip", 1)
    if frameskip != 1 and config.frame_skip > 1:
        raise ConfigError(
            f"env.kwargs.frameskip={frameskip!r} is not allowed with "
            f"env.atari.frame_skip={config.frame_skip}: the preprocessing skips frames itself "
            "(set env.atari.frame_skip=1 to let the game skip them)"
        )
    return {**kwargs, "frameskip": frameskip, "max_episode_steps": None}


def atari_wrappers(config: AtariConfig, max_episode_steps: int) -> list[Callable[[gym.Env], gym.Env]]:
    """The wrappers of env.atari around a game made by `atari_make_kwargs`, innermost first."""
    wrappers: list[Callable[[gym.Env], gym.Env]] = [
        ALERandomness,
        lambda env: gym.wrappers.AtariPreprocessing(
            env,
            noop_max=config.noop_max,
            frame_skip=config.frame_skip,
            screen_size=config.screen_size,
            grayscale_obs=config.grayscale,
        ),
    ]
    if config.fire_on_reset:
        wrappers.append(FireOnReset)
    if config.frame_stack > 1:
        wrappers.append(lambda env: gym.wrappers.FrameStackObservation(env, config.frame_stack))
    wrappers.append(lambda env: gym.wrappers.TimeLimit(env, max_episode_steps))
    return wrappers


class ALERandomness(gym.Wrapper):
    """Lets pgrun.collection.env_state replay an ALE episode exactly.

    The ALE draws its sticky actions from a generator of its own, reseeded only by a seeded
    reset (which reloads the game: 0.2 s). `outside_rng_state` returns that generator's
    state (with the emulator's, 14 kB) as bytes, and `set_outside_rng_state` restores it, so
    that an unseeded reset followed by the recorded actions replays the same episode.
    """

    def outside_rng_state(self) -> torch.Tensor:
        state = self.env.unwrapped.ale.cloneState(include_rng=True)
        return torch.frombuffer(bytearray(pickle.dumps(state)), dtype=torch.uint8)

    def set_outside_rng_state(self, state: torch.Tensor) -> None:
        self.env.unwrapped.ale.restoreState(pickle.loads(state.numpy().tobytes()))


class FireOnReset(gym.Wrapper):
    """Presses FIRE at the start of every game and after every lost life, for the games that
    wait for it (Breakout); the FIRE steps' rewards join the step that led to them."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        meanings = env.unwrapped.get_action_meanings()
        if FIRE not in meanings:
            raise ConfigError(
                f"env.atari.fire_on_reset=true needs a FIRE action; this game's are {', '.join(meanings)}"
            )
        self.fire = meanings.index(FIRE)
        self.lives = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        self.env.reset(seed=seed, options=options)
        obs, _, terminated, truncated, info = self.env.step(self.fire)
        if terminated or truncated:  # (a game over at the first FIRE: start again, unseeded)
            obs, info = self.env.reset()
        self.lives = self.env.unwrapped.ale.lives()
        return obs, info

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = self.env.unwrapped.ale.lives()
        if lives < self.lives and not (terminated or truncated):
            obs, fire_reward, terminated, truncated, info = self.env.step(self.fire)
            reward += fire_reward
        self.lives = self.env.unwrapped.ale.lives()
        return obs, reward, terminated, truncated, info


class LifeLoss:
    """env.atari.episodic_life: which env copies lost a life at a step while their game goes
    on (ALE's info["lives"] fell); the collector makes those steps terminal for the learner."""

    def __init__(self) -> None:
        self.lives: np.ndarray | None = None
        """each copy's lives after the last step (None: not seen yet)"""

    def __call__(self, info: dict[str, Any], ended: np.ndarray) -> np.ndarray:
        """The copies that lost a life at this step; `ended`: those whose game ended at it (the
        info then holds the next game's lives)."""
        lives = np.asarray(info["lives"])
        lost = np.zeros(len(lives), dtype=bool) if self.lives is None else (lives < self.lives) & ~ended
        self.lives = lives
        return lost

    def state_dict(self) -> dict[str, Any]:
        return {"lives": None if self.lives is None else torch.as_tensor(self.lives).clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lives = None if state.get("lives") is None else state["lives"].numpy().copy()
