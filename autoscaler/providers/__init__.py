"""Node-group providers behind one Protocol (:mod:`autoscaler.providers.base`).

``kwok`` (fake Nodes through the Kubernetes API), ``ess`` (Alibaba Cloud ESS, optional extra) and
``simulated`` (in memory, virtual time).  Import the implementation modules directly; this package
only re-exports the seam so that importing it never pulls in a client library.
"""

from .base import GROUP_LABEL, GroupStatus, Instance, InstanceState, Provider, ProviderError

__all__ = ["GROUP_LABEL", "GroupStatus", "Instance", "InstanceState", "Provider", "ProviderError"]
