"""``spillover-autoscaler record``: a live cluster's events as a Spillover trace (the adapter).

:class:`Recorder` is pure: it turns watch events (raw Kubernetes JSON) into trace events.  Pods
of Deployments are recorded as ``replicas_changed`` of their Deployment (from the Deployment's
``spec.replicas`` and pod template), not one by one, so that the replay plays the ReplicaSet
controller and its scale-in order (pod-deletion-cost, shrink-ECI-first) for real.  Other pods
(StatefulSets, Jobs, bare pods) are recorded as ``pod_created`` / ``pod_deleted``; DaemonSet pods
and mirror pods are left out (they are node overhead, not demand).  Nodes are recorded as
``node_added`` / ``node_removed``; the replay ignores them unless asked (the scenario's node groups
are what it sizes).

:func:`record` is the only code here that talks to the API server (kubernetes-asyncio list +
watch, one task per kind).  Times are seconds since the recording started; the header carries
the wall-clock start.  The file is written atomically when recording stops (``--duration`` or
Ctrl-C): an interrupted recording that failed leaves nothing behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

from extender.model import (
    ModelError,
    Resources,
    WorkloadKey,
    is_daemon_or_static,
    node_from_dict,
    pod_from_dict,
    pod_requests,
)

from .trace import (
    Event,
    NodeAdded,
    NodeRemoved,
    PodCreated,
    PodDeleted,
    ReplicasChanged,
    Template,
    TraceHeader,
    TraceWriter,
)

__all__ = ["Recorder", "record", "record_main"]

_KEPT_ANNOTATIONS = ("spillover.dev/expected-duration",)


class Recorder:
    """Watch events in, trace events out; remembers what it has written."""

    def __init__(self) -> None:
        self.pods: set[str] = set()
        self.nodes: set[str] = set()
        self.replicas: dict[WorkloadKey, int] = {}

    def pod(self, kind: str, raw: Mapping[str, Any], t: float) -> list[Event]:
        try:
            pod = pod_from_dict(raw)
        except ModelError:
            return []
        meta = raw.get("metadata") or {}
        if is_daemon_or_static(pod):
            return []
        if pod.workload is not None and pod.workload.kind == "Deployment":
            return []  # recorded through the Deployment's replicas
        gone = kind == "DELETED" or pod.finished
        if gone:
            if pod.uid in self.pods:
                self.pods.discard(pod.uid)
                return [PodDeleted(t, pod.uid)]
            return []
        if pod.uid in self.pods:
            return []
        self.pods.add(pod.uid)
        annotations = {
            k: v for k, v in (meta.get("annotations") or {}).items() if k in _KEPT_ANNOTATIONS
        }
        workload = pod.workload or WorkloadKey(pod.namespace, "Pod", pod.name)
        template = Template(pod.requests, dict(pod.labels), annotations)
        return [PodCreated(t, pod.uid, workload, pod.name, template)]

    def deployment(self, kind: str, raw: Mapping[str, Any], t: float) -> list[Event]:
        meta = raw.get("metadata") or {}
        spec = raw.get("spec") or {}
        key = WorkloadKey(
            str(meta.get("namespace") or "default"), "Deployment", str(meta.get("name"))
        )
        replicas = 0 if kind == "DELETED" else int(spec.get("replicas", 1) or 0)
        if self.replicas.get(key) == replicas:
            return []
        first = key not in self.replicas
        self.replicas[key] = replicas
        template = None
        if first:
            pod_template = spec.get("template") or {}
            try:
                requests = pod_requests(pod_template.get("spec") or {}, where=str(key))
            except ModelError:
                requests = Resources(pods=1)
            tmeta = pod_template.get("metadata") or {}
            annotations = {
                k: v for k, v in (tmeta.get("annotations") or {}).items() if k in _KEPT_ANNOTATIONS
            }
            template = Template(requests, dict(tmeta.get("labels") or {}), annotations)
        return [ReplicasChanged(t, key, replicas, template)]

    def node(self, kind: str, raw: Mapping[str, Any], t: float) -> list[Event]:
        try:
            node = node_from_dict(raw)
        except ModelError:
            return []
        if kind == "DELETED":
            if node.name in self.nodes:
                self.nodes.discard(node.name)
                return [NodeRemoved(t, node.name)]
            return []
        if node.name in self.nodes:
            return []
        self.nodes.add(node.name)
        return [NodeAdded(t, node.name, node.allocatable, dict(node.labels))]


async def record(
    api: Any,
    writer: TraceWriter,
    *,
    duration: float = 0.0,
    namespace: str = "",
    clock: Callable[[], float] = time.monotonic,
    stop: asyncio.Event | None = None,
) -> int:
    """List + watch pods, Deployments and nodes into ``writer`` until ``duration`` (0: forever)
    or until ``stop`` is set; returns how many events were written."""
    from kubernetes_asyncio import client, watch

    recorder = Recorder()
    start = clock()
    written = 0
    lock = asyncio.Lock()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    if namespace:
        kinds = [
            ("node", core.list_node, {}),
            ("deployment", apps.list_namespaced_deployment, {"namespace": namespace}),
            ("pod", core.list_namespaced_pod, {"namespace": namespace}),
        ]
    else:
        kinds = [
            ("node", core.list_node, {}),
            ("deployment", apps.list_deployment_for_all_namespaces, {}),
            ("pod", core.list_pod_for_all_namespaces, {}),
        ]

    async def emit(name: str, kind: str, raw: Mapping[str, Any]) -> None:
        nonlocal written
        async with lock:
            for event in getattr(recorder, name)(kind, raw, clock() - start):
                writer.write(event)
                written += 1

    async def follow(name: str, lister: Any, kwargs: dict[str, Any]) -> None:
        version = ""
        while True:
            if not version:
                listed = await lister(_preload_content=False, **kwargs)
                body = await listed.json()
                version = body["metadata"].get("resourceVersion", "")
                for item in body.get("items") or ():
                    await emit(name, "ADDED", item)
            w = watch.Watch()
            try:
                async for ev in w.stream(lister, resource_version=version, **kwargs):
                    raw = ev.get("raw_object") or {}
                    if ev.get("type") == "ERROR":
                        version = ""  # 410 Gone and friends: list again
                        break
                    version = (raw.get("metadata") or {}).get("resourceVersion", version)
                    await emit(name, str(ev.get("type")), raw)
            finally:
                await w.close()

    tasks = [asyncio.create_task(follow(*k)) for k in kinds]
    try:
        waits: list[asyncio.Future[Any]] = list(tasks)
        if duration > 0:
            waits.append(asyncio.ensure_future(asyncio.sleep(duration)))
        if stop is not None:
            waits.append(asyncio.ensure_future(stop.wait()))
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task in tasks and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        for extra in waits[len(tasks) :]:
            extra.cancel()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    return written


def record_main(args: argparse.Namespace) -> int:
    """The ``record`` subcommand."""
    import sys

    from extender.commandline import UsageError, fail, one_line
    from extender.kube import load_kube_config

    header = TraceHeader(source="spillover-autoscaler record", start=time.time())
    writer = TraceWriter(args.out, header)

    async def main() -> int:
        try:
            api = await load_kube_config(args.kubeconfig or None)
        except Exception as err:  # a missing or unusable kubeconfig is bad input
            raise UsageError(f"{args.kubeconfig or 'error'}: {one_line(err)}") from None
        try:
            return await record(api, writer, duration=args.duration, namespace=args.namespace)
        finally:
            await api.close()

    try:
        count = asyncio.run(main())
    except KeyboardInterrupt:
        writer.close()
        print(f"recorded to {args.out}", file=sys.stderr)
        return 0
    except UsageError as err:
        writer.abort()
        return fail(err)
    except Exception as err:
        writer.abort()
        print(f"error: record: {one_line(err)}", file=sys.stderr)
        return 1
    writer.close()
    print(f"recorded {count} events to {args.out}", file=sys.stderr)
    return 0
