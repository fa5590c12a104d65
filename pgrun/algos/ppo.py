"""Proximal policy optimization: several epochs of minibatch steps on a surrogate objective.

Both variants (Schulman et al. 2017; seed 002, "Proximal Policy Optimization") share the
loop; they differ only in the loss:
  clip:    L = -E[min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t)]
  penalty: L = -E[r_t A_t] + beta E[KL(pi_old(.|s_t) || pi_theta(.|s_t))]
with r_t = pi_theta(a_t|s_t) / pi_old(a_t|s_t) and A_t the estimator's weights.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import kl_divergence

from pgrun.algos.policy_gradient import approx_kl
from pgrun.collector import Batch
from pgrun.config import PPOConfig
from pgrun.policies import Policy


def clipped_surrogate(logp: Tensor, logp_old: Tensor, advantages: Tensor, clip: float) -> tuple[Tensor, dict]:
    """-mean(min(r A, clip(r, 1 - clip, 1 + clip) A)) and the fraction of clipped ratios."""
    ratio = (logp - logp_old).exp()
    loss = -torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages).mean()
    with torch.no_grad():
        clip_frac = ((ratio - 1).abs() > clip).float().mean().item()
    return loss, {"train/clip_frac": clip_frac}


def kl_penalized_surrogate(
    logp: Tensor, logp_old: Tensor, advantages: Tensor, kl: Tensor, kl_coef: float
) -> tuple[Tensor, dict]:
    """-mean(r A) + beta * mean(KL(pi_old || pi_theta))."""
    ratio = (logp - logp_old).exp()
    loss = -(ratio * advantages).mean() + kl_coef * kl.mean()
    return loss, {"train/kl_penalty": kl.mean().item()}


class PPOUpdate:
    """config.epochs passes over the batch in shuffled minibatches, one Adam step each.

    clip variant: the passes stop early, before the step, once the approximate KL between
    the batch's policy and the current one on the minibatch exceeds 1.5 * target_kl (as in
    Spinning Up). penalty variant: after the update, beta doubles if the mean KL exceeded
    1.5 * target_kl and halves if it stayed below target_kl / 1.5.
    """

    def __init__(self, policy: Policy, optimizer: torch.optim.Optimizer, config: PPOConfig) -> None:
        self.policy, self.optimizer, self.config = policy, optimizer, config
        self.kl_coef = config.kl_coef

    def __call__(self, batch: Batch, weights: Tensor) -> dict[str, float]:
        config, policy = self.config, self.policy
        obs, actions, advantages = batch.flat(batch.obs), batch.flat(batch.actions), batch.flat(weights)
        with torch.no_grad():
            old_params = policy.distribution_params(obs)
            old = policy.distribution_from(old_params)
            logp_old = old.log_prob(actions)
        n = len(advantages)
        size = config.minibatch_size or n
        per_epoch = -(-n // size)
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        steps, stopped, clip_fracs, grad_norms, loss_value = 0, False, [], [], float("nan")
        for _ in range(config.epochs):
            for index in torch.randperm(n).split(size):
                distribution = policy.distribution(obs[index])
                logp = distribution.log_prob(actions[index])
                early_stop = config.variant == "clip" and config.target_kl is not None
                if early_stop and approx_kl(logp_old[index], logp.detach()) > 1.5 * config.target_kl:
                    stopped = True
                    break
                if config.variant == "clip":
                    loss, info = clipped_surrogate(logp, logp_old[index], advantages[index], config.clip)
                    clip_fracs.append(info["train/clip_frac"])
                else:
                    kl = kl_divergence(policy.distribution_from(old_params[index]), distribution)
                    loss, info = kl_penalized_surrogate(
                        logp, logp_old[index], advantages[index], kl, self.kl_coef
                    )
                loss = loss - config.ent_coef * distribution.entropy().mean()
                self.optimizer.zero_grad()
                loss.backward()
                max_norm = config.max_grad_norm or float("inf")
                grad_norms.append(torch.nn.utils.clip_grad_norm_(params, max_norm).item())
                self.optimizer.step()
                steps += 1
                loss_value = loss.item()
            if stopped:
                break
        with torch.no_grad():
            new = policy.distribution(obs)
            kl_mean = kl_divergence(old, new).mean().item()
            approx = approx_kl(logp_old, new.log_prob(actions))
        info = {
            "train/loss": loss_value,
            "train/entropy": old.entropy().mean().item(),
            "train/approx_kl": approx,
            "train/kl": kl_mean,
            "train/epochs": steps / per_epoch,
            "train/stopped_early": float(stopped),
            "train/grad_norm": sum(grad_norms) / len(grad_norms) if grad_norms else 0.0,
            "train/lr": self.optimizer.param_groups[0]["lr"],
        }
        if config.variant == "clip":
            info["train/clip_frac"] = sum(clip_fracs) / len(clip_fracs) if clip_fracs else 0.0
        else:
            info["train/kl_coef"] = self.kl_coef
            if kl_mean > 1.5 * config.target_kl:
                self.kl_coef *= 2.0
            elif kl_mean < config.target_kl / 1.5:
                self.kl_coef /= 2.0
        return info
