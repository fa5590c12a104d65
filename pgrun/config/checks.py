"""The field helpers of the config schema: `checked` (a dataclass field with the ranges and
choices its type cannot say) and `ConfigError` (a bad value, in one line). Imports nothing of
pgrun."""

from __future__ import annotations

from dataclasses import field
from typing import Any

from omegaconf import MISSING


class ConfigError(ValueError):
    """A configuration value outside what pgrun accepts; the message is one line."""


def checked(default: Any = MISSING, **rules: Any) -> Any:
    """A dataclass field whose value `validate` checks against `rules`.

    Rules: ge, gt, le, lt (bounds), choices (allowed values), pattern (a regular expression
    the whole value matches; `described` says what it allows). None values always pass, so an
    Optional field means "off" when set to null.
    """
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=rules)
    return field(default=default, metadata=rules)
