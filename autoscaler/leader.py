"""Leader election with a ``coordination.k8s.io/v1`` Lease: of several replicas, exactly one acts.

kubernetes-asyncio ships ``kubernetes_asyncio.leaderelection`` (``LeaderElection`` with a
``LeaseLock``), and the design asked to use it.  It is not used, for these reasons:

- it reads ``time.time()`` directly, so the controller tests could not drive it with a fake
  clock (they would have to sleep through real lease durations), and its ``Config`` refuses
  periods under one second;
- it writes the Lease's ``renewTime`` from a *naive local* datetime with a ``Z`` appended, which
  is wrong on any host whose timezone is not UTC, and other clients (kubectl, client-go) read it;
- ``run()`` returns for good once leadership is lost instead of going back to being a candidate,
  and it logs a traceback on every optimistic-concurrency conflict, which is the normal way to
  lose a race for the lock.

This elector follows client-go's rules: a candidate may take the lock only when the holder has
not changed the record for ``lease_duration`` as measured on the candidate's *own* clock since it
last saw the record change (no cross-host clock comparison); writes carry the
``resourceVersion`` they read, so of two racing candidates the API server lets exactly one win;
a leader that has not renewed within ``renew_deadline`` (< ``lease_duration``) stops acting
before anyone else may start.  :meth:`step` does one round and is what the tests drive.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

__all__ = ["LeaseElector", "LeaseSettings"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LeaseSettings:
    name: str = "spillover-autoscaler"
    namespace: str = "kube-system"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election: need 0 < retry_period < renew_deadline < lease_duration"
            )


class LeaseElector:
    def __init__(
        self,
        api: client.ApiClient,
        *,
        identity: str,
        settings: LeaseSettings | None = None,
        clock: Callable[[], float],
        on_acquired: Callable[[], None] | None = None,
    ) -> None:
        """``on_acquired`` is called each time this replica becomes the leader."""
        self.on_acquired = on_acquired
        self._api = api
        self._leases = client.CoordinationV1Api(api)
        self.identity = identity
        self.settings = settings or LeaseSettings()
        self._clock = clock
        self._renewed_at: float | None = None
        self._observed: tuple[str, str] | None = None
        self._observed_at = 0.0
        self.holder = ""

    @property
    def is_leader(self) -> bool:
        """True while this replica renewed the lease within ``renew_deadline``."""
        return (
            self._renewed_at is not None
            and self._clock() < self._renewed_at + self.settings.renew_deadline
        )

    async def step(self) -> bool:
        """Try to acquire or renew the lease once; returns :attr:`is_leader` afterwards."""
        try:
            await self._try_acquire_or_renew()
        except (ApiException, OSError, TimeoutError) as err:
            log.warning("leader election: %s", _describe(err), extra={"identity": self.identity})
        leader = self.is_leader
        if not leader:
            self._renewed_at = None
        return leader

    async def run(self, stop: asyncio.Event) -> None:
        """Step every ``retry_period`` until ``stop``; then release the lease if held."""
        while not stop.is_set():
            await self.step()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.retry_period)
        await self.release()

    async def release(self) -> None:
        """Give the lease up (holder cleared) so another replica takes over at once."""
        if self._renewed_at is None:
            return
        self._renewed_at = None
        s = self.settings
        try:
            lease = await self._read()
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            lease["spec"]["holderIdentity"] = ""
            lease["spec"]["leaseDurationSeconds"] = 1
            await self._leases.replace_namespaced_lease(s.name, s.namespace, lease)  # type: ignore[arg-type]
        except (ApiException, OSError, TimeoutError) as err:
            log.warning("leader election: release failed: %s", _describe(err))

    async def _read(self) -> dict[str, Any] | None:
        s = self.settings
        try:
            lease = await self._leases.read_namespaced_lease(s.name, s.namespace)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        raw: dict[str, Any] = self._api.sanitize_for_serialization(lease)
        return raw

    async def _try_acquire_or_renew(self) -> None:
        s = self.settings
        now = self._clock()
        stamp = _micro_time(now)
        lease = await self._read()
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": s.name, "namespace": s.namespace},
                "spec": {
                    "holderIdentity": self.identity,
                    "leaseDurationSeconds": max(1, round(s.lease_duration)),
                    "acquireTime": stamp,
                    "renewTime": stamp,
                    "leaseTransitions": 0,
                },
            }
            try:
                await self._leases.create_namespaced_lease(s.namespace, body)  # type: ignore[arg-type]
            except ApiException as err:
                if err.status == 409:  # another candidate created it first
                    return
                raise
            self._acquired(now, self.identity)
            return
        spec = lease.setdefault("spec", {})
        holder = str(spec.get("holderIdentity") or "")
        record = (holder, str(spec.get("renewTime") or ""))
        if record != self._observed:
            self._observed, self._observed_at = record, now
        self.holder = holder
        duration = float(spec.get("leaseDurationSeconds") or s.lease_duration)
        if holder and holder != self.identity and now < self._observed_at + duration:
            return  # held by another replica, and not expired as far as we can tell
        if holder != self.identity:
            spec["acquireTime"] = stamp
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        spec["holderIdentity"] = self.identity
        spec["renewTime"] = stamp
        spec["leaseDurationSeconds"] = max(1, round(s.lease_duration))
        try:
            await self._leases.replace_namespaced_lease(s.name, s.namespace, lease)  # type: ignore[arg-type]
        except ApiException as err:
            if err.status == 409:  # lost the race: someone else wrote it since we read it
                return
            raise
        if holder != self.identity:
            log.info("leader election: %s acquired the lease from %r", self.identity, holder)
        self._acquired(now, self.identity)

    def _acquired(self, now: float, holder: str) -> None:
        gained = not self.is_leader
        self._renewed_at = now
        self.holder = holder
        if gained and self.on_acquired is not None:
            self.on_acquired()


def _micro_time(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _describe(err: BaseException) -> str:
    if isinstance(err, ApiException):
        return f"{err.status} {err.reason}"
    return repr(err)
