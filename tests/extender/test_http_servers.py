"""Every HTTP server ``spillover-extender serve --server`` offers passes the same checks: TLS,
keep-alive (kube-scheduler keeps one connection), the body-size limit, graceful SIGTERM."""

from __future__ import annotations

import http.client
import json
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from extender_helpers import ECS, fixture
from test_server import _self_signed

from extender.cli import SettingsError, parse_settings
from extender.demo import DATA, free_port
from extender.settings import DEFAULT_SERVER, SERVERS

ROOT = Path(__file__).resolve().parents[2]


def _https(port: int, cert: Path) -> http.client.HTTPSConnection:
    context = ssl.create_default_context(cafile=str(cert))
    return http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)


def _request(
    conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None
) -> tuple[int, bytes]:
    conn.request(method, path, body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()


def _announce_too_big(conn: http.client.HTTPConnection) -> tuple[int, bytes]:
    """Only the headers of a 70,000-byte POST: the answer must come from Content-Length alone
    (sending the body too would race the server's close against our read)."""
    conn.putrequest("POST", "/filter")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", "70000")
    conn.endheaders()
    response = conn.getresponse()
    return response.status, response.read()


@pytest.mark.parametrize("server", SERVERS)
def test_each_server_serves_tls_keeps_the_connection_limits_bodies_and_stops(
    server: str, tmp_path: Path
) -> None:
    cert, key = _self_signed(tmp_path)
    port = free_port()
    argv = [sys.executable, "-m", "extender.cli", "serve", "--server", server]
    argv += ["--cluster", str(DATA / "demo-cluster.yaml"), "--policies"]
    argv += [str(DATA / "demo-policies.yaml"), "--tls-cert", str(cert), "--tls-key", str(key)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--max-body-bytes", "65536"]
    proc = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE)
    try:
        for _ in range(600):  # wait for the port: polls the effect, asserts on no duration
            try:
                conn = _https(port, cert)
                if _request(conn, "GET", "/readyz")[0] == 200:
                    break
            except OSError:
                proc.poll()
                assert proc.returncode is None, proc.stderr.read().decode() if proc.stderr else ""
                subprocess.run(["sleep", "0.05"], check=True)
        else:
            pytest.fail("server did not start")
        body = json.dumps(fixture("filter-deployment-pod-nodecache.json")).encode()
        answers = [_request(conn, "POST", "/filter", body) for _ in range(3)]  # one connection
        too_big = _announce_too_big(_https(port, cert))
        plain = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            _request(plain, "GET", "/healthz")  # TLS only
        conn.close()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after its shutdown
    for status, answer in answers:
        assert status == 200
        assert json.loads(answer)["NodeNames"] == list(ECS)
    assert too_big[0] == 413
    assert b"65536-byte limit" in too_big[1]


def test_the_server_is_a_flag_and_a_variable() -> None:
    assert parse_settings(["serve"], {}).server == DEFAULT_SERVER
    assert parse_settings(["serve"], {"SPILLOVER_SERVER": "uvicorn"}).server == "uvicorn"
    assert (
        parse_settings(["serve", "--server", "granian"], {"SPILLOVER_SERVER": "uvicorn"}).server
        == "granian"
    )
    with pytest.raises(
        SettingsError, match=f"SPILLOVER_SERVER: must be one of {', '.join(SERVERS)}, not 'nginx'"
    ):
        parse_settings(["serve"], {"SPILLOVER_SERVER": "nginx"})
