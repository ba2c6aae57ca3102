"""``spillover-autoscaler``: ``run`` (the controller) and the offline tools, in one command.

``run --groups FILE | --groups-configmap NAME --provider kwok|ess|simulated`` loads and checks
the node-group configuration first (an invalid one exits with status 2 and one message naming
the field), connects to the cluster, serves ``/healthz``, ``/readyz`` and ``/metrics`` on
``--port``, compiles the planner's kernels (``autoscaler.kernels.warm_up``), fills the cluster
cache (``extender.kube.ClusterWatch``) and only then reports ready and runs the controller
(leader election first, unless ``--no-leader-election``).  SIGTERM releases the lease.

The other subcommands are mounted from their modules: ``forecast`` (``autoscaler.forecast_cli``),
``plan`` (``autoscaler.plan_cli``), ``record`` and ``replay`` (``autoscaler.replay.cli``),
``sweep`` (``autoscaler.sweep_cli``), imported when the parser is built so that ``main``
handles a Ctrl-C while numpy and numba load.

Every flag of every subcommand can also be set with ``SPILLOVER_AUTOSCALER_<FLAG>`` (``--dry-run``
is ``SPILLOVER_AUTOSCALER_DRY_RUN=true``); the command line wins, and ``--help`` shows each
flag's default and variable (``extender.commandline``, shared with ``spillover-extender``).  ESS credentials are never
flags: ``ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``_SECRET`` (/ ``ALIBABA_CLOUD_SECURITY_TOKEN``) when
set, else the SDK's default credential chain (RRSA/OIDC on ACK, profile, ECS RAM role).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from extender.commandline import (
    Parser,
    UsageError,
    at_least,
    fail,
    one_line,
    plain,
    run_main,
    with_environment,
)

if TYPE_CHECKING:
    import uvicorn
    from kubernetes_asyncio.client import ApiClient
    from prometheus_client import CollectorRegistry
    from starlette.applications import Starlette

    from .controller import Controller
    from .nodegroup import AutoscalerConfig
    from .providers.base import Provider
# Everything else this module needs (numpy, scipy, numba behind the node groups and the
# subcommands) is imported inside ``main``'s handling, so a Ctrl-C while it loads is one line.

__all__ = ["ENV_PREFIX", "OTHER_ENVIRONMENT", "Runtime", "build_parser", "load_groups", "main"]

ENV_PREFIX = "SPILLOVER_AUTOSCALER_"
_DESCRIPTION = """\
Spillover autoscaler: the controller (run) and the offline tools (forecast, plan, replay,
record, sweep).  Every flag can also be set with the environment variable its help shows."""
_RUN = plain(__doc__.split("\n\n")[1]) if __doc__ else None
POD_NAME = "POD_NAME"
ESS_KEY_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ESS_KEY_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
ESS_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"
# Read by ``run`` besides the ``SPILLOVER_AUTOSCALER_<FLAG>`` variables.
OTHER_ENVIRONMENT = (POD_NAME, ESS_KEY_ID, ESS_KEY_SECRET, ESS_TOKEN)
PROVIDERS = ("kwok", "ess", "simulated")

log = logging.getLogger("autoscaler.cli")


# -- parser -----------------------------------------------------------------------------------
def _duration(text: str) -> float:
    """A flag's duration, written as in the groups YAML (``0s``, ``200ms``, ``1m30s``, ``10``)."""
    from .nodegroup import ConfigError, parse_duration

    try:
        return parse_duration(text, "duration")
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("duration: ")) from None


def _interval(text: str) -> float:
    seconds = _duration(text)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be longer than 0s, got {text!r}")
    return seconds


def _run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--groups", default="", help="node-group configuration YAML file")
    p.add_argument(
        "--groups-configmap", default="", help="ConfigMap (key groups.yaml) in --namespace"
    )
    p.add_argument("--provider", choices=PROVIDERS, default=None, help="node-group provider")
    p.add_argument("--kubeconfig", default="", help="kubeconfig (default: in-cluster, ~/.kube)")
    p.add_argument("--dry-run", action="store_true", help="plan and log; change nothing")
    p.add_argument("--namespace", default="kube-system", help="namespace of lease, status, config")
    p.add_argument("--host", default="0.0.0.0", help="address of /healthz /readyz /metrics")
    p.add_argument("--port", type=int, default=8080, help="port of /healthz /readyz /metrics")
    p.add_argument("--loop-interval", type=_interval, default=10.0, help="e.g. 10s")
    p.add_argument(
        "--batch-window", type=_duration, default=0.3, help="longest pending-pod batch, e.g. 1s"
    )
    p.add_argument(
        "--batch-idle",
        type=_duration,
        default=0.1,
        help="a batch closes once no new pending pod came for this long, e.g. 100ms",
    )
    # Overrides of the groups YAML's settings.rebalance / settings.consolidation (default: the
    # YAML's, which the replay's scenario uses too): one settings structure, PlannerSettings.
    p.add_argument(
        "--rebalance-restart-cost",
        type=at_least(float, 0),
        default=None,
        help="CNY a move from ECI to ECS must save, over the pod's expected run time, to happen "
        "(default: settings.rebalance.restartCost of the groups YAML, else 0.1)",
    )
    p.add_argument(
        "--rebalance-per-minute",
        type=at_least(int, 0),
        default=None,
        help="pods moved from ECI back to ECS per minute at most, 0: never move pods "
        "(default: settings.rebalance.perMinute, else 10)",
    )
    p.add_argument(
        "--no-consolidation",
        action="store_true",
        help="remove nodes only by cluster-autoscaler's utilization rule "
        "(as settings.consolidation.enabled: false)",
    )
    p.add_argument(
        "--consolidate-empty-after",
        type=_duration,
        default=None,
        help="an empty node goes this long after it became empty, e.g. 30s "
        "(default: settings.consolidation.emptyAfter, else 30s)",
    )
    p.add_argument("--identity", default="", help="leader-election identity (default: hostname)")
    p.add_argument("--lease-name", default="spillover-autoscaler")
    p.add_argument("--status-configmap", default="spillover-autoscaler-status")
    p.add_argument("--no-leader-election", action="store_true", help="act without a Lease")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--ess-region", default="", help="ESS: region id, e.g. cn-hangzhou")
    p.add_argument(
        "--ess-scaling-groups",
        default="",
        help="ESS: group=ScalingGroupId,... (default: the group name is the id)",
    )
    p.add_argument("--ess-endpoint", default="", help="ESS: endpoint (default: regional)")
    p.add_argument("--ess-protocol", default="https", choices=("https", "http"))
    p.add_argument("--ess-instance-label", default="", help="ESS: node label with the instance id")
    p.add_argument("--ess-scale-up", default="desired", choices=("desired", "adjustment"))
    p.set_defaults(func=_run_command)


def build_parser(environ: Mapping[str, str] | None = None) -> Parser:
    """The whole command; an unusable ``SPILLOVER_AUTOSCALER_*`` value raises ``UsageError``."""
    from . import forecast_cli, plan_cli, sweep_cli
    from .replay import cli as replay_cli

    environ = os.environ if environ is None else environ
    parser = Parser(prog="spillover-autoscaler", description=_DESCRIPTION)
    parser.add_version()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = sub.add_parser("run", help="run the autoscaler controller", description=_RUN)
    _run_arguments(run)
    forecast_cli.add_parser(sub)
    plan_cli.add_parser(sub)
    replay_cli.add_parsers(sub)
    sweep_cli.add_parser(sub)
    return with_environment(parser, ENV_PREFIX, environ)


# -- run --------------------------------------------------------------------------------------
def load_groups(args: argparse.Namespace, configmap: Mapping[str, str] | None) -> AutoscalerConfig:
    from .nodegroup import ConfigError, groups_from_configmap, load_config

    if bool(args.groups) == bool(args.groups_configmap):
        raise UsageError("error: give exactly one of --groups FILE or --groups-configmap NAME")
    if args.groups:
        return with_flags(load_config(args.groups), args)
    if configmap is None:
        raise ConfigError(f"ConfigMap {args.namespace}/{args.groups_configmap}: not found")
    try:
        return with_flags(groups_from_configmap(configmap), args)
    except ConfigError as err:
        raise ConfigError(f"ConfigMap {args.namespace}/{args.groups_configmap}: {err}") from None


def with_flags(config: AutoscalerConfig, args: argparse.Namespace) -> AutoscalerConfig:
    """``config`` with the rebalance and consolidation flags that were given applied on top."""
    from dataclasses import replace

    from .nodegroup import Consolidation, MoveCosts

    s = config.settings
    moves = s.rebalance
    restart, per_minute = args.rebalance_restart_cost, args.rebalance_per_minute
    if restart is not None or per_minute is not None:
        base = moves or MoveCosts()
        per_minute = base.per_minute if per_minute is None else per_minute
        restart = base.restart if restart is None else restart
        moves = MoveCosts(restart, per_minute) if per_minute > 0 else None
    merged = s.consolidation
    if args.no_consolidation:
        merged = None
    elif args.consolidate_empty_after is not None:
        merged = replace(merged or Consolidation(), empty_after=args.consolidate_empty_after)
    return replace(config, settings=replace(s, rebalance=moves, consolidation=merged))


def _ess_groups(args: argparse.Namespace, config: AutoscalerConfig) -> dict[str, str]:
    mapping = {g.name: g.name for g in config.groups}
    for item in filter(None, (s.strip() for s in args.ess_scaling_groups.split(","))):
        name, sep, group_id = item.partition("=")
        if not sep or not name or not group_id:
            raise UsageError(
                f"error: --ess-scaling-groups: expected group=ScalingGroupId, got {item!r}"
            )
        if name not in mapping:
            raise UsageError(
                f"error: --ess-scaling-groups: {name!r} is not a configured node group"
            )
        mapping[name] = group_id
    return mapping


@dataclass
class Runtime:
    """Everything ``run`` assembles; ``serve`` runs it until ``stop``."""

    args: argparse.Namespace
    config: AutoscalerConfig | None = None
    ready: bool = False
    registries: list[CollectorRegistry] = field(default_factory=list)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    _api: ApiClient | None = None
    _assembled: Controller | None = None

    @property
    def api(self) -> ApiClient:
        """The Kubernetes API client ``start`` connected."""
        if self._api is None:
            raise RuntimeError("Runtime.start() has not connected yet")
        return self._api

    @property
    def controller(self) -> Controller:
        """The controller ``start`` assembled."""
        if self._assembled is None:
            raise RuntimeError("Runtime.start() has not assembled the controller yet")
        return self._assembled

    async def close(self) -> None:
        """Close the API client, if ``start`` got as far as connecting."""
        if self._api is not None:
            await self._api.close()

    async def start(self) -> None:
        """Connect and check the configuration; raises ``ConfigError``/``UsageError``."""
        from kubernetes_asyncio import client
        from kubernetes_asyncio.client.exceptions import ApiException

        from extender.kube import load_kube_config

        args = self.args
        if args.provider is None:
            raise UsageError("error: --provider (or SPILLOVER_AUTOSCALER_PROVIDER) is required")
        if bool(args.groups) == bool(args.groups_configmap):
            raise UsageError("error: give exactly one of --groups FILE or --groups-configmap NAME")
        if args.groups:
            self.config = load_groups(args, None)
        try:
            self._api = await load_kube_config(args.kubeconfig or None)
        except Exception as err:
            # ConfigException, and on some (an empty file) with TypeError: both are bad input
            where = args.kubeconfig or "error"
            raise UsageError(f"{where}: {one_line(err)}") from None
        if self.config is None:
            data: Mapping[str, str] | None = None
            try:
                cm = await client.CoreV1Api(self.api).read_namespaced_config_map(
                    args.groups_configmap, args.namespace
                )
                data = cm.data or {}
            except ApiException as err:
                if err.status != 404:
                    raise
            self.config = load_groups(args, data)
        log.info(
            "loaded",
            extra={
                "groups": len(self.config.groups),
                "source": args.groups or f"ConfigMap {args.namespace}/{args.groups_configmap}",
            },
        )
        self._assembled = self._controller(self.config)

    def _controller(self, config: AutoscalerConfig) -> Controller:
        from prometheus_client import CollectorRegistry

        from extender.ledger import Ledger
        from extender.metrics import Metrics as WatchMetrics
        from extender.snapshot import ClusterState

        from .controller import Controller, ControllerSettings
        from .leader import LeaseElector, LeaseSettings
        from .metrics import Metrics
        from .status import StatusStore

        args = self.args
        identity = args.identity or os.environ.get(POD_NAME) or socket.gethostname()
        state = ClusterState(synced=False)
        metrics = Metrics()
        watch_metrics = WatchMetrics(CollectorRegistry())
        self.registries = [metrics.registry, watch_metrics.registry]
        self._watch_parts = (state, Ledger(), watch_metrics)
        elector = (
            None
            if args.no_leader_election or args.dry_run
            else LeaseElector(
                self.api,
                identity=identity,
                settings=LeaseSettings(name=args.lease_name, namespace=args.namespace),
                clock=_wall_clock(),
            )
        )
        return Controller(
            config=config,
            provider=self._provider(config),
            state=state,
            api=self.api,
            status=StatusStore(
                self.api, namespace=args.namespace, name=args.status_configmap, identity=identity
            ),
            elector=elector,
            metrics=metrics,
            settings=ControllerSettings(
                loop_interval=args.loop_interval,
                batch_window=args.batch_window,
                batch_idle=args.batch_idle,
                dry_run=args.dry_run,
            ),
        )

    def _provider(self, config: AutoscalerConfig) -> Provider:
        args = self.args
        label = config.settings.node_group_label
        if args.provider == "kwok":
            from .providers.kwok import KwokProvider

            return KwokProvider(self.api, config.groups, label=label)
        if args.provider == "simulated":
            from .providers.simulated import SimulatedProvider

            return SimulatedProvider(config.groups, clock=_wall_clock(), label=label)
        if not args.ess_region:
            raise UsageError("error: --ess-region is required with --provider ess")
        try:
            from .providers.ess import EssConfig, EssProvider
        except ImportError as err:  # pragma: no cover - depends on the installed extras
            raise UsageError(f"error: --provider ess needs the ess extra ({err})") from None
        return EssProvider(
            EssConfig(
                region=args.ess_region,
                access_key_id=os.environ.get(ESS_KEY_ID, ""),
                access_key_secret=os.environ.get(ESS_KEY_SECRET, ""),
                security_token=os.environ.get(ESS_TOKEN, ""),
                scaling_groups=_ess_groups(args, config),
                endpoint=args.ess_endpoint,
                protocol=args.ess_protocol,
                instance_label=args.ess_instance_label,
                scale_up=args.ess_scale_up,
            )
        )

    def app(self) -> Starlette:
        from prometheus_client import generate_latest
        from starlette.applications import Starlette

        from extender.probes import probe_routes

        def not_ready() -> str | None:
            return None if self.ready else "not ready: warming up or syncing the cache"

        def scrape() -> bytes:
            return b"".join(generate_latest(r) for r in self.registries)

        return Starlette(routes=probe_routes(not_ready=not_ready, scrape=scrape))

    async def serve(self, stop: asyncio.Event, *, http: bool = True) -> None:
        import uvicorn

        from extender.kube import ClusterWatch

        from . import kernels

        server = None
        if http:
            server = _server_class()(
                uvicorn.Config(
                    self.app(), host=self.args.host, port=self.args.port, log_config=None
                )
            )
            self.tasks.append(asyncio.create_task(server.serve(), name="http"))
        state, ledger, watch_metrics = self._watch_parts
        watch = ClusterWatch(
            self.api, state, ledger, metrics=watch_metrics, on_change=self.controller.notify
        )
        self.tasks.append(asyncio.create_task(watch.run(), name="watch"))
        try:
            await asyncio.to_thread(kernels.warm_up)
            synced = asyncio.create_task(watch.wait_synced())
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({synced, stopped}, return_when=asyncio.FIRST_COMPLETED)
            synced.cancel()
            stopped.cancel()
            if not stop.is_set():
                self.ready = True
                log.info("ready", extra={"provider": self.args.provider})
                await self.controller.run(stop)
        finally:
            self.ready = False
            if server is not None:
                server.should_exit = True
            for task in self.tasks:
                if task.get_name() != "http":
                    task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await self.api.close()


def _server_class() -> type[uvicorn.Server]:
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # signals set ``stop`` (see _serve), which stops this server too

    return Server


def _wall_clock() -> Callable[[], float]:
    import time

    return time.time


async def _serve(args: argparse.Namespace) -> int:
    from .nodegroup import ConfigError

    runtime = Runtime(args)
    try:
        await runtime.start()
    except (ConfigError, UsageError) as err:
        await runtime.close()
        return fail(err)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await runtime.serve(stop)
    return 0


def _run_command(args: argparse.Namespace) -> int:
    from extender.logs import configure

    from .replay.threads import limit_blas_threads

    configure(args.log_level)
    # The forecast refit runs in a worker thread beside the event loop; OpenBLAS's own thread
    # pool on top of it made a 14-day fit 1.3-2.7x slower on a busy 2-core machine.
    limit_blas_threads()
    return asyncio.run(_serve(args))


def main(argv: Sequence[str] | None = None) -> int:
    def command() -> int:
        args = build_parser().parse_args(argv)
        result: int = args.func(args)
        return result

    return run_main(command)


if __name__ == "__main__":
    sys.exit(main())
