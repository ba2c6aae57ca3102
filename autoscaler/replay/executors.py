"""Where independent replays run: in this process, in a local process pool, or on Ray.

An executor maps a module-level function ``fn(shared, task)`` over tasks and yields
``(index, result)`` as each task finishes, in completion order (callers sort).  ``shared`` holds
the large read-only inputs (traces, scenarios) by key; every task names its key.  They are shipped
once per worker, never per task:

- ``SerialExecutor``: in this process, in order.
- ``PoolExecutor``: local worker processes.  Where ``fork`` exists (Linux) the workers inherit
  the shared inputs, the imported modules and the compiled numba kernels for free; elsewhere each
  worker receives them once when it starts.  The parent hands out one task at a time, keeping a
  worker on the tasks of one shared input while there are any (its caches stay warm).  Workers
  ignore SIGINT: Ctrl-C reaches the parent, which terminates them (finished results were
  already yielded).
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
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from multiprocessing.connection import Connection, wait
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
def _worker_main(
    conn: Connection, shared: Mapping[str, Any], init: Callable[[], None] | None
) -> None:
    """A pool worker: run the jobs the parent sends until it sends ``None``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if init is not None:
        init()
    while True:
        job = conn.recv()
        if job is None:
            return
        i, fn, key, task = job
        try:
            out = (i, True, fn(shared[key], task))
        except Exception as err:  # the parent raises it, as multiprocessing.Pool would
            out = (i, False, err)
        try:
            conn.send(out)
        except Exception as err:  # an unpicklable result or exception: say what it was
            conn.send((i, False, RuntimeError(f"task {i}: {type(err).__name__}: {err}")))


class _Schedule:
    """Which task a free worker runs next: one of the key it ran last (the worker already holds
    what those tasks share, forecast fits for one), else the first task, in the caller's order,
    of a key no other worker is on, else the first of the key with the most tasks left."""

    def __init__(self, tasks: Sequence[tuple[str, Any]]) -> None:
        self.left: dict[str, deque[tuple[int, Any]]] = {}
        for i, (key, task) in enumerate(tasks):
            self.left.setdefault(key, deque()).append((i, task))

    def next(self, last: str | None, busy: Iterable[str]) -> tuple[int, str, Any] | None:
        key = last if last is not None and self.left.get(last) else None
        if key is None:
            taken = set(busy)
            free = [k for k in self.left if k not in taken]
            if free:
                key = min(free, key=lambda k: self.left[k][0][0])
            elif self.left:
                key = max(self.left, key=lambda k: (len(self.left[k]), -self.left[k][0][0]))
        if key is None:
            return None
        i, task = self.left[key].popleft()
        if not self.left[key]:
            del self.left[key]
        return i, key, task


class PoolExecutor:
    """A local pool of ``workers`` processes (see the module docstring).

    The parent hands out one task at a time (``_Schedule``): a worker keeps to the tasks of one
    shared input while there are any, so per-process caches (``autoscaler.replay.fits``) serve
    every cell of a trace instead of being filled again in each worker; otherwise tasks start in
    the order given (callers put the longest first, so the workers finish together).
    """

    def __init__(self, workers: int, *, init: Callable[[], None] | None = None) -> None:
        self.workers = max(1, workers)
        self.init = init
        self._procs: list[tuple[Any, Connection]] = []

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
            for _ in range(min(self.workers, len(tasks))):
                here, there = ctx.Pipe()
                proc = ctx.Process(target=_worker_main, args=(there, shared, self.init))
                proc.daemon = True
                proc.start()
                there.close()
                self._procs.append((proc, here))
        finally:
            gc.unfreeze()
        schedule = _Schedule(tasks)
        running: dict[Connection, str] = {}  # busy workers and the key of their task

        def give(conn: Connection, last: str | None) -> None:
            job = schedule.next(last, running.values())
            if job is not None:
                i, key, task = job
                conn.send((i, fn, key, task))
                running[conn] = key

        try:
            for _, conn in self._procs:
                give(conn, None)
            while running:
                for ready in wait(list(running)):
                    assert isinstance(ready, Connection)
                    try:
                        i, ok, value = ready.recv()
                    except EOFError:
                        codes = [p.exitcode for p, c in self._procs if c is ready]
                        raise RuntimeError(f"a replay worker died (exit code {codes[0]})") from None
                    if not ok:
                        raise value
                    key = running.pop(ready)
                    give(ready, key)
                    yield i, value
            for _, conn in self._procs:
                conn.send(None)
            for proc, _ in self._procs:
                proc.join()
        finally:
            self.close()

    def close(self) -> None:
        for proc, conn in self._procs:
            if proc.exitcode is None:
                proc.terminate()
            proc.join()
            conn.close()
        self._procs = []


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
