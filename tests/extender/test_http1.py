"""The builtin HTTP/1.1 server (``extender.http1``) over real sockets: keep-alive and pipelining in
order, chunked bodies, limits, bad requests, timeouts, graceful shutdown and the ASGI bridge."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from extender_helpers import ECS, fixture, shop_state
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from test_bad_input import bodies

from extender import http1
from extender.app import create_app
from extender.commandline import run_main
from extender.ledger import Ledger
from extender.logs import configure
from extender.server import STARTUP_FAILED, run
from extender.settings import Settings

FILTER = json.dumps(fixture("filter-deployment-pod-nodecache.json")).encode()
LIMIT = 200_000


class _Served:
    def __init__(self, port: int, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
        self.port = port
        self.loop = loop
        self._stop = stop

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def stop(self) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stop.set)


@contextmanager
def serving(app: Any = None, direct: Any = None, **limits: Any) -> Iterator[_Served]:
    """The builtin server on a free port, in a thread with its own event loop."""
    if app is None:
        app = create_app(
            state=shop_state(), ledger=Ledger(), settings=Settings(max_body_bytes=LIMIT)
        )
    if direct is None:
        direct = app.direct_routes()
    ready = threading.Event()
    served: list[_Served] = []

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def started(port: int) -> None:
            served.append(_Served(port, loop, stop))
            ready.set()

        await http1.serve(
            app,
            direct=direct,
            host="127.0.0.1",
            port=0,
            limits=http1.Limits(**{"max_body_bytes": LIMIT, "linger": 0.1, **limits}),
            started=started,
            stop=stop,
            signals=False,
        )

    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as err:
            errors.append(err)
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30), "server did not start"
    assert not errors, errors
    try:
        yield served[0]
    finally:
        served[0].stop()
        thread.join(30)
    assert not thread.is_alive()
    assert not errors, errors


def request(method: str, path: str, body: bytes = b"", **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test"]
    if body and "Transfer_Encoding" not in headers:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One response off ``sock`` (Content-Length or chunked); leftovers stay in ``buffer``."""
    while b"\r\n\r\n" not in buffer:
        _fill(sock, buffer)
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    buffer[:] = rest
    lines = head.decode().split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), lines[0]
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(buffer) < length:
            _fill(sock, buffer)
        body = bytes(buffer[:length])
        del buffer[:length]
        return status, headers, body
    assert headers.get("transfer-encoding") == "chunked", headers
    body = b""
    while True:
        while b"\r\n" not in buffer:
            _fill(sock, buffer)
        size_line, _, _ = bytes(buffer).partition(b"\r\n")
        size = int(size_line, 16)
        while len(buffer) < len(size_line) + 2 + size + 2:
            _fill(sock, buffer)
        body += bytes(buffer[len(size_line) + 2 : len(size_line) + 2 + size])
        del buffer[: len(size_line) + 2 + size + 2]
        if size == 0:
            return status, headers, body


def _fill(sock: socket.socket, buffer: bytearray) -> None:
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError("closed")
    buffer += chunk


def closed(sock: socket.socket) -> bool:
    """The server closed the connection (EOF or reset), nothing more to read."""
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def test_pipelined_requests_are_answered_in_order_on_one_connection() -> None:
    with serving() as server, server.connect() as sock:
        # direct, bridged, direct, bridged, unknown, direct: all in one write
        sock.sendall(
            request("POST", "/filter", FILTER)
            + request("GET", "/healthz")
            + request("POST", "/prioritize", FILTER)
            + request("GET", "/readyz")
            + request("POST", "/nowhere", FILTER)
            + request("POST", "/filter", FILTER)
        )
        buffer = bytearray()
        answers = [read_response(sock, buffer) for _ in range(6)]
        again = request("POST", "/filter", FILTER)
        sock.sendall(again)
        last = read_response(sock, buffer)
    assert [status for status, _, _ in answers] == [200, 200, 200, 200, 404, 200]
    assert json.loads(answers[0][2])["NodeNames"] == list(ECS)
    assert answers[1][2] == b"ok"
    assert set(ECS) <= {score["Host"] for score in json.loads(answers[2][2])}
    assert b"unknown path /nowhere" in answers[4][2]
    assert answers[5][2] == answers[0][2] == last[2]
    assert all("connection" not in headers for _, headers, _ in answers)


def test_chunked_bodies_are_read_and_held_to_the_limit() -> None:
    def chunked(body: bytes, size: int) -> bytes:
        parts = [
            b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
            for i in range(0, len(body), size)
        ]
        return b"".join(parts) + b"0\r\n\r\n"

    with serving() as server:
        with server.connect() as sock:
            sock.sendall(
                request("POST", "/filter", chunked(FILTER, 100), Transfer_Encoding="chunked")
            )
            status, _, body = read_response(sock, bytearray())
        assert status == 200
        assert json.loads(body)["NodeNames"] == list(ECS)
        big = b'{"Pod": {}, "NodeNames": [' + b'"n",' * 60_000 + b'"n"]}'
        with server.connect() as sock:
            sock.sendall(
                request("POST", "/filter", chunked(big, 65536), Transfer_Encoding="chunked")
            )
            status, headers, body = read_response(sock, bytearray())
            assert closed(sock)
    assert status == 413
    assert headers["connection"] == "close"
    assert f"{LIMIT}-byte limit".encode() in body


def test_a_body_announced_too_big_is_413_before_it_is_sent() -> None:
    with serving() as server, server.connect() as sock:
        sock.sendall(b"POST /filter HTTP/1.1\r\nHost: t\r\nContent-Length: 900000\r\n\r\n")
        status, headers, body = read_response(sock, bytearray())
        assert closed(sock)
    assert status == 413
    assert headers["connection"] == "close"
    assert body == f"request body of 900000 bytes exceeds the {LIMIT}-byte limit".encode()


def test_expect_100_continue_is_answered_before_the_body() -> None:
    with serving() as server, server.connect() as sock:
        head = request("POST", "/filter", FILTER, Expect="100-continue")[: -len(FILTER)]
        sock.sendall(head)
        buffer = bytearray()
        while b"\r\n\r\n" not in buffer:
            _fill(sock, buffer)
        assert bytes(buffer) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(FILTER)
        status, _, body = read_response(sock, bytearray())
    assert status == 200
    assert json.loads(body)["NodeNames"] == list(ECS)


@pytest.mark.parametrize(
    ("raw", "status", "message"),
    [
        (b"GARBAGE\r\n\r\n", 400, b"bad HTTP request"),
        (b"POST /filter HTTP/1.1\r\nContent-Length: 3x\r\n\r\nabc", 400, b"Content-Length"),
        (
            b"POST /filter HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
            b"bad HTTP request",
        ),
        (b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", 431, b"headers exceed"),
    ],
)
def test_bad_requests_get_one_answer_then_the_connection_closes(
    raw: bytes, status: int, message: bytes
) -> None:
    with serving() as server:
        with server.connect() as sock:
            sock.sendall(request("GET", "/healthz") + raw)  # the answer owed comes first
            buffer = bytearray()
            first = read_response(sock, buffer)
            answer = read_response(sock, buffer)
            assert closed(sock)
        with server.connect() as sock:  # the server goes on
            sock.sendall(request("POST", "/filter", FILTER))
            after = read_response(sock, bytearray())
    assert first[0] == 200
    assert answer[0] == status
    assert message in answer[2]
    assert answer[1]["connection"] == "close"
    assert after[0] == 200


def test_http10_connection_close_head_and_upgrade() -> None:
    with serving() as server:
        with server.connect() as sock:
            sock.sendall(
                b"POST /filter HTTP/1.0\r\nContent-Length: %d\r\n\r\n" % len(FILTER) + FILTER
            )
            old = read_response(sock, bytearray())
            assert closed(sock)
        with server.connect() as sock:
            sock.sendall(request("GET", "/healthz", Connection="close"))
            close = read_response(sock, bytearray())
            assert closed(sock)
        with server.connect() as sock:
            sock.sendall(request("HEAD", "/healthz") + request("GET", "/healthz"))
            buffer = bytearray()
            sock.settimeout(10)
            while b"\r\n\r\n" not in buffer:
                _fill(sock, buffer)
            head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
            buffer[:] = rest
            get = read_response(sock, buffer)  # HEAD sent no body: the next answer follows
        with server.connect() as sock:
            sock.sendall(request("GET", "/healthz", Connection="Upgrade", Upgrade="h2c"))
            upgrade = read_response(sock, bytearray())
            assert closed(sock)
    assert old[0] == 200
    assert json.loads(old[2])["NodeNames"] == list(ECS)
    assert old[1]["connection"] == "close"
    assert close[0] == 200
    assert close[1]["connection"] == "close"
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"content-length: 2" in head
    assert get[2] == b"ok"
    assert upgrade[0] == 200


def test_idle_and_stalled_connections_are_closed() -> None:
    with serving(keep_alive=0.2, read_timeout=0.2, tick=0.05) as server:
        with server.connect() as idle:
            idle.sendall(request("GET", "/healthz"))
            assert read_response(idle, bytearray())[0] == 200
            assert closed(idle)  # blocks until the keep-alive timeout closes it
        with server.connect() as stalled:
            stalled.sendall(b"POST /filter HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
            status, headers, body = read_response(stalled, bytearray())
            assert closed(stalled)
    assert status == 408
    assert headers["connection"] == "close"
    assert body == b"no request bytes for 0.2 seconds"


class _SlowBinder:
    def __init__(self) -> None:
        self.called = threading.Event()
        self.release: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def bind(self, *, namespace: str, name: str, uid: str, node: str) -> None:
        self.loop = asyncio.get_running_loop()
        self.release = asyncio.Event()
        self.called.set()
        await self.release.wait()

    def finish(self) -> None:
        assert self.loop is not None
        assert self.release is not None
        self.loop.call_soon_threadsafe(self.release.set)


def test_sigterm_stops_accepting_closes_idle_and_finishes_in_flight() -> None:
    binder = _SlowBinder()
    app = create_app(
        state=shop_state(), ledger=Ledger(), settings=Settings(bind=True), binder=binder
    )
    bind = json.dumps({"PodName": "a", "PodNamespace": "shop", "PodUID": "u", "Node": ECS[0]})
    with serving(app) as server:
        idle = server.connect()
        idle.sendall(request("GET", "/healthz"))
        assert read_response(idle, bytearray())[0] == 200
        busy = server.connect()
        busy.sendall(request("POST", "/bind", bind.encode()))  # bridged: awaits the binder
        assert binder.called.wait(10)
        server.stop()
        assert closed(idle)
        with pytest.raises(ConnectionRefusedError):  # it closed before the idle connection
            server.connect()
        binder.finish()
        status, headers, body = read_response(busy, bytearray())
        assert closed(busy)
        idle.close()
        busy.close()
    assert status == 200
    assert json.loads(body) == {"Error": ""}
    assert headers["connection"] == "close"


def test_a_failing_handler_is_500_and_the_connection_survives() -> None:
    def broken(body: bytes) -> http1.Answer:
        raise RuntimeError("bug")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/raise":
            raise RuntimeError("bug")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})

    with serving(app, {b"/broken": broken}) as server:
        with server.connect() as sock:
            sock.sendall(request("POST", "/broken", b"{}") + request("GET", "/stream"))
            buffer = bytearray()
            broke = read_response(sock, buffer)
            streamed = read_response(sock, buffer)
        with server.connect() as sock:
            sock.sendall(request("GET", "/raise"))
            raised = read_response(sock, bytearray())
            assert closed(sock)
    assert broke[0] == 500
    assert streamed[0] == 200
    assert streamed[1]["transfer-encoding"] == "chunked"
    assert streamed[2] == b"ab"
    assert raised[0] == 500


_VALID = [
    request("POST", "/filter", FILTER),
    request("POST", "/prioritize", FILTER),
    request("GET", "/healthz"),
    request("GET", "/metrics"),
    request("POST", "/filter", b"3\r\nabc\r\n0\r\n\r\n", Transfer_Encoding="chunked"),
]


@st.composite
def mangled_requests(draw: Any) -> bytes:
    """A valid request with a few bytes replaced, inserted or deleted, maybe cut short."""
    raw = bytearray(draw(st.sampled_from(_VALID)))
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, min(len(raw), 200)))  # mostly the request line and headers
        what = draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = draw(st.sampled_from([0, 9, 10, 13, 32, 37, 48, 58, 127, 200, 255, 65]))
        if what == "replace" and at < len(raw):
            raw[at] = byte
        elif what == "insert":
            raw.insert(at, byte)
        elif at < len(raw):
            del raw[at]
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(0, len(raw)))]
    return bytes(raw)


@pytest.fixture(scope="module")
def shared_server() -> Iterator[_Served]:
    with serving(read_timeout=0.5, tick=0.05) as server:
        yield server


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=mangled_requests())
def test_any_bytes_get_http_answers_never_a_500_and_the_server_goes_on(
    shared_server: _Served, raw: bytes
) -> None:
    with shared_server.connect() as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)  # the server answers what is complete, then closes
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    for answer in data.split(b"HTTP/1.1 ")[1:]:
        assert int(answer[:3]) < 500, data[:300]
    assert not data or data.startswith(b"HTTP/1.1 "), data[:300]
    with shared_server.connect() as sock:
        sock.sendall(request("GET", "/healthz"))
        assert read_response(sock, bytearray())[0] == 200


@pytest.mark.parametrize("verb", ["filter", "prioritize"])
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies)
def test_any_body_through_the_direct_path_gets_200_or_4xx(
    shared_server: _Served, verb: str, body: bytes
) -> None:
    """The HTTP-level fuzz of test_bad_input, through the builtin server's direct path."""
    with shared_server.connect() as sock:
        sock.sendall(request("POST", f"/{verb}", body))
        status, headers, answer = read_response(sock, bytearray())
    assert status == 200 or 400 <= status < 500, answer
    if status != 200:
        assert answer
        assert headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("how", ["raises", "ends"])
def test_a_failed_startup_is_one_log_line_and_exit_status_3_not_a_traceback(how: str) -> None:
    """The app's lifespan startup fails (Starlette reports it with the whole traceback; a bare
    app may just end): the server logs one line naming the cause, listens on nothing and the
    command exits 3, as uvicorn does."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        raise OSError("the cluster file vanished")
        yield  # pragma: no cover - never reached

    async def ends(scope: Any, receive: Any, send: Any) -> None:
        await receive()  # lifespan.startup, then return without an answer

    app: Any = Starlette(lifespan=lifespan) if how == "raises" else ends

    def serve() -> int:
        run(app, Settings(host="127.0.0.1", port=0))
        return 0

    stream = io.StringIO()
    configure("info", stream=stream)
    try:
        code = run_main(serve)
    finally:
        configure("info")
    lines = stream.getvalue().splitlines()
    assert code == STARTUP_FAILED
    assert len(lines) == 1, lines
    entry = json.loads(lines[0])
    assert entry["level"] == "error"
    assert "exc" not in entry
    assert entry["msg"].startswith("application startup failed, not serving: ")
    if how == "raises":
        assert entry["msg"].endswith("OSError: the cluster file vanished")
    else:
        assert "the app ended without completing it" in entry["msg"]
