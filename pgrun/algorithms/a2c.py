"""Synchronous advantage actor-critic, A2C (Mnih et al. 2016, the synchronous variant of A3C).

Every iteration collects n steps from each of N parallel envs (batch_size = n * N) and takes
one gradient step, on the policy and the value network together, on
    L = -mean_t A_t log pi_theta(a_t|s_t) + c_V mean_t (V_phi(s_t) - R_t)^2 - c_H mean_t H[pi(.|s_t)]
where A_t are GAE(lambda) advantages against V_phi (lambda = 1: the n-step return, bootstrapped
from V at the batch edge, minus V(s_t)) and R_t = A_t + V(s_t) their value targets. As in
Stable-Baselines3, the default optimizer is RMSprop, and advantages are not normalized.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pgrun.algorithms.rule import Algorithm
from pgrun.config import AlgoConfig, OptimizerConfig, ValueNetworkConfig, checked
from pgrun.lazy import lazy_import

losses = lazy_import("pgrun.algorithms.losses")
optim = lazy_import("pgrun.algorithms.optim")

if TYPE_CHECKING:
    from pgrun.estimation.estimators import Advantages
    from pgrun.networks.policy import Policy
    from pgrun.networks.value import ValueNetworkFactory


@dataclass
class A2CValueConfig(ValueNetworkConfig):
    """V_phi of A2C: a network of its own, or a head on the policy's encoder."""

    share_encoder: bool = False
    """one encoder for the policy and V (pays for images): V is a linear head on the policy's
    features, and the joint loss trains the encoder through both"""
    coef: float = checked(0.5, ge=0.0)
    """c_V, the weight of the value loss in the joint loss (PPO's algo.value.coef too)"""


@dataclass
class A2CConfig(AlgoConfig):
    """Advantage actor-critic (algo=a2c): one joint policy and value step per n-step batch."""

    estimator: str = checked("gae", choices=("gae",))
    """gae: A_t by GAE(lambda) against V_phi"""
    gae_lambda: float = checked(1.0, ge=0.0, le=1.0)
    """GAE lambda: 1 gives the bootstrapped n-step return minus V(s_t)"""
    normalize_advantages: bool = False
    batch_unit: str = checked("steps", choices=("steps",))
    """steps: batch_size = n steps of every env copy (n = batch_size / env.num_envs)"""
    batch_size: int = checked(20, ge=1)
    value: A2CValueConfig = field(default_factory=A2CValueConfig)
    ent_coef: float = checked(0.0, ge=0.0)
    """c_H, the entropy bonus coefficient"""
    optim: OptimizerConfig = field(
        default_factory=lambda: OptimizerConfig(name="rmsprop", lr=7e-4, eps=1e-5, max_grad_norm=0.5)
    )

    LOG_STD_INIT: ClassVar[float] = 0.0
    """Stable-Baselines3's initial log-std"""


class A2C:
    """One optimizer step per batch on the joint actor-critic loss, over both networks' parameters."""

    def __init__(self, config: A2CConfig, policy: Policy, make_value_network: ValueNetworkFactory) -> None:
        self.config, self.policy = config, policy
        shared_encoder = policy.encoder if config.value.share_encoder else None
        self.critic = make_value_network(config.value.hidden_sizes, shared_encoder)
        # (a shared encoder is the policy's: the critic adds only its head)
        critic_parameters = self.critic if shared_encoder is None else self.critic.head
        self.optimizer = optim.make_optimizer({"policy": policy, "critic": critic_parameters}, config.optim)

    def update(self, advantages: Advantages, progress: float) -> dict[str, float]:
        config, batch = self.config, advantages.batch
        obs, actions = batch.flat(batch.obs), batch.flat(batch.actions)
        phi, targets = batch.flat(advantages.phi), batch.flat(advantages.value_targets)
        self.optimizer.lr = optim.scheduled_lr(config.optim, progress)
        if config.value.share_encoder:  # one encoder pass serves both heads
            features = self.policy.encoder(obs)
            params, values = self.policy.params_from_features(features), self.critic.from_features(features)
        else:
            params, values = self.policy.distribution_params(obs), self.critic(obs)
        entropy = self.policy.entropy_from(params)
        policy_loss = losses.score_function_loss(self.policy.log_prob_from(params, actions), phi)
        value_loss = (values - targets).pow(2).mean()
        loss = policy_loss + config.value.coef * value_loss + losses.entropy_bonus(entropy, config.ent_coef)
        self.optimizer.zero_grad()
        loss.backward()
        grad_norm = self.optimizer.clip_grad_norm(config.optim.max_grad_norm)
        self.optimizer.step()
        return {
            "train/loss": loss.item(),
            "train/policy_loss": policy_loss.item(),
            "train/value_loss": value_loss.item(),
            "train/entropy": entropy.mean().item(),
            "train/grad_norm": grad_norm,
            "train/lr": self.optimizer.lr,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "critic": self.critic.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.critic.load_state_dict(state["critic"])
        self.optimizer.load_state_dict(state["optimizer"])


ALGORITHMS = {"a2c": Algorithm(A2CConfig, A2C)}
