"""Authentication, roles, Origin and Host for real: a bridge process with a token file, clients
over loopback. No token or a wrong one gets 401; the right one connects whether it comes in
the Authorization header, the ?token= query or the login page's cookie; a viewer cannot
publish, an operator can (a real rclpy subscriber receives it); a foreign Origin or Host gets
403; the HTTP API asks for the token where the dashboard's files and /health do not; tokens
never reach the log. The HTTP layer is real HTTP/1.1 (h11): bodies, HEAD, 405 with Allow, CORS
for allowed origins only, keep-alive, bounded heads and bodies.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import (
    FAST_PARAMS,
    TOPIC_PREFIX,
    WAIT_S,
    BridgeProcess,
    RosHarness,
    run,
    wait_until,
)
from geometry_msgs.msg import Twist
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import Imu
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from rover_ws_bridge import PROTOCOL_NAME, auth
from rover_ws_bridge.client import BridgeClient, BridgeError

pytestmark = pytest.mark.timeout(120)

CMD_VEL = f"{TOPIC_PREFIX}/auth_cmd_vel"
RELIABLE = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("auth") / "tokens.yaml"
    store = auth.TokenStore.parse({"roles": {
        "viewer": {"see": ["*"], "see_except": ["/rosout", "/parameter_events"]},
        "operator": {"see": ["*"], "publish": [CMD_VEL], "call": ["*"]},
        "admin": {"see": ["*"], "admin": True},
    }}, "test")
    made = {}
    for name in ("viewer", "operator", "admin"):
        made[name] = auth.new_token()
        store.tokens.append(auth.TokenEntry(name, name, auth.hash_token(made[name])))
    store.save(path)
    return {"path": path, **made}


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory, tokens: dict) -> Iterator[BridgeProcess]:
    process = BridgeProcess({**FAST_PARAMS, "auth_tokens_file": str(tokens["path"]),
                             # Also the allowlist: the role, not this, must decide.
                             "publish_allow": '["*"]', "benchmark_endpoint_enabled": "true"},
                            tmp_path_factory.mktemp("auth_bridge"))
    process.wait_ready()
    yield process
    logged = process.stop_cleanly()
    for name in ("viewer", "operator", "admin"):
        assert tokens[name] not in logged, f"the {name} token is in the bridge's log"


async def read_response(reader: asyncio.StreamReader,
                        head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    length = 0 if head_only else int(headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), WAIT_S) if length else b""
    return status, headers, body


async def exchange(port: int, data: bytes, answers: int = 1,
                   head_only: bool = False) -> list[tuple[int, dict[str, str], bytes]]:
    """Raw bytes to the port, `answers` HTTP responses back (on one connection)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return [await read_response(reader, head_only) for _ in range(answers)]
    finally:
        writer.close()


async def http(port: int, request_lines: list[str]) -> tuple[int, dict[str, str], bytes]:
    """A raw HTTP/1.1 exchange (any Host, any header): status, headers, body."""
    [answer] = await exchange(port, ("\r\n".join(request_lines) + "\r\n\r\n").encode())
    return answer


def request(method: str, path: str, body: bytes = b"", **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{key.replace('_', '-')}: {value}" for key, value in headers.items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def aget(port: int, path: str, host: str = "127.0.0.1", **headers: str) -> Any:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{key.replace('_', '-')}: {value}" for key, value in headers.items()]
    return http(port, lines)


def get(port: int, path: str, host: str = "127.0.0.1", **headers: str) -> tuple[int, dict, bytes]:
    return run(aget(port, path, host, **headers))


def handshake(port: int, path: str = "/", host: str = "127.0.0.1",
              **headers: str) -> tuple[int, dict, bytes]:
    key = base64.b64encode(os.urandom(16)).decode()
    return get(port, path, host, Upgrade="websocket", Connection="Upgrade",
               Sec_WebSocket_Key=key, Sec_WebSocket_Version="13",
               Sec_WebSocket_Protocol=PROTOCOL_NAME, **headers)


async def hello(url: str, **headers: str) -> dict:
    """Connect with the given headers and return the bridge's first text message."""
    async with connect(url, subprotocols=[PROTOCOL_NAME], compression=None,
                       additional_headers=headers, open_timeout=WAIT_S) as ws:
        while True:
            message = await asyncio.wait_for(ws.recv(), WAIT_S)
            if isinstance(message, str):
                return json.loads(message)


def test_no_token_or_a_wrong_one_gets_401_with_the_reason(bridge: BridgeProcess) -> None:
    for headers in ({}, {"Authorization": "Bearer rwb_wrong"}):
        with pytest.raises(InvalidStatus) as refused:
            run(hello(bridge.url, **headers))
        assert refused.value.response.status_code == 401
    status, headers, body = handshake(bridge.port)
    assert status == 401 and b"needs a token" in body and "Bearer" in headers["www-authenticate"]
    assert body.count(b"\n") == 1
    status, _, body = handshake(bridge.port, "/?token=rwb_wrong")
    assert status == 401 and b"not valid" in body


def test_the_right_token_connects_from_the_header_the_query_or_the_cookie(
        bridge: BridgeProcess, tokens: dict) -> None:
    token = tokens["viewer"]
    for url, headers in ((bridge.url, {"Authorization": f"Bearer {token}"}),
                         (f"{bridge.url}/?token={token}", {}),
                         (bridge.url, {"Cookie": f"rover_ws_bridge_token={token}"})):
        assert run(hello(url, **headers))["op"] == "hello"


def test_a_viewer_cannot_publish_and_an_operator_can(bridge: BridgeProcess, tokens: dict,
                                                     ros: RosHarness) -> None:
    received: list[Twist] = []
    subscription = ros.node.create_subscription(Twist, CMD_VEL, received.append, RELIABLE)

    async def scenario() -> None:
        async with BridgeClient(f"{bridge.url}/?token={tokens['viewer']}") as viewer:
            assert viewer.permissions["publish"] == []
            with pytest.raises(BridgeError) as refused:
                await viewer.advertise(CMD_VEL, "geometry_msgs/msg/Twist")
            assert refused.value.code == "not_allowed" and "viewer" in str(refused.value)
            assert (await viewer.ping())["op"] == "pong"
        async with BridgeClient(f"{bridge.url}/?token={tokens['operator']}") as operator:
            assert operator.permissions["publish"] == [CMD_VEL]
            await operator.advertise(CMD_VEL, "geometry_msgs/msg/Twist")
            deadline = time.monotonic() + WAIT_S
            while not received and time.monotonic() < deadline:
                await operator.publish(CMD_VEL, {"linear": {"x": 0.75}})
                await asyncio.sleep(0.1)
            with pytest.raises(BridgeError) as elsewhere:
                await operator.advertise(f"{TOPIC_PREFIX}/other", "std_msgs/msg/Bool")
            assert elsewhere.value.code == "not_allowed"

    try:
        run(scenario())
    finally:
        ros.node.destroy_subscription(subscription)
    assert received and received[0].linear.x == 0.75


def test_a_foreign_origin_or_host_gets_403(bridge: BridgeProcess, tokens: dict) -> None:
    token = tokens["viewer"]
    status, _, body = handshake(bridge.port, f"/?token={token}", Origin="https://evil.example")
    assert status == 403 and b"Origin" in body and b"allowed_origins" in body
    status, _, body = handshake(bridge.port, f"/?token={token}", host="rebind.evil.example")
    assert status == 403 and b"allowed_hosts" in body
    status, _, _ = get(bridge.port, "/health", host="rebind.evil.example:80")
    assert status == 403
    # The same host, localhost and no Origin at all pass.
    for origin in (f"http://127.0.0.1:{bridge.port}", "http://localhost:5173"):
        status, _, _ = handshake(bridge.port, f"/?token={token}", Origin=origin)
        assert status == 101, origin
    with pytest.raises(InvalidStatus) as refused:
        run(hello(f"{bridge.url}/?token={token}", Origin="https://evil.example"))
    assert refused.value.response.status_code == 403


def test_the_login_page_sets_the_cookie(bridge: BridgeProcess, tokens: dict) -> None:
    status, headers, body = get(bridge.port, "/login")
    assert status == 200 and b"<form" in body and b'name="token"' in body
    assert headers["content-type"].startswith("text/html")
    status, headers, _ = get(bridge.port, "/login?token=rwb_wrong")
    assert status == 401 and "set-cookie" not in headers
    status, headers, _ = get(bridge.port, f"/login?token={tokens['operator']}")
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert cookie.startswith(f"rover_ws_bridge_token={tokens['operator']};")
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/"):
        assert attribute in cookie
    assert "Secure" not in cookie  # plain http:// here
    value = cookie.split(";", 1)[0]
    assert run(hello(bridge.url, Cookie=value))["op"] == "hello"
    status, headers, _ = get(bridge.port, "/logout")
    assert status == 303 and "Max-Age=0" in headers["set-cookie"]


def test_the_login_form_posts_the_token(bridge: BridgeProcess, tokens: dict) -> None:
    form = request("POST", "/login", f"token={tokens['viewer']}".encode(),
                   Content_Type="application/x-www-form-urlencoded")
    [(status, headers, _)] = run(exchange(bridge.port, form))
    assert status == 303 and headers["set-cookie"].startswith(
        f"rover_ws_bridge_token={tokens['viewer']};")
    [(status, headers, body)] = run(exchange(bridge.port, request(
        "POST", "/login", b"token=rwb_wrong", Content_Type="application/x-www-form-urlencoded")))
    assert status == 401 and "set-cookie" not in headers and b"not valid" in body


def test_post_with_a_json_body_runs_the_benchmark_with_the_callers_token(
        bridge: BridgeProcess, tokens: dict, periodic_publisher: Any) -> None:
    topic = f"{TOPIC_PREFIX}/auth_bench_imu"
    periodic_publisher(Imu, topic, qos_profile_sensor_data, 50.0, lambda n: Imu())
    body = json.dumps({"topic": topic, "duration": 1.5, "clients": 1}).encode()

    async def wait_offered() -> None:
        async with BridgeClient(bridge.url, token=tokens["viewer"]) as client:
            await wait_until(lambda: topic in client._topics, "the topic offered", WAIT_S)

    run(wait_offered())
    [(status, _, answer)] = run(exchange(bridge.port, request(
        "POST", "/api/performance/benchmark", body, Content_Type="application/json",
        Authorization=f"Bearer {tokens['viewer']}")))
    assert status == 200, answer
    [probe] = json.loads(answer)["clients"]
    assert "error" not in probe, probe  # the probe got in with the caller's token
    assert probe["messages"] > 10 and probe["bridge_to_client_ms"]["p95"] is not None
    [(status, _, _)] = run(exchange(bridge.port, request(
        "POST", "/api/performance/benchmark", body, Content_Type="application/json")))
    assert status == 401  # no token: no benchmark
    [(status, _, answer)] = run(exchange(bridge.port, request(
        "POST", "/api/performance/benchmark", b'{"duration": 1e400}',
        Authorization=f"Bearer {tokens['viewer']}")))
    assert status == 400 and b"duration" in answer


def test_http_methods_head_keep_alive_and_bounds(bridge: BridgeProcess, tokens: dict) -> None:
    auth_header = {"Authorization": f"Bearer {tokens['admin']}"}
    # Three requests on one connection, answered in order; HEAD has the headers only.
    answers = run(exchange(bridge.port, request("GET", "/health")
                           + request("DELETE", "/api/performance/metrics", **auth_header)
                           + request("GET", "/api/performance/metrics", **auth_header),
                           answers=3))
    assert [a[0] for a in answers] == [200, 405, 200]
    assert answers[1][1]["allow"] == "GET, HEAD"
    [(status, headers, _)] = run(exchange(bridge.port, request("HEAD", "/metrics"),
                                          head_only=True))
    assert status == 200 and int(headers["content-length"]) > 0
    [(status, headers, _)] = run(exchange(bridge.port, request("DELETE", "/")))
    assert status == 405 and headers["allow"] == "GET, HEAD"
    [(status, _, _)] = run(exchange(bridge.port, request("POST", "/health", b"x" * 70_000)))
    assert status == 413
    [(status, _, _)] = run(exchange(bridge.port, b"GET / HTTP/1.1\r\nX: " + b"a" * 20_000
                                    + b"\r\n\r\n"))
    assert status == 431
    [(status, _, _)] = run(exchange(bridge.port, b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert status == 400
    assert "Traceback" not in bridge.stderr()


def test_cors_only_for_allowed_origins(bridge: BridgeProcess, tokens: dict) -> None:
    allowed, foreign = "http://localhost:5173", "https://evil.example"
    [(status, headers, _)] = run(exchange(bridge.port, request(
        "OPTIONS", "/api/performance/metrics", Origin=allowed,
        Access_Control_Request_Method="GET", Access_Control_Request_Headers="authorization")))
    assert status == 204 and headers["access-control-allow-origin"] == allowed
    assert "Authorization" in headers["access-control-allow-headers"]
    [(status, headers, _)] = run(exchange(bridge.port, request(
        "GET", "/api/performance/metrics", Origin=allowed,
        Authorization=f"Bearer {tokens['viewer']}")))
    assert status == 200 and headers["access-control-allow-origin"] == allowed
    for method in ("OPTIONS", "GET"):
        [(status, headers, _)] = run(exchange(bridge.port, request(
            method, "/api/performance/metrics", Origin=foreign,
            Authorization=f"Bearer {tokens['viewer']}")))
        assert status == 403 and "access-control-allow-origin" not in headers


def test_the_http_api_needs_the_token_and_shows_addresses_to_admins_only(
        bridge: BridgeProcess, tokens: dict) -> None:
    assert get(bridge.port, "/health")[0] in (200, 503)
    assert get(bridge.port, "/metrics")[0] == 200
    status, _, body = get(bridge.port, "/api/performance/connections")
    assert status == 401 and b"token" in body
    assert get(bridge.port, "/api/performance/metrics?token=rwb_wrong")[0] == 401

    async def scenario() -> tuple[dict, dict]:
        async with BridgeClient(f"{bridge.url}/?token={tokens['viewer']}") as client:
            await client.topics()
            seen = []
            for name in ("viewer", "admin"):
                status, _, body = await aget(bridge.port, "/api/performance/connections",
                                             Authorization=f"Bearer {tokens[name]}")
                assert status == 200
                seen.append(json.loads(body))
            return seen[0], seen[1]

    as_viewer, as_admin = run(scenario())
    assert as_viewer["connections"] and all(c["remote"].startswith("hidden:")
                                            for c in as_viewer["connections"])
    assert any(c["remote"].startswith("127.0.0.1:") for c in as_admin["connections"])


def test_the_dashboard_files_are_public(bridge: BridgeProcess) -> None:
    status, _, body = get(bridge.port, "/")
    if status == 404:
        pytest.skip("no dashboard bundle in this checkout")
    assert status == 200 and b"<html" in body.lower()


def test_a_bridge_without_a_token_file_says_so_once_and_lets_clients_in(
        start_bridge: Any, tmp_path: Path) -> None:
    bridge = start_bridge()
    assert run(hello(bridge.url))["op"] == "hello"
    bridge.stop()
    assert bridge.stderr().count("no auth_tokens_file") == 1


def test_a_missing_token_file_stops_start_up_with_one_line(start_bridge: Any,
                                                           tmp_path: Path) -> None:
    bridge = start_bridge(wait=False, auth_tokens_file=str(tmp_path / "missing.yaml"))
    assert bridge.process.wait(WAIT_S) == 2
    bridge.stop()
    stderr = bridge.stderr()
    assert "auth_tokens_file" in stderr and "Traceback" not in stderr
