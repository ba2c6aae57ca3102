"""The kernel backend seam: what both implementations of the planner's kernels provide.

``autoscaler.kernels`` (numba, compiled) and ``autoscaler.kernels_ref`` (plain Python, the
references) are modules with the same public functions; the planner picks one by name
(``planner.kernels_for``) and hands it to its passes as ``k``.  Typing ``k`` as this Protocol
(modules satisfy protocols structurally) keeps every kernel call checked by mypy, where a
``ModuleType`` would make each result ``Any``.
"""

from __future__ import annotations

from typing import Protocol

import numpy.typing as npt

from .kernels import FloatArray, IntArray

__all__ = ["Kernels"]


class Kernels(Protocol):
    def ffd(
        self,
        req: npt.ArrayLike,
        *,
        order: npt.ArrayLike,
        cap: npt.ArrayLike,
        elig: npt.ArrayLike,
        max_nodes: npt.ArrayLike,
    ) -> tuple[IntArray, IntArray]: ...

    def option_matrix(
        self,
        req: npt.ArrayLike,
        *,
        assign: npt.ArrayLike,
        used: npt.ArrayLike,
        cap: npt.ArrayLike,
        price: npt.ArrayLike,
        eci_cost: npt.ArrayLike,
        hours: float,
    ) -> FloatArray: ...

    def fit_existing(
        self,
        req: npt.ArrayLike,
        *,
        order: npt.ArrayLike,
        free: npt.ArrayLike,
        pod_class: npt.ArrayLike,
        elig: npt.ArrayLike,
    ) -> IntArray: ...

    def drain(
        self,
        req: npt.ArrayLike,
        *,
        pod_class: npt.ArrayLike,
        pod_pdb: npt.ArrayLike,
        cand_start: npt.ArrayLike,
        cand_node: npt.ArrayLike,
        cand_group: npt.ArrayLike,
        group_budget: npt.ArrayLike,
        pdb_budget: npt.ArrayLike,
        free: npt.ArrayLike,
        elig: npt.ArrayLike,
    ) -> tuple[IntArray, IntArray]: ...

    def warm_up(self) -> None: ...
