"""What the controller must not forget, kept in the cluster: the status ConfigMap, and Events.

The controller keeps no local state a restart would lose.  Between passes it remembers when each
node became unneeded, when each group last scaled, and per-minute series of demand for the
forecaster, one per resource class (``demand``: cpu cores, ``gpuDemand``: GPUs); all of it is written to the status ConfigMap (``data.state``, JSON) after every pass
that acts, and read back when a replica becomes the leader.  ``data.status`` is the
human-readable part (``kubectl get cm -o yaml``), like cluster-autoscaler's status ConfigMap.
:class:`Memory` and :class:`DemandHistory` are pure; :class:`StatusStore` is the I/O.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import secrets
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

__all__ = ["DemandHistory", "Memory", "StatusStore"]

log = logging.getLogger(__name__)

COMPONENT = "spillover-autoscaler"


class DemandHistory:
    """A bounded series of demand per ``step`` seconds (the max seen within each step)."""

    def __init__(self, *, step: float = 60.0, limit: int = 7 * 1440) -> None:
        self.step = step
        self.limit = limit
        self._ts: deque[float] = deque(maxlen=limit)
        self._values: deque[float] = deque(maxlen=limit)

    def __len__(self) -> int:
        return len(self._ts)

    @property
    def span(self) -> float:
        return self._ts[-1] - self._ts[0] if self._ts else 0.0

    def add(self, now: float, value: float) -> bool:
        """Record a sample; returns True when it opened a new step."""
        bucket = math.floor(now / self.step) * self.step
        if self._ts and bucket <= self._ts[-1]:
            if bucket == self._ts[-1]:
                self._values[-1] = max(self._values[-1], value)
            return False
        self._ts.append(bucket)
        self._values.append(value)
        return True

    def series(self) -> tuple[list[float], list[float]]:
        return list(self._ts), list(self._values)

    def last(self) -> tuple[float, float] | None:
        return (self._ts[-1], self._values[-1]) if self._ts else None

    def to_json(self) -> dict[str, Any]:
        start = self._ts[0] if self._ts else 0.0
        return {
            "step": self.step,
            "start": start,
            "offsets": [round((t - start) / self.step) for t in self._ts],
            "values": [round(v, 3) for v in self._values],
        }

    @classmethod
    def from_json(cls, raw: Any, *, step: float = 60.0, limit: int = 7 * 1440) -> DemandHistory:
        history = cls(step=step, limit=limit)
        if not isinstance(raw, Mapping):
            return history
        try:
            old_step = float(raw.get("step") or step)
            start = float(raw.get("start") or 0.0)
            for offset, value in zip(
                raw.get("offsets") or (), raw.get("values") or (), strict=False
            ):
                history.add(start + float(offset) * old_step, float(value))
        except (TypeError, ValueError):
            log.warning("status: ignoring an unreadable demand history")
            return cls(step=step, limit=limit)
        return history


@dataclass(slots=True)
class Memory:
    """The controller's durable memory between passes."""

    unneeded: dict[str, float] = field(default_factory=dict)
    last_scale_up: dict[str, float] = field(default_factory=dict)
    last_scale_down: dict[str, float] = field(default_factory=dict)
    demand: DemandHistory = field(default_factory=DemandHistory)  # the cpu class, in cores
    gpu_demand: DemandHistory = field(default_factory=DemandHistory)  # the gpu class, in GPUs

    def histories(self) -> dict[str, DemandHistory]:
        """Demand series by resource class (see ``autoscaler.predictive``)."""
        return {"cpu": self.demand, "gpu": self.gpu_demand}

    def to_json(self) -> dict[str, Any]:
        return {
            "unneeded": self.unneeded,
            "lastScaleUp": self.last_scale_up,
            "lastScaleDown": self.last_scale_down,
            "demand": self.demand.to_json(),
            "gpuDemand": self.gpu_demand.to_json(),
        }

    @classmethod
    def from_json(cls, raw: Any, *, step: float = 60.0, limit: int = 7 * 1440) -> Memory:
        doc = raw if isinstance(raw, Mapping) else {}
        return cls(
            unneeded=_times(doc.get("unneeded")),
            last_scale_up=_times(doc.get("lastScaleUp")),
            last_scale_down=_times(doc.get("lastScaleDown")),
            demand=DemandHistory.from_json(doc.get("demand"), step=step, limit=limit),
            gpu_demand=DemandHistory.from_json(doc.get("gpuDemand"), step=step, limit=limit),
        )


def _times(raw: Any) -> dict[str, float]:
    if not isinstance(raw, Mapping):
        return {}
    out: dict[str, float] = {}
    for key, value in raw.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[str(key)] = float(value)
    return out


class StatusStore:
    """The status ConfigMap and Events in one namespace."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        name: str = "spillover-autoscaler-status",
        identity: str = "",
        step: float = 60.0,
        limit: int = 7 * 1440,
    ) -> None:
        self._core = client.CoreV1Api(api)
        self._api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self._step = step
        self._limit = limit

    async def load(self) -> Memory:
        """The memory last written, or an empty one (first start, or unreadable)."""
        try:
            cm = await self._core.read_namespaced_config_map(self.name, self.namespace)
        except ApiException as err:
            if err.status == 404:
                return Memory(
                    demand=DemandHistory(step=self._step, limit=self._limit),
                    gpu_demand=DemandHistory(step=self._step, limit=self._limit),
                )
            raise
        data = cm.data or {}
        try:
            raw = json.loads(data.get("state") or "{}")
        except ValueError:
            log.warning("status: data.state is not JSON; starting with an empty memory")
            raw = {}
        return Memory.from_json(raw, step=self._step, limit=self._limit)

    async def save(self, memory: Memory, status: Mapping[str, Any]) -> None:
        data = {
            "status": json.dumps(status, indent=2, sort_keys=True, default=str),
            "state": json.dumps(memory.to_json(), separators=(",", ":")),
        }
        for _ in range(3):
            try:
                current = await self._core.read_namespaced_config_map(self.name, self.namespace)
            except ApiException as err:
                if err.status != 404:
                    raise
                body = {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "data": data,
                }
                try:
                    await self._core.create_namespaced_config_map(self.namespace, body)  # type: ignore[arg-type]
                    return
                except ApiException as create_err:
                    if create_err.status == 409:
                        continue
                    raise
            raw: dict[str, Any] = self._api.sanitize_for_serialization(current)
            raw["data"] = {**(raw.get("data") or {}), **data}
            try:
                await self._core.replace_namespaced_config_map(self.name, self.namespace, raw)  # type: ignore[arg-type]
                return
            except ApiException as err:
                if err.status != 409:
                    raise
        log.warning("status: the ConfigMap kept changing under us; skipped this write")

    async def event(
        self,
        *,
        reason: str,
        message: str,
        now: float,
        warning: bool = False,
        kind: str = "ConfigMap",
        name: str = "",
        namespace: str | None = None,
    ) -> None:
        """Post an Event about an object (default: the status ConfigMap); failures are logged."""
        involved_name = name or self.name
        involved_ns = self.namespace if namespace is None and kind != "Node" else namespace or ""
        stamp = datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{involved_name}.{secrets.token_hex(8)}",
                "namespace": involved_ns or "default",
            },
            "involvedObject": {
                "apiVersion": "v1",
                "kind": kind,
                "name": involved_name,
                **({"namespace": involved_ns} if involved_ns else {}),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT, "host": self.identity},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.identity,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self._core.create_namespaced_event(body["metadata"]["namespace"], body)  # type: ignore[arg-type,index]
        except (ApiException, OSError, TimeoutError) as err:
            log.warning(
                "status: could not post an event", extra={"reason": reason, "error": str(err)}
            )
