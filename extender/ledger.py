"""Reservations that make counting race-safe.

kube-scheduler's scheduling cycle is serial but binding is asynchronous: the next replica is
filtered before the previous one shows up bound in the watch.  ``filter`` therefore reserves a
slot (pod UID -> unit) here; the cache confirms it (drops it) when it sees the pod bound, releases
it when the pod is deleted, and anything unconfirmed expires after ``ttl`` seconds.  Pure: time is
an argument, and only grows (``ports.Clock``), so reservations expire in the order they were made:
``expire`` looks at the expired ones and the first live one, never at the whole ledger (the watch
calls it on every event).

Memory is bounded twice: by time (a reservation lives ``ttl`` seconds, so the ledger holds the pods
filtered in the last ``ttl`` seconds and not yet seen bound: in a cluster, those in flight), and by
count (``limit``, ``MAX_RESERVATIONS`` by default): a reservation made when ``limit`` are live
drops the oldest, as if it had expired early.  kube-scheduler places a few hundred pods a second
at most, so 30 s of them stay far below the limit; it is there for a ledger that something keeps
from being confirmed.

A pod seen bound to a node the cache does not know yet (full-Node mode judges such nodes from
the request; the node watch may lag) cannot count itself: ``unit_counts`` finds no unit for it.
``seen_bound`` then keeps its reservation, pinned to the node and without expiry, and the cache
drops it once the node arrives (or the pod goes): the pod is counted by the unit its
reservation chose until its node is known.
"""

from __future__ import annotations

import math
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, replace

from .model import WorkloadKey

__all__ = ["MAX_RESERVATIONS", "Ledger", "Reservation"]

MAX_RESERVATIONS = 100_000
"""About 230 bytes each, with the pod's UID about 300: some 30 MB at the limit."""


@dataclass(frozen=True, slots=True)
class Reservation:
    uid: str
    workload: WorkloadKey
    policy: str
    unit: int
    expires: float
    node: str = ""


class Ledger:
    def __init__(self, *, ttl: float = 30.0, limit: int = MAX_RESERVATIONS) -> None:
        if ttl <= 0:
            raise ValueError("reservation ttl must be positive")
        if limit < 1:
            raise ValueError("reservation limit must be at least 1")
        self.ttl = ttl
        self.limit = limit
        self._by_uid: dict[str, Reservation] = {}
        self._by_workload: dict[WorkloadKey, set[str]] = defaultdict(set)
        # pod UID -> deadline of the reservations that expire, oldest first (held ones are not
        # here).  An OrderedDict: a dict's first key is found by skipping the slots of the keys
        # deleted before it, which made each reserve at the limit cost a scan.
        self._deadlines: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_uid)

    def get(self, uid: str) -> Reservation | None:
        return self._by_uid.get(uid)

    def reserve(
        self, *, uid: str, workload: WorkloadKey, policy: str, unit: int, now: float, node: str = ""
    ) -> Reservation:
        """Reserve (or move) the pod's slot; a retried filter replaces its earlier reservation.
        At ``limit`` live reservations the oldest goes."""
        self.release(uid)
        reservation = Reservation(uid, workload, policy, unit, now + self.ttl, node)
        self._by_uid[uid] = reservation
        self._by_workload[workload].add(uid)
        self._deadlines[uid] = reservation.expires
        if len(self._deadlines) > self.limit:
            self.release(next(iter(self._deadlines)))
        return reservation

    def release(self, uid: str) -> Reservation | None:
        """Drop a reservation: the pod was seen bound (confirmed) or deleted."""
        reservation = self._by_uid.pop(uid, None)
        if reservation is not None:
            self._deadlines.pop(uid, None)
            uids = self._by_workload[reservation.workload]
            uids.discard(uid)
            if not uids:
                del self._by_workload[reservation.workload]
        return reservation

    confirm = release

    def seen_bound(self, uid: str, *, node: str, node_known: bool) -> None:
        """The watch saw the pod bound to ``node``: confirm, or hold until the node is known."""
        if node_known:
            self.release(uid)
            return
        reservation = self._by_uid.get(uid)
        if reservation is not None and reservation.expires != math.inf:
            self._by_uid[uid] = replace(reservation, expires=math.inf, node=node)
            del self._deadlines[uid]

    def reserved(self, workload: WorkloadKey, *, policy: str, now: float) -> dict[str, int]:
        """Live reservations of one workload under one policy, as pod UID -> unit."""
        result: dict[str, int] = {}
        for uid in tuple(self._by_workload.get(workload, ())):
            r = self._by_uid[uid]
            if r.expires <= now:
                self.release(uid)
            elif r.policy == policy:
                result[uid] = r.unit
        return result

    def expire(self, now: float) -> int:
        """Drop every reservation past its deadline; returns how many."""
        stale = []
        for uid, expires in self._deadlines.items():
            if expires > now:
                break  # the rest were made later: they expire later
            stale.append(uid)
        for uid in stale:
            self.release(uid)
        return len(stale)
