"""``extender.verbs``: filter, prioritize and preempt over a cache, asserted on reason codes."""

from __future__ import annotations

from typing import Any

import pytest
from pure_helpers import ECI_NODE, ECS_NODE, ns_pod, unit_policy

from extender.ledger import Ledger
from extender.model import Node, OwnerRef, Pod
from extender.policy import ResourcePolicy
from extender.snapshot import ClusterState
from extender.verbs import (
    NOT_SYNCED_ERROR,
    Caches,
    Offer,
    filter_pod,
    group_offer,
    preempt,
    prioritize,
    record_bind,
)

ECS_2 = Node("ecs-2", {"pool": "general"})
OFFERED = ("ecs-1", "ecs-2", "vk")


def cluster(
    policy: ResourcePolicy | None, *, running: int = 0, synced: bool = True
) -> ClusterState:
    pods = [ns_pod(f"r{i}", node="ecs-1") for i in range(running)]
    return ClusterState(
        nodes=[ECS_NODE, ECS_2, ECI_NODE],
        pods=pods,
        policies=[policy] if policy else [],
        synced=synced,
    )


def offering(state: ClusterState, names: tuple[str, ...] = OFFERED) -> Any:
    def offer(policy: ResourcePolicy) -> Offer:
        return group_offer(policy, names, nodes=state.nodes)

    return offer


def ask(verb: Any, state: ClusterState, names: tuple[str, ...] = OFFERED, **kw: Any) -> Any:
    """``filter_pod`` or ``prioritize`` for a new replica offered ``names``."""
    kw.setdefault("caches", Caches())
    kw.setdefault("ledger", Ledger())
    kw.setdefault("pod", ns_pod("new"))
    return verb(state=state, offer=offering(state, names), now=0.0, **kw)


SPILL = unit_policy({"resource": "ecs", "max": 2}, {"resource": "eci"})
WAIT = unit_policy({"resource": "ecs", "max": 2}, {"resource": "eci"}, whenTryNextUnits="ExceedMax")
ECS_ONLY = unit_policy({"resource": "ecs", "max": 2})


@pytest.mark.parametrize(
    ("policy", "running", "names", "reason", "unit", "accepted"),
    [
        (None, 0, OFFERED, "unmanaged", "unmanaged", ()),
        (SPILL, 0, OFFERED, "first_unit", "ecs", ("ecs-1", "ecs-2")),
        (SPILL, 2, OFFERED, "overflow", "eci", ("vk",)),
        (WAIT, 0, ("vk",), "waiting", "none", ()),
        (ECS_ONLY, 2, OFFERED, "no_unit", "none", ()),
        (SPILL, 0, ("new-1",), "no_known_nodes", "none", ()),
    ],
    ids=["unmanaged", "first-unit", "overflow", "waiting", "no-unit", "no-known-nodes"],
)
def test_filter_reason_codes(
    policy: ResourcePolicy | None,
    running: int,
    names: tuple[str, ...],
    reason: str,
    unit: str,
    accepted: tuple[str, ...],
) -> None:
    outcome = ask(filter_pod, cluster(policy, running=running), names)
    assert (outcome.reason, outcome.unit, outcome.accepted) == (reason, unit, accepted)
    assert outcome.passed is (policy is None)
    refused = set(outcome.unresolvable_map()) | set(outcome.failed)
    assert refused == (set() if policy is None else set(names) - set(accepted))


@pytest.mark.parametrize(
    ("failure_policy", "passed", "error"),
    [("pass", True, ""), ("error", False, NOT_SYNCED_ERROR)],
    ids=["pass", "error"],
)
def test_an_unsynced_cache_follows_the_failure_policy(
    failure_policy: str, passed: bool, error: str
) -> None:
    outcome = ask(filter_pod, cluster(SPILL, synced=False), failure_policy=failure_policy)
    assert (outcome.passed, outcome.error, outcome.reason) == (passed, error, "not_synced")


@pytest.mark.parametrize("reserve", [True, False], ids=["reserve", "dry"])
def test_filter_reserves_the_slot_it_gave(reserve: bool) -> None:
    state = cluster(SPILL, running=1)
    ledger = Ledger(ttl=30.0)
    kw: dict[str, Any] = {"state": state, "ledger": ledger, "caches": Caches(), "now": 0.0}
    first = filter_pod(pod=ns_pod("a"), offer=offering(state), reserve=reserve, **kw)
    second = filter_pod(pod=ns_pod("b"), offer=offering(state), **kw)
    assert first.reason == "first_unit"
    # with a's slot reserved the ECS max of 2 is reached: b overflows to ECI
    assert second.reason == ("overflow" if reserve else "first_unit")
    bound = record_bind(ledger=ledger, uid="a", node="ecs-1", now=5.0)
    assert (bound is not None) is reserve
    if bound is not None:
        assert (bound.node, bound.unit, bound.expires) == ("ecs-1", 0, 35.0)


@pytest.mark.parametrize(
    ("names", "running", "hosts", "unit"),
    [
        (("ecs-1", "ecs-2"), 0, (), "ecs"),  # one unit offered: a uniform score ranks nothing
        (OFFERED, 0, ("ecs-1", "ecs-2"), "ecs"),
        (OFFERED, 2, ("vk",), "eci"),
        (("new-1",), 0, (), "none"),
    ],
    ids=["single-unit", "first-unit", "overflow", "no-known-nodes"],
)
def test_prioritize_scores_the_chosen_units_nodes(
    names: tuple[str, ...], running: int, hosts: tuple[str, ...], unit: str
) -> None:
    outcome = ask(prioritize, cluster(SPILL, running=running), names)
    assert (outcome.hosts, outcome.unit) == (hosts, unit)
    assert outcome.scores == dict.fromkeys(hosts, 10)


def test_prioritize_reuses_filters_decision_for_the_same_pod() -> None:
    state = cluster(SPILL)
    caches, pod = Caches(), ns_pod("new")
    offer = offering(state, ("ecs-1", "ecs-2"))
    filter_pod(state=state, ledger=Ledger(), caches=caches, pod=pod, offer=offer, now=0.0)
    assert caches.recall(pod, state.generation) is not None
    assert caches.recall(ns_pod("new"), state.generation) is None  # another body
    state.upsert_node(Node("ecs-3", {"pool": "general"}))
    assert caches.recall(pod, state.generation) is None  # the nodes changed


def test_preempt_keeps_nodes_the_policy_accepts_once_the_victims_are_gone() -> None:
    state = cluster(SPILL, running=2)
    candidates = {
        "ecs-1": (("r0",), 0),  # one of the workload's own pods goes: room under the ECS max
        "ecs-2": ((), 0),  # nobody goes: ECS is full for this workload
        "gone": ((), 0),
    }
    outcome = preempt(
        state=state,
        ledger=Ledger(),
        caches=Caches(),
        pod=ns_pod("new"),
        candidates=candidates,
        now=0.0,
    )
    assert set(outcome.kept) == {"ecs-1"}
    assert set(outcome.dropped) == {"ecs-2", "gone"}


@pytest.mark.parametrize("synced", [True, False], ids=["unmanaged", "unsynced"])
def test_preempt_keeps_every_candidate_when_it_has_nothing_to_say(synced: bool) -> None:
    state = cluster(None if synced else SPILL, synced=synced)
    candidates = {"ecs-1": (("x",), 1)}
    outcome = preempt(
        state=state, ledger=Ledger(), caches=Caches(), pod=ns_pod("n"), candidates=candidates, now=0
    )
    assert outcome.kept == candidates


def test_the_policy_index_follows_the_caches_policies() -> None:
    state = cluster(SPILL)
    caches = Caches()
    assert caches.policy(state, ns_pod("a")) is SPILL
    state.set_policies([])
    assert caches.policy(state, ns_pod("a")) is None
    daemon = ns_pod("ds", owner=OwnerRef("DaemonSet", "agent"))
    state.set_policies([SPILL])
    assert caches.policy(state, daemon) is None


def test_pod_memo_needs_the_same_body() -> None:
    caches = Caches()
    raw: dict[str, Any] = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "spec": {}}
    first = caches.pod(raw)
    assert caches.pod(dict(raw)) is first
    changed = {**raw, "metadata": {**raw["metadata"], "labels": {"app": "a"}}}
    assert caches.pod(changed).labels == {"app": "a"}
    assert isinstance(first, Pod)
