"""Natural policy gradient and TRPO: a step of fixed KL size along F^-1 g.

With g the gradient of the surrogate L(theta) = E[r_t A_t] at theta_old and F the Fisher
matrix (the Hessian of the mean KL(pi_old || pi_theta) at theta_old), x ~ F^-1 g comes
from conjugate gradient using only products F v, and the step is
    theta <- theta_old + sqrt(2 delta / x^T F x) x            (Kakade 2001: natural gradient)
whose quadratic KL estimate is delta. TRPO (Schulman et al. 2015) then backtracks,
theta_old + c^j * step for j = 0, 1, ..., until the measured mean KL <= delta and the
surrogate improves, and keeps theta_old if no j does. When x^T F x is not positive (g = 0, e.g.
every advantage equal, gives x = 0 and a step of sqrt(2 delta / 0) * 0 = NaN) the step is
skipped and logged as train/step_skipped. V(s) is fitted on its own afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pgrun.algorithms.rule import Algorithm
from pgrun.config import AlgoConfig, ValueConfig, checked
from pgrun.lazy import lazy_import

torch = lazy_import("torch")
losses = lazy_import("pgrun.algorithms.losses")
learned_value = lazy_import("pgrun.algorithms.value_fitting")
optim = lazy_import("pgrun.algorithms.optim")

if TYPE_CHECKING:
    from torch import Tensor

    from pgrun.estimation.estimators import Advantages
    from pgrun.networks.policy import Policy
    from pgrun.networks.value import ValueNetworkFactory


@dataclass
class TrustRegionConfig(AlgoConfig):
    """Natural gradient step of KL size max_kl (algo=npg), with a line search (algo=trpo)."""

    estimator: str = checked("gae", choices=("gae",))
    """gae: A_t by GAE(lambda) against the learned V"""
    gae_lambda: float = checked(0.97, ge=0.0, le=1.0)
    """GAE lambda: 1 gives reward-to-go minus V(s_t), 0 the one-step TD residual"""
    value: ValueConfig = field(default_factory=ValueConfig)
    max_kl: float = checked(0.01, gt=0.0)
    """delta: the step is scaled so that its quadratic KL estimate is delta"""
    line_search: bool = True
    """backtrack until the measured mean KL <= delta and the surrogate improves (TRPO)"""
    cg_iters: int = checked(10, ge=1)
    """conjugate gradient iterations for x = F^-1 g"""
    cg_damping: float = checked(0.1, ge=0.0)
    """added to the Fisher matrix: F + damping I"""
    backtrack_iters: int = checked(10, ge=1)
    backtrack_coef: float = checked(0.8, gt=0.0, lt=1.0)

    SECOND_DERIVATIVES: ClassVar[bool] = True

    def ignored_keys(self) -> dict[str, str]:
        if self.line_search:
            return {}
        why = "with algo.line_search=false (npg): there is no line search"
        return {"backtrack_iters": why, "backtrack_coef": why}


def conjugate_gradient(
    matrix_vector_product: Callable[[Tensor], Tensor], b: Tensor, iters: int = 10, tolerance: float = 1e-10
) -> tuple[Tensor, float]:
    """Approximately solve A x = b for symmetric positive definite A given only v -> A v.

    Returns x and the norm of the residual b - A x. Exact in dim(b) iterations (in exact arithmetic).
    """
    x = torch.zeros_like(b)
    residual = b.clone()
    direction = b.clone()
    residual_sq = residual @ residual
    for _ in range(iters):
        if residual_sq <= tolerance:
            break
        product = matrix_vector_product(direction)
        alpha = residual_sq / (direction @ product)
        x += alpha * direction
        residual -= alpha * product
        new_residual_sq = residual @ residual
        direction = residual + (new_residual_sq / residual_sq) * direction
        residual_sq = new_residual_sq
    return x, residual_sq.sqrt().item()


def mean_kl(policy: Policy, obs: Tensor, old_params: Tensor) -> Tensor:
    """E_s[KL(pi_old(.|s) || pi_theta(.|s))], differentiable in theta."""
    return policy.kl_from(old_params, policy.distribution_params(obs)).mean()


def fisher_vector_product(
    policy: Policy, obs: Tensor, old_params: Tensor, damping: float
) -> Callable[[Tensor], Tensor]:
    """v -> (F + damping I) v, F the Hessian of the mean KL at theta_old, by double backprop.

    The KL's gradient is built once with create_graph=True; each product differentiates
    grad(KL) . v again. Call it while the policy's parameters are theta_old.
    """
    params = list(policy.parameters())
    grads = torch.autograd.grad(mean_kl(policy, obs, old_params), params, create_graph=True)
    flat_grad = torch.cat([grad.reshape(-1) for grad in grads])

    def product(vector: Tensor) -> Tensor:
        hessian_vector = torch.autograd.grad(flat_grad @ vector, params, retain_graph=True)
        return torch.cat([hv.reshape(-1) for hv in hessian_vector]) + damping * vector

    return product


def backtracking_line_search(
    policy: Policy,
    full_step: Tensor,
    evaluate: Callable[[], tuple[float, float]],
    max_kl: float,
    iters: int,
    coef: float,
) -> tuple[bool, int]:
    """Try theta_old + coef^j * full_step, j = 0..iters-1; keep the first with KL <= max_kl and
    a surrogate improvement > 0 (evaluate() returns (kl, improvement) at the current parameters).

    Returns (accepted, j). If none is accepted the parameters are restored to theta_old.
    """
    params = list(policy.parameters())
    old = torch.nn.utils.parameters_to_vector(params).detach().clone()
    for j in range(iters):
        torch.nn.utils.vector_to_parameters(old + coef**j * full_step, params)
        kl, improvement = evaluate()
        if kl <= max_kl and improvement > 0:
            return True, j
    torch.nn.utils.vector_to_parameters(old, params)
    return False, iters


class TrustRegion:
    """One natural-gradient step per batch (NPG), checked by a line search if config.line_search
    (TRPO); then V(s) fitted to the estimator's value targets. No optimizer: the step is computed."""

    def __init__(
        self, config: TrustRegionConfig, policy: Policy, make_value_network: ValueNetworkFactory
    ) -> None:
        self.config, self.policy = config, policy
        self.value = learned_value.FittedValue(config.value, make_value_network)
        self.critic = self.value.net

    def update(self, advantages: Advantages, progress: float) -> dict[str, float]:
        batch = advantages.batch
        obs, actions = batch.flat(batch.obs), batch.flat(batch.actions)
        info = self.policy_step(obs, actions, batch.flat(advantages.phi))
        value = self.config.value
        self.value.follow_schedule(optim.scheduled(value.lr, value.lr_schedule, progress))
        return info | self.value.fit(obs, batch.flat(advantages.value_targets), advantages.flat_values())

    def policy_step(self, obs: Tensor, actions: Tensor, advantages: Tensor) -> dict[str, float]:
        config, policy = self.config, self.policy
        params = list(policy.parameters())
        with torch.no_grad():
            old_params = policy.distribution_params(obs)
            logp_old = policy.log_prob_from(old_params, actions)

        def surrogate() -> Tensor:
            return losses.importance_surrogate(policy.log_prob_of(obs, actions), logp_old, advantages)

        surrogate_old = surrogate()
        gradient = torch.cat([g.reshape(-1) for g in torch.autograd.grad(surrogate_old, params)])
        fvp = fisher_vector_product(policy, obs, old_params, config.cg_damping)
        direction, cg_residual = conjugate_gradient(fvp, gradient, config.cg_iters)
        curvature = direction @ fvp(direction)
        step = torch.sqrt(2 * config.max_kl / curvature) * direction if curvature > 0 else None

        def evaluate() -> tuple[float, float]:
            with torch.no_grad():
                return mean_kl(policy, obs, old_params).item(), (surrogate() - surrogate_old).item()

        if step is None:
            accepted, backtracks = False, 0
        elif config.line_search:
            accepted, backtracks = backtracking_line_search(
                policy, step.detach(), evaluate, config.max_kl, config.backtrack_iters, config.backtrack_coef
            )
        else:
            torch.nn.utils.vector_to_parameters(
                torch.nn.utils.parameters_to_vector(params).detach() + step.detach(), params
            )
            accepted, backtracks = True, 0
        kl, improvement = evaluate()
        with torch.no_grad():
            entropy = policy.entropy_from(old_params).mean().item()
            approx = losses.approx_kl(logp_old, policy.log_prob_of(obs, actions))
        return {
            # -L(theta) at the parameters kept: at theta_old it is -E[A_t], 0 for normalized A_t
            "train/loss": -(surrogate_old.item() + improvement),
            "train/entropy": entropy,
            "train/kl": kl,
            "train/approx_kl": approx,
            "train/surrogate_improvement": improvement,
            "train/backtracks": float(backtracks),
            "train/step_accepted": float(accepted),
            "train/step_skipped": float(step is None),
            "train/cg_residual": cg_residual,
            "train/grad_norm": gradient.norm().item(),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "value": self.value.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.value.load_state_dict(state["value"])


ALGORITHMS = {"trust_region": Algorithm(TrustRegionConfig, TrustRegion)}
