"""``extender.wire``: the extender protocol v1 decoded and encoded, and the per-app encodings."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from extender_helpers import count_calls

from extender import wire

POD = {"metadata": {"name": "p", "uid": "u"}}


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"[]", "the body must be a JSON object"),
        (b"{", "malformed JSON"),
        (body(NodeNames=["a"]), "Pod is required"),
        (body(Pod=[], NodeNames=["a"]), "Pod must be a JSON object"),
        (body(Pod=POD), "one of Nodes or NodeNames is required"),
        (body(Pod=POD, Nodes=[]), "Nodes must be a NodeList object or null"),
        (body(Pod=POD, NodeNames={}), "NodeNames must be a list of strings or null"),
    ],
    ids=[
        "not-object",
        "malformed",
        "no-pod",
        "pod-not-object",
        "no-nodes",
        "nodes-list",
        "names-map",
    ],
)
def test_bad_extender_args_name_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(wire.WireError, match=r"^ExtenderArgs: " + field):
        wire.decode_args(raw)


@pytest.mark.parametrize(
    "key", ["NodeNames", "nodenames", "nodeNames"], ids=["exact", "lower", "camel"]
)
def test_keys_match_case_insensitively_like_go(key: str) -> None:
    args = wire.decode_args(json.dumps({"pod": POD, key: ["a", "b"]}).encode())
    assert args.Pod == POD
    assert wire.decode_node_names(args.NodeNames) == ["a", "b"]
    assert wire.is_null(args.Nodes)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (body(PodName="p", PodNamespace="ns", PodUID="u", Node=""), "Node must not be empty"),
        (body(PodName="p"), "ExtenderBindingArgs: "),
    ],
    ids=["empty-node", "missing-fields"],
)
def test_bad_binding_args_name_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(wire.WireError, match=field):
        wire.decode_binding_args(raw)


def test_preemption_victims_need_objects_keyed_by_node() -> None:
    with pytest.raises(wire.WireError, match="NodeNameToVictims"):
        wire.decode_preemption_args(body(Pod=POD, NodeNameToVictims=[]))


def test_node_heads_name_an_item_without_a_name() -> None:
    with pytest.raises(wire.WireError, match=r"Nodes\.items\[1\]\.metadata\.name"):
        wire.decode_node_heads(msgspec.Raw(b'{"items":[{"metadata":{"name":"a"}},{}]}'))


def test_filter_names_answer_is_the_go_struct() -> None:
    parts = wire.filter_names_parts(
        ("a", "b"), refused=[(("c", "d"), "full")], failed={"e": "gone"}
    )
    assert json.loads(b"".join(parts)) == {
        "Nodes": None,
        "NodeNames": ["a", "b"],
        "FailedNodes": {"e": "gone"},
        "FailedAndUnresolvableNodes": {"c": "full", "d": "full"},
        "Error": "",
    }


NAMES = tuple(f"node-{i}" for i in range(100))  # over 64: whole reason maps are memoised too


@pytest.mark.parametrize("shared", [True, False], ids=["module-memo", "app-memo"])
def test_memoised_encodings_equal_fresh_ones(shared: bool) -> None:
    memo = None if shared else wire.Encodings()
    grouped = wire.grouped_map([(NAMES, "full")], {"x": "y"}, memo=memo)
    assert json.loads(bytes(grouped)) == {**dict.fromkeys(NAMES, "full"), "x": "y"}
    assert bytes(wire.encode_names(NAMES, memo=memo)) == json.dumps(list(NAMES)).encode().replace(
        b" ", b""
    )
    scores = json.loads(wire.encode_scores(NAMES, 7, memo=memo))
    assert scores == [{"Host": n, "Score": 7} for n in NAMES]


def test_each_app_has_its_own_encodings() -> None:
    """The memo is keyed by the tuple's identity and lives on the app's ``Caches``: another
    app's tables are untouched, and a hit hands back the very same bytes."""
    mine, other = wire.Encodings(), wire.Encodings()
    first = wire.encode_names(NAMES, memo=mine)
    assert wire.encode_names(NAMES, memo=mine) is first
    assert wire.encode_names(NAMES, memo=other) is not first
    assert wire.encode_names(list(NAMES), memo=mine) is not first  # lists are never memoised


def test_name_lists_know_a_list_by_its_bytes_and_stay_bounded() -> None:
    lists = wire.NameLists(size=2)
    first = lists.parse(msgspec.Raw(b'["a","b"]'))
    assert first.names == ("a", "b")
    assert lists.parse(msgspec.Raw(bytes(bytearray(b'["a","b"]')))) is first  # equal bytes
    assert lists.parse(msgspec.Raw(b'["a","c"]')) is not first  # same length, other names
    lists.parse(msgspec.Raw(b'["d"]'))
    assert lists.find(b'["a","b"]') is None  # evicted: the oldest of three
    with pytest.raises(wire.WireError, match="NodeNames must be a list of strings"):
        lists.parse(msgspec.Raw(b"[1]"))


def test_a_list_in_another_order_is_the_same_list() -> None:
    """kube-scheduler's parallel filter reorders the feasible nodes: same names, same entry."""
    lists = wire.NameLists()
    first = lists.parse(b'["a","b","c"]')
    assert lists.parse(b'["c","a","b"]') is first
    assert lists.find(b'["c","a","b"]') is first  # now known by these bytes too
    assert lists.parse(b'["a","a","b"]') is not first  # a name twice
    assert lists.parse(b'["a","b","d"]') is not first


def test_a_list_read_is_matched_only_when_asked() -> None:
    """``read_at`` decodes (and so checks) a new list but leaves it unmatched and unremembered
    (a pod no policy manages passes every node through); ``known`` matches it once."""
    lists = wire.NameLists()
    first = lists.parse(b'["a","b","c"]')
    body = b'{"NodeNames":["c","a","b"]}'
    start, end = body.index(b"["), len(body) - 1
    read = lists.read_at(body, start, end)
    assert read is not first
    assert read.names == ("c", "a", "b")
    assert lists.find(b'["c","a","b"]') is None  # not remembered by reading it
    assert lists.read_at(b'["c","a","b"]', 0, 13) is read  # but read again without decoding
    assert lists.known(read) is first
    assert lists.find(b'["c","a","b"]') is first
    assert lists.known(first) is first
    new = lists.read_at(b'["x","y"]', 0, 9)
    assert lists.known(new) is new
    assert lists.find(b'["x","y"]') is new
    with pytest.raises(wire.WireError, match="NodeNames must be a list of strings"):
        lists.read_at(b'["x",2]', 0, 7)


def test_adding_the_same_encoding_again_compares_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Filter adds a unit's memoised encoding for every pod it sends there: known by identity
    while its spelling is known; once evicted it is compared and remembered again."""
    lists = wire.NameLists(size=2)
    raw = msgspec.Raw(b'["a","b"]')
    first = lists.add(raw, ("a", "b"))
    compared = count_calls(monkeypatch, lists, "_spelling_at")
    assert lists.add(raw, ("a", "b")) is first
    assert compared["_spelling_at"] == 0
    assert lists.add(msgspec.Raw(b'["a","b"]'), ("a", "b")) is first  # equal bytes, new object
    assert compared["_spelling_at"] == 1
    lists.parse(b'["c"]')
    lists.parse(b'["d"]')  # both spellings of ["a","b"] evicted
    assert lists.find(b'["a","b"]') is None
    again = lists.add(raw, ("a", "b"))
    assert again.names == ("a", "b")
    assert lists.find(b'["a","b"]') is again  # known again: prioritize will find it
