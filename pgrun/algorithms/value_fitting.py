"""Fitting the learned baseline V_phi(s) by regression to the estimator's value targets, with
its own optimizer: alone after a policy update, or on the update's own minibatches."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from pgrun.algorithms.optim import Adam
from pgrun.batch import shuffled_minibatches
from pgrun.config import ValueConfig
from pgrun.networks.value import ValueNetworkFactory


def value_loss(
    values: Tensor, targets: Tensor, old_values: Tensor | None, clip_range: float | None
) -> Tensor:
    """mean (V(s) - R)^2, or with clip_range c:
    mean max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2)."""
    loss = (values - targets).pow(2)
    if clip_range is not None:
        assert old_values is not None, "clipping V needs its values before the update"
        clipped = old_values + (values - old_values).clamp(-clip_range, clip_range)
        loss = torch.max(loss, (clipped - targets).pow(2))
    return loss.mean()


class FittedValue:
    """V_phi with its own Adam; `fit` minimizes (1/n) sum_t (V_phi(s_t) - target_t)^2.

    Each call makes config.iters passes over the batch, in shuffled minibatches of
    config.minibatch_size steps (one gradient step per minibatch).

    With `shared_encoder` (the policy's), V_phi is a head on the policy's features and has no
    optimizer of its own: the update rule adds `coef` times its loss to the policy's on the
    same minibatches and steps both with its optimizer (pgrun.algorithms.ppo).
    """

    def __init__(
        self,
        config: ValueConfig,
        make_network: ValueNetworkFactory,
        shared_encoder: nn.Module | None = None,
        coef: float = 1.0,
    ) -> None:
        self.config = config
        self.net = make_network(config.hidden_sizes, shared_encoder)
        self.shared = shared_encoder is not None
        self.coef = coef if self.shared else 1.0
        self.optimizer = None if self.shared else Adam({"value": self.net}, config.lr)

    def follow_schedule(self, lr: float) -> None:
        """Set V's own optimizer to learning rate `lr` (the rule's schedule applied to value.lr);
        a V sharing the policy's encoder has none: the rule's optimizer steps it."""
        if self.optimizer is not None:
            self.optimizer.lr = lr

    def fit(self, obs: Tensor, targets: Tensor, old_values: Tensor | None = None) -> dict[str, float]:
        """Fit to targets [n] at obs [n, obs_dim] (`old_values`: V(obs) before the fit, if
        known); return the loss of the last pass."""
        fitting = ValueFitting(self, obs, targets, old_values)
        fitting.finish()
        return fitting.info()

    def shares_minibatches_with(self, epochs: int, minibatch_size: int | None) -> bool:
        """Whether the fit's passes are those of an update rule's own epochs of minibatches,
        so that the rule can take both steps after one backward pass (`ValueFitting`)."""
        return self.config.iters == epochs and self.config.minibatch_size == minibatch_size

    def state_dict(self) -> dict[str, Any]:
        optimizer = self.optimizer.state_dict() if self.optimizer is not None else {}
        return {"net": self.net.state_dict(), "optimizer": optimizer}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])


class ValueFitting:
    """One fit of V to fixed targets, as config.iters passes of minibatch steps.

    A step is `zero_grad`, a backward pass through `loss(index)`, then `step()`. An update
    rule whose own minibatches match the fit's (FittedValue.shares_minibatches_with) adds
    `loss(index)` to its loss, so one backward pass serves both networks (their parameters
    are disjoint, so each gets exactly its own gradient), and calls `finish()` at the end for
    any steps it did not take (after an early stop). Alone, `finish()` takes them all.
    """

    def __init__(
        self, value: FittedValue, obs: Tensor, targets: Tensor, old_values: Tensor | None = None
    ) -> None:
        """`old_values`: V(obs) before the fit, where the estimator computed them already; the
        clipped loss (value.clip_range) needs them, and reads them from V otherwise."""
        self.value, self.obs, self.targets = value, obs, targets
        self.steps_per_pass = -(-len(targets) // (value.config.minibatch_size or len(targets)))
        self.steps_taken, self.losses = 0, []
        self.old_values = old_values
        if self.old_values is None and value.config.clip_range is not None:
            with torch.no_grad():
                self.old_values = value.net(obs)

    def zero_grad(self) -> None:
        if self.value.optimizer is not None:  # (shared: the rule's optimizer zeroes V's head)
            self.value.optimizer.zero_grad()

    def loss(self, index: Tensor | slice, features: Tensor | None = None) -> Tensor:
        """The value loss on minibatch `index` (indices, or a slice), to be added to the rule's
        loss (times coef, when V shares the policy's encoder; `features`: the shared encoder's
        output on the minibatch, if the rule computed it already)."""
        config = self.value.config
        targets = self.targets[index]
        values = (
            self.value.net(self.obs[index]) if features is None else self.value.net.from_features(features)
        )
        old_values = self.old_values[index] if self.old_values is not None else None
        loss = value_loss(values, targets, old_values, config.clip_range)
        self.losses.append((loss.detach(), len(targets)))
        return loss if self.value.coef == 1.0 else self.value.coef * loss

    def step(self) -> None:
        """Clip V's gradients and take its optimizer step (shared: the rule's step took it)."""
        if self.value.optimizer is not None:
            self.value.optimizer.clip_grad_norm(self.value.config.max_grad_norm)
            self.value.optimizer.step()
        self.steps_taken += 1

    def finish(self) -> None:
        """Take the steps of the config.iters passes not taken yet, in fresh shuffles. A V that
        shares the policy's encoder takes none alone: after the rule's early stop, it stops too."""
        if self.value.shared:
            return
        size = self.value.config.minibatch_size
        total = self.value.config.iters * self.steps_per_pass
        while self.steps_taken < total:
            for index in shuffled_minibatches(len(self.targets), size)[: total - self.steps_taken]:
                self.zero_grad()
                self.loss(index).backward()
                self.step()

    def info(self) -> dict[str, float]:
        """The loss over the last pass (its minibatch losses weighted by size); nothing when no
        step was taken (a rule sharing its encoder with V stopped before its first step)."""
        if not self.losses:
            return {}
        last_pass = self.losses[-self.steps_per_pass :]
        return {"train/value_loss": sum(loss.item() * size for loss, size in last_pass) / len(self.targets)}
