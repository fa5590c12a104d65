"""Optimizers as the config describes them, their learning-rate schedule, and one clipped step."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from pgrun.config import OptimizerConfig

RMSPROP_ALPHA = 0.99


def make_optimizer(params: Iterable[torch.nn.Parameter], config: OptimizerConfig) -> torch.optim.Optimizer:
    """Adam, RMSprop (smoothing constant 0.99, as in A2C) or SGD over `params` at config.lr.

    Adam is torch's fused kernel: one call updates every parameter tensor, where the default
    on CPU loops over them (the same update rule, in fewer and larger operations).
    """
    params = list(params)
    if config.name == "adam":
        return torch.optim.Adam(params, lr=config.lr, eps=config.eps, fused=True)
    if config.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.lr, alpha=RMSPROP_ALPHA, eps=config.eps)
    return torch.optim.SGD(params, lr=config.lr)


def scheduled_lr(config: OptimizerConfig, progress: float) -> float:
    """The learning rate when a fraction `progress` of total_steps is done:
    constant: lr; linear: lr * (1 - progress), reaching 0 at the end of the budget."""
    return config.lr * (1.0 - progress) if config.lr_schedule == "linear" else config.lr


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def clip_gradients(params: list[Tensor], max_norm: float | None) -> float:
    """Scale the gradients of `params` to a global norm of at most max_norm (None: leave them);
    return their norm before clipping."""
    return torch.nn.utils.clip_grad_norm_(params, max_norm or float("inf")).item()
