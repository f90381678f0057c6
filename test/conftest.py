"""Shared fixtures of the integration tests: a private ROS domain, an rclpy node of the test
process, and bridge processes started for real.

The domain is chosen here, at import time, before any test module imports rclpy: every node of
this test session (ours and the bridges we start) lives in it, with localhost-only discovery, so
parallel runs on the shared machine do not see each other.
"""
from __future__ import annotations

import os
import random

ROS_ENV = {
    "ROS_DOMAIN_ID": str(random.randint(1, 100)),
    "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
}
os.environ.update(ROS_ENV)

# ruff: noqa: E402 - the imports below must see the environment set above.
import asyncio
import hashlib
import inspect
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import pytest
import rclpy
import rclpy.context
import ros_selection
from rclpy.executors import ExternalShutdownException, ShutdownException, SingleThreadedExecutor
from rclpy.node import Node

REPO_ROOT = Path(__file__).resolve().parent.parent
BRIDGE_NODE_NAME = "rover_ws_bridge"
READY_MARKER = "rover_ws_bridge: listening on "  # ws:// or, with TLS, wss://
START_TIMEOUT_S = 30.0
EXIT_TIMEOUT_S = 15.0

# How long a test waits for something that must happen (never asserted as a bound).
WAIT_S = 20.0

# The receive buffer of a client socket that its test stops reading: small, so that the
# bridge's writes back up soon, but not under one loopback segment (64 KiB). With 4 KiB the
# kernel dropped the bridge's segments and both ends backed off exponentially (RTO past 13 s):
# a stalled client's drain afterwards, or a never-reading client's pings, stopped for longer
# than the tests wait (1 run in 5 on a loaded machine).
STALLED_RCVBUF_BYTES = 64 * 1024


def stalled_client_socket() -> socket.socket:
    """A non-blocking TCP socket with STALLED_RCVBUF_BYTES, for a client the test stalls."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RCVBUF_BYTES)
    sock.setblocking(False)
    return sock


# Prefix of the topics the tests create: even a run that happens to share our domain cannot
# publish on them or subscribe to them.
TOPIC_PREFIX = f"/it_{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------------------------
# The tests that touch ROS: marked `ros`, the second distro's run (`make test-jazzy`).


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ros_selection.mark(config, items)


def pytest_collection_finish(session: pytest.Session) -> None:
    ros_selection.check_selection(session.config, session.items)


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    return ros_selection.report(config, items)


# --------------------------------------------------------------------------------------------
# The test process's own ROS node (publishers, graph queries).


class RosHarness:
    """A node in a private context, spun by an executor in a background thread.

    A callback that raises does not stop the thread (executor.spin() would end, and every
    later test of the session would see no ROS traffic): its traceback is kept in
    `callback_errors`, and the test during which it happened fails (check_callback_errors)."""

    def __init__(self) -> None:
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        self.node = Node("bridge_integration_test", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.callback_errors: list[str] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._spin, name="test-ros-executor",
                                        daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stopping.is_set() and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.5)
            except (ShutdownException, ExternalShutdownException):
                return
            except Exception:  # noqa: BLE001 - a test's callback; reported, the thread goes on
                self.callback_errors.append(traceback.format_exc())

    def take_callback_errors(self) -> list[str]:
        errors, self.callback_errors = self.callback_errors, []
        return errors

    def bridge_subscription_count(self, topic: str) -> int:
        """How many subscriptions of the bridge node this process's graph view shows on `topic`."""
        return sum(1 for info in self.node.get_subscriptions_info_by_topic(topic)
                   if info.node_name == BRIDGE_NODE_NAME)

    def bridge_subscription_qos(self, topic: str) -> list[tuple[Any, Any]]:
        """(reliability, durability) of each subscription of the bridge node on `topic`."""
        return [(info.qos_profile.reliability, info.qos_profile.durability)
                for info in self.node.get_subscriptions_info_by_topic(topic)
                if info.node_name == BRIDGE_NODE_NAME]

    def shutdown(self) -> None:
        # Order matters (DESIGN.md): executor, node, context; else the process may abort.
        self._stopping.set()
        self.executor.shutdown(timeout_sec=5.0)
        self._thread.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


class FibonacciServer:
    """A real rclpy action server (test_msgs/action/Fibonacci) on a node of its own, spun by a
    multi-threaded executor so that cancel requests are served while a goal executes: one
    feedback message per element, `period_s` apart; it records how each goal ended. With
    `accept_after_s`, it takes that long to accept a goal (a server that hangs)."""

    def __init__(self, name: str, period_s: float, accept_after_s: float = 0.0) -> None:
        from rclpy.action import ActionServer, CancelResponse, GoalResponse
        from rclpy.callback_groups import ReentrantCallbackGroup
        from rclpy.context import Context
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.node import Node
        from test_msgs.action import Fibonacci

        self.period_s = period_s
        self.endings: list[str] = []  # "succeeded" / "canceled", one per goal
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node("fibonacci_server", context=self.context)
        self.server = ActionServer(
            self.node, Fibonacci, name, self._execute,
            cancel_callback=lambda request: CancelResponse.ACCEPT,
            goal_callback=lambda goal: time.sleep(accept_after_s) or GoalResponse.ACCEPT,
            callback_group=ReentrantCallbackGroup())
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()
        self._fibonacci = Fibonacci

    def _execute(self, goal_handle: Any) -> Any:
        sequence = [0, 1]
        feedback = self._fibonacci.Feedback()
        for _ in range(goal_handle.request.order - 1):
            if goal_handle.is_cancel_requested:
                goal_handle.canceled()
                self.endings.append("canceled")
                return self._fibonacci.Result(sequence=sequence)
            sequence.append(sequence[-1] + sequence[-2])
            feedback.sequence = sequence
            goal_handle.publish_feedback(feedback)
            time.sleep(self.period_s)
        goal_handle.succeed()
        self.endings.append("succeeded")
        return self._fibonacci.Result(sequence=sequence)

    def shutdown(self) -> None:
        self.executor.shutdown(timeout_sec=5.0)
        self._thread.join(timeout=5.0)
        self.server.destroy()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


_harness: RosHarness | None = None


@pytest.fixture(scope="session")
def ros() -> Iterator[RosHarness]:
    global _harness
    _harness = RosHarness()
    try:
        yield _harness
    finally:
        _harness.shutdown()
        _harness = None


@pytest.fixture(autouse=True)
def check_callback_errors() -> Iterator[None]:
    """Fails the test during which a callback of the test process's node raised."""
    yield
    errors = _harness.take_callback_errors() if _harness is not None else []
    if errors:
        pytest.fail("a callback of the test node raised:\n" + "\n".join(errors))


class PeriodicPublisher:
    """Publishes `make(n)` for n = 0, 1, 2, ... from a timer on the harness's executor."""

    def __init__(self, ros: RosHarness, msg_type: type, topic: str, qos: Any, rate_hz: float,
                 make: Callable[[int], Any]) -> None:
        self._ros = ros
        self.topic = topic
        self.publisher = ros.node.create_publisher(msg_type, topic, qos)
        self.count = 0  # written by the executor thread only
        self._make = make
        self.timer = ros.node.create_timer(1.0 / rate_hz, self._tick)

    def _tick(self) -> None:
        self.publisher.publish(self._make(self.count))
        self.count += 1

    def stop(self) -> None:
        self._ros.node.destroy_timer(self.timer)
        self._ros.node.destroy_publisher(self.publisher)


@pytest.fixture
def periodic_publisher(ros: RosHarness) -> Iterator[Callable[..., PeriodicPublisher]]:
    """Factory of timer-driven publishers, all stopped at the end of the test."""
    started: list[PeriodicPublisher] = []

    def start(msg_type: type, topic: str, qos: Any, rate_hz: float,
              make: Callable[[int], Any]) -> PeriodicPublisher:
        publisher = PeriodicPublisher(ros, msg_type, topic, qos, rate_hz, make)
        started.append(publisher)
        return publisher

    yield start
    for publisher in started:
        publisher.stop()


# --------------------------------------------------------------------------------------------
# Bridge processes.


class BridgeProcess:
    """`python -m rover_ws_bridge.ros.node` with the given ROS parameters, in our domain."""

    def __init__(self, params: dict[str, str], log_dir: Path) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = log_dir / "bridge.stderr"
        args = [sys.executable, "-m", "rover_ws_bridge.ros.node", "--ros-args"]
        for name, value in params.items():
            args += ["-p", f"{name}:={value}"]
        self._stderr = open(self.stderr_path, "wb")
        self.process = subprocess.Popen(
            args, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self._stderr,
            env={**os.environ, **ROS_ENV, "PYTHONUNBUFFERED": "1",
                 "ROS_LOG_DIR": str(log_dir / "ros_log")})
        self.stdout_lines: list[str] = []
        self.port: int | None = None
        self._ready = threading.Event()
        # Drain stdout for the whole life of the process, so that a full pipe never blocks it.
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for raw in iter(self.process.stdout.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            self.stdout_lines.append(line)
            if READY_MARKER in line and self.port is None:
                self.port = int(line.rsplit(":", 1)[1])
                self._ready.set()
        self._ready.set()  # EOF: the process ended (or closed stdout) without being ready

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> int:
        self._ready.wait(timeout)
        if self.port is None:
            self.stop()
            pytest.fail(f"bridge did not report it was listening within {timeout} s "
                        f"(exit code {self.process.poll()}); stdout: {self.stdout_lines!r}; "
                        f"stderr:\n{self.stderr()}")
        return self.port

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def stop_cleanly(self) -> str:
        """Stop it and check it stopped well: exit code 0 and no traceback, whatever the
        tests sent it. Returns what it logged (stderr and stdout)."""
        returncode = self.stop()
        logged = self.stderr() + "\n".join(self.stdout_lines)
        assert "Traceback" not in logged, logged
        assert returncode == 0, logged
        return logged

    def stop(self, sig: int = signal.SIGINT) -> int:
        """Signal the process (if still running) and reap it; kill it if it does not exit."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(EXIT_TIMEOUT_S)
        self._reader.join(timeout=5.0)
        self._stderr.close()
        return self.process.returncode


# Loopback only (a shared machine), the port chosen by the OS, fast graph scans, short grace.
FAST_PARAMS = {"port": "0", "address": "127.0.0.1", "discovery_period_s": "0.2",
               "unsubscribe_grace_s": "0.5"}


@pytest.fixture
def start_bridge(tmp_path: Path) -> Iterator[Callable[..., BridgeProcess]]:
    """Factory: start a bridge (FAST_PARAMS overridden by `params`); by default wait until it
    listens. Every bridge started is stopped (SIGINT, then SIGKILL) at the end of the test."""
    started: list[BridgeProcess] = []

    def start(wait: bool = True, **params: str) -> BridgeProcess:
        bridge = BridgeProcess({**FAST_PARAMS, **params}, tmp_path / f"bridge{len(started)}")
        started.append(bridge)
        if wait:
            bridge.wait_ready()
        return bridge

    yield start
    for bridge in started:
        bridge.stop()


# --------------------------------------------------------------------------------------------
# Node.js projects the tests drive (web/, test/node_peers/*).

NODE_INSTALL_HINT = ("run scripts/install_web_test_deps.sh (as root it installs them with "
                     "apt-get; otherwise it prints what to install)")
NPM_CI_TIMEOUT_S = 300


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text)[:3])


def npm_project_env(project: Path, min_node: tuple[int, ...] = (20, 0)) -> dict[str, str]:
    """An environment in which the npm project's dependencies are installed: `npm ci` when
    its package.json or package-lock.json changed since the last install (a stamp file in
    node_modules says which). Fails the test when Node.js or npm is missing or too old."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(f"Node.js and npm are needed for the Node.js tests: {NODE_INSTALL_HINT}")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    if _version(version) < min_node:
        pytest.fail(f"Node.js {version} is too old here (needs "
                    f"{'.'.join(map(str, min_node))} or newer): {NODE_INSTALL_HINT}")
    env = {**os.environ, "ROVER_PYTHON": sys.executable, "NO_COLOR": "1", "FORCE_COLOR": "0",
           "npm_config_update_notifier": "false", "npm_config_fund": "false",
           "npm_config_audit": "false"}
    lock = hashlib.sha256((project / "package-lock.json").read_bytes()
                          + (project / "package.json").read_bytes()).hexdigest()[:16]
    stamp = project / "node_modules" / f".installed-{lock}"
    if not stamp.is_file():
        try:
            done = subprocess.run([npm, "ci"], cwd=project, env=env, capture_output=True,
                                  text=True, timeout=NPM_CI_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"npm ci in {project} did not finish within {NPM_CI_TIMEOUT_S} s")
        if done.returncode != 0:
            pytest.fail(f"npm ci in {project} failed (exit {done.returncode}):\n"
                        f"{(done.stdout + done.stderr)[-8000:]}")
        for old in (project / "node_modules").glob(".installed-*"):
            old.unlink()
        stamp.touch()
    return env


# --------------------------------------------------------------------------------------------
# Waiting in async tests.


def run(scenario: Awaitable[Any]) -> Any:
    return asyncio.run(scenario)


async def wait_until(predicate: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    """The first true value of `predicate()` (which may return an awaitable)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class RecordingConnection:
    """What the core needs of a connection (streaming/core.Requester), recording the outcomes
    it is given: for tests of the core without sockets."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.outcomes: list[Any] = []

    def deliver(self, outcome: Any) -> None:
        self.outcomes.append(outcome)

    def enqueue(self, record: Any) -> None:
        pass

    def topics_changed(self, *changes: Any) -> None:
        pass
