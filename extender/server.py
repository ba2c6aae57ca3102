"""The HTTP servers that can run the extender: builtin (the default), uvicorn or granian.

All three serve the same Starlette app from ``extender.app`` in this process, on one event loop,
so the handlers, the watch and the ledger share memory exactly as before; only the HTTP/1.1
layer (parsing, framing, keep-alive, TLS) differs.  ``bench/extender.py`` compares them side by
side; bench/RESULTS.md has the numbers.

builtin (``extender.http1``) is ours: asyncio + httptools on uvloop, and the verbs that never
await (filter, prioritize, preempt, mutate) are called on the request body directly, with no
ASGI scope, task or receive/send on the way; everything else goes to the app through an ASGI
bridge.  At 1,000 nodes it spends about a tenth of uvicorn's CPU per filter+prioritize pair on
HTTP (bench/RESULTS.md), which under uvicorn was more than the verbs themselves cost.

uvicorn (httptools, uvloop) was the default before: the same parser, but an ASGI cycle per
request.  granian's Rust HTTP thread answers big bodies with less latency when a core is free,
but it costs more CPU per request (every request crosses threads), and on the 2 shared cores a
scheduler has, CPU is what the other control-plane processes lose.

granian runs embedded (``granian.server.embed.Server``, which granian itself calls experimental),
not through its CLI, because the app is built here in this process with its loaded cluster; its
Rust HTTP stack on its own thread hands each request to our asyncio loop.  We install the
SIGINT / SIGTERM handlers ourselves (embedded granian does not): a signal stops accepting, lets
the requests in flight finish and runs the lifespan shutdown, as uvicorn and builtin do.  With
uvicorn and granian the body-size limit is the app's (``_read_body``); builtin applies the same
limit itself before the body is read, with the same 413 message.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import signal
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from starlette.types import ASGIApp

from . import http1
from .http1 import Direct
from .settings import Settings

__all__ = ["STARTUP_FAILED", "DirectRoutes", "run"]

STARTUP_FAILED = 3
"""The exit status when the app's lifespan startup fails (uvicorn's too)."""

log = logging.getLogger("spillover.extender")


@runtime_checkable
class DirectRoutes(Protocol):
    """An app that offers routes the builtin server may call without ASGI (``ExtenderApp``)."""

    def direct_routes(self) -> Mapping[bytes, Direct]: ...


def run(app: ASGIApp, settings: Settings) -> None:
    """Serve ``app`` until SIGINT / SIGTERM with the server ``settings.server`` names."""
    if settings.server == "builtin":
        direct: Mapping[bytes, Direct] = {}
        if isinstance(app, DirectRoutes):
            direct = app.direct_routes()
        try:
            _loop_runner()(_builtin(app, settings, direct))
        except http1.StartupFailed as err:  # one log line and an exit status, not a traceback
            log.error("application startup failed, not serving: %s", err)
            raise SystemExit(STARTUP_FAILED) from None
    elif settings.server == "uvicorn":
        _uvicorn(app, settings)
    elif settings.server == "granian":
        _loop_runner()(_granian(app, settings))
    else:  # the CLI validates the choice; this is a bug
        raise ValueError(f"unknown server {settings.server!r}")


def _loop_runner() -> Any:
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        return uvloop.run
    return asyncio.run


def _uvicorn(app: ASGIApp, settings: Settings) -> None:
    import uvicorn

    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        workers=1,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        ssl_certfile=settings.tls_cert or None,
        ssl_keyfile=settings.tls_key or None,
        log_config=None,
        access_log=False,
        log_level=settings.log_level,
    )


async def _builtin(app: ASGIApp, settings: Settings, direct: Mapping[bytes, Direct]) -> None:
    tls = None
    if settings.tls_cert:
        tls = http1.tls_context(settings.tls_cert, settings.tls_key)
    await http1.serve(
        app,
        direct=direct,
        host=settings.host,
        port=settings.port,
        tls=tls,
        limits=http1.Limits(max_body_bytes=settings.max_body_bytes),
    )


async def _granian(app: ASGIApp, settings: Settings) -> None:
    from pathlib import Path

    from granian.constants import HTTPModes, Interfaces, SSLProtocols
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server.embed import Server

    server = Server(
        app,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        http=HTTPModes.http1,  # as uvicorn: kube-scheduler's keep-alive HTTP/1.1 connection
        http1_settings=HTTP1Settings(keep_alive=True),
        websockets=False,
        log_enabled=False,
        log_level=LogLevels(settings.log_level),
        ssl_cert=Path(settings.tls_cert) if settings.tls_cert else None,
        ssl_key=Path(settings.tls_key) if settings.tls_key else None,
        ssl_protocol_min=SSLProtocols.tls12,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.stop)
    await server.serve()
