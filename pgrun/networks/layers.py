"""Layers the networks are built of: MLPs computed in one call, and a faster tanh.

Owns the activations by name (ACTIVATIONS), `tanh` (torch's on small inputs, by way of
sigmoid on large ones), the MLP module and its initialization. Imports torch only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

SIGMOID_TANH_MIN_ELEMENTS = 8192
"""inputs at least this large get tanh by way of sigmoid (`tanh`); measured on 64-wide layers
with one torch thread, torch.tanh is as fast below (128 rows) and up to 3x slower above"""


class SigmoidTanh(torch.autograd.Function):
    """tanh(x) = 2 sigmoid(2x) - 1, differentiated as tanh: d tanh(x)/dx = 1 - tanh(x)^2.

    torch's CPU tanh is about 8x slower per element than its sigmoid (one torch thread,
    float32: 35 us against 4 us for a 256 x 64 activation), and a minibatch step of PPO on
    CartPole spends a fifth of its time there. The two forms agree to 2e-7.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        y = torch.sigmoid(x * 2).mul_(2).sub_(1)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)  # grad * (1 - y^2), in one kernel


def tanh(x: Tensor) -> Tensor:
    """tanh(x): torch.tanh on small inputs, SigmoidTanh on large ones (where it is faster)."""
    return SigmoidTanh.apply(x) if x.numel() >= SIGMOID_TANH_MIN_ELEMENTS else torch.tanh(x)


ACTIVATIONS: dict[str, tuple[type[nn.Module], Callable[[Tensor], Tensor]]] = {
    "tanh": (nn.Tanh, tanh),
    "relu": (nn.ReLU, torch.relu),
    "elu": (nn.ELU, F.elu),
    "gelu": (nn.GELU, F.gelu),
    "silu": (nn.SiLU, F.silu),
}
"""name -> (the layer, the function it applies)"""


class MLP(nn.Sequential):
    """Linear layers with an activation between them, computed as one call: the same
    parameters and state_dict as nn.Sequential, without a module call per layer (the
    collector calls the policy every env step, where that overhead is ~10% of a step), and
    its numbers but for tanh on large inputs (`tanh`: within 3e-7).
    Built once by `mlp`; slicing it or adding layers afterwards is not supported."""

    def __init__(self, *layers: nn.Module, activation: Callable[[Tensor], Tensor]) -> None:
        super().__init__(*layers)
        self.linears = [layer for layer in layers if isinstance(layer, nn.Linear)]
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        *hidden, output = self.linears
        return F.linear(through_hidden_layers(x, hidden, self.activation), output.weight, output.bias)


def linear(in_dim: int, out_dim: int, init: str, gain: float) -> nn.Linear:
    """A linear layer; with init == "orthogonal", weights orthogonal with `gain` and zero biases
    (else torch's default initialization)."""
    layer = nn.Linear(in_dim, out_dim)
    if init == "orthogonal":
        nn.init.orthogonal_(layer.weight, gain=gain)
        nn.init.zeros_(layer.bias)
    return layer


HIDDEN_GAIN = math.sqrt(2)
"""orthogonal initialization's gain for layers followed by an activation"""


def hidden_layers(sizes: list[int], init: str) -> nn.ModuleList:
    """The linear layers sizes[0] -> sizes[1] -> ... -> sizes[-1] of an MLP's hidden part."""
    return nn.ModuleList(linear(n_in, n_out, init, HIDDEN_GAIN) for n_in, n_out in itertools.pairwise(sizes))


def through_hidden_layers(
    x: Tensor, layers: Iterable[nn.Linear], activation: Callable[[Tensor], Tensor]
) -> Tensor:
    """h_0 = x, h_{i+1} = activation(W_i h_i + b_i): as one call over the weights (no module
    call per layer: the collector calls the policy every env step)."""
    for layer in layers:
        x = activation(F.linear(x, layer.weight, layer.bias))
    return x


def mlp(
    in_dim: int, out_dim: int, hidden_sizes: list[int], activation: str, init: str, out_gain: float = 0.01
) -> MLP:
    """in_dim -> hidden_sizes (with activation) -> out_dim.

    With init == "orthogonal": hidden weights orthogonal with gain sqrt(2), the output
    layer with `out_gain` (small for a policy, so it starts near uniform), zero biases.
    """
    sizes = [in_dim, *hidden_sizes, out_dim]
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        is_output = i == len(sizes) - 2
        layers.append(linear(n_in, n_out, init, out_gain if is_output else HIDDEN_GAIN))
        if not is_output:
            layers.append(ACTIVATIONS[activation][0]())
    return MLP(*layers, activation=ACTIVATIONS[activation][1])


def device_of(module: nn.Module) -> torch.device:
    """Where a network's parameters are (the CPU for one without parameters)."""
    return next(module.parameters(), torch.empty(0)).device
