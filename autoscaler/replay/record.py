"""``spillover-autoscaler record``: a live cluster's events as a Spillover trace (the adapter).

:class:`Recorder` is pure: it turns watch events (raw Kubernetes JSON) into trace events.  Pods
of Deployments are recorded as ``replicas_changed`` of their Deployment (from the Deployment's
``spec.replicas`` and pod template), not one by one, so that the replay plays the ReplicaSet
controller and its scale-in order (pod-deletion-cost, shrink-ECI-first) for real.  Other pods
(StatefulSets, Jobs, bare pods) are recorded as ``pod_created`` / ``pod_deleted``; DaemonSet pods
and mirror pods are left out (they are node overhead, not demand).  Nodes are recorded as
``node_added`` / ``node_removed``; the replay ignores them unless asked (the scenario's node groups
are what it sizes).

:func:`record` is the only code here that talks to the API server (list + watch, one task per
kind).  Times are seconds since the recording started; the header carries
the wall-clock start.  The file is written atomically when recording stops (``--duration`` or
Ctrl-C): a recording that failed leaves nothing behind.  The list+watch loop is the extender's
(``extender.kube.ListWatch``), so an API server that fails for a while costs a retry, not the
recording.  A refusal that no retry can fix (401 or 403 on a verb that never worked: missing
credentials or RBAC) stops the command at once with one line naming the resource and the verb
(``kubectl auth can-i VERB RESOURCE`` checks it), exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from extender.kube import AccessDenied, BackoffSettings, ListWatch
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

__all__ = ["RESOURCES", "Recorder", "denied_message", "record", "record_main"]

_KEPT_ANNOTATIONS = ("spillover.dev/expected-duration",)
# What each recorded kind is to RBAC and kubectl (resource.group): the ListWatch's name
RESOURCES = {"node": "nodes", "deployment": "deployments.apps", "pod": "pods"}


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


_Handler = Callable[[str, Mapping[str, Any], float], list[Event]]


def _key(name: str, raw: Mapping[str, Any]) -> str:
    """What a relist compares: the pod's uid, the Deployment's namespace/name, the node's name."""
    meta = raw.get("metadata") or {}
    if name == "pod":
        return str(meta.get("uid") or "")
    if name == "deployment":
        return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"
    return str(meta.get("name") or "")


async def record(
    api: Any,
    writer: TraceWriter,
    *,
    duration: float = 0.0,
    namespace: str = "",
    clock: Callable[[], float] = time.monotonic,
    stop: asyncio.Event | None = None,
    backoff: BackoffSettings | None = None,
) -> int:
    """List + watch pods, Deployments and nodes into ``writer`` until ``duration`` (0: forever)
    or until ``stop`` is set; returns how many events were written.

    Each kind runs ``extender.kube.ListWatch``, the extender's own loop: a failed request is
    retried after a backoff, a ``410 Gone`` lists again, so no single error ends a recording;
    only a permanent refusal does (``extender.kube.AccessDenied``, raised from here).
    A relist is compared with what was recorded, as an informer's ``Replace`` does: an object
    that was deleted while the watch was down is recorded as deleted then."""
    from kubernetes_asyncio import client

    recorder = Recorder()
    start = clock()
    written = 0
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    scope: dict[str, Any] = {"namespace": namespace} if namespace else {}
    listers: dict[str, Callable[..., Awaitable[Any]]] = {
        "node": core.list_node,
        "deployment": functools.partial(
            apps.list_namespaced_deployment
            if namespace
            else apps.list_deployment_for_all_namespaces,
            **scope,
        ),
        "pod": functools.partial(
            core.list_namespaced_pod if namespace else core.list_pod_for_all_namespaces, **scope
        ),
    }
    handlers: dict[str, _Handler] = {
        "node": recorder.node,
        "deployment": recorder.deployment,
        "pod": recorder.pod,
    }
    known: dict[str, dict[str, Mapping[str, Any]]] = {name: {} for name in listers}

    def emit(name: str, kind: str, raw: Mapping[str, Any]) -> None:
        nonlocal written
        key = _key(name, raw)
        if kind == "DELETED":
            known[name].pop(key, None)
        else:
            known[name][key] = raw
        for event in handlers[name](kind, raw, clock() - start):
            writer.write(event)
            written += 1

    def replace(name: str, items: list[Mapping[str, Any]]) -> None:
        listed = {_key(name, raw) for raw in items}
        for key, raw in list(known[name].items()):
            if key not in listed:
                emit(name, "DELETED", raw)
        for raw in items:
            emit(name, "ADDED" if _key(name, raw) not in known[name] else "MODIFIED", raw)

    loops = [
        ListWatch(
            RESOURCES[name],
            lister,
            replace=functools.partial(replace, name),
            apply=functools.partial(emit, name),
            backoff=backoff or BackoffSettings(),
            stop_when_denied=True,  # a missing role ends the command, not a retry loop
        )
        for name, lister in listers.items()
    ]
    tasks = [asyncio.create_task(loop.run(), name=f"record-{loop.name}") for loop in loops]
    waits: list[asyncio.Future[Any]] = list(tasks)
    if duration > 0:
        waits.append(asyncio.ensure_future(asyncio.sleep(duration)))
    if stop is not None:
        waits.append(asyncio.ensure_future(stop.wait()))
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task in tasks:  # ListWatch.run never returns: a bug (or a writer that failed)
                task.result()
    finally:
        for future in waits:
            future.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return written


def record_main(args: argparse.Namespace) -> int:
    """The ``record`` subcommand.  Exit status: 0 when the trace was written (at ``--duration``
    or on Ctrl-C), 2 for bad input (no usable kubeconfig, an ``--out`` that cannot be written,
    credentials or RBAC that refuse a list or watch: one line naming it), 1 when the recording
    itself failed (one line ``error: record: ...``; nothing is written).  A failing API server
    is no failure: the watches retry until it is back, logging each retry."""
    import sys

    from extender.commandline import UsageError, fail, one_line
    from extender.kube import load_kube_config

    header = TraceHeader(source="spillover-autoscaler record", start=time.time())
    try:
        writer = TraceWriter(args.out, header)
    except OSError as err:  # the temporary file beside --out: name --out, not it
        return fail(f"{args.out}: {err.strerror or err}")

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
    except AccessDenied as err:
        writer.abort()
        return fail(denied_message(err, args.namespace))
    except Exception as err:
        writer.abort()
        print(f"error: record: {one_line(err)}", file=sys.stderr)
        return 1
    writer.close()
    print(f"recorded {count} events to {args.out}", file=sys.stderr)
    return 0


def denied_message(err: AccessDenied, namespace: str = "") -> str:
    """The one line ``record`` stops with when the API server refuses a list or watch."""
    scope = "" if err.resource == "nodes" else f" -n {namespace}" if namespace else " -A"
    if err.status == 401:
        return (
            f"error: record: {err.verb} {err.resource}: 401 Unauthorized: the API server does "
            f"not accept the kubeconfig's credentials (expired?): {err.reason}"
        )
    return (
        f"error: record: {err.verb} {err.resource}: {err.status} Forbidden: the account needs "
        f"the RBAC verb {err.verb!r} on {err.resource} (check: kubectl auth can-i {err.verb} "
        f"{err.resource}{scope}): {err.reason}"
    )
