"""The extender driven by Go's own HTTP client and JSON decoder, the way kube-scheduler drives it.

``bench/gosched/main.go`` (standard library only, built with the ``go`` on the PATH) schedules
pod after pod as kube-scheduler's ``HTTPExtender`` does: per pod, ``json.Marshal`` of
``ExtenderArgs`` with every node name (``nodeCacheCapable: true``), a POST on a keep-alive
``net/http`` client, ``json.NewDecoder(resp.Body).Decode`` of ``ExtenderFilterResult``, the kept
names mapped back to nodes; then the same for prioritize when more than one node is left
(kube-scheduler scores nothing for a single feasible node).  It reports the extender's share of
each scheduling cycle (everything but the scheduler's own plugins: encoding the request, the
round trip, decoding the answer), split into those three parts.  The cluster and pods are those
of ``bench/extender.py`` (1,000 Deployments, 500 ResourcePolicies, each pod a new replica).

Optional: without ``go`` on the PATH it prints why it skipped and exits 0 (``apt-get install
golang-go``); nothing in ``make test`` needs Go.

    .venv/bin/python bench/extender_go.py [--sizes 5000] [--servers builtin,builtin@DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_extender", ROOT / "bench/extender.py")
assert _spec is not None
assert _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench  # msgspec resolves its Structs' annotations through it
_spec.loader.exec_module(bench)

SOURCE = ROOT / "bench/gosched/main.go"


def _build(go: str, out: Path) -> Path:
    binary = out / "gosched"
    env = {**os.environ, "GO111MODULE": "off", "GOCACHE": str(out / "cache")}
    subprocess.run([go, "build", "-o", str(binary), str(SOURCE)], check=True, env=env)
    return binary


def _run(
    binary: Path, cluster: Path, names: Path, pods: Path, *, server: str, seconds: float
) -> dict[str, Any]:
    port = bench._free_port()
    argv, code = bench._serve_argv(cluster, port, server)
    process = bench.Server(argv, port, env={**os.environ, "PYTHONPATH": str(code)}, cwd=code)
    try:
        child = subprocess.run(
            [
                str(binary),
                f"-url=http://127.0.0.1:{port}",
                f"-pods={pods}",
                f"-names={names}",
                f"-seconds={seconds}",
                f"-pid={process.pid}",  # the server's CPU during the timed cycles only
                f"-tck={os.sysconf('SC_CLK_TCK')}",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        result: dict[str, Any] = json.loads(child.stdout)
        result["rss_mb"] = process.rss_mb()
        return result
    finally:
        process.stop()


def _table(rows: list[tuple[int, str, dict[str, Any]]]) -> str:
    lines = [
        "| nodes | server | cycles/s | extender ms per cycle (p50 / p99) | filter: encode / "
        "call / decode ms | prioritize: encode / call / decode ms | pods prioritized / "
        "single node | server CPU ms/cycle | est. scheduler speed (79 / 45 pods/s alone) |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for size, server, r in rows:
        ratios = " / ".join(
            f"{(1 / alone) / (1 / alone + r['cycle_ms'] / 1000):.3f}x"
            for alone in bench.SCHEDULER_PODS_PER_S
        )
        lines.append(
            f"| {size:,} | {server} | {r['cycles_per_s']:,.0f} "
            f"| {r['cycle_ms']:.3f} ({r['cycle_p50_ms']:.2f} / {r['cycle_p99_ms']:.2f}) "
            f"| {r['filter_encode_ms']:.3f} / {r['filter_call_ms']:.3f} / "
            f"{r['filter_decode_ms']:.3f} "
            f"| {r['prioritize_encode_ms']:.3f} / {r['prioritize_call_ms']:.3f} / "
            f"{r['prioritize_decode_ms']:.3f} "
            f"| {r['prioritized']} / {r['single_node']} | {r['server_ms_per_cycle']:.2f} "
            f"| {ratios} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="5000")
    parser.add_argument("--servers", default="builtin", help="as bench/extender.py --servers")
    parser.add_argument("--seconds", type=float, default=8.0, help="per size and server")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size and server")
    parser.add_argument("--pods", type=int, default=20_000, help="pods written for each run")
    parser.add_argument("--note", default="", help="a line for RESULTS.md (e.g. machine load)")
    parser.add_argument("--no-append", action="store_true", help="do not write bench/RESULTS.md")
    args = parser.parse_args()
    go = shutil.which("go")
    if go is None:
        print(
            "bench/extender_go.py: skipped: no `go` on the PATH (install Go, e.g. "
            "`apt-get install golang-go`, to drive the extender with Go's net/http and "
            "encoding/json as kube-scheduler does)"
        )
        return 0
    rows = []
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        binary = _build(go, out)
        for size in (int(s) for s in args.sizes.split(",")):
            nodes, objects, template = bench._cluster(size)
            cluster = out / f"cluster-{size}.json"
            cluster.write_text(json.dumps({"items": [*nodes, *objects]}))
            names = out / f"names-{size}.json"
            names.write_text(json.dumps([n["metadata"]["name"] for n in nodes]))
            pods = out / f"pods-{size}.jsonl"
            replicas = bench._replicas(template, args.pods, seed=2)
            pods.write_bytes(b"\n".join(pod for _, pod in replicas) + b"\n")
            for _ in range(args.repeat):
                for server in args.servers.split(","):
                    print(f"{size} nodes, {server} ...", file=sys.stderr, flush=True)
                    result = _run(binary, cluster, names, pods, server=server, seconds=args.seconds)
                    rows.append((size, server, result))
    load = max(load, os.getloadavg()[0])
    version = subprocess.run([go, "version"], capture_output=True, text=True).stdout.strip()
    section = (
        f"\n## Extender driven as kube-scheduler drives it, Go client "
        f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n\n"
        f"Machine: {bench._machine()}; {version}; load average up to {load:.1f}.  {args.note}\n"
        "`bench/extender_go.py`: `bench/gosched/main.go` schedules pod after pod as "
        "kube-scheduler's HTTPExtender does\n(json.Marshal of ExtenderArgs, net/http keep-alive "
        "POST, json.NewDecoder of the answer; prioritize\nonly when more than one node is "
        "left).  Per cycle: the extender's share (encode + call + decode), the\ncall being the "
        "request written and the answer's head read, the decode including reading the body.\n"
        "The last column is an *estimate*: the scheduler's own cycle (1/79 s or 1/45 s per pod "
        "at 5,000\nnodes, DESIGN.md section 4) plus the extender's share measured here.\n\n"
        f"{_table(rows)}\n"
    )
    bench.publish(section, append=not args.no_append)
    return 0


if __name__ == "__main__":
    sys.exit(main())
