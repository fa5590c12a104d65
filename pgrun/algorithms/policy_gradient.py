"""The plain policy gradient: one optimizer step per batch on the score-function loss.

Three algorithms share the rule and differ in the estimator of Phi_t:
  policy_gradient     (vpg, rtg)  R(tau) or the reward-to-go, from complete episodes
  baseline            (baseline)  GAE(lambda) advantages against a learned V(s), fitted after the step
  importance_sampled  (is)        the reward-to-go of the last reuse_batches batches, importance-weighted
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pgrun.algorithms.rule import Algorithm
from pgrun.config import AlgoConfig, OptimizerConfig, ValueConfig, checked
from pgrun.lazy import lazy_import

torch = lazy_import("torch")
batches = lazy_import("pgrun.batch")
losses = lazy_import("pgrun.algorithms.losses")
optim = lazy_import("pgrun.algorithms.optim")
learned_value = lazy_import("pgrun.algorithms.value_fitting")

if TYPE_CHECKING:
    from torch import Tensor

    from pgrun.estimation.estimators import Advantages
    from pgrun.networks.policy import Policy
    from pgrun.networks.value import ValueNetworkFactory


@dataclass
class PolicyGradientConfig(AlgoConfig):
    """REINFORCE with R(tau) (algo=vpg) or the reward-to-go (algo=rtg) as Phi_t."""

    estimator: str = checked("reward_to_go", choices=("total_return", "reward_to_go"))
    """total_return: R(tau) for every step of an episode; reward_to_go: sum_{t'>=t} gamma^(t'-t) r_t'"""
    batch_unit: str = checked("episodes", choices=("steps", "episodes"))
    """steps: batch_size env steps; episodes: batch_size complete episodes (required by
    Monte Carlo estimators, whose sums an episode cut at the batch edge would bias)"""
    optim: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(lr=1e-2))
    ent_coef: float = checked(0.0, ge=0.0)
    """entropy bonus coefficient c_H in the loss"""
    chunk_size: int | None = checked(None, ge=1)
    """process the batch in chunks of this many steps to bound memory; gradients are
    accumulated and the optimizer still steps once per batch (not minibatches: PPO's
    minibatch_size is one optimizer step each); null: one chunk"""

    def inconsistency(self) -> tuple[str, str] | None:
        if self.batch_unit == "steps" and self.estimator in ("total_return", "reward_to_go"):
            return "batch_unit", (
                f"must be episodes with estimator {self.estimator}: an episode cut at the batch edge "
                "would sum only its observed rewards (use algo=baseline to bootstrap from V)"
            )
        return super().inconsistency()


@dataclass
class BaselineConfig(PolicyGradientConfig):
    """Phi_t = GAE(lambda) advantages against a learned V(s) (algo=baseline)."""

    estimator: str = checked("gae", choices=("gae",))
    """gae: A_t by GAE(lambda); lambda = 1 is the reward-to-go minus V(s_t)"""
    batch_unit: str = checked("steps", choices=("steps", "episodes"))
    """steps: batch_size env steps (a cut episode bootstraps from V); episodes: complete ones"""
    gae_lambda: float = checked(1.0, ge=0.0, le=1.0)
    """GAE lambda: 1 gives reward-to-go minus V(s_t), 0 the one-step TD residual"""
    value: ValueConfig = field(default_factory=ValueConfig)


@dataclass
class ImportanceSampledConfig(PolicyGradientConfig):
    """Policy gradient on the last reuse_batches batches, importance-weighted (algo=is)."""

    estimator: str = checked("importance_sampled", choices=("importance_sampled",))
    """the reward-to-go of reused batches with importance weights
    (pgrun.estimation.estimators.ImportanceSampled)"""
    reuse_batches: int = checked(4, ge=1)
    """batches kept and reused, the newest included"""
    is_weights: str = checked("per_decision", choices=("per_decision", "per_step"))
    """per_decision: reward r_t weighted by prod_{k<=t} rho_k (unbiased); per_step: Phi_t
    weighted by the step's own ratio rho_t"""
    weight_clip: list[float] | None = checked(None, ge=0.0)
    """[low, high]: clamp every ratio rho_k = pi(a_k|s_k) / pi_old(a_k|s_k) to this range"""
    weight_max: float | None = checked(None, gt=0.0)
    """truncate the importance weights at this value"""
    self_normalize: bool = False
    """divide the importance weights by their mean over the batch"""

    def inconsistency(self) -> tuple[str, str] | None:
        if self.batch_unit == "steps":
            return "batch_unit", "must be episodes: importance weights are products over whole episodes"
        if self.weight_clip is not None and not (
            len(self.weight_clip) == 2 and self.weight_clip[0] <= self.weight_clip[1]
        ):
            return "weight_clip", "must be [low, high] with 0 <= low <= high"
        return super().inconsistency()


class PolicyGradient:
    """theta <- optimizer step on L = -(1/n) sum_t Phi_t log pi_theta(a_t|s_t) - c_H mean_t H[pi(.|s_t)].

    -grad L is the sample estimate of grad J (Williams 1992): one step per batch, because the
    samples estimate the gradient only at the parameters that collected them. The batch may
    be processed in chunks to bound memory: each chunk adds its share (its sum divided by
    the full n) to the accumulated gradients, and the optimizer steps once at the end, so
    the update equals the full-batch one.
    """

    def __init__(
        self, config: PolicyGradientConfig, policy: Policy, make_value_network: ValueNetworkFactory
    ) -> None:
        self.config, self.policy = config, policy
        self.optimizer = optim.make_optimizer({"policy": policy}, config.optim)
        self.critic: torch.nn.Module | None = None

    def update(self, advantages: Advantages, progress: float) -> dict[str, float]:
        batch = advantages.batch
        obs, actions, phi = batch.flat(batch.obs), batch.flat(batch.actions), batch.flat(advantages.phi)
        n = len(phi)
        parts = batches.chunks(n, self.config.chunk_size)
        self.optimizer.lr = optim.scheduled_lr(self.config.optim, progress)
        self.optimizer.zero_grad()
        total_loss, total_entropy, logp_before = 0.0, 0.0, []
        gradients = GradientSnapshots(self.optimizer.grad) if len(parts) > 1 else None
        for part in parts:
            params = self.policy.distribution_params(obs[part])
            logp = self.policy.log_prob_from(params, actions[part])
            entropy = self.policy.entropy_from(params)
            share = len(phi[part]) / n
            loss = share * (
                losses.score_function_loss(logp, phi[part])
                + losses.entropy_bonus(entropy, self.config.ent_coef)
            )
            loss.backward()
            if gradients is not None:
                gradients.take(scale=1 / share)
            total_loss += loss.item()
            total_entropy += entropy.sum().item()
            logp_before.append(logp.detach())
        info = {"train/grad_norm": self.optimizer.clip_grad_norm(self.config.optim.max_grad_norm)}
        self.optimizer.step()
        with torch.no_grad():
            logp_after = torch.cat([self.policy.log_prob_of(obs[part], actions[part]) for part in parts])
        info |= {
            "train/loss": total_loss,
            "train/entropy": total_entropy / n,
            "train/approx_kl": losses.approx_kl(torch.cat(logp_before), logp_after),
            "train/lr": self.optimizer.lr,
        }
        if gradients is not None:
            info["train/grad_var"] = gradients.variance_of_mean()
        return info

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])


class BaselinePolicyGradient(PolicyGradient):
    """The policy-gradient step, then V(s) fitted to the estimator's value targets."""

    def __init__(
        self, config: BaselineConfig, policy: Policy, make_value_network: ValueNetworkFactory
    ) -> None:
        super().__init__(config, policy, make_value_network)
        self.value = learned_value.FittedValue(config.value, make_value_network)
        self.critic = self.value.net

    def update(self, advantages: Advantages, progress: float) -> dict[str, float]:
        info = super().update(advantages, progress)
        value = self.config.value
        self.value.follow_schedule(optim.scheduled(value.lr, value.lr_schedule, progress))
        batch = advantages.batch
        targets = batch.flat(advantages.value_targets)
        return info | self.value.fit(batch.flat(batch.obs), targets, advantages.flat_values())

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"value": self.value.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.value.load_state_dict(state["value"])


class GradientSnapshots:
    """Per-minibatch gradients read off the accumulating gradient, for a variance estimate.

    After minibatch k the accumulated gradient grew by its share; scaled by n / n_k that
    share is minibatch k's own estimate g_k of the full-batch gradient.
    """

    def __init__(self, flat_grad: Tensor) -> None:
        """flat_grad: the optimizer's gradient buffer, accumulated into by each backward pass."""
        self.flat_grad, self.previous, self.estimates = flat_grad, flat_grad.clone(), []

    def take(self, scale: float) -> None:
        current = self.flat_grad.clone()
        self.estimates.append((current - self.previous) * scale)
        self.previous = current

    def variance_of_mean(self) -> float:
        """tr Cov of the full-batch gradient: (1/k) * sample variance of the k estimates g_k."""
        estimates = torch.stack(self.estimates)
        return (estimates.var(dim=0).sum() / len(estimates)).item()


ALGORITHMS = {
    "policy_gradient": Algorithm(PolicyGradientConfig, PolicyGradient),
    "baseline": Algorithm(BaselineConfig, BaselinePolicyGradient),
    "importance_sampled": Algorithm(ImportanceSampledConfig, PolicyGradient),
}
