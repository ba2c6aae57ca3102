"""extender.probes: the probe and metrics routes both services serve."""

from __future__ import annotations

import httpx
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette

from extender.probes import probe_routes


class _Probe:
    def __init__(self) -> None:
        self.reason: str | None = "cache not synced"
        self.scrapes = 0

    def not_ready(self) -> str | None:
        return self.reason

    def scrape(self) -> bytes:
        self.scrapes += 1
        return b"# TYPE up gauge\nup 1\n"


async def _get(app: Starlette, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as http:
        return await http.get(path)


async def test_readyz_follows_not_ready_and_says_why() -> None:
    probe = _Probe()
    app = Starlette(routes=probe_routes(not_ready=probe.not_ready, scrape=probe.scrape))
    answer = await _get(app, "/readyz")
    assert (answer.status_code, answer.text) == (503, "cache not synced")
    probe.reason = None
    answer = await _get(app, "/readyz")
    assert (answer.status_code, answer.text) == (200, "ok")


async def test_healthz_is_ok_while_not_ready() -> None:
    probe = _Probe()
    app = Starlette(routes=probe_routes(not_ready=probe.not_ready, scrape=probe.scrape))
    answer = await _get(app, "/healthz")
    assert (answer.status_code, answer.text) == (200, "ok")


async def test_metrics_scrapes_on_every_request_in_prometheus_text() -> None:
    probe = _Probe()
    app = Starlette(routes=probe_routes(not_ready=probe.not_ready, scrape=probe.scrape))
    for _ in range(2):
        answer = await _get(app, "/metrics")
        assert answer.status_code == 200
        assert answer.text == "# TYPE up gauge\nup 1\n"
        assert answer.headers["content-type"] == CONTENT_TYPE_LATEST
    assert probe.scrapes == 2
