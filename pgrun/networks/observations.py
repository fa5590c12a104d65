"""How observations reach the networks: every observation is stored as one flat vector per
step, and its layout says which parts of that vector are what.

    space               part(s)                                          stored as
    Box (float)         vector: the values, flattened                    float32
    Box (uint8 / bool)  image, if 2-D (H, W) or 3-D (H, W, C) / (C, H, W)  its own bytes, unscaled,
                        with sides >= 3; else vector                       (H, W, C) order
    Discrete(n)         vector: one-hot, n entries
    MultiDiscrete       vector: a one-hot per entry, concatenated
    MultiBinary         vector: the bits
    Dict / Tuple        the parts of its entries in order (nested ones too), named by their path

The vector is stored as uint8 when it holds an image and every part is byte-valued (images
of uint8 or bool, one-hots, bits): Atari frames stay 1 byte a pixel in the batch, 4x less
than float32. Otherwise float32. Encoders (pgrun.networks.encoders) read the parts back:
images scaled by 1 / high (pixels to [0, 1]) and given to a CNN, vectors as they are. An
image is stored channels last whatever the env's order (a stack of Atari frames is (C, H, W)):
the layout oneDNN's CPU convolutions read fastest, reached from the bytes by one contiguous
conversion to floats where a transposing one would cost three times as long.
Imports numpy and gymnasium only.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

SUPPORTED = "Box, Discrete, MultiDiscrete, MultiBinary, and Dict or Tuple of those"
"""the observation spaces pgrun accepts, in words (for error messages)"""

MIN_IMAGE_SIDE = 3
"""a 2-D or 3-D byte Box with a side shorter than this is read as a vector, not an image"""


class UnsupportedSpace(ValueError):
    """An observation space pgrun has no encoder for; the message is one line."""


@dataclass(frozen=True)
class ObservationPart:
    """One entry of the flat observation vector: columns [start, start + size).

    An image's `shape` is (channels, height, width) and `channels_first` says how the env
    lays it out ((C, H, W) or (H, W, C)); it is stored as (H, W, C) either way (see the module
    docstring), and its values are scaled by 1 / high in the network.
    """

    name: str
    """path of the entry in a Dict / Tuple ("image", "0.position"); "" for a whole space"""
    kind: str
    """"vector" or "image\""""
    start: int
    size: int
    byte_valued: bool
    """every value fits a uint8 exactly (bytes, bools, one-hots, bits)"""
    shape: tuple[int, int, int] = (0, 0, 0)
    channels_first: bool = False
    high: float = 1.0

    @property
    def columns(self) -> slice:
        return slice(self.start, self.start + self.size)


@dataclass(frozen=True)
class ObservationLayout:
    """The parts of a space's flat observation vector, in order, and how it is stored."""

    parts: tuple[ObservationPart, ...]
    dtype: np.dtype
    """float32, or uint8 when there is an image and every part is byte-valued"""

    @property
    def dim(self) -> int:
        return sum(part.size for part in self.parts)

    @property
    def images(self) -> tuple[ObservationPart, ...]:
        return tuple(part for part in self.parts if part.kind == "image")

    @property
    def is_vector(self) -> bool:
        """One float vector and no image: the layout of every space pgrun accepted before images."""
        return not self.images


def is_byte_dtype(dtype: np.dtype) -> bool:
    return dtype == np.uint8 or dtype == np.bool_


def image_part(name: str, space: gym.spaces.Box, start: int) -> ObservationPart | None:
    """The space as an image part, or None if it is not one (see the module docstring)."""
    if not is_byte_dtype(space.dtype) or len(space.shape) not in (2, 3):
        return None
    shape = space.shape if len(space.shape) == 3 else (*space.shape, 1)
    channels_first = len(space.shape) == 3 and shape[0] < min(shape[1], shape[2])
    channels, height, width = shape if channels_first else (shape[2], shape[0], shape[1])
    if min(height, width) < MIN_IMAGE_SIDE:
        return None
    high = 1.0 if space.dtype == np.bool_ else float(np.max(space.high))
    return ObservationPart(
        name,
        "image",
        start,
        int(np.prod(shape)),
        True,
        (channels, height, width),
        channels_first,
        max(high, 1.0),
    )


def space_leaves(space: gym.Space, path: tuple = ()) -> list[tuple[tuple, gym.Space]]:
    """(path, space) of every non-Dict, non-Tuple entry, in the space's order (the order of the
    stored vector's parts, and of a batch's entries as the preprocessor reads them)."""
    if isinstance(space, gym.spaces.Dict):
        return [leaf for key, entry in space.spaces.items() for leaf in space_leaves(entry, (*path, key))]
    if isinstance(space, gym.spaces.Tuple):
        return [leaf for index, entry in enumerate(space) for leaf in space_leaves(entry, (*path, index))]
    return [(path, space)]


def leaf_part(space: gym.Space, name: str, start: int) -> ObservationPart:
    """The part one non-Dict, non-Tuple entry makes, at column `start`."""
    if isinstance(space, gym.spaces.Box):
        if (image := image_part(name, space, start)) is not None:
            return image
        return ObservationPart(name, "vector", start, int(np.prod(space.shape)), is_byte_dtype(space.dtype))
    if isinstance(space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)):
        return ObservationPart(name, "vector", start, int(gym.spaces.flatdim(space)), True)
    if name:
        raise UnsupportedSpace(
            f"env observation entry {name!r} is a {type(space).__name__} space, which pgrun cannot "
            f"encode: use {SUPPORTED}"
        )
    raise UnsupportedSpace(f"env observation space {space} is not supported: use {SUPPORTED}")


def observation_layout(space: gym.Space) -> ObservationLayout:
    """The layout of `space`'s flat observation vector; UnsupportedSpace (one line) for a space,
    or a Dict / Tuple entry, that pgrun has no encoder for (Text, Graph, Sequence, ...)."""
    parts: list[ObservationPart] = []
    for path, leaf in space_leaves(space):
        parts.append(leaf_part(leaf, ".".join(map(str, path)), sum(part.size for part in parts)))
    has_image = any(part.kind == "image" for part in parts)
    byte_valued = all(part.byte_valued for part in parts)
    return ObservationLayout(tuple(parts), np.dtype(np.uint8 if has_image and byte_valued else np.float32))
