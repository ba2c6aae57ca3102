"""Every kustomization renders, agrees with a real kustomize, and is valid Kubernetes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, NoReturn

import kubernetes_validate
import kustomize_lite
import pytest
from manifests_support import MANIFESTS, kustomizations, real_renderer, render

KUBERNETES_VERSION = "1.36.0"
# Kinds that are not in the Kubernetes OpenAPI: checked by their own tests or their own CRDs.
CUSTOM_KINDS = {("cert-manager.io/v1", "Issuer"), ("cert-manager.io/v1", "Certificate")}

KUSTOMIZATIONS = kustomizations()
IDS = [str(k.relative_to(MANIFESTS)) for k in KUSTOMIZATIONS]


def _key(obj: dict[str, Any]) -> str:
    return json.dumps(kustomize_lite._key(obj))


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=IDS)
def test_renders_with_unique_named_objects(directory: Path) -> None:
    objects = render(directory)
    keys = [_key(o) for o in objects]
    assert objects
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=IDS)
def test_lite_renderer_agrees_with_real_kustomize(directory: Path) -> None:
    command = real_renderer()
    if command is None:
        pytest.skip("neither kustomize nor kubectl on PATH: only the lite renderer is available")
    out = subprocess.run([*command, str(directory)], capture_output=True, text=True, check=True)
    import yaml

    real = {_key(o): o for o in yaml.safe_load_all(out.stdout) if o}
    lite = {_key(o): o for o in kustomize_lite.build(directory)}
    assert lite == real


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=IDS)
def test_objects_valid_against_kubernetes_openapi(directory: Path) -> None:
    for obj in render(directory):
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS:
            assert obj["metadata"]["name"]
            assert obj["spec"]
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']}: {e.message} at {list(e.path)}")


def test_schemas_are_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # kubernetes-validate ships its schemas in the wheel: validation works with no network.
    import socket

    def no_network(*args: object, **kwargs: object) -> NoReturn:
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {"ports": [{"port": "not-a-number"}]},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, KUBERNETES_VERSION, strict=True)


def test_lite_renderer_refuses_unsupported_fields(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("namePrefix: x-\nresources: []\n")
    with pytest.raises(kustomize_lite.KustomizeError, match="namePrefix"):
        kustomize_lite.build(tmp_path)


def test_lite_renderer_refuses_files_outside_root(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "x.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    (tmp_path / "a" / "kustomization.yaml").write_text("resources: [../x.yaml]\n")
    with pytest.raises(kustomize_lite.KustomizeError, match="outside"):
        kustomize_lite.build(tmp_path / "a")
