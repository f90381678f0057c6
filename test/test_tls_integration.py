"""TLS on the bridge's port: wss:// and https:// with a certificate the test makes (trustme:
a throwaway CA), verified against that CA; a client that does not trust it, or speaks plain
ws://, does not get in; a bad certificate path stops start-up with one line."""
from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Callable

import pytest
from conftest import REPO_ROOT, ROS_ENV, BridgeProcess, run
from websockets.asyncio.client import connect

from rover_ws_bridge import PROTOCOL_NAME

trustme = pytest.importorskip("trustme", reason="pip install trustme (requirements-test.txt)")
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def ca() -> "trustme.CA":
    return trustme.CA()


@pytest.fixture
def tls_bridge(ca: "trustme.CA", tmp_path: Path,
               start_bridge: Callable[..., BridgeProcess]) -> BridgeProcess:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "server.pem", tmp_path / "server.key"
    cert.private_key_pem.write_to_path(str(keyfile))
    with open(certfile, "wb") as f:
        for blob in cert.cert_chain_pems:
            f.write(blob.bytes())
    bridge = start_bridge(tls_certfile=str(certfile), tls_keyfile=str(keyfile))
    assert any("listening on wss://" in line for line in bridge.stdout_lines)
    return bridge


def client_context(ca: "trustme.CA") -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_wss_and_https_work_verified_against_the_certificate(tls_bridge: BridgeProcess,
                                                            ca: "trustme.CA") -> None:
    async def scenario() -> dict:
        async with connect(f"wss://127.0.0.1:{tls_bridge.port}", ssl=client_context(ca),
                           subprotocols=[PROTOCOL_NAME]) as ws:
            return json.loads(await ws.recv())

    assert run(scenario())["op"] == "hello"
    with urllib.request.urlopen(f"https://127.0.0.1:{tls_bridge.port}/health",
                                context=client_context(ca), timeout=10) as response:
        assert response.status == 200 and json.loads(response.read())["status"]


def test_a_client_that_does_not_trust_the_certificate_or_speaks_plain_ws_gets_nothing(
        tls_bridge: BridgeProcess) -> None:
    async def untrusted() -> None:
        async with connect(f"wss://127.0.0.1:{tls_bridge.port}",
                           ssl=ssl.create_default_context()):
            pass

    with pytest.raises(ssl.SSLCertVerificationError):
        run(untrusted())

    async def plain() -> None:
        async with connect(f"ws://127.0.0.1:{tls_bridge.port}", open_timeout=5):
            pass

    with pytest.raises(Exception) as refused:  # the TLS server drops a cleartext handshake
        run(plain())
    assert not isinstance(refused.value, AssertionError)


def test_a_certificate_that_cannot_be_read_stops_start_up_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    result = subprocess.run(
        [sys.executable, "-m", "rover_ws_bridge.ros.node", "--ros-args", "-p", "port:=0",
         "-p", "address:=127.0.0.1", "-p", f"tls_certfile:={missing}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, **ROS_ENV, "ROS_LOG_DIR": str(tmp_path / "ros_log")})
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if "tls_certfile" in line]
    assert len(lines) == 1 and str(missing) in lines[0], result.stderr
    assert "Traceback" not in result.stderr
