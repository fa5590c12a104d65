"""The optimizers of the update rules (Adam, RMSprop, SGD), their learning-rate schedule and
gradient clipping, all on one flat buffer per optimizer.

An optimizer moves its parameters into one contiguous tensor (each parameter becomes a
view of it) and gives them gradients that are views of a second one. Backward passes
accumulate into those views in place, so clipping and the update rule are a handful of
operations on two long vectors, however many layers the network has: torch's optimizers
loop over the parameter tensors (or fuse them in a kernel that brings in torch._dynamo,
about a second of start-up) and are several times slower at these network sizes.
The update formulas are torch's, term for term (tests/test_optim.py compares them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from pgrun.config import OptimizerConfig

ADAM_BETAS = (0.9, 0.999)
RMSPROP_ALPHA = 0.99
ALIGNMENT = 16
"""elements (64 bytes of float32) between the starts of parameters in the flat buffers"""
CLIP_EPS = 1e-6
"""added to the gradient norm in the clipping factor, as torch.nn.utils.clip_grad_norm_ does"""


class OptimizerDetached(RuntimeError):
    """A parameter no longer lives in its optimizer's flat buffer; the message is one line."""


Modules = Mapping[str, torch.nn.Module]
"""the networks an optimizer steps, by name ({"policy": policy, "critic": critic})"""


class FlatOptimizer:
    """Parameters and gradients as views of two flat buffers; subclasses define `update`.

    The views are checked by zero_grad and step (`ensure_bound`; clip_grad_norm checks the
    gradients'): a parameter whose storage left the buffer (a module moved with .to(), cast
    with .double(), parameter.data reassigned, vector_to_parameters) or that its module
    replaced (load_state_dict(assign=True)) would otherwise be silently left out of every step.
    When all of them left together (a network moved or cast as a whole), the buffers are
    rebuilt where they are now (`rebind`), statistics included; one that left alone, or was
    replaced, is an OptimizerDetached error naming it. A gradient that left its view
    (module.zero_grad() sets it to None, and backward then makes a new one) is copied back and
    bound again (zero if backward never reached it): the step uses exactly the gradient
    backward computed.
    """

    def __init__(self, modules: Modules, lr: float) -> None:
        self.owners: list[tuple[torch.nn.Module, str]] = []
        """where each parameter lives: (the module that holds it, its attribute name)"""
        self.names, self.params = [], []
        seen: set[int] = set()
        for prefix, network in modules.items():
            for module_name, module in network.named_modules(prefix=prefix):
                for name, param in module.named_parameters(recurse=False):
                    if id(param) in seen:  # a parameter tied between modules is stepped once
                        continue
                    seen.add(id(param))
                    self.owners.append((module, name))
                    self.names.append(f"{module_name}.{name}")
                    self.params.append(param)
        self.lr = lr
        self.steps = 0
        self.bind()

    def bind(self) -> None:
        """Make the flat buffers from the parameters' current values and devices, and every
        parameter and gradient a view of them."""
        # Each parameter starts on a 64-byte boundary, as a tensor of its own would: matrix
        # kernels choose their code path (and so their rounding) by alignment, and a policy
        # must compute the same numbers here as when loaded from its file. The gaps stay 0.
        offsets = []
        end = 0
        for p in self.params:
            offsets.append(end)
            end += -(-p.numel() // ALIGNMENT) * ALIGNMENT
        first = self.params[0] if self.params else torch.zeros(0)
        self.flat = torch.zeros(end, dtype=first.dtype, device=first.device)
        self.grad = torch.zeros_like(self.flat)
        self.grad_views = []
        for p, offset in zip(self.params, offsets, strict=True):
            view = self.flat[offset : offset + p.numel()].view_as(p)
            view.copy_(p.detach())
            grad_view = self.grad[offset : offset + p.numel()].view_as(p)
            if p.grad is not None:  # (a gradient computed before a move is kept)
                grad_view.copy_(p.grad)
            p.data, p.grad = view, grad_view
            self.grad_views.append(grad_view)
        self.addresses = [p.data_ptr() for p in self.params]
        # (registry, name, parameter, address) per parameter, for ensure_bound: a module keeps
        # its parameters in its _parameters dict (load_state_dict(assign=True) and setattr
        # replace them there), and reading that dict costs a tenth of nn.Module's getattr
        self.bindings = [
            (module._parameters, name, p, address)
            for (module, name), p, address in zip(self.owners, self.params, self.addresses, strict=True)
        ]

    def rebind(self) -> None:
        """Rebuild the buffers where the parameters are now (after a move of the whole
        network to another device or dtype), carrying the statistics over."""
        statistics = {name: value.clone() for name, value in self.statistics().items()}
        self.bind()
        for name, value in statistics.items():
            setattr(self, name, value.to(self.flat))

    def ensure_bound(self) -> None:
        """Check the parameters' and gradients' views before the buffers are used (see the class)."""
        for i, (registry, name, param, address) in enumerate(self.bindings):
            if registry.get(name) is not param:
                raise OptimizerDetached(
                    f"parameter {self.names[i]} was replaced in its module after the optimizer was made "
                    "(load_state_dict(assign=True), a new nn.Parameter), so steps would leave it "
                    "unchanged; load weights in place (load_state_dict without assign), or make a new "
                    "optimizer"
                )
            if param.data_ptr() != address:
                self.rebind_moved()
                return
        self.ensure_gradients_bound()

    def ensure_gradients_bound(self) -> None:
        """Copy a gradient that backward made anew (after module.zero_grad()) into its view;
        one left at None (a parameter no backward pass reached since) is zero."""
        for p, view in zip(self.params, self.grad_views, strict=True):
            if p.grad is not view:
                if p.grad is None:
                    view.zero_()
                else:
                    view.copy_(p.grad)
                p.grad = view

    def rebind_moved(self) -> None:
        """Rebuild the buffers where the parameters are now if every one of them left (the
        networks were moved or cast as a whole: .to(device), .double(), a round trip, or
        vector_to_parameters); else an OptimizerDetached error naming the first that left."""
        left = [i for i, p in enumerate(self.params) if p.data_ptr() != self.addresses[i]]
        if len(left) == len(self.params) and len({(p.device, p.dtype) for p in self.params}) == 1:
            self.rebind()
            return
        raise OptimizerDetached(
            f"parameter {self.names[left[0]]} no longer lives in its optimizer's flat buffer (its "
            "data was moved, cast or reassigned after the optimizer was made, but not the other "
            "parameters'), so steps would leave it unchanged; move or cast the networks as a whole "
            "(the optimizer then rebuilds its buffers), or make a new optimizer"
        )

    def zero_grad(self) -> None:
        # A move makes the gradients anew too: rebind first, then zero what backward fills
        # (step checks the rest before the buffers are used).
        for p, address in zip(self.params, self.addresses, strict=True):
            if p.data_ptr() != address:
                self.rebind_moved()
                break
        self.grad.zero_()

    def clip_grad_norm(self, max_norm: float | None) -> float:
        """Scale the gradient to a global norm of at most max_norm (None: leave it), by
        min(1, max_norm / (norm + 1e-6)); return the norm before clipping."""
        self.ensure_gradients_bound()
        norm = torch.linalg.vector_norm(self.grad).item()
        scale = 1.0 if max_norm is None else max_norm / (norm + CLIP_EPS)
        if scale < 1.0:  # (the factor is a Python number: no tensor arithmetic for a scalar)
            self.grad.mul_(scale)
        return norm

    def step(self) -> None:
        """One update of the parameters from the accumulated gradient."""
        self.ensure_bound()
        self.steps += 1
        with torch.no_grad():
            self.update()

    def update(self) -> None:
        raise NotImplementedError

    def statistics(self) -> dict[str, Tensor]:
        """The optimizer's running statistics, by name (empty for plain SGD)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"lr": self.lr, "steps": self.steps} | {k: v.clone() for k, v in self.statistics().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lr, self.steps = state["lr"], state["steps"]
        for name, statistic in self.statistics().items():
            statistic.copy_(state[name])


class Adam(FlatOptimizer):
    """Adam (Kingma & Ba 2015), in torch's form:
    m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
    theta <- theta - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)"""

    def __init__(self, modules: Modules, lr: float, eps: float = 1e-8) -> None:
        super().__init__(modules, lr)
        self.eps = eps
        self.m, self.v = torch.zeros_like(self.flat), torch.zeros_like(self.flat)

    def update(self) -> None:
        b1, b2 = ADAM_BETAS
        self.m.lerp_(self.grad, 1 - b1)
        self.v.mul_(b2).addcmul_(self.grad, self.grad, value=1 - b2)
        denominator = (self.v.sqrt() / math.sqrt(1 - b2**self.steps)).add_(self.eps)
        self.flat.addcdiv_(self.m, denominator, value=-self.lr / (1 - b1**self.steps))

    def statistics(self) -> dict[str, Tensor]:
        return {"m": self.m, "v": self.v}


class RMSprop(FlatOptimizer):
    """RMSprop (Tieleman & Hinton 2012), in torch's form:
    s <- alpha s + (1 - alpha) g^2;  theta <- theta - lr g / (sqrt(s) + eps)"""

    def __init__(self, modules: Modules, lr: float, eps: float = 1e-8) -> None:
        super().__init__(modules, lr)
        self.eps = eps
        self.square_avg = torch.zeros_like(self.flat)

    def update(self) -> None:
        self.square_avg.mul_(RMSPROP_ALPHA).addcmul_(self.grad, self.grad, value=1 - RMSPROP_ALPHA)
        self.flat.addcdiv_(self.grad, self.denominator(), value=-self.lr)

    def denominator(self) -> Tensor:
        """sqrt(s) + eps"""
        return self.square_avg.sqrt().add_(self.eps)

    def statistics(self) -> dict[str, Tensor]:
        return {"square_avg": self.square_avg}


class RMSpropTF(RMSprop):
    """RMSprop in TensorFlow's form (Stable-Baselines3's RMSpropTFLike, which A2C on Atari
    uses: torch's form is unstable there), with the squared average starting at 1 and eps
    inside the root:
    s <- alpha s + (1 - alpha) g^2, s_0 = 1;  theta <- theta - lr g / sqrt(s + eps)"""

    def __init__(self, modules: Modules, lr: float, eps: float = 1e-8) -> None:
        super().__init__(modules, lr, eps)
        self.square_avg.fill_(1.0)

    def denominator(self) -> Tensor:
        """sqrt(s + eps)"""
        return self.square_avg.add(self.eps).sqrt_()


class SGD(FlatOptimizer):
    """theta <- theta - lr g"""

    def update(self) -> None:
        self.flat.add_(self.grad, alpha=-self.lr)


def make_optimizer(modules: Modules, config: OptimizerConfig) -> FlatOptimizer:
    """Adam, RMSprop (smoothing constant 0.99, as in A2C; torch's or TensorFlow's form) or SGD
    over the modules' parameters at config.lr."""
    if config.name == "adam":
        return Adam(modules, config.lr, config.eps)
    if config.name == "rmsprop":
        return RMSprop(modules, config.lr, config.eps)
    if config.name == "rmsprop_tf":
        return RMSpropTF(modules, config.lr, config.eps)
    return SGD(modules, config.lr)


def scheduled(lr: float, schedule: str, progress: float) -> float:
    """The learning rate when a fraction `progress` of the schedule's horizon is done:
    constant: lr; linear: lr * (1 - progress), reaching 0 at the end."""
    return lr * (1.0 - progress) if schedule == "linear" else lr


def scheduled_lr(config: OptimizerConfig, progress: float) -> float:
    """config.lr on config.lr_schedule (`scheduled`)."""
    return scheduled(config.lr, config.lr_schedule, progress)
