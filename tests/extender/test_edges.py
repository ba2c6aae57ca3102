"""The edges of placement, through the real HTTP server (uvicorn on a loopback port).

One test per rule of README "Choices": DaemonSet and static pods, the parse cache, the webhook's
toleration check, bad input on a kept-alive connection.  The cluster is a static cache here;
``test_edges_live.py`` drives the ones that need the watch through the API emulator.
"""

from __future__ import annotations

import base64
import copy
import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from extender_helpers import (
    ECS,
    VIRTUAL,
    admission_review,
    fixture,
    fixture_nodes,
    policy,
    shop_state,
)

from extender.app import create_app
from extender.demo import running_server
from extender.ledger import Ledger
from extender.model import Taint
from extender.settings import Settings
from extender.snapshot import ClusterState
from extender.webhook import WebhookSettings, tolerates_virtual_nodes

NODES = [*ECS, VIRTUAL]
PROVIDER = "virtual-kubelet.io/provider"


class Server:
    """A kept-alive HTTP/1.1 connection to one running extender."""

    def __init__(self, conn: http.client.HTTPConnection) -> None:
        self.conn = conn

    def post(self, path: str, body: bytes | dict[str, Any]) -> tuple[int, Any]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.conn.request("POST", path, raw, {"Content-Type": "application/json"})
        response = self.conn.getresponse()
        data = response.read()
        if response.getheader("content-type", "").startswith("application/json"):
            return response.status, json.loads(data)
        return response.status, data.decode()

    def filter(self, pod: dict[str, Any], names: list[str] = NODES) -> dict[str, Any]:
        status, answer = self.post("/filter", {"Pod": pod, "NodeNames": names})
        assert status == 200, answer
        assert isinstance(answer, dict)
        return answer

    def mutate(self, pod: dict[str, Any]) -> list[dict[str, Any]]:
        """The JSONPatch the webhook answers for creating ``pod`` ([] when none)."""
        status, answer = self.post("/mutate", admission_review(pod))
        assert status == 200, answer
        patch = answer["response"].get("patch")
        return json.loads(base64.b64decode(patch)) if patch else []


def serve(state: ClusterState, settings: Settings | None = None) -> Iterator[Server]:
    app = create_app(state=state, ledger=Ledger(), settings=settings or Settings())
    with running_server(app) as (host, port):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            yield Server(conn)
        finally:
            conn.close()


def web_pod(name: str = "web-7645bdbd5c-aaaaa", uid: str = "uid-web") -> dict[str, Any]:
    """The captured web replica, without the virtual node's toleration."""
    pod: dict[str, Any] = copy.deepcopy(fixture("filter-deployment-pod-nodecache.json")["Pod"])
    pod["metadata"]["name"] = name
    pod["metadata"]["uid"] = uid
    spec = pod["spec"]
    spec["tolerations"] = [t for t in spec["tolerations"] if t["key"] != PROVIDER]
    return pod


def per_node_pod(name: str, *, daemonset: bool) -> dict[str, Any]:
    """A pod of the namespace with a DaemonSet owner, or a static pod's mirror."""
    pod = web_pod(name, uid=f"uid-{name}")
    meta = pod["metadata"]
    meta["labels"] = {"app": "agent"}
    if daemonset:
        meta["ownerReferences"] = [{"kind": "DaemonSet", "name": "agent", "controller": True}]
    else:
        meta["ownerReferences"] = [{"kind": "Node", "name": ECS[0], "controller": True}]
        meta["annotations"] = {"kubernetes.io/config.mirror": "0123abcd"}
    return pod


# -- DaemonSet and static pods ----------------------------------------------------------------
@pytest.fixture
def whole_namespace() -> Iterator[Server]:
    """An empty selector (the whole namespace shop), ECS max 2, then ECI."""
    state = ClusterState(
        nodes=fixture_nodes(),
        policies=[
            policy("all", "x", {"resource": "ecs", "max": 2}, {"resource": "eci"}, selector={})
        ],
    )
    yield from serve(state)


def test_daemonset_and_static_pods_pass_through_filter_untouched(whole_namespace: Server) -> None:
    """Regression: the third DaemonSet pod under an empty-selector policy with ECS max 2 was
    refused every ECS node (Pending forever)."""
    for i in range(3):
        answer = whole_namespace.filter(per_node_pod(f"agent-{i}", daemonset=True), [ECS[i]])
        assert answer["NodeNames"] == [ECS[i]]
        assert not answer["FailedAndUnresolvableNodes"]
    mirror = whole_namespace.filter(per_node_pod("static-web", daemonset=False), [ECS[0]])
    assert mirror["NodeNames"] == [ECS[0]]
    # a pod of a Deployment in the same namespace is still managed
    assert whole_namespace.filter(web_pod())["NodeNames"] == list(ECS)


def test_daemonset_and_static_pods_get_no_toleration(whole_namespace: Server) -> None:
    assert whole_namespace.mutate(per_node_pod("agent-0", daemonset=True)) == []
    assert whole_namespace.mutate(per_node_pod("static-web", daemonset=False)) == []
    [added] = whole_namespace.mutate(web_pod())
    assert added["value"]["key"] == PROVIDER


# -- the parse cache --------------------------------------------------------------------------
@pytest.fixture
def web_and_db() -> Iterator[Server]:
    state = ClusterState(
        nodes=fixture_nodes(),
        policies=[
            policy("web", "web", {"resource": "ecs", "max": 5}, {"resource": "eci"}),
            policy("db", "db", {"resource": "eci"}),
        ],
    )
    yield from serve(state)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p["metadata"].update(labels=["app", "web"]), "metadata.labels"),
        (
            lambda p: p["spec"]["containers"][0]["resources"]["requests"].update(cpu="lots"),
            "cpu",
        ),
        (lambda p: p["spec"].update(priority="high"), "spec.priority"),
    ],
)
def test_a_reused_uid_with_an_invalid_body_gets_its_400(
    web_and_db: Server, change: Any, message: str
) -> None:
    """Regression: a body reusing the UID (and resourceVersion) of a pod filtered before got
    200 with the earlier decision, however broken it was."""
    assert web_and_db.filter(web_pod())["NodeNames"] == list(ECS)
    broken = web_pod()
    broken["spec"]["containers"][0].setdefault("resources", {}).setdefault("requests", {})
    change(broken)
    status, answer = web_and_db.post("/filter", {"Pod": broken, "NodeNames": NODES})
    assert status == 400
    assert message in answer
    status, _ = web_and_db.post("/prioritize", {"Pod": broken, "NodeNames": NODES})
    assert status == 400


def test_a_pod_whose_labels_changed_is_placed_by_its_new_policy(web_and_db: Server) -> None:
    assert web_and_db.filter(web_pod())["NodeNames"] == list(ECS)
    relabelled = web_pod()  # same UID and resourceVersion, other labels
    relabelled["metadata"]["labels"] = {"app": "db"}
    assert web_and_db.filter(relabelled)["NodeNames"] == [VIRTUAL]


# -- the webhook's toleration check -----------------------------------------------------------
def _tolerating(value: str, operator: str = "Equal") -> dict[str, Any]:
    pod = web_pod()
    toleration = {"key": PROVIDER, "operator": operator, "effect": "NoSchedule"}
    if operator == "Equal":
        toleration["value"] = value
    pod["spec"]["tolerations"] = [toleration]
    return pod


@pytest.mark.parametrize(
    ("pod", "patched"),
    [
        (_tolerating("other-provider"), True),  # regression: counted as tolerating
        (_tolerating("alibabacloud"), False),
        (_tolerating("", operator="Exists"), False),
        (web_pod(), True),
    ],
    ids=["other-value", "same-value", "exists", "none"],
)
def test_the_webhook_compares_the_virtual_nodes_taint_value(
    pod: dict[str, Any], patched: bool
) -> None:
    for server in serve(shop_state()):  # the fixture's virtual node: provider=alibabacloud
        ops = server.mutate(pod)
        assert bool(ops) is patched
        if patched:
            [op] = ops
            assert op["value"] == {"key": PROVIDER, "operator": "Exists", "effect": "NoSchedule"}


def test_without_a_virtual_node_the_configured_taint_value_counts() -> None:
    state = ClusterState(nodes=[n for n in fixture_nodes() if n.name != VIRTUAL])
    state.set_policies(shop_state().policies)
    for server in serve(state, Settings(eci_taint_value="alibabacloud")):
        assert server.mutate(_tolerating("alibabacloud")) == []
        assert server.mutate(_tolerating("other-provider")) != []
    for server in serve(state):  # value unknown: only Exists counts
        assert server.mutate(_tolerating("alibabacloud")) != []
        assert server.mutate(_tolerating("", operator="Exists")) == []


def test_an_eci_unit_with_max_0_gets_no_toleration() -> None:
    """Regression: ``has_eci`` was true for ``{resource: eci, max: 0}``."""
    state = ClusterState(
        nodes=fixture_nodes(),
        policies=[policy("web", "web", {"resource": "ecs"}, {"resource": "eci", "max": 0})],
    )
    assert not state.policies[0].has_eci
    for server in serve(state):
        assert server.mutate(web_pod()) == []


def test_tolerates_virtual_nodes_needs_every_known_taint() -> None:
    from extender.model import Toleration

    settings = WebhookSettings()
    ali, other = Taint(PROVIDER, "alibabacloud"), Taint(PROVIDER, "other")
    equal = (Toleration(PROVIDER, "Equal", "alibabacloud", "NoSchedule"),)
    assert tolerates_virtual_nodes(equal, [ali], settings)
    assert not tolerates_virtual_nodes(equal, [ali, other], settings)
    assert tolerates_virtual_nodes((Toleration(operator="Exists"),), [ali, other], settings)
    assert not tolerates_virtual_nodes(equal, [], settings)


# -- bad input: always a 4xx, and the connection stays open ------------------------------------
@pytest.fixture
def shop() -> Iterator[Server]:
    yield from serve(shop_state())


@pytest.mark.parametrize("verb", ["mutate", "filter", "prioritize", "preempt"])
def test_deeply_nested_json_is_a_400_and_the_connection_stays_open(shop: Server, verb: str) -> None:
    """Regression: 100,000 levels of ``[`` gave a 500 on /mutate and closed the connection."""
    deep = b"[" * 100_000 + b"]" * 100_000
    status, answer = shop.post(f"/{verb}", deep)
    assert status == 400, answer
    status, answer = shop.post(f"/{verb}", b'{"Pod": ' + deep + b', "request": ' + deep + b"}")
    assert status == 400, answer
    assert "nested too deeply" in answer
    # the same kept-alive connection still serves
    assert shop.filter(web_pod())["NodeNames"] == list(ECS)


@pytest.mark.parametrize("metadata", [5, "web", ["a"], True])
def test_metadata_of_the_wrong_type_on_mutate_is_a_400(shop: Server, metadata: Any) -> None:
    pod = web_pod()
    pod["metadata"] = metadata
    status, answer = shop.post("/mutate", admission_review(pod))
    assert status == 400
    assert "request.object.metadata must be an object" in answer
    assert shop.filter(web_pod())["NodeNames"] == list(ECS)


def _statefulset_pod(name: str, index: str) -> dict[str, Any]:
    pod: dict[str, Any] = copy.deepcopy(fixture("filter-statefulset-pod-nodecache.json")["Pod"])
    pod["metadata"]["name"] = name
    pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"] = index
    return pod


@pytest.mark.parametrize(("name", "index"), [("db-²", "²"), ("db-0", "²"), ("db-١", "١")])
@pytest.mark.parametrize("verb", ["filter", "prioritize", "preempt"])
def test_unicode_digits_in_ordinals_are_not_ordinals(
    shop: Server, name: str, index: str, verb: str
) -> None:
    """Regression: "²" passes ``str.isdigit`` but not ``int``: a 500 on /filter."""
    pod = _statefulset_pod(name, index)
    body = {"Pod": pod, "NodeNames": NODES, "NodeNameToMetaVictims": {}}
    status, answer = shop.post(f"/{verb}", body)
    assert status == 200, answer
    if verb == "filter" and name == "db-0":  # the name's ASCII suffix stands in
        assert answer["NodeNames"] == list(ECS)
