"""The real server: uvicorn on a loopback port, TLS, /metrics, and the ``spillover-extender`` CLI."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_support import run_python
from extender_helpers import ECS, FIXTURES, fixture, shop_state

from extender.app import create_app
from extender.cli import _FLAGS
from extender.demo import DATA, free_port, running_server
from extender.ledger import Ledger
from extender.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _post(conn: http.client.HTTPConnection, path: str, body: bytes) -> tuple[int, bytes]:
    conn.request("POST", path, body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, str]:
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read().decode()


def test_real_uvicorn_serves_filter_prioritize_and_metrics() -> None:
    app = create_app(state=shop_state(), ledger=Ledger(), settings=Settings())
    with running_server(app) as (host, port):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        status, body = _post(
            conn, "/filter", (FIXTURES / "filter-deployment-pod-nodecache.json").read_bytes()
        )
        assert status == 200
        result = json.loads(body)
        assert result["NodeNames"] == list(ECS)
        assert result["FailedAndUnresolvableNodes"] is None  # a node is left: no refusals
        status, body = _post(
            conn,
            "/prioritize",
            (FIXTURES / "prioritize-deployment-pod-nodecache.json").read_bytes(),
        )
        assert status == 200
        assert json.loads(body) == [{"Host": n, "Score": 10} for n in ECS]
        assert _post(conn, "/filter", b"{")[0] == 400  # same connection keeps working
        status, metrics = _get(conn, "/metrics")
        conn.close()
    assert status == 200
    assert 'spillover_extender_request_seconds_bucket{le="0.001",verb="filter"}' in metrics
    assert 'spillover_extender_request_seconds_count{verb="prioritize"} 1.0' in metrics
    assert 'spillover_extender_requests_total{code="400",verb="filter"} 1.0' in metrics
    assert 'spillover_extender_decisions_total{reason="first_unit",unit="ecs"} 1.0' in metrics
    assert "spillover_extender_ledger_reservations 1.0" in metrics
    assert "spillover_extender_watch_restarts" in metrics
    assert "spillover_extender_cache_synced 1.0" in metrics


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    crypto = pytest.importorskip("cryptography")
    del crypto
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "spillover-extender")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_from_files(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    app = create_app(state=shop_state(), ledger=Ledger(), settings=Settings())
    context = ssl.create_default_context(cafile=str(cert))
    with running_server(app, ssl_certfile=str(cert), ssl_keyfile=str(key)) as (host, port):
        conn = http.client.HTTPSConnection(host, port, timeout=10, context=context)
        assert _get(conn, "/healthz") == (200, "ok")
        status, body = _post(
            conn, "/filter", (FIXTURES / "filter-statefulset-pod-nodecache.json").read_bytes()
        )
        conn.close()
        plain = http.client.HTTPConnection(host, port, timeout=10)
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            _get(plain, "/healthz")  # TLS only
    assert status == 200
    assert json.loads(body)["NodeNames"] == []


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_python("-m", "extender.cli", *args, env=env)


def test_help_documents_every_flag_and_its_env_var() -> None:
    result = _cli("serve", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert len(_FLAGS) >= 13
    for flag in _FLAGS:
        assert f"--{flag.name}" in text
        assert f"env SPILLOVER_{flag.dest.upper()}" in text
    for required in (
        "--host",
        "--port",
        "--kubeconfig",
        "--policies",
        "--cluster",
        "--bind",
        "--tls-cert",
        "--tls-key",
        "--failure-policy",
        "--reservation-ttl",
        "--max-body-bytes",
        "--log-level",
        "SPILLOVER_PORT",
        "SPILLOVER_FAILURE_POLICY",
    ):
        assert required in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("a: [", "policies.yaml"),
        (
            "metadata: {name: web, namespace: shop}\nspec: {units: [{resource: gpu}]}\n",
            "spec.units[0].resource",
        ),
    ],
)
def test_bad_policies_file_exits_2_naming_it(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "policies.yaml"
    if content is not None:
        path.write_text(content)
    result = _cli("serve", "--cluster", str(DATA / "demo-cluster.yaml"), "--policies", str(path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert str(path) in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SPILLOVER_PORT": "eighty"}, "error: SPILLOVER_PORT: 'eighty' is not a valid int"),
        ({"SPILLOVER_FAILURE_POLICY": "maybe"}, "must be one of pass, error"),
        ({"SPILLOVER_BIND": "perhaps"}, "SPILLOVER_BIND"),
        ({"SPILLOVER_WATCH_STALENESS": "0"}, "error: --watch-staleness: must be positive"),
        (
            {"SPILLOVER_TLS_CERT": "/nonexistent.crt", "SPILLOVER_TLS_KEY": "/nonexistent.key"},
            "no such file",
        ),
    ],
)
def test_bad_environment_exits_2(env: dict[str, str], message: str) -> None:
    result = _cli("serve", "--cluster", str(DATA / "demo-cluster.yaml"), env=env)
    assert result.returncode == 2
    assert message in result.stderr


def test_cli_serves_a_static_cluster_configured_by_environment() -> None:
    port = free_port()
    env = {
        **os.environ,
        "SPILLOVER_PORT": str(port),
        "SPILLOVER_HOST": "127.0.0.1",
        "SPILLOVER_CLUSTER": str(DATA / "demo-cluster.yaml"),
        "SPILLOVER_POLICIES": str(DATA / "demo-policies.yaml"),
        "SPILLOVER_URL_PREFIX": "/scheduler",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "extender.cli", "serve", "--log-level", "warning"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(600):  # wait for the port: polls the effect, asserts on no duration
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                if _get(conn, "/readyz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail(
                f"server did not start: {proc.stderr.read1().decode() if proc.stderr else ''}"  # type: ignore[attr-defined]
            )
        body = json.dumps(fixture("filter-statefulset-pod-nodecache.json")).encode()
        status, answer = _post(conn, "/scheduler/filter", body)
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert status == 200
    refused = json.loads(answer)["FailedAndUnresolvableNodes"]
    assert set(refused) == set(ECS)
    assert "policy shop/db" in refused[ECS[0]]


def test_logs_are_one_json_object_per_line() -> None:
    import io
    import logging

    from extender.logs import configure

    stream = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        configure("debug", stream=stream)
        logging.getLogger("spillover.extender").info(
            "filter", extra={"pod": "shop/web-1", "unit": "ecs"}
        )
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("spillover.extender").exception("failed")
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    first, second = (
        json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")
    )
    assert first["msg"] == "filter"
    assert first["level"] == "info"
    assert (first["pod"], first["unit"]) == ("shop/web-1", "ecs")
    assert second["level"] == "error"
    assert "ValueError: boom" in second["exc"]


def test_settings_from_flags_and_environment() -> None:
    from extender.cli import SettingsError, parse_settings

    env = {"SPILLOVER_PORT": "9443", "SPILLOVER_BIND": "true", "SPILLOVER_ECI_TAINT_KEY": "eci/x"}
    settings = parse_settings(["serve", "--failure-policy", "pass", "--eci-label", "kind=eci"], env)
    assert (settings.port, settings.bind, settings.failure_policy) == (9443, True, "pass")
    assert (settings.kinds.eci_label_key, settings.kinds.eci_label_value) == ("kind", "eci")
    assert settings.kinds.eci_taint_key == "eci/x"
    assert parse_settings(["serve", "--port", "8000"], env).port == 8000  # the flag wins
    tuned = parse_settings(
        ["serve", "--watch-staleness", "7.5", "--eci-taint-value", "alibabacloud"], {}
    )
    assert (tuned.watch_staleness, tuned.eci_taint_value) == (7.5, "alibabacloud")
    with pytest.raises(SettingsError, match="KEY=VALUE"):
        parse_settings(["serve", "--eci-label", "virtual"], {})
    with pytest.raises(SettingsError, match="--tls-cert and --tls-key go together"):
        parse_settings(["serve", "--tls-cert", __file__], {})
