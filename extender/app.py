"""The extender's HTTP application: Starlette routes over the pure verbs.

The app only assembles: it reads a bounded body, decodes it (``extender.wire``), asks the verb
(``extender.verbs``) and encodes the outcome.  Bad input is a 4xx whose plain-text body names the
problem; expected outcomes (refused nodes, unknown nodes, an unsynced cache) are 200 answers.
The lifespan runs the background tasks it is given (the watch, the reconciler) and expires the
ledger periodically; handlers never await anything but the request body and the binder.

Refusals (``--refusals``, default ``when-unschedulable``): a filter answer that accepts at least
one node (``NodeNames``, or ``Nodes`` in full-Node mode) carries neither the policy's refusals
(``FailedAndUnresolvableNodes``) nor the names the cache does not know (``FailedNodes``): both are
``null``, as Go encodes a nil map.  An answer that accepts no node carries both maps with every
reason, exactly as ``--refusals always`` does for every answer.  Why nothing is lost, in
kube-scheduler (``pkg/scheduler/schedule_one.go``): ``findNodesThatPassExtenders`` copies the
maps into the cycle's ``NodeToStatus`` and keeps the extender's list as the feasible nodes; that
``NodeToStatus`` is read only when no node is left (``schedulePod`` returns a ``FitError`` whose
message counts the reasons, and ``schedulingCycle`` hands it to the PostFilter plugins, i.e.
preemption).  With a feasible node left the cycle goes on to score and bind, and the maps are
never read (apart from the node count in a verbose "Successfully bound" log line).  If a later
filtering extender empties the list, the nodes we refused are absent from ``NodeToStatus``, and an
absent node counts as ``UnschedulableAndUnresolvable`` (kubernetes PR #125197, in v1.31 and in the
1.27-1.30 patch releases that took its cherry-picks; ``NewDefaultNodeToStatus`` since PR #126022):
what we would have sent for a refusal, so preemption still leaves those nodes alone.  An unknown
name would have been ``Unschedulable`` (preemption may try it), and our preempt verb drops
unknown nodes anyway.  Before that PR, preemption's node walk took a node absent from the map
for a candidate (its nil status is not ``UnschedulableAndUnresolvable``), so an operator who runs
several filtering extenders on such a kube-scheduler sets ``--refusals always``.  The default saves the 455 kB map (4,999 ECS nodes with the reason) of
every ECI decision at 5,000 nodes, and kube-scheduler's decoding of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import msgspec
from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from . import wire
from .http1 import Answer, Body
from .ledger import Ledger
from .metrics import Metrics
from .model import ModelError, Node, Pod
from .policy import ResourcePolicy
from .ports import BackgroundTask, Binder, BindError, Clock
from .probes import probe_routes
from .settings import Settings
from .snapshot import ClusterState
from .verbs import (
    Caches,
    FilterOutcome,
    Offer,
    filter_pod,
    group_offer,
    preempt,
    prioritize,
    record_bind,
)
from .webhook import WebhookError, WebhookSettings, review

__all__ = ["ROUTES", "VERBS", "Answer", "Body", "ExtenderApp", "create_app"]

VERBS = ("filter", "prioritize", "preempt", "bind", "mutate")
ROUTES = (
    "/filter",
    "/prioritize",
    "/preempt",
    "/bind",
    "/mutate",
    "/healthz",
    "/readyz",
    "/metrics",
)

log = logging.getLogger("spillover.extender")
_DECODE_ANY = msgspec.json.Decoder()
_DECODE_OBJECT = msgspec.json.Decoder(dict[str, Any])
_OfferFor = Callable[[ResourcePolicy], Offer]


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
    if length is not None:
        if not length.isdigit():
            raise _BadRequest(
                400, f"invalid Content-Length header {length.decode(errors='replace')!r}"
            )
        if int(length) > limit:
            raise _BadRequest(
                413, f"request body of {int(length)} bytes exceeds the {limit}-byte limit"
            )
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _BadRequest(400, "client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BadRequest(413, f"request body exceeds the {limit}-byte limit")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _nonempty(body: bytes) -> bytes:
    if not body:
        raise _BadRequest(400, "empty request body: expected a JSON object")
    return body


async def _respond(send: Send, status: int, content_type: bytes, body: Body) -> None:
    if not isinstance(body, bytes):
        body = b"".join(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


_JSON = b"application/json"
_TEXT = b"text/plain; charset=utf-8"


class _Verb:
    """A verb as a bare ASGI endpoint (the hot path skips Request/Response objects), and, when
    its handler does not await, as a plain function of the body (``answer``) that a server may
    call without ASGI (``extender.http1``)."""

    def __init__(
        self,
        name: str,
        handle: Callable[[bytes], Body] | Callable[[bytes], Awaitable[bytes]],
        *,
        metrics: Metrics,
        limit: int,
    ) -> None:
        self.name = name
        self.awaits = inspect.iscoroutinefunction(handle)
        self._plain = cast(Callable[[bytes], Body], handle)
        self._awaiting = cast(Callable[[bytes], Awaitable[bytes]], handle)
        self.limit = limit
        self.latency = metrics.latency.labels(name)
        self.requests = metrics.requests
        self.ok = metrics.requests.labels(name, "200")

    def answer(self, body: bytes) -> Answer:
        """The answer to ``body``, errors included (for a handler that does not await)."""
        start = time.perf_counter()
        try:
            outcome: Body | Exception = self._plain(_nonempty(body))
        except Exception as err:
            outcome = err
        return self._finish(start, outcome)

    async def _answer_awaiting(self, body: bytes) -> Answer:
        start = time.perf_counter()
        try:
            outcome: Body | Exception = await self._awaiting(_nonempty(body))
        except Exception as err:
            outcome = err
        return self._finish(start, outcome)

    def _finish(self, start: float, outcome: Body | Exception) -> Answer:
        if isinstance(outcome, Exception):
            answer = self._failed(outcome)
        else:
            self.ok.inc()
            answer = (200, _JSON, outcome)
        self.latency.observe(time.perf_counter() - start)
        return answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await _read_body(scope, receive, self.limit)
        except _BadRequest as err:
            answer = self._failed(err)
        else:
            answer = await self._answer_awaiting(body) if self.awaits else self.answer(body)
        await _respond(send, *answer)

    def _failed(self, err: Exception) -> Answer:
        """The 4xx / 500 answer to ``err``: bad input names the problem, a bug is logged."""
        if isinstance(err, _BadRequest):
            status, message = err.status, err.message
        elif isinstance(err, (wire.WireError, ModelError, WebhookError)):
            status, message = 400, str(err)
        elif isinstance(err, UnicodeDecodeError):  # msgspec raises it inside strings
            status, message = 400, f"request body is not valid UTF-8 JSON: {err}"
        elif isinstance(err, RecursionError):  # msgspec's answer to JSON nested too deeply
            status, message = 400, "request body is JSON nested too deeply"
        else:  # a bug: answer it here so the keep-alive connection survives
            log.exception("internal error", extra={"verb": self.name}, exc_info=err)
            status, message = 500, f"internal error in {self.name}; see the extender log"
        self.requests.labels(self.name, str(status)).inc()
        log.info("rejected request", extra={"verb": self.name, "status": status, "error": message})
        return status, _TEXT, message.encode()


@dataclass(frozen=True, slots=True)
class _Placement:
    """A filter / prioritize request: the raw offered nodes, the pod, how to group the nodes for
    a policy, and (full-Node mode) the raw Node items by name, filled by the grouping."""

    nodes: msgspec.Raw
    names: msgspec.Raw
    pod: Pod
    offer: _OfferFor
    items: dict[str, msgspec.Raw] | None = None


class _Handlers:
    """The routes' behaviour, sharing the state, caches and settings of one app."""

    def __init__(
        self,
        *,
        state: ClusterState,
        ledger: Ledger,
        settings: Settings,
        binder: Binder | None,
        clock: Clock,
        metrics: Metrics,
    ) -> None:
        self.state = state
        self.ledger = ledger
        self.settings = settings
        self.binder = binder
        self.clock = clock
        self.metrics = metrics
        self.caches = Caches(kind_settings=settings.kinds)
        self.webhook = WebhookSettings(
            eci_taint_key=settings.kinds.eci_taint_key,
            eci_taint_value=settings.eci_taint_value,
            managed_resource=settings.managed_resource,
        )
        self._decisions: dict[tuple[str, str], Any] = {}
        self.names = self.caches.names
        self._always_refusals = settings.refusals == "always"

    def _decided(self, unit: str, reason: str) -> None:
        child = self._decisions.get((unit, reason))
        if child is None:
            child = self._decisions[(unit, reason)] = self.metrics.decisions.labels(unit, reason)
        child.inc()

    # -- verbs ----------------------------------------------------------------------------------
    def _pod(self, raw: Mapping[str, Any]) -> Pod:
        return self.caches.pod(raw)

    def _by_names(self, raw: msgspec.Raw, names: wire.NameList | None = None) -> _OfferFor:
        """How to group offered names for a policy (the list is decoded only if a policy asks)."""

        def by_names(policy: ResourcePolicy) -> Offer:
            nonlocal names  # matched against the known lists once, when a policy first asks
            names = self.names.known(names) if names is not None else self.names.parse(raw)
            return self.caches.offer(policy, state=self.state, names=names)

        return by_names

    def _by_nodes(self, nodes_raw: msgspec.Raw) -> tuple[_OfferFor, dict[str, msgspec.Raw]]:
        """How to group offered full Node objects for a policy, and the raw items by name."""
        items: dict[str, msgspec.Raw] = {}  # filled when a policy needs the offered nodes

        def by_nodes(policy: ResourcePolicy) -> Offer:
            offered: dict[str, Node] = {}
            for head, item in wire.decode_node_heads(nodes_raw):
                name = head.metadata.name
                items[name] = item
                if name not in self.state.nodes:
                    offered[name] = self.caches.node(
                        functools.partial(_DECODE_OBJECT.decode, item),
                        name=name,
                        version=head.metadata.resourceVersion,
                    )
            return group_offer(policy, items, nodes=self.state.nodes, offered=offered)

        return by_nodes, items

    def _placement(self, body: bytes) -> _Placement:
        """The filter / prioritize request: its args, its pod and how to group its nodes.

        The compact body kube-scheduler sends takes a path that neither decodes a Pod seen before
        nor scans a name list seen before (``wire.locate_node_names``, ``wire.NameLists``); any
        other body, or one that is not what it looked like, is decoded as a whole.
        """
        located = wire.locate_node_names(body)
        if located is not None:
            head, start = located
            end = len(body) - 1
            raw_names = msgspec.Raw(memoryview(body)[start:end])  # a view: the list is not copied
            try:
                args = wire.decode_raw_args(head, node_names=raw_names)
                names = self.names.read_at(body, start, end)
            except (wire.WireError, UnicodeDecodeError):
                pass  # decoded as a whole below, which names the problem as usual
            else:
                pod = self.caches.pod_json(bytes(args.Pod))
                return _Placement(args.Nodes, raw_names, pod, self._by_names(raw_names, names))
        full = wire.decode_args(body)
        pod = self._pod(full.Pod)
        if not wire.is_null(full.NodeNames):
            return _Placement(full.Nodes, full.NodeNames, pod, self._by_names(full.NodeNames))
        offer, items = self._by_nodes(full.Nodes)
        return _Placement(full.Nodes, full.NodeNames, pod, offer, items)

    def filter(self, body: bytes) -> Body:
        placement = self._placement(body)
        pod = placement.pod
        outcome = filter_pod(
            state=self.state,
            ledger=self.ledger,
            caches=self.caches,
            pod=pod,
            offer=placement.offer,
            now=self.clock(),
            failure_policy=self.settings.failure_policy,
        )
        self._decided(outcome.unit, outcome.reason)
        if outcome.reason not in ("unmanaged", "first_unit"):
            log.debug("filter", extra={"pod": pod.key, "unit": outcome.unit, "why": outcome.detail})
        return self._encode_filter(placement, outcome)

    def _encode_filter(self, placement: _Placement, outcome: FilterOutcome) -> Body:
        """The answer as pieces: the offered list, the memoised list of a unit and the memoised
        refusal maps are written as they are, never joined into one more 120-450 kB copy.

        With ``--refusals when-unschedulable`` (the default) an answer that accepts a node
        carries neither map (both ``null``): see "Refusals" in the module docstring."""
        if outcome.error:
            return wire.encode_filter_result(error=outcome.error)
        if outcome.passed:
            return wire.filter_result_parts(nodes=placement.nodes, node_names=placement.names)
        maps = self._always_refusals or not outcome.accepted
        items = placement.items
        if items is None:
            if outcome.accepted:  # prioritize offers this list back: know it by its bytes
                encoded = wire.encode_names(outcome.accepted, memo=self.caches.encodings)
                self.names.add(encoded, outcome.accepted)
                if not maps:
                    return wire.filter_result_parts(node_names=encoded)
            return wire.filter_names_parts(
                outcome.accepted,
                refused=outcome.unresolvable,
                failed=outcome.failed,
                memo=self.caches.encodings,
            )
        nodes = wire.encode_node_list([items[name] for name in outcome.accepted])
        if not maps:
            return wire.encode_filter_result(nodes=nodes)
        unresolvable = wire.grouped_map(outcome.unresolvable, memo=self.caches.encodings)
        failed = outcome.failed or None
        return wire.encode_filter_result(nodes=nodes, failed=failed, unresolvable=unresolvable)

    def prioritize(self, body: bytes) -> bytes:
        placement = self._placement(body)
        outcome = prioritize(
            state=self.state,
            ledger=self.ledger,
            caches=self.caches,
            pod=placement.pod,
            offer=placement.offer,
            now=self.clock(),
        )
        return wire.encode_scores(outcome.hosts, outcome.score, memo=self.caches.encodings)

    def preempt(self, body: bytes) -> bytes:
        args = wire.decode_preemption_args(body)
        pod = self._pod(args.Pod)
        candidates: dict[str, tuple[tuple[str, ...], int]] = {}
        if args.NodeNameToMetaVictims is not None:
            for node, meta in args.NodeNameToMetaVictims.items():
                candidates[node] = (tuple(p.UID for p in meta.Pods), meta.NumPDBViolations)
        elif args.NodeNameToVictims is not None:
            for node, victims in args.NodeNameToVictims.items():
                uids = tuple(_victim_uid(p, node) for p in victims.Pods)
                candidates[node] = (uids, victims.NumPDBViolations)
        outcome = preempt(
            state=self.state,
            ledger=self.ledger,
            caches=self.caches,
            pod=pod,
            candidates=candidates,
            now=self.clock(),
        )
        if outcome.dropped:
            log.info("preempt", extra={"pod": pod.key, "dropped": dict(outcome.dropped)})
        return wire.encode_preemption_result(
            {
                node: wire.MetaVictims([wire.MetaPod(uid) for uid in uids], violations)
                for node, (uids, violations) in outcome.kept.items()
            }
        )

    async def bind(self, body: bytes) -> bytes:
        args = wire.decode_binding_args(body)
        if self.binder is None:
            return wire.encode_binding_result(
                "binding is not enabled on this extender (start it with --bind)"
            )
        try:
            await self.binder.bind(
                namespace=args.PodNamespace, name=args.PodName, uid=args.PodUID, node=args.Node
            )
        except BindError as err:
            log.warning("bind failed", extra={"pod": f"{args.PodNamespace}/{args.PodName}"})
            return wire.encode_binding_result(str(err) or "binding failed")
        record_bind(ledger=self.ledger, uid=args.PodUID, node=args.Node, now=self.clock())
        return wire.encode_binding_result()

    def mutate(self, body: bytes) -> bytes:
        try:
            raw = _DECODE_ANY.decode(body)
        except msgspec.DecodeError as err:
            raise WebhookError(f"AdmissionReview: malformed JSON: {err}") from None
        answer = review(
            raw,
            policy_for=lambda pod: self.caches.policy(self.state, pod),
            settings=self.webhook,
            eci_taints=lambda: self.caches.eci_taints(self.state),
        )
        return wire.encode(answer)

    # -- probes ---------------------------------------------------------------------------------
    def not_ready(self) -> str | None:
        return None if self.state.synced else "cluster cache not synced yet"

    def scrape(self) -> bytes:
        self.metrics.ledger_size.set(len(self.ledger))
        self.metrics.synced.set(1 if self.state.synced else 0)
        return bytes(generate_latest(self.metrics.registry))


def _victim_uid(pod: Mapping[str, Any], node: str) -> str:
    meta = pod.get("metadata")
    uid = meta.get("uid") if isinstance(meta, Mapping) else None
    if not isinstance(uid, str) or not uid:
        raise wire.WireError(f"NodeNameToVictims[{node!r}]: every victim needs metadata.uid")
    return uid


async def _not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    path = request.url.path
    if exc.status_code == 405:
        return PlainTextResponse(
            f"method {request.method} is not allowed on {path}",
            status_code=405,
            headers=dict(exc.headers or {}),
        )
    if exc.status_code == 404:
        return PlainTextResponse(
            f"unknown path {path}; this extender serves {' '.join(ROUTES)}", status_code=404
        )
    return PlainTextResponse(str(exc.detail), status_code=exc.status_code)


async def _run(task: BackgroundTask) -> None:
    try:
        await task()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("background task failed", extra={"task": getattr(task, "__name__", "")})
        raise


def create_app(
    *,
    state: ClusterState,
    ledger: Ledger,
    settings: Settings,
    binder: Binder | None = None,
    background: Iterable[BackgroundTask] = (),
    clock: Clock = time.monotonic,
    metrics: Metrics | None = None,
) -> ExtenderApp:
    metrics = metrics or Metrics()
    handlers = _Handlers(
        state=state, ledger=ledger, settings=settings, binder=binder, clock=clock, metrics=metrics
    )
    tasks = tuple(background)
    verbs = {
        name: _Verb(name, getattr(handlers, name), metrics=metrics, limit=settings.max_body_bytes)
        for name in VERBS
    }
    prefixes = [""]
    prefix = settings.url_prefix.strip("/")
    if prefix:
        prefixes.append("/" + prefix)
    routes = [
        Route(f"{p}/{name}", endpoint, methods=["POST"])
        for p in prefixes
        for name, endpoint in verbs.items()
    ]
    routes += probe_routes(not_ready=handlers.not_ready, scrape=handlers.scrape)

    async def expire_ledger() -> None:
        while True:
            await asyncio.sleep(settings.expire_interval)
            expired = ledger.expire(clock())
            metrics.ledger_size.set(len(ledger))
            if expired:
                log.info("reservations expired", extra={"count": expired})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        running = [asyncio.create_task(_run(task)) for task in (*tasks, expire_ledger)]
        try:
            yield
        finally:
            for task in running:
                task.cancel()
            for task in running:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    return ExtenderApp(
        {route.path: route.endpoint for route in routes if isinstance(route.endpoint, _Verb)},
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _not_found},
    )


class ExtenderApp(Starlette):
    """Starlette, with the verbs' POSTs handed straight to their endpoint.

    kube-scheduler calls filter and prioritize for every pod; the router's walk over the routes
    and the two exception middlewares cost more than the answer to a known case, and a verb
    handles its own errors anyway.  Everything else (other methods, the probes, unknown paths)
    goes through Starlette as before.  ``direct_routes`` offers the verbs that never await to a
    server that can call them without ASGI (``extender.http1``).
    """

    def __init__(self, verbs: Mapping[str, _Verb], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._verbs: Mapping[str, ASGIApp] = dict(verbs)
        self._direct = {
            path.encode(): verb.answer for path, verb in verbs.items() if not verb.awaits
        }

    def direct_routes(self) -> dict[bytes, Callable[[bytes], Answer]]:
        """POST path -> the verb's answer to a body, for the verbs that never await."""
        return dict(self._direct)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            verb = self._verbs.get(scope["path"])
            if verb is not None:
                await verb(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
