"""Fixtures of the autoscaler tests: a fake ESS OpenAPI server and a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from autoscaler_fakes import FakeClock, FakeEss


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def fake_ess() -> AsyncIterator[FakeEss]:
    ess = FakeEss("test-ak", "test-sk")
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ess.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    ess.port = server.sockets[0].getsockname()[1]
    try:
        yield ess
    finally:
        await runner.cleanup()
