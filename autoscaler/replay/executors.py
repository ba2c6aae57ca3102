"""Where independent replays run: in this process, in a local process pool, or on Ray.

An executor maps a module-level function ``fn(shared, task)`` over tasks and yields
``(index, result)`` as each task finishes, in completion order (callers sort).  ``shared`` holds
the large read-only inputs (traces, scenarios) by key; every task names its key.  They are shipped
once per worker, never per task:

- ``SerialExecutor``: in this process, in order.
- ``PoolExecutor``: a ``multiprocessing`` pool.  Where ``fork`` exists (Linux) the workers inherit
  the shared inputs, the imported modules and the compiled numba kernels for free; elsewhere the
  pool initializer receives them once per worker.  Workers ignore SIGINT: Ctrl-C reaches the
  parent, which terminates the pool (finished results were already yielded).
- ``RayExecutor``: each shared input goes into Ray's object store once (``ray.put``); tasks are
  Ray tasks that take the object reference, so a cluster of any size needs no code change.  Ray is
  the optional extra ``spillover[sweep]``.

Results are the same on every executor: a task is a pure function of its inputs (the replay is
seeded by the scenario), and nothing depends on which worker ran it or when.
"""

from __future__ import annotations

import gc
import importlib
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol, TypeVar

__all__ = [
    "RAY_INSTALL_HINT",
    "Executor",
    "ExecutorError",
    "PoolExecutor",
    "RayExecutor",
    "SerialExecutor",
    "default_workers",
    "make_executor",
]

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")

RAY_INSTALL_HINT = "Ray is not installed: pip install 'spillover[sweep]'"

Fn = Callable[[Any, Any], Any]


class ExecutorError(RuntimeError):
    """An executor that cannot start (Ray missing or unreachable); the message says why."""


class Executor(Protocol):
    """Runs ``fn(shared[key], task)`` for every ``(key, task)``; yields ``(index, result)``."""

    workers: int

    def map_unordered(
        self, fn: Fn, tasks: Sequence[tuple[str, Any]], shared: Mapping[str, Any]
    ) -> Iterator[tuple[int, Any]]: ...

    def close(self) -> None: ...


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class SerialExecutor:
    workers = 1

    def map_unordered(
        self, fn: Fn, tasks: Sequence[tuple[str, Any]], shared: Mapping[str, Any]
    ) -> Iterator[tuple[int, Any]]:
        for i, (key, task) in enumerate(tasks):
            yield i, fn(shared[key], task)

    def close(self) -> None:
        pass


# -- the local process pool ------------------------------------------------------------------------
_SHARED: Mapping[str, Any] = {}


def _worker_init(shared: Mapping[str, Any], init: Callable[[], None] | None) -> None:
    global _SHARED
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _SHARED = shared
    if init is not None:
        init()


def _worker_call(job: tuple[int, Fn, str, Any]) -> tuple[int, Any]:
    i, fn, key, task = job
    return i, fn(_SHARED[key], task)


class PoolExecutor:
    """A local process pool of ``workers`` processes (see the module docstring)."""

    def __init__(self, workers: int, *, init: Callable[[], None] | None = None) -> None:
        self.workers = max(1, workers)
        self.init = init
        self._pool: Any = None

    def map_unordered(
        self, fn: Fn, tasks: Sequence[tuple[str, Any]], shared: Mapping[str, Any]
    ) -> Iterator[tuple[int, Any]]:
        if not tasks:
            return
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
        # Objects that exist now are never collected in the workers: their pages stay shared
        # instead of being copied when a worker's garbage collector walks them.
        gc.freeze()
        try:
            self._pool = ctx.Pool(
                min(self.workers, len(tasks)),
                initializer=_worker_init,
                initargs=(shared, self.init),
            )
        finally:
            gc.unfreeze()
        jobs = [(i, fn, key, task) for i, (key, task) in enumerate(tasks)]
        try:
            yield from self._pool.imap_unordered(_worker_call, jobs, chunksize=1)
            self._pool.close()
            self._pool.join()
        finally:
            self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None


# -- Ray -------------------------------------------------------------------------------------------
def _ray_call(fn: Fn, shared: Any, task: Any) -> Any:
    return fn(shared, task)


class RayExecutor:
    """Ray tasks on the cluster at ``address`` (``local`` starts one here with ``num_cpus``)."""

    def __init__(self, address: str, *, num_cpus: int | None = None) -> None:
        try:
            ray: Any = importlib.import_module("ray")  # the optional extra, only partly annotated
        except ImportError:
            raise ExecutorError(f"--ray-address {address}: {RAY_INSTALL_HINT}") from None
        self.ray = ray
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address == "local":
                kwargs["num_cpus"] = num_cpus
            else:
                kwargs["address"] = address
            try:
                ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise ExecutorError(f"--ray-address {address}: {first}") from None
            self._started = True
        self.workers = int(ray.cluster_resources().get("CPU", 1))
        self._remote = ray.remote(num_cpus=1)(_ray_call)
        self._pending: list[Any] = []

    def map_unordered(
        self, fn: Fn, tasks: Sequence[tuple[str, Any]], shared: Mapping[str, Any]
    ) -> Iterator[tuple[int, Any]]:
        ray = self.ray
        used = {key for key, _ in tasks}
        refs = {key: ray.put(shared[key]) for key in sorted(used)}  # once per input, not per task
        index = {}
        for i, (key, task) in enumerate(tasks):
            index[self._remote.remote(fn, refs[key], task)] = i
        self._pending = list(index)
        try:
            while self._pending:
                done, self._pending = ray.wait(self._pending, num_returns=1)
                yield index[done[0]], ray.get(done[0])
        finally:
            for ref in self._pending:
                ray.cancel(ref, force=True)
            self._pending = []

    def close(self) -> None:
        if self._started:
            self.ray.shutdown()
            self._started = False


def make_executor(
    *, workers: int, ray_address: str = "", init: Callable[[], None] | None = None
) -> Executor:
    """Ray when an address is given, else a process pool (in-process for one worker)."""
    if ray_address:
        return RayExecutor(ray_address, num_cpus=workers)
    if workers <= 1:
        return SerialExecutor()
    return PoolExecutor(workers, init=init)
