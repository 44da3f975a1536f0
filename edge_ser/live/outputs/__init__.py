"""Where live results go: a console table, JSON lines, an OpenCV overlay window and a local web page.

Every output implements the two-method `Output` protocol: `emit(result)` once per pipeline update and
`close()` once at the end (flush, release, end streams). The pipeline holds one `Outputs` fan-out built by
`make_outputs(OutputSettings(...))` and never needs to know which outputs are on.

Rules every output keeps, so one slow or missing consumer never stalls the audio loop:
- `emit` returns quickly: no network waits (the web server queues per client and drops the oldest), no
  blocking GUI calls beyond one `cv2.waitKey(1)`.
- `close` is idempotent and finishes promptly; after it `emit` raises `OutputError`.
- Nothing is imported at module top but the standard library and numpy: cv2 is imported by the overlay
  when it is first used.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from edge_ser.errors import ConfigError
from edge_ser.live.outputs.base import Output, OutputError
from edge_ser.live.result import LiveResult
from edge_ser.schema import config_from_dict

if TYPE_CHECKING:  # the concrete outputs are imported when switched on
    from edge_ser.live.outputs.console import ConsoleOutput
    from edge_ser.live.outputs.jsonl import JsonlOutput
    from edge_ser.live.outputs.overlay import OverlayWindow
    from edge_ser.live.outputs.web import WebServer


@dataclass(frozen=True)
class OutputSettings:
    """Which outputs the live pipeline feeds; `from_dict({})` gives the defaults (console only)."""

    console: bool = True
    """Live table on the terminal (redrawn in place on a TTY, one line per update otherwise)."""
    console_ascii: bool | None = None
    """Bars drawn with '#'/'.' instead of block characters; None: ASCII unless the stream is UTF-8."""
    jsonl: str | None = None
    """JSON-lines destination: a file path, "-" for stdout (the console then moves to stderr), or None."""
    jsonl_append: bool = False
    """Append to an existing JSON-lines file instead of replacing it."""
    overlay: bool = False
    """An OpenCV window with face box, label and bars; quietly off (with one notice) without a display."""
    web: bool = False
    """Serve the live page (HTML + server-sent events) from this process."""
    web_host: str = "127.0.0.1"
    """Interface the page listens on; "0.0.0.0" to reach it from other machines on the network."""
    web_port: int = 0
    """TCP port of the page; 0 picks a free one (read it from `Outputs.web.url`)."""
    web_max_clients: int = 16
    """Open live streams (browser tabs) at most; one more is answered 503 and its page retries."""
    web_allow_hosts: tuple[str, ...] = ()
    """Host names the page answers besides this device's own names and addresses (a reverse proxy, a DNS name);
    others get 403, against DNS rebinding; "*" answers any host."""

    def __post_init__(self) -> None:
        if not 0 <= self.web_port <= 65535:
            raise ConfigError(f"web_port (--web) must be in 0..65535, got {self.web_port}")
        if not 1 <= self.web_max_clients <= 1024:
            raise ConfigError(
                f"web_max_clients (--web-max-clients) must be in 1..1024, got {self.web_max_clients}"
            )
        if self.web_allow_hosts:
            from edge_ser.live.outputs.web import host_names

            hosts = host_names(self.web_allow_hosts, "web_allow_hosts (--web-allow-host)")
            object.__setattr__(
                self, "web_allow_hosts", hosts
            )  # frozen: the normalised tuple, also from a list
        if self.jsonl is not None and not str(self.jsonl).strip():
            raise ConfigError("jsonl must be a file path or '-', got an empty string")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OutputSettings:
        """Settings from a dict; missing keys keep their defaults, unknown keys are a ConfigError."""
        return config_from_dict(cls, d, what="output settings")


class Outputs:
    """Fan-out over several outputs, itself an `Output`.

    `emit` feeds every output even when one fails, then raises the first failure (an `OutputError`), so a
    full disk is loud but the page and console still got the result. `close` closes all of them in reverse
    order of creation, collecting failures the same way. The typed handles (`console`, `jsonl`, `overlay`,
    `web`) are None when that output is off: the CLI prints `outputs.web.url`, the pipeline passes camera
    frames to `outputs.overlay.update_frame(frame)`.
    """

    def __init__(self, outputs: list[Output] | None = None) -> None:
        self._outputs: list[Output] = list(outputs or [])
        self._closed = False
        self.console: ConsoleOutput | None = None
        self.jsonl: JsonlOutput | None = None
        self.overlay: OverlayWindow | None = None
        self.web: WebServer | None = None

    def add(self, output: Output) -> None:
        """Append one output (fed after those already present)."""
        self._outputs.append(output)

    def __len__(self) -> int:
        return len(self._outputs)

    def __iter__(self) -> Iterator[Output]:
        return iter(self._outputs)

    @property
    def quit_requested(self) -> bool:
        """True when an output asks the loop to end (the overlay window: q, Esc, or the window closed)."""
        return any(getattr(o, "quit_requested", False) for o in self._outputs)

    def emit(self, result: LiveResult) -> None:
        if self._closed:
            raise OutputError("outputs are closed")
        first: BaseException | None = None
        for out in self._outputs:
            try:
                out.emit(result)
            except Exception as e:  # noqa: BLE001 - every output gets the result, then we report
                first = first or e
        if first is not None:
            # a stream's reader that went away (`--json - | head`) is a stop, not an output's error (edge_ser.cli)
            raise first if isinstance(first, BrokenPipeError) else _as_output_error(first)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        first: BaseException | None = None
        for out in reversed(self._outputs):
            try:
                out.close()
            except Exception as e:  # noqa: BLE001 - close the rest before reporting
                first = first or e
        if first is not None:
            raise _as_output_error(first)

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_output_error(e: BaseException) -> OutputError:
    if isinstance(e, OutputError):
        return e
    err = OutputError(f"{type(e).__name__}: {e}")
    err.__cause__ = e
    return err


def make_outputs(
    settings: OutputSettings | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> Outputs:
    """Build the outputs `settings` asks for (default: console only).

    stdout / stderr: the streams the console and "-" JSON lines use (default sys.stdout / sys.stderr; tests
    pass StringIO). If building one output fails (say the web port is taken), those already built are closed
    before the error propagates, so nothing leaks.
    """
    s = settings or OutputSettings()
    out_stream = stdout if stdout is not None else sys.stdout
    err_stream = stderr if stderr is not None else sys.stderr
    outs = Outputs()
    try:
        if s.jsonl is not None:
            from edge_ser.live.outputs.jsonl import JsonlOutput

            target: str | Path | TextIO = out_stream if s.jsonl == "-" else Path(s.jsonl)
            outs.jsonl = JsonlOutput(target, append=s.jsonl_append)
            outs.add(outs.jsonl)
        if s.console:
            from edge_ser.live.outputs.console import ConsoleOutput, is_tty

            # JSON lines own stdout when they go there: the table moves to stderr, stdout stays parseable; on one
            # terminal for both, the table's in-place redraw would erase the JSON lines printed between its draws,
            # so it prints one line per update instead
            stream = err_stream if s.jsonl == "-" else out_stream
            shared = s.jsonl == "-" and is_tty(out_stream) and is_tty(err_stream)
            outs.console = ConsoleOutput(stream, ascii_bars=s.console_ascii, tty=False if shared else None)
            outs.add(outs.console)
        if s.overlay:
            from edge_ser.live.outputs.overlay import OverlayWindow

            outs.overlay = OverlayWindow(notice_stream=err_stream)
            outs.add(outs.overlay)
        if s.web:
            from edge_ser.live.outputs.web import WebServer

            outs.web = WebServer(
                s.web_host, s.web_port, max_clients=s.web_max_clients, allow_hosts=s.web_allow_hosts
            )
            outs.add(outs.web)
    except BaseException:
        try:
            outs.close()
        except OutputError:
            pass
        raise
    return outs


__all__ = ["Output", "OutputError", "OutputSettings", "Outputs", "make_outputs"]
