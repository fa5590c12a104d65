"""The learned baseline V_phi(s): an MLP fitted by mean squared error to return targets."""

from __future__ import annotations

import torch
from torch import Tensor

from pgrun.config import ValueConfig
from pgrun.policies import mlp


def explained_variance(predicted: Tensor, targets: Tensor) -> float:
    """1 - Var[targets - predicted] / Var[targets]: 1 is perfect, 0 no better than a constant."""
    variance = targets.var()
    if variance == 0:
        return float("nan")
    return (1 - (targets - predicted).var() / variance).item()


class ValueFunction:
    """V_phi with its own Adam; `fit` minimizes (1/n) sum_t (V_phi(s_t) - target_t)^2.

    Each iteration makes config.iters passes over the batch, in shuffled minibatches of
    config.minibatch_size steps (one gradient step per minibatch).
    """

    def __init__(self, obs_dim: int, config: ValueConfig, activation: str, init: str) -> None:
        self.config = config
        self.net = mlp(obs_dim, 1, config.hidden_sizes, activation, init, out_gain=1.0)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.lr)

    def __call__(self, obs: Tensor) -> Tensor:
        """V(s) for obs [..., obs_dim] -> [...], without gradients."""
        with torch.no_grad():
            return self.net(obs).squeeze(-1)

    def loss(self, obs: Tensor, targets: Tensor, old_values: Tensor) -> Tensor:
        """mean (V(s) - R)^2, or with clip_range c:
        mean max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2)."""
        values = self.net(obs).squeeze(-1)
        loss = (values - targets).pow(2)
        if self.config.clip_range is not None:
            clipped = old_values + (values - old_values).clamp(
                -self.config.clip_range, self.config.clip_range
            )
            loss = torch.max(loss, (clipped - targets).pow(2))
        return loss.mean()

    def fit(self, obs: Tensor, targets: Tensor) -> dict[str, float]:
        """Fit to targets [n] at obs [n, obs_dim]; return the loss of the last pass."""
        n = len(targets)
        size = self.config.minibatch_size or n
        max_norm = self.config.max_grad_norm or float("inf")
        old_values = self(obs)
        for _ in range(self.config.iters):
            pass_loss = 0.0
            for index in torch.randperm(n).split(size):
                loss = self.loss(obs[index], targets[index], old_values[index])
                self.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), max_norm)
                self.optimizer.step()
                pass_loss += loss.item() * len(index) / n
        return {"train/value_loss": pass_loss}
