"""Every captured kube-scheduler request through the real app (TestClient), in Go's key spellings."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import msgspec
import pytest
from extender_helpers import (
    ECS,
    VIRTUAL,
    admission_review,
    client,
    fixture,
    fixture_files,
    policy,
    shop_policies,
    shop_state,
)

from extender import wire
from extender.ledger import Ledger
from extender.model import pod_from_dict
from extender.settings import Settings
from extender.snapshot import ClusterState

RESULT_TYPES: dict[str, Any] = {
    "filter": wire.ExtenderFilterResult,
    "prioritize": list[wire.HostPriority],
    "preempt": wire.ExtenderPreemptionResult,
    "bind": wire.ExtenderBindingResult,
}
FILES = [path.name for path in fixture_files()]


def _verb(name: str) -> str:
    return name.split("-", 1)[0]


def _lower_keys(body: dict[str, Any]) -> dict[str, Any]:
    """Go field names in lower case; inside MetaVictims too, Kubernetes objects untouched."""
    out = {k.lower(): v for k, v in body.items()}
    meta = out.get("nodenametometavictims")
    if meta:
        out["nodenametometavictims"] = {
            node: {
                "pods": [{"uid": p["UID"]} for p in victims["Pods"]],
                "numpdbviolations": victims["NumPDBViolations"],
            }
            for node, victims in meta.items()
        }
    return out


def _post(c: Any, verb: str, body: Any) -> Any:
    response = c.post(f"/{verb}", content=json.dumps(body))
    assert response.status_code == 200, response.text
    return msgspec.json.decode(response.content, type=RESULT_TYPES[verb])


def test_fixtures_are_all_there() -> None:
    assert len(FILES) == 16
    assert {_verb(name) for name in FILES} == set(RESULT_TYPES)


@pytest.mark.parametrize("name", FILES)
def test_every_fixture_gets_a_well_formed_answer(name: str) -> None:
    with client(shop_state()) as c:
        verb = _verb(name)
        result = _post(c, verb, fixture(name))
    if verb == "filter":
        full = fixture(name)["Nodes"] is not None
        assert (result.Nodes is not None) == full
        assert (result.NodeNames is not None) == (not full)
        assert not result.Error
    if verb == "prioritize":
        assert all(0 < p.Score <= 10 for p in result)


@pytest.mark.parametrize("name", FILES)
def test_keys_are_case_insensitive_like_go(name: str) -> None:
    body = fixture(name)
    variants = [_lower_keys(body), {k.upper(): v for k, v in body.items()}]
    with client(shop_state()) as c:
        expected = c.post(f"/{_verb(name)}", content=json.dumps(body))
    for variant in variants:
        with client(shop_state()) as c:
            got = c.post(f"/{_verb(name)}", content=json.dumps(variant))
        assert got.status_code == 200, got.text
        assert msgspec.json.decode(got.content) == msgspec.json.decode(expected.content)


@pytest.mark.parametrize("refusals", ["when-unschedulable", "always"])
@pytest.mark.parametrize("mode", ["nodecache", "fullnodes"])
def test_web_deployment_pod_is_kept_on_ecs(mode: str, refusals: str) -> None:
    ledger = Ledger()
    with client(shop_state(), ledger, Settings(refusals=refusals)) as c:
        result = _post(c, "filter", fixture(f"filter-deployment-pod-{mode}.json"))
        scores = _post(c, "prioritize", fixture(f"prioritize-deployment-pod-{mode}.json"))
    accepted = (
        result.NodeNames
        if mode == "nodecache"
        else [n["metadata"]["name"] for n in result.Nodes["items"]]
    )
    assert accepted == list(ECS)
    if refusals == "always":
        assert set(result.FailedAndUnresolvableNodes) == {VIRTUAL}
        assert "not unit 1 (eci)" in result.FailedAndUnresolvableNodes[VIRTUAL]
    else:  # a node is left: kube-scheduler would not read the refusals
        assert result.FailedAndUnresolvableNodes is None
    assert not result.FailedNodes
    assert {p.Host: p.Score for p in scores} == dict.fromkeys(ECS, 10)
    uid = fixture(f"filter-deployment-pod-{mode}.json")["Pod"]["metadata"]["uid"]
    reservation = ledger.get(uid)
    assert reservation is not None
    assert (reservation.policy, reservation.unit) == ("shop/web", 0)


def test_web_pod_overflows_to_the_virtual_node_when_ecs_is_at_max() -> None:
    body = fixture("filter-deployment-pod-nodecache.json")
    with client(shop_state(web_max=0)) as c:
        result = _post(c, "filter", body)
        scores = _post(c, "prioritize", body)
    assert result.NodeNames == [VIRTUAL]
    assert result.FailedAndUnresolvableNodes is None
    assert [(p.Host, p.Score) for p in scores] == [(VIRTUAL, 10)]


@pytest.mark.parametrize("mode", ["nodecache", "fullnodes"])
def test_statefulset_db_1_with_n_1_refuses_ecs_unresolvably(mode: str) -> None:
    ledger = Ledger()
    with client(shop_state(db_max=1), ledger) as c:
        result = _post(c, "filter", fixture(f"filter-statefulset-pod-{mode}.json"))
        scores = _post(c, "prioritize", fixture(f"prioritize-statefulset-pod-{mode}.json"))
    assert not (result.NodeNames)
    assert not ((result.Nodes or {}).get("items"))
    assert set(result.FailedAndUnresolvableNodes) == set(ECS)
    assert all("ordinal 1" in why for why in result.FailedAndUnresolvableNodes.values())
    assert scores == []
    assert len(ledger) == 0


def test_statefulset_db_0_goes_to_ecs() -> None:
    body = fixture("filter-statefulset-pod-nodecache.json")
    body["Pod"]["metadata"]["name"] = "db-0"
    body["Pod"]["metadata"]["labels"]["apps.kubernetes.io/pod-index"] = "0"
    with client(shop_state(db_max=1)) as c:
        result = _post(c, "filter", body)
    assert result.NodeNames == list(ECS)


@pytest.mark.parametrize(
    "name",
    [
        "filter-bare-pod-nodecache.json",
        "filter-job-pod-nodecache.json",
        "filter-preemptor-nominated-nodecache.json",
    ],
)
def test_unmanaged_pods_pass_through_byte_for_byte(name: str) -> None:
    body = fixture(name)
    raw = json.dumps(body, indent=3).encode()
    with client(shop_state()) as c:
        response = c.post("/filter", content=raw)
    names_raw = json.dumps(body["NodeNames"], indent=3).encode()
    assert names_raw.replace(b"\n", b"\n   ") in response.content  # spliced, not re-encoded
    result = msgspec.json.decode(response.content, type=wire.ExtenderFilterResult)
    assert result.NodeNames == body["NodeNames"]
    assert not result.FailedNodes
    assert not result.FailedAndUnresolvableNodes


def test_unmanaged_full_nodes_pass_through() -> None:
    body = fixture("filter-preemptor-nominated-fullnodes.json")
    with client(shop_state()) as c:
        result = _post(c, "filter", body)
    assert result.Nodes == body["Nodes"]


def test_unmanaged_prioritize_is_empty() -> None:
    body = fixture("filter-job-pod-nodecache.json")
    with client(shop_state()) as c:
        assert _post(c, "prioritize", body) == []


@pytest.mark.parametrize("mode", ["nodecache", "fullnodes"])
def test_unmanaged_preemptor_keeps_every_candidate(mode: str) -> None:
    body = fixture(f"preempt-{mode}.json")
    with client(shop_state()) as c:
        result = _post(c, "preempt", body)
    kept = result.NodeNameToMetaVictims
    assert set(kept) == set(ECS)
    if mode == "nodecache":
        assert msgspec.to_builtins(kept) == body["NodeNameToMetaVictims"]
    else:
        for node, victims in body["NodeNameToVictims"].items():
            assert [p.UID for p in kept[node].Pods] == [
                p["metadata"]["uid"] for p in victims["Pods"]
            ]
            assert kept[node].NumPDBViolations == victims["NumPDBViolations"] == 1


def test_managed_preemptor_keeps_only_nodes_where_its_own_victim_frees_a_slot() -> None:
    body = fixture("preempt-nodecache.json")
    state = shop_state()
    state.set_policies(
        [*shop_policies(), policy("critical", "critical", {"resource": "ecs", "max": 1})]
    )
    sibling = copy.deepcopy(body["Pod"])
    sibling["metadata"].update(name="critical-6d74f6cc99-old00", uid="sibling-uid")
    sibling["spec"]["nodeName"] = ECS[1]
    sibling["status"] = {"phase": "Running"}
    with client(state) as c:
        alone = _post(c, "preempt", body)
        assert set(alone.NodeNameToMetaVictims) == set(ECS)  # 0/1 used: every node helps
        state.upsert_pod(pod_from_dict(sibling))
        full = _post(c, "preempt", body)
        assert full.NodeNameToMetaVictims == {}  # 1/1 used and no sibling among the victims
        body["NodeNameToMetaVictims"][ECS[1]]["Pods"].append({"UID": "sibling-uid"})
        freed = _post(c, "preempt", body)
    assert set(freed.NodeNameToMetaVictims) == {ECS[1]}
    uids = [p.UID for p in freed.NodeNameToMetaVictims[ECS[1]].Pods]
    assert uids[-1] == "sibling-uid"
    assert len(uids) == 3


class FakeBinder:
    def __init__(self, error: str = "") -> None:
        self.error = error
        self.calls: list[tuple[str, str, str, str]] = []

    async def bind(self, *, namespace: str, name: str, uid: str, node: str) -> None:
        from extender.ports import BindError

        self.calls.append((namespace, name, uid, node))
        if self.error:
            raise BindError(self.error)


def test_bind_without_binder_says_how_to_enable_it() -> None:
    with client(shop_state()) as c:
        result = _post(c, "bind", fixture("bind-deployment-pod.json"))
    assert "--bind" in result.Error


def test_bind_calls_the_binder_and_pins_the_reservation_to_the_node() -> None:
    ledger = Ledger()
    binder = FakeBinder()
    with client(shop_state(), ledger, binder=binder) as c:
        _post(c, "filter", fixture("filter-deployment-pod-nodecache.json"))
        result = _post(c, "bind", fixture("bind-deployment-pod.json"))
    assert result.Error == ""
    uid = "f4dce45b-e223-4d65-8a6e-14c8ab574639"
    assert binder.calls == [("shop", "web-7645bdbd5c-v66t2", uid, ECS[0])]
    reservation = ledger.get(uid)
    assert reservation is not None
    assert reservation.node == ECS[0]
    assert reservation.unit == 0


def test_bind_failure_is_returned_as_error() -> None:
    with client(shop_state(), binder=FakeBinder('pods "x" not found')) as c:
        result = _post(c, "bind", fixture("bind-statefulset-pod.json"))
    assert result.Error == 'pods "x" not found'


def test_url_prefix_serves_the_same_verbs() -> None:
    with client(shop_state(), settings=Settings(url_prefix="/scheduler")) as c:
        result = c.post(
            "/scheduler/filter", content=json.dumps(fixture("filter-job-pod-nodecache.json"))
        )
        plain = c.post("/filter", content=json.dumps(fixture("filter-job-pod-nodecache.json")))
    assert result.status_code == plain.status_code == 200
    assert result.content == plain.content


# -- admission webhook -------------------------------------------------------------------------
def _review(pod: dict[str, Any], operation: str = "CREATE") -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    pod.get("spec", {}).pop("nodeName", None)
    pod["metadata"].pop("name", None)  # created with generateName
    return admission_review(pod, operation=operation)


def _mutate(c: Any, review: dict[str, Any]) -> tuple[dict[str, Any], list[Any] | None]:
    response = c.post("/mutate", content=json.dumps(review))
    assert response.status_code == 200, response.text
    answer = response.json()["response"]
    assert answer["uid"] == "req-1"
    assert answer["allowed"] is True
    patch = answer.get("patch")
    return answer, json.loads(base64.b64decode(patch)) if patch else None


def test_webhook_adds_the_virtual_node_toleration_to_managed_pods() -> None:
    db = fixture("filter-statefulset-pod-nodecache.json")["Pod"]
    with client(shop_state()) as c:
        answer, patch = _mutate(c, _review(db))
    assert answer["patchType"] == "JSONPatch"
    assert patch == [
        {
            "op": "add",
            "path": "/spec/tolerations/-",
            "value": {
                "key": "virtual-kubelet.io/provider",
                "operator": "Exists",
                "effect": "NoSchedule",
            },
        }
    ]


def test_webhook_leaves_tolerating_unmanaged_and_non_create_pods_alone() -> None:
    web = fixture("filter-deployment-pod-nodecache.json")["Pod"]  # already tolerates
    bare = fixture("filter-bare-pod-nodecache.json")["Pod"]
    db = fixture("filter-statefulset-pod-nodecache.json")["Pod"]
    with client(shop_state()) as c:
        for review in (_review(web), _review(bare), _review(db, "UPDATE")):
            answer, patch = _mutate(c, review)
            assert patch is None
            assert "patchType" not in answer


def test_webhook_eci_taint_key_is_configurable_and_pods_without_tolerations() -> None:
    from extender.model import NodeKindSettings

    db = fixture("filter-statefulset-pod-nodecache.json")["Pod"]
    db["spec"].pop("tolerations")
    settings = Settings(kinds=NodeKindSettings(eci_taint_key="eci.example/virtual"))
    with client(shop_state(), settings=settings) as c:
        _, patch = _mutate(c, _review(db))
    assert patch == [
        {
            "op": "add",
            "path": "/spec/tolerations",
            "value": [{"key": "eci.example/virtual", "operator": "Exists", "effect": "NoSchedule"}],
        }
    ]


def test_webhook_managed_resource_is_opt_in() -> None:
    web = fixture("filter-deployment-pod-nodecache.json")["Pod"]
    with client(shop_state(), settings=Settings(managed_resource="spillover.dev/managed")) as c:
        _, patch = _mutate(c, _review(web))
    assert patch == [
        {
            "op": "add",
            "path": "/spec/containers/0/resources/requests/spillover.dev~1managed",
            "value": "1",
        },
        {
            "op": "add",
            "path": "/spec/containers/0/resources/limits/spillover.dev~1managed",
            "value": "1",
        },
    ]


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[]",
        b'{"request": 1}',
        b'{"request": {"kind": {"kind": "Pod"}}}',
        b'{"request": {"uid": "u", "kind": {"kind": "Pod"}, "operation": "CREATE", "object": 5}}',
    ],
)
def test_webhook_bad_reviews_are_400(body: bytes) -> None:
    with client(ClusterState()) as c:
        response = c.post("/mutate", content=body)
    assert response.status_code == 400
    assert response.text.startswith("AdmissionReview")


def test_prioritize_of_only_the_chosen_units_nodes_is_empty() -> None:
    """After filter, kube-scheduler offers only accepted nodes: a uniform 10 would rank nothing."""
    body = fixture("prioritize-deployment-pod-nodecache.json")
    with client(shop_state()) as c:
        mixed = _post(c, "prioritize", body)
        body["NodeNames"] = list(ECS)
        uniform = _post(c, "prioritize", body)
        body["NodeNames"] = [*ECS, "cn-hangzhou.192.168.0.99"]
        with_unknown = _post(c, "prioritize", body)
    assert {p.Host: p.Score for p in mixed} == dict.fromkeys(ECS, 10)
    assert uniform == []
    assert {p.Host: p.Score for p in with_unknown} == dict.fromkeys(ECS, 10)


def test_full_node_mode_uses_offered_nodes_the_cache_does_not_know() -> None:
    state = ClusterState(policies=shop_policies())  # empty node cache
    body = fixture("filter-deployment-pod-fullnodes.json")
    with client(state) as c:
        first = _post(c, "filter", body)
        again = _post(c, "filter", body)  # parsed Node objects are memoised per resourceVersion
    for result in (first, again):
        assert [n["metadata"]["name"] for n in result.Nodes["items"]] == list(ECS)
        assert result.FailedAndUnresolvableNodes is None
        assert not result.FailedNodes
