"""Clean stops on Ctrl-C and SIGTERM: the live loop finishes its update, closes outputs, exits with code 0.

`StopFlag` replaces the SIGINT and SIGTERM handlers for its lifetime. The first signal only records a
request; the loop checks `stop.is_set()` between updates and leaves normally, so streams get closed and
the last results flushed (systemd's `systemctl stop` sends SIGTERM and waits). A second signal means the
clean stop is stuck: the process ends at once with 128 + signal number (130 for Ctrl-C), the shell's
convention. Lines already written by the JSON-lines output stay whole either way.

Why not a threading.Event set in the handler: Python runs signal handlers in the main thread between
bytecodes, possibly while that same thread holds the Event's internal lock inside `Event.wait()`; `set()`
would then deadlock. The handler here only assigns attributes and calls `os.write`, both safe there, and
`wait()` sleeps in short slices instead.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterable
from types import FrameType
from typing import Any

DEFAULT_SIGNALS = (signal.SIGINT, signal.SIGTERM)
POLL_S = 0.05
"""Slice of `StopFlag.wait`: the longest a waiting loop lags behind a signal."""


class StopFlag:
    """A stop request set by SIGINT / SIGTERM (or by `set()`), with the previous handlers restored on exit.

    Use as a context manager in the main thread::

        with StopFlag() as stop, make_outputs(settings) as outputs:
            while not stop.is_set():
                outputs.emit(pipeline.step())
        # outputs closed, handlers restored; return 0

    Installing from another thread is impossible (Python delivers signals to the main thread only): the flag
    then works through `set()` alone and `installed` is False. message: written to stderr on the first
    signal (None: silent).
    """

    def __init__(
        self,
        signals: Iterable[int] = DEFAULT_SIGNALS,
        *,
        message: str | None = "edge-ser: stopping (press Ctrl-C again to force)",
    ) -> None:
        self.signals = tuple(signals)
        self.message = message
        self._stop = False
        self.signum: int | None = None
        """The first signal received, or None (not stopped, or stopped by `set()`)."""
        self.received = 0
        """Signals received so far."""
        self._previous: dict[int, Any] = {}
        self.installed = False

    # -- the request ---------------------------------------------------------------------------------
    def is_set(self) -> bool:
        """True once a stop was requested."""
        return self._stop

    def set(self) -> None:
        """Request a stop from code (a window's q key, an end of file, a test)."""
        self._stop = True

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until a stop is requested or `timeout` seconds pass; True when stopped. A loop that paces
        itself with `stop.wait(period)` therefore reacts within POLL_S of a signal."""
        end = None if timeout is None else time.monotonic() + timeout
        while not self._stop:
            left = POLL_S if end is None else min(POLL_S, end - time.monotonic())
            if left <= 0:
                break
            time.sleep(left)
        return self._stop

    @property
    def signal_name(self) -> str | None:
        """The first signal received by name ("SIGINT", "SIGTERM", ...), else None."""
        return signal.Signals(self.signum).name if self.signum is not None else None

    # -- handlers ------------------------------------------------------------------------------------
    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received += 1
        if self.received > 1:
            os.write(2, f"edge-ser: second {signal.Signals(signum).name}: forced exit\n".encode())
            os._exit(128 + signum)  # the clean stop hangs: end now, unflushed buffers and all
        self.signum = signum
        self._stop = True
        if self.message:
            text = self.message
            if signum != signal.SIGINT:  # a service's SIGTERM: "Ctrl-C" means nothing there
                text = text.replace("press Ctrl-C again", f"send {signal.Signals(signum).name} again")
            try:
                os.write(2, (text + "\n").encode())  # raw fd write: no buffered-stream reentrancy
            except OSError:
                pass

    def install(self) -> StopFlag:
        """Put this flag's handler on every signal in `signals` (main thread only; elsewhere a no-op)."""
        if self.installed or threading.current_thread() is not threading.main_thread():
            return self
        for s in self.signals:
            self._previous[s] = signal.signal(s, self._handle)
        self.installed = True
        return self

    def restore(self) -> None:
        """Put back the handlers that were there before `install()`."""
        if not self.installed:
            return
        for s, prev in self._previous.items():
            signal.signal(s, prev if prev is not None else signal.SIG_DFL)
        self._previous.clear()
        self.installed = False

    def __enter__(self) -> StopFlag:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.restore()


__all__ = ["DEFAULT_SIGNALS", "StopFlag"]
