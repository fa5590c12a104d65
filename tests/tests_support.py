"""Helpers shared by the tests of update rules."""

import torch

from pgrun.collector import Batch


def random_batch(policy, obs_dim: int, seed: int, steps: int = 13, envs: int = 3) -> Batch:
    """A batch of random observations with actions sampled from `policy`; a few padding steps."""
    generator = torch.Generator().manual_seed(seed)
    dtype = next(policy.parameters()).dtype
    obs = torch.randn(steps, envs, obs_dim, generator=generator, dtype=dtype)
    with torch.no_grad():
        distribution = policy.distribution(obs)
        actions = distribution.sample()
        logp = distribution.log_prob(actions)
    valid = torch.ones(steps, envs, dtype=torch.bool)
    valid[-3:, 0] = False  # padding, as in episode mode
    flags = torch.zeros(steps, envs, dtype=torch.bool)
    return Batch(
        obs=obs,
        next_obs=obs,
        actions=actions,
        logp=logp,
        rewards=torch.randn(steps, envs, generator=generator),
        terminated=flags,
        truncated=flags,
        valid=valid,
        episode_returns=[],
        episode_lengths=[],
    )
