"""The plain policy-gradient step: one optimizer step per batch."""

from __future__ import annotations

import torch
from torch import Tensor

from pgrun.collector import Batch
from pgrun.config import AlgoConfig
from pgrun.policies import Policy


def minibatches(n: int, size: int | None) -> list[slice]:
    """Consecutive slices covering range(n), each at most `size` long (one slice if None)."""
    size = n if size is None else size
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def approx_kl(logp_old: Tensor, logp_new: Tensor) -> float:
    """KL(pi_old || pi_new) ~ E_old[(r - 1) - log r], r = pi_new / pi_old (unbiased, >= 0)."""
    log_ratio = logp_new - logp_old
    return (log_ratio.exp() - 1 - log_ratio).mean().item()


class PolicyGradientStep:
    """theta <- Adam step on the loss L = -(1/n) sum_t Phi_t log pi_theta(a_t|s_t) - c_H H[pi_theta(.|s_t)].

    Its gradient is the sample estimate of -grad J (seed 003, 001): one gradient per batch,
    because the samples estimate the gradient only at the parameters that collected them.
    The batch may be processed in minibatches to bound memory: each minibatch adds its
    share (its sum divided by the full n) to the accumulated gradients, and the
    optimizer steps once at the end, so the update equals the full-batch one.
    """

    def __init__(self, policy: Policy, optimizer: torch.optim.Optimizer, config: AlgoConfig) -> None:
        self.policy, self.optimizer, self.config = policy, optimizer, config

    def __call__(self, batch: Batch, weights: Tensor) -> dict[str, float]:
        obs, actions = batch.flat(batch.obs), batch.flat(batch.actions)
        phi, logp_old = batch.flat(weights), batch.flat(batch.logp)
        n = len(phi)
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.optimizer.zero_grad()
        total_loss, total_entropy = 0.0, 0.0
        for part in minibatches(n, self.config.minibatch_size):
            distribution = self.policy.distribution(obs[part])
            entropy = distribution.entropy().sum()
            loss = -(distribution.log_prob(actions[part]) * phi[part]).sum() / n
            loss = loss - self.config.ent_coef * entropy / n
            loss.backward()
            total_loss += loss.item()
            total_entropy += entropy.item()
        max_norm = self.config.max_grad_norm or float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm).item()
        self.optimizer.step()
        with torch.no_grad():
            logp_new = torch.cat(
                [
                    self.policy.distribution(obs[part]).log_prob(actions[part])
                    for part in minibatches(n, self.config.minibatch_size)
                ]
            )
        return {
            "train/loss": total_loss,
            "train/entropy": total_entropy / n,
            "train/approx_kl": approx_kl(logp_old, logp_new),
            "train/grad_norm": grad_norm,
            "train/lr": self.optimizer.param_groups[0]["lr"],
        }
