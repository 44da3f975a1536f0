"""Exponential back-off for reconnecting a camera or microphone that went away.

`Backoff` is the schedule (0.5 s, 1 s, 2 s, 4 s, 8 s, 8 s, ... by default); `RetryTimer` puts it on a clock
for code that must not block (the microphone is retried from the consumer's `read()`), while the camera's
reader thread simply waits `next_delay()` on its stop event. Standard library only.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from edge_ser.errors import ConfigError


@dataclass
class Backoff:
    """Delays between reconnection attempts: `initial` seconds, multiplied by `factor` after each failed
    attempt, capped at `max`. `reset()` after a success starts over from `initial`.

    No jitter: one device reconnects to one local camera/mic, there is no thundering herd to spread out, and
    a deterministic schedule is testable.
    """

    initial: float = 0.5
    factor: float = 2.0
    max: float = 8.0
    attempts: int = field(default=0, init=False)
    """Failed attempts since the last `reset()` (how many delays `next_delay()` has handed out)."""

    def __post_init__(self) -> None:
        for name in ("initial", "factor", "max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"Backoff: {name} must be a number, got {value!r}")
        if self.initial <= 0:
            raise ConfigError(f"Backoff: initial must be > 0 seconds, got {self.initial}")
        if self.factor < 1:
            raise ConfigError(f"Backoff: factor must be >= 1, got {self.factor}")
        if self.max < self.initial:
            raise ConfigError(f"Backoff: max ({self.max} s) must be >= initial ({self.initial} s)")

    def peek(self) -> float:
        """The delay the next `next_delay()` will return, without counting an attempt."""
        delay = float(self.initial)
        if self.factor > 1:
            for _ in range(self.attempts):  # stops at the cap: no float overflow after days of retrying
                delay *= self.factor
                if delay >= self.max:
                    break
        return min(float(self.max), delay)

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt; counts one failed attempt."""
        delay = self.peek()
        self.attempts += 1
        return delay

    def reset(self) -> None:
        """A success: the next failure waits `initial` again."""
        self.attempts = 0

    def wait(self, stop: threading.Event) -> bool:
        """Sleep `next_delay()` seconds unless `stop` is set first; True when stopped."""
        return stop.wait(self.next_delay())


@dataclass
class RetryTimer:
    """A non-blocking retry schedule on a monotonic clock: `due()` says whether to try now, `failed()`
    schedules the next try after `backoff.next_delay()`, `succeeded()` resets.

    `clock` is injectable so tests need not sleep.
    """

    backoff: Backoff = field(default_factory=Backoff)
    clock: Callable[[], float] = time.monotonic
    next_try: float = 0.0
    """Clock time of the next allowed attempt (0: now)."""

    def due(self) -> bool:
        return self.clock() >= self.next_try

    def failed(self) -> float:
        """Schedule the next attempt; returns the delay in seconds."""
        delay = self.backoff.next_delay()
        self.next_try = self.clock() + delay
        return delay

    def succeeded(self) -> None:
        self.backoff.reset()
        self.next_try = 0.0

    def remaining(self) -> float:
        """Seconds until the next attempt is due (0 when due)."""
        return max(0.0, self.next_try - self.clock())
