"""systemd notifications without libsystemd: READY=1 once, then WATCHDOG=1 pings from the live loop.

Under systemd with `WatchdogSec=` (deploy/systemd/edge-ser.service), systemd sets `NOTIFY_SOCKET` and
`WATCHDOG_USEC`; if no `WATCHDOG=1` arrives within that time it kills the service (SIGABRT) and `Restart=on-failure`
starts it again. `ping()` is called from the loop that waits for audio (at least every 0.5 s, also while the
microphone is lost and being retried), so a ping proves the loop itself is alive, not just the process. Pings are
rate-limited to one per WATCHDOG_USEC / 4; outside systemd (`NOTIFY_SOCKET` unset) `ping()` is one check and returns.
"""

from __future__ import annotations

import os
import socket
import time

_state: dict[str, object] = {}


def notify(message: str, env: dict[str, str] | None = None) -> bool:
    """Send `message` (e.g. "READY=1") to systemd's notification socket; False when not under systemd."""
    path = (env if env is not None else os.environ).get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):  # abstract namespace
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(path)
            s.sendall(message.encode())
        return True
    except OSError:
        return False


def watchdog_interval(env: dict[str, str] | None = None) -> float | None:
    """Seconds systemd waits for a ping (WATCHDOG_USEC, for this process per WATCHDOG_PID); None if no watchdog."""
    e = env if env is not None else os.environ
    usec, pid = e.get("WATCHDOG_USEC"), e.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 1e6


def ping(now: float | None = None) -> None:
    """READY=1 on the first call, then WATCHDOG=1 at most every interval / 4. Cheap; call it every loop turn."""
    if not _state.get("ready"):
        _read_environment()
        _state["ready"] = True
        if _state["on"]:
            notify("READY=1")
    keepalive(now)


def keepalive(now: float | None = None) -> None:
    """WATCHDOG=1 at most every interval / 4, without READY=1: for set-up work before the loop that takes long
    (`--enroll` of many files on a Pi), which the watchdog (armed from the start: the unit is Type=simple) would
    otherwise kill after WatchdogSec, before the first ping of the loop."""
    if not _state:
        _read_environment()
    if not _state["on"] or not _state["every"]:
        return
    t = time.monotonic() if now is None else now
    if t - _state["last"] >= _state["every"]:  # type: ignore[operator]
        _state["last"] = t
        notify("WATCHDOG=1")


def _read_environment() -> None:
    """What systemd said in the environment: a notification socket, and the watchdog's interval."""
    _state["on"] = bool(os.environ.get("NOTIFY_SOCKET"))
    _state["every"] = (watchdog_interval() or 0.0) / 4
    _state["last"] = float("-inf")


def reset() -> None:
    """Forget the state read from the environment (tests)."""
    _state.clear()
