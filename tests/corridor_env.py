"""A custom env for the tests: walk right along a corridor of discrete cells.

Importing this module registers "Corridor-v0"; the class itself can also be named as an
entry point ("corridor_env:Corridor").
"""

import gymnasium as gym
import numpy as np


class Corridor(gym.Env):
    """Cells 0..length-1, start at 0; action 1 moves right, 0 left; -1 per step; terminal at the end."""

    def __init__(self, length: int = 4) -> None:
        self.length = length
        self.observation_space = gym.spaces.Discrete(length)
        self.action_space = gym.spaces.Discrete(2)
        self.position = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = 0
        return self.position, {}

    def step(self, action):
        self.position = int(np.clip(self.position + (1 if action == 1 else -1), 0, self.length - 1))
        terminated = self.position == self.length - 1
        return self.position, -1.0, terminated, False, {}


gym.register(id="Corridor-v0", entry_point=Corridor, max_episode_steps=20)


class Clock(gym.Env):
    """Observation [t, 3 t + 1] at step t of an episode of `length` steps; actions do nothing.
    The raw observation of every recorded step is known from its place in the episode."""

    def __init__(self, length: int = 4) -> None:
        self.length, self.t = length, 0
        self.observation_space = gym.spaces.Box(0.0, 100.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def observation(self) -> np.ndarray:
        return np.array([self.t, 3 * self.t + 1], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.observation(), {}

    def step(self, action):
        self.t += 1
        return self.observation(), 1.0, self.t == self.length, False, {}
