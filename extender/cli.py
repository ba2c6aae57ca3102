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
import importlib
import importlib.util
import logging
import os
import pickle
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .ledger import Ledger
from .logs import configure
from .metrics import Metrics
from .model import ModelError, NodeKindSettings
from .policies import PolicyError, load_policies
from .ports import BackgroundTask, Binder, BindError
from .settings import DEFAULT_MAX_BODY_BYTES, DEFAULT_PORT, DEFAULT_SERVER, SERVERS, Settings
from .snapshot import ClusterState, load_cluster
from .verbs import FAILURE_POLICIES

__all__ = ["ENV_PREFIX", "SettingsError", "build", "main", "parse_settings"]

ENV_PREFIX = "SPILLOVER_"
log = logging.getLogger("extender.cli")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


class SettingsError(ValueError):
    """Settings the service cannot start with; the message names the flag, variable or file."""


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

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.dest.upper()


_FLAGS = (
    _Flag("host", str, "0.0.0.0", "address to listen on"),
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


def _env_value(flag: _Flag, environ: os._Environ[str] | dict[str, str]) -> Any:
    raw = environ.get(flag.env)
    if raw is None:
        return flag.default
    try:
        if flag.kind is bool:
            if raw.strip().lower() not in _TRUE + _FALSE:
                raise ValueError
            return raw.strip().lower() in _TRUE
        value = flag.kind(raw)
    except ValueError:
        raise SettingsError(f"{flag.env}={raw!r} is not a valid {flag.kind.__name__}") from None
    if flag.choices and value not in flag.choices:
        raise SettingsError(f"{flag.env}={raw!r} must be one of {', '.join(flag.choices)}")
    return value


def _parser(environ: os._Environ[str] | dict[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spillover-extender",
        description="Spillover kube-scheduler extender: keep N replicas on ECS, overflow to ECI.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve the extender and the admission webhook",
        description="Every flag can also be set with the environment variable shown.",
    )
    for flag in _FLAGS:
        default = _env_value(flag, environ)
        if flag.kind is bool:
            serve.add_argument(
                f"--{flag.name}",
                action=argparse.BooleanOptionalAction,
                default=default,
                help=f"{flag.help} (env {flag.env})",
            )
        else:
            serve.add_argument(
                f"--{flag.name}",
                type=flag.kind,
                default=default,
                choices=flag.choices,
                metavar=flag.dest.upper() if flag.choices is None else None,
                help=f"{flag.help} (env {flag.env}; default {flag.default!r})",
            )
    return parser


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
        raise SettingsError("--eci-label must be KEY=VALUE and --eci-taint-key non-empty")
    kinds = NodeKindSettings(label_key, label_value, taint_key)
    return _validated(Settings(**values, kinds=kinds))


def _validated(settings: Settings) -> Settings:
    if not 0 < settings.port < 65536:
        raise SettingsError(f"--port {settings.port} is not a TCP port")
    if settings.reservation_ttl <= 0:
        raise SettingsError("--reservation-ttl must be positive")
    if settings.watch_staleness <= 0:
        raise SettingsError("--watch-staleness must be positive")
    if settings.max_body_bytes <= 0:
        raise SettingsError("--max-body-bytes must be positive")
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise SettingsError("--tls-cert and --tls-key go together")
    for name in ("tls_cert", "tls_key", "policies", "cluster", "kubeconfig"):
        path = getattr(settings, name)
        if path and not os.path.isfile(path):
            raise SettingsError(f"--{name.replace('_', '-')} {path}: no such file")
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
                raise SettingsError("--bind needs the Kubernetes API: it cannot go with --cluster")
            return state, ledger, None, ()
    except (PolicyError, ModelError) as err:
        raise SettingsError(str(err)) from None
    if importlib.util.find_spec("extender.kube") is None:
        raise SettingsError("no --cluster given and extender.kube is not available")
    state = ClusterState(synced=False)
    if policies is not None:
        state.set_policies(policies)
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
        kube: Any = importlib.import_module("extender.kube")
        attempt = 0
        while True:
            try:
                await self._connected(kube)
                attempt = 0
            except Exception as err:  # a bad kubeconfig or a lost API server: log, wait, retry
                delay = kube.backoff_delay(attempt, kube.BackoffSettings(), rand=random.random())
                attempt += 1
                log.error("Kubernetes API connection failed (%s), retrying in %.1fs", err, delay)
                await asyncio.sleep(delay)

    async def _connected(self, kube: Any) -> None:
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


def main(argv: Sequence[str] | None = None) -> None:
    try:
        settings = parse_settings(argv)
        configure(settings.log_level)
        _serve(settings)  # builds everything before the server starts, so bad files exit 2
    except SettingsError as err:
        print(f"spillover-extender: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
