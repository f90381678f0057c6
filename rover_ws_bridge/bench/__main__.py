"""rover-ws-bridge-bench: load scenarios against a real bridge process; prints figures.

    rover-ws-bridge-bench                              # every scenario, 10 s each
    rover-ws-bridge-bench --scenario imu_200 --duration 5 --json /tmp/bench.json

Each scenario starts its own bridge (port 0, 127.0.0.1), bench publisher and client processes,
and stops them before the next one. The whole run uses one random ROS_DOMAIN_ID and
localhost-only discovery, so it neither sees nor disturbs other ROS processes on the machine.
"""
from __future__ import annotations

import argparse
import os
import random
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from .processes import BenchError
from .report import format_report, machine_info, write_json
from .runner import RunSettings, ScenarioRun
from .scenarios import SCENARIOS, select


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rover-ws-bridge-bench",
        description="Load-test the ROS 2 -> WebSocket bridge: throughput, latency (publish -> "
                    "client receive), bridge CPU.",
        epilog="scenarios: " + "; ".join(f"{s.name}: {s.description}" for s in SCENARIOS))
    parser.add_argument("--scenario", action="append", metavar="NAME",
                        help="scenario to run (repeatable, or a comma list); default: all")
    parser.add_argument("--duration", type=float, default=10.0, metavar="S",
                        help="measurement window per scenario, seconds (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, metavar="S",
                        help="seconds of traffic before the window opens (default 2)")
    parser.add_argument("--drain", type=float, default=2.0, metavar="S",
                        help="seconds after the window during which messages stamped inside it "
                             "still count as delivered (default 2)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results here")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the child processes' logs (kept anyway when a scenario fails)")
    return parser


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = str(random.randint(1, 100))
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.pop("ROS_LOCALHOST_ONLY", None)  # deprecated; would fight the setting above
    env["PYTHONUNBUFFERED"] = "1"
    return env


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        scenarios = select(args.scenario)
    except KeyError as exc:
        print(f"rover-ws-bridge-bench: {exc.args[0]}", file=sys.stderr)
        return 2
    if args.duration <= 0 or args.warmup < 0 or args.drain < 0:
        print("rover-ws-bridge-bench: --duration must be > 0, --warmup and --drain >= 0",
              file=sys.stderr)
        return 2
    command = shlex.join(["rover-ws-bridge-bench", *(sys.argv[1:] if argv is None else argv)])
    env = _child_env()
    machine = machine_info(env)
    log_dir = Path(tempfile.mkdtemp(prefix="rover-ws-bridge-bench-"))
    settings = RunSettings(args.duration, args.warmup, args.drain, env, log_dir)
    print(f"rover-ws-bridge-bench: ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}, logs in {log_dir}",
          file=sys.stderr, flush=True)

    results: list[dict[str, Any]] = []
    failed = False
    try:
        for scenario in scenarios:
            print(f"  {scenario.name}: {scenario.description} ({args.duration:g} s)",
                  file=sys.stderr, flush=True)
            try:
                results.append(ScenarioRun(scenario, settings).run())
            except BenchError as exc:
                failed = True
                results.append({"name": scenario.name, "clients": scenario.clients,
                                "rate_hz": scenario.rate_hz, "error": str(exc)})
    except KeyboardInterrupt:
        print("rover-ws-bridge-bench: interrupted; children stopped", file=sys.stderr)
        return 130

    print(format_report(results, machine))
    print(f"\nmachine: {machine['cpu_count']} x {machine['cpu_model']}, Python "
          f"{machine['python']}, rclpy {machine['rclpy']}, {machine['date']}")
    if args.json is not None:
        write_json(args.json, results, machine, command)
        print(f"results written to {args.json}")
    if failed or args.keep_logs:
        print(f"logs kept in {log_dir}", file=sys.stderr)
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
