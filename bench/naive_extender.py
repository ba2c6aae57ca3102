"""A naive extender, the baseline of ``bench/extender.py``: how people usually write one.

Standard library only: ``http.server`` and ``json``.  kube-scheduler sends full Node objects
(``nodeCacheCapable: false``); every call parses the whole body, finds the pod's policy, walks
every pod of the cluster to count the workload's replicas per unit, and re-encodes the accepted
Node objects.  Same keep-N-on-ECS policy as Spillover, no caching, no reservations.

    python bench/naive_extender.py --cluster cluster.json --port 8899
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

CLUSTER: dict[str, Any] = {}


def _is_eci(node: dict[str, Any]) -> bool:
    labels = node["metadata"].get("labels") or {}
    taints = (node.get("spec") or {}).get("taints") or []
    return labels.get("type") == "virtual-kubelet" or any(
        t.get("key") == "virtual-kubelet.io/provider" for t in taints
    )


def _workload(pod: dict[str, Any]) -> tuple[str, str]:
    meta = pod["metadata"]
    owners = meta.get("ownerReferences") or [{"name": meta["name"]}]
    name = owners[0]["name"]
    template_hash = (meta.get("labels") or {}).get("pod-template-hash")
    if template_hash and name.endswith("-" + template_hash):
        name = name[: -len(template_hash) - 1]
    return meta.get("namespace", "default"), name


def _policy(pod: dict[str, Any]) -> dict[str, Any] | None:
    meta = pod["metadata"]
    labels = meta.get("labels") or {}
    for policy in CLUSTER["policies"]:
        if policy["metadata"]["namespace"] != meta.get("namespace"):
            continue
        wanted = policy["spec"]["selector"]["matchLabels"]
        if all(labels.get(k) == v for k, v in wanted.items()):
            found: dict[str, Any] = policy
            return found
    return None


def _wants_ecs(pod: dict[str, Any], policy: dict[str, Any]) -> bool:
    nodes = {n["metadata"]["name"]: n for n in CLUSTER["nodes"]}
    me = _workload(pod)
    on_ecs = 0
    for other in CLUSTER["pods"]:  # every pod of the cluster, every call
        node = nodes.get(other["spec"].get("nodeName", ""))
        if node is not None and _workload(other) == me and not _is_eci(node):
            on_ecs += 1
    limit = policy["spec"]["units"][0].get("max")
    return limit is None or on_ecs < limit


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # or every answer waits 40 ms for a delayed ACK

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        args = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        pod = args["Pod"]
        items = args["Nodes"]["items"]
        policy = _policy(pod)
        if policy is None:
            keep = items
        else:
            ecs = _wants_ecs(pod, policy)
            keep = [n for n in items if _is_eci(n) != ecs]
        if self.path.endswith("/filter"):
            kept_names = {n["metadata"]["name"] for n in keep}
            refused = {
                n["metadata"]["name"]: "policy"
                for n in items
                if n["metadata"]["name"] not in kept_names
            }
            answer: Any = {
                "Nodes": {"items": keep},
                "NodeNames": None,
                "FailedNodes": {},
                "FailedAndUnresolvableNodes": refused,
                "Error": "",
            }
        else:
            kept = {n["metadata"]["name"] for n in keep} if policy else set()
            answer = [
                {"Host": n["metadata"]["name"], "Score": 10 if n["metadata"]["name"] in kept else 0}
                for n in items
            ]
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--port", type=int, default=8899)
    args = parser.parse_args()
    with open(args.cluster) as f:
        items = json.load(f)["items"]
    CLUSTER["nodes"] = [o for o in items if o["kind"] == "Node"]
    CLUSTER["pods"] = [o for o in items if o["kind"] == "Pod"]
    CLUSTER["policies"] = [o for o in items if o["kind"] == "ResourcePolicy"]
    HTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
