"""Envs that misbehave, for the tests of how a run ends: a non-finite reward, an exception,
an episode that never ends. Importing this module registers them."""

import random
from typing import ClassVar

import gymnasium as gym
import numpy as np
from corridor_env import Corridor


class LateNaNCorridor(Corridor):
    """A Corridor whose rewards turn NaN after `healthy_steps` steps of this copy."""

    def __init__(self, healthy_steps: int = 100) -> None:
        super().__init__()
        self.healthy_steps, self.steps = healthy_steps, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        self.steps += 1
        return obs, float("nan") if self.steps > self.healthy_steps else reward, terminated, truncated, info


class CrashingCorridor(LateNaNCorridor):
    """A Corridor that raises after `healthy_steps` steps of this copy."""

    def step(self, action):
        if self.steps >= self.healthy_steps:
            raise RuntimeError("the simulator lost its licence server")
        self.steps += 1
        return Corridor.step(self, action)


class EndlessWalk(gym.Env):
    """A random walk on a line that never terminates, and is registered with no time limit."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.position = 0.0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = float(self.np_random.normal())
        return np.array([self.position], dtype=np.float32), {}

    def step(self, action):
        self.position += (1.0 if action == 1 else -1.0) * 0.01
        return np.array([self.position], dtype=np.float32), -abs(self.position), False, False, {}


class GlobalRandomWalk(EndlessWalk):
    """A walk whose steps come from python's global `random`, not from np_random: an
    episode cannot be replayed from its start and actions."""

    def step(self, action):
        self.position += random.uniform(-0.1, 0.1)
        return np.array([self.position], dtype=np.float32), -abs(self.position), False, False, {}


class RendersOnceCorridor(Corridor):
    """A Corridor that renders (a blank 8x8 frame) the first time any copy in this process is
    asked to, and raises after: a renderer that breaks during a run."""

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 4}
    renders: ClassVar[int] = 0

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__()
        self.render_mode = render_mode

    def render(self):
        RendersOnceCorridor.renders += 1
        if RendersOnceCorridor.renders > 1:
            raise RuntimeError("the renderer broke")
        return np.zeros((8, 8, 3), dtype=np.uint8)


class FramelessCorridor(Corridor):
    """A Corridor that accepts render_mode="rgb_array" and renders nothing (None)."""

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__()
        self.render_mode = render_mode

    def render(self):
        return None


gym.register(id="LateNaNCorridor-v0", entry_point=LateNaNCorridor, max_episode_steps=20)
gym.register(id="RendersOnceCorridor-v0", entry_point=RendersOnceCorridor, max_episode_steps=20)
gym.register(id="FramelessCorridor-v0", entry_point=FramelessCorridor, max_episode_steps=20)
gym.register(id="CrashingCorridor-v0", entry_point=CrashingCorridor, max_episode_steps=20)
gym.register(id="EndlessWalk-v0", entry_point=EndlessWalk)
gym.register(id="GlobalRandomWalk-v0", entry_point=GlobalRandomWalk, max_episode_steps=1000)
