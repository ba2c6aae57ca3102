"""Extender latency and throughput: Spillover versus a naive stdlib extender, same run, same data.

For each cluster size (100, 1,000, 5,000, 10,000 nodes, one of them the virtual node) it writes
a static cluster (1,000 Deployments in 10 namespaces, 2 bound pods each, a ResourcePolicy
``ecs max 3 -> eci`` on every other one), starts the server as a subprocess (``spillover-extender
serve --cluster --server S``, one process, for each HTTP server S of ``--servers``, interleaved)
and drives filter+prioritize pairs over one persistent
HTTP/1.1 connection, the way kube-scheduler's serial cycle does: every pod is a new replica
(new UID) of a random Deployment; filter is offered every node (``percentageOfNodesToScore:
100``) and prioritize the nodes filter accepted, as kube-scheduler does.  Spillover gets node names (``nodeCacheCapable: true``); the naive baseline
(``bench/naive_extender.py``) gets full Node objects, shaped like the captured ones.

The client (``--clients new``, ``_Wire`` and ``_Checks``) is about as cheap as kube-scheduler's
Go client: pods pre-encoded, each request one ``sendmsg`` of its parts (no join), each answer
read by ``recv_into`` into one reused buffer; every answer is checked, either by comparing its
bytes with an answer the same Deployment got before (a ``memcmp``) or, when new, by decoding it
in full and checking it against the bench's policies (see ``_Checks``).  The client before
2026-12-02 13:00 UTC (``--clients old``: joined bodies, answers copied into new bytes, filter's
answer scanned by msgspec for its NodeNames, status checked) stays for comparison with earlier
rows of bench/RESULTS.md; ``--clients new,old`` runs both, interleaved.  The client reports its
own CPU use: on a 2-core machine it shares the cores with the server, so it is part of the rate.
Results are printed and appended to ``bench/RESULTS.md``.

    .venv/bin/python bench/extender.py [--sizes 100,1000] [--seconds 8]
"""

from __future__ import annotations

import argparse
import copy
import functools
import http.client
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared/fixtures/kube-scheduler"
if not FIXTURES.is_dir():
    FIXTURES = ROOT / "extender/data/fixtures"
WORKLOADS = 1000
NAMESPACES = 10


def _fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _workload(i: int) -> tuple[str, str, str]:
    return f"ns-{i % NAMESPACES}", f"w-{i:04d}", f"{i:010x}"


def _pod(template: dict[str, Any], i: int, uid: str, node: str = "") -> dict[str, Any]:
    ns, name, template_hash = _workload(i)
    pod = copy.deepcopy(template)
    meta = pod["metadata"]
    meta.update(name=f"{name}-{template_hash}-{uid[-5:]}", namespace=ns, uid=uid)
    meta["labels"] = {"app": name, "pod-template-hash": template_hash}
    meta["ownerReferences"][0]["name"] = f"{name}-{template_hash}"
    if node:
        pod["spec"]["nodeName"] = node
        pod["status"] = {"phase": "Running"}
    return pod


def _cluster(size: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """(nodes, other objects, pod template) of a cluster with ``size`` nodes."""
    full = _fixture("filter-deployment-pod-fullnodes.json")
    ecs_template, virtual = full["Nodes"]["items"][0], full["Nodes"]["items"][3]
    pod_template = _fixture("filter-deployment-pod-nodecache.json")["Pod"]
    nodes = []
    for i in range(size - 1):
        node = {"apiVersion": "v1", "kind": "Node", **copy.deepcopy(ecs_template)}
        name = f"cn-hangzhou.10.{i // 250}.{i % 250}"
        node["metadata"]["name"] = name
        node["metadata"]["labels"]["kubernetes.io/hostname"] = name
        nodes.append(node)
    nodes.append({"apiVersion": "v1", "kind": "Node", **virtual})
    rng = random.Random(size)
    objects: list[dict[str, Any]] = []
    for i in range(WORKLOADS):
        ns, name, _ = _workload(i)
        if i % 2 == 0:
            objects.append(
                {
                    "apiVersion": "spillover.dev/v1alpha1",
                    "kind": "ResourcePolicy",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {
                        "selector": {"matchLabels": {"app": name}},
                        "units": [{"resource": "ecs", "max": 3}, {"resource": "eci"}],
                    },
                }
            )
        for r in range(2):
            node = nodes[rng.randrange(size - 1)]["metadata"]["name"]
            objects.append({"kind": "Pod", **_pod(pod_template, i, f"bound-{i:04d}-{r}", node)})
    return nodes, objects, pod_template


class Server:
    def __init__(
        self,
        argv: list[str],
        port: int,
        *,
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
    ) -> None:
        self.port = port
        self.proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 120
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {argv}")
            time.sleep(0.1)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _Answer(msgspec.Struct):
    Nodes: msgspec.Raw = msgspec.Raw(b"null")
    NodeNames: msgspec.Raw = msgspec.Raw(b"null")


class _Client:
    """A minimal HTTP/1.1 client on one keep-alive socket: the bench measures the server, so
    the client does as little as possible (http.client costs about 50 us per request more)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.head = f"Host: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n".encode()
        self.buffer = b""

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        request = b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n" % (
            path.encode(),
            self.head,
            len(body),
        )
        self.sock.sendall(request + body)
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        chunks, size = [rest], len(rest)
        while size < length:
            chunk = self.sock.recv(max(length - size, 65536))
            if not chunk:
                raise ConnectionError("server closed the connection")
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
        self.buffer = data[length:]
        return status, data[:length]

    def _read(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


class _Known(NamedTuple):
    """An answer whose bytes were decoded and checked once; the same bytes again are the same
    answer.  ``accepted``: filter's NodeNames as sent (what prioritize is offered next)."""

    data: bytes
    accepted: bytes


class _Wire:
    """kube-scheduler's side of one keep-alive connection, about as cheap as its Go client: each
    request is written by one ``sendmsg`` from pre-encoded parts (the Pod, the offered list: no
    join, no copy in Python), each answer is read by ``recv_into`` into one reused buffer and is
    left there: ``post`` returns where its body is.  Status and Content-Length are parsed from
    every answer's head."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.host = f"Host: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n".encode()
        self.buf = bytearray(1 << 20)
        self.view = memoryview(self.buf)
        self.start = self.end = 0  # the unread bytes are buf[start:end]

    def post(self, path: bytes, parts: list[bytes]) -> tuple[int, int, int]:
        """Send a POST whose body is ``parts``; (status, start, end) of the answer's body in
        ``self.buf``, valid until the next call."""
        length = sum(len(part) for part in parts)
        head = b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n" % (path, self.host, length)
        total = len(head) + length
        sent = self.sock.sendmsg([head, *parts])
        if sent < total:  # a blocking socket sends it all unless a signal cut it short
            self.sock.sendall(b"".join([head, *parts])[sent:])
        buf = self.buf
        if self.start == self.end:
            self.start = self.end = 0
        while (at := buf.find(b"\r\n\r\n", self.start, self.end)) < 0:
            self._fill()
        status = int(buf[self.start + 9 : self.start + 12])
        size = -1
        for line in bytes(buf[self.start : at]).split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                size = int(value)
        if size < 0:
            raise RuntimeError("an answer without Content-Length")
        body = at + 4
        while self.end < body + size:
            self._fill()
        self.start = body + size
        return status, body, body + size

    def _fill(self) -> None:
        if self.end == len(self.buf):  # full: move the unread bytes to the front, or grow
            unread = self.end - self.start
            if self.start == 0:
                self.buf.extend(bytes(len(self.buf)))
            else:
                self.buf[:unread] = self.buf[self.start : self.end]
                self.start, self.end = 0, unread
            self.view = memoryview(self.buf)
        got = self.sock.recv_into(self.view[self.end :])
        if not got:
            raise ConnectionError("server closed the connection")
        self.end += got

    def close(self) -> None:
        self.view.release()
        self.sock.close()


class _Checks:
    """Every answer is checked: its bytes equal an answer this workload got before (``memcmp``),
    or it is decoded in full and checked against the policy the bench set up, then remembered.

    Filter, pod of workload ``i``: HTTP 200, no error, no ``Nodes``; NodeNames are offered names,
    each once; an answer that carries a refusal map (FailedNodes or FailedAndUnresolvableNodes
    not null: ``--refusals always``, or an answer that accepts no node) splits the offered names
    exactly between NodeNames and the maps; a compact answer (a node accepted, both maps null:
    the default since 2026-12-02 15:30 UTC) leaves the other offered names out, and they are its
    refusals.  An unmanaged workload (odd ``i``) gets every offered name back; a managed one gets
    one unit: every ECS node, or the virtual node.  Prioritize: HTTP 200, hosts among those
    offered, scores in 0..10 (``MaxExtenderPriority``)."""

    def __init__(self, offers: list[bytes], virtual: str) -> None:
        self.offered = {offer: msgspec.json.decode(offer, type=list[str]) for offer in offers}
        self.virtual = virtual
        self.filters: dict[int, list[_Known]] = {}
        self.scores: dict[tuple[int, bytes], list[bytes]] = {}
        self.decoded = 0  # answers decoded in full (the rest matched a checked one)

    def filter(self, workload: int, offer: bytes, buf: bytearray, start: int, end: int) -> bytes:
        """The accepted NodeNames, as sent."""
        size = end - start
        known = self.filters.setdefault(workload, [])
        for answer in known:
            if len(answer.data) == size and buf.startswith(answer.data, start):
                return answer.accepted
        data = bytes(buf[start:end])
        result = msgspec.json.decode(data, type=dict[str, Any])  # ExtenderFilterResult
        offered = self.offered[offer]
        accepted = result.get("NodeNames") or []
        failed, unresolvable = result.get("FailedNodes"), result.get("FailedAndUnresolvableNodes")
        refused = {**(failed or {}), **(unresolvable or {})}
        problems = []
        if result.get("Error") or result.get("Nodes") is not None:
            problems.append(f"Error {result.get('Error')!r}, Nodes {result.get('Nodes')!r:.200}")
        if len(set(accepted)) != len(accepted) or not set(accepted) <= set(offered):
            problems.append("accepted names that were not offered, or a name twice")
        with_maps = failed is not None or unresolvable is not None or not accepted
        if with_maps and (
            sorted([*accepted, *refused]) != sorted(offered) or set(accepted) & set(refused)
        ):
            problems.append("accepted and refused names do not split the offered ones")
        if workload % 2 and accepted != offered:
            problems.append("an unmanaged pod did not get every offered node")
        if not workload % 2 and set(accepted) not in (
            set(offered) - {self.virtual},
            {self.virtual},
        ):
            problems.append(f"not one unit: {len(accepted)} nodes accepted")
        if problems:
            raise RuntimeError(f"filter, workload {workload}: " + "; ".join(problems))
        raw = msgspec.json.decode(data, type=_Answer).NodeNames
        known.append(_Known(data, bytes(raw)))
        self.decoded += 1
        return known[-1].accepted

    def prioritize(self, workload: int, offer: bytes, buf: bytearray, start: int, end: int) -> None:
        size = end - start
        known = self.scores.setdefault((workload, offer), [])
        for data in known:
            if len(data) == size and buf.startswith(data, start):
                return
        data = bytes(buf[start:end])
        hosts = msgspec.json.decode(data, type=list[dict[str, Any]] | None) or []  # HostPriority
        offered = set(msgspec.json.decode(offer, type=list[str]))
        if any(h["Host"] not in offered or not 0 <= h["Score"] <= 10 for h in hosts):
            raise RuntimeError(f"prioritize, workload {workload}: {data[:200]!r}")
        known.append(data)
        self.decoded += 1


def _drive(
    server: Server,
    pods: list[tuple[int, bytes]],
    *,
    nodes: bytes | list[bytes],
    seconds: float,
    max_pairs: int,
    checks: _Checks,
    client: str = "new",
) -> dict[str, Any]:
    """Per pod: filter with every node, then prioritize with the nodes filter accepted (as
    kube-scheduler does); latencies per verb, pairs/s, CPU of both sides.  ``nodes``: the
    offered list, or several orders of it offered in turn.  ``client``: ``new`` (``_Wire``,
    the answers checked by ``checks``) or ``old`` (``_drive_old``: ``_Client``, status and
    NodeNames decoded)."""
    offers = [nodes] if isinstance(nodes, bytes) else nodes
    if client == "old":
        return _drive_old(
            server,
            [pod for _, pod in pods],
            key="NodeNames",
            nodes=offers,
            seconds=seconds,
            max_pairs=max_pairs,
        )
    conn = _Wire(server.port)
    decoded = checks.decoded
    filter_ms: list[float] = []
    prioritize_ms: list[float] = []
    head, tail = b',"Nodes":null,"NodeNames":', b"}"
    bodies = [b"".join((b'{"Pod":', pod, head)) for _, pod in pods[:max_pairs]]
    clock = time.perf_counter
    server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
    start = clock()
    pairs = 0
    for i, (workload, _) in enumerate(pods[:max_pairs]):
        offer = offers[i % len(offers)]
        t0 = clock()
        status, at, end = conn.post(b"/filter", [bodies[i], offer, tail])
        t1 = clock()
        if status != 200:
            raise RuntimeError(f"filter: HTTP {status}")
        accepted = checks.filter(workload, offer, conn.buf, at, end)
        t2 = clock()
        status, at, end = conn.post(b"/prioritize", [bodies[i], accepted, tail])
        t3 = clock()
        if status != 200:
            raise RuntimeError(f"prioritize: HTTP {status}")
        checks.prioritize(workload, accepted, conn.buf, at, end)
        filter_ms.append(t1 - t0)
        prioritize_ms.append(t3 - t2)
        pairs += 1
        if t3 - start > seconds:
            break
    wall = clock() - start
    conn.close()
    return _measured(
        server,
        pairs,
        wall,
        server_cpu,
        client_cpu,
        filter_ms,
        prioritize_ms,
        decoded=checks.decoded - decoded,
    )


def _measured(
    server: Server,
    pairs: int,
    wall: float,
    server_cpu: float,
    client_cpu: float,
    filter_s: list[float],
    prioritize_s: list[float],
    *,
    decoded: int = -1,
) -> dict[str, Any]:
    latencies = {"filter": filter_s, "prioritize": prioritize_s}
    return {
        "pairs": pairs,
        "pair_ms": (sum(filter_s) + sum(prioritize_s)) / pairs * 1000,
        "rss_mb": server.rss_mb(),
        "pairs_per_s": pairs / wall,
        "server_cpu": (server.cpu_seconds() - server_cpu) / wall,
        "server_ms_per_pair": (server.cpu_seconds() - server_cpu) / pairs * 1000,
        "client_cpu": (time.process_time() - client_cpu) / wall,
        "client_ms_per_pair": (time.process_time() - client_cpu) / pairs * 1000,
        "decoded": decoded,
        **{f"{verb}_p50": _ms(values, 50) for verb, values in latencies.items()},
        **{f"{verb}_p99": _ms(values, 99) for verb, values in latencies.items()},
    }


def _drive_old(
    server: Server,
    pods: list[bytes],
    *,
    key: str,
    nodes: bytes | list[bytes],
    seconds: float,
    max_pairs: int,
) -> dict[str, Any]:
    """The client before 2026-12-02 13:00 UTC (``--clients old``; the naive baseline's): body
    joined per request, answers read into new bytes, filter's answer decoded by msgspec for
    its NodeNames (a scan of up to 455 kB), status checked."""
    offers = [nodes] if isinstance(nodes, bytes) else nodes
    conn = _Client(server.port)
    latencies: dict[str, list[float]] = {"filter": [], "prioritize": []}
    decode = msgspec.json.Decoder(_Answer).decode
    # Go's encoding/json writes the struct's fields in order: Pod, Nodes, NodeNames.
    if key == "NodeNames":
        head, tail = b',"Nodes":null,"NodeNames":', b"}"
    else:
        head, tail = b',"Nodes":', b',"NodeNames":null}'
    server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
    start = time.perf_counter()
    pairs = 0
    for i, pod in enumerate(pods):
        body = b"".join((b'{"Pod":', pod, head, offers[i % len(offers)], tail))
        for verb in ("filter", "prioritize"):
            t0 = time.perf_counter()
            status, data = conn.post(f"/{verb}", body)
            latencies[verb].append(time.perf_counter() - t0)
            if status != 200:
                raise RuntimeError(f"{verb}: HTTP {status}")
            if verb == "filter":
                answer = decode(data)
                accepted = answer.NodeNames if key == "NodeNames" else answer.Nodes
                body = b"".join((b'{"Pod":', pod, head, accepted, tail))
        pairs += 1
        if pairs >= max_pairs or time.perf_counter() - start > seconds:
            break
    wall = time.perf_counter() - start
    conn.close()
    return _measured(
        server, pairs, wall, server_cpu, client_cpu, latencies["filter"], latencies["prioritize"]
    )


def _ms(values: list[float], percentile: int) -> float:
    if len(values) < 2:
        return values[0] * 1000 if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[percentile - 1] * 1000


def _replicas(template: dict[str, Any], count: int, seed: int) -> list[tuple[int, bytes]]:
    """New replicas (new UIDs) of random Deployments, pre-encoded, with their Deployment's
    number (even: it has a ResourcePolicy)."""
    rng = random.Random(seed)
    chosen = [rng.randrange(WORKLOADS) for _ in range(count)]
    return [
        (i, json.dumps(_pod(template, i, f"new-{seed}-{n:07d}")).encode())
        for n, i in enumerate(chosen)
    ]


def _pods(template: dict[str, Any], count: int, seed: int) -> list[bytes]:
    """New replicas (new UIDs) of random Deployments, pre-encoded."""
    return [pod for _, pod in _replicas(template, count, seed)]


def _serve_argv(cluster: Path, port: int, server: str) -> tuple[list[str], Path]:
    """The command line for ``server``: a server name, or ``NAME@DIR`` for the code in checkout
    DIR with its default server (e.g. ``uvicorn@../main``: the main branch, "before"); a suffix
    ``+always`` adds ``--refusals always`` (every filter answer with its refusal maps, as before
    2026-12-02 15:30 UTC; only for code that has the flag)."""
    server, _, refusals = server.partition("+")
    name, _, code = server.partition("@")
    argv = [sys.executable, "-m", "extender.cli", "serve", "--cluster", str(cluster)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    if refusals:
        argv += ["--refusals", refusals]
    if code:
        return argv, Path(code).resolve()
    return [*argv, "--server", name], ROOT


def _spillover(
    cluster: Path,
    names: bytes | list[bytes],
    template: dict[str, Any],
    *,
    server: str,
    client: str,
    checks: _Checks,
    seconds: float,
    pairs: int = 20_000,
) -> dict[str, Any]:
    port = _free_port()
    argv, code = _serve_argv(cluster, port, server)
    env = {**os.environ, "PYTHONPATH": str(code)}
    process = Server(argv, port, env=env, cwd=code)
    try:
        drive = functools.partial(_drive, process, nodes=names, checks=checks, client=client)
        warm = _replicas(template, 200, seed=1)
        drive(warm, seconds=5, max_pairs=len(warm))
        pods = _replicas(template, pairs, seed=2)
        return {**drive(pods, seconds=seconds, max_pairs=len(pods)), "ledger": _ledger(port)}
    finally:
        process.stop()


def _ledger(port: int) -> int:
    """The server's live reservations (its metric).  Nothing here binds a pod, so none is ever
    confirmed: each lives its TTL (30 s), where a cluster's watch drops it once the pod is bound;
    the ledger holds the run's last 30 s of managed pods, not the few a cluster has in flight."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    for line in text.splitlines():
        if line.startswith("spillover_extender_ledger_reservations "):
            return int(float(line.split()[1]))
    return -1


def run_size(
    size: int,
    *,
    servers: list[str],
    clients: list[str],
    seconds: float,
    naive_seconds: float,
    repeat: int,
    profile: bool,
    shuffle: int = 0,
    tmp: Path,
) -> dict[str, Any]:
    nodes, objects, template = _cluster(size)
    cluster = tmp / f"cluster-{size}.json"
    cluster.write_text(json.dumps({"items": [*nodes, *objects]}))
    names = json.dumps([n["metadata"]["name"] for n in nodes], separators=(",", ":")).encode()
    offers: bytes | list[bytes] = names
    if shuffle:  # kube-scheduler filters in parallel: the feasible list's order varies
        rng = random.Random(size)
        orders = [[n["metadata"]["name"] for n in nodes] for _ in range(shuffle)]
        for order in orders:
            rng.shuffle(order)
        offers = [json.dumps(o, separators=(",", ":")).encode() for o in orders]
    full = json.dumps({"metadata": {}, "items": nodes}).encode()
    result: dict[str, Any] = {"size": size, "names_bytes": len(names), "full_bytes": len(full)}
    # The answers the runs will get, decoded and checked once before any run is timed: each
    # server answers 4,000 pods (the same seeds as the timed runs) untimed (servers that answer
    # in other bytes, e.g. main with the refusal maps, would otherwise decode theirs in the clock).
    checks = _Checks(
        [offers] if isinstance(offers, bytes) else offers, nodes[-1]["metadata"]["name"]
    )
    for server in servers if "new" in clients else ():
        _spillover(
            cluster,
            offers,
            template,
            server=server,
            client="new",
            checks=checks,
            seconds=60,
            pairs=4_000,
        )
    labels = {
        (server, client): server if clients == ["new"] else f"{server}, {client} client"
        for server in servers
        for client in clients
    }
    result["servers"] = {label: [] for label in labels.values()}
    for _ in range(repeat):  # interleaved, so load from other jobs hits every server alike
        for (server, client), label in labels.items():
            result["servers"][label].append(
                _spillover(
                    cluster,
                    offers,
                    template,
                    server=server,
                    client=client,
                    checks=checks,
                    seconds=seconds,
                )
            )
    if profile:
        result["profiles"] = {
            label: _profile(size, cluster, server) for (server, _), label in labels.items()
        }
    if naive_seconds > 0:
        port = _free_port()
        naive = [sys.executable, str(ROOT / "bench/naive_extender.py"), "--cluster", str(cluster)]
        process = Server([*naive, "--port", str(port)], port)
        try:
            pods = _pods(template, 200, seed=3)
            result["naive"] = _drive_old(
                process, pods, key="Nodes", nodes=full, seconds=naive_seconds, max_pairs=len(pods)
            )
        finally:
            process.stop()
    return result


# -- where the time goes -------------------------------------------------------------------------
# The app's share is measured in a child process (the code under test on its PYTHONPATH) that
# calls the ASGI app directly with the bench's bodies: wall time per pair, split by a cProfile
# run into bins by function (C calls are charged to the bin of their caller).  The HTTP server's
# share is the rest of the server's CPU per pair in the HTTP run.
_BINS = (
    ("body read", ("app.py:_read_body",)),
    (
        "request JSON: split, top-level scan, Pod to dict",
        (
            "wire.py:split_node_names",
            "wire.py:locate_node_names",
            "wire.py:_top",
            "wire.py:decode_",
            "wire.py:_pod",
            "is_null",
        ),
    ),
    ("Pod model (pod_from_dict)", ("model.py:", "quantity.py:", "verbs.py:pod", "app.py:_pod")),
    (
        "offered names: find / decode / group",
        (
            "NameLists",
            "wire.py:find",
            "wire.py:parse",
            "decode_node_names",
            "group_offer",
            "verbs.py:offer",
            "_layout",
            "_by_names",
        ),
    ),
    (
        "decision: policy, counts, decide, ledger",
        (
            "verbs.py:filter_pod",
            "verbs.py:prioritize",
            "verbs.py:_",
            "verbs.py:policy",
            "verbs.py:remember",
            "verbs.py:recall",
            "policy.py:",
            "ledger.py:",
            "selectors.py:",
        ),
    ),
    (
        "encoding the answer",
        (
            "wire.py:encode",
            "wire.py:filter_",
            "wire.py:_as_raw",
            "grouped_map",
            "_group_map",
            "_template",
            "wire.py:get",
            "_keys",
            "app.py:_encode_filter",
        ),
    ),
    ("handing the answer to the server", ("app.py:_respond",)),
    ("dispatch, metrics", ("app.py:", "starlette/", "prometheus_client/")),
)


def _bin_of(func: tuple[str, int, str]) -> str | None:
    name = f"{func[0]}:{func[2]}"
    return next((b for b, keys in _BINS if any(k in name for k in keys)), None)


def _app_profile(
    size: int, cluster: Path, pairs: int = 1_500, *, direct: bool = False, refusals: str = ""
) -> dict[str, float]:
    """In the child: CPU ms per pair of the app alone, in total and per bin.  ``direct``: the
    verbs are called as the builtin server calls them (``direct_routes``: body in, answer out),
    else through ASGI as uvicorn and granian call them.  ``refusals``: the ``--refusals``
    setting, if not the default."""
    import asyncio
    import cProfile
    import pstats

    here = Path(__file__).resolve().parent  # this file is extender.py too: not on the path
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    from extender.app import create_app
    from extender.ledger import Ledger
    from extender.settings import Settings
    from extender.snapshot import load_cluster

    nodes, _, template = _cluster(size)
    names = json.dumps([n["metadata"]["name"] for n in nodes], separators=(",", ":")).encode()
    settings = Settings(refusals=refusals) if refusals else Settings()
    app = create_app(state=load_cluster(cluster), ledger=Ledger(), settings=settings)
    decode = msgspec.json.Decoder(_Answer).decode
    spent = [0]
    routes = app.direct_routes() if direct else {}

    async def call(path: str, body: bytes) -> bytes:
        if routes:
            route = routes[path.encode()]
            start = time.thread_time_ns()
            _, _, out = route(body)
            spent[0] += time.thread_time_ns() - start
            return out if isinstance(out, bytes) else b"".join(out)
        headers = [(b"content-length", str(len(body)).encode())]
        scope = {
            "type": "http",
            "method": "POST",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "http_version": "1.1",
            "scheme": "http",
        }
        sent: list[MutableMapping[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        start = time.thread_time_ns()  # CPU time: the machine may be shared
        await app(scope, receive, send)
        spent[0] += time.thread_time_ns() - start
        answer: bytes = sent[1]["body"]
        return answer

    async def drive(pods: list[bytes]) -> None:
        for pod in pods:
            head = b'{"Pod":' + pod + b',"Nodes":null,"NodeNames":'
            accepted = decode(await call("/filter", head + names + b"}")).NodeNames
            await call("/prioritize", head + bytes(accepted) + b"}")

    async def run() -> dict[str, float]:
        await drive(_pods(template, 200, seed=1))
        spent[0] = 0
        await drive(_pods(template, pairs, seed=2))
        app_ms = spent[0] / pairs / 1e6
        profile = cProfile.Profile()
        profile.enable()
        await drive(_pods(template, 500, seed=3))
        profile.disable()
        stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
        shares: dict[str, float] = {}
        for func, (_, _, own, _, callers) in stats.items():
            edges = callers.items() if callers else [(func, (0, 0, own, 0))]
            for caller, edge in edges:
                where = _bin_of(func) or _bin_of(caller)
                if where is None:
                    continue  # the bench's own calls, asyncio: shared out pro rata below
                shares[where] = shares.get(where, 0.0) + edge[2]
        total = sum(shares.values())
        return {"app_ms": app_ms, **{k: v / total * app_ms for k, v in shares.items()}}

    return asyncio.run(run())


def _profile(size: int, cluster: Path, server: str) -> dict[str, float]:
    _, code = _serve_argv(cluster, 0, server)
    argv = [sys.executable, __file__, "--profile-child", str(size), "--cluster", str(cluster)]
    server, _, refusals = server.partition("+")
    if refusals:
        argv += ["--profile-refusals", refusals]
    child = subprocess.run(
        [*argv, "--profile-direct"] if server.partition("@")[0] == "builtin" else argv,
        env={**os.environ, "PYTHONPATH": str(code)},
        cwd=code,
        capture_output=True,
        text=True,
        check=True,
    )
    profile: dict[str, float] = json.loads(child.stdout)
    return profile


def _machine() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu}, Python {platform.python_version()}"


_CLIENTS: dict[tuple[str, ...], str] = {
    ("new",): (
        "The client (this process, `--clients new`) writes each request with one `sendmsg` of\n"
        "pre-encoded parts and reads each answer with `recv_into` into one reused buffer; every\n"
        "answer is checked: its bytes equal an answer the same Deployment got before (memcmp), or\n"
        "it is decoded in full and checked against the bench's policies (`_Checks`).\n"
    ),
    ("old",): (
        "The client (this process, `--clients old`, as before 2026-12-02 13:00 UTC) sends joined\n"
        "bodies on a raw socket, reads every answer into new bytes and checks its status; filter's\n"
        "answer is scanned by msgspec for its NodeNames, which prioritize gets.\n"
    ),
}
_CLIENTS[("new", "old")] = _CLIENTS[("old", "new")] = (
    'Each server is driven by both bench clients in turn (rows "new client" / "old client"):\n'
    + _CLIENTS[("new",)]
    + "The old client (before 2026-12-02 13:00 UTC) joins bodies, reads answers into new bytes\n"
    "and scans filter's answer with msgspec for its NodeNames; it checks only the status.\n"
)

SCHEDULER_PODS_PER_S = (79, 45)
"""kube-scheduler v1.36 alone at 5,000 nodes on a 2-core machine (DESIGN.md section 4; issue 13)."""


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ranked = sorted(runs, key=lambda m: m["pairs_per_s"])
    return ranked[(len(ranked) - 1) // 2]


def _table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| nodes | server | runs | pairs/s best / median | filter p50 / p99 ms "
        "| prioritize p50 / p99 ms | server CPU ms/pair | RSS MB | ledger | client CPU (ms/pair) "
        "| est. scheduler speed with extender (79 / 45 pods/s alone) |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        for server, runs in r["servers"].items():
            m = _median_run(runs)
            best = max(x["pairs_per_s"] for x in runs)
            ratios = " / ".join(
                f"{(1 / alone) / (1 / alone + m['pair_ms'] / 1000):.3f}x"
                for alone in SCHEDULER_PODS_PER_S
            )
            lines.append(
                f"| {r['size']:,} | {server} | {len(runs)} "
                f"| {best:,.0f} / {m['pairs_per_s']:,.0f} "
                f"| {m['filter_p50']:.2f} / {m['filter_p99']:.2f} "
                f"| {m['prioritize_p50']:.2f} / {m['prioritize_p99']:.2f} "
                f"| {m['server_ms_per_pair']:.2f} | {max(x['rss_mb'] for x in runs):.0f} "
                f"| {m.get('ledger', '')} "
                f"| {m['client_cpu']:.0%} ({m['client_ms_per_pair']:.2f}) | {ratios} |"
            )
        if "naive" in r:
            m = r["naive"]
            lines.append(
                f"| {r['size']:,} | naive stdlib (full Nodes) | 1 | {m['pairs_per_s']:,.1f} "
                f"| {m['filter_p50']:.2f} / {m['filter_p99']:.2f} "
                f"| {m['prioritize_p50']:.2f} / {m['prioritize_p99']:.2f} "
                f"| {m['server_ms_per_pair']:.2f} | {m['rss_mb']:.0f} | | {m['client_cpu']:.0%} | |"
            )
    return "\n".join(lines)


def _profiles(results: list[dict[str, Any]]) -> str:
    bins = [name for name, _ in _BINS]
    lines = [
        "| nodes | server | app ms/pair | " + " | ".join(bins) + " | HTTP server (the rest) |",
        "| ---: | --- | ---: |" + " ---: |" * (len(bins) + 1),
    ]
    for r in results:
        for server, p in r.get("profiles", {}).items():
            rest = _median_run(r["servers"][server])["server_ms_per_pair"] - p["app_ms"]
            cells = " | ".join(f"{p.get(name, 0.0):.3f}" for name in bins)
            lines.append(f"| {r['size']:,} | {server} | {p['app_ms']:.3f} | {cells} | {rest:.3f} |")
    if len(lines) == 2:
        return ""
    return (
        "\nWhere a pair's time goes, ms per filter+prioritize pair: the app alone (ASGI calls in "
        "one process,\nCPU time, split by cProfile into bins, C calls charged to their caller), "
        "and the rest of the\nserver's CPU per pair in the HTTP run above (parsing, framing, "
        "socket I/O, the event loop):\n\n" + "\n".join(lines) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,5000,10000")
    parser.add_argument(
        "--servers",
        default="builtin,uvicorn,granian",
        help="HTTP servers to compare: NAME, NAME@DIR (the code in DIR), either +always "
        "(--refusals always)",
    )
    parser.add_argument(
        "--clients",
        default="new",
        help="bench clients to drive each server with: new (since 2026-12-02 13:00 UTC), old",
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="per size and server")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size and server")
    parser.add_argument("--naive-seconds", type=float, default=6.0, help="0: skip the baseline")
    parser.add_argument("--profile", action="store_true", help="where a pair's time goes")
    parser.add_argument(
        "--shuffle", type=int, default=0, help="offer N orders of the node list in turn"
    )
    parser.add_argument("--profile-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cluster", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile-direct", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile-refusals", default="", help=argparse.SUPPRESS)
    parser.add_argument("--note", default="", help="a line for RESULTS.md (e.g. machine load)")
    parser.add_argument("--no-append", action="store_true", help="do not write bench/RESULTS.md")
    args = parser.parse_args()
    if args.profile_child:
        profile = _app_profile(
            args.profile_child,
            args.cluster,
            direct=args.profile_direct,
            refusals=args.profile_refusals,
        )
        print(json.dumps(profile))
        return
    servers = args.servers.split(",")
    results = []
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            print(f"{size} nodes ...", file=sys.stderr, flush=True)
            results.append(
                run_size(
                    size,
                    servers=servers,
                    clients=args.clients.split(","),
                    seconds=args.seconds,
                    naive_seconds=args.naive_seconds,
                    repeat=args.repeat,
                    profile=args.profile,
                    shuffle=args.shuffle,
                    tmp=Path(tmp),
                )
            )
    load = max(load, os.getloadavg()[0])
    sizes = ", ".join(
        f"{r['size']:,} nodes: names {r['names_bytes'] / 1e3:,.0f} kB, full Nodes {r['full_bytes'] / 1e6:,.1f} MB"
        for r in results
    )
    shuffled = (
        f"Filter is offered {args.shuffle} orders of the node list in turn (kube-scheduler's "
        "parallel filter reorders the feasible nodes from pod to pod).\n"
        if args.shuffle
        else ""
    )
    section = (
        f"\n## Extender: filter+prioritize pairs ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n\n"
        f"Machine: {_machine()}; load average up to {load:.1f} during the run"
        f"{' (shared with other jobs: a loaded machine)' if load > 1.5 else ''}.  "
        f"{args.note}\n"
        "`bench/extender.py`: `spillover-extender serve --cluster` in one process per server, one\n"
        "persistent HTTP/1.1 connection driven the way kube-scheduler's serial cycle does (pod after\n"
        "pod: filter offered every node, then prioritize offered what filter accepted); 1,000\n"
        "Deployments, 500 ResourcePolicies (`ecs max 3 -> eci` on every other one), each pod a new\n"
        "replica.  Spillover gets node names (`nodeCacheCapable: true`); the naive stdlib extender\n"
        f"(`bench/naive_extender.py`) gets full Node objects.  Request sizes: {sizes}.\n"
        f"{_CLIENTS.get(tuple(args.clients.split(',')), '')}"
        f"{shuffled}"
        "Latencies and CPU are those of the median run; ledger: the server's live reservations at\n"
        "the end of that run (nothing binds the bench's pods, so each lives its 30 s TTL; a\n"
        "cluster's watch confirms it once the pod is bound).  The last column is an *estimate*: the\n"
        "scheduler's own cycle (1/79 s or 1/45 s per pod at 5,000 nodes, DESIGN.md section 4) plus\n"
        "the extender's filter+prioritize round trips, which the serial cycle waits for; it leaves\n"
        "out kube-scheduler's own cost of encoding the request and decoding the answer, and the CPU\n"
        "the extender takes from the control plane on a shared machine.\n\n"
        f"{_table(results)}\n{_profiles(results)}"
    )
    publish(section, append=not args.no_append)


def publish(section: str, *, append: bool) -> None:
    """Print a results section and, unless told not to, append it to bench/RESULTS.md."""
    print(section)
    if append:
        with open(ROOT / "bench/RESULTS.md", "a") as f:
            f.write(section)


if __name__ == "__main__":
    main()
