"""ApiBinder against the loopback API server."""

import pytest
from kube_emulator import KubeEmulator, make_node, make_pod
from kubernetes_asyncio import client

from extender.kube import ApiBinder
from extender.ports import Binder, BindError

pytestmark = pytest.mark.integration


async def test_bind_creates_the_binding(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    kube_api.create(make_node("ecs-1"))
    uid = kube_api.create(make_pod("web-1", "shop"))["metadata"]["uid"]
    binder: Binder = ApiBinder(kube_client)
    await binder.bind(namespace="shop", name="web-1", uid=uid, node="ecs-1")
    assert kube_api.get("pods", "web-1", "shop")["spec"]["nodeName"] == "ecs-1"
    [request] = kube_api.requests_to("POST", "/pods/web-1/binding$")
    assert request.data["target"] == {"apiVersion": "v1", "kind": "Node", "name": "ecs-1"}


async def test_already_bound_is_a_bind_error_with_the_server_message(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    uid = kube_api.create(make_pod("web-1", "shop", node="ecs-1"))["metadata"]["uid"]
    with pytest.raises(BindError, match=r"409: .*already assigned to node \"ecs-1\""):
        await ApiBinder(kube_client).bind(namespace="shop", name="web-1", uid=uid, node="ecs-2")


async def test_missing_pod_and_stale_uid(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    binder = ApiBinder(kube_client)
    with pytest.raises(BindError, match=r'404: pods "gone" not found'):
        await binder.bind(namespace="shop", name="gone", uid="x", node="ecs-1")
    kube_api.create(make_pod("web-1", "shop"))  # recreated under the same name
    with pytest.raises(BindError, match="409: Precondition failed"):
        await binder.bind(namespace="shop", name="web-1", uid="old-uid", node="ecs-1")
    assert "nodeName" not in kube_api.get("pods", "web-1", "shop")["spec"]


async def test_server_errors_surface_as_bind_error(
    kube_api: KubeEmulator, kube_client: client.ApiClient
) -> None:
    uid = kube_api.create(make_pod("web-1", "shop"))["metadata"]["uid"]
    kube_api.fail("/binding$", status=503)
    with pytest.raises(BindError, match="503: injected fault"):
        await ApiBinder(kube_client).bind(namespace="shop", name="web-1", uid=uid, node="n")


async def test_unreachable_server_is_a_bind_error() -> None:
    configuration = client.Configuration(host="http://127.0.0.1:9")  # discard port: refused
    async with client.ApiClient(configuration) as api:
        with pytest.raises(BindError, match="binding shop/web-1 to n"):
            await ApiBinder(api).bind(namespace="shop", name="web-1", uid="u", node="n")
