"""Batches of raw observations as vector envs return them: an array [N, ...] for most spaces,
a dict (Dict spaces) or tuple (Tuple spaces) of such arrays, nested as the space is. The
few operations the collector, checkpoints and preprocessing need on them, for every shape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def pick(obs: Any, path: tuple) -> np.ndarray:
    """The entry at `path` of a batch (or of one observation)."""
    for key in path:
        obs = obs[key]
    return np.asarray(obs)


def replace_rows(obs: Any, rows: Sequence[int], replacements: Sequence[Any]) -> Any:
    """A copy of the batch `obs` whose rows `rows` are the single observations `replacements`
    (an episode's final observation in place of the next episode's first)."""
    if isinstance(obs, dict):
        return {key: replace_rows(value, rows, [r[key] for r in replacements]) for key, value in obs.items()}
    if isinstance(obs, tuple):
        return tuple(replace_rows(value, rows, [r[i] for r in replacements]) for i, value in enumerate(obs))
    copied = obs.copy()
    for row, replacement in zip(rows, replacements, strict=True):
        copied[row] = replacement
    return copied


def copied(obs: Any) -> Any:
    """A copy of the batch `obs` the env cannot overwrite: a vector env may return the same
    arrays at every step, written in place (EnvPool may; gymnasium's copy them already)."""
    if isinstance(obs, dict):
        return {key: copied(value) for key, value in obs.items()}
    if isinstance(obs, tuple):
        return tuple(copied(value) for value in obs)
    return np.array(obs, copy=True)


def all_finite(obs: Any) -> bool:
    """No NaN or infinity in any floating-point entry."""
    if isinstance(obs, dict):
        return all(all_finite(value) for value in obs.values())
    if isinstance(obs, tuple):
        return all(all_finite(value) for value in obs)
    return not np.issubdtype(obs.dtype, np.floating) or bool(np.isfinite(obs).all())


def to_tensors(obs: Any) -> Any:
    """The batch as tensors (copies), nested as it is: what a checkpoint can hold."""
    if isinstance(obs, dict):
        return {key: to_tensors(value) for key, value in obs.items()}
    if isinstance(obs, tuple):
        return tuple(to_tensors(value) for value in obs)
    return torch.as_tensor(obs).clone()


def to_arrays(obs: Any) -> Any:
    """`to_tensors` undone."""
    if isinstance(obs, dict):
        return {key: to_arrays(value) for key, value in obs.items()}
    if isinstance(obs, (tuple, list)):
        return tuple(to_arrays(value) for value in obs)
    return obs.numpy()


def stacked_equal(singles: Sequence[Any], batch: Any) -> bool:
    """Whether the single observations, stacked, are exactly the batch."""
    if isinstance(batch, dict):
        return all(stacked_equal([single[key] for single in singles], value) for key, value in batch.items())
    if isinstance(batch, tuple):
        return all(stacked_equal([single[i] for single in singles], value) for i, value in enumerate(batch))
    stacked = np.stack(singles)
    return stacked.shape == batch.shape and np.array_equal(stacked, batch)


def add_batch_axis(obs: Any) -> Any:
    """One observation as a batch of one."""
    if isinstance(obs, dict):
        return {key: add_batch_axis(value) for key, value in obs.items()}
    if isinstance(obs, tuple):
        return tuple(add_batch_axis(value) for value in obs)
    return np.asarray(obs)[None]
