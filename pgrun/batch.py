"""The batch: one iteration's experience, time-major, as the collector records it.

Every per-step field has shape [T, N] (plus feature dims) for T steps of N env copies.
Estimators and update rules read batches; they never need the collector that made them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace

import torch
from torch import Tensor


@dataclass
class Batch:
    """One batch of experience; shapes [T, N, ...].

    obs, next_obs   [T, N, dim]  encoded s_t and s_{t+1} (the true final obs at an episode end),
                    both encoded with the observation statistics in force when a_t was chosen;
                    float32, or uint8 for byte-valued images (pgrun.networks.observations)
    actions         [T, N] (Discrete) or [T, N, entries]  sampled a_t (unclipped)
    logp            [T, N]  log pi_old(a_t|s_t) under the collecting policy
    rewards         [T, N]  r_t
    terminated      [T, N]  s_{t+1} is terminal: no reward follows
    truncated       [T, N]  the episode was cut after step t (time limit or batch edge)
    valid           [T, N]  the step belongs to the batch (False for padding in episode mode)
    """

    obs: Tensor
    next_obs: Tensor
    actions: Tensor
    logp: Tensor
    rewards: Tensor
    terminated: Tensor
    truncated: Tensor
    valid: Tensor
    episode_returns: list[float]
    episode_lengths: list[int]
    episode_info: dict[str, list[float]] = field(default_factory=dict)
    """per-episode values of log.info_keys the env reported at the episodes' ends"""
    features: Tensor | None = None
    """[T, N, dim] s_t's features before observation normalization, kept only for an estimator
    that reuses the batch later (it re-encodes them with the statistics then in force)"""
    params: Tensor | None = None
    """[T, N, P] the params of pi_old(.|s_t) the collecting policy sampled a_t from"""
    values: Tensor | None = None
    """[T, N] V(s_t) from the collection's forward pass, recorded where V shares the policy's
    encoder (one pass gave both); None: the estimator computes V itself"""
    env_steps: int | None = None
    """env steps the batch cost: every step of every copy in steps mode (a native env's reset
    steps included), in episode mode only a copy's steps until its share of episodes is done,
    not the padding after it (the copies step together, but a learner running the episodes
    alone would not take those steps); None: every [T, N] entry"""

    def __post_init__(self) -> None:
        if self.env_steps is None:
            self.env_steps = self.rewards.numel()

    @property
    def done(self) -> Tensor:
        """The episode (or its recorded segment) ends after step t."""
        return self.terminated | self.truncated

    def flat(self, tensor: Tensor) -> Tensor:
        """The valid steps of a [T, N, ...] tensor, as [n_valid, ...]."""
        return tensor[self.valid]

    def to(self, device: torch.device) -> Batch:
        """The batch with its tensors on `device` (itself where they are there already). To a
        GPU they go through pinned memory without blocking: the first use waits for them."""
        tensors = {f.name: value for f in fields(self) if isinstance(value := getattr(self, f.name), Tensor)}
        if all(tensor.device == device for tensor in tensors.values()):
            return self
        pinned = device.type == "cuda"

        def move(tensor: Tensor) -> Tensor:
            if pinned and tensor.device.type == "cpu":
                return tensor.pin_memory().to(device, non_blocking=True)
            return tensor.to(device)

        return replace(self, **{name: move(tensor) for name, tensor in tensors.items()})


PADDING = {
    "obs": 0.0,
    "next_obs": 0.0,
    "actions": 0,
    "logp": 0.0,
    "rewards": 0.0,
    "terminated": False,
    "truncated": True,
    "valid": False,
}


def concat_batches(batches: Sequence[Batch]) -> Batch:
    """Batches side by side along the env axis [T, N1 + N2 + ...]; shorter ones padded in time.

    Padding steps are invalid, closed (truncated) and carry zero reward, so no sum crosses them.
    """
    length = max(len(batch.rewards) for batch in batches)

    def padded(tensor: Tensor, fill: float | bool) -> Tensor:
        extra = torch.full((length - len(tensor), *tensor.shape[1:]), fill, dtype=tensor.dtype)
        return torch.cat([tensor, extra])

    fields = {
        name: torch.cat([padded(getattr(batch, name), fill) for batch in batches], dim=1)
        for name, fill in PADDING.items()
    }
    return Batch(
        **fields,
        episode_returns=[ret for batch in batches for ret in batch.episode_returns],
        episode_lengths=[steps for batch in batches for steps in batch.episode_lengths],
        episode_info={
            key: [value for batch in batches for value in batch.episode_info.get(key, [])]
            for key in dict.fromkeys(key for batch in batches for key in batch.episode_info)
        },
        features=(
            torch.cat([padded(batch.features, 0) for batch in batches], dim=1)
            if all(batch.features is not None for batch in batches)
            else None
        ),
        env_steps=sum(batch.env_steps for batch in batches),
    )


def chunks(n: int, size: int | None) -> list[slice]:
    """Consecutive slices covering range(n), each at most `size` long (one slice if None)."""
    size = n if size is None else size
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def shuffled_minibatches(n: int, size: int | None) -> list[Tensor | slice]:
    """One pass over rows 0..n-1 in minibatches of `size` shuffled indices (the last may be
    shorter). When one minibatch holds every row (size None or >= n) it is the slice [:],
    unshuffled: a mean over all rows is the same in any order, and a slice is a view where
    indices would copy every tensor they select from."""
    if size is None or size >= n:
        return [slice(None)]
    return list(torch.randperm(n).split(size))
