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
        obs, actions, phi = batch.flat(batch.obs), batch.flat(batch.actions), batch.flat(weights)
        n = len(phi)
        parts = minibatches(n, self.config.minibatch_size)
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.optimizer.zero_grad()
        total_loss, total_entropy, logp_before = 0.0, 0.0, []
        gradients = GradientSnapshots(params) if len(parts) > 1 else None
        for part in parts:
            distribution = self.policy.distribution(obs[part])
            logp = distribution.log_prob(actions[part])
            entropy = distribution.entropy().sum()
            loss = -(logp * phi[part]).sum() / n - self.config.ent_coef * entropy / n
            loss.backward()
            if gradients is not None:
                gradients.take(scale=n / len(phi[part]))
            total_loss += loss.item()
            total_entropy += entropy.item()
            logp_before.append(logp.detach())
        max_norm = self.config.max_grad_norm or float("inf")
        info = {"train/grad_norm": torch.nn.utils.clip_grad_norm_(params, max_norm).item()}
        self.optimizer.step()
        with torch.no_grad():
            logp_after = torch.cat(
                [self.policy.distribution(obs[part]).log_prob(actions[part]) for part in parts]
            )
        info |= {
            "train/loss": total_loss,
            "train/entropy": total_entropy / n,
            "train/approx_kl": approx_kl(torch.cat(logp_before), logp_after),
            "train/lr": self.optimizer.param_groups[0]["lr"],
        }
        if gradients is not None:
            info["train/grad_var"] = gradients.variance_of_mean()
        return info


class GradientSnapshots:
    """Per-minibatch gradients read off the accumulating .grad, for a variance estimate.

    After minibatch k the accumulated gradient grew by its share; scaled by n / n_k that
    share is minibatch k's own estimate g_k of the full-batch gradient.
    """

    def __init__(self, params: list[torch.nn.Parameter]) -> None:
        self.params, self.previous, self.estimates = params, self.flat_grad(params), []

    @staticmethod
    def flat_grad(params: list[torch.nn.Parameter]) -> Tensor:
        return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])

    def take(self, scale: float) -> None:
        current = self.flat_grad(self.params)
        self.estimates.append((current - self.previous) * scale)
        self.previous = current

    def variance_of_mean(self) -> float:
        """tr Cov of the full-batch gradient: (1/k) * sample variance of the k estimates g_k."""
        estimates = torch.stack(self.estimates)
        return (estimates.var(dim=0).sum() / len(estimates)).item()
