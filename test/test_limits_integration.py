"""Limits and progressive penalties against a real bridge process (streaming/limits.py).

A flooding client is warned, has its excess dropped, is paused, then closed with 1008, while a
second client keeps its /imu rate; a never-reading pinger is closed with the bridge's memory
bounded; a connection cap answers 503. No test asserts a time; waits have deadlines.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
import urllib.request
from typing import Any

import pytest
from conftest import (
    STALLED_RCVBUF_BYTES,
    TOPIC_PREFIX,
    BridgeProcess,
    rss_mb,
    run,
    wait_until,
)
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Imu
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from rover_ws_bridge import PROTOCOL_NAME
from rover_ws_bridge.client import BridgeClient

pytestmark = pytest.mark.timeout(120)

WAIT_S = 30.0
IMU = f"{TOPIC_PREFIX}/limits_imu"
IMU_HZ = 50.0


def http_get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.read().decode()


def test_flooder_is_warned_dropped_paused_then_closed_while_another_keeps_its_rate(
        start_bridge: Any, periodic_publisher: Any) -> None:
    bridge: BridgeProcess = start_bridge(max_control_messages_per_second="20.0",
                                         penalty_pause_s="0.05")  # pauses 0.05, 0.5, 3 s
    imu = periodic_publisher(Imu, IMU, qos_profile_sensor_data, IMU_HZ, lambda n: Imu())

    async def scenario() -> None:
        async with BridgeClient(bridge.url) as good, BridgeClient(bridge.url) as flooder:
            await wait_until(lambda: IMU in good._topics, "the /imu topic offered", WAIT_S)
            await good.subscribe(IMU)
            await wait_until(lambda: len(good._messages) >= 5, "/imu flowing", WAIT_S)
            good.drain()
            published_before, received = imu.count, 0
            seen_penalty: dict = {}

            async def flood() -> None:
                with pytest.raises(ConnectionClosed):
                    while True:
                        await flooder.websocket.send(json.dumps({"op": "ping", "id": 1}))
                        await asyncio.sleep(0)

            async def watch_api() -> None:
                while not flooder.closed.done():
                    connections = json.loads(await asyncio.to_thread(
                        http_get, bridge.port, "/api/performance/connections"))["connections"]
                    for c in connections:
                        if c["limits"]["dropped"] and not seen_penalty:
                            seen_penalty.update(c["limits"])
                            seen_penalty["metrics"] = await asyncio.to_thread(
                                http_get, bridge.port, "/metrics")
                    await asyncio.sleep(0.05)

            flooding = asyncio.create_task(flood())
            watching = asyncio.create_task(watch_api())
            deadline = time.monotonic() + WAIT_S
            while not flooder.closed.done() and time.monotonic() < deadline:
                received += len(good.drain())
                await asyncio.sleep(0.05)
            assert flooder.closed.done(), "the flooder was not closed"
            assert await flooder.closed == 1008
            await flooding
            await watching
            received += len(good.drain())
            published = imu.count - published_before

            notices = [s for s in flooder.statuses if s["code"] == "rate_limit"]
            assert notices, flooder.statuses
            assert notices[0]["level"] == "warning"
            assert "max_control_messages_per_second" in notices[0]["message"]
            assert notices[1]["level"] == "error" and "dropped" in notices[1]["message"]
            pauses = [n for n in notices[2:] if "not reading" in n["message"]]
            assert len(pauses) == 3 and all(n["level"] == "error" for n in notices[2:])
            assert notices.index(pauses[0]) == 2  # warned, then dropping, then paused
            assert pauses[-1]["penalty"]["dropped"] > pauses[0]["penalty"]["dropped"] > 0
            # Visible per client while it happened.
            assert seen_penalty and seen_penalty["penalty_level"] in ("dropping", "paused")
            assert seen_penalty["dropped_by_limit"]["max_control_messages_per_second"] > 0
            assert "rover_ws_bridge_client_penalty_level" in seen_penalty["metrics"]
            assert "rover_ws_bridge_client_rate_dropped_total" in seen_penalty["metrics"]
            # The other client kept its rate meanwhile (most of what was published arrived).
            assert published > 20 and received >= 0.8 * published, (received, published)
            assert not good.closed.done()

    run(scenario())
    assert bridge.stderr().count("Traceback") == 0


def _raw_websocket(port: int) -> socket.socket:
    """A handshake by hand, then a socket that will never be read again."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF_BYTES)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {PROTOCOL_NAME}\r\n"
                  "\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # byte by byte: nothing past the handshake is read
        assert chunk, "closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _ping_frames(count: int) -> bytes:
    payload = b"p" * 125
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return (struct.pack("!BB", 0x89, 0x80 | len(payload)) + mask + masked) * count


def test_never_reading_pinger_is_closed_with_memory_bounded(start_bridge: Any) -> None:
    bridge: BridgeProcess = start_bridge(max_pending_bytes="262144", max_pending_grace_s="0.5")
    sock = _raw_websocket(bridge.port)
    time.sleep(0.2)
    baseline = rss_mb(bridge.process.pid)
    frames = _ping_frames(500)  # 65 KiB of pings, 500 pongs to answer
    sock.settimeout(0.2)
    peak = baseline
    closed = False
    # A deadline, not a measure.
    deadline = time.monotonic() + 2 * WAIT_S
    unsent = b""
    try:
        while time.monotonic() < deadline:
            # send, not sendall: a sendall cut by the timeout would leave half a frame, and
            # starting the next one there would garble the stream (a protocol error, not the
            # pending bytes this test is about).
            unsent = unsent or frames
            try:
                unsent = unsent[sock.send(unsent):]
            except socket.timeout:
                pass  # the bridge stopped reading us: TCP backpressure
            except (ConnectionResetError, BrokenPipeError):
                closed = True
                break
            peak = max(peak, rss_mb(bridge.process.pid))
    finally:
        sock.close()
    assert closed, "the never-reading pinger was not closed; bridge log:\n" \
        + bridge.stderr()[-3000:]
    assert peak - baseline < 48, f"bridge RSS grew by {peak - baseline:.0f} MiB"
    metrics = http_get(bridge.port, "/metrics")
    assert 'rover_ws_bridge_disconnects_total{reason="pending"} 1' in metrics
    assert "over max_pending_bytes" in bridge.stderr()


def test_connection_caps_answer_503(start_bridge: Any) -> None:
    bridge: BridgeProcess = start_bridge(max_clients="2", max_clients_per_address="1")

    async def from_address(source: str) -> Any:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((source, 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", bridge.port))
        return await connect(bridge.url, sock=sock, subprotocols=[PROTOCOL_NAME],
                             open_timeout=WAIT_S)

    async def refused(source: str) -> str:
        with pytest.raises(InvalidStatus) as info:
            await from_address(source)
        response = info.value.response
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        return response.body.decode()

    async def scenario() -> None:
        first = await from_address("127.0.0.1")
        assert "max_clients_per_address" in await refused("127.0.0.1")
        second = await from_address("127.0.0.2")
        assert "max_clients" in await refused("127.0.0.3")
        await first.close()
        await wait_until(lambda: '"clients": 1' in http_get(bridge.port,
                                                            "/api/performance/metrics"),
                         "the first client gone", WAIT_S)
        third = await from_address("127.0.0.3")  # a freed place is given again
        await second.close()
        await third.close()

    run(scenario())


def test_requests_per_address_get_429_and_idle_http_connections_are_capped(
        start_bridge: Any) -> None:
    bridge: BridgeProcess = start_bridge(max_requests_per_address_per_second="5",
                                         max_clients_per_address="3")

    def status_of(path: str, source: str = "127.0.0.1") -> int:
        with socket.create_connection(("127.0.0.1", bridge.port), timeout=WAIT_S,
                                      source_address=(source, 0)) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            return int(sock.recv(64).split()[1])

    started = time.monotonic()
    statuses = [status_of("/health") for _ in range(40)]
    elapsed = time.monotonic() - started
    # A bucket of 2 s x 5/s = 10, refilled at 5/s while we asked (however slowly we did).
    assert statuses[0] != 429 and 429 in statuses, statuses
    assert len(statuses) - statuses.count(429) <= 10 + 5 * elapsed + 1, (statuses, elapsed)
    assert status_of("/health", "127.0.0.2") != 429  # another address has its own budget

    # Refused handshakes cost requests too (guessing tokens, or Hosts, is rate limited).
    def handshake_status(source: str) -> int:
        key = base64.b64encode(os.urandom(16)).decode()
        with socket.create_connection(("127.0.0.1", bridge.port), timeout=WAIT_S,
                                      source_address=(source, 0)) as sock:
            sock.sendall(("GET / HTTP/1.1\r\nHost: evil.example\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                          f"Sec-WebSocket-Key: {key}\r\n\r\n").encode())
            return int(sock.recv(64).split()[1])

    handshakes = [handshake_status("127.0.0.4") for _ in range(40)]
    assert handshakes[0] == 403 and 429 in handshakes, handshakes

    # Connections that never send a request: three are held, a fourth is refused at once.
    held = [socket.create_connection(("127.0.0.1", bridge.port), timeout=WAIT_S,
                                     source_address=("127.0.0.3", 0)) for _ in range(3)]
    try:
        with socket.create_connection(("127.0.0.1", bridge.port), timeout=WAIT_S,
                                      source_address=("127.0.0.3", 0)) as fourth:
            answer = fourth.recv(200)
        assert answer.startswith(b"HTTP/1.1 503") and b"max_clients_per_address" in answer
    finally:
        for sock in held:
            sock.close()
