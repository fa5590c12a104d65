"""The estimators the lab compares, by name, and the coefficients Phi_t each gives a batch.

Names (`parse_estimator`):
    total_return       Phi_t = R(tau), the episode's discounted return, for every step
    reward_to_go       Phi_t = G_t = sum_{t'>=t} gamma^(t'-t) r_t'
    value_baseline     Phi_t = G_t - V(s_t)                       (GAE with lambda = 1)
    gae:LAMBDA         Phi_t = GAE(gamma, LAMBDA) against V        (biased for LAMBDA < 1 unless V = V^pi)
    is:K               per-decision importance-sampled reward-to-go, sum_{t'>=t} gamma^(t'-t) w_t' r_t',
                       w_t' = prod_{k<=t'} pi(a_k|s_k) / mu(a_k|s_k), from batches of a policy mu
                       K updates away (pgrun.variance.subjects.stale_policy)
    is:K:MAX           the same with every w_t' truncated at MAX (biased)
and any of them with `+norm`: Phi_t shifted and scaled over the batch as the algorithms'
normalize_advantages does (pgrun.estimation.functional.normalize).

The lab estimates the gradient of the episodic return as the batch records it: an episode's
end (terminal or a time limit) ends every sum, and GAE does not bootstrap at a time limit,
so that every estimator but gae:LAMBDA<1 and truncated is:K:MAX estimates the same vector.
The math is pgrun.estimation.functional's, as training uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pgrun.batch import Batch
from pgrun.config import ConfigError
from pgrun.estimation.functional import (
    centered_and_std,
    gae,
    importance_ratios,
    per_decision_weights,
    reward_to_go,
    total_return,
)

NAMES = "total_return, reward_to_go, value_baseline, gae:LAMBDA, is:K, is:K:MAX, each optionally +norm"
NORMALIZATION_EPS = 1e-8


@dataclass(frozen=True)
class EstimatorSpec:
    """One estimator of the lab: its name as given and what it means."""

    name: str
    kind: str
    """total_return, reward_to_go, value_baseline, gae or is"""
    lam: float = 1.0
    stale: int = 0
    """is: updates between the behaviour policy mu and the measured pi"""
    weight_max: float | None = None
    normalized: bool = False

    @property
    def uses_critic(self) -> bool:
        return self.kind in ("value_baseline", "gae")

    @property
    def off_policy(self) -> bool:
        """Its batches come from a stale policy mu (not the batches of the others)."""
        return self.kind == "is"


def parse_estimator(text: str) -> EstimatorSpec:
    """The spec a name stands for; ConfigError (one line) for a name that is not one."""
    base, normalized = (text[: -len("+norm")], True) if text.endswith("+norm") else (text, False)
    kind, *arguments = base.split(":")
    try:
        if kind in ("total_return", "reward_to_go", "value_baseline") and not arguments:
            return EstimatorSpec(text, kind, normalized=normalized)
        if kind == "gae" and len(arguments) == 1:
            lam = float(arguments[0])
            if 0.0 <= lam <= 1.0:
                return EstimatorSpec(text, kind, lam=lam, normalized=normalized)
        if kind == "is" and len(arguments) in (1, 2):
            stale = int(arguments[0])
            weight_max = float(arguments[1]) if len(arguments) == 2 else None
            if stale >= 1 and (weight_max is None or weight_max > 0):
                return EstimatorSpec(text, kind, stale=stale, weight_max=weight_max, normalized=normalized)
    except ValueError:
        pass
    raise ConfigError(
        f"estimator {text!r} is not one the lab knows: use {NAMES} "
        "(LAMBDA in [0, 1], K >= 1 updates, MAX > 0)"
    )


@dataclass
class Coefficients:
    """Phi_t [T, N] (float64) for one batch, with the importance weights w_t of `is`."""

    phi: Tensor
    importance: Tensor | None = None


def coefficients(
    spec: EstimatorSpec,
    batch: Batch,
    gamma: float,
    critic: nn.Module | None,
    logp_target: Tensor | None = None,
) -> Coefficients:
    """Phi_t of `spec` on `batch` (before normalization, which depends on the steps chosen).

    critic: V(s) for value_baseline and gae; logp_target: log pi(a_t|s_t) [T, N] of the
    measured policy on a batch collected by mu (is).
    """
    rewards, done = batch.rewards.double(), batch.done
    if spec.kind == "total_return":
        return Coefficients(total_return(rewards, done, gamma))
    if spec.kind == "reward_to_go":
        return Coefficients(reward_to_go(rewards, done, gamma))
    if spec.uses_critic:
        if critic is None:
            raise ValueError(f"estimator {spec.name} needs a critic")
        with torch.no_grad():
            values, next_values = critic(batch.obs).double(), critic(batch.next_obs).double()
        # every episode end closes the sums (no bootstrap at a time limit): see the module docstring
        return Coefficients(gae(rewards, values, next_values, done, done, gamma, spec.lam)[0])
    if logp_target is None:
        raise ValueError(f"estimator {spec.name} needs the measured policy's log-probabilities")
    w = per_decision_weights(importance_ratios(logp_target, batch.logp), done)
    if spec.weight_max is not None:
        w = w.clamp(max=spec.weight_max)
    return Coefficients(reward_to_go(w * rewards, done, gamma), importance=w)


def normalized(coefficients: Coefficients, steps: Tensor) -> tuple[Tensor, float]:
    """Phi normalized over `steps` [T, N] as training does (pgrun.estimation.functional.normalize),
    and the scale 1 / (std + eps) that applied."""
    centered, std = centered_and_std(coefficients.phi, steps, coefficients.importance)
    scale = 1.0 if std is None else 1.0 / (std.item() + NORMALIZATION_EPS)
    return centered if std is None else centered / (std + NORMALIZATION_EPS), scale
