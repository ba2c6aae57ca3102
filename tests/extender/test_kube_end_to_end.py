"""In-process end to end: filter (extender.verbs) -> bind through the API -> watch confirms.

kube-scheduler's cycle is serial but bindings land asynchronously, so each replica is filtered
before the cache has seen the previous ones bound; the ledger is what keeps the count exact.
"""

import asyncio
import contextlib
import itertools
import pathlib
import shutil
import socket
import sys

import aiohttp
import pytest
from kube_emulator import KubeEmulator, make_node, make_pod, make_policy, until
from kubernetes_asyncio import client

from extender.kube import ApiBinder, ClusterWatch, load_kube_config
from extender.ledger import Ledger
from extender.metrics import Metrics
from extender.model import NodeKind, pod_from_dict
from extender.policy import ResourcePolicy
from extender.snapshot import ClusterState
from extender.verbs import Caches, Offer, filter_pod, group_offer, record_bind

pytestmark = pytest.mark.integration

REPLICAS = 50
ECS_MAX = 10


async def test_fifty_replicas_keep_exactly_ten_on_ecs(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    nodes = [make_node(f"ecs-{i}") for i in range(3)] + [make_node("eci-0", eci=True)]
    kube_api.create_all(nodes)
    kube_api.create(make_policy("web", "shop", match_labels={"app": "web"}, ecs_max=ECS_MAX))
    state, ledger = ClusterState(synced=False), Ledger(ttl=3600)
    watch = ClusterWatch(kube_client, state, ledger, metrics=Metrics())
    task = asyncio.create_task(watch.run())
    try:
        async with asyncio.timeout(10):  # safety net
            await watch.wait_synced()
        owner = ("ReplicaSet", "web-5d8f")
        pods = [
            kube_api.create(make_pod(f"web-{i:02}", "shop", owner=owner, app="web"))
            for i in range(REPLICAS)
        ]
        names = [n["metadata"]["name"] for n in nodes]
        binder = ApiBinder(kube_client)
        caches = Caches()
        loop = asyncio.get_running_loop()

        def offer(policy: ResourcePolicy) -> Offer:
            return group_offer(policy, names, nodes=state.nodes)

        for raw in pods:
            pod = pod_from_dict(raw)
            outcome = filter_pod(
                state=state,
                ledger=ledger,
                caches=caches,
                pod=pod,
                offer=offer,
                now=loop.time(),
            )
            assert outcome.accepted, outcome.detail
            node = outcome.accepted[0]
            await binder.bind(namespace=pod.namespace, name=pod.name, uid=pod.uid, node=node)
            record_bind(ledger=ledger, uid=pod.uid, node=node, now=loop.time())

        await until(
            lambda: sum(1 for p in state.pods.values() if p.node_name) == REPLICAS,
            what="every binding seen by the watch",
        )
        kinds = [state.nodes[p.node_name].kind for p in state.pods.values()]
        assert kinds.count(NodeKind.ECS) == ECS_MAX
        assert kinds.count(NodeKind.ECI) == REPLICAS - ECS_MAX
        assert len(ledger) == 0  # every reservation confirmed by the watch
        on_server = [p["spec"]["nodeName"] for p in kube_api.objects_of("pods", "shop")]
        assert sum(1 for n in on_server if n.startswith("ecs-")) == ECS_MAX
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_load_kube_config_reads_the_given_file(kube_api: KubeEmulator) -> None:
    kube_api.create(make_node("ecs-1"))
    assert kube_api.kubeconfig_path is not None
    api = await load_kube_config(str(kube_api.kubeconfig_path))
    async with api:
        nodes = await client.CoreV1Api(api).list_node()
    assert [n.metadata.name for n in nodes.items] == ["ecs-1"]


async def test_cli_serve_syncs_from_the_api_server(kube_api: KubeEmulator) -> None:
    """``spillover-extender serve --kubeconfig`` as a child process, watching the emulator."""
    kube_api.create(make_node("ecs-1"))
    kube_api.create(make_policy("web", "shop", match_labels={"app": "web"}, ecs_max=1))
    assert kube_api.kubeconfig_path is not None
    process, port = await start_serve(kube_api.kubeconfig_path)
    try:
        async with aiohttp.ClientSession() as http:
            await until_ready(http, f"http://127.0.0.1:{port}/readyz", process)
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                metrics = await response.text()
        assert "spillover_extender_cache_synced 1.0" in metrics
        # nodes, pods, statefulsets, resourcepolicies: ready comes after the lists, the watches
        # open right after
        await kube_api.wait_watching(None, count=4)
    finally:
        process.terminate()
        await process.communicate()


async def start_serve(
    kubeconfig: pathlib.Path, *options: str
) -> tuple[asyncio.subprocess.Process, int]:
    """``spillover-extender serve --kubeconfig`` as a child process on a free local port."""
    with socket.socket() as probe:  # a free port for the child
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from extender.cli import main; main()",
        "serve",
        "--kubeconfig",
        str(kubeconfig),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *options,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    return process, port


async def until_ready(
    http: aiohttp.ClientSession, url: str, process: asyncio.subprocess.Process
) -> None:
    async with asyncio.timeout(60):  # safety net: interpreter start-up and imports
        for _poll in itertools.count():
            if process.returncode is not None:
                assert process.stderr is not None
                pytest.fail(f"extender exited: {(await process.stderr.read()).decode()}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)


async def test_cli_serve_retries_a_failed_connection(
    kube_api: KubeEmulator, tmp_path: pathlib.Path
) -> None:
    """A kubeconfig that cannot be loaded at start is retried, not given up: once it is fixed,
    /readyz turns 200; ``--no-deletion-cost`` patches nothing."""
    kube_api.create(make_node("ecs-1"))
    kube_api.create(make_pod("web-1", "shop", owner=("ReplicaSet", "web-5d8f"), node="ecs-1"))
    kube_api.create(make_policy("web", "shop", match_labels={"app": "web"}, ecs_max=1))
    kubeconfig = tmp_path / "late-kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\n")  # no context yet
    process, port = await start_serve(kubeconfig, "--no-deletion-cost")
    try:
        assert process.stderr is not None
        async with asyncio.timeout(60):  # safety net
            while b"connection failed" not in await process.stderr.readline():
                pass
        assert kube_api.kubeconfig_path is not None
        shutil.copyfile(kube_api.kubeconfig_path, kubeconfig)
        async with aiohttp.ClientSession() as http:
            await until_ready(http, f"http://127.0.0.1:{port}/readyz", process)
        assert kube_api.requests_to("PATCH", "/pods/") == []
    finally:
        process.terminate()
        await process.communicate()
