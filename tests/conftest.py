"""Shared fixtures: a loopback Kubernetes API (``kube_api``) and a client for it (``kube_client``).

Sub-directories add their own fixtures in their own ``conftest.py``; keep this one generic.
"""

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import settings
from kube_emulator import KubeEmulator, serve
from kubernetes_asyncio import client

# CI explores a fixed set of examples so a landing never depends on luck; local runs keep
# exploring new ones (and the database replays anything they found).
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
async def kube_api(tmp_path: Path) -> AsyncIterator[KubeEmulator]:
    """The emulator on 127.0.0.1:<random>; ``.url``, ``.kubeconfig_path``, object helpers."""
    async with serve(kubeconfig_dir=tmp_path) as emulator:
        yield emulator


@pytest.fixture
async def kube_client(kube_api: KubeEmulator) -> AsyncIterator[client.ApiClient]:
    """A kubernetes-asyncio ``ApiClient`` configured for ``kube_api``."""
    configuration = client.Configuration(host=kube_api.url)
    async with client.ApiClient(configuration) as api:
        yield api
