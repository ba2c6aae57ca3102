"""Settings of the extender service: one frozen value built by the CLI and passed everywhere."""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import NodeKindSettings

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_PORT", "Settings"]

DEFAULT_PORT = 8888
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
"""A full-Node ExtenderArgs with 5,000 nodes is about 45 MB (about 9 KB per Node object)."""


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
    expire_interval: float = 5.0
    kinds: NodeKindSettings = field(default_factory=NodeKindSettings)
