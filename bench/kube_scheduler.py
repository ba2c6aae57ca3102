"""A real kube-scheduler's throughput with and without the extender, on a real control plane.

Issue 13's goal: kube-scheduler keeps >= 0.9x its own throughput with Spillover registered.
This bench measures it.  It starts etcd, kube-apiserver and kube-scheduler (real binaries:
``bench/k8s/build.sh`` builds v1.20.2 from Debian's source package, the newest Kubernetes this
machine's registries offer; etcd is Debian's), writes the cluster of ``bench/extender.py`` into
the API server (5,000 nodes by default, one of them the ECI virtual node; 1,000 Deployments'
pods, 2 bound replicas each; a ResourcePolicy ``ecs max 3 -> eci`` on every other one, 500 in
all) and then, per run, creates ``--pods`` pending pods (each a new replica of a random
Deployment, tolerating the virtual node as Spillover's webhook makes them) while no scheduler
runs, starts kube-scheduler and times the binds it makes, seen through a watch:

- ``alone``: kube-scheduler as ``manifests/overlays/default-scheduler/scheduler-config.yaml``
  configures it (every feasible node scored, bin-packing), no Spillover process at all;
- ``extender``: Spillover deployed as the manifests deploy it: the scheduler's extender
  (``overlays/default-scheduler``: loopback, ``--no-deletion-cost``), registered as that file
  registers it (filter, prioritize, preempt, weight 5, nodeCacheCapable, ignorable), and the
  extender Deployment of ``base/`` (HTTPS; its mutating webhook registered with the API server;
  the pod-deletion-cost reconciler), each fed by its own list+watch of this API server;
- ``extender+managed``: the same with the ``managedResources`` opt-in of manifests/README.md
  (the webhook adds ``spillover.dev/managed`` to managed pods; kube-scheduler calls the extender
  only for those).

The modes take turns run by run, on one control plane.  Throughput is binds per second between
the first and the last bind (kube-scheduler's QPS limits are its defaults, 50/100, as a user
has them).  The extender's placement is checked too: no managed Deployment has more than 3
pods on ECS nodes.  Both the scheduler and the API server share the machine's cores with the
extender, as they do on a small control-plane node; read a row against the other mode's rows of
the same invocation only.

Optional: without the binaries it prints why it skipped and exits 0; nothing in ``make test``
needs it.

    sh bench/k8s/build.sh                      # once: bench/k8s/bin/{kube-apiserver,kube-scheduler}
    .venv/bin/python bench/kube_scheduler.py [--nodes 5000] [--pods 3000] [--runs 2] [--modes ...]

Each row also says where the CPU went (scheduler, API server and etcd, both extender processes)
and what the scheduler's extender served (calls and mean time per verb, from its /metrics);
``--profile PY_SPY`` samples the scheduler's extender with py-spy.
"""

from __future__ import annotations

import argparse
import base64
import copy
import http.client
import importlib.util
import json
import os
import platform
import random
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_extender", ROOT / "bench/extender.py")
assert _spec is not None
assert _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench
_spec.loader.exec_module(bench)

TOKEN = "spillover-bench"
MAX_ON_ECS = 3  # the bench's policies: ecs max 3 -> eci


def _free_port() -> int:
    port: int = bench._free_port()
    return port


class Api:
    """A bearer-token HTTPS client of the bench's API server, one connection per thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._ctx = ssl.create_default_context()
        self._ctx.check_hostname = False
        self._ctx.verify_mode = ssl.CERT_NONE
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPSConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection(
                "127.0.0.1", self.port, context=self._ctx, timeout=120
            )
            self._local.conn = conn
        return conn

    def call(
        self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201)
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        for attempt in range(5):
            conn = self._conn()
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
            except (OSError, http.client.HTTPException):
                self._local.conn = None
                conn.close()
                if attempt == 4:
                    raise
                time.sleep(0.5)
                continue
            if resp.status == 429 and attempt < 4:
                time.sleep(0.2)
                continue
            if resp.status not in ok:
                raise RuntimeError(f"{method} {path}: {resp.status} {payload[:300]!r}")
            if resp.getheader("Content-Type", "").startswith("application/json"):
                return json.loads(payload)
            return payload
        raise RuntimeError(f"{method} {path}: no answer")

    def watch(self, path: str) -> http.client.HTTPResponse:
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self._ctx, timeout=600)
        conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"watch {path}: {resp.status}")
        return resp


class ControlPlane:
    """etcd + kube-apiserver in a temporary directory; kube-scheduler started per run."""

    def __init__(self, bindir: Path, workdir: Path) -> None:
        self.bindir, self.dir = bindir, workdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.api_port = _free_port()
        self.kubeconfig = workdir / "kubeconfig"

    def _start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def start(self) -> Api:
        d = self.dir
        subprocess.run(
            ["openssl", "genrsa", "-out", str(d / "sa.pem"), "2048"],
            check=True,
            capture_output=True,
        )
        (d / "tokens.csv").write_text(f'{TOKEN},admin,admin,"system:masters"\n')
        etcd_port, peer_port = _free_port(), _free_port()
        self._start(
            "etcd",
            [
                shutil.which("etcd") or "etcd",
                f"--data-dir={d / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                "--quota-backend-bytes=8589934592",
            ],
        )
        self._start(
            "kube-apiserver",
            [
                str(self.bindir / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                f"--secure-port={self.api_port}",
                "--bind-address=127.0.0.1",
                f"--cert-dir={d / 'certs'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={d / 'sa.pem'}",
                f"--service-account-signing-key-file={d / 'sa.pem'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=AlwaysAllow",
                f"--token-auth-file={d / 'tokens.csv'}",
                "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
                "--profiling=false",
            ],
        )
        self.kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "bench",
                            "cluster": {
                                "server": f"https://127.0.0.1:{self.api_port}",
                                "insecure-skip-tls-verify": True,
                            },
                        }
                    ],
                    "users": [{"name": "bench", "user": {"token": TOKEN}}],
                    "contexts": [
                        {"name": "bench", "context": {"cluster": "bench", "user": "bench"}}
                    ],
                    "current-context": "bench",
                }
            )
        )
        api = Api(self.api_port)
        deadline = time.monotonic() + 90
        while True:
            try:
                api.call("GET", "/readyz", ok=(200,))
                return api
            except (OSError, RuntimeError, ValueError, http.client.HTTPException):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"kube-apiserver not ready; see {d / 'kube-apiserver.log'}"
                    ) from None
                time.sleep(0.5)

    def scheduler(
        self,
        extender_port: int | None,
        tag: str,
        *,
        managed_resource: str = "",
        scoring: str = "bin-packing",
    ) -> subprocess.Popen[bytes]:
        """kube-scheduler as ``manifests/overlays/default-scheduler/scheduler-config.yaml``
        configures it, in v1.20's v1beta1 terms: every feasible node scored, bin-packing
        (``NodeResourcesMostAllocated`` over cpu, memory and GPUs; no balanced allocation) and,
        with an extender port, the extender entry of that file (with ``managedResources`` when
        ``managed_resource`` is set: the opt-in of manifests/README.md).  ``scoring="default"``:
        kube-scheduler's own default scoring instead (least allocated, balanced allocation)."""
        config: dict[str, Any] = {
            "apiVersion": "kubescheduler.config.k8s.io/v1beta1",
            "kind": "KubeSchedulerConfiguration",
            "clientConnection": {"kubeconfig": str(self.kubeconfig)},
            "leaderElection": {"leaderElect": False},
            "percentageOfNodesToScore": 100,
            "profiles": [
                {
                    "schedulerName": "default-scheduler",
                    "plugins": {
                        "score": {
                            "disabled": [
                                {"name": "NodeResourcesLeastAllocated"},
                                {"name": "NodeResourcesBalancedAllocation"},
                            ],
                            "enabled": [{"name": "NodeResourcesMostAllocated", "weight": 1}],
                        }
                    },
                    "pluginConfig": [
                        {
                            "name": "NodeResourcesMostAllocated",
                            "args": {
                                "resources": [
                                    {"name": "cpu", "weight": 1},
                                    {"name": "memory", "weight": 1},
                                    {"name": "nvidia.com/gpu", "weight": 1},
                                ]
                            },
                        }
                    ],
                }
            ],
        }
        if scoring == "default":
            del config["profiles"]
        if extender_port is not None:
            entry: dict[str, Any] = {
                "urlPrefix": f"http://127.0.0.1:{extender_port}",
                "filterVerb": "filter",
                "prioritizeVerb": "prioritize",
                "preemptVerb": "preempt",
                "weight": 5,
                "enableHTTPS": False,
                "nodeCacheCapable": True,
                "httpTimeout": "3s",
                "ignorable": True,
            }
            if managed_resource:
                entry["managedResources"] = [{"name": managed_resource, "ignoredByScheduler": True}]
            config["extenders"] = [entry]
        path = self.dir / f"scheduler-{tag}.yaml"
        path.write_text(yaml.safe_dump(config))
        return self._start(
            f"kube-scheduler-{tag}",
            [
                str(self.bindir / "kube-scheduler"),
                f"--config={path}",
                "--port=0",
                "--secure-port=0",
                "--v=1",
            ],
        )

    def stop(self) -> None:
        for proc in reversed(self.procs):
            _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    meta = obj.get("metadata", {})
    for key in (
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "managedFields",
        "generation",
        "selfLink",
    ):
        meta.pop(key, None)
    for ref in meta.get("ownerReferences", []):
        ref.setdefault("uid", "00000000-0000-0000-0000-000000000000")
    return obj


def populate(api: Api, nodes_count: int) -> dict[str, Any]:
    """Namespaces, the CRD, nodes, bound pods and policies; returns the pod template."""
    nodes, objects, template = bench._cluster(nodes_count)
    for i in range(bench.NAMESPACES):
        api.call("POST", "/api/v1/namespaces", {"metadata": {"name": f"ns-{i}"}})
    crd = yaml.safe_load((ROOT / "manifests/crd/resourcepolicy.yaml").read_text())
    api.call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    for _ in range(120):
        got = api.call(
            "GET",
            f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}",
        )
        if any(
            c["type"] == "Established" and c["status"] == "True"
            for c in (got.get("status") or {}).get("conditions") or []
        ):
            break
        time.sleep(0.5)
    names = {n["metadata"]["name"] for n in nodes}

    def create(obj: dict[str, Any]) -> None:
        obj = _clean(obj)
        kind = obj.get("kind")
        if kind == "Node":
            api.call("POST", "/api/v1/nodes", obj)
        elif kind == "Pod":
            ns = obj["metadata"]["namespace"]
            assert obj["spec"].get("nodeName") in names
            api.call("POST", f"/api/v1/namespaces/{ns}/pods", obj)
        else:
            ns = obj["metadata"]["namespace"]
            api.call("POST", f"/apis/spillover.dev/v1alpha1/namespaces/{ns}/resourcepolicies", obj)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, nodes))
        list(pool.map(create, objects))
    pod_template: dict[str, Any] = template
    return pod_template


def _pending_pods(
    template: dict[str, Any], count: int, run: int, seed: int
) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    pods = []
    for k in range(count):
        i = rng.randrange(bench.WORKLOADS)
        pod = _clean(bench._pod(template, i, f"r{run}-{k:05d}"))
        pod["metadata"]["name"] = f"{pod['metadata']['name']}-r{run}-{k:05d}"
        pod["metadata"]["labels"]["bench-run"] = str(run)
        pod["spec"].pop("nodeName", None)
        pod.pop("status", None)
        pods.append(pod)
    return pods


def _watch_binds(
    api: Api, run: int, expected: int, out: dict[str, tuple[float, str]], stop: threading.Event
) -> None:
    query = urllib.parse.urlencode({"watch": "1", "labelSelector": f"bench-run={run}"})
    resp = api.watch(f"/api/v1/pods?{query}")
    while not stop.is_set() and len(out) < expected:
        line = resp.readline()
        if not line:
            break
        event = json.loads(line)
        obj = event.get("object", {})
        node = obj.get("spec", {}).get("nodeName")
        name = obj.get("metadata", {}).get("name")
        if node and name and name not in out:
            out[name] = (time.monotonic(), node)
    resp.close()


def _extender(
    cp: ControlPlane,
    port: int,
    name: str,
    extra: list[str],
    *,
    tls: tuple[Path, Path] | None = None,
) -> subprocess.Popen[bytes]:
    exe = ROOT / ".venv/bin/spillover-extender"
    argv = [
        str(exe),
        "serve",
        f"--kubeconfig={cp.kubeconfig}",
        "--host=127.0.0.1",
        f"--port={port}",
        "--log-level=warning",
        *extra,
    ]
    if tls is not None:
        argv += [f"--tls-cert={tls[0]}", f"--tls-key={tls[1]}"]
    return _ready(cp, cp._start(name, argv), port, name, None if tls is None else tls[0])


def _ready(
    cp: ControlPlane,
    proc: subprocess.Popen[bytes],
    port: int,
    name: str,
    cafile: Path | None = None,
) -> subprocess.Popen[bytes]:
    """``proc`` once its /readyz answers 200 (two minutes at most)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            conn = _connect(port, cafile, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{name} not ready; see {cp.dir / (name + '.log')}")


def _passthrough(cp: ControlPlane, port: int, name: str) -> subprocess.Popen[bytes]:
    """``bench/passthrough_extender.py`` on loopback, once it answers."""
    argv = [sys.executable, str(ROOT / "bench/passthrough_extender.py"), str(port)]
    return _ready(cp, cp._start(name, argv), port, name)


def _connect(port: int, cafile: Path | None, *, timeout: float) -> http.client.HTTPConnection:
    """A connection to an extender process on loopback: HTTPS trusting ``cafile`` if given."""
    if cafile is None:
        return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    ctx = ssl.create_default_context(cafile=str(cafile))
    return http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=ctx)


WEBHOOK = "spillover-bench"


def _serving_cert(d: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the webhook's URL), made once."""
    cert, key = d / "webhook.crt", d / "webhook.key"
    if not cert.exists():
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
        )
    return cert, key


def _register_webhook(api: Api, port: int, cert: Path) -> None:
    """``manifests/base/extender/webhook.yaml``'s webhook, reached by URL instead of Service."""
    hook = yaml.safe_load((ROOT / "manifests/base/extender/webhook.yaml").read_text())
    entry = hook["webhooks"][0]
    entry["clientConfig"] = {
        "url": f"https://127.0.0.1:{port}/mutate",
        "caBundle": base64.b64encode(cert.read_bytes()).decode(),
    }
    hook["metadata"] = {"name": WEBHOOK}
    api.call("POST", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", hook)


def _unregister_webhook(api: Api) -> None:
    api.call(
        "DELETE",
        f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{WEBHOOK}",
        ok=(200, 404),
    )


MODES = ("alone", "extender", "extender+managed", "passthrough", "extender-no-deletion-cost")
MANAGED_RESOURCE = "spillover.dev/managed"


def one_run(
    cp: ControlPlane,
    api: Api,
    template: dict[str, Any],
    mode: str,
    run: int,
    pods: int,
    virtual: str,
    profile: str | None = None,
    scoring: str = "bin-packing",
) -> dict[str, Any]:
    """One run of ``mode``: Spillover deployed as the manifests deploy it, or not at all.

    ``extender``: the scheduler's extender as ``overlays/default-scheduler`` runs it (loopback,
    ``--no-deletion-cost``) plus the extender Deployment of ``base/`` (HTTPS, the mutating
    webhook registered with the API server, the pod-deletion-cost reconciler).
    ``extender+managed``: the same with the ``managedResources`` opt-in (manifests/README.md):
    the webhook adds ``spillover.dev/managed`` to the pods a policy manages and kube-scheduler
    calls the extender only for those.  ``alone``: no Spillover process at all.
    ``extender-no-deletion-cost``: ``extender`` with the reconciler off in the base process too,
    to show what the annotation writes (and their watch events) cost the control plane.
    ``passthrough``: ``bench/passthrough_extender.py`` registered as Spillover is, nothing else:
    what merely being an HTTP extender in Python costs the scheduler on this machine."""
    managed = MANAGED_RESOURCE if mode == "extender+managed" else ""
    ext = base = spy = None
    ext_port = None
    if mode == "passthrough":
        ext_port = _free_port()
        ext = _passthrough(cp, ext_port, f"passthrough-{run}")
    elif mode != "alone":
        cert, key = _serving_cert(cp.dir)
        base_port = _free_port()
        extra = ["--failure-policy=pass", "--reservation-ttl=30"]
        extra += [f"--managed-resource={managed}"] if managed else []
        extra += ["--no-deletion-cost"] if mode == "extender-no-deletion-cost" else []
        base = _extender(cp, base_port, f"spillover-base-{run}", extra, tls=(cert, key))
        _register_webhook(api, base_port, cert)
        ext_port = _free_port()
        ext = _extender(
            cp,
            ext_port,
            f"spillover-sidecar-{run}",
            ["--failure-policy=pass", "--reservation-ttl=30", "--no-deletion-cost"],
        )
    if ext is not None and profile:
        # py-spy samples the scheduler's extender from before the pods exist to the last bind
        # (collapsed stacks: one line per stack, its sample count last), idle time included
        spy = subprocess.Popen(
            [
                profile,
                "record",
                "--idle",
                "--format",
                "raw",
                "--rate",
                "200",
                "-o",
                str(ROOT / f"bench/k8s/last-logs-profile-{run}.txt"),
                "-p",
                str(ext.pid),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)
    batch = _pending_pods(template, pods, run, seed=1000 + run)
    with ThreadPoolExecutor(8) as pool:
        created = list(
            pool.map(
                lambda p: api.call(
                    "POST", f"/api/v1/namespaces/{p['metadata']['namespace']}/pods", p
                ),
                batch,
            )
        )
    marked = sum(
        1
        for p in created
        if MANAGED_RESOURCE
        in (p["spec"]["containers"][0].get("resources") or {}).get("requests", {})
    )
    binds: dict[str, tuple[float, str]] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_binds, args=(api, run, pods, binds, stop), daemon=True)
    watcher.start()
    time.sleep(1.0)  # the watch is open before the scheduler starts
    procs = {"sidecar": ext, "base": base, "apiserver+etcd": None}
    cpu_before = {name: _cpu_of(proc) for name, proc in procs.items() if proc is not None}
    cp_before = sum(_cpu_of(p) for p in cp.procs[:2])
    sched = cp.scheduler(ext_port, f"{mode}-{run}", managed_resource=managed, scoring=scoring)
    deadline = time.monotonic() + max(300.0, pods / 2.0)
    while len(binds) < pods and time.monotonic() < deadline and sched.poll() is None:
        time.sleep(0.2)
    cpu = {name: _cpu_of(procs[name]) - before for name, before in cpu_before.items()}
    cpu["apiserver+etcd"] = sum(_cpu_of(p) for p in cp.procs[:2]) - cp_before
    cpu["scheduler"] = _cpu_of(sched)
    served = _served(ext_port) if ext_port is not None and base is not None else {}
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
    if base is not None:
        served["patches"] = _served(base_port, tls=cert)["patches"]
    stop.set()
    _stop(sched)
    times = sorted(t for t, _ in binds.values())
    on_eci = sum(1 for _, node in binds.values() if node == virtual)
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    violations = _keep_n_violations(api, virtual) if base is not None else 0
    if base is not None:
        _unregister_webhook(api)
    for i in range(bench.NAMESPACES):
        q = urllib.parse.urlencode({"labelSelector": f"bench-run={run}", "gracePeriodSeconds": "0"})
        api.call("DELETE", f"/api/v1/namespaces/ns-{i}/pods?{q}")
    for proc in (ext, base):
        if proc is not None:
            _stop(proc)
    return {
        "mode": mode,
        "run": run,
        "bound": len(binds),
        "pods": pods,
        "marked": marked,
        "span": span,
        "rate": (len(times) - 1) / span if len(times) > 1 else 0.0,
        "on_eci": on_eci,
        "violations": violations,
        "cpu": cpu,
        **served,
    }


def _served(port: int, tls: Path | None = None) -> dict[str, float]:
    """The extender's own account of the run, from its /metrics: calls and mean server time per
    verb (the time kube-scheduler waits beyond it is its client, the wire and the CPU queue),
    and the pod-deletion-cost annotations it wrote."""
    conn = _connect(port, tls, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    sums: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        key, _, value = line.rpartition(" ")
        sums[key] = sums.get(key, 0.0) + float(value)
    out: dict[str, float] = {}
    for verb in ("filter", "prioritize"):
        count = sums.get(f'spillover_extender_request_seconds_count{{verb="{verb}"}}', 0.0)
        total = sums.get(f'spillover_extender_request_seconds_sum{{verb="{verb}"}}', 0.0)
        out[f"{verb}_calls"] = count
        out[f"{verb}_ms"] = 1000 * total / count if count else 0.0
    out["patches"] = sums.get(
        'spillover_extender_deletion_cost_patches_total{outcome="written"}', 0.0
    )
    return out


def _cpu_of(proc: subprocess.Popen[bytes] | None) -> float:
    if proc is None or proc.poll() is not None:
        return 0.0
    with open(f"/proc/{proc.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _keep_n_violations(api: Api, virtual: str) -> int:
    """Managed Deployments (every other one) with more than MAX_ON_ECS pods on ECS nodes."""
    on_ecs: dict[str, int] = {}
    for i in range(bench.NAMESPACES):
        for pod in api.call("GET", f"/api/v1/namespaces/ns-{i}/pods")["items"]:
            node = pod["spec"].get("nodeName")
            if node and node != virtual:
                app = pod["metadata"]["labels"]["app"]
                on_ecs[app] = on_ecs.get(app, 0) + 1
    return sum(1 for app, n in on_ecs.items() if int(app.split("-")[1]) % 2 == 0 and n > MAX_ON_ECS)


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| mode | run | pods bound | with the managed resource | first to last bind s | binds/s "
        "| on the virtual node | managed Deployments over max on ECS | CPU s: scheduler "
        "| apiserver+etcd | extender (scheduler's) | extender (webhook, deletion cost) "
        "| filter calls, mean server ms | prioritize calls, mean server ms "
        "| deletion-cost patches |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | ---: |",
    ]
    for r in rows:
        cpu = r["cpu"]
        spill = r["mode"] not in ("alone", "passthrough")
        lines.append(
            f"| {r['mode']} | {r['run']} | {r['bound']} / {r['pods']} | {r['marked']} "
            f"| {r['span']:.2f} | {r['rate']:.1f} | {r['on_eci']} "
            f"| {r['violations'] if spill else '-'} | {cpu['scheduler']:.1f} "
            f"| {cpu['apiserver+etcd']:.1f} | "
            + (
                f"{cpu['sidecar']:.1f} | {cpu['base']:.1f} | {_calls(r, 'filter')} "
                f"| {_calls(r, 'prioritize')} | {r['patches']:.0f} |"
                if spill
                else f"{cpu['sidecar']:.1f} | - | - | - | - |"
                if "sidecar" in cpu
                else "- | - | - | - | - |"
            )
        )
    return "\n".join(lines)


_SCORING = {
    "bin-packing": "bin-packing, as the manifests configure it",
    "default": "its own default scoring: least allocated, balanced allocation",
}


def _calls(row: dict[str, Any], verb: str) -> str:
    return f"{row[f'{verb}_calls']:.0f}, {row[f'{verb}_ms']:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--bin", default=os.environ.get("SPILLOVER_K8S_BIN", str(ROOT / "bench/k8s/bin"))
    )
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=2, help="runs of each mode, alternated")
    parser.add_argument(
        "--scoring",
        choices=("bin-packing", "default"),
        default="bin-packing",
        help="kube-scheduler's scoring: the manifests' bin-packing, or its own default",
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help=f"comma-separated, run in turn: {', '.join(MODES)}",
    )
    parser.add_argument(
        "--no-publish", action="store_true", help="do not append to bench/RESULTS.md"
    )
    parser.add_argument(
        "--profile",
        metavar="PY_SPY",
        help="path of a py-spy executable: sample the extender in its runs (collapsed stacks "
        "in bench/k8s/last-logs-profile-RUN.txt)",
    )
    parser.add_argument(
        "--note", default="", help="a line about the machine's state for RESULTS.md"
    )
    args = parser.parse_args()
    bindir = Path(args.bin)
    missing = [p for p in ("kube-apiserver", "kube-scheduler") if not (bindir / p).is_file()]
    if missing or not shutil.which("etcd") or not shutil.which("openssl"):
        print(
            f"skipped: needs {', '.join(missing) or 'nothing'} in {bindir} (sh bench/k8s/build.sh) "
            f"and etcd, openssl on the PATH (apt-get install etcd-server openssl)"
        )
        return
    version = subprocess.run(
        [str(bindir / "kube-scheduler"), "--version"], capture_output=True, text=True
    ).stdout.strip()
    started = datetime.now(UTC)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="spillover-kcp-") as tmp:
        cp = ControlPlane(bindir, Path(tmp))
        try:
            api = cp.start()
            t0 = time.monotonic()
            template = populate(api, args.nodes)
            print(f"populated {args.nodes} nodes in {time.monotonic() - t0:.1f} s", file=sys.stderr)
            virtual = bench._cluster(2)[0][-1]["metadata"]["name"]
            rows = []
            modes = args.modes.split(",")
            unknown = sorted(set(modes) - set(MODES))
            if unknown:
                raise SystemExit(
                    f"--modes: unknown mode {unknown[0]!r} (known: {', '.join(MODES)})"
                )
            for run in range(args.runs * len(modes)):
                mode = modes[run % len(modes)]
                row = one_run(
                    cp, api, template, mode, run, args.pods, virtual, args.profile, args.scoring
                )
                print(row, file=sys.stderr)
                rows.append(row)
        finally:
            cp.stop()
            logs = ROOT / "bench/k8s/last-logs"
            shutil.rmtree(logs, ignore_errors=True)
            shutil.copytree(
                tmp, logs, ignore=shutil.ignore_patterns("etcd", "certs", "*.pem", "tokens.csv")
            )
    rates = {m: [r["rate"] for r in rows if r["mode"] == m] for m in modes}
    alone = statistics.median(rates["alone"]) if rates.get("alone") else None
    summary = "; ".join(
        f"{m} {statistics.median(v):.1f}"
        + ("" if m == "alone" or alone is None else f" (**{statistics.median(v) / alone:.2f}x**)")
        for m, v in rates.items()
        if v
    )
    section = (
        f"\n## A real kube-scheduler with and without the extender ({started:%Y-%m-%d %H:%M} UTC)\n\n"
        f"Machine: {os.cpu_count()} CPUs, {platform.python_implementation()} {platform.python_version()}; "
        f"{version} and kube-apiserver built by bench/k8s/build.sh, etcd {_etcd_version()}; "
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after. {args.note}\n"
        f"`bench/kube_scheduler.py --nodes {args.nodes} --pods {args.pods} --runs {args.runs} "
        f"--modes {args.modes} --scoring {args.scoring}`: {args.nodes:,} nodes (one virtual), 1,000 Deployments with 2 bound "
        f"pods each, 500 ResourcePolicies (every other Deployment); per run {args.pods:,} pending pods, "
        f"kube-scheduler ({_SCORING[args.scoring]}) started after they exist, "
        f"modes in turn.\n\n"
        f"{_table(rows)}\n\n"
        f"Median binds/s: {summary} (goal >= 0.9x of alone).\n"
    )
    print(section)
    if not args.no_publish:
        with open(ROOT / "bench/RESULTS.md", "a") as f:
            f.write(section)


def _etcd_version() -> str:
    out = subprocess.run(["etcd", "--version"], capture_output=True, text=True).stdout.split("\n")[
        0
    ]
    return out.replace("etcd Version: ", "")


if __name__ == "__main__":
    main()
