"""``--refusals``: which filter answers name the refused nodes (``extender.app``, "Refusals").

By default (``when-unschedulable``) an answer that accepts a node carries neither
``FailedAndUnresolvableNodes`` nor ``FailedNodes`` (kube-scheduler reads them only when no node is
left); an answer that accepts none carries both, with every reason.  ``always`` sends the maps
with every answer, byte for byte as before the setting existed (the literals below are the
answers of main at 11345f4).
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from extender_helpers import ECS, VIRTUAL, big_cluster, client, fixture, policy, shop_state

from extender import wire
from extender.cli import parse_settings
from extender.commandline import UsageError
from extender.settings import REFUSALS, Settings
from extender.snapshot import ClusterState

WEB_REFUSAL = (
    b'"FailedNodes":null,"FailedAndUnresolvableNodes":{"virtual-kubelet-cn-hangzhou-i":'
    b'"policy shop/web: pod belongs on unit 0 (ecs), not unit 1 (eci)"},"Error":""}'
)
DB_REASON = (
    "policy shop/db: no unit can take the pod: unit 0 (ecs) is at its max (ordinal 1); "
    "unit 1 (eci) has no feasible node in this call (ordinal 1)"
)
NO_MAPS = b'"FailedNodes":null,"FailedAndUnresolvableNodes":null,"Error":""}'


def _filter(body: dict[str, Any], refusals: str, **state: Any) -> bytes:
    with client(shop_state(**state), settings=Settings(refusals=refusals)) as c:
        response = c.post("/filter", content=json.dumps(body))
    assert response.status_code == 200, response.text
    data: bytes = response.content
    return data


def _accepted(result: wire.ExtenderFilterResult) -> list[str]:
    if result.Nodes is not None:
        return [item["metadata"]["name"] for item in result.Nodes["items"] or []]
    return list(result.NodeNames or [])


@pytest.mark.parametrize("mode", ["nodecache", "fullnodes"])
@pytest.mark.parametrize(("web_max", "unit"), [(2, list(ECS)), (0, [VIRTUAL])])
def test_an_answer_that_accepts_nodes_names_no_refusals(
    mode: str, web_max: int, unit: list[str]
) -> None:
    data = _filter(
        fixture(f"filter-deployment-pod-{mode}.json"), "when-unschedulable", web_max=web_max
    )
    assert data.endswith(NO_MAPS)
    result = msgspec.json.decode(data, type=wire.ExtenderFilterResult)  # null: a nil map in Go
    assert _accepted(result) == unit
    assert (result.FailedNodes, result.FailedAndUnresolvableNodes) == (None, None)


@pytest.mark.parametrize("refusals", REFUSALS)
@pytest.mark.parametrize("mode", ["nodecache", "fullnodes"])
def test_an_answer_that_accepts_no_node_names_every_refusal_with_its_reason(
    refusals: str, mode: str
) -> None:
    data = _filter(fixture(f"filter-statefulset-pod-{mode}.json"), refusals, db_max=1)
    result = msgspec.json.decode(data, type=wire.ExtenderFilterResult)
    assert _accepted(result) == []
    assert result.FailedAndUnresolvableNodes == dict.fromkeys(ECS, DB_REASON)
    assert result.FailedNodes is None
    expected = (
        b'"FailedNodes":null,"FailedAndUnresolvableNodes":%s,"Error":""}'
        % json.dumps(dict.fromkeys(ECS, DB_REASON), separators=(",", ":")).encode()
    )
    assert data.endswith(expected)


def test_always_sends_the_answers_of_before_byte_for_byte() -> None:
    names = fixture("filter-deployment-pod-nodecache.json")
    data = _filter(names, "always")
    assert data == (
        b'{"Nodes":null,"NodeNames":["cn-hangzhou.192.168.0.11","cn-hangzhou.192.168.0.12",'
        b'"cn-hangzhou.192.168.0.13"],' + WEB_REFUSAL
    )
    full = fixture("filter-deployment-pod-fullnodes.json")
    data = _filter(full, "always")
    assert data.startswith(b'{"Nodes":{"metadata":{},"items":[')
    assert data.endswith(b']},"NodeNames":null,' + WEB_REFUSAL)
    compact = _filter(full, "when-unschedulable")
    assert compact == data[: -len(WEB_REFUSAL)] + NO_MAPS  # the same nodes, no maps


def test_an_eci_decision_on_a_large_cluster_is_a_few_bytes_not_a_map_of_every_ecs_node() -> None:
    """The case that made the default: 999 ECS nodes refused, the virtual node accepted."""
    nodes = big_cluster(1_000)
    names = [n.name for n in nodes]
    web = policy("web", "web", {"resource": "ecs", "max": 0}, {"resource": "eci"})
    body = json.dumps(
        {"Pod": fixture("filter-deployment-pod-nodecache.json")["Pod"], "NodeNames": names}
    )
    answers = {}
    for refusals in REFUSALS:
        state = ClusterState(nodes=nodes, policies=[web])
        with client(state, settings=Settings(refusals=refusals)) as c:
            answers[refusals] = c.post("/filter", content=body).content
    compact = msgspec.json.decode(answers["when-unschedulable"], type=wire.ExtenderFilterResult)
    full = msgspec.json.decode(answers["always"], type=wire.ExtenderFilterResult)
    assert compact.NodeNames == full.NodeNames == ["virtual-node"]
    assert set(full.FailedAndUnresolvableNodes or {}) == set(names[:-1])
    assert compact.FailedAndUnresolvableNodes is None
    assert answers["when-unschedulable"] == (
        b'{"Nodes":null,"NodeNames":["virtual-node"],' + NO_MAPS
    )


def test_the_setting_comes_from_the_flag_or_the_environment() -> None:
    assert parse_settings(["serve"], {}).refusals == "when-unschedulable"
    assert parse_settings(["serve", "--refusals", "always"], {}).refusals == "always"
    assert parse_settings(["serve"], {"SPILLOVER_REFUSALS": "always"}).refusals == "always"
    with pytest.raises(UsageError, match="SPILLOVER_REFUSALS: must be one of"):
        parse_settings(["serve"], {"SPILLOVER_REFUSALS": "never"})
