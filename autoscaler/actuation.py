"""The controller's Kubernetes actions besides the provider's: drain and read disruption budgets.

``ApiDrainer`` is ``autoscaler.drain.Drainer`` through the API: a merge patch of the node's
spec to cordon and uncordon, ``POST pods/{name}/eviction`` to evict (the API server checks the
PodDisruptionBudgets and answers 429 when one allows no more).  ``list_disruption_budgets``
lists ``policy/v1`` PodDisruptionBudgets into ``extender.disruption`` budgets.  An adapter: all
decisions are in ``autoscaler.drain`` and the planner.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from extender.disruption import DisruptionBudget, budgets_from_list
from extender.model import Node, Pod

from .drain import Cordon, Eviction, cordon_spec, uncordon_spec

__all__ = ["IO_ERRORS", "ApiDrainer", "list_disruption_budgets"]

log = logging.getLogger(__name__)

IO_ERRORS = (ApiException, OSError, TimeoutError)
"""What a call to the API server raises when the server or the network fails."""


class ApiDrainer:
    """``autoscaler.drain.Drainer`` through the Kubernetes API."""

    def __init__(self, api: client.ApiClient) -> None:
        self._core = client.CoreV1Api(api)

    async def cordon(self, node: Node, *, now: float) -> Cordon:
        try:
            await self._core.patch_node(node.name, {"spec": cordon_spec(node, now=now)})
        except IO_ERRORS as err:
            if isinstance(err, ApiException) and err.status == 404:
                return "gone"
            log.warning("could not cordon", extra={"node": node.name, "error": str(err)})
            return "failed"
        return "cordoned"

    async def uncordon(self, node: Node) -> None:
        with contextlib.suppress(*IO_ERRORS):
            await self._core.patch_node(node.name, {"spec": uncordon_spec(node)})

    async def evict(self, pod: Pod) -> Eviction:
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": pod.name, "namespace": pod.namespace},
        }
        try:
            await self._core.create_namespaced_pod_eviction(pod.name, pod.namespace, body)  # type: ignore[arg-type]
        except IO_ERRORS as err:
            if isinstance(err, ApiException) and err.status == 404:
                return "gone"
            log.info("eviction refused", extra={"pod": pod.key, "error": str(err)})
            return "refused"
        return "evicted"


async def list_disruption_budgets(api: client.ApiClient) -> list[DisruptionBudget]:
    """Every PodDisruptionBudget of the cluster; [] (with a warning) when the list fails."""
    try:
        listed = await client.PolicyV1Api(api).list_pod_disruption_budget_for_all_namespaces()
    except IO_ERRORS as err:
        log.warning("could not list PodDisruptionBudgets", extra={"error": str(err)})
        return []
    raw: dict[str, Any] = api.sanitize_for_serialization(listed)
    budgets, problems = budgets_from_list(raw.get("items") or ())
    for problem in problems:
        log.warning("skipping PodDisruptionBudget", extra={"error": problem})
    return budgets
