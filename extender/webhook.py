"""Mutating admission webhook (AdmissionReview ``admission.k8s.io/v1``) for managed pods.

Without a toleration for the virtual node's taint kube-scheduler never offers the virtual node to
the extender, so the policy could never overflow to ECI.  On Pod CREATE, a pod matched by a policy
whose ECI unit can hold a pod (not ``max: 0``) gets ``{key: <eci taint key>, operator: Exists,
effect: NoSchedule}`` unless the tolerations it already has tolerate the virtual nodes' taints.
Those taints are the ones the cache has seen on ECI nodes (key = the configured taint key); with
no virtual node in the cache yet, the configured value (``--eci-taint-value``); with none
configured either, only a toleration that matches any value (``Exists``) counts.  A toleration for
``virtual-kubelet.io/provider=other-provider`` therefore does not count for an ``alibabacloud``
virtual node.  DaemonSet and static pods are never touched
(``extender.model.is_daemon_or_static``).  Everything else is allowed unchanged: the webhook
never refuses a pod (``allowed`` is always true; a webhook outage must not block pod creation).

Optional (``managed_resource``, off by default): the pod's first container also gets a request
and limit of 1 of that extended resource (e.g. ``spillover.dev/managed``), so that a
kube-scheduler extender entry with ``managedResources: [{name: spillover.dev/managed,
ignoredByScheduler: true}]`` calls the extender only for managed pods and skips the HTTP round
trip for every other pod.  Caveat: no node advertises that resource.  kube-scheduler ignores it
(``ignoredByScheduler``) and kubelet's admission drops extended resources that its node lacks
and that are not device-plugin resources, but a virtual-kubelet provider (ECI) has its own
admission and may reject or bill the pod for an unknown resource: verify the provider tolerates
it before turning this on.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .model import ModelError, Pod, Taint, Toleration, pod_from_dict
from .policy import ResourcePolicy

__all__ = ["WebhookError", "WebhookSettings", "review", "tolerates_virtual_nodes"]


class WebhookError(ValueError):
    """An AdmissionReview we cannot answer; the message names the field."""


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    eci_taint_key: str = "virtual-kubelet.io/provider"
    eci_taint_value: str = ""
    """The virtual node's taint value when the cache has no virtual node yet ("": unknown)."""
    managed_resource: str = ""


def _pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def tolerates_virtual_nodes(
    tolerations: Sequence[Toleration], taints: Sequence[Taint], settings: WebhookSettings
) -> bool:
    """Whether the pod's tolerations already let it onto every virtual node.

    ``taints``: the ECI taints the cache knows (key = ``settings.eci_taint_key``).  Without
    any, the configured value stands in; without that, the value is unknown and only a
    toleration matching every value of the key (``Exists``) counts.
    """
    key = settings.eci_taint_key
    wanted = [t for t in taints if t.key == key]
    if not wanted:
        if not settings.eci_taint_value:
            any_value = Taint(key, "", "NoSchedule")
            return any(t.operator == "Exists" and t.tolerates(any_value) for t in tolerations)
        wanted = [Taint(key, settings.eci_taint_value, "NoSchedule")]
    return all(
        any(t.tolerates(taint) for t in tolerations)
        for taint in wanted
        if taint.effect in ("NoSchedule", "NoExecute")
    )


def _patch(
    raw_pod: Mapping[str, Any], pod: Pod, settings: WebhookSettings, taints: Sequence[Taint]
) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    if not tolerates_virtual_nodes(pod.tolerations, taints, settings):
        toleration = {"key": settings.eci_taint_key, "operator": "Exists", "effect": "NoSchedule"}
        if pod.tolerations:
            ops.append({"op": "add", "path": "/spec/tolerations/-", "value": toleration})
        else:
            ops.append({"op": "add", "path": "/spec/tolerations", "value": [toleration]})
    resource = settings.managed_resource
    if resource:
        ops.extend(_resource_patch(raw_pod, resource))
    return ops


def _resource_patch(raw_pod: Mapping[str, Any], resource: str) -> list[dict[str, Any]]:
    spec = raw_pod.get("spec") or {}
    containers = spec.get("containers") or []
    if not containers or not isinstance(containers[0], Mapping):
        return []
    resources = containers[0].get("resources")
    base = "/spec/containers/0/resources"
    if not isinstance(resources, Mapping) or not resources:
        # Extended resources cannot be overcommitted: the API requires limits == requests.
        return [
            {
                "op": "add",
                "path": base,
                "value": {"requests": {resource: "1"}, "limits": {resource: "1"}},
            }
        ]
    ops = []
    for part in ("requests", "limits"):
        current = resources.get(part)
        if not isinstance(current, Mapping) or not current:
            ops.append({"op": "add", "path": f"{base}/{part}", "value": {resource: "1"}})
        elif resource not in current:
            ops.append({"op": "add", "path": f"{base}/{part}/{_pointer(resource)}", "value": "1"})
    return ops


def review(
    body: Any,
    *,
    policy_for: Callable[[Pod], ResourcePolicy | None],
    settings: WebhookSettings,
    eci_taints: Callable[[], Sequence[Taint]] = tuple,
) -> dict[str, Any]:
    """The AdmissionReview answer for one request: always allowed, maybe with a JSONPatch.

    ``eci_taints``: the virtual nodes' taints the cache knows (asked only for managed pods).
    """
    if not isinstance(body, Mapping):
        raise WebhookError("AdmissionReview: the body must be a JSON object")
    request = body.get("request")
    if not isinstance(request, Mapping):
        raise WebhookError("AdmissionReview: request is required")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise WebhookError("AdmissionReview: request.uid is required")
    response: dict[str, Any] = {"uid": uid, "allowed": True}
    answer = {
        "apiVersion": body.get("apiVersion") or "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    }
    kind = request.get("kind")
    is_pod = isinstance(kind, Mapping) and kind.get("kind") == "Pod" and not kind.get("group")
    if not is_pod or request.get("operation") != "CREATE" or request.get("subResource"):
        return answer
    raw_pod = request.get("object")
    if not isinstance(raw_pod, Mapping):
        raise WebhookError("AdmissionReview: request.object must be the Pod being created")
    pod = _pod(raw_pod, request)
    policy = policy_for(pod)
    if policy is None or not policy.has_eci:
        return answer
    ops = _patch(raw_pod, pod, settings, eci_taints())
    if ops:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
    return answer


def _pod(raw_pod: Mapping[str, Any], request: Mapping[str, Any]) -> Pod:
    """The pod as created: name and namespace may still be empty (``generateName``)."""
    raw_meta = raw_pod.get("metadata")
    if raw_meta is not None and not isinstance(raw_meta, Mapping):
        raise WebhookError(
            f"AdmissionReview: request.object.metadata must be an object, "
            f"not {type(raw_meta).__name__}"
        )
    meta = dict(raw_meta or {})
    if not meta.get("namespace"):
        meta["namespace"] = request.get("namespace") or "default"
    if not meta.get("name"):
        meta["name"] = meta.get("generateName") or request.get("name") or "pod"
    try:
        return pod_from_dict({**raw_pod, "metadata": meta})
    except ModelError as err:
        raise WebhookError(f"AdmissionReview: request.object: {err}") from None
