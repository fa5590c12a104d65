"""Normalization, in one place: running statistics of observations and returns, the
observation preprocessing that applies them, and reward scaling.

Observations: `ObservationPreprocessor` turns raw observations into float features
(Box flattened, Discrete one-hot) and, with env.normalize_obs, standardizes them by running
statistics. Rewards: `RewardScaler` divides them by a running std of the discounted return,
as Engstrom et al. (2020, "Implementation Matters in Deep Policy Gradients") found common
and important in PPO on MuJoCo: each env copy keeps its discounted return
G_t = gamma * G_{t-1} + r_t (reset at episode ends), and the learner sees
r_t / sqrt(Var[G] + 1e-8), clipped to [-clip, clip]. The mean is not subtracted: shifting
rewards would change which policies are optimal.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from pgrun.collection.observation_trees import pick
from pgrun.networks.observations import observation_layout, space_leaves

STD_EPS = 1e-8
"""added to the variance before its square root: what observations and rewards are divided by"""


class RunningMeanStd:
    """Running mean and variance of feature vectors, merged batch by batch (Chan et al. 1979),
    and std = sqrt(var + 1e-8).

    Kept in float64 numpy arrays: the collector folds in every step, and tiny torch ops
    would cost more in dispatch than the arithmetic; checkpoints get torch tensors.
    """

    def __init__(self, dim: int) -> None:
        self.mean = np.zeros(dim)
        self.var = np.ones(dim)
        self.count = 1e-4
        self.std = np.sqrt(self.var + STD_EPS)

    def update(self, x: np.ndarray) -> None:
        """Fold in a batch x [n, dim] of mean m_b and variance v_b: with n_0 the count so far,
        n = n_0 + n_b and delta = m_b - mean,
            mean <- mean + delta n_b / n
            var  <- (var n_0 + v_b n_b + delta^2 n_0 n_b / n) / n"""
        x = np.asarray(x, dtype=np.float64)
        batch_count = float(len(x))
        total = self.count + batch_count
        if len(x) == 1:  # (one env copy: v_b = 0, the same formulas in fewer array operations)
            delta = x[0] - self.mean
            self.mean = self.mean + delta * (1.0 / total)
            self.var = (self.var * self.count + delta * delta * (self.count / total)) / total
        else:
            batch_mean = x.sum(0) / batch_count
            batch_var = ((x - batch_mean) ** 2).sum(0) / batch_count
            delta = batch_mean - self.mean
            self.mean = self.mean + delta * batch_count / total
            m2 = self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total
            self.var = m2 / total
        self.count = total
        self.std = np.sqrt(self.var + STD_EPS)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "mean": torch.from_numpy(self.mean.copy()),
            "var": torch.from_numpy(self.var.copy()),
            "count": torch.tensor(self.count, dtype=torch.float64),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.mean = state["mean"].numpy().astype(np.float64)
        self.var = state["var"].numpy().astype(np.float64)
        self.count = float(state["count"])
        self.std = np.sqrt(self.var + STD_EPS)


class ObservationPreprocessor:
    """Turns a batch of raw observations [N, ...] into the flat vectors [N, dim] the batch
    stores and the networks read, laid out as pgrun.networks.observations describes: Box
    flattened, Discrete one-hot, Dict and Tuple entries side by side; images kept in their
    own bytes (uint8), channels last, scaled to [0, 1] only inside the network.

    With `normalize`, the vector features are then standardized by running statistics,
    (x - mean) / sqrt(var + 1e-8) clipped to [-clip, clip]; never images, whose entries pass
    as they are (the vector is then float32). The collector updates the statistics
    (`update_and_encode`), plain encoding only reads them, and they are saved with the policy.
    """

    def __init__(self, space: gym.Space, normalize: bool = False, clip: float = 10.0) -> None:
        self.space, self.clip = space, clip
        self.layout = observation_layout(space)
        self.dim = self.layout.dim
        self.leaves = space_leaves(space)
        self.normalized_columns: np.ndarray | None = None
        """the columns standardized when normalizing (None: all of them)"""
        if normalize and not self.layout.is_vector:
            self.normalized_columns = np.concatenate(
                [
                    np.arange(part.start, part.start + part.size)
                    for part in self.layout.parts
                    if part.kind == "vector"
                ]
                or [np.zeros(0, dtype=np.int64)]
            )
        self.frozen = False
        """read the statistics, never update them (a measurement at a fixed policy)"""
        self.statistics = (
            RunningMeanStd(self.dim if self.normalized_columns is None else len(self.normalized_columns))
            if normalize
            else None
        )
        self.dtype = self.layout.dtype if self.statistics is None else np.dtype(np.float32)
        """how the encoded vectors are stored: uint8 for byte-valued images, else float32"""
        self.whole_box = isinstance(space, gym.spaces.Box)
        """a Box: its features are the observation itself, flattened"""
        self.channels_first = [part.kind == "image" and part.channels_first for part in self.layout.parts]
        """per part (and leaf of the space): an image the env gives as (C, H, W), stored (H, W, C)"""
        self.as_is = self.whole_box and space.shape == (self.dim,) and not normalize
        """vectors, not normalized: the features of [N, dim] observations are themselves, as float32"""

    def features(self, obs: Any) -> np.ndarray:
        """The flat features [N, dim], before normalization (uint8 or float)."""
        if self.whole_box:
            flat = channels_last(np.asarray(obs)) if self.channels_first[0] else np.asarray(obs)
            flat = flat.reshape(-1, self.dim)
            return flat.view(np.uint8) if flat.dtype == np.bool_ and flat.flags.c_contiguous else flat
        if isinstance(self.space, gym.spaces.Discrete):
            return np.eye(self.dim)[np.asarray(obs) - self.space.start]
        columns = []
        for (path, leaf), transpose in zip(self.leaves, self.channels_first, strict=True):
            values = pick(obs, path)
            columns.append(leaf_features(leaf, channels_last(values) if transpose else values))
        return np.concatenate([column.astype(self.layout.dtype, copy=False) for column in columns], axis=1)

    def update_and_encode(self, obs: Any, fold: np.ndarray | None = None) -> torch.Tensor:
        """Fold raw observations [N, ...] into the running statistics (if normalizing; only
        the rows where `fold` [N] is true, if given), then encode them all with the updated
        statistics."""
        if self.as_is:  # (the collector calls this every step: the short way)
            return torch.from_numpy(np.ascontiguousarray(obs, dtype=np.float32))
        features = self.features(obs)
        if self.statistics is not None and not self.frozen and (fold is None or fold.any()):
            folded = features if fold is None else features[fold]
            if self.normalized_columns is not None:
                folded = folded[:, self.normalized_columns]
            self.statistics.update(folded)
        return self.standardize(features)

    def __call__(self, obs: Any) -> torch.Tensor:
        """Encode raw observations [N, ...] with the statistics as they stand; never updates them."""
        return self.standardize(self.features(obs))

    def encode_array(self, obs: Any) -> np.ndarray:
        """As __call__, as a numpy array (for storage converted to torch in one piece)."""
        if self.as_is:
            return np.ascontiguousarray(obs, dtype=np.float32)
        return self.standardize_array(self.features(obs))

    def reencode(self, features: torch.Tensor) -> torch.Tensor:
        """Features [..., dim] recorded earlier (Batch.features), encoded with the statistics
        as they stand now."""
        flat = features.reshape(-1, self.dim).cpu().numpy()
        return self.standardize(flat).reshape(features.shape).to(features.device)

    def standardize(self, features: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.standardize_array(features))

    def standardize_array(self, features: np.ndarray) -> np.ndarray:
        """The stored features [N, dim]: (x - mean) / sqrt(var + 1e-8), clipped, when
        normalizing (the vector columns only, if there are images), as float32; else the
        features in the layout's dtype."""
        if self.statistics is None:
            return np.ascontiguousarray(features, dtype=self.dtype)
        if self.normalized_columns is None:
            standardized = (features - self.statistics.mean) / self.statistics.std
            return np.ascontiguousarray(np.clip(standardized, -self.clip, self.clip), dtype=np.float32)
        encoded = np.array(features, dtype=np.float32)
        columns = self.normalized_columns
        standardized = (features[:, columns] - self.statistics.mean) / self.statistics.std
        encoded[:, columns] = np.clip(standardized, -self.clip, self.clip)
        return encoded


def channels_last(images: np.ndarray) -> np.ndarray:
    """[N, C, H, W] -> [N, H, W, C] (a view; flattening it copies)."""
    return images.transpose(0, 2, 3, 1)


def leaf_features(space: gym.Space, values: np.ndarray) -> np.ndarray:
    """[N, flatdim] features of one entry: Box and MultiBinary flattened, Discrete one-hot,
    MultiDiscrete a one-hot per entry."""
    n = len(values)
    if isinstance(space, gym.spaces.Discrete):
        return np.eye(int(space.n), dtype=np.uint8)[values - space.start]
    if isinstance(space, gym.spaces.MultiDiscrete):
        nvec, start = space.nvec.reshape(-1), np.asarray(space.start).reshape(-1)
        entries = (values.reshape(n, -1) - start).astype(np.int64)
        return np.concatenate(
            [np.eye(int(size), dtype=np.uint8)[entries[:, j]] for j, size in enumerate(nvec)], axis=1
        )
    flat = values.reshape(n, -1)
    return flat.astype(np.uint8) if flat.dtype == np.bool_ else flat


class RewardScaler:
    """What the learner sees of each step's rewards [N] of N env copies: with `sign` (env.sign_reward)
    sign(r), the reward clipping of Mnih et al. (2015); with `normalize` (env.normalize_reward)
    then scaled as above. The statistics go into checkpoints."""

    def __init__(
        self, num_envs: int, gamma: float, clip: float | None, sign: bool = False, normalize: bool = True
    ) -> None:
        self.gamma, self.clip = gamma, clip
        self.sign, self.normalize = sign, normalize
        self.returns = np.zeros(num_envs)
        self.statistics = RunningMeanStd(1)

    def __call__(self, reward: np.ndarray, ended: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
        """The learner's rewards of one step; `ended`: the copies whose episode ended at it;
        `active`: the copies that took a step (default all; a copy that only reset did not)."""
        if self.sign:
            reward = np.sign(reward)
        if not self.normalize:
            return reward
        if active is None:
            self.returns = self.gamma * self.returns + reward
            self.statistics.update(self.returns.reshape(-1, 1))
        elif active.any():
            self.returns[active] = self.gamma * self.returns[active] + reward[active]
            self.statistics.update(self.returns[active].reshape(-1, 1))
        scaled = reward / self.statistics.std[0]
        self.returns[ended] = 0.0
        return scaled if self.clip is None else np.clip(scaled, -self.clip, self.clip)

    def restart(self) -> None:
        """Every copy starts a new episode (a batch of complete episodes resets the envs)."""
        self.returns[:] = 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"returns": torch.as_tensor(self.returns).clone(), "statistics": self.statistics.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.returns = state["returns"].numpy().copy()
        self.statistics.load_state_dict(state["statistics"])
