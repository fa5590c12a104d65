"""Observation encoders: the part of a network that turns the stored observation vector
(pgrun.networks.observations) into the features its head reads, chosen by the observation
space (policy.encoder=auto) or by name:

    mlp          every part as a float vector (images scaled to [0, 1]) -> the hidden layers
    nature_cnn   one image of sides >= 36: the CNN of Mnih et al. (2015, "Human-level control
                 through deep reinforcement learning"): 32 8x8/4, 64 4x4/2, 64 3x3/1, 512
    small_cnn    one small image or grid (MinAtar's 10x10xC): the network of Young and Tian
                 (2019, MinAtar): 16 3x3/1, 128
    multi_input  a CNN for each image (nature if both sides >= 36, else small), the vector
                 parts as they are, concatenated -> the hidden layers (Dict and Tuple spaces)

auto picks mlp for vectors, a CNN for one image and multi_input for several parts with an
image. Images arrive as bytes and are scaled by 1 / high inside the network, so the batch
keeps them small. A new encoder is one Encoder subclass and one line in ENCODERS.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from pgrun.config import ConfigError, PolicyConfig
from pgrun.networks.layers import ACTIVATIONS, HIDDEN_GAIN, hidden_layers, linear, through_hidden_layers
from pgrun.networks.observations import ObservationLayout, ObservationPart

NATURE_MIN_SIDE = 36
"""the smallest image side the Nature CNN's 8x8/4, 4x4/2, 3x3/1 convolutions leave a pixel of"""


class Encoder(nn.Module):
    """stored observations [..., dim] -> features [..., out_dim]."""

    out_dim: int


def image_of(x: Tensor, part: ObservationPart) -> Tensor:
    """The part's image as floats in [0, 1], [B, C, H, W] for x [..., dim] (leading dims
    flattened), laid out channels last in memory as it is stored (H, W, C): oneDNN's CPU
    convolutions run a Nature CNN's training step ~25% faster on such input than on the
    default channels-first layout, and the bytes become floats in one contiguous pass."""
    channels, height, width = part.shape
    pixels = x[..., part.columns].reshape(-1, height, width, channels).permute(0, 3, 1, 2)
    # one contiguous pass to floats (the copy is ours: scaled in place)
    return pixels.to(torch.float32, memory_format=torch.channels_last, copy=True).mul_(1.0 / part.high)


def column_scales(layout: ObservationLayout) -> Tensor:
    """[dim] factors: 1 / high on image columns, 1 elsewhere."""
    factors = torch.ones(layout.dim)
    for part in layout.images:
        factors[part.columns] = 1.0 / part.high
    return factors


class MLPEncoder(Encoder):
    """The hidden layers of an MLP, each followed by the activation: dim -> hidden_sizes.
    With no hidden layers the features pass as they are.

    With pgrun's tanh (pgrun.networks.layers.tanh)."""

    def __init__(self, layout: ObservationLayout, hidden_sizes: list[int], config: PolicyConfig) -> None:
        super().__init__()
        self.layout = layout
        self.layers = hidden_layers([layout.dim, *hidden_sizes], config.init)
        self.activation = ACTIVATIONS[config.activation][1]
        self.out_dim = hidden_sizes[-1] if hidden_sizes else layout.dim
        # images fed flat: scaled to [0, 1], stored as bytes or as floats (None: no image)
        self.register_buffer("scales", None if layout.is_vector else column_scales(layout), persistent=False)
        self.has_images = not layout.is_vector  # (a plain attribute: read every env step)

    def forward(self, x: Tensor) -> Tensor:
        if self.has_images:
            x = x.float() * self.scales
        elif not x.is_floating_point():
            x = x.float()
        return through_hidden_layers(x, self.layers, self.activation)


def conv(n_in: int, n_out: int, kernel: int, stride: int, init: str) -> nn.Conv2d:
    """A convolution; with init == "orthogonal", weights orthogonal with gain sqrt(2), zero biases."""
    layer = nn.Conv2d(n_in, n_out, kernel, stride)
    if init == "orthogonal":
        nn.init.orthogonal_(layer.weight, gain=HIDDEN_GAIN)
        nn.init.zeros_(layer.bias)
    return layer


class ImageEncoder(Encoder):
    """A CNN over one image part: convolutions with ReLU, flattened, a ReLU linear layer.
    `convolutions` are (channels out, kernel, stride)."""

    def __init__(
        self, part: ObservationPart, convolutions: list[tuple[int, int, int]], out_dim: int, init: str
    ) -> None:
        super().__init__()
        self.part = part
        channels, height, width = part.shape
        layers: list[nn.Module] = []
        for n_out, kernel, stride in convolutions:
            layers += [conv(channels, n_out, kernel, stride, init), nn.ReLU()]
            channels, height, width = n_out, (height - kernel) // stride + 1, (width - kernel) // stride + 1
        self.convolutions = nn.Sequential(*layers, nn.Flatten())
        self.linear = linear(channels * height * width, out_dim, init, HIDDEN_GAIN)
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        batch_shape = x.shape[:-1]
        features = F.relu(self.linear(self.convolutions(image_of(x, self.part))))
        return features.view(*batch_shape, self.out_dim)


def nature_cnn(part: ObservationPart, init: str) -> ImageEncoder:
    """Mnih et al. (2015): 32 8x8 stride 4, 64 4x4 stride 2, 64 3x3 stride 1, then 512 units."""
    return ImageEncoder(part, [(32, 8, 4), (64, 4, 2), (64, 3, 1)], 512, init)


def small_cnn(part: ObservationPart, init: str) -> ImageEncoder:
    """Young and Tian (2019, MinAtar): 16 3x3 stride 1, then 128 units."""
    return ImageEncoder(part, [(16, 3, 1)], 128, init)


def image_encoder(part: ObservationPart, init: str) -> ImageEncoder:
    """The Nature CNN if both sides reach NATURE_MIN_SIDE, else the small CNN."""
    return nature_cnn(part, init) if min(part.shape[1:]) >= NATURE_MIN_SIDE else small_cnn(part, init)


class SingleImageEncoder(Encoder):
    """One CNN over the one image of a layout (the heads read its features directly)."""

    def __init__(self, cnn: ImageEncoder) -> None:
        super().__init__()
        self.cnn = cnn
        self.out_dim = cnn.out_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.cnn(x)


class MultiInputEncoder(Encoder):
    """Dict / Tuple observations: each image through its own CNN, the vector parts as they are
    (one-hots, bits, values), all concatenated, then the hidden layers of an MLP."""

    def __init__(self, layout: ObservationLayout, hidden_sizes: list[int], config: PolicyConfig) -> None:
        super().__init__()
        self.vector_parts = [part for part in layout.parts if part.kind == "vector"]
        self.cnns = nn.ModuleList(image_encoder(part, config.init) for part in layout.images)
        width = sum(part.size for part in self.vector_parts) + sum(cnn.out_dim for cnn in self.cnns)
        self.layers = hidden_layers([width, *hidden_sizes], config.init)
        self.activation = ACTIVATIONS[config.activation][1]
        self.out_dim = hidden_sizes[-1] if hidden_sizes else width

    def forward(self, x: Tensor) -> Tensor:
        inputs = [x[..., part.columns].float() for part in self.vector_parts]
        inputs += [cnn(x) for cnn in self.cnns]
        h = inputs[0] if len(inputs) == 1 else torch.cat(inputs, dim=-1)
        return through_hidden_layers(h, self.layers, self.activation)


def encoder_name(layout: ObservationLayout, requested: str = "auto") -> str:
    """The encoder a layout gets: `requested` unless it is "auto"; auto: mlp for vectors,
    nature_cnn or small_cnn for one image, multi_input for several parts with an image."""
    if requested != "auto":
        return requested
    if layout.is_vector:
        return "mlp"
    if len(layout.parts) == 1:
        return "nature_cnn" if min(layout.parts[0].shape[1:]) >= NATURE_MIN_SIDE else "small_cnn"
    return "multi_input"


def unsuitable_encoder(layout: ObservationLayout, name: str) -> str | None:
    """Why the named encoder cannot read this layout (one line), or None if it can."""
    if name in ("nature_cnn", "small_cnn") and (len(layout.parts) != 1 or layout.is_vector):
        return f"policy.encoder={name} reads one image observation; this env's has {describe(layout)}"
    if name == "nature_cnn" and min(layout.parts[0].shape[1:]) < NATURE_MIN_SIDE:
        return (
            f"policy.encoder=nature_cnn needs image sides >= {NATURE_MIN_SIDE}; "
            f"this env's observation is {describe(layout)}"
        )
    return None


def describe(layout: ObservationLayout) -> str:
    """The layout in a few words: 'a vector of 4', 'an image 4x84x84 (C, H, W)', ..."""
    words = []
    for part in layout.parts:
        label = f"{part.name!r}: " if part.name else ""
        if part.kind == "image":
            words.append(f"{label}an image {'x'.join(map(str, part.shape))} (C, H, W)")
        else:
            words.append(f"{label}a vector of {part.size}")
    return ", ".join(words)


ENCODERS = {
    "mlp": lambda layout, hidden, config: MLPEncoder(layout, hidden, config),
    "nature_cnn": lambda layout, hidden, config: SingleImageEncoder(nature_cnn(layout.parts[0], config.init)),
    "small_cnn": lambda layout, hidden, config: SingleImageEncoder(small_cnn(layout.parts[0], config.init)),
    "multi_input": lambda layout, hidden, config: MultiInputEncoder(layout, hidden, config),
}
"""encoder name -> a builder from (layout, hidden sizes, policy config)"""


def make_encoder(
    layout: ObservationLayout, config: PolicyConfig, hidden_sizes: list[int] | None = None
) -> Encoder:
    """The encoder config.encoder names for the layout (auto: by the layout); the hidden
    layers after it are `hidden_sizes` (default config.hidden_sizes; CNNs of one image have none)."""
    name = encoder_name(layout, config.encoder)
    if (problem := unsuitable_encoder(layout, name)) is not None:
        raise ConfigError(problem)
    return ENCODERS[name](layout, config.hidden_sizes if hidden_sizes is None else hidden_sizes, config)


def vector_layout(dim: int) -> ObservationLayout:
    """The layout of a float vector of `dim` features."""
    return ObservationLayout((ObservationPart("", "vector", 0, dim, False),), np.dtype(np.float32))
