"""Settings of the extender service: one frozen value built by the CLI and passed everywhere."""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import NodeKindSettings

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_PORT",
    "DEFAULT_REFUSALS",
    "DEFAULT_SERVER",
    "REFUSALS",
    "SERVERS",
    "Settings",
]

DEFAULT_PORT = 8888
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
"""Measured (bench/extender.py, Node objects shaped like the captured ones, managedFields included):
a full-Node ExtenderArgs is 22 MB at 5,000 nodes and 44 MB at 10,000; 64 MiB leaves room for about
14,000.  With ``nodeCacheCapable: true`` 10,000 node names are only 243 kB."""

SERVERS = ("builtin", "uvicorn", "granian")
DEFAULT_SERVER = "builtin"
"""The HTTP server of ``spillover-extender serve`` (``extender.server``)."""

REFUSALS = ("when-unschedulable", "always")
DEFAULT_REFUSALS = "when-unschedulable"
"""When a filter answer carries the policy's refusals (``FailedAndUnresolvableNodes``) and the
unknown names (``FailedNodes``): only when it accepts no node, or always (``extender.app``)."""


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    kubeconfig: str = ""
    policies: str = ""
    cluster: str = ""
    bind: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    failure_policy: str = "error"
    reservation_ttl: float = 30.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    log_level: str = "info"
    url_prefix: str = ""
    managed_resource: str = ""
    eci_taint_value: str = ""
    watch_staleness: float = 15.0
    expire_interval: float = 5.0
    deletion_cost: bool = True
    server: str = DEFAULT_SERVER
    refusals: str = DEFAULT_REFUSALS
    kinds: NodeKindSettings = field(default_factory=NodeKindSettings)
