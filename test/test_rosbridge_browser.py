"""The npm `roslib` 2.x client in headless Chromium: a tiny page (test/node_peers/rosbridge/
page/, not shipped) served from this test with the peer's npm packages, subscribes to the
simulated rover's /imu over the rosbridge protocol and shows what it receives.

Chromium is Debian's (/usr/bin/chromium or $CHROMIUM) with the flags of the project's browser
tests (web/test/support/browser.ts), driven here over the DevTools protocol (no npm package
needed beyond roslib's own).
"""
from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest
from conftest import FAST_PARAMS, REPO_ROOT, ROS_ENV, TOPIC_PREFIX, WAIT_S, BridgeProcess, run
from test_rosbridge_roslib import PEER

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# As web/test/support/browser.ts starts it.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]
NS = f"{TOPIC_PREFIX}_rbweb"


@pytest.fixture(scope="module")
def page_server() -> Iterator[str]:
    from conftest import npm_project_env

    npm_project_env(PEER, (20, 0))  # roslib and its dependencies, installed
    handler = functools.partial(_QuietHandler, directory=str(PEER))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # noqa: D401 - the test output stays readable
        pass


@pytest.fixture(scope="module")
def sim_and_bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:
    sim = subprocess.Popen(
        [sys.executable, "-m", "rover_ws_bridge.sim", "--estop-toggle-period", "0",
         "--ros-args", "-r", f"__ns:={NS}"],
        cwd=REPO_ROOT, env={**os.environ, **ROS_ENV}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    bridge = BridgeProcess(dict(FAST_PARAMS), tmp_path_factory.mktemp("rosbridge_browser"))
    try:
        bridge.wait_ready()
        yield bridge
    finally:
        bridge.stop_cleanly()
        sim.send_signal(signal.SIGTERM)
        try:
            sim.wait(15)
        except subprocess.TimeoutExpired:
            sim.kill()
            sim.wait()


async def page_text(url: str, until: str, seconds: float) -> dict:
    """Open `url` in headless Chromium; the page's count, last stamp and error once
    `until` (a JavaScript condition) holds, or when `seconds` have passed."""
    from websockets.asyncio.client import connect

    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/install_web_test_deps.sh")
    profile = tempfile.mkdtemp(prefix="rosbridge-chromium-")
    process = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless", *CHROMIUM_ARGS, "--remote-debugging-port=0",
        f"--user-data-dir={profile}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        browser_ws = None
        while browser_ws is None:
            line = (await asyncio.wait_for(process.stderr.readline(), WAIT_S)).decode()
            assert line, "Chromium exited before it listened for DevTools"
            if line.startswith("DevTools listening on "):
                browser_ws = line.split(" ", 3)[3].strip()
        async with connect(browser_ws, max_size=None) as devtools:
            ids = iter(range(1, 1_000_000))

            async def command(method: str, session: str | None = None, **params) -> dict:
                n = next(ids)
                await devtools.send(json.dumps({"id": n, "method": method, "params": params,
                                                **({"sessionId": session} if session else {})}))
                while True:
                    reply = json.loads(await devtools.recv())
                    if reply.get("id") == n:
                        assert "error" not in reply, reply
                        return reply["result"]

            target = (await command("Target.createTarget", url="about:blank"))["targetId"]
            session = (await command("Target.attachToTarget", targetId=target,
                                     flatten=True))["sessionId"]
            await command("Page.navigate", session, url=url)
            probe = ("JSON.stringify({count: Number(document.getElementById('count')"
                     "?.textContent ?? 0), last: document.getElementById('last')?.textContent,"
                     " error: document.getElementById('error')?.textContent, done: " + until
                     + "})")
            deadline = time.monotonic() + seconds
            while True:
                result = await command("Runtime.evaluate", session, expression=probe)
                state = json.loads(result["result"].get("value") or "{}")
                if state.get("done") or time.monotonic() > deadline:
                    return state
                await asyncio.sleep(0.2)
    finally:
        process.kill()
        await process.wait()
        shutil.rmtree(profile, ignore_errors=True)


def test_a_roslib_page_in_headless_chromium_subscribes_and_shows_imu_data(
        page_server, sim_and_bridge) -> None:
    url = f"{page_server}/page/index.html?url={sim_and_bridge.url}&topic={NS}/imu"
    state = run(page_text(url, "Number(document.getElementById('count').textContent) >= 50",
                          WAIT_S))
    assert not state.get("error"), state
    assert state["count"] >= 50, state  # it kept receiving (the sim publishes at 200 Hz)
    stamp = json.loads(state["last"])
    assert set(stamp) == {"sec", "nanosec"} and stamp["sec"] > 0

