"""The seams between the HTTP app and the outside world, with in-tree fakes in tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = ["BackgroundTask", "BindError", "Binder", "Clock"]

Clock = Callable[[], float]
"""Seconds, monotonic; the ledger and the reconciler read time only through it."""

BackgroundTask = Callable[[], Awaitable[None]]
"""A coroutine factory the Starlette lifespan runs until shutdown (watch, reconciler)."""


class BindError(Exception):
    """Binding failed at the API server; the message is returned to kube-scheduler."""


class Binder(Protocol):
    async def bind(self, *, namespace: str, name: str, uid: str, node: str) -> None:
        """Create the pod's ``Binding`` to ``node``; raises ``BindError``."""
