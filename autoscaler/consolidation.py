"""Consolidation: fewer or cheaper ECS nodes for the same pods, as Karpenter consolidates.

cluster-autoscaler removes a node only when its requests are below a threshold (50 %) for an
unneeded time (10 min).  With a ``Consolidation`` the planner's scale-down (``scaledown``, which
holds the rules; this module holds the settings and the replacement search) also

- removes an *empty* node (only DaemonSet pods) ``empty_after`` after it became empty, instead of
  the unneeded time;
- counts a node as unneeded however busy it is when its pods all fit on the other nodes (the
  same drain simulation, ``k.drain``, that judges every removal: resources, max pods, node
  selectors, taints, the unit of each managed pod, PodDisruptionBudgets, group minimums);
- removes the most expensive candidates first;
- replaces an unneeded node whose pods fit nowhere else by one new node of a *cheaper* group they
  all fit on (``replacement``, first-fit by ``k.ffd`` onto one template); once that node is up,
  the old node's pods fit on it and the old node goes by the rules above.

The settings (``Consolidation``) live with the other planner settings in ``nodegroup``, read
from the groups YAML (``settings.consolidation``) by the controller and from the scenario by the
replay.  The drain itself (the controller) cordons, evicts, and waits until the evicted pods are gone
before it deletes the node.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from extender.model import Node, Pod

from .backends import Kernels
from .context import Context, policy_of
from .nodegroup import Consolidation

__all__ = ["CONSOLIDATED", "Consolidation", "replacement"]

CONSOLIDATED = "consolidated"  # the code of a removal or replacement consolidation decided


def replacement(
    ctx: Context, k: Kernels, *, node: Node, g: int, movable: Sequence[Pod], now: float
) -> tuple[int, str] | None:
    """The cheapest group, cheaper than ``g``, with one new node that holds all of ``movable``
    (each pod within the unit it runs in), and why; None if there is none."""
    if not movable:
        return None
    old = ctx.groups[g].group
    policies = ctx.state.policies
    req = np.array(
        [(p.requests.cpu_milli, p.requests.memory, p.requests.gpu_milli, 1) for p in movable],
        np.int64,
    ).reshape(len(movable), 4)
    order = np.lexsort((-req[:, 1], -req[:, 0], -req[:, 2])).astype(np.int64)
    units = []
    for pod in movable:
        policy = policy_of(policies, pod) if policies else None
        unit = policy.unit_of(node) if policy is not None else None
        units.append(policy.units[unit] if policy is not None and unit is not None else None)
    best: tuple[float, int] | None = None
    for h, gs in enumerate(ctx.groups):
        group = gs.group
        if h == g or group.price_per_hour >= old.price_per_hour:
            continue
        if gs.in_cooldown(now) or gs.target_size >= group.max_size:
            continue
        template = ctx.templates[h]
        if not all(
            ctx.classes[ctx.class_of(p)].groups[h] and (u is None or u.contains(template))
            for p, u in zip(movable, units, strict=True)
        ):
            continue
        _, assign = k.ffd(
            req,
            order=order,
            cap=ctx.cap[h : h + 1],
            elig=np.ones((1, len(movable)), np.bool_),
            max_nodes=np.ones(1, np.int64),
        )
        if (assign[0] >= 0).all() and (best is None or group.price_per_hour < best[0]):
            best = (group.price_per_hour, h)
    if best is None:
        return None
    new = ctx.groups[best[1]].group
    return best[1], (
        f"its {len(movable)} pod(s) fit on one {new.name} node at {new.price_per_hour:g}/h "
        f"instead of {old.name} at {old.price_per_hour:g}/h"
    )
