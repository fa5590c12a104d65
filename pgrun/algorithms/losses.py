"""Loss pieces more than one update rule uses; pure functions of tensors.

logp, logp_old and phi are per-step [n]: log pi_theta(a_t|s_t), log pi_old(a_t|s_t) under
the policy that collected the batch, and the estimator's coefficient Phi_t.
"""

from __future__ import annotations

from torch import Tensor


def score_function_loss(logp: Tensor, phi: Tensor) -> Tensor:
    """L = -(1/n) sum_t Phi_t log pi_theta(a_t|s_t).

    -grad L = (1/n) sum_t Phi_t grad log pi_theta(a_t|s_t) is the sample estimate of the
    policy gradient (Williams 1992; Sutton et al. 2000) at the parameters that collected the batch.
    """
    return -(logp * phi).mean()


def importance_surrogate(logp: Tensor, logp_old: Tensor, phi: Tensor) -> Tensor:
    """L(theta) = (1/n) sum_t r_t Phi_t, r_t = pi_theta(a_t|s_t) / pi_old(a_t|s_t) (Kakade & Langford 2002).

    At theta = theta_old its gradient equals the policy-gradient estimate; away from it,
    it estimates the improvement of pi_theta over pi_old from pi_old's samples.
    """
    return ((logp - logp_old).exp() * phi).mean()


def approx_kl(logp_old: Tensor, logp_new: Tensor) -> float:
    """KL(pi_old || pi_new) ~ E_old[(r - 1) - log r], r = pi_new / pi_old (unbiased, >= 0)."""
    log_ratio = logp_new - logp_old
    return (log_ratio.exp() - 1 - log_ratio).mean().item()


def entropy_bonus(entropy: Tensor, coef: float) -> Tensor:
    """-c_H * mean_t H[pi_theta(.|s_t)]: added to a loss, it pushes towards more exploration."""
    return -coef * entropy.mean()
