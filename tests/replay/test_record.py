"""``record`` against the loopback API server: list + watch into the trace format."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from kube_emulator import KubeEmulator, make_node, make_pod, until
from kubernetes_asyncio import client

from autoscaler import cli as autoscaler_cli
from autoscaler.replay.record import denied_message, record
from autoscaler.replay.trace import (
    Event,
    NodeAdded,
    NodeRemoved,
    PodCreated,
    PodDeleted,
    ReplicasChanged,
    TraceHeader,
    TraceWriter,
    read_trace,
)
from extender.kube import AccessDenied, BackoffSettings

pytestmark = pytest.mark.integration


class Writer(TraceWriter):
    """Remembers what it wrote, so the test can wait for the watch instead of sleeping."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, TraceHeader(source="test"))
        self.seen: list[Event] = []

    def write(self, event: Event) -> None:
        super().write(event)
        self.seen.append(event)


def deployment(replicas: int) -> dict[str, object]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "2"}}}]},
            },
        },
    }


async def test_record_lists_then_follows(
    kube_api: KubeEmulator, kube_client: client.ApiClient, tmp_path: Path
) -> None:
    kube_api.create(make_node("ecs-1"))
    kube_api.create(make_pod("job-1", "batch", owner=("Job", "etl"), cpu="500m"))
    kube_api.create(make_pod("web-1", "shop", owner=("ReplicaSet", "web-5d8f")))
    kube_api.create(deployment(2))
    path = tmp_path / "trace.jsonl"
    writer = Writer(path)
    stop = asyncio.Event()
    ticks = iter(range(1000))
    task = asyncio.create_task(
        record(kube_client, writer, stop=stop, clock=lambda: float(next(ticks)))
    )
    async with asyncio.timeout(10):
        await kube_api.wait_watching("pods")
        await kube_api.wait_watching("deployments")
        await kube_api.wait_watching("nodes")
        kube_api.patch("deployments", "web", {"spec": {"replicas": 5}}, namespace="shop")
        kube_api.delete("pods", "job-1", namespace="batch")
        await until(
            lambda: (
                any(isinstance(e, PodDeleted) for e in writer.seen)
                and any(isinstance(e, ReplicasChanged) and e.replicas == 5 for e in writer.seen)
            ),
            what="the watch events",
        )
        stop.set()
        written = await task
    writer.close()
    events = read_trace(path).events
    assert written == len(events)
    kinds = [type(e) for e in events]
    assert NodeAdded in kinds
    created = [e for e in events if isinstance(e, PodCreated)]
    assert [e.name for e in created] == ["job-1"]  # web-1 is recorded through its Deployment
    assert created[0].template.requests.cpu_milli == 500
    assert any(isinstance(e, PodDeleted) and e.uid == created[0].uid for e in events)
    replicas = [e.replicas for e in events if isinstance(e, ReplicasChanged)]
    assert replicas == [2, 5]


FAST = BackoffSettings(initial=0.01, maximum=0.05, busy_maximum=0.05)


def recording(
    kube_client: client.ApiClient, tmp_path: Path, namespace: str = ""
) -> tuple[Writer, asyncio.Event, asyncio.Task[int]]:
    """A recording into ``tmp_path/trace.jsonl`` that retries fast; set the event to stop it."""
    writer = Writer(tmp_path / "trace.jsonl")
    stop = asyncio.Event()
    run = record(kube_client, writer, stop=stop, namespace=namespace, backoff=FAST)
    return writer, stop, asyncio.create_task(run)


async def records_the_next_pod_and_stops(
    kube_api: KubeEmulator, writer: Writer, stop: asyncio.Event, task: asyncio.Task[int]
) -> None:
    """After job-1 and some failed requests: job-2, created now, is recorded by the recording
    still running, which then stops and counts every event it wrote."""
    kube_api.create(make_pod("job-2", "batch", owner=("Job", "etl")))
    await until(
        lambda: [e.name for e in writer.seen if isinstance(e, PodCreated)] == ["job-1", "job-2"],
        what="the pod created after the failed requests",
    )
    assert not task.done()
    stop.set()
    assert await task == len(writer.seen)


async def test_the_recording_survives_server_errors_mid_recording(
    kube_api: KubeEmulator, kube_client: client.ApiClient, tmp_path: Path
) -> None:
    """Regression: one failed request ended the recording; now it is retried with a backoff."""
    kube_api.create(make_pod("job-1", "batch", owner=("Job", "etl")))
    writer, stop, task = recording(kube_client, tmp_path)
    async with asyncio.timeout(10):
        await kube_api.wait_watching("pods")
        kube_api.fail("^/api/v1/pods$", status=500, times=3)  # the next watches and lists
        kube_api.drop_watches("pods")
        await until(lambda: len(kube_api.requests_to("GET", "^/api/v1/pods$")) >= 5, what="retries")
        await records_the_next_pod_and_stops(kube_api, writer, stop, task)
    writer.close()


async def test_a_relist_after_410_records_what_was_deleted_meanwhile(
    kube_api: KubeEmulator, kube_client: client.ApiClient, tmp_path: Path
) -> None:
    kube_api.create(make_node("ecs-1"))
    kube_api.create(make_pod("job-1", "batch", owner=("Job", "etl")))
    writer, stop, task = recording(kube_client, tmp_path)
    async with asyncio.timeout(10):
        await kube_api.wait_watching("pods")
        await kube_api.wait_watching("nodes")
        kube_api.stop()  # the server goes away; meanwhile the pod and the node are deleted
        kube_api.delete("pods", "job-1", namespace="batch")
        kube_api.delete("nodes", "ecs-1")
        kube_api.compact()  # and the server forgets the versions the watches would resume from
        kube_api.start()
        await until(
            lambda: (
                any(isinstance(e, PodDeleted) for e in writer.seen)
                and any(isinstance(e, NodeRemoved) for e in writer.seen)
            ),
            what="the deletions seen by the relist",
        )
        stop.set()
        await task
    writer.close()
    assert [type(e) for e in read_trace(tmp_path / "trace.jsonl").events].count(PodCreated) == 1


def test_an_out_that_cannot_be_written_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "missing" / "trace.jsonl"
    assert autoscaler_cli.main(["record", "--out", str(out), "--duration", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"{out}: ")


async def test_a_namespace_records_only_its_own(
    kube_api: KubeEmulator, kube_client: client.ApiClient, tmp_path: Path
) -> None:
    kube_api.create(make_pod("job-1", "batch", owner=("Job", "etl")))
    kube_api.create(make_pod("job-2", "shop", owner=("Job", "etl")))
    kube_api.create(deployment(3))  # in shop
    writer, stop, task = recording(kube_client, tmp_path, namespace="shop")
    async with asyncio.timeout(10):
        await kube_api.wait_watching("pods")
        await kube_api.wait_watching("deployments")
        kube_api.create(make_pod("job-3", "batch", owner=("Job", "etl")))
        kube_api.create(make_pod("job-4", "shop", owner=("Job", "etl")))
        await until(
            lambda: any(isinstance(e, PodCreated) and e.name == "job-4" for e in writer.seen),
            what="the pod created in shop",
        )
        stop.set()
        await task
    writer.close()
    created = [e.name for e in writer.seen if isinstance(e, PodCreated)]
    assert created == ["job-2", "job-4"]  # job-3 came first on the stream: it would be here
    assert [e.replicas for e in writer.seen if isinstance(e, ReplicasChanged)] == [3]


FORBIDDEN = (
    'pods is forbidden: User "system:serviceaccount:ops:recorder" cannot {verb} resource "pods" '
    'in API group "" at the cluster scope'
)


@pytest.mark.parametrize("verb", ["list", "watch"])
async def test_a_missing_rbac_verb_stops_the_recording(
    kube_api: KubeEmulator, kube_client: client.ApiClient, tmp_path: Path, verb: str
) -> None:
    """Regression: a 403 on a verb the role lacks was retried forever; now it is permanent."""
    message = FORBIDDEN.format(verb=verb)
    kube_api.fail("^/api/v1/pods$", status=403, times=1000, watch=verb == "watch", message=message)
    writer, _, task = recording(kube_client, tmp_path)
    async with asyncio.timeout(10):
        with pytest.raises(AccessDenied) as err:
            await task
    writer.abort()
    assert (err.value.resource, err.value.verb, err.value.status) == ("pods", verb, 403)
    assert err.value.reason == message  # the Status message, not its JSON
    asked = kube_api.requests_to("GET", "^/api/v1/pods$")
    assert len(asked) == (1 if verb == "list" else 2)  # no retry of the refused request
    assert denied_message(err.value) == (
        f"error: record: {verb} pods: 403 Forbidden: the account needs the RBAC verb {verb!r} on "
        f"pods (check: kubectl auth can-i {verb} pods -A): {message}"
    )


async def test_a_refusal_after_the_verb_worked_is_retried(
    kube_api: KubeEmulator, kube_client: client.ApiClient, tmp_path: Path
) -> None:
    """A 403 or 401 on a verb that has worked (RBAC re-applied, a token rotated) backs off and
    retries like a 500: the recording goes on once the server allows it again."""
    kube_api.create(make_pod("job-1", "batch", owner=("Job", "etl")))
    writer, stop, task = recording(kube_client, tmp_path)
    async with asyncio.timeout(10):
        await kube_api.wait_watching("pods")
        before = len(kube_api.requests_to("GET", "^/api/v1/pods$"))
        kube_api.fail("^/api/v1/pods$", status=403, times=2)
        kube_api.fail("^/api/v1/pods$", status=401, times=1)
        kube_api.drop_watches("pods")
        await until(
            lambda: len(kube_api.requests_to("GET", "^/api/v1/pods$")) >= before + 4,
            what="the refused requests retried",
        )
        await records_the_next_pod_and_stops(kube_api, writer, stop, task)
    writer.close()


async def test_record_command_stops_on_a_refusal_in_one_line(
    kube_api: KubeEmulator, tmp_path: Path
) -> None:
    kube_api.fail("^/apis/apps/v1/namespaces/shop/deployments$", status=403, times=1000)
    kube_api.fail("^/api/v1/namespaces/shop/pods$", status=401, times=1000, message="bad token")
    out = tmp_path / "trace.jsonl"
    command = [sys.executable, "-m", "autoscaler.cli", "record", "--out", str(out)]
    command += ["--kubeconfig", str(kube_api.kubeconfig_path), "--namespace", "shop"]
    process = await asyncio.create_subprocess_exec(
        *command, "--duration", "60", stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        _, err = await process.communicate()
    assert process.returncode == 2
    line = err.decode()
    assert line.count("\n") == 1, line
    # whichever refusal the command met first, it names that resource and verb
    assert line in (
        "error: record: list deployments.apps: 403 Forbidden: the account needs the RBAC verb "
        "'list' on deployments.apps (check: kubectl auth can-i list deployments.apps -n shop): "
        "injected fault\n",
        "error: record: list pods: 401 Unauthorized: the API server does not accept the "
        "kubeconfig's credentials (expired?): bad token\n",
    )
    assert not out.exists()
