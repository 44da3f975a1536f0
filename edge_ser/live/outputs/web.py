"""A small local web page showing the live result, served by the process itself (standard library only).

Routes: `/` one self-contained HTML page (inline CSS and JS, no external URL, so it works on a Pi with no
internet and leaks nothing); `/events` a Server-Sent Events stream (`data: <json>\\n\\n` per result, a
`: keep-alive` comment every few seconds so proxies and NATs keep the connection, `retry:` so the browser's
EventSource reconnects by itself; each stream opens with a `run` event naming this server's run, so a page
whose run ended finds the next run served on the same address, e.g. after a service restart, and not the ended
one again); `/latest` the last result as JSON (204 before the first). HEAD answers as GET without the body
(`curl -I`, an uptime check; it was 501), and opens no stream.

Never blocking the pipeline: `emit` encodes the result once and appends the bytes to each client's bounded
queue (a deque that drops its oldest entry when full); each client's own handler thread writes to its
socket. A browser tab on a slow Wi-Fi link therefore loses stale updates, never delays the audio loop.

Bounded, whoever connects (docs/live.md, "The live page under load"):
- at most `max_clients` open `/events` streams (default 16); one more gets `503 Service Unavailable` with a
  text body and `Retry-After`, and the page retries by itself;
- a request (line and headers) must arrive whole within `request_timeout` seconds (default 5) of the
  connection, however slowly its bytes trickle in (slowloris), else the connection is closed;
- at most `max_idle` connections may be waiting for their request at once (default 16); a new connection
  beyond that closes the *oldest* waiting one, so sockets that connect and send nothing cannot lock out a
  browser that sends its request at once;
- a stream whose browser has acknowledged none of the bytes waiting for it for `stall_timeout` seconds (default
  20) is closed and its slot freed: a phone that sleeps with the page open keeps its connection, reads nothing
  and (its Wi-Fi asleep) often acknowledges nothing either, and the 10 s write timeout alone fired only once the
  kernel buffers were full (4.5 MB on loopback, over an hour of updates); on Linux, where the socket says how
  many bytes are unacknowledged (SIOCOUTQ), elsewhere only the write timeout applies.

Answered only for this device's names (docs/live.md, "The live page under load"): the page shows the emotions of
the person in front of the device, and a web page the viewer visits could rebind its own domain name to
127.0.0.1 or this device's LAN address and read `/latest` from the viewer's browser (DNS rebinding). So a
request whose Host header names anything else gets `403 Forbidden` with a text body naming the host and
`--web-allow-host` (`allow_hosts`). Accepted: no Host header (HTTP/1.0), an IP literal, `localhost` and
`*.localhost`, this machine's names (`socket.gethostname()`, that name + `.local` for mDNS, `socket.getfqdn()`),
the listening host when it is a name, and `allow_hosts` (`*`: any host, the guard off).
"""

from __future__ import annotations

import collections
import errno
import io
import ipaddress
import json
import re
import secrets
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from edge_ser.errors import ConfigError
from edge_ser.live.outputs._json import result_json
from edge_ser.live.outputs._palette import LABEL_COLORS, css_color
from edge_ser.live.outputs.base import OutputError
from edge_ser.live.result import CAMERA_AWAY, CAMERA_BACK, LiveResult

_CLOSE = object()
"""Queue sentinel: the server is closing, end the stream."""

MAX_CLIENTS = 16
"""Default cap on open `/events` streams: a room of viewers, bounded threads and memory on a Pi."""
REQUEST_TIMEOUT_S = 5.0
"""Default time a connection has to send its whole request line and headers (a browser needs milliseconds)."""
MAX_IDLE = 16
"""Default cap on connections that have not sent their request yet; the oldest is closed beyond it."""
STALL_TIMEOUT_S = 20.0
"""Default time a stream may leave bytes unacknowledged, with no progress at all, before it is closed."""

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; "
    "img-src 'none'; base-uri 'none'; form-action 'none'"
)
"""Content-Security-Policy of the page: inline code only, network only back to this server."""

ANY_HOST = "*"
"""In `allow_hosts` (`--web-allow-host '*'`): answer any Host header, the guard against DNS rebinding off."""
_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")


def _ip_literal(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _norm(name: str) -> str:
    """A host name as compared: lower case, a trailing dot dropped."""
    return name.strip().lower().removesuffix(".")


def host_names(value: str | Iterable[str], option: str = "") -> tuple[str, ...]:
    """The names `value` allows besides this device's own (`--web-allow-host a,b`, `WebServer(allow_hosts=)`):
    comma-separated text or a sequence of names, each lower-cased with a trailing dot dropped; `*` for any host.
    ConfigError (prefixed with `option` when given) for an empty name, a name with a port or a character no host
    name holds."""
    where = f"{option}: " if option else ""
    parts = value.split(",") if isinstance(value, str) else [p for v in value for p in str(v).split(",")]
    out: list[str] = []
    for part in parts:
        name = _norm(part)
        if _ip_literal(name.strip("[]")):  # always answered; kept so the list reads as given
            name = name.strip("[]")
        elif name == ANY_HOST:
            pass
        elif not name:
            raise ConfigError(f"{where}an empty host name in {value!r} (give NAME[,NAME...], or '*' for any)")
        elif ":" in name:
            raise ConfigError(
                f"{where}{part.strip()!r} has a port; give the name alone (the port is not compared)"
            )
        elif not _NAME.fullmatch(name):
            raise ConfigError(
                f"{where}{part.strip()!r} is not a host name (letters, digits, '-', '_' and dots)"
            )
        if name not in out:
            out.append(name)
    return tuple(out)


def camera_note(notes: Sequence[str], before: str | None) -> str | None:
    """The camera's standing note after an update with `notes`: its newest "camera lost" / "no camera yet" note,
    None once "camera back" / "camera found" comes, else `before`."""
    for note in notes:
        if note.startswith(CAMERA_AWAY):
            before = note
        elif note.startswith(CAMERA_BACK):
            before = None
    return before


def own_host_names(host: str = "") -> frozenset[str]:
    """This machine's names as a Host header may give them: `socket.gethostname()`, that name + `.local` (mDNS,
    how people reach a Pi), `socket.getfqdn()`, and `host` (the listening host) when it is a name."""
    try:
        name = socket.gethostname()
        fqdn = socket.getfqdn()
    except OSError:  # no name to be found: only addresses, localhost and the allowed names are answered
        name = fqdn = ""
    names = {_norm(name), _norm(name) + ".local" if name else "", _norm(fqdn)}
    if host and not _ip_literal(host.strip("[]")):
        names.add(_norm(host))
    return frozenset(n for n in names if n)


def _host_of(header: str) -> str | None:
    """The host a Host header names, port stripped and IPv6 brackets removed, lower case, a trailing dot dropped;
    None when it is malformed (empty, a bad port, an unclosed bracket)."""
    h = header.strip()
    if h.startswith("["):
        end = h.find("]")
        host, rest = (h[1:end], h[end + 1 :]) if end > 0 else ("", "")
        if not _ip_literal(host) or ":" not in host:
            return None
    elif h.count(":") > 1:  # an IPv6 address without brackets (no browser sends one)
        host, rest = h, ""
    else:
        host, sep, port = h.partition(":")
        rest = sep + port
    if rest and not re.fullmatch(r":[0-9]*", rest):
        return None
    host = _norm(host)
    return host or None


def _unacked(sock: socket.socket) -> int | None:
    """Bytes written to `sock` that its peer has not acknowledged yet (Linux SIOCOUTQ: unsent and in flight), or
    None where the system does not say."""
    if not sys.platform.startswith("linux"):
        return None
    # here, not at the top: Windows has no fcntl, and the page must still load there
    import fcntl
    import termios

    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0])
    except (OSError, ValueError):
        return None


class _Client:
    """One `/events` connection: a bounded queue of encoded events and the socket to unblock on close."""

    def __init__(self, sock: socket.socket, maxlen: int) -> None:
        self.sock = sock
        self.queue: collections.deque[Any] = collections.deque(maxlen=maxlen)
        self.cond = threading.Condition()
        self.dropped = 0
        self.sent = 0
        self.done = threading.Event()
        self.written = 0  # bytes of the stream written to the socket
        self._acked = -1  # of those, acknowledged by the browser at the last progress
        self._moved = time.monotonic()  # when the browser last acknowledged bytes (or had none waiting)

    def stalled(self, limit: float) -> bool:
        """Whether bytes have waited `limit` seconds for the browser with none of them acknowledged (a sleeping
        phone); never where the socket cannot say (`_unacked`)."""
        waiting = _unacked(self.sock)
        now = time.monotonic()
        if waiting is None or waiting == 0 or self.written - waiting > self._acked:
            self._acked = self.written - (waiting or 0)
            self._moved = now
            return False
        return now - self._moved > limit

    def put(self, item: Any) -> None:
        """Queue `item` without waiting; a full queue loses its oldest entry (counted in `dropped`)."""
        with self.cond:
            if len(self.queue) == self.queue.maxlen:
                self.dropped += 1
            self.queue.append(item)
            self.cond.notify()

    def get(self, timeout: float) -> Any:
        """The next item, or None after `timeout` seconds without one (time for a keep-alive)."""
        with self.cond:
            if not self.queue:
                self.cond.wait(timeout)
            return self.queue.popleft() if self.queue else None


class _DeadlineReader(io.RawIOBase):
    """The connection's bytes, all of them due by one deadline: a client that sends its request a byte at a
    time (each within a per-read timeout) still runs out of time (TimeoutError, which the handler treats as a
    timed-out request and closes)."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive in time")
        self.sock.settimeout(left)
        return self.sock.recv_into(b)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10.0  # socket timeout for writing: a client that stops reading is dropped
    server_version = "edge-ser"
    head = False  # a HEAD request: GET's status and headers, no body

    def setup(self) -> None:
        super().setup()
        deadline = time.monotonic() + self.server.owner.request_timeout
        self.rfile.close()  # the stock reader: closed, or it would hold the socket's descriptor open
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, deadline))

    def parse_request(self) -> bool:
        """The request arrived: it no longer counts as idle, and writes get the ordinary timeout."""
        ok = super().parse_request()
        self.server.owner._forget_idle(self.connection)
        self.connection.settimeout(self.timeout)
        return ok

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: one access-log line per request would flood the console table."""

    def do_HEAD(self) -> None:
        """GET's status and headers without the body (`curl -I`, an uptime check); `/events` opens no stream."""
        self.head = True
        self.do_GET()

    def do_GET(self) -> None:
        if not self._host_allowed():
            return
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", self.server.owner.page)
        elif path == "/latest":
            latest = self.server.owner.latest_json()
            if latest is None:
                self._send(HTTPStatus.NO_CONTENT, "application/json", b"")
            else:
                self._send(HTTPStatus.OK, "application/json", latest.encode("ascii"))
        elif path == "/events":
            self._events()
        elif path == "/favicon.ico":
            self._send(HTTPStatus.NO_CONTENT, "image/x-icon", b"")
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n")

    def _host_allowed(self) -> bool:
        """Whether the Host header names this device (`WebServer.host_allowed`); if not, a 403 was sent: a text
        body naming the host and the option that allows it, no stream, nothing counted against `max_clients`."""
        hosts = self.headers.get_all("Host") or []
        owner = self.server.owner
        if len(hosts) <= 1 and owner.host_allowed(hosts[0] if hosts else None):
            return True
        owner._forbid()
        shown = hosts[0].encode("ascii", "backslashreplace").decode("ascii")[:100] if hosts else ""
        name = _host_of(hosts[0]) if len(hosts) == 1 else None
        if name is not None and _NAME.fullmatch(name):
            how = (
                f"start the run with --web-allow-host {name} (WebServer(allow_hosts=...)) to allow this name"
            )
        else:
            how = "--web-allow-host NAME allows a name"
        body = (
            f"edge-ser live page: host {shown!r} refused: only this device's names and addresses are answered "
            f"(a guard against DNS rebinding); {how}\n"
        )
        self._send(HTTPStatus.FORBIDDEN, "text/plain; charset=utf-8", body.encode("ascii"))
        return False

    def _send(self, status: HTTPStatus, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if ctype.startswith("text/html"):
            self.send_header("Content-Security-Policy", CSP)
        self.end_headers()
        if body and not self.head:
            self.wfile.write(body)

    def _events(self) -> None:
        owner = self.server.owner
        if self.head:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            return
        client, first = owner._register(self.connection)
        if client is None:
            busy = first is not None  # _register's reason: over the cap (bytes) or closing (None)
            self.send_response(HTTPStatus.SERVICE_UNAVAILABLE)
            self.send_header("Retry-After", "5" if busy else "1")
            body = first if busy else b"closing\n"
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
            return
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Accel-Buffering", "no")  # nginx in front: do not buffer the stream
            self.end_headers()
            # retry: reconnect after 1 s; which run this is; then the current state, so a new tab shows a
            # result at once
            hello = b"retry: 1000\n\n" + owner._hello + (first or b"")
            self.wfile.write(hello)
            client.written += len(hello)
            while True:
                item = client.get(owner.keepalive_s)
                if item is _CLOSE:
                    break
                # a browser that acknowledges nothing (a phone asleep) gives its slot up
                if client.stalled(owner.stall_timeout):
                    owner._stall()
                    break
                data = item if item is not None else b": keep-alive\n\n"
                self.wfile.write(data)
                client.written += len(data)
                if item is not None:
                    client.sent += 1
        except OSError:
            pass  # the browser went away (tab closed, network lost): EventSource reconnects if it wants
        finally:
            owner._unregister(client)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client thread never keeps the process alive
    allow_reuse_address = True  # restart on the same port right after a stop (TIME_WAIT)
    owner: WebServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that vanished mid-response is normal for a live page: no traceback for socket errors."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Count the connection as idle until its request arrives (evicting the oldest idle one beyond the
        cap), then hand it to its own thread."""
        self.owner._admit_idle(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.owner._forget_idle(request)
        super().shutdown_request(request)


class WebServer:
    """Serves the live page on `host:port` (port 0: a free port) from a background thread; an `Output`.

    The server starts listening in the constructor (a taken port raises OutputError at once) and serves
    until `close()`. queue_size: events kept per slow client before the oldest is dropped. keepalive_s:
    seconds between keep-alive comments on an idle stream. max_clients: open `/events` streams at most (one
    more gets a 503). request_timeout: seconds a connection has to send its whole request. stall_timeout:
    seconds a stream may leave bytes unacknowledged, none acknowledged meanwhile, before it is closed. max_idle:
    connections waiting for their request at most (a new one closes the oldest). allow_hosts: host names
    answered besides this device's own (`host_allowed`; `"*"` any host, the guard against DNS rebinding off).
    Read the address from `url`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        queue_size: int = 8,
        keepalive_s: float = 5.0,
        title: str = "edge-ser live",
        max_clients: int = MAX_CLIENTS,
        request_timeout: float = REQUEST_TIMEOUT_S,
        max_idle: int = MAX_IDLE,
        allow_hosts: str | Iterable[str] = (),
        stall_timeout: float = STALL_TIMEOUT_S,
    ) -> None:
        if queue_size < 1:
            raise ConfigError(f"queue_size must be >= 1, got {queue_size}")
        if keepalive_s <= 0:
            raise ConfigError(f"keepalive_s must be > 0, got {keepalive_s}")
        if max_clients < 1:
            raise ConfigError(f"max_clients must be >= 1, got {max_clients}")
        if max_idle < 1:
            raise ConfigError(f"max_idle must be >= 1, got {max_idle}")
        if not request_timeout > 0:
            raise ConfigError(f"request_timeout must be > 0, got {request_timeout}")
        if not stall_timeout > 0:
            raise ConfigError(f"stall_timeout must be > 0, got {stall_timeout}")
        self.queue_size = queue_size
        self.keepalive_s = keepalive_s
        self.max_clients = max_clients
        self.request_timeout = float(request_timeout)
        self.stall_timeout = float(stall_timeout)
        self.max_idle = max_idle
        self.allow_hosts = host_names(allow_hosts, "allow_hosts")
        """Host names answered besides this device's own, normalised (`*`: any)."""
        self._names = own_host_names(host) | set(self.allow_hosts)
        self.forbidden = 0
        """Requests answered 403 because their Host header named no host this server answers for."""
        self.refused = 0
        """`/events` requests answered 503 because `max_clients` streams were open."""
        self.evicted = 0
        """Idle connections closed to make room for a new one (`max_idle`)."""
        self.stalled = 0
        """`/events` streams closed because their browser acknowledged nothing for `stall_timeout` seconds."""
        self.streams = 0
        """`/events` streams opened so far (a page reconnecting, or looking for a new run, opens another)."""
        self._idle: dict[Any, None] = {}  # connections still waiting for their request, oldest first
        self.page = render_page(title).encode("utf-8")
        self._lock = threading.Lock()
        self._clients: set[_Client] = set()
        self._latest: str | None = None
        self._latest_result: LiveResult | None = None
        self._camera_note: str | None = None  # the camera's state while it is away ("camera lost: ...")
        self._ended: bytes | None = None  # the "end" event once the run has ended (`end`)
        self._seq = 0
        self._closing = False
        self._closed = False
        self._dropped_gone = 0  # drops of clients that have disconnected
        self.run_id = secrets.token_hex(8)
        """Names this server's run in the `run` event that opens each stream: a page whose run ended keeps looking
        for a new one at the same address (a restarted service) and tells it from the ended one by this."""
        self._hello = f"event: run\ndata: {json.dumps({'run': self.run_id})}\n\n".encode("ascii")
        server_cls = (
            type("_Server6", (_Server,), {"address_family": socket.AF_INET6}) if ":" in host else _Server
        )
        try:
            self._httpd = server_cls((host, port), _Handler)
        except OSError as e:
            hint = (
                " (another program, or another edge-ser run, holds the port: give another, or --web 0 for any "
                "free one)"
                if e.errno == errno.EADDRINUSE
                else ""
            )
            raise OutputError(f"web page: cannot listen on {host}:{port}: {e.strerror or e}{hint}") from e
        self._httpd.owner = self
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="edge-ser-web", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """The page's address, e.g. http://127.0.0.1:8765/ (a wildcard host shows as 127.0.0.1: on other
        machines use this device's name or address with the same port)."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else "::1" if self.host == "::" else self.host
        return f"http://[{host}]:{self.port}/" if ":" in host else f"http://{host}:{self.port}/"

    @property
    def elsewhere(self) -> str | None:
        """Where other machines point a browser when the page listens on every interface (0.0.0.0, ::, ""):
        `url` names 127.0.0.1 then, which is this device itself; e.g. "http://raspberrypi:8000/ (or this
        device's address)". None for a specific interface, whose `url` already works from elsewhere."""
        if self.host not in ("", "0.0.0.0", "::"):
            return None
        return f"http://{socket.gethostname() or 'DEVICE'}:{self.port}/ (or this device's address)"

    @property
    def clients(self) -> int:
        """Open `/events` streams right now."""
        with self._lock:
            return len(self._clients)

    @property
    def dropped(self) -> int:
        """Events dropped for slow clients so far (disconnected clients included)."""
        with self._lock:
            return self._dropped_gone + sum(c.dropped for c in self._clients)

    def latest_json(self) -> str | None:
        """The last emitted result as a JSON string, or None before the first."""
        with self._lock:
            return self._latest

    def host_allowed(self, header: str | None) -> bool:
        """Whether a request with this Host header (None: none was sent) is answered: no header (HTTP/1.0), an IP
        literal, `localhost` or a name under `.localhost`, this machine's names (`own_host_names`, the listening
        host when it is a name) or `allow_hosts`; anything else could be a DNS-rebinding page."""
        if header is None or ANY_HOST in self.allow_hosts:
            return True
        host = _host_of(header)
        if host is None:
            return False
        return _ip_literal(host) or host == "localhost" or host.endswith(".localhost") or host in self._names

    def _forbid(self) -> None:
        with self._lock:
            self.forbidden += 1

    def _stall(self) -> None:
        with self._lock:
            self.stalled += 1

    def _admit_idle(self, sock: Any) -> None:
        """Count `sock` as idle; beyond `max_idle`, shut the oldest idle connections (their reads end)."""
        with self._lock:
            evict = []
            while len(self._idle) >= self.max_idle:
                oldest = next(iter(self._idle))
                del self._idle[oldest]
                evict.append(oldest)
            self._idle[sock] = None
            self.evicted += len(evict)
        for old in evict:
            try:
                old.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone

    def _forget_idle(self, sock: Any) -> None:
        with self._lock:
            self._idle.pop(sock, None)

    @property
    def idle(self) -> int:
        """Connections waiting for their request right now."""
        with self._lock:
            return len(self._idle)

    def _register(self, sock: socket.socket) -> tuple[_Client | None, bytes | None]:
        """A new client and the current state as its first event, atomically (no update lost or doubled);
        (None, None) when closing, (None, text of the 503) when `max_clients` streams are open."""
        with self._lock:
            if self._closing:
                return None, None
            if len(self._clients) >= self.max_clients:
                self.refused += 1
                msg = f"edge-ser live page: {self.max_clients} viewers already (the limit); try again later\n"
                return None, msg.encode("ascii")
            client = _Client(sock, self.queue_size)
            self._clients.add(client)
            self.streams += 1
            first = _event(self._seq, self._first_state()) if self._latest is not None else None
            if self._ended is not None:  # a tab opened after the run: its last result, then that it ended
                first = (first or b"") + self._ended
            return client, first

    def _unregister(self, client: _Client) -> None:
        with self._lock:
            self._clients.discard(client)
            self._dropped_gone += client.dropped
        client.done.set()

    def emit(self, result: LiveResult) -> None:
        """Send `result` to every open stream and keep it for `/latest`; never waits for a client."""
        if self._closed or self._closing:
            raise OutputError("web page server is closed")
        data = result_json(result)
        with self._lock:
            self._seq += 1
            self._latest, self._latest_result = data, result
            self._camera_note = camera_note(result.notes, self._camera_note)
            event = _event(self._seq, data)
            clients = list(self._clients)
        for c in clients:
            c.put(event)

    def _first_state(self) -> str:
        """The latest result as a new tab's first event (under the lock), with the camera's state while it is away:
        "camera lost" / "no camera yet" is a note of one update, so a tab opened after it showed the page of an
        audio-only bundle and never said the camera was gone."""
        result, note = self._latest_result, self._camera_note
        if result is None or note is None or note in result.notes:
            return str(self._latest)
        return result_json(replace(result, notes=(*result.notes, note)))

    def end(self, notes: Sequence[str] = ()) -> None:
        """Tell every open page the run has ended, with its closing notes (the page showed "reconnecting" for ever,
        and the notes went to stderr only); pages opened until `close` get it too."""
        data = json.dumps({"notes": [str(n) for n in notes]}, ensure_ascii=True)
        with self._lock:
            self._seq += 1
            self._ended = f"id: {self._seq}\nevent: end\ndata: {data}\n\n".encode("ascii")
            clients = list(self._clients)
        for c in clients:
            c.put(self._ended)

    def close(self, timeout: float = 1.0) -> None:
        """End every stream, stop serving and release the port; waits at most about `timeout` seconds for
        streams to end before cutting their sockets (a client that stopped reading)."""
        if self._closed:
            return
        with self._lock:
            self._closing = True
            clients = list(self._clients)
        for c in clients:
            c.put(_CLOSE)
        self._httpd.shutdown()  # returns within one poll interval (0.1 s)
        deadline = time.monotonic() + timeout
        for c in clients:
            if not c.done.wait(max(deadline - time.monotonic(), 0.0)):
                try:
                    c.sock.shutdown(socket.SHUT_RDWR)  # unblocks a write stuck on a full socket buffer
                except OSError:
                    pass
        for c in clients:
            c.done.wait(0.5)
        self._httpd.server_close()
        self._thread.join(timeout=1.0)
        self._closed = True

    def __enter__(self) -> WebServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _event(seq: int, data: str) -> bytes:
    """One SSE message: `id` (so a reconnecting browser's Last-Event-ID is meaningful) and one data line
    (`data` is single-line JSON, so no line splitting is needed)."""
    return f"id: {seq}\ndata: {data}\n\n".encode("ascii")


def render_page(title: str = "edge-ser live") -> str:
    """The page `/` serves: all CSS and JS inline, label colours from the shared palette."""
    colors = json.dumps({k: css_color(k) for k in LABEL_COLORS})
    safe_title = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _PAGE.replace("__TITLE__", safe_title).replace("__COLORS__", colors)


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
  :root { color-scheme: dark; --c: #888; }
  body { margin: 0; font: 16px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif;
         background: #121212; color: #eee; }
  main { max-width: 760px; margin: 0 auto; padding: 16px 20px; }
  header { display: flex; justify-content: space-between; color: #999; font-size: 14px; }
  #status.live { color: #5c5; } #status.down { color: #e66; }
  #label { font-size: clamp(56px, 16vw, 128px); font-weight: 800; text-align: center; line-height: 1.1;
           margin: 18px 0 4px; color: var(--c); overflow-wrap: anywhere; }
  #conf { text-align: center; font-size: 28px; color: #bbb; min-height: 1.4em; }
  #bars { margin: 18px 0; }
  .row { display: grid; grid-template-columns: 120px 1fr 60px; gap: 10px; align-items: center;
         margin: 6px 0; }
  .name { text-align: right; color: #bbb; } .row.on .name { color: #fff; font-weight: 700; }
  .track { background: #2a2a2a; height: 20px; border-radius: 4px; overflow: hidden; }
  .fill { height: 100%; width: 0; background: #777; transition: width .15s linear; }
  .row.on .fill { background: var(--c); }
  .pct { font-variant-numeric: tabular-nums; color: #bbb; }
  #meta { display: flex; flex-wrap: wrap; gap: 8px 18px; color: #aaa; font-size: 14px; }
  #meta b { color: #ddd; font-weight: 600; }
  #notes { color: #e9b44c; font-size: 14px; margin-top: 8px; }
  #ood { text-align: center; color: #e9b44c; font-size: 14px; }
  #status.ended { color: #999; }
  /* an old label (run ended, or no update for a while) is drained of colour and framed, not faded: fading to
     45 % took every label below 3:1 contrast (a review); the saturate filter keeps each colour's luminance */
  .stale #label, .stale #bars { filter: saturate(.25); }
  .stale #label { outline: 2px dashed #666; outline-offset: 6px; border-radius: 8px; }
</style>
</head>
<body>
<main id="app">
  <header><span>__TITLE__</span><span id="status">connecting&hellip;</span></header>
  <div id="label">waiting&hellip;</div>
  <div id="conf"></div>
  <div id="ood" hidden>out of range: unlike the training audio, the label is a guess</div>
  <div id="bars"></div>
  <div id="meta">
    <span>mode <b id="mode">-</b></span>
    <span id="speech-box">voice <b id="speech">-</b></span>
    <span id="level-box">level <b id="level">-</b></span>
    <span id="face-box" hidden>face <b id="face">-</b></span>
    <span>stream <b id="t">-</b></span>
    <span>total <b id="total">-</b></span>
    <span>overflows <b id="overflows">-</b></span>
    <span id="speaker-box" hidden>speaker <b id="speaker">-</b></span>
    <span>updated <b id="updated">never</b></span>
  </div>
  <div id="notes"></div>
</main>
<script>
"use strict";
const COLORS = __COLORS__;
function color(label) {
  const k = String(label).toLowerCase();
  // own keys only: a label named "constructor" or "__proto__" is no palette entry (it got a function's source)
  if (Object.prototype.hasOwnProperty.call(COLORS, k)) return COLORS[k];
  // any other label: the overlay's colour (_palette.label_color), from the CRC-32 of its UTF-8 bytes
  let c = -1;
  for (const b of new TextEncoder().encode(String(label))) {
    c ^= b;
    for (let i = 0; i < 8; i++) c = (c >>> 1) ^ (0xEDB88320 & -(c & 1));
  }
  const h = (c ^ -1) >>> 0;
  const hex = (shift) => (80 + ((h >>> shift) & 0x7F)).toString(16).padStart(2, "0");
  return "#" + hex(16) + hex(8) + hex(0);
}
const $ = (id) => document.getElementById(id);
let rows = [], lastLabels = "", lastUpdate = 0, ended = false, run = null, endedRun = null;
// a label is old when no update came for STALE_S, or a hop and 2 s more when the run's hop is longer (--hop 4: every
// label was framed as old for the last second of each hop); the hop is learnt from the stream times of updates
const STALE_S = 3;
let lastT = null, staleS = STALE_S;

function buildBars(labels) {
  const box = $("bars"); box.textContent = ""; rows = [];
  for (const name of labels) {
    const row = document.createElement("div"); row.className = "row";
    const n = document.createElement("span"); n.className = "name"; n.textContent = name;
    const track = document.createElement("div"); track.className = "track";
    const fill = document.createElement("div"); fill.className = "fill"; track.appendChild(fill);
    const pct = document.createElement("span"); pct.className = "pct";
    row.append(n, track, pct); box.appendChild(row);
    row.style.setProperty("--c", color(name));
    rows.push({ name, row, fill, pct });
  }
}

// a note comes with one update (camera lost, a steady sound...): it stays on screen NOTE_MS, newest first,
// so a viewer who looks away for a few seconds still reads it; the same text again refreshes its time
const NOTE_MS = 15000, NOTE_MAX = 5;
let shown = [];
function showNotes(notes, now) {
  for (const text of notes || []) {
    shown = shown.filter((x) => x.text !== text);
    shown.push({ text, at: now });
  }
  shown = shown.filter((x) => now - x.at < NOTE_MS).slice(-NOTE_MAX);
  const box = $("notes"); box.textContent = "";
  for (const x of shown.slice().reverse()) {
    const line = document.createElement("div"); line.textContent = x.text; box.appendChild(line);
  }
}

function render(r) {
  const key = r.labels.join("\\u0000");
  if (key !== lastLabels) { buildBars(r.labels); lastLabels = key; }
  // no estimate (silence, no face, no result): smoothed is empty, each bar shows "-" and no confidence
  const estimate = Boolean(r.smoothed && r.smoothed.length);
  const probs = estimate ? r.smoothed : r.probs;
  rows.forEach((x, i) => {
    const p = probs && i < probs.length ? probs[i] : 0;
    x.fill.style.width = (Math.max(0, Math.min(1, p)) * 100).toFixed(1) + "%";
    x.pct.textContent = probs && i < probs.length ? (p * 100).toFixed(0) + " %" : "-";
    x.row.classList.toggle("on", x.name === r.label);
  });
  document.documentElement.style.setProperty("--c", color(r.label));
  $("label").textContent = r.label;
  document.body.dataset.label = r.label;
  $("conf").textContent = estimate ? (r.confidence * 100).toFixed(0) + " %" : "";
  $("ood").hidden = !(estimate && r.ood);
  $("mode").textContent = r.mode + (r.fallback ? " (" + r.fallback + ")" : "");
  const hears = r.mode !== "video";  // a face-only bundle has no voice gate and no level
  $("speech-box").hidden = !hears;
  $("level-box").hidden = !hears;
  $("speech").textContent = r.label === "no audio" ? "no audio" : (r.speech ? "speech" : "silence");
  $("level").textContent = (r.level_db === null ? "-inf" : r.level_db.toFixed(1)) + " dBFS";
  // a bundle that reads faces (a camera frame came): whether one is in view, so "mode audio" on a fusion bundle
  // reads as no face in view, not as a camera left out
  const camera = r.frame_size !== null && r.frame_size !== undefined;
  $("face-box").hidden = !camera;
  if (camera) $("face").textContent = r.face_box ? "in view" : "none in view";
  $("t").textContent = r.t.toFixed(2) + " s";
  $("total").textContent = r.times ? r.times.total.toFixed(1) + " ms" : "-";
  $("overflows").textContent = String(r.overflows);
  const known = r.speaker_clips !== null && r.speaker_clips !== undefined;
  $("speaker-box").hidden = !known;
  if (known) $("speaker").textContent = r.speaker_clips + (r.speaker_clips === 1 ? " clip" : " clips");
  showNotes(r.notes, Date.now());
  if (lastT !== null && r.t > lastT) staleS = Math.max(STALE_S, r.t - lastT + 2);
  lastT = r.t;
  lastUpdate = Date.now();
  $("updated").textContent = new Date(lastUpdate).toLocaleTimeString();
  $("app").classList.remove("stale");
}

function setStatus(text, cls) { const s = $("status"); s.textContent = text; s.className = cls; }
// after the run ended the page keeps looking, every LOOK_MS, for a new run on this address (a service restarted,
// the same command run again): the `run` event opening each stream says which run it is, so the ended one,
// still serving until it closes, is left alone
const LOOK_MS = 5000;
function connect() {
  const es = new EventSource("events");
  let probe = ended;  // a stream opened after the end: it counts only if it is a new run
  const look = () => { es.close(); setTimeout(connect, LOOK_MS); };
  es.addEventListener("run", (e) => {
    let id = null;
    try { id = JSON.parse(e.data).run; } catch (err) { /* an older server: no id */ }
    if (ended && (id === null || id === endedRun)) { look(); return; }
    if (ended) {  // a new run: live again; the ended run's label, bars, notes and dimming go
      ended = false; shown = []; lastUpdate = 0; lastLabels = ""; rows = []; lastT = null; staleS = STALE_S;
      for (const k of ["notes", "bars", "conf"]) $(k).textContent = "";
      $("label").textContent = "waiting\u2026";
      $("app").classList.remove("stale");
      setStatus("live", "live");
    }
    probe = false;
    run = id;
  });
  es.onopen = () => { if (!ended) setStatus("live", "live"); };
  es.onerror = () => {
    if (probe || ended) { look(); return; }  // still no new run: quietly try again later
    // the browser reconnects by itself after a dropped stream, but not after an HTTP error such as the 503
    // beyond the viewer limit: then the stream is CLOSED and we try again in a few seconds
    if (es.readyState === EventSource.CLOSED) {
      setStatus("busy or unreachable, retrying\\u2026", "down");
      setTimeout(connect, 5000);
    } else {
      setStatus("reconnecting\\u2026", "down");
    }
  };
  es.onmessage = (e) => {
    if (probe) return;
    try { render(JSON.parse(e.data)); } catch (err) { setStatus("bad data", "down"); }
  };
  // the run has ended: say so, and look for a new run now and then; its closing notes stay on the page
  es.addEventListener("end", (e) => {
    if (probe) return;
    look();
    ended = true;
    endedRun = run;
    setStatus("run ended", "ended");
    let notes = [];
    try { notes = JSON.parse(e.data).notes || []; } catch (err) { /* no notes */ }
    const box = $("notes"); box.textContent = "";
    for (const text of notes) { const line = document.createElement("div"); line.textContent = text; box.appendChild(line); }
    $("app").classList.add("stale");
  });
}
connect();
setInterval(() => {
  if (!lastUpdate || ended) return;
  showNotes([], Date.now());  // notes expire while no update comes too
  const age = (Date.now() - lastUpdate) / 1000;
  if (age > staleS) {
    $("updated").textContent = new Date(lastUpdate).toLocaleTimeString() + " (" + age.toFixed(0) + " s ago)";
    $("app").classList.add("stale");
  }
}, 1000);
</script>
</body>
</html>
"""

__all__ = [
    "ANY_HOST",
    "CSP",
    "MAX_CLIENTS",
    "MAX_IDLE",
    "REQUEST_TIMEOUT_S",
    "STALL_TIMEOUT_S",
    "WebServer",
    "host_names",
    "own_host_names",
    "render_page",
]
