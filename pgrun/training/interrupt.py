"""Stopping a run cleanly on SIGINT (Ctrl-C) or SIGTERM (a cluster's notice before pre-emption).

The first signal only asks the training loop to stop: it finishes the iteration it is in,
writes a checkpoint and raises `Interrupted`. A second signal stops at once (raising
`Interrupted` wherever the program is); atomic writes leave the previous checkpoint intact.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}
"""128 + the signal's number, as shells report a process ended by that signal"""


class Interrupted(BaseException):
    """The run stopped on a signal. `checkpoint_step` is the env step of the checkpoint it
    can resume from (None if it stopped before writing one)."""

    def __init__(self, signum: int, checkpoint_step: int | None, immediate: bool) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum, self.checkpoint_step, self.immediate = signum, checkpoint_step, immediate

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS[signal.Signals(self.signum)]


class StopRequests:
    """Within `with StopRequests() as stop:`, SIGINT and SIGTERM set `stop.signum` instead of
    killing the process; a second one raises Interrupted(immediate=True) at once.
    Outside the main thread (where Python cannot handle signals) it does nothing."""

    def __init__(self, ignore_after_stop: bool = True) -> None:
        """`ignore_after_stop`: after an Interrupted, leave SIGINT and SIGTERM ignored (a
        command on its way out); False restores the previous handlers (a notebook's kernel)."""
        self.ignore_after_stop = ignore_after_stop
        self.signum: int | None = None
        self.last_checkpoint_step: int | None = None
        self.previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise Interrupted(signum, self.last_checkpoint_step, immediate=True)
        self.signum = signum

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for signum in EXIT_STATUS:
                self.previous[signum] = signal.signal(signum, self.handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Restore the previous handlers; but on the way out after a stop, ignore further
        signals, so that another Ctrl-C cannot turn a clean exit into a traceback."""
        ignore = self.ignore_after_stop and isinstance(error, Interrupted)
        for signum, handler in self.previous.items():
            signal.signal(signum, signal.SIG_IGN if ignore else handler)
