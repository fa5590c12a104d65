"""The errors a run can end with, each a one-line message, defined apart from the modules
that raise them so that catching them imports neither torch nor Hydra; and `first_line`.

ConfigError (a bad config value) lives with the config, pgrun.config.schema."""

from __future__ import annotations


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
