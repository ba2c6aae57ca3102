"""A burst of replicas filtered back-to-back: the ledger keeps exactly N on ECS."""

from __future__ import annotations

import json
import time

import msgspec
from extender_helpers import ECS, VIRTUAL, bound, client, fixture_nodes, policy, web_pod_dict

from extender import wire
from extender.ledger import Ledger
from extender.settings import Settings
from extender.snapshot import ClusterState

OFFERED = [*ECS, VIRTUAL]


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _state(n: int = 10) -> ClusterState:
    web = policy("web", "web", {"resource": "ecs", "max": n}, {"resource": "eci"})
    return ClusterState(nodes=fixture_nodes(), policies=[web])


def _filter(c: object, i: int) -> list[str]:
    body = json.dumps({"Pod": web_pod_dict(i), "NodeNames": OFFERED, "Nodes": None})
    response = c.post("/filter", content=body)  # type: ignore[attr-defined]
    assert response.status_code == 200
    result = msgspec.json.decode(response.content, type=wire.ExtenderFilterResult)
    return result.NodeNames or []


def test_fifty_replicas_put_exactly_ten_on_ecs() -> None:
    ledger = Ledger()
    with client(_state(10), ledger, clock=FakeClock()) as c:
        placements = [_filter(c, i) for i in range(50)]
    assert placements[:10] == [list(ECS)] * 10
    assert placements[10:] == [[VIRTUAL]] * 40
    assert len(ledger) == 50
    assert (
        sorted(
            r.unit for r in (ledger.get(web_pod_dict(i)["metadata"]["uid"]) for i in range(50)) if r
        )
        == [0] * 10 + [1] * 40
    )


def test_a_retried_filter_does_not_take_a_second_slot() -> None:
    ledger = Ledger()
    with client(_state(2), ledger, clock=FakeClock()) as c:
        assert _filter(c, 0) == list(ECS)
        assert _filter(c, 0) == list(ECS)
        assert _filter(c, 1) == list(ECS)
        assert _filter(c, 2) == [VIRTUAL]
    assert len(ledger) == 3


def test_the_watch_confirming_binds_keeps_the_count() -> None:
    ledger = Ledger()
    state = _state(10)
    with client(state, ledger, clock=FakeClock()) as c:
        placements = {i: _filter(c, i) for i in range(12)}
        # The watch sees each pod bound and confirms its reservation.
        for i, nodes in placements.items():
            pod = web_pod_dict(i)
            state.upsert_pod(bound(pod, nodes[0]))
            ledger.confirm(pod["metadata"]["uid"])
        assert len(ledger) == 0
        assert _filter(c, 12) == [VIRTUAL]  # 10 bound on ECS
        state.remove_pod(web_pod_dict(3)["metadata"]["uid"])  # an ECS replica is deleted
        assert _filter(c, 13) == list(ECS)
        assert _filter(c, 14) == [VIRTUAL]


def test_terminating_pods_free_their_slot_when_the_policy_ignores_them() -> None:
    state = _state(1)
    pod = web_pod_dict(0)
    pod["metadata"]["deletionTimestamp"] = "2026-11-22T02:00:00Z"
    state.upsert_pod(bound(pod, ECS[0]))
    with client(state, clock=FakeClock()) as c:
        assert _filter(c, 1) == list(ECS)


def test_unconfirmed_reservations_expire_after_the_ttl() -> None:
    clock = FakeClock()
    ledger = Ledger(ttl=30)
    with client(_state(3), ledger, clock=clock) as c:
        assert [_filter(c, i) for i in range(4)] == [list(ECS)] * 3 + [[VIRTUAL]]
        clock.now += 29.9
        assert _filter(c, 4) == [VIRTUAL]
        clock.now += 0.2  # the first four reservations are 30.1 s old now
        assert _filter(c, 5) == list(ECS)
    assert ledger.get(web_pod_dict(0)["metadata"]["uid"]) is None


def test_the_lifespan_expires_the_ledger_in_the_background() -> None:
    """Many reservations that nothing confirms (as in bench/extender.py): the service holds at
    most its ledger's limit, and none once they expire."""
    clock = FakeClock()
    ledger = Ledger(ttl=30, limit=40)
    with client(_state(3), ledger, clock=clock, settings=Settings(expire_interval=0.01)) as c:
        for i in range(100):
            _filter(c, i)
            clock.now += 0.1
        assert len(ledger) == 40
        assert "spillover_extender_ledger_reservations 40.0" in c.get("/metrics").text
        clock.now += 31
        for _ in range(500):  # polls the effect; no assertion on elapsed time
            if not len(ledger):
                break
            time.sleep(0.01)
        assert len(ledger) == 0
        assert "spillover_extender_ledger_reservations 0.0" in c.get("/metrics").text


def test_burst_on_a_large_cluster_uses_the_whole_ecs_group() -> None:
    from extender_helpers import big_cluster

    nodes = big_cluster(1000)
    web = policy("web", "web", {"resource": "ecs", "max": 10}, {"resource": "eci"})
    state = ClusterState(nodes=nodes, policies=[web])
    names = [n.name for n in nodes]
    with client(state, clock=FakeClock()) as c:
        counts = {"ecs": 0, "eci": 0}
        for i in range(50):
            body = json.dumps({"Pod": web_pod_dict(i), "NodeNames": names})
            result = msgspec.json.decode(
                c.post("/filter", content=body).content, type=wire.ExtenderFilterResult
            )
            if result.NodeNames == ["virtual-node"]:
                counts["eci"] += 1
            else:
                assert result.NodeNames == names[:-1]
                assert result.FailedAndUnresolvableNodes is None  # a node is left
                counts["ecs"] += 1
    assert counts == {"ecs": 10, "eci": 40}
