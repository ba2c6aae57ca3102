"""``extender.ledger``: reservations by pod UID that make counting race-safe (time is an argument)."""

from __future__ import annotations

import math

import pytest
from pure_helpers import ns_pod, unit_policy

from extender.ledger import Ledger, Reservation
from extender.model import Node, WorkloadKey
from extender.policy import unit_counts

WEB = WorkloadKey("shop", "Deployment", "web")
DB = WorkloadKey("shop", "StatefulSet", "db")


def ledger_with(*uids: str, workload: WorkloadKey = WEB, now: float = 0.0) -> Ledger:
    ledger = Ledger(ttl=30.0)
    for i, uid in enumerate(uids):
        ledger.reserve(uid=uid, workload=workload, policy="shop/p", unit=i % 2, now=now)
    return ledger


def test_a_reservation_lives_for_its_ttl() -> None:
    ledger = ledger_with("a", "b")
    assert ledger.reserved(WEB, policy="shop/p", now=29.9) == {"a": 0, "b": 1}
    assert ledger.reserved(WEB, policy="shop/p", now=30.0) == {}
    assert len(ledger) == 0  # reading expired ones drops them


@pytest.mark.parametrize(
    ("policy", "workload", "expected"),
    [("shop/p", WEB, {"a": 0}), ("shop/other", WEB, {}), ("shop/p", DB, {})],
    ids=["same", "other-policy", "other-workload"],
)
def test_reserved_is_per_workload_and_policy(
    policy: str, workload: WorkloadKey, expected: dict[str, int]
) -> None:
    assert ledger_with("a").reserved(workload, policy=policy, now=1.0) == expected


def test_a_retried_filter_moves_the_reservation() -> None:
    ledger = ledger_with("a")
    moved = ledger.reserve(uid="a", workload=WEB, policy="shop/p", unit=1, now=10.0)
    assert moved == Reservation("a", WEB, "shop/p", 1, 40.0)
    assert ledger.reserved(WEB, policy="shop/p", now=35.0) == {"a": 1}
    assert len(ledger) == 1


@pytest.mark.parametrize(
    ("node_known", "held"),
    [(True, False), (False, True)],
    ids=["node-known-confirms", "node-unknown-holds"],
)
def test_seen_bound(node_known: bool, held: bool) -> None:
    ledger = ledger_with("a")
    ledger.seen_bound("a", node="n1", node_known=node_known)
    reservation = ledger.get("a")
    assert (reservation is not None) is held
    if reservation is not None:
        assert (reservation.expires, reservation.node) == (math.inf, "n1")
        assert ledger.expire(10**9) == 0


def test_release_and_expire_count_what_they_drop() -> None:
    ledger = ledger_with("a", "b", "c")
    assert ledger.release("b") is not None
    assert ledger.release("b") is None
    ledger.reserve(uid="late", workload=DB, policy="shop/db", unit=0, now=20.0)
    assert ledger.expire(30.0) == 2
    assert [ledger.get(uid) is not None for uid in ("a", "c", "late")] == [False, False, True]


def test_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError, match="ttl"):
        Ledger(ttl=0)
    with pytest.raises(ValueError, match="limit"):
        Ledger(limit=0)


def test_at_its_limit_the_ledger_drops_the_oldest_reservation() -> None:
    ledger = Ledger(ttl=30.0, limit=3)
    ledger.reserve(uid="held", workload=WEB, policy="shop/p", unit=0, now=0.0)
    ledger.seen_bound("held", node="n-new", node_known=False)  # held: not expiring, kept
    for t, uid in enumerate("abcde"):
        ledger.reserve(uid=uid, workload=WEB, policy="shop/p", unit=0, now=float(t))
    assert ledger.reserved(WEB, policy="shop/p", now=5.0) == dict.fromkeys(("held", *"cde"), 0)
    ledger.reserve(uid="c", workload=WEB, policy="shop/p", unit=1, now=6.0)  # c is now the newest
    ledger.reserve(uid="f", workload=DB, policy="shop/db", unit=0, now=7.0)
    assert [uid for uid in "abcdef" if ledger.get(uid)] == ["c", "e", "f"]
    assert len(ledger) == 4
    assert ledger.expire(35.0) == 1  # e (made at 4); c (6) and f (7) live on
    assert ledger.expire(40.0) == 2
    assert len(ledger) == 1


def test_a_pod_bound_to_an_unknown_node_is_counted_by_its_held_reservation() -> None:
    """Regression: the reservation was dropped when the pod was seen bound, and unit_counts
    skipped the pod because its node was not in the cache: the unit went over its max."""
    policy = unit_policy({"resource": "ecs", "max": 2}, {"resource": "eci"})
    workload = WorkloadKey("ns", "Deployment", "a")
    ledger = Ledger(ttl=30.0)
    ledger.reserve(uid="a", workload=workload, policy=policy.key, unit=0, now=0.0)
    ledger.seen_bound("a", node="ecs-new", node_known=False)
    pods = [ns_pod("a", node="ecs-new")]
    later = 3600.0  # long after the ttl: held until the node is known
    reserved = ledger.reserved(workload, policy=policy.key, now=later)
    assert reserved == {"a": 0}
    assert unit_counts(policy, pods=pods, nodes={}, reserved=reserved) == [1, 0]
    # the node arrives: the pod counts itself, the reservation goes
    nodes = {"ecs-new": Node("ecs-new")}
    ledger.seen_bound("a", node="ecs-new", node_known=True)
    reserved = ledger.reserved(workload, policy=policy.key, now=later)
    assert reserved == {}
    assert unit_counts(policy, pods=pods, nodes=nodes, reserved=reserved) == [1, 0]
