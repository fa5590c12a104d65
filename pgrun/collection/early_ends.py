"""Why a batch ends before it is complete: the env failed (`EnvFault`), a stop was requested
(`CollectionStopped`), or a batch of complete episodes grew past its bounds (`BatchTooLong`,
`batch_memory_limit`)."""

from __future__ import annotations

import os


class EnvFault(RuntimeError):
    """The env raised an exception or returned a non-finite reward or observation;
    `env_steps` counts the steps of the batch before it. The message is one line."""

    def __init__(self, message: str, env_steps: int) -> None:
        super().__init__(message)
        self.env_steps = env_steps


class CollectionStopped(Exception):
    """A stop was requested (`Collector.stop_requested`) while a batch was being collected:
    the collector stopped within one env step and the partial batch is dropped."""


class BatchTooLong(RuntimeError):
    """An episode batch reached `env_steps` before its episodes had all ended; `limit` says
    which bound it reached (the step limit, or the memory the batch would need)."""

    def __init__(self, env_steps: int, limit: str) -> None:
        super().__init__(f"an episode batch reached {env_steps:,} env steps ({limit})")
        self.env_steps, self.limit = env_steps, limit


STEP_OVERHEAD_BYTES = 1024
"""what a recorded step costs beyond its arrays' bytes (the tensors' and lists' bookkeeping)"""


def batch_memory_limit() -> int:
    """The bytes an episode batch may hold while collecting: half this machine's memory."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):  # (no sysconf: not Linux or macOS)
        return 8 * 2**30
