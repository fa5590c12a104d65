"""Env suites that register their ids on import (MinAtar, MiniGrid, the ALE): which module registers an
id, the extra that installs it, and the wrappers pgrun puts on their envs.

`resolve_env_id` asks `register_suite` before it calls an id unknown; an id of a suite that
is not installed gets one line naming the extra to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
from gymnasium.utils import seeding


class MinAtarSeeding(gym.Wrapper):
    """Makes a MinAtar episode a function of the env's np_random and the actions taken.

    MinAtar (Young and Tian 2019) draws its randomness from a numpy RandomState of its own,
    seeded only when reset is given a seed, and keeps the last action (for its sticky actions)
    across resets. At every reset this wrapper seeds that RandomState from the env's
    np_random and clears the last action: runs are seeded by the run's seed, and an episode
    can be replayed from how it started (pgrun.collection.env_state), so checkpoints resume
    exactly.
    """

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        env = self.env.unwrapped
        if seed is not None:
            env._np_random, env._np_random_seed = seeding.np_random(seed)
        env.game.seed(int(env.np_random.integers(2**31 - 1)))
        env.game.last_action = 0
        return self.env.reset(options=options)


@dataclass(frozen=True)
class Suite:
    """An env suite: ids starting with `prefix` (or ending with `suffix`, if given) are
    registered by importing `module` (and calling its `register` function, if named); `extra`
    is the pgrun extra that installs it."""

    prefix: str
    module: str
    extra: str
    register: str | None = None
    wrappers: tuple[Callable[[gym.Env], gym.Env], ...] = field(default=())
    suffix: str | None = None

    def claims(self, env_id: str) -> bool:
        return env_id.startswith(self.prefix) or (self.suffix is not None and env_id.endswith(self.suffix))

    def install(self) -> None:
        module = importlib.import_module(self.module)
        if self.register is not None:
            getattr(module, self.register)()


SUITES = (
    Suite("MinAtar/", "minatar.gym", "minatar", register="register_envs", wrappers=(MinAtarSeeding,)),
    Suite("MiniGrid-", "minigrid", "minigrid"),
    Suite("BabyAI-", "minigrid", "minigrid"),
    # ale_py registers ALE/<Game>-v5 and <Game>NoFrameskip-v4 when imported (ROMs included)
    Suite("ALE/", "ale_py", "atari", suffix="NoFrameskip-v4"),
)


def suite_of(env_id: str) -> Suite | None:
    return next((suite for suite in SUITES if suite.claims(env_id)), None)


def register_suite(env_id: str) -> str | None:
    """Import the suite an unregistered id belongs to, so that it registers its envs; return
    why that failed (one line), or None (registered, or no suite claims the id)."""
    suite = suite_of(env_id)
    if suite is None:
        return None
    try:
        suite.install()
    except ImportError as error:
        return f"needs the {suite.extra} suite ({error}): pip install 'pgrun[{suite.extra}]'"
    return None


def suite_wrappers(env_id: str) -> tuple[Callable[[gym.Env], gym.Env], ...]:
    """The wrappers pgrun puts on every env of the id's suite (innermost first)."""
    suite = suite_of(env_id)
    return () if suite is None else suite.wrappers
