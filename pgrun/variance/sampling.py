"""Batches of complete episodes under a fixed policy, and the episodes' order within them.

A batch of E episodes comes from pgrun's own collector in episode mode: N env copies each run
a fixed share of E (so short episodes are not over-represented), the policy acts by sampling,
and the observation statistics are read, never updated. Episodes are ranked copy by copy
(copy 0's in order, then copy 1's, ...): the first e of a batch of E are a batch of e
episodes, which is how one batch serves every smaller batch size.
"""

from __future__ import annotations

import torch
from gymnasium.vector import VectorEnv
from torch import Tensor

from pgrun.batch import Batch
from pgrun.collection.collector import Collector
from pgrun.collection.normalization import ObservationPreprocessor
from pgrun.networks.policy import Policy


class EpisodeSampler:
    """Collects batches of complete episodes from `envs` with `policy`, the statistics frozen.

    Rewards are those the run learned from: with env.normalize_reward divided by the std the
    run had reached (`reward_std`) and clipped to +-`reward_clip`, as its critic predicts them.
    """

    def __init__(
        self,
        envs: VectorEnv,
        policy: Policy,
        preprocessor: ObservationPreprocessor,
        seed: int,
        reward_std: float = 1.0,
        reward_clip: float | None = None,
    ) -> None:
        self.collector = Collector(envs, policy, preprocessor, "episodes", 1, seed=seed)
        self.preprocessor = preprocessor
        self.reward_std, self.reward_clip = reward_std, reward_clip

    def batch(self, episodes: int) -> Batch:
        self.collector.size = episodes
        frozen, self.preprocessor.frozen = self.preprocessor.frozen, True
        try:
            batch = self.collector.collect()
        finally:
            self.preprocessor.frozen = frozen
        if self.reward_std != 1.0 or self.reward_clip is not None:
            scaled = batch.rewards / self.reward_std
            if self.reward_clip is not None:
                scaled = scaled.clamp(-self.reward_clip, self.reward_clip)
            batch.rewards = scaled * batch.valid
        return batch


def episode_ranks(batch: Batch) -> Tensor:
    """[T, N]: the rank of each valid step's episode in the batch, copy by copy (-1 for padding)."""
    ended = (batch.done & batch.valid).long()
    within_copy = ended.cumsum(0) - ended  # episodes the copy finished before this step
    per_copy = ended.sum(0)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), per_copy.cumsum(0)[:-1]])
    return torch.where(batch.valid, within_copy + offsets, -1)


def first_episodes(ranks: Tensor, episodes: int) -> Tensor:
    """[T, N] bool: the steps of the batch's first `episodes` episodes."""
    return (ranks >= 0) & (ranks < episodes)
