"""Proximal policy optimization: several epochs of minibatch steps on a surrogate objective.

Both variants (Schulman et al. 2017) share the loop; they differ only in the loss:
  clip:    L = -E[min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t)]
  penalty: L = -E[r_t A_t] + beta E[KL(pi_old(.|s_t) || pi_theta(.|s_t))]
with r_t = pi_theta(a_t|s_t) / pi_old(a_t|s_t) and A_t the estimator's GAE advantages.
V(s) is fitted to the estimator's value targets: on the policy's own minibatches when its
passes match the epochs, else after them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pgrun.algorithms.rule import Algorithm
from pgrun.config import AlgoConfig, OptimizerConfig, ValueConfig, checked
from pgrun.lazy import lazy_import

torch = lazy_import("torch")
losses = lazy_import("pgrun.algorithms.losses")
batching = lazy_import("pgrun.batch")
optim = lazy_import("pgrun.algorithms.optim")
learned_value = lazy_import("pgrun.algorithms.value_fitting")

if TYPE_CHECKING:
    from torch import Tensor

    from pgrun.algorithms.value_fitting import ValueFitting
    from pgrun.estimation.estimators import Advantages
    from pgrun.networks.policy import Policy
    from pgrun.networks.value import ValueNetworkFactory


@dataclass
class PPOValueConfig(ValueConfig):
    """V_phi of PPO: fitted on its own (ValueConfig), or a head on the policy's encoder."""

    share_encoder: bool = False
    """one encoder for the policy and V (as CleanRL's Atari PPO; pays for images): V is a linear
    head on the policy's features, coef times its loss joins the policy's loss on each
    minibatch, and algo.optim steps both (value.lr and value.max_grad_norm are not used);
    needs value.iters == epochs and value.minibatch_size == minibatch_size"""
    coef: float = checked(0.5, ge=0.0)
    """with share_encoder: c_V, the weight of the value loss in the joint loss"""
    lr: float = checked(3e-4, gt=0.0)
    """its own Adam learning rate (on algo.optim's schedule)"""
    max_grad_norm: float | None = checked(0.5, gt=0.0)


@dataclass
class PPOConfig(AlgoConfig):
    """Proximal policy optimization (algo=ppo, algo=ppo_penalty)."""

    estimator: str = checked("gae", choices=("gae",))
    """gae: A_t by GAE(lambda) against the learned V"""
    gae_lambda: float = checked(0.95, ge=0.0, le=1.0)
    """GAE lambda: 1 gives reward-to-go minus V(s_t), 0 the one-step TD residual"""
    value: PPOValueConfig = field(default_factory=PPOValueConfig)
    optim: OptimizerConfig = field(
        default_factory=lambda: OptimizerConfig(lr=3e-4, eps=1e-5, max_grad_norm=0.5)
    )
    ent_coef: float = checked(0.0, ge=0.0)
    """entropy bonus coefficient c_H in the loss"""
    minibatch_size: int | None = checked(64, ge=1)
    """steps per Adam step within an epoch (shuffled); null: the whole batch"""
    epochs: int = checked(10, ge=1)
    """passes over the batch, each in shuffled minibatches of minibatch_size"""
    variant: str = checked("clip", choices=("clip", "penalty"))
    """clip: min(r A, clip(r, 1 - eps, 1 + eps) A); penalty: r A - beta KL(pi_old || pi), beta adapted"""
    clip: float = checked(0.2, gt=0.0)
    """clip: surrogate clip range epsilon"""
    target_kl: float | None = checked(None, gt=0.0)
    """clip: stop the batch's epochs once the approximate KL exceeds 1.5 * target_kl (null:
    never; where it is measured: kl_stop_on); penalty: the KL that beta is adapted towards"""
    kl_stop_on: str = checked("minibatch", choices=("minibatch", "batch"))
    """clip with target_kl: minibatch: before each minibatch step, on that minibatch
    (Stable-Baselines3); batch: after each epoch, on the whole batch"""
    kl_coef: float = checked(1.0, gt=0.0)
    """penalty: initial beta; doubled when KL > 1.5 target_kl, halved when KL < target_kl / 1.5"""

    LOG_STD_INIT: ClassVar[float] = 0.0
    """Stable-Baselines3's (and CleanRL's) initial log-std"""

    def inconsistency(self) -> tuple[str, str] | None:
        if self.variant == "penalty" and self.target_kl is None:
            return "target_kl", "must be set: the penalty variant adapts its coefficient towards it"
        value = self.value
        if value.share_encoder and (value.iters, value.minibatch_size) != (self.epochs, self.minibatch_size):
            return "value.share_encoder", (
                f"needs value.iters == epochs ({value.iters} vs {self.epochs}) and value.minibatch_size == "
                f"minibatch_size ({value.minibatch_size} vs {self.minibatch_size}): a shared encoder is "
                "fitted on the policy's minibatches"
            )
        return super().inconsistency()

    def ignored_keys(self) -> dict[str, str]:
        if self.variant == "clip":
            ignored = {"kl_coef": "with algo.variant=clip: it is the penalty variant's initial beta"}
            if self.target_kl is None:
                ignored["kl_stop_on"] = "with algo.target_kl=null: there is no KL early stop"
        else:
            ignored = {
                "clip": "with algo.variant=penalty: it is the clip variant's epsilon",
                "kl_stop_on": "with algo.variant=penalty: the KL adapts beta, it stops nothing",
            }
        if self.value.share_encoder:
            shared = "with algo.value.share_encoder=true: algo.optim steps the shared network"
            ignored |= {"value.lr": shared, "value.max_grad_norm": shared}
        else:
            ignored["value.coef"] = "with algo.value.share_encoder=false: V is fitted by its own optimizer"
        return ignored


def clipped_surrogate(
    logp: Tensor, logp_old: Tensor, advantages: Tensor, clip: float
) -> tuple[Tensor, Tensor]:
    """-mean(min(r A, clip(r, 1 - clip, 1 + clip) A)) and the fraction of clipped ratios."""
    ratio = (logp - logp_old).exp()
    clipped = ratio.clamp(1 - clip, 1 + clip)
    loss = -torch.min(ratio * advantages, clipped * advantages).mean()
    with torch.no_grad():
        clip_frac = (clipped != ratio).float().mean()
    return loss, clip_frac


def kl_penalized_surrogate(
    kl: Tensor, logp: Tensor, logp_old: Tensor, advantages: Tensor, beta: float
) -> tuple[Tensor, dict]:
    """-mean(r A) + beta * mean KL(pi_old(.|s) || pi_theta(.|s)), `kl` [n] per step, in the
    direction of the trust region: expectations under the old policy, which collected the samples."""
    kl = kl.mean()
    loss = -losses.importance_surrogate(logp, logp_old, advantages) + beta * kl
    return loss, {"train/kl_penalty": kl.item()}


class PPO:
    """config.epochs passes over the batch in shuffled minibatches, one optimizer step each.

    clip variant with target_kl: the passes stop early once the approximate KL between the
    batch's policy and the current one exceeds 1.5 * target_kl, measured (kl_stop_on) either
    before each minibatch step on that minibatch, the step then not taken (as
    Stable-Baselines3), or after each epoch on the whole batch (Spinning Up's whole-batch
    check, made once an epoch). penalty variant: after the update, beta doubles if the mean
    KL exceeded 1.5 * target_kl and halves if it stayed below target_kl / 1.5.
    """

    def __init__(self, config: PPOConfig, policy: Policy, make_value_network: ValueNetworkFactory) -> None:
        self.config, self.policy = config, policy
        shared_encoder = policy.encoder if config.value.share_encoder else None
        self.value = learned_value.FittedValue(
            config.value, make_value_network, shared_encoder, config.value.coef
        )
        self.critic = self.value.net
        learned = (
            {"policy": policy}
            if shared_encoder is None
            else {"policy": policy, "value_head": self.critic.head}
        )
        self.optimizer = optim.make_optimizer(learned, config.optim)
        self.kl_coef = config.kl_coef

    def update(self, advantages: Advantages, progress: float) -> dict[str, float]:
        """The policy's epochs, and V fitted to the value targets: on the same minibatches, one
        backward pass for both, when the value's passes match the epochs (value.iters ==
        epochs, same minibatch size); else after the epochs."""
        batch = advantages.batch
        obs, value_targets = batch.flat(batch.obs), batch.flat(advantages.value_targets)
        fitting = learned_value.ValueFitting(self.value, obs, value_targets, advantages.flat_values())
        joint = self.value.shares_minibatches_with(self.config.epochs, self.config.minibatch_size)
        old = None if batch.params is None else (batch.flat(batch.params), batch.flat(batch.logp))
        actions, phi = batch.flat(batch.actions), batch.flat(advantages.phi)
        info = self.policy_update(obs, actions, phi, progress, fitting if joint else None, old)
        fitting.finish()
        return info | fitting.info()

    def policy_update(
        self,
        obs: Tensor,
        actions: Tensor,
        advantages: Tensor,
        progress: float,
        value_fitting: ValueFitting | None = None,
        old: tuple[Tensor, Tensor] | None = None,
    ) -> dict[str, float]:
        """The epochs of minibatch steps on the surrogate; with `value_fitting`, each step
        also takes V's step on the same minibatch. `old`: pi_old's params and log
        pi_old(a_t|s_t) as the collection computed them (as Stable-Baselines3 and CleanRL take
        them: no pass over the batch); None: computed here, at the current parameters."""
        config, policy = self.config, self.policy
        self.optimizer.lr = optim.scheduled_lr(config.optim, progress)
        self.value.follow_schedule(optim.scheduled(config.value.lr, config.value.lr_schedule, progress))
        n = len(advantages)
        size = config.minibatch_size or n
        if old is None:
            with torch.no_grad():
                old = (params := policy.distribution_params(obs)), policy.log_prob_from(params, actions)
        old_params, logp_old = old
        per_epoch = -(-n // size)
        steps, stopped, clip_fracs, grad_norms, last_loss = 0, False, [], [], torch.tensor(float("nan"))
        early_stop = config.variant == "clip" and config.target_kl is not None
        per_minibatch = early_stop and config.kl_stop_on == "minibatch"
        shared = value_fitting is not None and self.value.shared  # one encoder pass serves both heads
        for _ in range(config.epochs):
            for index in batching.shuffled_minibatches(n, size):
                features = policy.encoder(obs[index]) if shared else None
                params = (
                    policy.params_from_features(features)
                    if shared
                    else policy.distribution_params(obs[index])
                )
                logp = policy.log_prob_from(params, actions[index])
                if (
                    per_minibatch
                    and losses.approx_kl(logp_old[index], logp.detach()) > 1.5 * config.target_kl
                ):
                    stopped = True
                    break
                if config.variant == "clip":
                    loss, clip_frac = clipped_surrogate(logp, logp_old[index], advantages[index], config.clip)
                    clip_fracs.append(clip_frac)
                else:
                    kl = policy.kl_from(old_params[index], params)
                    loss, _ = kl_penalized_surrogate(
                        kl, logp, logp_old[index], advantages[index], self.kl_coef
                    )
                if config.ent_coef > 0:  # (no entropy graph to differentiate when it has no weight)
                    loss = loss + losses.entropy_bonus(policy.entropy_from(params), config.ent_coef)
                last_loss = loss.detach()
                self.optimizer.zero_grad()
                if value_fitting is not None:
                    value_fitting.zero_grad()
                    loss = loss + value_fitting.loss(index, features)
                loss.backward()
                grad_norms.append(self.optimizer.clip_grad_norm(config.optim.max_grad_norm))
                self.optimizer.step()
                if value_fitting is not None:
                    value_fitting.step()
                steps += 1
            if early_stop and not per_minibatch:
                with torch.no_grad():
                    stopped = (
                        losses.approx_kl(logp_old, policy.log_prob_of(obs, actions)) > 1.5 * config.target_kl
                    )
            if stopped:
                break
        with torch.no_grad():  # (in minibatch-sized chunks: a CNN's pass over a whole batch is slower)
            new_params = torch.cat([policy(obs[part]) for part in batching.chunks(n, size)])
            kl_mean = policy.kl_from(old_params, new_params).mean().item()
            approx = losses.approx_kl(logp_old, policy.log_prob_from(new_params, actions))
        info = {
            "train/loss": last_loss.item(),
            "train/entropy": policy.entropy_from(old_params).mean().item(),
            "train/approx_kl": approx,
            "train/kl": kl_mean,
            "train/epochs": steps / per_epoch,
            "train/stopped_early": float(stopped),
            "train/grad_norm": sum(grad_norms) / len(grad_norms) if grad_norms else 0.0,
            "train/lr": self.optimizer.lr,
        }
        if config.variant == "clip":
            info["train/clip_frac"] = torch.stack(clip_fracs).mean().item() if clip_fracs else 0.0
        else:
            info["train/kl_coef"] = self.kl_coef
            if kl_mean > 1.5 * config.target_kl:
                self.kl_coef *= 2.0
            elif kl_mean < config.target_kl / 1.5:
                self.kl_coef /= 2.0
        return info

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "value": self.value.state_dict(),
            "kl_coef": self.kl_coef,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.value.load_state_dict(state["value"])
        self.kl_coef = state["kl_coef"]


ALGORITHMS = {"ppo": Algorithm(PPOConfig, PPO)}
