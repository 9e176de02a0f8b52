"""A real HTTP server on 127.0.0.1, with injectable faults: the loopback mirror of tests, demo and benchmarks.

Usage (the test suite's ``loopback_server`` fixture starts one per test)::

    server.serve("/a.zip", data)                       # a file; honours Range
    server.fail("/a.zip", status(500), drop_after(100)) # faults for the next requests, in order
    server.route("/uc", handler)                        # handler(Request) -> Reply
    server.url + "/a.zip"
    server.log                                          # every request: method, path, range, status, bytes

Faults: :func:`status` (an error answer), :func:`drop_after` (close the
connection mid-body), :func:`stall` (wait before answering: hits the
client's read timeout), :func:`stall_body` (wait mid-body),
:func:`content_length` (announce a wrong length), :func:`html` (a page with
status 200), :func:`ignore_range` (answer 200 with the whole file).
The server speaks HTTP/1.0: one request per connection.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit



@dataclass
class Request:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int = 0
    body_bytes: int = 0  # body bytes actually sent
    complete: bool = False  # the whole body announced was sent

    @property
    def range(self) -> str | None:
        """The Range header, if any."""
        return self.headers.get("range")


@dataclass
class Reply:
    """What a route handler answers."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Fault:
    """A misbehaviour applied to one request."""

    kind: str
    value: Any = None
    seconds: float = 0.0


def status(code: int, body: bytes = b"") -> Fault:
    """Answer ``code`` (e.g. 500, 404, 429) instead of the file."""
    return Fault("status", (code, body))


def drop_after(nbytes: int) -> Fault:
    """Announce the full length, send ``nbytes`` of the body, then close the connection."""
    return Fault("drop", nbytes)


def stall(seconds: float) -> Fault:
    """Wait ``seconds`` before answering (the client's read timeout should fire)."""
    return Fault("stall", seconds=seconds)


def stall_body(after: int, seconds: float) -> Fault:
    """Send ``after`` bytes of the body, then wait ``seconds`` before the rest."""
    return Fault("stall_body", after, seconds)


def content_length(value: int) -> Fault:
    """Announce ``value`` as Content-Length and send the real body (then close)."""
    return Fault("length", value)


def html(page: str, code: int = 200) -> Fault:
    """Answer an HTML page (a quota page, a captive portal) with status ``code``."""
    return Fault("html", (code, page))


def ignore_range() -> Fault:
    """Answer 200 with the whole file even when a Range was asked for."""
    return Fault("ignore_range")


_LAST_MODIFIED = "Tue, 01 Oct 2019 12:00:00 GMT"


@dataclass
class _File:
    data: bytes
    content_type: str
    headers: dict[str, str]
    honour_range: bool
    chunk: int
    delay: float
    gate: threading.Event | None


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 serving registered files and routes."""

    def __init__(self) -> None:
        self._files: dict[str, _File] = {}
        self._routes: dict[str, Callable[[Request], Reply]] = {}
        self._faults: dict[str, deque[Fault]] = {}
        self._lock = threading.Lock()
        self.log: list[Request] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (no trailing slash)."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LoopbackServer:
        """Serve in a background thread; returns the server."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (threads still answering are left to die)."""
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- registration --------------------------------------------------------
    def serve(
        self,
        path: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        headers: dict[str, str] | None = None,
        honour_range: bool = True,
        chunk: int = 64 << 10,
        delay: float = 0.0,
        gate: threading.Event | None = None,
        validators: bool = True,
    ) -> str:
        """Serve ``data`` at ``path``; returns its full URL.

        Like a real file host, the answer carries an ``ETag`` (the data's
        SHA-1) and a ``Last-Modified``, and a ``Range`` request whose
        ``If-Range`` names other data gets the whole file (200).  Serving new
        data at the same path changes the ETag, as a moved file does.

        Args:
            chunk, delay: send the body ``chunk`` bytes at a time with
                ``delay`` seconds between chunks (a slow link).
            gate: hold every answer until this event is set.
            validators: False answers without ETag and Last-Modified (a bare server).
        """
        extra = dict(headers or {})
        if validators:
            extra = {"ETag": f'"{hashlib.sha1(data).hexdigest()}"', "Last-Modified": _LAST_MODIFIED, **extra}
        self._files[path] = _File(data, content_type, extra, honour_range, chunk, delay, gate)
        return self.url + path

    def route(self, path: str, handler: Callable[[Request], Reply]) -> str:
        """Answer requests for ``path`` with ``handler``; returns its full URL."""
        self._routes[path] = handler
        return self.url + path

    def fail(self, path: str, *faults: Fault) -> None:
        """Apply ``faults`` to the next requests for ``path``, one each, in order."""
        with self._lock:
            self._faults.setdefault(path, deque()).extend(faults)

    # -- inspection -----------------------------------------------------------
    def requests_for(self, path: str, method: str | None = "GET") -> list[Request]:
        """Requests for ``path`` (GET by default; None for every method)."""
        return [r for r in list(self.log) if r.path == path and (method is None or r.method == method)]

    def full_transfers(self, path: str) -> int:
        """Answers that sent the whole file from its first byte."""
        return sum(1 for r in self.requests_for(path) if r.status == 200 and r.complete)

    # -- the handler ------------------------------------------------------------
    def _next_fault(self, path: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(path)
            return queue.popleft() if queue else None

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format, *args):  # noqa: A002 - keep test output clean
                pass

            def do_HEAD(self):
                self._handle("HEAD")

            def do_GET(self):
                self._handle("GET")

            def _handle(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                request = Request(method, parts.path, query, {k.lower(): v for k, v in self.headers.items()})
                with server._lock:
                    server.log.append(request)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                    server._answer(self, request)

        return Handler

    def _answer(self, handler: BaseHTTPRequestHandler, request: Request) -> None:
        fault = self._next_fault(request.path)
        if fault is not None and fault.kind == "stall":
            time.sleep(fault.seconds)
        if fault is not None and fault.kind == "status":
            code, body = fault.value
            return self._send(handler, request, Reply(code, body, {"Content-Type": "text/plain"}))
        if fault is not None and fault.kind == "html":
            code, page = fault.value
            return self._send(
                handler, request, Reply(code, page.encode(), {"Content-Type": "text/html; charset=utf-8"})
            )
        if request.path in self._routes:
            return self._send(handler, request, self._routes[request.path](request))
        file = self._files.get(request.path)
        if file is None:
            return self._send(handler, request, Reply(404, b"not found", {"Content-Type": "text/plain"}))
        if file.gate is not None:
            file.gate.wait(timeout=30)
        self._send_file(handler, request, file, fault)

    def _send_file(self, handler: BaseHTTPRequestHandler, request: Request, file: _File, fault: Fault | None) -> None:
        total = len(file.data)
        start, end = (
            _range(request.range) if file.honour_range and not (fault and fault.kind == "ignore_range") else (None, None)
        )
        if_range = request.headers.get("if-range")
        if start is not None and if_range is not None and if_range not in (file.headers.get("ETag"),
                                                                            file.headers.get("Last-Modified")):
            start = None  # the file changed since the partial was fetched: send it whole
        headers = {"Content-Type": file.content_type, "Accept-Ranges": "bytes", **file.headers}
        if start is not None and start >= total:
            headers["Content-Range"] = f"bytes */{total}"
            return self._send(handler, request, Reply(416, b"", headers))
        if start is not None:
            last = total - 1 if end is None else min(end, total - 1)
            headers["Content-Range"] = f"bytes {start}-{last}/{total}"
            reply = Reply(206, file.data[start:last + 1], headers)
        else:
            reply = Reply(200, file.data, headers)
        self._send(handler, request, reply, fault, chunk=file.chunk, delay=file.delay)

    def _send(
        self,
        handler: BaseHTTPRequestHandler,
        request: Request,
        reply: Reply,
        fault: Fault | None = None,
        chunk: int = 64 << 10,
        delay: float = 0.0,
    ) -> None:
        body = reply.body
        announced = fault.value if fault and fault.kind == "length" else len(body)
        request.status = reply.status
        handler.send_response(reply.status)
        for name, value in reply.headers.items():
            if not (name == "Content-Length" and value == ""):  # "" means: announce no length at all
                handler.send_header(name, value)
        if "Content-Length" not in reply.headers:
            handler.send_header("Content-Length", str(announced))
        handler.end_headers()
        if request.method == "HEAD":
            request.complete = True
            return
        limit = fault.value if fault and fault.kind == "drop" else len(body)
        if fault and fault.kind == "length":
            limit = min(len(body), announced)
        pause_at = fault.value if fault and fault.kind == "stall_body" else None
        sent = 0
        while sent < limit:
            if pause_at is not None and sent >= pause_at and fault is not None:
                time.sleep(fault.seconds)
                pause_at = None
            end = min(limit, sent + chunk, pause_at if pause_at is not None and pause_at > sent else limit)
            handler.wfile.write(body[sent:end])
            handler.wfile.flush()
            sent = end
            request.body_bytes = sent
            if delay and sent < limit:
                time.sleep(delay)
        request.complete = sent == len(body) and announced == len(body)
        handler.close_connection = True


def _range(header: str | None) -> tuple[int | None, int | None]:
    """The first and (when given) last byte of a ``bytes=N-`` or ``bytes=N-M`` Range header."""
    if not header or not header.startswith("bytes="):
        return None, None
    first, _, last = header[len("bytes=") :].partition("-")
    if not first.isdigit():
        return None, None
    return int(first), int(last) if last.isdigit() else None


@contextlib.contextmanager
def serve_folder(folder: str | Path, prefix: str = "/") -> Iterator[str]:
    """Serve every file of ``folder`` (read now) under ``prefix`` on 127.0.0.1; yields the base URL.

    A folder of checkpoints served this way is a ``mirrors=`` / ``MODELZOO_MIRROR`` base.
    """
    server = LoopbackServer()
    base = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
    for path in sorted(Path(folder).iterdir()):
        if path.is_file():
            server.serve(base + quote(path.name), path.read_bytes())
    server.start()
    try:
        yield server.url + base
    finally:
        server.stop()
