"""Two bridges at the same time, on one publisher: CPU by thread and latency, same window.

    python -m rover_ws_bridge.bench.side_by_side --a /path/to/old/checkout --b . \
        --rate 200 --clients 1 --seconds 15 --repeat 2
    python -m rover_ws_bridge.bench.side_by_side --a . --b peer --protocol foxglove

Why: on a shared machine the load of other work changes from one run to the next by more than
the effects measured (DESIGN.md: 2-3x); runs one after the other, even interleaved
(`rover-ws-bridge-bench --rounds`), compare different moments. Here both bridges run at once,
subscribed to the same publisher, each with its own client process, and their threads' CPU is
read over the same window: whatever else the machine does weighs on both alike. They compete
with each other too, equally.

`--a` / `--b`: a source tree of this package (put first on PYTHONPATH for that bridge: a
`git worktree` or `git archive` of another commit), or `peer` for the foxglove-sdk peer
(bench/foxglove_peer.py; its clients then speak the Foxglove protocol). `--repeat` runs it again
with the two ports swapped. `--a-env`/`--b-env NAME=VALUE` set the environment of one bridge
only (e.g. `PYTHONPATH` additions, such as a folder with uvloop).

Per bridge: CPU % of a core by thread role (as the bench: ros_executor, dds, websocket,
other), microseconds of CPU per delivered message, end-to-end latency p50/p95/p99 (publish
stamp -> client receive, same clock) and the messages delivered in the window.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .processes import ChildProcess, thread_cpu_s
from .runner import (
    BRIDGE_MODULE,
    LISTENING,
    LOADCLIENT_MODULE,
    OURS,
    PEER_MODULE,
    PUBLISHER_MODULE,
    thread_role,
)
from .stamps import decode_ns_array

ROLES = ("ros_executor", "dds", "websocket", "other")


class Side:
    def __init__(self, label: str, source: str, extra_env: list[str]) -> None:
        self.label = label
        self.is_peer = source == "peer"
        self.source = None if self.is_peer else str(Path(source).resolve())
        self.extra_env = dict(item.split("=", 1) for item in extra_env)
        self.bridge: ChildProcess | None = None
        self.client: ChildProcess | None = None

    def env(self, base: dict[str, str]) -> dict[str, str]:
        env = dict(base)
        if self.source is not None:
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (self.source, env.get("PYTHONPATH", "")) if p)
        for name, value in self.extra_env.items():
            env[name] = (value + os.pathsep + env[name]) if name == "PYTHONPATH" \
                and env.get(name) else value
        return env

    @property
    def kind(self) -> str:
        return "foxglove-sdk" if self.is_peer else OURS


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) / 1e6 if len(values) else float("nan")


def run_once(sides: list[Side], args: argparse.Namespace, base_env: dict[str, str],
             log_dir: Path) -> list[dict[str, Any]]:
    children: list[ChildProcess] = []
    try:
        urls = []
        for side in sides:
            env = side.env(base_env)
            if side.is_peer:
                side.bridge = ChildProcess(f"{side.label}-peer", PEER_MODULE,
                                           ["--topic", f"{args.topic}:sensor_msgs/msg/Imu"],
                                           env, log_dir)
            else:
                side.bridge = ChildProcess(f"{side.label}-bridge", BRIDGE_MODULE,
                                           ["--ros-args", "-p", "port:=0", "-p",
                                            "address:=127.0.0.1"], env, log_dir)
            children.append(side.bridge)
        for side in sides:  # both print the same line (the peer for the runner's sake)
            assert side.bridge is not None
            line = side.bridge.wait_for("line", 60, LISTENING)["text"]
            urls.append(re.search(LISTENING, line).group(1))
        publisher = ChildProcess("publisher", PUBLISHER_MODULE,
                                 ["--rate", f"{args.rate:g}", "--topic", args.topic],
                                 base_env, log_dir)
        children.append(publisher)
        publisher.wait_for("ready", 60)
        for side, url in zip(sides, urls):
            protocol = "foxglove" if side.is_peer else args.protocol
            side.client = ChildProcess(
                f"{side.label}-client", LOADCLIENT_MODULE,
                ["--url", url, "--clients", str(args.clients), "--topic", args.topic,
                 "--protocol", protocol, "--drain", "1"], base_env, log_dir)
            children.append(side.client)
        for side in sides:
            assert side.client is not None
            side.client.wait_for("ready", 60)
        time.sleep(args.warmup)
        start_ns = time.time_ns()
        end_ns = start_ns + int(args.seconds * 1e9)
        for side in sides:
            assert side.client is not None
            side.client.send(f"window {start_ns} {end_ns}")
        before = {side.label: thread_cpu_s(side.bridge.pid) for side in sides}
        started = time.monotonic()
        time.sleep(args.seconds)
        after = {side.label: thread_cpu_s(side.bridge.pid) for side in sides}
        elapsed = time.monotonic() - started
        rows = []
        for side in sides:
            assert side.bridge is not None and side.client is not None
            result = side.client.wait_for("result", args.seconds + 60)
            latencies = np.concatenate([decode_ns_array(c["latencies_ns"])
                                        for c in result["clients"]]) \
                if result["clients"] else np.array([])
            delivered = sum(c["delivered"] for c in result["clients"])
            cpu = dict.fromkeys(ROLES, 0.0)
            for tid, (name, seconds) in after[side.label].items():
                used = seconds - before[side.label].get(tid, (name, 0.0))[1]
                cpu[thread_role(side.kind, side.bridge.pid, tid, name)] += used
            per_msg = {role: 1e6 * used / delivered if delivered else float("nan")
                       for role, used in cpu.items()}
            rows.append({
                "side": side.label, "bridge": side.kind, "source": side.source or "peer",
                "delivered": delivered, "msgs_s": delivered / elapsed,
                "cpu_pct": {role: 100 * used / elapsed for role, used in cpu.items()},
                "us_per_msg": sum(per_msg.values()),
                "ros_side_us_per_msg": per_msg["ros_executor"] + per_msg["dds"],
                "websocket_side_us_per_msg": per_msg["websocket"] + per_msg["other"],
                "p50_ms": _percentile(latencies, 50), "p95_ms": _percentile(latencies, 95),
                "p99_ms": _percentile(latencies, 99)})
        return rows
    finally:
        for child in reversed(children):
            child.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rover_ws_bridge.bench.side_by_side",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", required=True, help="a source tree, or 'peer'")
    parser.add_argument("--b", required=True, help="a source tree, or 'peer'")
    parser.add_argument("--a-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--b-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--topic", default="/imu")
    parser.add_argument("--protocol", default="native", choices=("native", "foxglove"),
                        help="the protocol of our bridges' clients (the peer's: foxglove)")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=2,
                        help="runs; the second and later swap which bridge starts first")
    args = parser.parse_args(argv)
    base_env = dict(os.environ)
    base_env.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 70))
    log_dir = Path(tempfile.mkdtemp(prefix="rover-ws-bridge-side-"))
    a, b = Side("A", args.a, args.a_env), Side("B", args.b, args.b_env)  # paths resolved
    # `python -m` puts the working directory first on sys.path, before PYTHONPATH: started
    # from a checkout, every child would import that checkout's package, A's and B's alike.
    os.chdir(log_dir)
    print(f"A = {args.a}, B = {args.b}; {args.clients} client(s) each on {args.topic} at "
          f"{args.rate:g} Hz, {args.seconds:g} s windows; logs in {log_dir}")
    for side in (a, b):
        if not side.is_peer:  # what the bridge will import, from where it will run
            where = subprocess.run(
                [sys.executable, "-c",
                 "import rover_ws_bridge; print(rover_ws_bridge.__path__[0])"],
                env=side.env(base_env), capture_output=True, text=True, check=True)
            print(f"{side.label} imports {where.stdout.strip()}")
    print(f"{'run':>3} {'side':>4} {'msgs/s':>9} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
          f"{'us/msg':>8} {'ROS us':>8} {'WS us':>8}  CPU % by thread")
    ok = True
    for run in range(1, args.repeat + 1):
        sides = [a, b] if run % 2 else [b, a]
        try:
            rows = run_once(sides, args, base_env, log_dir)
        except Exception as exc:  # noqa: BLE001 - report it, keep the logs
            print(f"run {run} failed: {exc}", file=sys.stderr)
            ok = False
            continue
        for row in sorted(rows, key=lambda r: r["side"]):
            cpu = ", ".join(f"{role} {pct:.1f}" for role, pct in row["cpu_pct"].items())
            print(f"{run:>3} {row['side']:>4} {row['msgs_s']:9.1f} {row['p50_ms']:7.2f} "
                  f"{row['p95_ms']:7.2f} {row['p99_ms']:7.2f} {row['us_per_msg']:8.1f} "
                  f"{row['ros_side_us_per_msg']:8.1f} {row['websocket_side_us_per_msg']:8.1f}"
                  f"  {cpu}")
    if ok:
        shutil.rmtree(log_dir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
