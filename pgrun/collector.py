"""The collector: runs the policy in a vector env and records one batch (pgrun.batch).

Termination (the MDP ended: no future reward) and truncation
(a time limit or the batch edge cut the episode: the future was not observed) are kept
apart; the collector records the true next observation of every step, including the
last observation of an auto-reset episode, so that value-based estimators can
bootstrap exactly where an episode was truncated.
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium.vector import VectorEnv
from torch import Tensor

from pgrun.batch import Batch
from pgrun.envs import ObservationEncoder
from pgrun.policies import Policy


class Collector:
    """Steps a vector env with a policy and returns batches of `size` steps or episodes.

    unit == "steps": each batch holds ceil(size / N) steps of every env copy; envs keep
    their state across batches, and an episode running at the batch edge is marked
    truncated in this batch and continues in the next one.
    unit == "episodes": every env copy is reset and runs its share of `size` complete
    episodes (a fixed count per copy, so short episodes are not over-represented); steps a
    copy takes after its share are padding (valid == False).
    """

    def __init__(
        self,
        envs: VectorEnv,
        policy: Policy,
        encoder: ObservationEncoder,
        unit: str,
        size: int,
        seed: int,
    ) -> None:
        self.envs, self.policy, self.encoder = envs, policy, encoder
        self.unit, self.size = unit, size
        self.num_envs = envs.num_envs
        self.obs, _ = envs.reset(seed=seed)
        envs.action_space.seed(seed)
        self.running_return = np.zeros(self.num_envs)
        self.running_length = np.zeros(self.num_envs, dtype=np.int64)

    def collect(self) -> Batch:
        if self.unit == "episodes":
            self.obs, _ = self.envs.reset()
            self.running_return[:], self.running_length[:] = 0.0, 0
            quota = np.full(self.num_envs, self.size // self.num_envs)
            quota[: self.size % self.num_envs] += 1
            max_steps = None
        else:
            quota = None
            max_steps = -(-self.size // self.num_envs)
        episodes_done = np.zeros(self.num_envs, dtype=np.int64)
        steps: list[dict[str, Tensor]] = []
        episode_returns: list[float] = []
        episode_lengths: list[int] = []
        while True:
            if quota is not None:
                valid = episodes_done < quota
                if not valid.any():
                    break
            else:
                if len(steps) == max_steps:
                    break
                valid = np.ones(self.num_envs, dtype=bool)
            # The statistics fold in s_t, then encode s_t and (below) s_{t+1} alike, so that
            # V(s_t) and the bootstrap V(s_{t+1}) see one normalization.
            obs = self.encoder.update_and_encode(self.obs)
            with torch.no_grad():
                distribution = self.policy.distribution(obs)
                action = distribution.sample()
                logp = distribution.log_prob(action)
            next_obs, reward, terminated, truncated, info = self.envs.step(self.policy.env_action(action))
            ended = terminated | truncated
            true_next_obs = next_obs
            if ended.any():
                true_next_obs = next_obs.copy()
                for i in np.flatnonzero(ended):
                    true_next_obs[i] = info["final_obs"][i]
            self.running_return += reward
            self.running_length += 1
            for i in np.flatnonzero(ended & valid):
                episode_returns.append(float(self.running_return[i]))
                episode_lengths.append(int(self.running_length[i]))
            self.running_return[ended] = 0.0
            self.running_length[ended] = 0
            episodes_done += ended
            steps.append(
                {
                    "obs": obs,
                    "next_obs": self.encoder(true_next_obs),
                    "actions": action,
                    "logp": logp,
                    "rewards": torch.as_tensor(reward, dtype=torch.float32),
                    "terminated": torch.as_tensor(terminated),
                    "truncated": torch.as_tensor(truncated),
                    "valid": torch.as_tensor(valid),
                }
            )
            self.obs = next_obs
        fields = {key: torch.stack([step[key] for step in steps]) for key in steps[0]}
        # In steps mode the batch edge cuts every still-running episode.
        fields["truncated"][-1] |= ~fields["terminated"][-1]
        # Padding steps form segments of their own, closed before the next valid step.
        fields["rewards"] = fields["rewards"] * fields["valid"]
        return Batch(**fields, episode_returns=episode_returns, episode_lengths=episode_lengths)
