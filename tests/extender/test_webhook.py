"""``extender.webhook``: which pods get the ECI toleration (and the managed resource)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from extender_helpers import admission_review
from pure_helpers import unit_policy

from extender.model import Pod, Taint, Toleration
from extender.policy import ResourcePolicy
from extender.webhook import WebhookError, WebhookSettings, review, tolerates_virtual_nodes

KEY = "virtual-kubelet.io/provider"
SPILL = unit_policy({"resource": "ecs", "max": 2}, {"resource": "eci"})
ECS_ONLY = unit_policy({"resource": "ecs"})
NO_ECI_ROOM = unit_policy({"resource": "ecs"}, {"resource": "eci", "max": 0})
ALIBABA = Taint(KEY, "alibabacloud", "NoSchedule")
DEFAULTS = WebhookSettings()


def pod(*, tolerations: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"containers": [{"name": "c"}], **spec}
    if tolerations is not None:
        body["tolerations"] = tolerations
    return {"metadata": {"generateName": "web-", "labels": {"app": "a"}}, "spec": body}


def patch_of(
    raw: dict[str, Any],
    policy: ResourcePolicy | None,
    *,
    taints: tuple[Taint, ...] = (ALIBABA,),
    settings: WebhookSettings = DEFAULTS,
    **request: Any,
) -> list[dict[str, Any]]:
    answer = review(
        admission_review(raw, **request),
        policy_for=lambda _: policy,
        settings=settings,
        eci_taints=lambda: taints,
    )
    response = answer["response"]
    assert response["allowed"] is True  # never refuses
    if "patch" not in response:
        return []
    return list(json.loads(base64.b64decode(response["patch"])))


TOLERATION = {"key": KEY, "operator": "Exists", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("raw", "policy", "request_fields", "paths"),
    [
        (pod(), SPILL, {}, ["/spec/tolerations"]),
        (pod(tolerations=[{"key": "x", "operator": "Exists"}]), SPILL, {}, ["/spec/tolerations/-"]),
        (pod(tolerations=[TOLERATION]), SPILL, {}, []),
        (pod(), ECS_ONLY, {}, []),
        (pod(), NO_ECI_ROOM, {}, []),
        (pod(), None, {}, []),
        (pod(), SPILL, {"operation": "UPDATE"}, []),
        (pod(), SPILL, {"subResource": "status"}, []),
        (pod(), SPILL, {"kind": {"group": "apps", "version": "v1", "kind": "Pod"}}, []),
    ],
    ids=[
        "managed",
        "appends-to-tolerations",
        "already-tolerates",
        "no-eci-unit",
        "eci-max-0",
        "unmanaged",
        "update",
        "subresource",
        "other-group",
    ],
)
def test_which_pods_get_the_toleration(
    raw: dict[str, Any],
    policy: ResourcePolicy | None,
    request_fields: dict[str, Any],
    paths: list[str],
) -> None:
    ops = patch_of(raw, policy, **request_fields)
    assert [op["path"] for op in ops] == paths
    assert all(op["value"] in (TOLERATION, [TOLERATION]) for op in ops)


@pytest.mark.parametrize(
    ("tolerations", "taints", "value", "tolerated"),
    [
        ((Toleration(key=KEY, operator="Exists"),), (), "", True),
        ((Toleration(key=KEY, value="alibabacloud"),), (), "", False),  # value unknown
        ((Toleration(key=KEY, value="alibabacloud"),), (), "alibabacloud", True),
        ((Toleration(key=KEY, value="other"),), (ALIBABA,), "", False),
        ((Toleration(key=KEY, value="alibabacloud"),), (ALIBABA,), "", True),
        ((), (Taint(KEY, "x", "PreferNoSchedule"),), "", True),
    ],
    ids=[
        "exists",
        "equal-without-known-value",
        "equal-configured-value",
        "other-provider",
        "equal-known-taint",
        "prefer-no-schedule",
    ],
)
def test_tolerates_virtual_nodes(
    tolerations: tuple[Toleration, ...], taints: tuple[Taint, ...], value: str, tolerated: bool
) -> None:
    settings = WebhookSettings(eci_taint_value=value)
    assert tolerates_virtual_nodes(tolerations, taints, settings) is tolerated


@pytest.mark.parametrize(
    ("resources", "paths"),
    [
        (None, ["/spec/containers/0/resources"]),
        (
            {"requests": {"cpu": "1"}},
            [
                "/spec/containers/0/resources/requests/spillover.dev~1m",
                "/spec/containers/0/resources/limits",
            ],
        ),
        (
            {"requests": {"spillover.dev/m": "1"}, "limits": {"spillover.dev/m": "1"}},
            [],
        ),
    ],
    ids=["no-resources", "adds-to-requests", "already-there"],
)
def test_the_managed_resource_is_added_once(
    resources: dict[str, Any] | None, paths: list[str]
) -> None:
    raw = pod(tolerations=[TOLERATION])
    if resources is not None:
        raw["spec"]["containers"][0]["resources"] = resources
    ops = patch_of(raw, SPILL, settings=WebhookSettings(managed_resource="spillover.dev/m"))
    assert [op["path"] for op in ops] == paths


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "the body must be a JSON object"),
        ({}, "request is required"),
        ({"request": {"uid": ""}}, "request.uid is required"),
        (admission_review("not a pod"), "request.object must be the Pod"),
        (admission_review({"metadata": []}), "request.object.metadata must be an object"),
    ],
    ids=["not-object", "no-request", "no-uid", "object-not-pod", "metadata-list"],
)
def test_bad_reviews_name_the_field(body: Any, field: str) -> None:
    with pytest.raises(WebhookError, match=r"^AdmissionReview: " + field.replace(".", r"\.")):
        review(body, policy_for=lambda _: SPILL, settings=WebhookSettings())


def test_a_pod_being_created_is_named_from_the_request() -> None:
    """``generateName`` pods have no name yet and may have no namespace: the policy is looked
    up for the pod as it will be (namespace from the request)."""
    asked: list[Pod] = []

    def policy_for(p: Pod) -> ResourcePolicy | None:
        asked.append(p)
        return None

    review(admission_review(pod()), policy_for=policy_for, settings=DEFAULTS)
    assert [(p.namespace, p.name) for p in asked] == [("shop", "web-")]
