"""The request path for the compact bodies kube-scheduler sends: same answers, less work.

``wire.locate_node_names`` finds the NodeNames list in Go's compact body without scanning it;
these tests check that every body gets exactly the answer the whole-body decoding gives, and
count the work the caches save (the style of
``tests/replay/test_simulator.py::test_replay_drives_the_shared_decision_code``).
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

import pytest
from extender_helpers import (
    ECS,
    VIRTUAL,
    big_cluster,
    client,
    shop_policies,
    shop_state,
    web_pod_dict,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from extender import policy as policy_module
from extender import verbs, wire
from extender.model import Node, NodeKind, pod_from_dict
from extender.policy import ResourcePolicy, Unit
from extender.selectors import LabelSelector
from extender.settings import Settings
from extender.snapshot import ClusterState


def _compact(pod: dict[str, Any], names: list[str] | None, nodes: Any = None) -> bytes:
    """The body as Go's encoding/json writes it: compact, fields in struct order."""
    return json.dumps(
        {"Pod": pod, "Nodes": nodes, "NodeNames": names}, separators=(",", ":")
    ).encode()


def _both(state_factory: Any, verb: str, body: bytes) -> tuple[Any, Any]:
    """(answer to ``body``, answer to the same JSON pretty-printed: decoded as a whole)."""
    pretty = json.dumps(json.loads(body), indent=1).encode()
    answers = []
    for data in (body, pretty):
        response = client(state_factory()).post(f"/{verb}", content=data)
        ok = response.status_code == 200  # 200: compare values (a pass-through keeps spacing)
        answers.append((response.status_code, response.json() if ok else response.text))
    return answers[0], answers[1]


@pytest.mark.parametrize("verb", ["filter", "prioritize"])
@pytest.mark.parametrize(
    "names",
    [
        [*ECS, VIRTUAL],
        [ECS[0], "no-such-node", VIRTUAL],
        [],
        [VIRTUAL],
    ],
)
def test_compact_bodies_get_the_whole_body_answer(verb: str, names: list[str]) -> None:
    body = _compact(web_pod_dict(1), names)
    assert wire.locate_node_names(body) is not None  # the fast path is taken
    fast, whole = _both(shop_state, verb, body)
    assert fast == whole
    assert fast[0] == 200


@pytest.mark.parametrize(
    "body",
    [
        # the key inside the Pod, as an unknown field and in an annotation value
        b'{"Pod":{"metadata":{"name":"p"},"x":{"a":1,"NodeNames":["evil"]}},"Nodes":null,'
        b'"NodeNames":["' + ECS[0].encode() + b'"]}',
        b'{"Pod":{"metadata":{"name":"p","annotations":{"a":",\\"NodeNames\\":[x]}"}}},'
        b'"Nodes":null,"NodeNames":["' + ECS[0].encode() + b'"]}',
        # not lists of strings, not JSON after the key, two lists
        b'{"Pod":{"metadata":{"name":"p","namespace":"shop","labels":{"app":"web"}}},'
        b'"Nodes":null,"NodeNames":[1,2]}',
        b'{"Pod":{"metadata":{"name":"p"}},"Nodes":null,"NodeNames":["a"]]}',
        b'{"Pod":{"metadata":{"name":"p"}},"NodeNames":["a"],"NodeNames":["b"]}',
        b'{"Pod":{"metadata":{"name":"p"}},"nodenames":null,"NodeNames":["'
        + ECS[1].encode()
        + b'"]}',
        b'{"Pod":[],"Nodes":null,"NodeNames":["a"]}',
        b'{"Nodes":null,"NodeNames":["a"]}',
        b'{"Pod":{"metadata":{"name":"p"}},"Nodes":7,"NodeNames":["a"]}',
        b'{"Pod":{"metadata":{"name":"p\xff"}},"Nodes":null,"NodeNames":["a"]}',
        b'{"Pod":{"metadata":{"name":"p"}},"Nodes":null,"NodeNames":["a\\u0000"]}',
    ],
)
@pytest.mark.parametrize("verb", ["filter", "prioritize"])
def test_tricky_compact_bodies_get_the_whole_body_answer(verb: str, body: bytes) -> None:
    answers = []
    for data in (body, body.replace(b',"NodeNames":', b', "NodeNames":')):  # not compact: whole
        assert wire.locate_node_names(data) is None or data is body
        response = client(shop_state()).post(f"/{verb}", content=data)
        # the space moves the byte offsets in JSON errors by one
        answers.append((response.status_code, re.sub(r"\(byte \d+\)", "", response.text)))
    assert answers[0] == answers[1]


_name = st.text(st.characters(codec="utf-8"), max_size=6)


@settings(max_examples=60, deadline=None)
@given(
    names=st.lists(st.sampled_from([*ECS, VIRTUAL, "other"]) | _name, max_size=6),
    labels=st.dictionaries(st.sampled_from(["app", "NodeNames", "x"]), _name, max_size=2),
    managed=st.booleans(),
)
def test_any_compact_body_gets_the_whole_body_answer(
    names: list[str], labels: dict[str, str], managed: bool
) -> None:
    pod = web_pod_dict(3)
    pod["metadata"]["labels"] = {**labels, **({"app": "web"} if managed else {})}
    fast, whole = _both(shop_state, "filter", _compact(pod, names))
    assert fast == whole


def test_locate_node_names_finds_the_list_without_decoding_it() -> None:
    body = _compact({"metadata": {"name": "p"}}, ["a", "b"])
    head, start = wire.locate_node_names(body) or (b"", 0)
    assert body[start:-1] == b'["a","b"]'
    assert json.loads(head) == {
        "Pod": {"metadata": {"name": "p"}},
        "Nodes": None,
        "NodeNames": None,
    }
    assert wire.locate_node_names(json.dumps(json.loads(body)).encode()) is None  # not compact


def test_a_reordered_offer_gets_the_same_verdicts() -> None:
    names = [*ECS, VIRTUAL]
    http = client(shop_state(), settings=Settings(refusals="always"))  # the maps compared too
    answers = [
        http.post("/filter", content=_compact(web_pod_dict(i), order)).json()
        for i, order in enumerate([names, names[::-1]])
    ]
    assert set(answers[0]["NodeNames"]) == set(answers[1]["NodeNames"]) == set(ECS)
    assert answers[0]["FailedAndUnresolvableNodes"] == answers[1]["FailedAndUnresolvableNodes"]
    assert set(answers[0]["FailedAndUnresolvableNodes"]) == {VIRTUAL}


def test_a_scheduling_cycle_decodes_the_pod_once_and_decides_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Filter then prioritize of one pod over 2,000 nodes: one Pod decode, one ``decide``, the
    names grouped once per list, and prioritize answers an empty list (one unit offered)."""
    calls = {"decide": 0, "pod": 0, "group": 0}

    def counting(name: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(verbs, "decide", counting("decide", policy_module.decide))
    monkeypatch.setattr(verbs, "pod_from_dict", counting("pod", pod_from_dict))
    monkeypatch.setattr(verbs, "group_indexed", counting("group", verbs.group_indexed))
    state = ClusterState(nodes=big_cluster(2_000), policies=shop_policies(web_max=5))
    names = [n.name for n in big_cluster(2_000)]
    http = client(state)
    for i in range(3):
        pod = web_pod_dict(i)
        filtered = http.post("/filter", content=_compact(pod, names))
        accepted = filtered.json()["NodeNames"]
        assert len(accepted) == 1_999  # the ECS nodes
        scored = http.post("/prioritize", content=_compact(pod, accepted))
        assert scored.json() == []
    assert calls == {"decide": 3, "pod": 3, "group": 2}  # groups: the offered and the accepted


def test_offers_in_new_orders_are_matched_only_for_managed_pods(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kube-scheduler's parallel filter offers the same feasible nodes in a new order on every
    call.  A pod no policy manages passes them all through: its list is decoded (checked) but
    never matched against the known lists; a managed pod's list is matched once and its grouping
    reused, whatever the order."""
    calls = {"known": 0, "group": 0}
    known = wire.NameLists.known

    def counting_known(self: wire.NameLists, listed: wire.NameList) -> wire.NameList:
        calls["known"] += 1
        return known(self, listed)

    def counting_group(*args: Any, **kwargs: Any) -> verbs.Offer:
        calls["group"] += 1
        return group_indexed(*args, **kwargs)

    group_indexed = verbs.group_indexed
    monkeypatch.setattr(wire.NameLists, "known", counting_known)
    monkeypatch.setattr(verbs, "group_indexed", counting_group)
    state = ClusterState(nodes=big_cluster(500), policies=shop_policies(web_max=5))
    names = [n.name for n in big_cluster(500)]
    http = client(state)
    for i in range(3):
        order = names[i:] + names[:i]
        pod = web_pod_dict(i)
        pod["metadata"]["labels"] = {"app": "no-policy"}
        assert http.post("/filter", content=_compact(pod, order)).json()["NodeNames"] == order
        assert http.post("/prioritize", content=_compact(pod, order)).json() == []
    assert calls == {"known": 0, "group": 0}
    for i in range(3):
        order = names[i:] + names[:i]
        accepted = http.post("/filter", content=_compact(web_pod_dict(i), order)).json()
        assert len(accepted["NodeNames"]) == 499  # the ECS nodes
    assert calls == {"known": 3, "group": 1}  # three orders, one grouping


@settings(max_examples=300, deadline=None)
@given(
    picks=st.lists(st.integers(min_value=0, max_value=39), max_size=60),
    unknown=st.lists(st.sampled_from(["gone-1", "gone-2"]), max_size=3),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_indexed_grouping_is_the_grouping(picks: list[int], unknown: list[str], seed: int) -> None:
    """``group_indexed`` (the unit index, C-level passes) and ``group_offer`` (offered Node
    objects beside the cache's) give exactly the grouping spelled out name by name:
    the same groups in the same order, duplicates kept, unknown names apart, the same
    representatives; for a policy whose units select by labels, leave some nodes in no unit."""
    rng = random.Random(seed)
    nodes: dict[str, Node] = {}
    for i in range(40):
        kind = NodeKind.ECI if i % 13 == 0 else NodeKind.ECS
        pool = rng.choice(["a", "b", "c"])
        nodes[f"n{i}"] = Node(name=f"n{i}", kind=kind, labels={"pool": pool})
    policy = ResourcePolicy(
        name="p",
        namespace="ns",
        selector=LabelSelector({}),
        units=(
            Unit(NodeKind.ECS, max=3, node_selector={"pool": "a"}),
            Unit(NodeKind.ECS, node_selector={"pool": "b"}),
            Unit(NodeKind.ECI),
        ),
    )
    names = [f"n{i}" for i in picks] + unknown
    rng.shuffle(names)
    expected = _grouped_one_by_one(policy, names, nodes)
    index = verbs.unit_index(policy, nodes)
    assert verbs.group_indexed(index, names, nodes) == expected
    # offered Node objects for nodes the cache lacks: the cache's node wins where both exist
    cached = {name: node for name, node in nodes.items() if name < "n2"}
    offered = {name: Node(name=name, kind=NodeKind.ECI) for name in nodes if name >= "n1"}
    expected = _grouped_one_by_one(policy, names, {**offered, **cached})
    assert verbs.group_offer(policy, names, nodes=cached, offered=offered) == expected


def _grouped_one_by_one(
    policy: ResourcePolicy, names: list[str], nodes: dict[str, Node]
) -> verbs.Offer:
    """The grouping spelled out: name by name, each unit's names in the order offered,
    duplicates kept, the first node of each unit its representative, unknown names apart."""
    groups: dict[int | None, list[str]] = {}
    reps: dict[int | None, Node] = {}
    unknown: list[str] = []
    for name in names:
        node = nodes.get(name)
        if node is None:
            unknown.append(name)
            continue
        unit = policy.unit_of(node)
        if unit not in groups:
            groups[unit], reps[unit] = [], node
        groups[unit].append(name)
    return verbs.Offer(
        {unit: tuple(members) for unit, members in groups.items()},
        tuple(unknown),
        tuple(reps.values()),
    )
