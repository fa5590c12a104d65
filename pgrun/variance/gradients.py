"""Gradient estimates of the lab: g = (1/E) sum over a batch's E episodes of sum_t Phi_t grad log pi(a_t|s_t).

That is the textbook estimate of the policy gradient from E sampled episodes (Williams 1992;
the source material's "(1/|D|) sum_tau sum_t"), taken with respect to the policy's parameters
only, as one flat float64 vector. Training's losses average over steps instead (a scale, the
same for every estimator): the lab divides by episodes so that its estimates are unbiased
for the gradient itself and comparable with the exact one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def flat_gradient(
    objective: Tensor, parameters: Sequence[nn.Parameter], retain_graph: bool = False
) -> Tensor:
    """d objective / d parameters as one float64 vector (zeros for parameters it does not use)."""
    grads = torch.autograd.grad(objective, list(parameters), retain_graph=retain_graph, allow_unused=True)
    return torch.cat(
        [
            (g if g is not None else torch.zeros_like(p)).flatten()
            for g, p in zip(grads, parameters, strict=True)
        ]
    ).double()


def episode_estimate(
    logp: Tensor, phi: Tensor, steps: Tensor, episodes: int, parameters: Sequence[nn.Parameter]
) -> Tensor:
    """(1/episodes) sum over `steps` [T, N] of Phi_t grad log pi(a_t|s_t); logp [T, N] keeps its
    graph for the next estimate on the same batch."""
    objective = (logp.double() * phi.detach() * steps).sum() / episodes
    return flat_gradient(objective, parameters, retain_graph=True)
