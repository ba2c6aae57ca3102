"""Filter latency while the watch applies a burst of pod events: no request waits for a batch.

A loopback Kubernetes API server (``tests/kube_emulator.py``, in a child process) holds the
cluster of ``bench/extender.py`` (5,000 nodes, 2,000 bound pods, 500 ResourcePolicies);
``spillover-extender serve --kubeconfig`` lists and watches it.  One client drives filter +
prioritize pairs serially, as kube-scheduler does; after a quiet stretch the API server cuts the
pods watch, refuses its first retries and creates 1,000 pods meanwhile, so the resumed watch
receives the 1,000 events in one burst.  Reported: filter p50 /
p99 / max before the burst and in the seconds after it.

    .venv/bin/python bench/extender_burst.py [--events 1000] [--server uvicorn] [--code DIR]

``--code DIR`` runs the extender from another checkout (e.g. the main branch: "before").
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_extender", ROOT / "bench/extender.py")
assert _spec is not None
assert _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


async def _emulate(size: int, kubeconfig_dir: Path) -> None:
    """The child: serve the cluster; ``burst N`` on stdin creates N pods at once."""
    sys.path.insert(0, str(ROOT / "tests"))
    from kube_emulator import serve

    nodes, objects, template = bench._cluster(size)
    async with serve(kubeconfig_dir=kubeconfig_dir, history_limit=100_000) as emulator:
        for node in nodes:
            emulator.create(node)
        for obj in objects:
            if obj["kind"] == "Pod":
                obj = {"apiVersion": "v1", **obj}
            emulator.create(obj)
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            count = int(line.split()[1])
            # Cut the pods watch and refuse its first retries while the pods are created: the
            # watch then resumes from its resourceVersion and gets every event in one burst.
            emulator.fail("/api/v1/pods$", status=500, times=2, watch=True)
            emulator.drop_watches("pods")
            for n in range(count):
                pod = bench._pod(template, n % bench.WORKLOADS, f"burst-{n:06d}")
                pod["metadata"]["name"] += f"-b{n}"
                emulator.create({"apiVersion": "v1", "kind": "Pod", **pod})
            print("done", flush=True)


def _percentiles(values: list[float]) -> str:
    if not values:
        return "— / — / —"
    ordered = sorted(values)
    p50 = ordered[len(ordered) // 2] * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    return f"{p50:.2f} / {p99:.2f} / {ordered[-1] * 1000:.2f}"


def run(*, size: int, events: int, server: str, code: Path, tmp: Path) -> dict[str, Any]:
    """Quiet and burst filter latencies (p50 / p99 / max, ms) of the extender in ``code``."""
    emulator = subprocess.Popen(
        [sys.executable, __file__, "--emulate", str(tmp), "--sizes", str(size)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert emulator.stdout is not None
    assert emulator.stdin is not None
    try:
        if emulator.stdout.readline().strip() != "ready":
            raise RuntimeError("the API server emulator did not start")
        port = bench._free_port()
        argv = [sys.executable, "-m", "extender.cli", "serve", "--kubeconfig"]
        argv += [str(tmp / "kubeconfig"), "--no-deletion-cost", "--host", "127.0.0.1"]
        argv += ["--port", str(port), "--log-level", "warning"]
        argv += ["--server", server] if server else []  # older checkouts: no --server
        env = {**os.environ, "PYTHONPATH": str(code)}
        process = bench.Server(argv, port, env=env, cwd=code)
        try:
            _, _, template = bench._cluster(size)
            names = json.dumps(
                [n["metadata"]["name"] for n in bench._cluster(size)[0]], separators=(",", ":")
            ).encode()
            pods = bench._pods(template, 6_000, seed=5)
            client = bench._Client(port)
            quiet: list[float] = []
            burst: list[float] = []
            sent = 0.0
            for i, pod in enumerate(pods):
                if i == 1_000:  # after a quiet stretch (the first 1,000 pairs)
                    emulator.stdin.write(f"burst {events}\n")
                    emulator.stdin.flush()
                    sent = time.perf_counter()
                body = b"".join((b'{"Pod":', pod, b',"Nodes":null,"NodeNames":', names, b"}"))
                t0 = time.perf_counter()
                status, data = client.post("/filter", body)
                elapsed = time.perf_counter() - t0
                if status != 200:
                    raise RuntimeError(f"filter: HTTP {status}")
                accepted = json.loads(data)["NodeNames"]
                prio = json.dumps(accepted, separators=(",", ":")).encode()
                client.post("/prioritize", body.replace(names, prio))
                if i < 1_000:
                    quiet.append(elapsed)
                elif time.perf_counter() - sent < 5.0:
                    burst.append(elapsed)
                else:
                    break
            client.close()
        finally:
            process.stop()
        emulator.stdin.write("burst 0\n")
        emulator.stdin.flush()
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
    return {"quiet": _percentiles(quiet), "burst": _percentiles(burst), "n_burst": len(burst)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="5000")
    parser.add_argument("--events", type=int, default=1_000)
    parser.add_argument("--server", default="", help="default: the checkout's own default")
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout to run the extender from")
    parser.add_argument("--emulate", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = int(args.sizes.split(",")[0])
    if args.emulate is not None:
        asyncio.run(_emulate(size, args.emulate))
        return
    with tempfile.TemporaryDirectory() as tmp:
        result = run(
            size=size, events=args.events, server=args.server, code=args.code, tmp=Path(tmp)
        )
    print(
        f"| {size:,} | {args.events:,} | {args.code} | {result['quiet']} | {result['burst']} "
        f"| {result['n_burst']} |"
    )


if __name__ == "__main__":
    main()
