"""``python -m extender.demo`` (``make demo``): the real server answering real kube-scheduler calls.

Starts the extender with uvicorn on a free loopback port with a static cluster made of the
fixture nodes (``extender/data/demo-cluster.yaml``) and the demo policies
(``extender/data/demo-policies.yaml``), POSTs every request body kube-scheduler v1.36 sent in
``../shared/fixtures/kube-scheduler`` (or the copy in ``extender/data/fixtures``) to its verb, and
prints what the extender decided.  Then a burst: 50 replicas of one Deployment with N=10, filtered
back-to-back the way kube-scheduler's serial cycle does, land exactly 10 on ECS.
"""

from __future__ import annotations

import contextlib
import copy
import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from .app import create_app
from .commandline import Parser, plain
from .ledger import Ledger
from .policies import load_policies
from .settings import Settings
from .snapshot import load_cluster

__all__ = ["DATA", "fixtures_dir", "free_port", "main", "running_server"]

DATA = Path(__file__).resolve().parent / "data"


def fixtures_dir() -> Path:
    shared = Path(__file__).resolve().parents[1].parent / "shared/fixtures/kube-scheduler"
    return shared if shared.is_dir() else DATA / "fixtures"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def running_server(
    app: Starlette, *, port: int | None = None, **config: Any
) -> Iterator[tuple[str, int]]:
    """Serve ``app`` with uvicorn in a thread on 127.0.0.1; yields (host, port)."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config)
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _post(conn: http.client.HTTPConnection, path: str, body: bytes) -> tuple[int, Any]:
    conn.request("POST", path, body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, data.decode(errors="replace")


def _short(name: str) -> str:
    return name.replace("cn-hangzhou.192.168.0.", ".").replace(
        "virtual-kubelet-cn-hangzhou-i", "vk"
    )


def _offered(body: Any) -> list[str]:
    """The node names a filter request offers (names, or full Nodes)."""
    if not isinstance(body, dict):
        return []
    if body.get("NodeNames") is not None:
        return list(body["NodeNames"])
    return [n["metadata"]["name"] for n in (body.get("Nodes") or {}).get("items") or []]


def _summary(verb: str, answer: Any, offered: Sequence[str] = ()) -> tuple[str, str]:
    """(accepted, refused/scores/victims) columns; ``offered``: the names filter was offered
    (an answer that accepts a node names no refusals, see ``extender.app``)."""
    if not isinstance(answer, (dict, list)):
        return "-", str(answer)
    if verb == "filter":
        assert isinstance(answer, dict)
        if answer.get("Error"):
            return "-", f"Error: {answer['Error']}"
        names = answer.get("NodeNames")
        if names is None and answer.get("Nodes") is not None:
            names = [n["metadata"]["name"] for n in answer["Nodes"].get("items") or []]
        refused = {
            **(answer.get("FailedNodes") or {}),
            **(answer.get("FailedAndUnresolvableNodes") or {}),
        }
        reasons = sorted(set(refused.values()))
        why = f"{','.join(_short(n) for n in refused)}: {' | '.join(reasons)}" if refused else ""
        silent = [n for n in offered if n not in refused and n not in (names or [])]
        if silent:  # left out of an answer that accepts a node
            why = (
                f"{','.join(_short(n) for n in silent)}: refused (no reasons sent: a node is left)"
            )
        return ",".join(_short(n) for n in names or []) or "(none)", why
    if verb == "prioritize":
        assert isinstance(answer, list)
        scores = ", ".join(f"{_short(p['Host'])}={p['Score']}" for p in answer)
        return "-", f"scores: {scores or '(none: nothing preferred)'}"
    if verb == "preempt":
        assert isinstance(answer, dict)
        kept = answer.get("NodeNameToMetaVictims") or {}
        victims = "; ".join(f"{_short(n)}: {len(v['Pods'])} victims" for n, v in kept.items())
        return ",".join(_short(n) for n in kept) or "(none)", victims
    assert isinstance(answer, dict)
    return "-", f"Error: {answer.get('Error')}" if answer.get("Error") else "bound"


def _pod_name(body: Any) -> str:
    if not isinstance(body, dict):
        return "?"
    if "PodName" in body:
        return f"{body['PodNamespace']}/{body['PodName']}"
    meta = (body.get("Pod") or {}).get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def _burst_pod(template: dict[str, Any], i: int) -> dict[str, Any]:
    pod = copy.deepcopy(template)
    meta = pod["metadata"]
    meta["name"] = f"burst-5d8f9c7b6-{i:04d}"
    meta["uid"] = f"burst-{i:04d}"
    meta["labels"] = {"app": "burst", "pod-template-hash": "5d8f9c7b6"}
    meta["ownerReferences"][0]["name"] = "burst-5d8f9c7b6"
    return pod


def main(argv: Sequence[str] | None = None) -> None:
    Parser(prog="python -m extender.demo", description=plain(__doc__)).parse_args(argv)
    fixtures = fixtures_dir()
    state = load_cluster(DATA / "demo-cluster.yaml")
    state.set_policies(load_policies(DATA / "demo-policies.yaml"))
    settings = Settings(host="127.0.0.1", url_prefix="/scheduler")
    app = create_app(state=state, ledger=Ledger(ttl=30), settings=settings)
    with running_server(app) as (host, port):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        print(f"spillover extender on http://{host}:{port}  (fixtures: {fixtures})")
        print(
            "policies: "
            + "; ".join(
                f"{p.key}: "
                + " -> ".join(
                    f"{u.resource.value}{'' if u.max is None else f' max {u.max}'}" for u in p.units
                )
                for p in state.policies
            )
        )
        print()
        rows = [("file", "verb", "pod", "status", "accepted", "refused / scores / victims")]
        for path in sorted(fixtures.glob("*.json")):
            verb = path.name.split("-", 1)[0]
            body = path.read_bytes()
            status, answer = _post(conn, f"/scheduler/{verb}", body)
            accepted, detail = _summary(verb, answer, _offered(json.loads(body)))
            rows.append(
                (path.name, verb, _pod_name(json.loads(body)), str(status), accepted, detail)
            )
        print(_table(rows))
        print("\n(.NN = cn-hangzhou.192.168.0.NN, vk = the virtual node for ECI)\n")

        template = json.loads((fixtures / "filter-deployment-pod-nodecache.json").read_bytes())
        ecs = eci = 0
        for i in range(50):
            burst = {"Pod": _burst_pod(template["Pod"], i), "NodeNames": template["NodeNames"]}
            status, answer = _post(conn, "/filter", json.dumps(burst).encode())
            names = answer.get("NodeNames") if isinstance(answer, dict) else None
            if names and all(n.startswith("virtual-kubelet") for n in names):
                eci += 1
            elif names:
                ecs += 1
        print(
            f"burst: 50 replicas of Deployment shop/burst with N=10 -> {ecs} on ECS, {eci} on ECI"
        )
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        decisions = [
            line
            for line in text.splitlines()
            if line.startswith("spillover_extender_decisions_total")
        ]
        print("\n" + "\n".join(decisions))
        conn.close()


if __name__ == "__main__":
    main()
