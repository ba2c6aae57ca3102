"""``spillover-extender serve``: settings from flags or ``SPILLOVER_*`` variables, then a server.

Every flag ``--some-flag`` can also be set with the environment variable ``SPILLOVER_SOME_FLAG``;
a flag on the command line wins.  Bad settings (a missing or invalid file, a bad value) exit
with status 2 and one message that names the file or field.

The cluster comes from ``--cluster FILE`` (a static cluster, for demos and benchmarks) or else
from the Kubernetes API through ``extender.kube``, imported only then: one background task
connects (``load_kube_config``), then runs ``ClusterWatch`` (which marks the cache synced) and the
``DeletionCostReconciler``; ``ApiBinder`` binds once connected.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import logging
import os
import pickle
import random
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .commandline import Parser, UsageError, run_main, with_environment
from .ledger import Ledger
from .logs import configure
from .metrics import Metrics
from .model import ModelError, NodeKindSettings
from .policies import PolicyError, load_policies
from .ports import BackgroundTask, Binder, BindError
from .settings import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_PORT,
    DEFAULT_REFUSALS,
    DEFAULT_SERVER,
    REFUSALS,
    SERVERS,
    Settings,
)
from .snapshot import ClusterState, load_cluster
from .verbs import FAILURE_POLICIES

__all__ = ["ENV_PREFIX", "SettingsError", "build", "main", "parse_settings"]

ENV_PREFIX = "SPILLOVER_"
log = logging.getLogger("extender.cli")


# Settings the service cannot start with; the message names the flag, variable or file.
SettingsError = UsageError


@dataclass(frozen=True, slots=True)
class _Flag:
    name: str
    kind: type
    default: Any
    help: str
    choices: tuple[str, ...] | None = None

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


_FLAGS = (
    _Flag(
        "host",
        str,
        "",
        "address to listen on (empty: 127.0.0.1 with --cluster, a static file; else 0.0.0.0)",
    ),
    _Flag("port", int, DEFAULT_PORT, "port to listen on"),
    _Flag("kubeconfig", str, "", "kubeconfig file (default: in-cluster, then ~/.kube/config)"),
    _Flag("policies", str, "", "ResourcePolicy YAML file, used instead of the CRD objects"),
    _Flag("cluster", str, "", "static cluster YAML (Nodes, Pods, ResourcePolicies), no watch"),
    _Flag("bind", bool, False, "answer the bind verb: bind pods through the API server"),
    _Flag(
        "deletion-cost",
        bool,
        True,
        "run the pod-deletion-cost reconciler (--no-deletion-cost in scheduler sidecars: one "
        "extender Deployment writing it is enough)",
    ),
    _Flag("server", str, DEFAULT_SERVER, "HTTP server running the app", SERVERS),
    _Flag("tls-cert", str, "", "TLS certificate file (PEM); serve HTTPS with --tls-key"),
    _Flag("tls-key", str, "", "TLS private key file (PEM)"),
    _Flag(
        "failure-policy",
        str,
        "error",
        "filter answer while the cache is not synced (or stale): pass everything, or an Error",
        FAILURE_POLICIES,
    ),
    _Flag(
        "refusals",
        str,
        DEFAULT_REFUSALS,
        "when a filter answer names the refused nodes and why: only when it accepts no node "
        "(enough for kube-scheduler v1.31+, see README 'Refusals'), or always (several "
        "filtering extenders on an older kube-scheduler)",
        REFUSALS,
    ),
    _Flag("reservation-ttl", float, 30.0, "seconds an unconfirmed filter reservation lives"),
    _Flag(
        "watch-staleness",
        float,
        15.0,
        "seconds a watch may be down before the extender is unready and filter follows "
        "--failure-policy (ready again once every such watch has listed again)",
    ),
    _Flag("max-body-bytes", int, DEFAULT_MAX_BODY_BYTES, "largest request body accepted (413)"),
    _Flag("log-level", str, "info", "log level", ("debug", "info", "warning", "error", "critical")),
    _Flag("url-prefix", str, "", "also serve the verbs under this path prefix"),
    _Flag("eci-label", str, "type=virtual-kubelet", "label KEY=VALUE marking ECI virtual nodes"),
    _Flag("eci-taint-key", str, "virtual-kubelet.io/provider", "taint key of ECI virtual nodes"),
    _Flag(
        "eci-taint-value",
        str,
        "",
        "the virtual nodes' taint value, for the webhook until the cache has seen a virtual node",
    ),
    _Flag(
        "managed-resource",
        str,
        "",
        "webhook adds this extended resource to managed pods (opt-in; see extender.webhook)",
    ),
)


def _parser(environ: Mapping[str, str]) -> Parser:
    parser = Parser(
        prog="spillover-extender",
        description="Spillover kube-scheduler extender: keep N replicas on ECS, overflow to ECI.",
    )
    parser.add_version()
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve the extender and the admission webhook",
        description="Every flag can also be set with the environment variable shown.",
    )
    for flag in _FLAGS:
        if flag.kind is bool:
            serve.add_argument(
                f"--{flag.name}",
                action=argparse.BooleanOptionalAction,
                default=flag.default,
                help=flag.help,
            )
        else:
            serve.add_argument(
                f"--{flag.name}",
                type=flag.kind,
                default=flag.default,
                choices=flag.choices,
                metavar=flag.dest.upper() if flag.choices is None else None,
                help=flag.help,
            )
    return with_environment(parser, ENV_PREFIX, environ)


def parse_settings(
    argv: Sequence[str] | None = None, environ: dict[str, str] | None = None
) -> Settings:
    """Settings from the command line and the environment; raises ``SettingsError``."""
    env = dict(os.environ if environ is None else environ)
    args = _parser(env).parse_args(argv)
    values = {flag.dest: getattr(args, flag.dest) for flag in _FLAGS}
    label_key, equals, label_value = values.pop("eci_label").partition("=")
    taint_key = values.pop("eci_taint_key")
    if not equals or not label_key or not taint_key:
        raise SettingsError("error: --eci-label must be KEY=VALUE and --eci-taint-key non-empty")
    kinds = NodeKindSettings(label_key, label_value, taint_key)
    if not values["host"]:
        values["host"] = "127.0.0.1" if values["cluster"] else "0.0.0.0"
    return _validated(Settings(**values, kinds=kinds))


def _validated(settings: Settings) -> Settings:
    if not 0 < settings.port < 65536:
        raise SettingsError(f"error: --port: {settings.port} is not a TCP port")
    if settings.reservation_ttl <= 0:
        raise SettingsError("error: --reservation-ttl: must be positive")
    if settings.watch_staleness <= 0:
        raise SettingsError("error: --watch-staleness: must be positive")
    if settings.max_body_bytes <= 0:
        raise SettingsError("error: --max-body-bytes: must be positive")
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise SettingsError("error: --tls-cert and --tls-key go together")
    for name in ("tls_cert", "tls_key", "policies", "cluster", "kubeconfig"):
        path = getattr(settings, name)
        if path and not os.path.isfile(path):
            raise SettingsError(f"error: --{name.replace('_', '-')}: {path}: no such file")
    return settings


def build(
    settings: Settings, metrics: Metrics
) -> tuple[ClusterState, Ledger, Binder | None, tuple[BackgroundTask, ...]]:
    """The cache, the ledger, the binder and the background tasks the settings ask for."""
    ledger = Ledger(ttl=settings.reservation_ttl)
    try:
        policies = load_policies(settings.policies) if settings.policies else None
        if settings.cluster:
            state = _compacted(load_cluster(settings.cluster, kind_settings=settings.kinds))
            if policies is not None:
                state.set_policies(policies)
            if settings.bind:
                raise SettingsError(
                    "error: --bind needs the Kubernetes API: it cannot go with --cluster"
                )
            log.info(
                "loaded",
                extra={
                    "cluster": settings.cluster,
                    "nodes": len(state.nodes),
                    "pods": len(state.pods),
                    "policies": len(state.policies),
                    "policies_file": settings.policies or None,
                },
            )
            return state, ledger, None, ()
    except (PolicyError, ModelError) as err:
        raise SettingsError(str(err)) from None
    if importlib.util.find_spec("extender.kube") is None:
        raise SettingsError("error: no --cluster given and extender.kube is not available")
    state = ClusterState(synced=False)
    if policies is not None:
        state.set_policies(policies)
        log.info("loaded", extra={"policies": len(policies), "policies_file": settings.policies})
    connection = _KubeConnection(settings=settings, state=state, ledger=ledger, metrics=metrics)
    return state, ledger, connection, (connection.run,)


def _compacted(state: ClusterState) -> ClusterState:
    """A copy of a freshly loaded cluster, made so the parse's garbage can go back to the OS.

    Parsing a large cluster file builds every object's whole JSON; the few strings the cache
    keeps end up scattered over the allocator's arenas, which then cannot be released (at 5,000
    nodes: 160 MB resident for 10 MB of live objects).  A copy packs the live objects together
    and frees the old arenas whole (about 80 MB resident).
    """
    copy: ClusterState = pickle.loads(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
    return copy


class _KubeConnection:
    """Connects to the API server inside the event loop, then watches; binds once connected."""

    def __init__(
        self, *, settings: Settings, state: ClusterState, ledger: Ledger, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.state = state
        self.ledger = ledger
        self.metrics = metrics
        self._binder: Binder | None = None

    async def run(self) -> None:
        """Connect and follow the cluster; a failed connection is retried with backoff."""
        from . import kube  # only now: the --cluster modes never load kubernetes_asyncio

        attempt = 0
        while True:
            try:
                await self._connected()
                attempt = 0
            except Exception as err:  # a bad kubeconfig or a lost API server: log, wait, retry
                delay = kube.backoff_delay(attempt, kube.BackoffSettings(), rand=random.random())
                attempt += 1
                log.error("Kubernetes API connection failed (%s), retrying in %.1fs", err, delay)
                await asyncio.sleep(delay)

    async def _connected(self) -> None:
        from . import kube

        api = await kube.load_kube_config(self.settings.kubeconfig or None)
        try:
            watch = kube.ClusterWatch(
                api,
                self.state,
                self.ledger,
                metrics=self.metrics,
                kind_settings=self.settings.kinds,
                watch_policies=not self.settings.policies,
                staleness=self.settings.watch_staleness,
            )
            self._binder = kube.ApiBinder(api)
            async with asyncio.TaskGroup() as group:
                group.create_task(watch.run())
                if self.settings.deletion_cost:
                    reconciler = kube.DeletionCostReconciler(api, self.state, metrics=self.metrics)
                    group.create_task(reconciler.run())
        finally:
            self._binder = None
            await api.close()

    async def bind(self, *, namespace: str, name: str, uid: str, node: str) -> None:
        if self._binder is None:
            raise BindError("not connected to the Kubernetes API yet")
        await self._binder.bind(namespace=namespace, name=name, uid=uid, node=node)


def _serve(settings: Settings) -> None:
    from .app import create_app
    from .server import run

    metrics = Metrics()
    state, ledger, binder, tasks = build(settings, metrics)
    # The cache is long-lived: keep it out of the collector's full passes (p99 spikes).
    gc.collect()
    gc.freeze()
    app = create_app(
        state=state,
        ledger=ledger,
        settings=settings,
        binder=binder if settings.bind else None,
        background=tasks,
        metrics=metrics,
    )
    run(app, settings)


def main(argv: Sequence[str] | None = None) -> int:
    def command() -> int:
        settings = parse_settings(argv)
        configure(settings.log_level)
        _serve(settings)  # builds everything before the server starts, so bad files exit 2
        return 0

    return run_main(command)


if __name__ == "__main__":
    sys.exit(main())
