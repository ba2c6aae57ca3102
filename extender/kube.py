"""The extender's only kubernetes-asyncio adapter: the list+watch cache, the binder, the patcher.

``ClusterWatch`` keeps ``ClusterState`` and the reservation ``Ledger`` in step with the cluster,
like an informer: list each kind (nodes, pods, ResourcePolicies), then watch from the list's
resourceVersion.  That loop is ``ListWatch``, one per kind; ``autoscaler.replay.record`` runs it
too.  A stream that ends normally resumes from the last version seen ("closed"); a
``410 Gone`` means the server forgot that version, so the kind is listed again ("expired"); any
other failure reconnects after an exponential, jittered backoff ("error"), resuming where it can.
Watch events are read as raw JSON lines (not through ``kubernetes_asyncio.watch.Watch``, which
retries 410 with the same stale version and deserializes into models we would throw away) and
fed to the pure parsers of ``extender.model`` and ``extender.policies``; an object that does not
parse is logged and skipped, never fatal.

Health (what ``/readyz`` and ``/filter`` follow through ``state.synced``): a kind is *down* from
its first failed request until a request of it succeeds again.  When one has been down for
``staleness`` seconds the cache is no longer trusted: ``state.synced`` turns false (the extender
reports unready, ``/filter`` answers by its ``--failure-policy``) and every kind that was down
lists again; the cache is synced again once each of them has re-listed.  Reconnecting is prompt:
the backoff is reset by any successful request, and a 429 or 5xx (an API server that is starting:
"storage is (re)initializing") waits at most ``BackoffSettings.busy_maximum``.

StatefulSets are watched only for ``spec.ordinals.start`` (``ClusterState.ordinal``).

``DeletionCostReconciler`` writes ``controller.kubernetes.io/pod-deletion-cost`` where
``extender.deletion_cost`` says it changed, through a token bucket.  The small pure pieces
(``backoff_delay``, ``TokenBucket``) take time and randomness as arguments.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config import kube_config

from .deletion_cost import ANNOTATION, changed_costs, desired_costs
from .ledger import Ledger
from .metrics import Metrics
from .model import (
    NodeKindSettings,
    Pod,
    WorkloadKey,
    node_from_dict,
    pod_from_dict,
    statefulset_start,
)
from .policies import policy_from_dict
from .policy import ResourcePolicy, policy_for
from .ports import BindError, Clock
from .snapshot import ClusterState

__all__ = [
    "DENIED",
    "AccessDenied",
    "ApiBinder",
    "BackoffSettings",
    "ClusterWatch",
    "DeletionCostReconciler",
    "ListWatch",
    "TokenBucket",
    "backoff_delay",
    "load_kube_config",
]

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
RawObject = Mapping[str, Any]

GROUP, VERSION, PLURAL = "spillover.dev", "v1alpha1", "resourcepolicies"
_MANAGED_KINDS = frozenset({"Deployment", "ReplicaSet"})
_decode_json = msgspec.json.Decoder().decode
"""A list body or one watch line into dicts and lists: about 2.5x json.loads on a Pod (invalid
JSON raises ``msgspec.DecodeError``, a ``ValueError``, as json.loads does)."""

_NETWORK_ERRORS = (ApiException, aiohttp.ClientError, asyncio.TimeoutError, OSError)


# -- pure helpers ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BackoffSettings:
    initial: float = 0.5
    maximum: float = 5.0
    factor: float = 2.0
    jitter: float = 0.2  # +-20 %
    busy_maximum: float = 1.0
    """The longest wait after a 429 or 5xx: the server answers, it is starting or overloaded."""


def backoff_delay(
    attempt: int, settings: BackoffSettings, *, rand: float, status: int | None = None
) -> float:
    """Delay before retry number ``attempt`` (0-based); ``rand`` in [0, 1) spreads the clients.

    ``status``: the HTTP status of the failure, if the server answered one.
    """
    cap = settings.maximum
    if status is not None and (status == 429 or status >= 500):
        cap = min(cap, settings.busy_maximum)
    base = min(cap, settings.initial * settings.factor ** min(attempt, 64))
    return max(0.0, base * (1.0 + settings.jitter * (2.0 * rand - 1.0)))


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up.  Time is an argument."""

    def __init__(self, *, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = now

    def take(self, now: float) -> float:
        """Take one token; returns how long to wait before using it (0 when one was saved)."""
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


def _meta(obj: RawObject) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _describe(obj: RawObject) -> str:
    meta = _meta(obj)
    namespace = meta.get("namespace")
    return f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name"))


# -- the list+watch loop -------------------------------------------------------------------------
class _Expired(Exception):
    """The server no longer has the resourceVersion we asked for (410 Gone)."""


class _StreamError(Exception):
    """An ERROR event other than 410."""


DENIED = (401, 403)  # Unauthorized (credentials), Forbidden (RBAC)


class AccessDenied(Exception):
    """A ``ListWatch(stop_when_denied=True)`` request was refused (401 or 403) for a verb that
    had never succeeded on the kind: a person must fix credentials or RBAC; retrying will not."""

    def __init__(self, resource: str, verb: str, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}: cannot {verb} {resource}")
        self.resource = resource
        self.verb = verb  # "list" or "watch"
        self.status = status
        self.reason = reason  # the server's message (its Status.message), else its reason


class _Absent(Exception):
    """An optional kind's API is not served (404: its CRD is not installed)."""


class ListWatch:
    """One kind followed like an informer's reflector: the loop ``ClusterWatch`` runs per kind
    and ``autoscaler.replay.record`` runs per recorded kind.

    ``lister`` is a kubernetes-asyncio ``list_*`` method (extra keyword arguments, such as a
    namespace, bound with ``functools.partial``); ``replace(items)`` gets each full list,
    ``apply(type, object)`` each ADDED/MODIFIED/DELETED event (never a BOOKMARK, which only moves
    the resourceVersion).  Both must be quick and must not raise on an object they cannot use.
    The loop: list, watch from the list's resourceVersion, resume from the last version seen when
    a stream ends ("closed"), list again after a 410 Gone ("expired"), reconnect after a jittered
    exponential backoff on anything else ("error"; capped at ``busy_maximum`` for 429 and 5xx,
    reset by any successful request).  ``on_restart(reason)`` counts those.

    Health: the kind is *down* (``down_since``) from its first failed request until a request of
    it succeeds.  Once down for ``staleness`` seconds it is *stale*: ``listed`` turns false,
    ``on_stale()`` is called and it lists again when it reconnects (events may be missing).
    ``optional``: a 404 on the list means the API is not served (a CRD not installed): the kind
    counts as listed and empty (``absent``) and is listed again every ``absent_recheck``.
    ``on_listed()`` is called after every list, also an absent one.

    ``stop_when_denied``: a 401 or 403 on a verb (list, watch) that has never succeeded on this
    kind is permanent (missing credentials or RBAC: a retry cannot fix it), so ``run`` raises
    ``AccessDenied`` instead of retrying.  A refusal after that verb has worked is retried like
    any error (RBAC being re-applied, a token being rotated).  Off by default: a service keeps
    retrying, unready, until someone fixes its role.
    """

    def __init__(
        self,
        name: str,
        lister: Callable[..., Awaitable[Any]],
        *,
        replace: Callable[[list[RawObject]], None],
        apply: Callable[[str, RawObject], None],
        on_listed: Callable[[], None] | None = None,
        on_restart: Callable[[str], None] | None = None,
        on_stale: Callable[[], None] | None = None,
        optional: bool = False,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        backoff: BackoffSettings = BackoffSettings(),
        rand: Callable[[], float] = random.random,
        watch_timeout: float = 300.0,
        staleness: float = 15.0,
        absent_recheck: float = 60.0,
        stop_when_denied: bool = False,
    ) -> None:
        if staleness <= 0:
            raise ValueError("staleness must be positive")
        self.name = name
        self.lister = lister
        self.replace = replace
        self.apply = apply
        self.on_listed = on_listed
        self.on_restart = on_restart
        self.on_stale = on_stale
        self.optional = optional
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self._sleep = sleep or asyncio.sleep
        self.backoff = backoff
        self._rand = rand
        self.watch_timeout = watch_timeout
        self.staleness = staleness
        self.absent_recheck = absent_recheck
        self.listed = False
        self.version: str | None = None  # the last resourceVersion seen; None: list again
        self.down_since: float | None = None  # the first failure since the last success
        self.absent = False
        self.stop_when_denied = stop_when_denied
        self.allowed: set[str] = set()  # the verbs that have succeeded on this kind
        self._attempts = 0  # failed requests since the last successful one

    async def run(self) -> None:
        """Follow the kind until cancelled; never returns, never raises but ``CancelledError``
        (and ``AccessDenied`` with ``stop_when_denied``)."""
        verb = "list"
        while True:
            try:
                if self.version is None:
                    verb = "list"
                    self.version = await self._relist()
                verb = "watch"
                await self._stream(self.version)
                self._restarted("closed")
            except _Absent:
                if not self.absent:
                    self.absent = True
                    log.warning(
                        "%s: the API server does not serve them (CRD not installed?); "
                        "going on without any, checking again every %.0fs",
                        self.name,
                        self.absent_recheck,
                        extra={"resource": self.name},
                    )
                await self._sleep(self.absent_recheck)
            except _Expired:
                log.info(
                    "%s watch expired (410 Gone), relisting",
                    self.name,
                    extra={"resource": self.name},
                )
                self._restarted("expired")
                self.version = None
            except Exception as err:  # never let the loop die; a bug shows in the log
                denied = self._denied(err, verb)
                if denied is not None:
                    raise denied from None
                if not isinstance(err, (*_NETWORK_ERRORS, _StreamError, ValueError)):
                    log.exception("%s watch: unexpected error", self.name)
                self._restarted("error")
                await self._sleep(self._failed(err))

    def _denied(self, err: Exception, verb: str) -> AccessDenied | None:
        """``err`` as a permanent refusal (``stop_when_denied``: the class docstring), or None."""
        if (
            self.stop_when_denied
            and isinstance(err, ApiException)
            and err.status in DENIED
            and verb not in self.allowed
        ):
            return AccessDenied(self.name, verb, err.status, _server_message(err.reason or ""))
        return None

    def _restarted(self, reason: str) -> None:
        if self.on_restart is not None:
            self.on_restart(reason)

    def _failed(self, err: Exception) -> float:
        """Note a failed request; returns how long to wait before the next one."""
        now = self._clock()
        if self.down_since is None:
            self.down_since = now
        status = err.status if isinstance(err, ApiException) else None
        delay = backoff_delay(self._attempts, self.backoff, rand=self._rand(), status=status)
        self._attempts += 1
        stale_at = self.down_since + self.staleness
        if self._stale(now):
            self.version = None  # list again: events may be missing
        elif now + delay > stale_at:
            delay = max(0.0, stale_at - now)  # wake up to stop trusting what was listed
        log.warning(
            "%s watch failed (%s), retrying in %.1fs",
            self.name,
            _error_text(err),
            delay,
            extra={"resource": self.name, "error": _error_text(err), "delay": delay},
        )
        return delay

    def _succeeded(self, verb: str) -> None:
        """The server answered a request of this kind: reset its backoff and its outage."""
        self._attempts = 0
        self.down_since = None
        self.allowed.add(verb)

    def _stale(self, now: float) -> bool:
        """Whether the kind has been down for ``staleness``; if so what was listed is no longer
        trusted until it has listed again."""
        if self.down_since is None or now - self.down_since < self.staleness:
            return False
        if self.listed:
            self.listed = False
            log.warning(
                "%s watch down for %.1fs: cache not trusted until it lists again",
                self.name,
                now - self.down_since,
                extra={"resource": self.name},
            )
        if self.on_stale is not None:
            self.on_stale()
        return True

    async def _relist(self) -> str:
        listing = await self.lister(_preload_content=False)
        async with listing:
            if listing.status == 410:
                raise _Expired
            absent = listing.status == 404 and self.optional
            if listing.status != 200 and not absent:
                raise ApiException(status=listing.status, reason=await listing.text())
            body = {} if absent else _decode_json(await listing.read())
        self._succeeded("list")
        items = [i for i in body.get("items") or () if isinstance(i, Mapping)]
        self.replace(items)
        self.listed = True
        if self.absent and not absent:
            log.info("%s: served now", self.name, extra={"resource": self.name})
        self.absent = self.absent and absent
        if self.on_listed is not None:
            self.on_listed()
        if absent:
            raise _Absent
        return str(_meta(body).get("resourceVersion") or "")

    async def _stream(self, version: str) -> None:
        """Follow one watch stream to its end, keeping ``self.version`` current."""
        response = await self.lister(
            watch=True,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=int(self.watch_timeout),
            _preload_content=False,
            # A dead connection shows as silence; the server's own timeout comes well before this.
            _request_timeout=aiohttp.ClientTimeout(sock_read=self.watch_timeout + 30),
        )
        async with response:
            if response.status == 410:
                raise _Expired
            if response.status != 200:
                raise ApiException(status=response.status, reason=await response.text())
            self._succeeded("watch")
            while line := await response.content.readline():
                if not line.strip():
                    continue
                self.version = self._event(_decode_json(line)) or self.version
                # A burst of events is already buffered, so readline() would not yield: give
                # the waiting requests their turn after every event, never after the batch.
                await asyncio.sleep(0)

    def _event(self, event: Mapping[str, Any]) -> str | None:
        """Apply one watch event; returns its resourceVersion."""
        kind_of_event = event.get("type")
        obj = event.get("object")
        if not isinstance(obj, Mapping):
            raise _StreamError(f"{self.name}: watch event without an object")
        if kind_of_event == "ERROR":
            if obj.get("code") == 410:
                raise _Expired
            raise _StreamError(f"{self.name}: {obj.get('reason')}: {obj.get('message')}")
        version = _meta(obj).get("resourceVersion")
        if kind_of_event != "BOOKMARK":
            self.apply(str(kind_of_event), obj)
        return str(version) if version else None


# -- the cache ------------------------------------------------------------------------------------
class ClusterWatch:
    def __init__(
        self,
        api: ApiClient,
        state: ClusterState,
        ledger: Ledger,
        *,
        metrics: Metrics,
        kind_settings: NodeKindSettings | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        backoff: BackoffSettings = BackoffSettings(),
        rand: Callable[[], float] = random.random,
        watch_timeout: float = 300.0,
        watch_policies: bool = True,
        staleness: float = 15.0,
        absent_recheck: float = 60.0,
        on_change: Callable[[str, str], None] | None = None,
    ) -> None:
        """``watch_policies=False`` leaves ``state.policies`` alone (they came from a file);
        ``staleness``: seconds a kind may be down before the cache stops being trusted.

        Without the ResourcePolicy CRD (the list answers 404) the cache holds no policies, is
        synced, warns once, and lists again every ``absent_recheck`` seconds until it appears.
        ``on_change(kind, key)`` is called after each applied watch event (``key``: the pod's
        uid, else the object's ``namespace/name``) and after each list (``key`` empty), so a
        consumer can react to a change at once instead of polling the cache.
        """
        self.state = state
        self.ledger = ledger
        self.metrics = metrics
        self.kind_settings = kind_settings or NodeKindSettings()
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self.on_change = on_change
        core = client.CoreV1Api(api)
        apps = client.AppsV1Api(api)
        custom = client.CustomObjectsApi(api)
        kinds: list[tuple[str, Callable[..., Awaitable[Any]], Any, Any]] = [
            ("nodes", core.list_node, self._replace_nodes, self._event_nodes),
            ("pods", core.list_pod_for_all_namespaces, self._replace_pods, self._event_pods),
            (
                "statefulsets",
                apps.list_stateful_set_for_all_namespaces,
                self._replace_statefulsets,
                self._event_statefulsets,
            ),
        ]
        if watch_policies:
            kinds.append(
                (
                    "resourcepolicies",
                    functools.partial(custom.list_cluster_custom_object, GROUP, VERSION, PLURAL),
                    self._replace_policies,
                    self._event_policies,
                )
            )
        self._kinds = tuple(
            ListWatch(
                name,
                lister,
                replace=replace,
                apply=functools.partial(self._applied, name, apply),
                on_listed=functools.partial(self._listed, name),
                on_restart=functools.partial(self._restarted, name),
                on_stale=self._unsync,
                optional=name == "resourcepolicies",
                clock=self._clock,
                sleep=sleep,
                backoff=backoff,
                rand=rand,
                watch_timeout=watch_timeout,
                staleness=staleness,
                absent_recheck=absent_recheck,
            )
            for name, lister, replace, apply in kinds
        )
        self._synced = asyncio.Event()

    async def run(self) -> None:
        """Follow every kind until cancelled (hand it to the app lifespan)."""
        async with asyncio.TaskGroup() as group:
            for kind in self._kinds:
                group.create_task(kind.run(), name=f"watch-{kind.name}")

    async def wait_synced(self) -> None:
        await self._synced.wait()

    def _restarted(self, name: str, reason: str) -> None:
        self.metrics.watch_restarts.labels(name, reason).inc()

    def _unsync(self) -> None:
        """A kind went stale: the cache is not synced until each stale kind has listed again."""
        if self.state.synced:
            self.state.synced = False
            self.metrics.synced.set(0)

    def _listed(self, name: str) -> None:
        if not self.state.synced and all(k.listed for k in self._kinds):
            self.state.synced = True
            self.metrics.synced.set(1)
            log.info(
                "synced",
                extra={
                    "nodes": len(self.state.nodes),
                    "pods": len(self.state.pods),
                    "policies": len(self.state.policies),
                },
            )
        if all(k.listed for k in self._kinds):
            self._synced.set()
        self._update_gauges()
        if self.on_change is not None:
            self.on_change(name, "")

    def _applied(
        self, name: str, apply: Callable[[str, RawObject], None], kind: str, obj: RawObject
    ) -> None:
        apply(kind, obj)
        self._update_gauges()
        if self.on_change is not None:
            key = _meta(obj).get("uid") if name == "pods" else _describe(obj)
            self.on_change(name, str(key or ""))

    def _update_gauges(self) -> None:
        self.ledger.expire(self._clock())
        self.metrics.ledger_size.set(len(self.ledger))

    # nodes
    def _replace_nodes(self, items: list[RawObject]) -> None:
        nodes = []
        for raw in items:
            try:
                nodes.append(node_from_dict(raw, self.kind_settings))
            except ValueError as err:
                log.warning(
                    "skipping node: %s", err, extra={"node": _describe(raw), "error": str(err)}
                )
        known = self.state.nodes
        arrived = [n.name for n in nodes if n.name not in known]
        self.state.replace(nodes=nodes)
        for name in arrived:
            self._node_known(name)

    def _event_nodes(self, kind: str, raw: RawObject) -> None:
        if kind == "DELETED":
            self.state.remove_node(str(_meta(raw).get("name")))
            return
        try:
            node = node_from_dict(raw, self.kind_settings)
        except ValueError as err:
            log.warning("skipping node: %s", err, extra={"node": _describe(raw), "error": str(err)})
            return
        arrived = node.name not in self.state.nodes
        self.state.upsert_node(node)
        if arrived:
            self._node_known(node.name)

    def _node_known(self, name: str) -> None:
        """The pods bound there now count themselves: drop the reservations held for them."""
        for pod in tuple(self.state.pods_on(name)):
            self.ledger.confirm(pod.uid)

    # pods
    def _replace_pods(self, items: list[RawObject]) -> None:
        before = set(self.state.pods)
        pods = [pod for raw in items if (pod := self._parse_pod(raw)) is not None]
        self.state.replace(pods=pods)
        for uid in before - set(self.state.pods):
            self.ledger.release(uid)
        for pod in pods:
            self._seen(pod)

    def _event_pods(self, kind: str, raw: RawObject) -> None:
        if kind == "DELETED":
            uid = str(_meta(raw).get("uid") or "")
            self.state.remove_pod(uid)
            self.ledger.release(uid)
            return
        pod = self._parse_pod(raw)
        if pod is None:
            return
        self.state.upsert_pod(pod)
        self._seen(pod)

    def _seen(self, pod: Pod) -> None:
        if pod.node_name:
            known = pod.node_name in self.state.nodes
            self.ledger.seen_bound(pod.uid, node=pod.node_name, node_known=known)

    def _parse_pod(self, raw: RawObject) -> Pod | None:
        try:
            return pod_from_dict(raw)
        except ValueError as err:
            log.warning("skipping pod: %s", err, extra={"pod": _describe(raw), "error": str(err)})
            return None

    # statefulsets: only spec.ordinals.start matters
    def _replace_statefulsets(self, items: list[RawObject]) -> None:
        starts = [s for raw in items if (s := self._parse_statefulset(raw)) is not None]
        self.state.ordinal_starts.clear()
        for workload, start in starts:
            self.state.set_ordinal_start(workload, start)

    def _event_statefulsets(self, kind: str, raw: RawObject) -> None:
        parsed = self._parse_statefulset(raw)
        if parsed is not None:
            workload, start = parsed
            self.state.set_ordinal_start(workload, 0 if kind == "DELETED" else start)

    def _parse_statefulset(self, raw: RawObject) -> tuple[WorkloadKey, int] | None:
        try:
            return statefulset_start(raw)
        except ValueError as err:
            log.warning(
                "skipping StatefulSet: %s",
                err,
                extra={"statefulset": _describe(raw), "error": str(err)},
            )
            return None

    # policies
    def _replace_policies(self, items: list[RawObject]) -> None:
        policies = [p for raw in items if (p := self._parse_policy(raw)) is not None]
        self.state.set_policies(policies)

    def _event_policies(self, kind: str, raw: RawObject) -> None:
        if kind == "DELETED":
            self.state.remove_policy(_describe(raw))
            return
        policy = self._parse_policy(raw)
        if policy is not None:  # an invalid edit keeps the last valid version
            self.state.upsert_policy(policy)

    def _parse_policy(self, raw: RawObject) -> ResourcePolicy | None:
        try:
            return policy_from_dict(raw)
        except ValueError as err:
            log.warning("skipping invalid ResourcePolicy: %s", err, extra={"error": str(err)})
            return None


def _error_text(err: BaseException) -> str:
    if isinstance(err, ApiException):
        return f"{err.status} {err.reason}"
    return f"{type(err).__name__}: {err}"


# -- binding --------------------------------------------------------------------------------------
class ApiBinder:
    """``extender.ports.Binder`` through ``POST pods/{name}/binding``, as kube-scheduler binds."""

    def __init__(self, api: ApiClient) -> None:
        self._core = client.CoreV1Api(api)

    async def bind(self, *, namespace: str, name: str, uid: str, node: str) -> None:
        body = client.V1Binding(
            metadata=client.V1ObjectMeta(name=name, namespace=namespace, uid=uid or None),
            target=client.V1ObjectReference(api_version="v1", kind="Node", name=node),
        )
        try:
            # Raw response: the server answers with a Status, which is no V1Binding.
            response: Any = await self._core.create_namespaced_pod_binding(
                name, namespace, body, _preload_content=False
            )
            async with response:
                if 200 <= response.status < 300:
                    return
                text = await response.text()
        except ApiException as err:
            raise BindError(_status_message(err.status, err.body or err.reason)) from err
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            raise BindError(f"binding {namespace}/{name} to {node}: {_error_text(err)}") from err
        raise BindError(_status_message(response.status, text))


def _status_message(status: int, body: Any) -> str:
    return f"{status}: {_server_message(body)}"


def _server_message(body: Any) -> str:
    """The ``message`` of the Status an error response carries, else the body as it is."""
    try:
        message = json.loads(body).get("message")
    except (TypeError, ValueError, AttributeError):
        message = None
    return str(message or body)


# -- pod-deletion-cost ----------------------------------------------------------------------------
class DeletionCostReconciler:
    """Keeps pod-deletion-cost on the pods of managed Deployments/ReplicaSets (best effort)."""

    def __init__(
        self,
        api: ApiClient,
        state: ClusterState,
        *,
        metrics: Metrics,
        interval: float = 15.0,
        max_patches_per_second: float = 5.0,
        burst: int = 10,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        wall: Clock = time.time,
    ) -> None:
        """``clock``: the rate limit's (the event loop's); ``wall``: Unix seconds, the clock of
        the pods' creation timestamps (``desired_costs``' ``now``)."""
        self._core = client.CoreV1Api(api)
        self._wall = wall
        self.state = state
        self.metrics = metrics
        self.interval = interval
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self._sleep = sleep or asyncio.sleep
        self._rate = max_patches_per_second
        self._burst = burst
        self._bucket: TokenBucket | None = None
        self._written: dict[str, str] = {}  # uid -> value patched, until the watch shows it

    async def run(self) -> None:
        while True:
            if self.state.synced:
                await self.reconcile_once()
            await self._sleep(self.interval)

    async def reconcile_once(self) -> int:
        """One pass over every policy; returns how many annotations were written."""
        todo: list[tuple[int, Pod]] = []
        now = self._wall()
        for policy, workload_pods in self._managed():
            pods = {p.uid: p for p in workload_pods}
            desired = desired_costs(policy, pods=pods.values(), nodes=self.state.nodes, now=now)
            for uid, cost in changed_costs(desired, pods).items():
                if self._written.get(uid) != str(cost):  # else written, not yet seen
                    todo.append((cost, pods[uid]))
        # Lowest first, across workloads: a pod that must go first and is not written yet
        # costs 0 like every first-unit pod, so it is the one to write before the others.
        todo.sort(key=lambda item: item[0])
        written = 0
        for cost, pod in todo:
            if await self._patch(pod, cost):
                written += 1
        self._forget_seen()
        return written

    def _managed(self) -> list[tuple[ResourcePolicy, list[Pod]]]:
        policies = self.state.policies
        if not policies:
            return []
        groups: dict[WorkloadKey, ResourcePolicy] = {}
        for pod in self.state.pods.values():
            workload = pod.workload
            if workload is None or workload.kind not in _MANAGED_KINDS or workload in groups:
                continue
            policy = policy_for(policies, pod)
            if policy is not None:
                groups[workload] = policy
        return [
            (policy, [p for p in self.state.workload_pods(w) if policy_for(policies, p) is policy])
            for w, policy in groups.items()
        ]

    async def _patch(self, pod: Pod, cost: int) -> bool:
        now = self._clock()
        if self._bucket is None:
            self._bucket = TokenBucket(rate=self._rate, burst=self._burst, now=now)
        delay = self._bucket.take(now)
        if delay > 0:
            await self._sleep(delay)
        body = {"metadata": {"annotations": {ANNOTATION: str(cost)}}}
        try:
            response: Any = await self._core.patch_namespaced_pod(
                pod.name, pod.namespace, body, _preload_content=False
            )
            async with response:
                ok = 200 <= response.status < 300
                detail = "" if ok else await response.text()
        except (*_NETWORK_ERRORS, ValueError) as err:
            ok, detail = False, _error_text(err)
        if not ok:
            self.metrics.deletion_cost_patches.labels("error").inc()
            log.warning(
                "pod-deletion-cost patch of %s failed: %s",
                pod.key,
                detail,
                extra={"pod": pod.key, "error": detail},
            )
            return False
        self.metrics.deletion_cost_patches.labels("written").inc()
        self._written[pod.uid] = str(cost)
        return True

    def _forget_seen(self) -> None:
        for uid, value in list(self._written.items()):
            pod = self.state.pods.get(uid)
            if pod is None or pod.annotations.get(ANNOTATION) == value:
                del self._written[uid]


# -- configuration --------------------------------------------------------------------------------
async def load_kube_config(kubeconfig: str | None = None) -> ApiClient:
    """An ``ApiClient`` for the given kubeconfig, else in-cluster, else ``$KUBECONFIG``/~/.kube."""
    configuration = client.Configuration()
    if kubeconfig:
        await config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        load_incluster: Any = config.load_incluster_config  # untyped
        load_incluster(client_configuration=configuration)
    else:
        await config.load_kube_config(
            config_file=_default_kubeconfig(), client_configuration=configuration
        )
    return ApiClient(configuration)


def _default_kubeconfig() -> str:
    """``$KUBECONFIG`` as it is now (the library reads it once, at import), else ~/.kube/config."""
    default: str = os.environ.get("KUBECONFIG") or kube_config.KUBE_CONFIG_DEFAULT_LOCATION
    if not any(os.path.isfile(os.path.expanduser(p)) for p in default.split(os.pathsep)):
        raise config.ConfigException(
            f"--kubeconfig: none given, not inside a cluster, and no file at {default}"
        )
    return default
