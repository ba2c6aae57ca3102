"""A new replica of a known template: its ``spec`` facts come from the memo (``Caches.pod_specs``),
and the Pod, or the error, is the one decoding the whole Pod gives."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from extender_helpers import count_calls, fixture, web_pod_dict
from hypothesis import given, settings
from hypothesis import strategies as st
from json_paths import paths, replaced

from extender import model
from extender.model import ModelError, pod_from_dict
from extender.verbs import Caches
from extender.wire import WireError, decode_pod

POD = fixture("filter-deployment-pod-nodecache.json")["Pod"]
META_PATHS = [p for p in paths(POD) if p and p[0] in ("metadata", "status")]
WRONG: st.SearchStrategy[Any] = st.sampled_from(
    [None, True, 0, -1, 1.5, "", "x", "²", [], ["x"], [{}], {}, {"a": 1}]
)


def _whole(raw: bytes) -> Any:
    """The Pod, or the error, of decoding the whole Pod (the path before the memo)."""
    try:
        return pod_from_dict(decode_pod(raw))
    except (WireError, ModelError) as err:
        return type(err), str(err)


def _cached(caches: Caches, raw: bytes) -> Any:
    try:
        return caches.pod_json(raw)
    except (WireError, ModelError) as err:
        return type(err), str(err)


def _primed() -> Caches:
    caches = Caches()
    caches.pod_json(json.dumps(web_pod_dict(0)).encode())  # the template's spec is known
    return caches


def test_a_new_replica_skips_its_spec_and_is_the_same_pod(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = count_calls(monkeypatch, model, "_spec_facts")
    caches = Caches()
    pods = [json.dumps(web_pod_dict(i)).encode() for i in range(5)]
    got = [caches.pod_json(raw) for raw in pods]
    assert calls["_spec_facts"] == 1  # the first replica's; the others reuse it
    assert got == [pod_from_dict(json.loads(raw)) for raw in pods]
    assert len({pod.uid for pod in got}) == 5


@settings(max_examples=150, deadline=None)
@given(path=st.sampled_from(META_PATHS), value=WRONG)
def test_a_replica_with_a_wrong_value_in_its_metadata_gets_the_same_answer(
    path: tuple[Any, ...], value: Any
) -> None:
    raw = json.dumps(replaced(web_pod_dict(7), path, value)).encode()
    assert _cached(_primed(), raw) == _whole(raw)


@pytest.mark.parametrize(
    "raw",
    [
        # invalid UTF-8 outside the spec (decoded) and inside a known-length spec (never seen)
        json.dumps(web_pod_dict(1)).encode().replace(b'"web-', b'"\xff-', 1),
        json.dumps(web_pod_dict(1)).encode().replace(b"busybox", b"\xffusybox", 1),
        # another top-level key, a spec that is not an object, no spec, not an object at all
        json.dumps({**web_pod_dict(1), "kind": "Pod", "apiVersion": "v1"}).encode(),
        json.dumps({**web_pod_dict(1), "extra": 1}).encode(),
        json.dumps({**web_pod_dict(1), "spec": 5}).encode(),
        json.dumps({k: v for k, v in web_pod_dict(1).items() if k != "spec"}).encode(),
        b"[]",
        b'{"metadata":{"name":"x"},"spec":{"a":1},"spec":{"priority":"high"}}',
    ],
)
def test_odd_pods_get_the_answer_of_the_whole_decoding(raw: bytes) -> None:
    assert raw != json.dumps(web_pod_dict(1)).encode()
    assert _cached(_primed(), raw) == _whole(raw)
    assert _cached(_primed(), raw) == _cached(_primed(), raw)  # and again, from the memo


def test_the_first_bad_field_is_still_the_one_named() -> None:
    """Spec and metadata checks keep their order: tolerations, priority, annotations, requests."""
    pod = copy.deepcopy(web_pod_dict(2))
    pod["metadata"]["annotations"] = []
    pod["spec"]["priority"] = "high"
    with pytest.raises(ModelError, match=r"spec\.priority"):
        pod_from_dict(pod)
    pod["spec"]["priority"] = 0
    pod["spec"]["containers"][0]["resources"] = []
    with pytest.raises(ModelError, match=r"metadata\.annotations"):
        pod_from_dict(pod)
