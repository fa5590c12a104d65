"""Errors as pgrun reports them: one line naming the bad key or value and what is allowed.

The errors the command line catches are defined here, apart from the modules that raise
them, so that catching them does not import torch."""

from __future__ import annotations

import dataclasses

from hydra.errors import MissingConfigException, OverrideParseException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException


class CheckpointError(RuntimeError):
    """No readable checkpoint to resume from; the message is one line."""


class EnvNotReplayable(RuntimeError):
    """Replaying an episode did not reproduce the recorded observation; the message is one line."""


class RunFailed(RuntimeError):
    """The run stopped on its own (a non-finite loss, parameter or reward, a failing env);
    the message is one line."""


def first_line(error: BaseException) -> str:
    """The first non-blank line of an exception's message ('' if it has none)."""
    return next((line.strip() for line in str(error).splitlines() if line.strip()), "")


def one_line(error: BaseException) -> str:
    """A single line naming the bad key or value and, where known, what is allowed."""
    if isinstance(error, MissingConfigException) and error.options:
        group, _, value = str(error.missing_cfg_file).rpartition("/")
        return f"{group}={value} is not allowed: must be one of {', '.join(error.options)}"
    if isinstance(error, OverrideParseException):
        return f"cannot parse override {error.override!r}: {str(error).splitlines()[0]}"
    first = first_line(error) or type(error).__name__
    cause = error.__cause__
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and cause.full_key:
        # object_type is the schema of the node that lacks the key (PPOConfig for algo=ppo)
        if dataclasses.is_dataclass(cause.object_type):
            allowed = ", ".join(f.name for f in dataclasses.fields(cause.object_type))
            return f"{cause.full_key} is not a known key: known keys are {allowed}"
        return f"{cause.full_key} is not a known key (add a key to a dict such as env.kwargs with +key=value)"
    if isinstance(cause, OmegaConfBaseException) and cause.full_key:
        return f"{cause.full_key}: {str(cause).splitlines()[0]}"
    return first
