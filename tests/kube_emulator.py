"""A loopback Kubernetes API server for integration tests: kmock's ``KubernetesEmulator``, extended.

kubernetes-asyncio talks to it over real HTTP, exactly as it talks to a cluster.  kmock supplies
the server (``kmock.Server``), request parsing, the request journal (``emulator.requests``, used
to count e.g. PATCH calls), API discovery (``/api``, ``/apis``, ``/version``) and its DSL: any
reaction a test adds (``emulator['list v1/nodes'] << 500``) still takes precedence over the
emulated behaviour.  What stock kmock 0.8 lacks, and this subclass adds:

- a store with real metadata: ``uid``, ``creationTimestamp``, ``namespace`` and a **global,
  monotonically increasing resourceVersion**, also in list metadata;
- **watch** recognised for ``watch=true|True|1`` (kmock only knows ``true``), resuming from
  ``resourceVersion`` out of a **bounded event history**; a resume from before the history
  (``compact()``, or more events than ``history_limit``) gets an ``ERROR`` event carrying a
  Status ``410 Gone`` / ``reason: Expired``, as a real API server sends; ``timeoutSeconds``;
  ``allowWatchBookmarks`` (a ``BOOKMARK`` before a timeout closes the stream, and on demand);
- PUT (replace) with optimistic concurrency (``409 Conflict`` on a stale resourceVersion) and
  PATCH by content type: JSON Patch (RFC 6902), JSON merge patch (RFC 7386) and strategic merge
  patch (as merge patch, except that lists of objects that all carry ``name`` merge by name,
  which covers containers, env and volumes; ``$patch`` directives are not supported);
- subresources ``pods/{name}/binding`` (201, ``409`` when already bound), ``pods/{name}/eviction``
  (deletes the pod; ``429`` when a matching PodDisruptionBudget has ``disruptionsAllowed: 0``)
  and ``{resource}/{name}/status``;
- fault injection: ``fail(...)`` makes the next N matching requests answer with a status (a 429
  "storage is (re)initializing" as a starting server sends, a 5xx), ``drop_watches`` cuts live
  watch streams abruptly, ``close_watches`` ends them cleanly, ``expire_watches`` sends them a
  410, ``stop()`` / ``start()`` make it a stopped server (every connection reset) and back.

The store is a dict of plain JSON objects instead of kmock's ``ObjectsArray``, because every
write here must bump one global resourceVersion and append to one event history, which kmock's
per-object histories do not model.  Deletion is immediate unless the object has finalizers
(then it gets ``deletionTimestamp``); ``mark_terminating`` sets one for "terminating" tests.
Single event loop, no awaits inside a mutation: no locks needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import datetime
import itertools
import re
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml

__all__ = [
    "RESOURCES",
    "KubeEmulator",
    "ResourceType",
    "make_node",
    "make_pdb",
    "make_pod",
    "make_policy",
    "serve",
    "until",
]

JSON = dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCES: dict[tuple[str | None, str | None, str | None], ResourceType] = {
    (r.group, r.version, r.plural): r
    for r in (
        ResourceType("", "v1", "nodes", "Node", False),
        ResourceType("", "v1", "pods", "Pod", True),
        ResourceType("", "v1", "configmaps", "ConfigMap", True),
        ResourceType("", "v1", "events", "Event", True),
        ResourceType("", "v1", "namespaces", "Namespace", False),
        ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True),
        ResourceType("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True),
        ResourceType("apps", "v1", "deployments", "Deployment", True),
        ResourceType("apps", "v1", "replicasets", "ReplicaSet", True),
        ResourceType("apps", "v1", "statefulsets", "StatefulSet", True),
        ResourceType("spillover.dev", "v1alpha1", "resourcepolicies", "ResourcePolicy", True),
    )
}
_BY_KIND = {(r.api_version, r.kind): r for r in RESOURCES.values()}
_WATCH_VALUES = {"true", "True", "1"}


class ApiError(kmock.KubernetesError):
    """A Status response; kmock's scaffold renders it as JSON with the code."""


_REASONS = {401: "Unauthorized", 403: "Forbidden", 429: "TooManyRequests"}  # of fail(status)


def _error(status: int, reason: str, message: str, **details: Any) -> ApiError:
    return ApiError(status=status, reason=reason, message=message, details=details)


def _status(code: int, reason: str, message: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure" if code >= 400 else "Success",
        "code": code,
        "reason": reason,
        "message": message,
    }


@dataclasses.dataclass(slots=True)
class _Fault:
    method: str | None
    path: re.Pattern[str]
    status: int
    remaining: int
    watch: bool | None = None  # only watch requests (True), only others (False), any (None)
    message: str = "injected fault"


@dataclasses.dataclass(slots=True, eq=False)
class _Watcher:
    resource: ResourceType
    bookmarks: bool
    wake: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    action: str = ""  # "", "drop", "close", "expire", "bookmark"
    raw: Any = None


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesEmulator):
    history_limit: int = 1000

    store: dict[tuple[ResourceType, str, str], JSON] = attrs.field(factory=dict, init=False)
    _rv: int = attrs.field(default=1, init=False)
    _history: deque[tuple[int, ResourceType, JSON]] = attrs.field(factory=deque, init=False)
    _compacted: int = attrs.field(default=0, init=False)
    _faults: list[_Fault] = attrs.field(factory=list, init=False)
    _watchers: set[_Watcher] = attrs.field(factory=set, init=False)
    _watch_started: asyncio.Event = attrs.field(factory=asyncio.Event, init=False)
    kubeconfig_path: Path | None = attrs.field(default=None, init=False)
    stopped: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for r in RESOURCES.values():
            key = f"{r.group}/{r.version}/{r.plural}" if r.group else f"{r.version}/{r.plural}"
            info = self.resources[key]
            info.kind = r.kind
            info.namespaced = r.namespaced
            info.verbs = {"get", "list", "watch", "create", "update", "patch", "delete"}
        # kubernetes-asyncio asks for "/apis/" and "/api/" with a trailing slash.
        self.fallback["get /apis/"] << self._serve_apis
        self.fallback["get /api/"] << self._serve_api
        self.fallback["get /version/"] << self._serve_server_version
        # Above kmock's own fallbacks (its naive store), below any reaction a test adds.
        (self.fallback**1)[self._is_emulated] << self._serve

    # -- kmock plumbing ---------------------------------------------------------------------------
    async def _handle(self, request: kmock.Request) -> Any:
        # Skip KubernetesEmulator._handle (its naive store); keep kmock's dispatch and journal.
        if self.stopped:  # as a stopped server: the connection is reset, no answer
            raw = request._raw_request
            transport = raw.transport if raw is not None else None
            if transport is not None:
                transport.abort()
            return await self._render_error(_error(503, "ServiceUnavailable", "stopped"))
        is_watch = request.params.get("watch") in _WATCH_VALUES
        for fault in self._faults:
            method_ok = fault.method in (None, request.method.value.upper())
            watch_ok = fault.watch in (None, is_watch)
            if (
                fault.remaining > 0
                and method_ok
                and watch_ok
                and fault.path.search(request.url.path)
            ):
                fault.remaining -= 1
                reason = _REASONS.get(fault.status, "InternalError")
                return await self._render_error(_error(fault.status, reason, fault.message))
        return await kmock.KubernetesScaffold._handle(self, request)

    async def _render_error(self, exc: Exception) -> Any:
        if isinstance(exc, ApiError):  # a deliberate Status: no traceback in it
            body = _status(exc.status, exc.reason or "", exc.message or "")
            body["details"] = exc.details or {}
            return aiohttp.web.json_response(body, status=exc.status)
        return await super()._render_error(exc)

    @property
    def url(self) -> str:  # type: ignore[override]
        return str(self.servers[0].url).rstrip("/")

    def _is_emulated(self, request: kmock.Request) -> bool:
        r = request.resource
        return r is not None and (r.group, r.version, r.plural) in RESOURCES

    async def _serve(self, request: kmock.Request) -> Any:
        # Always an explicit status: kmock stores a returned Response's status on the reaction.
        status, payload = self._dispatch(request)
        return kmock.Response(status=status, payload=payload)  # type: ignore[attr-defined]

    def _dispatch(self, request: kmock.Request) -> tuple[int, Any]:
        r = request.resource
        assert r is not None, "kmock routes only resource requests here"
        rtype = RESOURCES[(r.group, r.version, r.plural)]
        method = request.method.value.upper()
        ns = request.namespace or ""
        name = request.name
        sub = request.subresource or ""
        params = request.params
        if name is None:
            if method == "GET" and params.get("watch") in _WATCH_VALUES:
                return 200, self._watch(request, rtype, ns)
            if method == "GET":
                return 200, self._list(rtype, ns, params.get("labelSelector", ""))
            if method == "POST":
                return 201, self._create(rtype, ns, request.data)
            raise _error(405, "MethodNotAllowed", f"{method} on a collection")
        if sub == "binding" and rtype.plural == "pods" and method == "POST":
            return 201, self._bind(ns, name, request.data)
        if sub == "eviction" and rtype.plural == "pods" and method == "POST":
            return 201, self._evict(ns, name)
        if sub not in ("", "status"):
            raise _error(404, "NotFound", f"unknown subresource {sub}")
        if method == "GET":
            return 200, copy.deepcopy(self._get(rtype, ns, name))
        if method == "PUT":
            return 200, self._replace(rtype, ns, name, request.data, status_only=sub == "status")
        if method == "PATCH":
            ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
            return 200, self._patch(
                rtype, ns, name, request.data, ctype=ctype, status_only=sub == "status"
            )
        if method == "DELETE":
            return 200, self._delete(rtype, ns, name)
        raise _error(405, "MethodNotAllowed", f"{method} on an object")

    # -- storage ----------------------------------------------------------------------------------
    def _emit(self, rtype: ResourceType, kind: str, obj: JSON) -> None:
        self._history.append((self._rv, rtype, {"type": kind, "object": copy.deepcopy(obj)}))
        while len(self._history) > self.history_limit:
            old_rv, _, _ = self._history.popleft()
            self._compacted = max(self._compacted, old_rv)
        for w in self._watchers:
            if w.resource == rtype:
                w.wake.set()

    def _bump(self, obj: JSON) -> None:
        self._rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._rv)

    def _get(self, rtype: ResourceType, ns: str, name: str) -> JSON:
        obj = self.store.get((rtype, ns if rtype.namespaced else "", name))
        if obj is None:
            raise _error(
                404, "NotFound", f'{rtype.plural} "{name}" not found', name=name, kind=rtype.plural
            )
        return obj

    def _list(self, rtype: ResourceType, ns: str, selector: str) -> JSON:
        want = dict(p.split("=", 1) for p in selector.split(",") if "=" in p)
        items = [
            copy.deepcopy(obj)
            for (t, ons, _), obj in sorted(self.store.items(), key=lambda kv: kv[0][1:])
            if t == rtype and (not ns or ons == ns) and _labels_match(obj, want)
        ]
        return {
            "apiVersion": rtype.api_version,
            "kind": f"{rtype.kind}List",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }

    def _create(self, rtype: ResourceType, ns: str, body: Any) -> JSON:
        if not isinstance(body, dict):
            raise _error(400, "BadRequest", "body must be a JSON object")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name")
        if not name:
            raise _error(422, "Invalid", "metadata.name: Required value")
        if rtype.namespaced:
            ns = ns or meta.get("namespace") or "default"
            meta["namespace"] = ns
        else:
            ns = ""
            meta.pop("namespace", None)
        key = (rtype, ns, name)
        if key in self.store:
            raise _error(409, "AlreadyExists", f'{rtype.plural} "{name}" already exists', name=name)
        obj["apiVersion"] = rtype.api_version
        obj["kind"] = rtype.kind
        meta["uid"] = meta.get("uid") or str(uuid.uuid4())
        meta.setdefault("creationTimestamp", _now())
        meta.setdefault("generation", 1)
        self._bump(obj)
        self.store[key] = obj
        self._emit(rtype, "ADDED", obj)
        return copy.deepcopy(obj)

    def _commit(self, rtype: ResourceType, old: JSON, new: JSON) -> JSON:
        """Store ``new`` in place of ``old`` (same key); no-op writes change nothing."""
        meta, old_meta = new.setdefault("metadata", {}), old.get("metadata", {})
        for field in ("name", "namespace", "uid", "creationTimestamp"):
            if field in old_meta:
                meta[field] = old_meta[field]
        meta["resourceVersion"] = old_meta.get("resourceVersion")
        new["apiVersion"], new["kind"] = rtype.api_version, rtype.kind
        if new == old:
            return copy.deepcopy(old)
        self._bump(new)
        key = (rtype, meta.get("namespace", "") if rtype.namespaced else "", meta["name"])
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            del self.store[key]
            self._emit(rtype, "DELETED", new)
        else:
            self.store[key] = new
            self._emit(rtype, "MODIFIED", new)
        return copy.deepcopy(new)

    def _replace(
        self, rtype: ResourceType, ns: str, name: str, body: Any, *, status_only: bool = False
    ) -> JSON:
        old = self._get(rtype, ns, name)
        if not isinstance(body, dict):
            raise _error(400, "BadRequest", "body must be a JSON object")
        _check_precondition(rtype, name, old, body)
        if status_only:
            new = copy.deepcopy(old)
            new["status"] = copy.deepcopy(body.get("status"))
        else:
            new = _keep_status(old, copy.deepcopy(body))
        return self._commit(rtype, old, new)

    def _patch(
        self,
        rtype: ResourceType,
        ns: str,
        name: str,
        patch: Any,
        *,
        ctype: str,
        status_only: bool = False,
    ) -> JSON:
        old = self._get(rtype, ns, name)
        if ctype == "application/json-patch+json":
            if not isinstance(patch, list):
                raise _error(400, "BadRequest", "a JSON patch must be a list of operations")
            new = json_patch(old, patch)
        elif ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            if not isinstance(patch, dict):
                raise _error(400, "BadRequest", "a merge patch must be an object")
            _check_precondition(rtype, name, old, patch)
            strategic = ctype == "application/strategic-merge-patch+json"
            new = merge_patch(old, patch, strategic=strategic)
        else:
            raise _error(415, "UnsupportedMediaType", f"the body of type {ctype!r} is unsupported")
        if not isinstance(new, dict):
            raise _error(422, "Invalid", "the patch does not produce an object")
        if status_only:
            kept = copy.deepcopy(old)
            kept["status"] = new.get("status")
            new = kept
        else:
            new = _keep_status(old, new)
        return self._commit(rtype, old, new)

    def _delete(self, rtype: ResourceType, ns: str, name: str) -> JSON:
        old = self._get(rtype, ns, name)
        meta = old.get("metadata", {})
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return copy.deepcopy(old)
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = _now()
            return self._commit(rtype, old, new)
        key = (rtype, ns if rtype.namespaced else "", name)
        obj = self.store.pop(key)
        self._bump(obj)
        self._emit(rtype, "DELETED", obj)
        return copy.deepcopy(obj)

    # -- subresources -----------------------------------------------------------------------------
    def _bind(self, ns: str, name: str, body: Any) -> JSON:
        pods = RESOURCES[("", "v1", "pods")]
        pod = self._get(pods, ns, name)
        target = (body or {}).get("target") or {}
        node = target.get("name")
        if not node:
            raise _error(422, "Invalid", "target.name: Required value")
        uid = ((body or {}).get("metadata") or {}).get("uid")
        if uid and uid != pod["metadata"]["uid"]:
            raise _error(409, "Conflict", f"Precondition failed: UID in precondition: {uid}")
        bound = pod.get("spec", {}).get("nodeName")
        if bound:
            raise _error(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on pods/binding "{name}": '
                f'pod {name} is already assigned to node "{bound}"',
            )
        new = copy.deepcopy(pod)
        new.setdefault("spec", {})["nodeName"] = node
        self._commit(pods, pod, new)
        return _status(201, "", "")

    def _evict(self, ns: str, name: str) -> JSON:
        pods = RESOURCES[("", "v1", "pods")]
        pdbs = RESOURCES[("policy", "v1", "poddisruptionbudgets")]
        pod = self._get(pods, ns, name)
        budgets = [
            pdb
            for (t, pns, _), pdb in self.store.items()
            if t == pdbs
            and pns == ns
            # policy/v1: a null selector selects no pods, an empty one every pod
            and (selector := (pdb.get("spec") or {}).get("selector")) is not None
            and _labels_match(pod, selector.get("matchLabels") or {})
        ]
        for pdb in budgets:  # check every budget before touching any
            if int((pdb.get("status") or {}).get("disruptionsAllowed", 0)) <= 0:
                raise _error(
                    429,
                    "TooManyRequests",
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                    causes=[{"reason": "DisruptionBudget", "message": pdb["metadata"]["name"]}],
                )
        for pdb in budgets:  # what the disruption controller would recompute
            new_pdb = copy.deepcopy(pdb)
            status = new_pdb["status"]
            status["disruptionsAllowed"] = int(status["disruptionsAllowed"]) - 1
            self._commit(pdbs, pdb, new_pdb)
        self._delete(pods, ns, name)
        return _status(201, "", "")

    # -- watch ------------------------------------------------------------------------------------
    async def _watch(
        self, request: kmock.Request, rtype: ResourceType, ns: str
    ) -> AsyncIterator[Any]:
        params = request.params
        timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None
        since = params.get("resourceVersion", "")
        watcher = _Watcher(rtype, params.get("allowWatchBookmarks") in _WATCH_VALUES)
        watcher.raw = request._raw_request
        self._watchers.add(watcher)
        self._watch_started.set()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            yield b""  # send the headers now, as kmock's own watch does
            if since in ("", "0"):
                # "Any" version: synthetic ADDED events for the current state, then follow.
                cursor = self._rv
                for (t, ons, _), obj in list(self.store.items()):
                    if t == rtype and (not ns or ons == ns):
                        yield {"type": "ADDED", "object": copy.deepcopy(obj)}
            else:
                cursor = int(since)
            while True:
                if cursor < self._compacted:
                    yield self._expired(cursor)
                    return
                for rv, t, event in list(self._history):
                    if rv <= cursor or t != rtype:
                        continue
                    cursor = rv
                    if ns and event["object"].get("metadata", {}).get("namespace") != ns:
                        continue
                    yield event
                if watcher.action == "expire":
                    yield self._expired(cursor)
                    return
                if watcher.action == "close":
                    return
                if watcher.action == "drop":
                    raw = request._raw_request
                    transport = raw.transport if raw is not None else None
                    if transport is not None:
                        transport.abort()
                    return
                if watcher.action == "bookmark":
                    watcher.action = ""
                    if watcher.bookmarks:
                        yield self._bookmark(rtype)
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    if watcher.bookmarks:
                        yield self._bookmark(rtype)
                    return
                watcher.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(watcher.wake.wait(), remaining)
        finally:
            self._watchers.discard(watcher)

    def _expired(self, cursor: int) -> JSON:
        return {
            "type": "ERROR",
            "object": _status(
                410,
                "Expired",
                f"too old resource version: {cursor} ({self._compacted + 1})",
            ),
        }

    def _bookmark(self, rtype: ResourceType) -> JSON:
        return {
            "type": "BOOKMARK",
            "object": {
                "apiVersion": rtype.api_version,
                "kind": rtype.kind,
                "metadata": {"resourceVersion": str(self._rv)},
            },
        }

    # -- test helpers -----------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    def objects_of(self, plural: str, namespace: str | None = None) -> list[JSON]:
        rtype = _by_plural(plural)
        return [
            copy.deepcopy(o)
            for (t, ns, _), o in self.store.items()
            if t == rtype and (namespace is None or ns == namespace)
        ]

    def create(self, obj: Mapping[str, Any]) -> JSON:
        """Create an object from a manifest (``apiVersion`` + ``kind`` pick the resource).

        Unlike a real server, creation keeps ``status`` (tests set a PDB's status this way).
        """
        rtype = _BY_KIND[(obj["apiVersion"], obj["kind"])]
        ns = obj.get("metadata", {}).get("namespace", "") if rtype.namespaced else ""
        return self._create(rtype, ns, dict(obj))

    def create_all(self, objs: Iterable[Mapping[str, Any]]) -> list[JSON]:
        return [self.create(o) for o in objs]

    def get(self, plural: str, name: str, namespace: str = "") -> JSON:  # type: ignore[override]
        return copy.deepcopy(self._get(_by_plural(plural), namespace, name))

    def update(self, obj: Mapping[str, Any]) -> JSON:
        """Replace an object (no resourceVersion precondition unless the manifest has one)."""
        rtype = _BY_KIND[(obj["apiVersion"], obj["kind"])]
        meta = obj["metadata"]
        return self._replace(rtype, meta.get("namespace", ""), meta["name"], dict(obj))

    def patch(  # type: ignore[override]
        self, plural: str, name: str, patch: Mapping[str, Any], namespace: str = ""
    ) -> JSON:
        """Merge-patch (RFC 7386) an object."""
        return self._patch(
            _by_plural(plural), namespace, name, dict(patch), ctype="application/merge-patch+json"
        )

    def patch_status(
        self, plural: str, name: str, patch: Mapping[str, Any], namespace: str = ""
    ) -> JSON:
        """Merge-patch the ``status`` subresource (``{"status": {...}}``)."""
        return self._patch(
            _by_plural(plural),
            namespace,
            name,
            dict(patch),
            ctype="application/merge-patch+json",
            status_only=True,
        )

    def delete(self, plural: str, name: str, namespace: str = "") -> JSON:  # type: ignore[override]
        return self._delete(_by_plural(plural), namespace, name)

    def mark_terminating(self, plural: str, name: str, namespace: str = "") -> JSON:
        """Set ``deletionTimestamp`` (and a finalizer that keeps the object) as a deletion would."""
        rtype = _by_plural(plural)
        old = self._get(rtype, namespace, name)
        new = copy.deepcopy(old)
        meta = new["metadata"]
        meta["deletionTimestamp"] = _now()
        meta["finalizers"] = [*meta.get("finalizers", ()), "spillover.dev/test-hold"]
        return self._commit(rtype, old, new)

    def fail(
        self,
        path: str | re.Pattern[str],
        *,
        status: int = 500,
        times: int = 1,
        method: str = "",
        watch: bool | None = None,
        message: str = "injected fault",
    ) -> None:
        """Answer the next ``times`` requests whose path matches (regex search) with ``status``;
        ``watch=True`` / ``False``: only watch requests / only the others."""
        pattern = re.compile(path) if isinstance(path, str) else path
        self._faults.append(_Fault(method.upper() or None, pattern, status, times, watch, message))

    def stop(self) -> None:
        """Act as a stopped API server: live watches are cut and every request is reset."""
        self.stopped = True
        self.drop_watches()

    def start(self) -> None:
        """Serve again after ``stop`` (a restarted server keeps its store, as etcd does)."""
        self.stopped = False

    def compact(self) -> None:
        """Forget the event history: any watch resuming from an older version gets 410."""
        self._history.clear()
        self._compacted = self._rv

    def _signal(self, plural: str | None, action: str) -> int:
        hit = 0
        for w in list(self._watchers):
            if plural is None or w.resource.plural == plural:
                w.action = action
                w.wake.set()
                hit += 1
        return hit

    def drop_watches(self, plural: str | None = None) -> int:
        """Abort live watch connections mid-stream (the client sees a broken connection)."""
        return self._signal(plural, "drop")

    def close_watches(self, plural: str | None = None) -> int:
        """End live watch streams cleanly, as a server-side timeout does."""
        return self._signal(plural, "close")

    def expire_watches(self, plural: str | None = None) -> int:
        """Send live watches a 410 Gone ERROR event (and compact the history)."""
        self.compact()
        return self._signal(plural, "expire")

    def send_bookmarks(self, plural: str | None = None) -> int:
        return self._signal(plural, "bookmark")

    async def wait_watching(self, plural: str | None = None, count: int = 1) -> None:
        """Wait until at least ``count`` watch streams of ``plural`` are open."""
        while self.watch_count(plural) < count:
            self._watch_started.clear()
            await self._watch_started.wait()

    def watch_count(self, plural: str | None = None) -> int:
        return sum(1 for w in self._watchers if plural is None or w.resource.plural == plural)

    def requests_to(self, method: str, path: str | re.Pattern[str]) -> list[kmock.Request]:
        """Journal of requests by method and path (regex search), e.g. to count PATCHes."""
        pattern = re.compile(path) if isinstance(path, str) else path
        return [
            r
            for r in self._requests
            if r.method.value.upper() == method.upper() and pattern.search(r.url.path)
        ]


# -- patches --------------------------------------------------------------------------------------
def merge_patch(target: Any, patch: Any, *, strategic: bool = False) -> Any:
    """RFC 7386 JSON merge patch; ``strategic`` also merges lists of named objects by name."""
    if not isinstance(patch, dict):
        if strategic and isinstance(patch, list) and isinstance(target, list):
            return _merge_named(target, patch)
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value, strategic=strategic)
    return result


def _merge_named(target: list[Any], patch: list[Any]) -> list[Any]:
    named = all(isinstance(x, dict) and "name" in x for x in itertools.chain(target, patch))
    if not named or not patch:
        return copy.deepcopy(patch)
    result = copy.deepcopy(target)
    index = {x["name"]: i for i, x in enumerate(result)}
    for item in patch:
        if item["name"] in index:
            i = index[item["name"]]
            result[i] = merge_patch(result[i], item, strategic=True)
        else:
            result.append(copy.deepcopy(item))
    return result


def json_patch(doc: Any, ops: list[Any]) -> Any:
    """RFC 6902 JSON Patch: add, remove, replace, move, copy, test."""
    doc = copy.deepcopy(doc)
    for op in ops:
        kind, path = op.get("op"), op.get("path", "")
        if kind == "test":
            if _pointer_get(doc, path) != op.get("value"):
                raise _error(422, "Invalid", f"test failed at {path}")
            continue
        if kind in ("move", "copy"):
            value = copy.deepcopy(_pointer_get(doc, op["from"]))
            if kind == "move":
                doc = _pointer_apply(doc, op["from"], "remove", None)
            doc = _pointer_apply(doc, path, "add", value)
        elif kind in ("add", "replace", "remove"):
            doc = _pointer_apply(doc, path, kind, copy.deepcopy(op.get("value")))
        else:
            raise _error(422, "Invalid", f"unknown JSON patch op {kind!r}")
    return doc


def _tokens(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _error(422, "Invalid", f"bad JSON pointer {path!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _pointer_get(doc: Any, path: str) -> Any:
    for token in _tokens(path):
        try:
            doc = doc[int(token)] if isinstance(doc, list) else doc[token]
        except (KeyError, IndexError, ValueError, TypeError):
            raise _error(422, "Invalid", f"no value at {path}") from None
    return doc


def _pointer_apply(doc: Any, path: str, kind: str, value: Any) -> Any:
    tokens = _tokens(path)
    if not tokens:
        return value if kind != "remove" else None
    parent = (
        _pointer_get(
            doc, "/" + "/".join(t.replace("~", "~0").replace("/", "~1") for t in tokens[:-1])
        )
        if len(tokens) > 1
        else doc
    )
    last = tokens[-1]
    try:
        if isinstance(parent, list):
            i = len(parent) if last == "-" else int(last)
            if kind == "add":
                parent.insert(i, value)
            elif kind == "replace":
                parent[i] = value
            else:
                del parent[i]
        elif isinstance(parent, dict):
            if kind != "add" and last not in parent:
                raise KeyError(last)
            if kind == "remove":
                del parent[last]
            else:
                parent[last] = value
        else:
            raise TypeError(path)
    except (KeyError, IndexError, ValueError, TypeError):
        raise _error(422, "Invalid", f"cannot {kind} at {path}") from None
    return doc


# -- helpers --------------------------------------------------------------------------------------
def _check_precondition(rtype: ResourceType, name: str, old: JSON, body: Mapping[str, Any]) -> None:
    wanted = (body.get("metadata") or {}).get("resourceVersion")
    current = old.get("metadata", {}).get("resourceVersion")
    if wanted and wanted != current:
        raise _error(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {rtype.plural} "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again",
            name=name,
        )


def _keep_status(old: JSON, new: JSON) -> JSON:
    """Writes to the main resource leave ``status`` alone: it has its own subresource."""
    new.pop("status", None)
    if "status" in old:
        new["status"] = copy.deepcopy(old["status"])
    return new


def _labels_match(obj: Mapping[str, Any], want: Mapping[str, str]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in want.items())


def _by_plural(plural: str) -> ResourceType:
    for r in RESOURCES.values():
        if r.plural == plural:
            return r
    raise KeyError(plural)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_kubeconfig(path: Path, url: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": url}}],
        "users": [{"name": "emulator", "user": {"token": "emulator"}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "emulator"}}],
        "current-context": "emulator",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.asynccontextmanager
async def serve(
    *, kubeconfig_dir: Path | None = None, **kwargs: Any
) -> AsyncIterator[KubeEmulator]:
    """Run an emulator on 127.0.0.1 with a random port; optionally write a kubeconfig for it."""
    emulator = KubeEmulator(**kwargs)
    async with emulator, kmock.Server(emulator):
        if kubeconfig_dir is not None:
            emulator.kubeconfig_path = write_kubeconfig(kubeconfig_dir / "kubeconfig", emulator.url)
        try:
            yield emulator
        finally:
            emulator.close_watches()


# -- manifests for tests --------------------------------------------------------------------------
def make_node(
    name: str, *, eci: bool = False, cpu: str = "8", memory: str = "32Gi", **labels: str
) -> JSON:
    """An ECS node, or with ``eci=True`` a virtual-kubelet node (label and taint)."""
    spec: JSON = {}
    if eci:
        labels = {"type": "virtual-kubelet", **labels}
        spec["taints"] = [
            {"key": "virtual-kubelet.io/provider", "value": "alibabacloud", "effect": "NoSchedule"}
        ]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "1000" if eci else "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def make_pod(
    name: str,
    namespace: str = "default",
    *,
    owner: tuple[str, str] | None = None,
    node: str = "",
    cpu: str = "100m",
    **labels: str,
) -> JSON:
    """A pod; ``owner=("ReplicaSet", "web-5d8f")`` makes it a replica of Deployment ``web``."""
    meta: JSON = {"name": name, "namespace": namespace, "labels": labels}
    if owner is not None:
        kind, owner_name = owner
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": kind,
                "name": owner_name,
                "uid": f"uid-{owner_name}",
                "controller": True,
            }
        ]
        if kind == "ReplicaSet" and "-" in owner_name:
            meta["labels"] = {"pod-template-hash": owner_name.rsplit("-", 1)[1], **labels}
    spec: JSON = {
        "containers": [{"name": "app", "image": "app", "resources": {"requests": {"cpu": cpu}}}]
    }
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def make_policy(
    name: str,
    namespace: str = "default",
    *,
    match_labels: Mapping[str, str],
    ecs_max: int | None,
    eci: bool = True,
) -> JSON:
    units: list[JSON] = [
        {"resource": "ecs"} if ecs_max is None else {"resource": "ecs", "max": ecs_max}
    ]
    if eci:
        units.append({"resource": "eci"})
    return {
        "apiVersion": "spillover.dev/v1alpha1",
        "kind": "ResourcePolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"matchLabels": dict(match_labels)}, "units": units},
    }


def make_pdb(name: str, namespace: str, *, match_labels: Mapping[str, str], allowed: int) -> JSON:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"matchLabels": dict(match_labels)}},
        "status": {"disruptionsAllowed": allowed},
    }


async def until(predicate: Callable[[], bool], *, what: str = "condition") -> None:
    """Poll ``predicate`` on the event loop; the bound is a safety net, not a timing assertion."""
    for _ in range(2000):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{what} never became true")
