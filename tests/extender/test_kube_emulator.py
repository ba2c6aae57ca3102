"""The loopback API server behaves like Kubernetes where the extender depends on it."""

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from kube_emulator import KubeEmulator
from kubernetes_asyncio import client

pytestmark = pytest.mark.integration


def node(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}


def pod(name: str, namespace: str = "default", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "app"}]},
    }


async def read_events(response: Any) -> list[dict[str, Any]]:
    events = []
    async with asyncio.timeout(10):  # safety net only
        while line := await response.content.readline():
            events.append(json.loads(line))
    return events


async def live_node_watch(kube_api: KubeEmulator, kube_client: client.ApiClient) -> Any:
    """A raw watch of nodes from the current version, once the emulator serves it."""
    response = await client.CoreV1Api(kube_client).list_node(
        watch=True, resource_version=str(kube_api.resource_version), _preload_content=False
    )
    async with asyncio.timeout(10):
        await kube_api.wait_watching("nodes")
    return response


async def test_create_assigns_metadata_and_list_carries_resource_version(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(kube_client)
    created = await core.create_node(node("n1"))
    assert created.metadata.uid
    assert created.metadata.creation_timestamp is not None
    listed = await core.list_node()
    assert [n.metadata.name for n in listed.items] == ["n1"]
    assert int(listed.metadata.resource_version) == kube_api.resource_version
    p = await core.create_namespaced_pod("shop", pod("web-1"))
    assert p.metadata.namespace == "shop"
    assert int(p.metadata.resource_version) > int(created.metadata.resource_version)
    with pytest.raises(client.ApiException) as err:
        await core.create_node(node("n1"))
    assert err.value.status == 409


async def test_get_missing_is_404(kube_client: client.ApiClient) -> None:
    with pytest.raises(client.ApiException) as err:
        await client.CoreV1Api(kube_client).read_node("nope")
    assert err.value.status == 404


async def test_watch_resumes_from_resource_version(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(kube_client)
    kube_api.create(node("n1"))
    rv = (await core.list_node()).metadata.resource_version
    kube_api.create(node("n2"))
    kube_api.patch("nodes", "n1", {"metadata": {"labels": {"x": "y"}}})
    kube_api.delete("nodes", "n2")
    kube_api.create(pod("p"))  # another resource: not in this watch
    response = await core.list_node(
        watch=True, resource_version=rv, timeout_seconds=1, _preload_content=False
    )
    events = await read_events(response)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "n2"),
        ("MODIFIED", "n1"),
        ("DELETED", "n2"),
    ]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions)
    assert versions[0] > int(rv)


@pytest.mark.parametrize("flag", ["true", "True", "1"])
async def test_watch_flag_spellings_stream_live_events(
    kube_api: KubeEmulator, kube_client: client.ApiClient, flag: str
) -> None:
    rest = kube_client.rest_client.pool_manager
    url = f"{kube_api.url}/api/v1/nodes?watch={flag}&resourceVersion={kube_api.resource_version}"
    async with rest.get(url) as response:
        kube_api.create(node("live"))
        async with asyncio.timeout(10):
            line = await response.content.readline()
    assert json.loads(line)["object"]["metadata"]["name"] == "live"


async def test_watch_from_compacted_version_gets_410_expired(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(kube_client)
    kube_api.create(node("n1"))
    old = kube_api.resource_version
    kube_api.create(node("n2"))
    kube_api.compact()
    response = await core.list_node(watch=True, resource_version=str(old), _preload_content=False)
    [event] = await read_events(response)
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410
    assert event["object"]["reason"] == "Expired"


async def test_history_limit_expires_old_versions(kube_client: client.ApiClient) -> None:
    from kube_emulator import serve

    async with serve(history_limit=2) as small:
        small.create(node("n1"))
        old = small.resource_version
        for i in range(3):
            small.create(node(f"m{i}"))
        configuration = client.Configuration(host=small.url)
        async with client.ApiClient(configuration) as api:
            response = await client.CoreV1Api(api).list_node(
                watch=True, resource_version=str(old), _preload_content=False
            )
            [event] = await read_events(response)
    assert event["object"]["code"] == 410


async def test_expire_watches_sends_410_to_live_streams(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    response = await live_node_watch(kube_api, kube_client)
    kube_api.expire_watches("nodes")
    [event] = await read_events(response)
    assert event["object"]["code"] == 410


async def test_bookmarks_on_request(kube_api: KubeEmulator, kube_client: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_client)
    response = await core.list_node(
        watch=True,
        resource_version=str(kube_api.resource_version),
        allow_watch_bookmarks=True,
        timeout_seconds=1,
        _preload_content=False,
    )
    events = await read_events(response)
    assert events[-1]["type"] == "BOOKMARK"
    assert events[-1]["object"]["metadata"]["resourceVersion"] == str(kube_api.resource_version)


async def test_patch_types(kube_api: KubeEmulator, kube_client: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_client)
    kube_api.create(pod("p", app="web", tier="a"))
    # dict body -> strategic merge patch (kubernetes-asyncio's default); None deletes a key
    patched = await core.patch_namespaced_pod(
        "p", "default", {"metadata": {"labels": {"tier": None, "x": "1"}}}
    )
    assert patched.metadata.labels == {"app": "web", "x": "1"}
    # strategic merge merges named list items
    patched = await core.patch_namespaced_pod(
        "p", "default", {"spec": {"containers": [{"name": "app", "image": "v2"}]}}
    )
    assert [(c.name, c.image) for c in patched.spec.containers] == [("app", "v2")]
    # list body -> JSON patch (RFC 6902)
    patched = await core.patch_namespaced_pod(
        "p",
        "default",
        [
            {"op": "add", "path": "/metadata/annotations", "value": {"a/b": "1"}},
            {"op": "replace", "path": "/metadata/labels/x", "value": "2"},
            {"op": "remove", "path": "/metadata/labels/app"},
        ],
    )
    assert patched.metadata.annotations == {"a/b": "1"}
    assert patched.metadata.labels == {"x": "2"}
    # merge patch (RFC 7386) replaces lists wholesale
    rest = kube_client.rest_client.pool_manager
    async with rest.patch(
        f"{kube_api.url}/api/v1/namespaces/default/pods/p",
        data=json.dumps({"spec": {"containers": [{"name": "b", "image": "b"}]}}),
        headers={"Content-Type": "application/merge-patch+json"},
    ) as response:
        assert response.status == 200
    assert [c["name"] for c in kube_api.get("pods", "p", "default")["spec"]["containers"]] == ["b"]


async def test_no_op_patch_keeps_resource_version(kube_api: KubeEmulator) -> None:
    created = kube_api.create(node("n1", a="b"))
    same = kube_api.patch("nodes", "n1", {"metadata": {"labels": {"a": "b"}}})
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_binding_sets_node_name_once(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(kube_client)
    kube_api.create(pod("p"))
    binding = client.V1Binding(
        metadata=client.V1ObjectMeta(name="p"),
        target=client.V1ObjectReference(kind="Node", name="n1"),
    )
    response = await core.create_namespaced_pod_binding(
        "p", "default", binding, _preload_content=False
    )
    assert response.status == 201
    assert kube_api.get("pods", "p", "default")["spec"]["nodeName"] == "n1"
    response = await core.create_namespaced_pod_binding(
        "p", "default", binding, _preload_content=False
    )
    assert response.status == 409
    assert "already assigned" in (await response.json())["message"]


async def test_eviction_honours_pdb(kube_api: KubeEmulator, kube_client: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_client)
    kube_api.create(pod("a", app="web"))
    kube_api.create(pod("b", app="web"))
    kube_api.create(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}},
            "status": {"disruptionsAllowed": 1},
        }
    )
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name="a", namespace="default"))
    await core.create_namespaced_pod_eviction("a", "default", eviction)
    assert [p["metadata"]["name"] for p in kube_api.objects_of("pods")] == ["b"]
    eviction = client.V1Eviction(metadata=client.V1ObjectMeta(name="b", namespace="default"))
    with pytest.raises(client.ApiException) as err:
        await core.create_namespaced_pod_eviction("b", "default", eviction)
    assert err.value.status == 429


async def test_lease_replace_conflicts_on_stale_version(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    leases = client.CoordinationV1Api(kube_client)
    body = client.V1Lease(
        metadata=client.V1ObjectMeta(name="leader", namespace="kube-system"),
        spec=client.V1LeaseSpec(holder_identity="a"),
    )
    created = await leases.create_namespaced_lease("kube-system", body)
    created.spec.holder_identity = "b"
    updated = await leases.replace_namespaced_lease("leader", "kube-system", created)
    assert updated.spec.holder_identity == "b"
    created.spec.holder_identity = "c"  # still carries the old resourceVersion
    with pytest.raises(client.ApiException) as err:
        await leases.replace_namespaced_lease("leader", "kube-system", created)
    assert err.value.status == 409


async def test_custom_resource_policies(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    custom = client.CustomObjectsApi(kube_client)
    body = {
        "apiVersion": "spillover.dev/v1alpha1",
        "kind": "ResourcePolicy",
        "metadata": {"name": "web"},
        "spec": {"units": [{"resource": "ecs", "max": 1}, {"resource": "eci"}]},
    }
    await custom.create_namespaced_custom_object(
        "spillover.dev", "v1alpha1", "shop", "resourcepolicies", body
    )
    listed = await custom.list_cluster_custom_object(
        "spillover.dev", "v1alpha1", "resourcepolicies"
    )
    assert [i["metadata"]["namespace"] for i in listed["items"]] == ["shop"]
    assert listed["metadata"]["resourceVersion"]
    # For a dict body CustomObjectsApi still picks JSON Patch; a real server refuses that too.
    await custom.patch_namespaced_custom_object(
        "spillover.dev",
        "v1alpha1",
        "shop",
        "resourcepolicies",
        "web",
        {"spec": {"units": []}},
        _content_type="application/merge-patch+json",
    )
    assert kube_api.get("resourcepolicies", "web", "shop")["spec"]["units"] == []


async def test_injected_faults_then_recovery(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(kube_client)
    kube_api.fail("/api/v1/nodes$", status=503, times=2)
    for _ in range(2):
        with pytest.raises(client.ApiException) as err:
            await core.list_node()
        assert err.value.status == 503
    assert (await core.list_node()).items == []


async def test_dropped_watch_breaks_the_connection(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    response = await live_node_watch(kube_api, kube_client)
    kube_api.drop_watches("nodes")
    with pytest.raises(aiohttp.ClientPayloadError):
        await read_events(response)


async def test_terminating_helper_sets_deletion_timestamp(kube_api: KubeEmulator) -> None:
    kube_api.create(pod("p"))
    terminating = kube_api.mark_terminating("pods", "p", "default")
    assert terminating["metadata"]["deletionTimestamp"]
    kube_api.delete("pods", "p", "default")
    assert kube_api.objects_of("pods")  # finalizer keeps it, as Kubernetes does


async def test_discovery_and_version(kube_api: KubeEmulator, kube_client: client.ApiClient) -> None:
    version = await client.VersionApi(kube_client).get_code()
    assert version.major == "1"
    groups = await client.ApisApi(kube_client).get_api_versions()
    assert "spillover.dev" in {g.name for g in groups.groups}


async def test_status_subresource_changes_only_status(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(kube_client)
    kube_api.create(pod("p", app="web"))
    await core.patch_namespaced_pod_status(
        "p", "default", {"metadata": {"labels": {"app": "x"}}, "status": {"phase": "Running"}}
    )
    stored = kube_api.get("pods", "p", "default")
    assert stored["status"] == {"phase": "Running"}
    assert stored["metadata"]["labels"] == {"app": "web"}
    read = await core.read_namespaced_pod_status("p", "default")
    assert read.status.phase == "Running"


async def test_main_resource_writes_leave_status_alone(kube_api: KubeEmulator) -> None:
    kube_api.create(pod("p"))
    kube_api.patch_status("pods", "p", {"status": {"phase": "Running"}}, "default")
    kube_api.patch(
        "pods", "p", {"status": {"phase": "Failed"}, "metadata": {"labels": {"a": "b"}}}, "default"
    )
    stored = kube_api.get("pods", "p", "default")
    assert stored["status"] == {"phase": "Running"}
    assert stored["metadata"]["labels"] == {"a": "b"}
