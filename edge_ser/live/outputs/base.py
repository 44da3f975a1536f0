"""What every live output shares: the two-method `Output` protocol and `OutputError` (see the package doc)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from edge_ser.errors import EdgeSerError
from edge_ser.live.result import LiveResult


class OutputError(EdgeSerError):
    """An output cannot take a result: it is closed, its file or stream failed, or its port is taken."""


@runtime_checkable
class Output(Protocol):
    """A consumer of live results (console, JSON lines, overlay window, web page)."""

    def emit(self, result: LiveResult) -> None:
        """Show, write or broadcast one result. Must return quickly (never wait on a consumer)."""

    def close(self) -> None:
        """Flush and release everything; idempotent."""


__all__ = ["Output", "OutputError"]
