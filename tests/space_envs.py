"""Custom envs for the space tests: each action and observation space pgrun handles, in a
task small enough to learn in seconds. Named as "space_envs:ClassName" (module:Class)."""

import gymnasium as gym
import numpy as np

EPISODE_STEPS = 8


class ContextTask(gym.Env):
    """Each step shows a random context; the reward depends on how the action answers it;
    EPISODE_STEPS steps an episode. Subclasses say what is shown and what is rewarded."""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.steps = 0
        self.context = self.draw()
        return self.observe(), {}

    def step(self, action):
        reward = self.reward(action)
        self.steps += 1
        self.context = self.draw()
        return self.observe(), reward, False, self.steps == EPISODE_STEPS, {}


class MultiDiscreteMatch(ContextTask):
    """Context c in {0, 1, 2}, shown one-hot; an action (a0, a1) in MultiDiscrete([3, 3], start=[0, 1])
    earns 1 for a0 == c and 1 for a1 == c + 1. Random play: 8 * 2/3 = 5.3 an episode; best 16."""

    observation_space = gym.spaces.Box(0.0, 1.0, (3,), dtype=np.float32)
    action_space = gym.spaces.MultiDiscrete([3, 3], start=[0, 1])

    def draw(self):
        return int(self.np_random.integers(3))

    def observe(self):
        return np.eye(3, dtype=np.float32)[self.context]

    def reward(self, action):
        return float(action[0] == self.context) + float(action[1] == self.context + 1)


class MultiBinaryMatch(ContextTask):
    """Context: 4 random bits, shown as floats; an action in MultiBinary(4) earns 0.25 per bit
    it copies. Random play: 8 * 0.5 = 4 an episode; best 8."""

    observation_space = gym.spaces.Box(0.0, 1.0, (4,), dtype=np.float32)
    action_space = gym.spaces.MultiBinary(4)

    def draw(self):
        return self.np_random.integers(2, size=4)

    def observe(self):
        return self.context.astype(np.float32)

    def reward(self, action):
        return 0.25 * float(np.sum(np.asarray(action) == self.context))


class DictContext(ContextTask):
    """A Dict observation: {"context": Discrete(3), "noise": Box(2,)}; a Discrete(3) action earns
    1 when it equals the context. Random play: 8/3 = 2.7 an episode; best 8."""

    observation_space = gym.spaces.Dict(
        {"context": gym.spaces.Discrete(3), "noise": gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)}
    )
    action_space = gym.spaces.Discrete(3)

    def draw(self):
        return int(self.np_random.integers(3))

    def observe(self):
        return {"context": self.context, "noise": self.np_random.uniform(-1, 1, 2).astype(np.float32)}

    def reward(self, action):
        return float(action == self.context)


class ImageContext(ContextTask):
    """A 12x12 single-channel uint8 image with a bright band in one of three columns of cells
    (the context); a Discrete(3) action earns 1 when it names that column. Random play: 2.7; best 8."""

    observation_space = gym.spaces.Box(0, 255, (12, 12, 1), dtype=np.uint8)
    action_space = gym.spaces.Discrete(3)

    def draw(self):
        return int(self.np_random.integers(3))

    def observe(self):
        image = np.zeros((12, 12, 1), dtype=np.uint8)
        image[:, 4 * self.context : 4 * self.context + 4] = 255
        return image

    def reward(self, action):
        return float(action == self.context)


class TextObservation(gym.Env):
    """An observation space pgrun cannot encode (Text)."""

    observation_space = gym.spaces.Text(5)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return "hello", {}

    def step(self, action):
        return "hello", 0.0, True, False, {}


class MatrixAction(gym.Env):
    """A Box action of two dimensions, which pgrun has no distribution for."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (2, 2), dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        return np.zeros(2, dtype=np.float32), 0.0, True, False, {}


class ReportsSuccess(gym.Env):
    """Episodes of 4 or 8 steps (drawn at reset); at the last step the info reports
    is_success (the episode was short) and steps_taken (its length). Every other step's info
    has is_success too, always False: only the last one counts."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.steps, self.length = 0, int(self.np_random.choice([4, 8]))
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        self.steps += 1
        info = {"is_success": False}
        if self.steps == self.length:
            info = {"is_success": self.length == 4, "steps_taken": self.steps}
        return np.zeros(2, dtype=np.float32), 1.0, self.steps == self.length, False, info
