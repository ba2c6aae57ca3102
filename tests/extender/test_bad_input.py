"""Bad input never crashes the extender: every body gets a 200 or a 4xx naming the problem."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
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
    shop_state,
)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from json_paths import paths, replaced

from extender import wire
from extender.settings import Settings
from extender.snapshot import ClusterState
from extender.verbs import NOT_SYNCED_ERROR

VERBS = ("filter", "prioritize", "preempt", "bind", "mutate")
VALID = json.dumps(fixture("filter-deployment-pod-nodecache.json")).encode()
BODIES = [path.read_bytes() for path in fixture_files()]
CLIENT = client(shop_state(), settings=Settings(max_body_bytes=200_000))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
keys = st.sampled_from(
    [
        "Pod",
        "pod",
        "Nodes",
        "NodeNames",
        "nodenames",
        "NodeNameToVictims",
        "NodeNameToMetaVictims",
        "PodName",
        "PodNamespace",
        "PodUID",
        "Node",
        "request",
        "metadata",
        "spec",
        "items",
        "Pods",
        "UID",
    ]
)


def _mangle(value: Any, draw: Any) -> Any:
    """Replace one nested value of a real body by an arbitrary JSON value."""
    if isinstance(value, dict) and value and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(value)))
        return {**value, key: _mangle(value[key], draw)}
    if isinstance(value, list) and value and draw(st.booleans()):
        i = draw(st.integers(0, len(value) - 1))
        return [*value[:i], _mangle(value[i], draw), *value[i + 1 :]]
    return draw(json_values)


@st.composite
def mangled_fixtures(draw: Any) -> bytes:
    body = json.loads(draw(st.sampled_from(BODIES)))
    return json.dumps(_mangle(body, draw)).encode()


@st.composite
def truncated_fixtures(draw: Any) -> bytes:
    body: bytes = draw(st.sampled_from(BODIES))
    return body[: draw(st.integers(0, len(body) - 1))]


bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(keys, json_values, max_size=5).map(lambda v: json.dumps(v).encode()),
    mangled_fixtures(),
    truncated_fixtures(),
    st.binary(max_size=64),
)


def _still_serves() -> None:
    response = CLIENT.post("/filter", content=VALID)
    assert response.status_code == 200
    assert msgspec.json.decode(response.content, type=wire.ExtenderFilterResult).NodeNames == list(
        ECS
    )


@pytest.mark.parametrize("verb", VERBS)
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies)
@example(body=b'"\x80"')  # invalid UTF-8 inside a JSON string: msgspec raises UnicodeDecodeError
@example(body=b'{"Pod": {"metadata": {"name": "\xff"}}}')
def test_any_body_gets_200_or_4xx_and_the_next_request_works(verb: str, body: bytes) -> None:
    response = CLIENT.post(f"/{verb}", content=body)
    assert response.status_code == 200 or 400 <= response.status_code < 500, response.text
    if response.status_code != 200:
        assert response.text  # a message naming the problem
        assert response.headers["content-type"].startswith("text/plain")
    _still_serves()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "malformed JSON"),
        (b"[]", "must be a JSON object"),
        (b"{}", "Pod is required"),
        (b'{"Pod": null, "NodeNames": []}', "Pod is required"),
        (b'{"Pod": [], "NodeNames": []}', "Pod must be a JSON object"),
        (b'{"Pod": {"metadata": {"name": "x"}}}', "one of Nodes or NodeNames"),
        (b'{"Pod": {"metadata": {"name": "x"}}, "NodeNames": 5}', "NodeNames must be a list"),
        (b'{"Pod": {"metadata": {"name": "x"}}, "Nodes": "x"}', "Nodes must be a NodeList"),
        (b'{"Pod": {"metadata": {}}, "NodeNames": []}', "Pod.metadata.name"),
        (
            b'{"Pod": {"metadata": {"name": "x"}, "spec": {"containers": 3}}, "NodeNames": []}',
            "spec.containers",
        ),
    ],
)
def test_bad_filter_bodies_name_the_problem(body: bytes, message: str) -> None:
    response = CLIENT.post("/filter", content=body)
    assert response.status_code == 400
    assert message in response.text


def test_managed_pod_with_non_string_node_names_is_400() -> None:
    body = fixture("filter-deployment-pod-nodecache.json")
    body["NodeNames"] = ["a", 1]
    response = CLIENT.post("/filter", content=json.dumps(body))
    assert response.status_code == 400
    assert "NodeNames" in response.text


def test_bad_bind_and_preempt_bodies_name_the_field() -> None:
    bind = CLIENT.post("/bind", content=b'{"PodName": "a", "PodNamespace": "b", "PodUID": "c"}')
    assert bind.status_code == 400
    assert "Node" in bind.text
    preempt = fixture("preempt-nodecache.json")
    preempt["NodeNameToMetaVictims"][ECS[0]]["NumPDBViolations"] = "one"
    response = CLIENT.post("/preempt", content=json.dumps(preempt))
    assert response.status_code == 400
    assert "NumPDBViolations" in response.text


def test_oversized_bodies_are_413_with_and_without_content_length() -> None:
    big = b'{"Pod": {}, "NodeNames": [' + b'"n",' * 60_000 + b'"n"]}'
    response = CLIENT.post("/filter", content=big)
    assert response.status_code == 413
    assert "200000-byte limit" in response.text

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    streamed = CLIENT.post("/filter", content=chunks())  # chunked: no Content-Length
    assert streamed.status_code == 413
    _still_serves()


def test_empty_body_is_400() -> None:
    response = CLIENT.post("/prioritize", content=b"")
    assert response.status_code == 400
    assert "empty request body" in response.text


def test_unknown_paths_and_wrong_methods() -> None:
    missing = CLIENT.post("/scheduler/filterz", content=VALID)
    assert missing.status_code == 404
    assert "unknown path /scheduler/filterz" in missing.text
    wrong = CLIENT.get("/filter")
    assert wrong.status_code == 405
    assert "GET" in wrong.text
    assert CLIENT.post("/healthz").status_code == 405


def test_unknown_node_names_come_back_in_failed_nodes() -> None:
    """With ``--refusals always``; by default a non-empty answer names neither (the next test)."""
    body = fixture("filter-deployment-pod-nodecache.json")
    body["NodeNames"] = [*body["NodeNames"], "cn-hangzhou.192.168.0.99"]
    with client(shop_state(), settings=Settings(refusals="always")) as c:
        response = c.post("/filter", content=json.dumps(body))
    result = msgspec.json.decode(response.content, type=wire.ExtenderFilterResult)
    assert result.NodeNames == list(ECS)
    assert result.FailedNodes == {
        "cn-hangzhou.192.168.0.99": "node cn-hangzhou.192.168.0.99 is not in the extender's cache yet"
    }
    assert set(result.FailedAndUnresolvableNodes or {}) == {VIRTUAL}


def test_unknown_node_names_are_left_out_of_an_answer_that_accepts_a_node() -> None:
    body = fixture("filter-deployment-pod-nodecache.json")
    body["NodeNames"] = [*body["NodeNames"], "cn-hangzhou.192.168.0.99"]
    response = CLIENT.post("/filter", content=json.dumps(body))
    result = msgspec.json.decode(response.content, type=wire.ExtenderFilterResult)
    assert result.NodeNames == list(ECS)
    assert (result.FailedNodes, result.FailedAndUnresolvableNodes) == (None, None)


def test_unknown_node_names_come_back_with_the_refusals_when_no_node_is_accepted() -> None:
    """The pod overflows to ECI, which this call does not offer: nothing accepted, so the answer
    names every refused node with its reason and every unknown name."""
    body = fixture("filter-deployment-pod-nodecache.json")
    body["NodeNames"] = [*ECS, "cn-hangzhou.192.168.0.99"]
    with client(shop_state(web_max=0)) as c:
        response = c.post("/filter", content=json.dumps(body))
    result = msgspec.json.decode(response.content, type=wire.ExtenderFilterResult)
    assert result.NodeNames == []
    assert list(result.FailedNodes or {}) == ["cn-hangzhou.192.168.0.99"]
    assert set(result.FailedAndUnresolvableNodes or {}) == set(ECS)


def test_only_unknown_nodes_are_all_failed_not_refused() -> None:
    body = fixture("filter-deployment-pod-nodecache.json")
    with client(ClusterState(policies=shop_state().policies)) as c:
        result = msgspec.json.decode(
            c.post("/filter", content=json.dumps(body)).content, type=wire.ExtenderFilterResult
        )
    assert result.NodeNames == []
    assert set(result.FailedNodes or {}) == set(body["NodeNames"])
    assert not result.FailedAndUnresolvableNodes


@pytest.mark.parametrize(
    "name", ["filter-deployment-pod-nodecache.json", "filter-bare-pod-nodecache.json"]
)
def test_unsynced_cache_follows_the_failure_policy(name: str) -> None:
    body = json.dumps(fixture(name))
    state = shop_state()
    state.synced = False
    with client(state, settings=Settings(failure_policy="error")) as c:
        refused = msgspec.json.decode(
            c.post("/filter", content=body).content, type=wire.ExtenderFilterResult
        )
        assert c.get("/readyz").status_code == 503
        assert "not synced" in c.get("/readyz").text
        assert c.get("/healthz").status_code == 200
        state.synced = True
        assert c.get("/readyz").status_code == 200
    assert refused.Error == NOT_SYNCED_ERROR
    state.synced = False
    with client(state, settings=Settings(failure_policy="pass")) as c:
        passed = msgspec.json.decode(
            c.post("/filter", content=body).content, type=wire.ExtenderFilterResult
        )
        scores = c.post("/prioritize", content=body).json()
    assert passed.Error == ""
    assert passed.NodeNames == fixture(name)["NodeNames"]
    assert scores == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"tolerations": ["x", None]}, "spec.tolerations[0]"),
        (
            {
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "values": 5}]}]
                        }
                    }
                }
            },
            "matchExpressions.values",
        ),
        (
            {
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [{"matchExpressions": [7]}]
                        }
                    }
                }
            },
            "nodeSelectorTerms",
        ),
    ],
)
@pytest.mark.parametrize("verb", ["filter", "prioritize", "preempt"])
def test_malformed_pod_lists_are_400_not_500(verb: str, spec: dict[str, Any], message: str) -> None:
    """Found by the fuzzer: list items of the wrong type inside the Pod once raised a 500."""
    pod = {"metadata": {"name": "x", "namespace": "shop", "labels": {"app": "web"}}, "spec": spec}
    body = {"Pod": pod, "NodeNames": list(ECS), "NodeNameToMetaVictims": {}}
    response = CLIENT.post(f"/{verb}", content=json.dumps(body))
    assert response.status_code == 400
    assert message in response.text


# -- targeted fuzzing: wrong JSON types at every level of a Pod, Unicode digits, reviews ------
POD = fixture("filter-deployment-pod-nodecache.json")["Pod"]
STS_POD = fixture("filter-statefulset-pod-nodecache.json")["Pod"]
WRONG_TYPES: st.SearchStrategy[Any] = st.sampled_from(
    [None, True, 0, -1, 1.5, "", "x", "²", [], ["x"], [{}], {}, {"a": 1}]
)


POD_PATHS = paths(POD)
STS_PATHS = paths(STS_POD)


@st.composite
def pods_with_a_wrong_type(draw: Any) -> dict[str, Any]:
    """The captured pod (Deployment or StatefulSet) with one value anywhere replaced."""
    pod, where = draw(st.sampled_from([(POD, POD_PATHS), (STS_POD, STS_PATHS)]))
    new: dict[str, Any] = replaced(pod, draw(st.sampled_from(where)), draw(WRONG_TYPES))
    return new


unicode_digits = st.text(
    alphabet=st.characters(categories=["Nd", "No", "Nl"]), min_size=1, max_size=4
)


@st.composite
def statefulset_pods_with_unicode_ordinals(draw: Any) -> dict[str, Any]:
    pod: dict[str, Any] = copy.deepcopy(STS_POD)
    meta = pod["metadata"]
    digits = draw(unicode_digits)
    if draw(st.booleans()):
        meta["labels"]["apps.kubernetes.io/pod-index"] = digits
    if draw(st.booleans()):
        meta["name"] = "db-" + draw(unicode_digits)
    return pod


def _verb_body(verb: str, pod: Any) -> dict[str, Any]:
    if verb == "mutate":
        return admission_review(pod)
    return {"Pod": pod, "NodeNames": [*ECS, VIRTUAL], "NodeNameToMetaVictims": {ECS[0]: {}}}


@pytest.mark.parametrize("verb", ["filter", "prioritize", "preempt", "mutate"])
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(pod=pods_with_a_wrong_type())
@example(pod={**POD, "metadata": 5})  # once a 500 on /mutate
@example(pod={**POD, "metadata": "web"})
@example(pod={**POD, "metadata": ["a"]})
@example(pod={**POD, "spec": {**POD["spec"], "initContainers": [None]}})  # once a 500
def test_a_wrong_type_anywhere_in_the_pod_is_200_or_4xx(verb: str, pod: dict[str, Any]) -> None:
    response = CLIENT.post(f"/{verb}", content=json.dumps(_verb_body(verb, pod)))
    assert response.status_code == 200 or 400 <= response.status_code < 500, response.text
    _still_serves()


@pytest.mark.parametrize("verb", ["filter", "prioritize", "preempt", "mutate"])
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(pod=statefulset_pods_with_unicode_ordinals())
@example(pod={**STS_POD, "metadata": {**STS_POD["metadata"], "name": "db-²"}})  # once a 500
def test_unicode_digits_in_ordinals_are_200(verb: str, pod: dict[str, Any]) -> None:
    response = CLIENT.post(f"/{verb}", content=json.dumps(_verb_body(verb, pod)))
    assert response.status_code == 200, response.text


review_parts = st.fixed_dictionaries(
    {},
    optional={
        "apiVersion": st.sampled_from(["admission.k8s.io/v1", "admission.k8s.io/v1beta1", 5]),
        "uid": st.sampled_from(["r", "", 5, None]),
        "kind": st.one_of(
            st.sampled_from([{"group": "", "version": "v1", "kind": "Pod"}, {"kind": "Pod"}]),
            json_values,
        ),
        "operation": st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT", "", 3, None]),
        "subResource": st.sampled_from(["", "status", "binding", 1]),
        "namespace": st.one_of(st.sampled_from(["shop", "", None]), json_values),
        "name": st.one_of(st.sampled_from(["web-1", ""]), json_values),
        "object": st.one_of(pods_with_a_wrong_type(), json_values),
        "oldObject": json_values,
        "dryRun": json_values,
    },
)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    parts=review_parts, top=st.dictionaries(st.sampled_from(["apiVersion", "kind"]), json_values)
)
def test_admission_review_variants_are_200_or_4xx(
    parts: dict[str, Any], top: dict[str, Any]
) -> None:
    review = admission_review(POD)
    review["request"].update(parts)
    review.update(top)
    response = CLIENT.post("/mutate", content=json.dumps(review))
    assert response.status_code == 200 or 400 <= response.status_code < 500, response.text
    if response.status_code == 200:
        answer = response.json()
        assert answer["response"]["allowed"] is True
        assert answer["response"]["uid"] == review["request"]["uid"]
    _still_serves()
