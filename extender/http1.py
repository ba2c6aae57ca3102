"""The extender's own HTTP/1.1 server (``--server builtin``): asyncio + httptools, no ASGI on the
hot path.

kube-scheduler calls filter and prioritize on one keep-alive connection for every pod, so the
HTTP layer runs twice per scheduling cycle.  Under uvicorn it cost more CPU than the verbs
themselves (bench/RESULTS.md): an ASGI scope, a task, two ``receive``/``send`` awaits and header
lists per request.  Here a POST to a *direct* route (the synchronous verbs: filter, prioritize,
preempt, mutate) is read into the server's one buffer (a buffered protocol), parsed by httptools,
answered by calling ``handler(body) -> (status, content type, body)`` as soon as it is complete,
and written with one ``write`` (or one ``writev`` when the body comes in pieces: the 120-450 kB
node lists and refusal maps are never joined into one more copy); no task, no await.  Every
other request (the probes, /metrics, bind, anything unknown, any method but POST) is handed to
the same Starlette app through a small ASGI bridge, one request at a time.

What kube-scheduler and the tests rely on, and how it is kept:

- HTTP/1.1 keep-alive and pipelining: answers leave in request order.  While a bridged request
  runs, later requests wait in order and the connection stops reading.
- Bodies: Content-Length or chunked (httptools decodes it); the body-size limit answers 413 from
  the Content-Length alone, or as soon as a chunked body passes it, then closes the connection
  (after a short linger that swallows the rest, so the client reads the 413 instead of a reset).
  ``Expect: 100-continue`` is answered when nothing is queued before it.
- Bad requests (httptools refuses them, or the request line and headers pass ``max_head_bytes``)
  get one 400 / 431 answer, after the answers owed to earlier requests, and the connection closes.
  ``Upgrade`` is not supported: the request is answered as a plain one and the connection closes.
- Timeouts: an idle keep-alive connection closes after ``keep_alive`` seconds (120: longer than
  the 90 s after which Go's default transport drops an idle connection, so a Go client closes
  first and does not post on a connection the server is closing; uvicorn closes after 5 s, and
  Go does not retry a POST that meets a closed connection); a request whose bytes stall for ``read_timeout`` seconds,
  or a client that stops reading answers that long, gets 408 / is closed.  One timer per server
  checks all connections once a second (and refreshes the Date header), so a request arms none.
- TLS: ``loop.create_server(ssl=...)``, TLS 1.2 at least.
- SIGTERM / SIGINT: stop accepting, close idle connections, let requests in flight finish (their
  answer carries ``Connection: close``), then run the lifespan shutdown; connections still open
  after ``shutdown_grace`` seconds are aborted.
- A failing handler is answered 500 and logged; the parser never sees our exceptions.

uvloop is used when installed (``extender.server`` picks the loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import http
import logging
import signal
import ssl
import time
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, cast

import httptools

__all__ = [
    "ASGIApp",
    "Answer",
    "Body",
    "Chunk",
    "Direct",
    "Limits",
    "Server",
    "StartupFailed",
    "serve",
    "tls_context",
]

log = logging.getLogger("spillover.extender")

Chunk = bytes | memoryview
Body = bytes | tuple[Chunk, ...]
"""An answer's body: bytes, or pieces written in order with one ``writev`` (no join copies a
120-450 kB node list or refusal map; ``extender.wire.filter_result_parts``)."""
Answer = tuple[int, bytes, Body]
"""A direct route's answer: status, Content-Type, body."""
Direct = Callable[[bytes], Answer]
"""A direct route: the request body in, the answer out; it answers its own errors."""
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[Message]],
        Callable[[Message], Awaitable[None]],
    ],
    Awaitable[None],
]


@dataclass(frozen=True, slots=True)
class Limits:
    max_body_bytes: int = 64 * 1024 * 1024
    max_head_bytes: int = 64 * 1024
    keep_alive: float = 120.0
    read_timeout: float = 30.0
    shutdown_grace: float = 30.0
    linger: float = 2.0
    tick: float = 1.0  # how often the timeouts are checked


def _status_line(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {status} {phrase}\r\n".encode()


_STATUS = {status: _status_line(status) for status in range(100, 600)}
_READ_BUFFER = 256 * 1024  # as uvloop's own: a 120 kB request is mostly one read
_TEXT = b"text/plain; charset=utf-8"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_BAD_HEADER = (b"\r", b"\n", b"\0")


class _Reject(Exception):
    """Raised inside a parser callback to stop parsing: the request is refused."""


@dataclass(slots=True)
class _Request:
    method: bytes
    url: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    keep_alive: bool
    version: str


class _Connection(asyncio.BufferedProtocol):
    """One client connection: parses requests, answers them in order.

    A buffered protocol: the loop reads straight into the server's one read buffer
    (``get_buffer``) and the parser is fed a view of it (``buffer_updated``), so a 120 kB
    request is not first copied into a new bytes object by the loop.  One buffer serves every
    connection: the loop calls ``get_buffer``, reads, and calls ``buffer_updated`` without
    running anything in between, and the parser has copied what it keeps before it returns.
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.limits = server.limits
        self.direct = server.direct
        self.loop = server.loop
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.ready: deque[_Request] = deque()
        self.task: asyncio.Task[None] | None = None
        self.active = 0.0  # loop time of the last bytes received or the last answer
        self.receiving = False  # a request has begun and is not complete
        self.reading = True
        self.write_paused = False
        self.drained: asyncio.Future[None] | None = None
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.close_after = False  # the request queue ends here (upgrade, shutdown)
        self.refusal: bytes | None = None  # the answer that ends the connection after the queue
        self.lingering = False
        self.scheme = "http"
        self.sockname: tuple[str, int] | None = None
        self.peername: tuple[str, int] | None = None
        # the request being parsed
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.size = 0
        self.head_bytes = 0
        self.expect_continue = False

    # -- asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.active = self.loop.time()
        self.scheme = "https" if transport.get_extra_info("sslcontext") else "http"
        self.sockname = _address(transport, "sockname")
        self.peername = _address(transport, "peername")
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.ready.clear()
        if not self.closed.done():
            self.closed.set_result(None)
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def eof_received(self) -> bool | None:
        return None  # close our side too (after writing what is buffered)

    def pause_writing(self) -> None:
        self.write_paused = True
        self._reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        self._reading()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.server.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self.server.read_buffer[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        if self.lingering or self.refusal is not None or self.close_after:
            return  # the connection is ending: what follows is not parsed
        self.active = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.close_after = True  # the bytes after the request are not HTTP/1.1
        except httptools.HttpParserError as err:
            if self.refusal is None:  # not one of ours: httptools refused the bytes
                self._refuse(400, f"bad HTTP request: {err}")
        self._advance()

    # -- httptools callbacks ---------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.receiving = True
        self.url = b""
        self.headers = []
        self.chunks = []
        self.size = 0
        self.head_bytes = 0
        self.expect_continue = False

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        self.headers.append((name, value))
        self._count_head(len(name) + len(value))
        if name == b"content-length" and int(value) > self.limits.max_body_bytes:
            self._refuse(
                413,
                f"request body of {int(value)} bytes exceeds the "
                f"{self.limits.max_body_bytes}-byte limit",
            )
            raise _Reject
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_continue = True

    def on_headers_complete(self) -> None:
        if self.expect_continue and not self.ready and self.task is None:
            assert self.transport is not None
            self.transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.limits.max_body_bytes:
            self._refuse(413, f"request body exceeds the {self.limits.max_body_bytes}-byte limit")
            raise _Reject
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        chunks = self.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        parser = self.parser
        self.ready.append(
            _Request(
                parser.get_method(),
                self.url,
                self.headers,
                body,
                parser.should_keep_alive(),
                parser.get_http_version(),
            )
        )
        self.receiving = False
        self.chunks = []

    def _count_head(self, size: int) -> None:
        self.head_bytes += size
        if self.head_bytes > self.limits.max_head_bytes:
            self._refuse(431, f"request line and headers exceed {self.limits.max_head_bytes} bytes")
            raise _Reject

    # -- answering -------------------------------------------------------------------------------
    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` after the answers owed to earlier requests, then close."""
        body = message.encode()
        self.refusal = b"".join(
            (
                _STATUS[status],
                b"content-type: ",
                _TEXT,
                b"\r\ncontent-length: %d\r\nconnection: close\r\ndate: " % len(body),
                self.server.date,
                b"\r\n\r\n",
                body,
            )
        )
        self.receiving = False
        log.info("refused HTTP request", extra={"status": status, "error": message})

    def _advance(self) -> None:
        """Answer the queued requests in order: direct ones now, one bridged at a time."""
        transport = self.transport
        if transport is None or self.lingering:
            return
        while self.ready and self.task is None:
            if transport.is_closing():
                self.ready.clear()
                return
            request = self.ready.popleft()
            handler = self.direct.get(request.url) if request.method == b"POST" else None
            if handler is None:
                self.task = self.loop.create_task(self._bridge(request))
                self.task.add_done_callback(self._bridged)
                self._reading()
                return
            try:
                status, content_type, body = handler(request.body)
            except Exception:  # a direct route answers its own errors: this is a bug
                log.exception(
                    "internal error", extra={"path": request.url.decode(errors="replace")}
                )
                status, content_type, body = 500, _TEXT, b"internal error; see the extender log"
            keep = request.keep_alive and not self.server.stopping
            size = len(body) if isinstance(body, bytes) else sum(map(len, body))
            head = b"".join(
                (
                    _STATUS[status],
                    b"content-type: ",
                    content_type,
                    b"\r\ncontent-length: %d\r\n" % size,
                    b"date: ",
                    self.server.date,
                    b"\r\n\r\n" if keep else b"\r\nconnection: close\r\n\r\n",
                )
            )
            if isinstance(body, bytes) and len(body) < 65536:
                transport.write(head + body)
            else:  # one writev: the body's large pieces are not copied into one more buffer
                transport.writelines((head, body) if isinstance(body, bytes) else (head, *body))
            self.active = self.loop.time()
            if not keep:
                transport.close()
                return
        if self.task is None and not self.ready:
            if self.refusal is not None:
                transport.write(self.refusal)
                self._linger()
            elif self.close_after or (self.server.stopping and not self.receiving):
                transport.close()

    def _linger(self) -> None:
        """Close after a moment: a client still sending a refused body reads the refusal
        instead of a reset (closing with unread bytes makes the kernel send RST)."""
        assert self.transport is not None
        self.lingering = True
        self.loop.call_later(self.limits.linger, self.transport.close)

    def _reading(self) -> None:
        """Read while nothing is bridged and the client reads our answers."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        wanted = self.task is None and not self.write_paused
        if wanted != self.reading:
            self.reading = wanted
            if wanted:
                transport.resume_reading()
            else:
                transport.pause_reading()

    def _bridged(self, task: asyncio.Task[None]) -> None:
        self.task = None
        self.active = self.loop.time()
        self._reading()
        self._advance()

    def check(self, now: float) -> None:
        """The server's timer: close an idle connection, refuse a stalled request."""
        transport = self.transport
        if transport is None or transport.is_closing() or self.task is not None:
            return
        idle = now - self.active
        if self.write_paused or self.lingering:
            if idle > self.limits.read_timeout:
                transport.abort()
        elif self.receiving:
            if idle > self.limits.read_timeout and self.refusal is None:
                self._refuse(408, f"no request bytes for {self.limits.read_timeout:g} seconds")
                self._advance()
        elif idle > self.limits.keep_alive:
            transport.close()

    def shutdown(self) -> None:
        """Graceful stop: an idle connection closes now, a busy one after its answer."""
        if self.transport is not None and not (self.receiving or self.ready or self.task):
            self.transport.close()

    # -- the ASGI bridge -------------------------------------------------------------------------
    async def _bridge(self, request: _Request) -> None:
        assert self.transport is not None
        transport = self.transport
        url = httptools.parse_url(request.url)
        raw_path: bytes = url.path
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = urllib.parse.unquote(path)
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": request.version,
            "server": self.sockname,
            "client": self.peername,
            "scheme": self.scheme,
            "method": request.method.decode("latin-1"),
            "root_path": "",
            "path": path,
            "raw_path": raw_path,
            "query_string": url.query or b"",
            "headers": request.headers,
            "state": dict(self.server.state),
        }
        response = _Response(self, request)
        received = False

        async def receive() -> Message:
            nonlocal received
            if not received:
                received = True
                return {"type": "http.request", "body": request.body, "more_body": False}
            await self.closed  # nothing more comes: wait for the client to go
            return {"type": "http.disconnect"}

        try:
            await self.server.app(scope, receive, response.send)
        except Exception:
            log.exception("internal error", extra={"path": path})
            if response.started:
                transport.close()
            else:
                response.fail()
        else:
            if not response.started:
                log.error("the app returned without answering", extra={"path": path})
                response.fail()
            elif not response.complete:
                transport.close()


def _address(transport: asyncio.BaseTransport, which: str) -> tuple[str, int] | None:
    address = transport.get_extra_info(which)
    if isinstance(address, tuple) and len(address) >= 2:
        return str(address[0]), int(address[1])
    return None


class _Response:
    """An ASGI response written to a connection: status and headers, then the body."""

    def __init__(self, connection: _Connection, request: _Request) -> None:
        self.connection = connection
        self.transport = connection.transport
        self.head_only = request.method == b"HEAD"
        self.keep_alive = request.keep_alive
        self.version = request.version
        self.started = False
        self.complete = False
        self.chunked = False
        self.head = b""

    async def send(self, message: Message) -> None:
        connection = self.connection
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if connection.write_paused:
            connection.drained = connection.loop.create_future()
            await connection.drained
        if not self.started:
            if message["type"] != "http.response.start":
                raise RuntimeError(f"expected http.response.start, got {message['type']}")
            self._start(int(message["status"]), message.get("headers", ()))
            return
        if self.complete or message["type"] != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {message['type']}")
        body: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        parts = [self.head]
        self.head = b""
        if not self.head_only:
            if self.chunked:
                if body:
                    parts += [b"%x\r\n" % len(body), body, b"\r\n"]
                if not more:
                    parts.append(b"0\r\n\r\n")
            else:
                parts.append(body)
        transport.write(b"".join(parts))
        connection.active = connection.loop.time()
        if not more:
            self.complete = True
            if not self.keep_alive:
                transport.close()

    def _start(self, status: int, headers: Any) -> None:
        self.started = True
        self.keep_alive = self.keep_alive and not self.connection.server.stopping
        parts = [_STATUS.get(status) or _status_line(status)]
        length = False
        for name, value in headers:
            if any(bad in name or bad in value for bad in _BAD_HEADER):
                raise RuntimeError("the app sent a header with CR, LF or NUL")
            lower = name.lower()
            if lower == b"content-length":
                length = True
            elif lower == b"transfer-encoding":
                continue  # the framing is ours
            elif lower == b"connection":
                if b"close" in value.lower():
                    self.keep_alive = False
                continue
            parts += [name, b": ", value, b"\r\n"]
        parts += [b"date: ", self.connection.server.date, b"\r\n"]
        if not length and not self.head_only and status not in (204, 304) and status >= 200:
            if self.version == "1.1":
                self.chunked = True
                parts.append(b"transfer-encoding: chunked\r\n")
            else:
                self.keep_alive = False  # HTTP/1.0: the end of the body is the close
        if not self.keep_alive:
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        self.head = b"".join(parts)

    def fail(self) -> None:
        """500 before anything was sent; the connection closes."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        body = b"internal error; see the extender log"
        transport.write(
            _STATUS[500]
            + b"content-type: %s\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % (_TEXT, len(body))
            + body
        )
        transport.close()


class Server:
    """The listening side: connections, the once-a-second timer, lifespan and shutdown."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        direct: Mapping[bytes, Direct],
        limits: Limits,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.app = app
        self.direct = dict(direct)
        self.limits = limits
        self.loop = loop
        self.connections: set[_Connection] = set()
        self.state: dict[str, Any] = {}
        self.stopping = False
        self.date = b""
        self.read_buffer = memoryview(bytearray(_READ_BUFFER))  # see ``_Connection``
        self._timer: asyncio.TimerHandle | None = None
        self._tick()

    def _tick(self) -> None:
        self.date = email.utils.formatdate(time.time(), usegmt=True).encode()
        now = self.loop.time()
        for connection in list(self.connections):
            connection.check(now)
        self._timer = self.loop.call_at(now + self.limits.tick, self._tick)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def protocol(self) -> _Connection:
        return _Connection(self)

    async def shutdown(self) -> None:
        """Close idle connections, wait for the busy ones (up to the grace period)."""
        self.stopping = True
        for connection in list(self.connections):
            connection.shutdown()
        waiting = [c.closed for c in self.connections]
        if waiting:
            _, pending = await asyncio.wait(waiting, timeout=self.limits.shutdown_grace)
            if pending:
                log.warning("connections still open at shutdown", extra={"count": len(pending)})
                for connection in list(self.connections):
                    if connection.transport is not None:
                        connection.transport.abort()


class StartupFailed(Exception):
    """The app's lifespan startup failed (or the app ended without completing it): nothing was
    served.  The message is one line: the last line of what the app reported (Starlette sends
    the whole traceback text)."""


class _Lifespan:
    """The ASGI lifespan protocol, both ends: startup before serving, shutdown after."""

    def __init__(self, app: ASGIApp, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def _receive(self) -> Message:
        return await self.inbox.get()

    async def _send(self, message: Message) -> None:
        await self.outbox.put(message)

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        try:
            await self.app({**scope, "state": self.state}, self._receive, self._send)
        except Exception as err:  # the app sent lifespan.*.failed first, or has no lifespan
            ended = f"{type(err).__name__}: {err}"
            await self.outbox.put({"type": "lifespan.ended", "message": ended})
        else:
            await self.outbox.put({"type": "lifespan.ended"})

    async def _step(self, event: str) -> None:
        await self.inbox.put({"type": f"lifespan.{event}"})
        answer = await self.outbox.get()
        if answer["type"] == f"lifespan.{event}.complete":
            return
        lines = [line.strip() for line in str(answer.get("message") or "").splitlines()]
        reason = next((line for line in reversed(lines) if line), "")
        if answer["type"] != f"lifespan.{event}.failed":
            reason = "the app ended without completing it" + (f" ({reason})" if reason else "")
        if event == "startup":
            raise StartupFailed(reason or "no reason given")
        raise RuntimeError(f"lifespan {event} failed: {reason}")

    async def startup(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())
        try:
            await self._step("startup")
        except StartupFailed:
            with contextlib.suppress(Exception):
                await self.task  # the app's own ending (Starlette re-raises after "failed")
            raise

    async def shutdown(self) -> None:
        if self.task is None or self.task.done():
            return
        await self._step("shutdown")
        with contextlib.suppress(Exception):
            await self.task


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


async def serve(
    app: ASGIApp,
    *,
    direct: Mapping[bytes, Direct],
    host: str,
    port: int,
    tls: ssl.SSLContext | None = None,
    limits: Limits | None = None,
    started: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
    signals: bool = True,
) -> None:
    """Serve until SIGINT / SIGTERM (with ``signals``) or ``stop`` is set; ``started`` is
    called with the port once listening (``port=0``: any free one).  ``StartupFailed`` if the
    app's lifespan startup fails (nothing listens then)."""
    loop = asyncio.get_running_loop()
    server = Server(app, direct=direct, limits=limits or Limits(), loop=loop)
    lifespan = _Lifespan(app, server.state)
    await lifespan.startup()
    stop = stop or asyncio.Event()
    listener = await loop.create_server(
        server.protocol, host=host, port=port, ssl=tls, backlog=2048
    )
    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM) if signals else ():
        loop.add_signal_handler(sig, stop.set)
        handled.append(sig)
    log.info("serving", extra={"host": host, "port": port, "tls": tls is not None})
    try:
        if started is not None:
            started(listener.sockets[0].getsockname()[1])
        await stop.wait()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        listener.close()
        await server.shutdown()
        server.close()
        await listener.wait_closed()
        await lifespan.shutdown()
