"""The probe and metrics endpoints both services serve, written once.

``/healthz`` answers ``ok`` while the process can answer at all (the liveness probe).
``/readyz`` answers ``ok``, or 503 with the reason ``not_ready()`` gives (the readiness probe:
the extender until its cluster cache is synced, the autoscaler until its first pass).
``/metrics`` is the Prometheus text exposition of what ``scrape()`` returns.

The extender mounts these routes beside its verbs; the autoscaler serves them alone.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


def probe_routes(
    *, not_ready: Callable[[], str | None], scrape: Callable[[], bytes]
) -> list[Route]:
    """``/healthz``, ``/readyz`` and ``/metrics`` (GET only)."""

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        reason = not_ready()
        if reason is None:
            return PlainTextResponse("ok")
        return PlainTextResponse(reason, status_code=503)

    async def metrics(_: Request) -> Response:
        return Response(scrape(), media_type=CONTENT_TYPE_LATEST)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
