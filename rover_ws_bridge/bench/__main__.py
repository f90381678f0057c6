"""rover-ws-bridge-bench: load scenarios against a real bridge process; prints figures.

    rover-ws-bridge-bench                              # every scenario, 10 s each
    rover-ws-bridge-bench --scenario imu_200 --duration 5 --json /tmp/bench.json
    rover-ws-bridge-bench --scenario fanout_1000 --peer foxglove-sdk     # ours, then the peer
    rover-ws-bridge-bench --protocol foxglove --peer foxglove-sdk    # one protocol, both bridges
    rover-ws-bridge-bench --rounds 3 --peer foxglove-sdk --scenario imu_200   # interleaved
    rover-ws-bridge-bench --json new.json --compare old.json --plot new.png
    rover-ws-bridge-bench --load new.json --compare old.json             # no run: files only

Each scenario starts its own bridge (port 0, 127.0.0.1), publisher and client processes, and
stops them before the next one. The whole run uses one random ROS_DOMAIN_ID and localhost-only
discovery, so it neither sees nor disturbs other ROS processes on the machine.

Exit codes: 0 fine; 1 a scenario failed; 2 bad usage (or --plot impossible); 3 --compare
found a regression.
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

from .compare import CompareSettings, compare, format_comparison
from .processes import BenchError
from .report import (
    format_ratio_summary,
    format_ratios,
    format_report,
    format_table,
    machine_info,
    peer_ratios,
    ratio_summary,
    read_json,
    write_json,
)
from .runner import OURS, PEERS, RunSettings, ScenarioRun
from .scenarios import SCENARIOS, select

EXIT_FAILED, EXIT_USAGE, EXIT_REGRESSION = 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rover-ws-bridge-bench",
        description="Load-test the ROS 2 -> WebSocket bridge: throughput, latency (publish -> "
                    "client receive), drops, bytes per message, bridge CPU and memory; against "
                    "the specification's targets, an earlier run, or a peer bridge.",
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
    parser.add_argument("--peer", choices=PEERS,
                        help="also run each (Imu) scenario through this peer bridge, with the "
                             "same publisher and client harness, and print ours/peer ratios")
    parser.add_argument("--rounds", type=int, default=1, metavar="N",
                        help="run everything N times, ours and the peer interleaved per "
                             "scenario (ours first in odd rounds, the peer first in even ones); "
                             "each ours/peer ratio is then the median of the rounds' ratios, "
                             "with its range (default 1)")
    parser.add_argument("--protocol", choices=("native", "foxglove", "rosbridge"),
                        default="native",
                        help="the protocol of the clients of our bridge (default native). "
                             "foxglove runs the (Imu) scenarios with Foxglove WebSocket clients "
                             "instead, so that --peer foxglove-sdk compares the same protocol "
                             "and the same CDR passthrough on both sides; rosbridge also runs "
                             "each (Imu) scenario with rosbridge clients (JSON, then CBOR), "
                             "reported beside the native runs")
    parser.add_argument("--plot", type=Path, metavar="FILE.png",
                        help="draw the latency distributions (needs matplotlib)")
    parser.add_argument("--compare", type=Path, metavar="OLD.json",
                        help="flag significant regressions against an earlier results file; "
                             "exit 3 on one")
    parser.add_argument("--load", type=Path, metavar="FILE.json",
                        help="run nothing: take the results from this file (for --compare, "
                             "--plot, or to print its table again)")
    parser.add_argument("--alpha", type=float, default=CompareSettings.alpha,
                        help="--compare: significance level of the latency test (default "
                             f"{CompareSettings.alpha:g})")
    parser.add_argument("--threshold", type=float, default=CompareSettings.threshold_pct,
                        metavar="PCT", help="--compare: smallest relative change that counts "
                        f"(default {CompareSettings.threshold_pct:g} %%)")
    parser.add_argument("--markdown", action="store_true",
                        help="print the tables as Markdown (for docs/BENCHMARKS.md)")
    parser.add_argument("--bridge-param", action="append", default=[], metavar="NAME:=VALUE",
                        type=_bridge_param,
                        help="a bridge parameter for every scenario (repeatable), e.g. "
                             "max_batch_delay_ms:=0, to compare settings")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the child processes' logs (kept anyway when a scenario fails)")
    return parser


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # Fast DDS takes 0-232 on Linux; the widest range makes a clash with another run on this
    # machine unlikely, and the publishers report one if it happens (foreign_publishers).
    env["ROS_DOMAIN_ID"] = str(random.randint(1, 232))
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.pop("ROS_LOCALHOST_ONLY", None)  # deprecated; would fight the setting above
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _bridge_param(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME:=VALUE")
    return name, value


def _failed(scenario: Any, bridge: str, exc: Exception) -> dict[str, Any]:
    return {"name": scenario.name, "bridge": bridge, "clients": scenario.clients,
            "rate_hz": scenario.rate_hz, "error": str(exc)}


def _run(args: argparse.Namespace, scenarios: list[Any], command: str) -> tuple[dict, bool]:
    env = _child_env()
    machine = machine_info(env)
    log_dir = Path(tempfile.mkdtemp(prefix="rover-ws-bridge-bench-"))
    settings = RunSettings(args.duration, args.warmup, args.drain, env, log_dir,
                           bridge_parameters=tuple(args.bridge_param),
                           # rosbridge runs come after the native ones (_run_rosbridge)
                           protocol="foxglove" if args.protocol == "foxglove" else "native")
    print(f"rover-ws-bridge-bench: ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}, logs in {log_dir}",
          file=sys.stderr, flush=True)
    results: list[dict[str, Any]] = []
    peers: list[dict[str, Any]] = []
    ratios: list[dict[str, Any]] = []
    failed = False
    for round_number in range(1, args.rounds + 1):
        for scenario in scenarios:
            if args.protocol == "foxglove" and not scenario.peer_capable:
                if round_number == 1:
                    print(f"  ({scenario.name}: skipped: Foxglove clients run the "
                          "sensor_msgs/Imu bench-publisher scenarios only)", file=sys.stderr,
                          flush=True)
                continue
            if args.peer and not scenario.peer_capable and round_number == 1:
                print(f"  ({scenario.name}: no {args.peer} run: the peer takes sensor_msgs/Imu "
                      "bench-publisher scenarios only)", file=sys.stderr, flush=True)
            bridges = [OURS] + ([args.peer] if args.peer and scenario.peer_capable else [])
            if round_number % 2 == 0:
                bridges.reverse()  # ABBA: drift of the machine weighs on both sides alike
            runs: dict[str, dict[str, Any]] = {}
            for bridge in bridges:
                print(f"  {scenario.name}" + (f" round {round_number}" if args.rounds > 1
                                              else "")
                      + (f" through {bridge}" if bridge != OURS else
                         f": {scenario.description} ({args.duration:g} s)"),
                      file=sys.stderr, flush=True)
                try:
                    run = ScenarioRun(scenario, settings, bridge=bridge).run()
                except BenchError as exc:
                    failed = True
                    run = _failed(scenario, bridge, exc)
                if args.rounds > 1:
                    run["round"] = round_number
                runs[bridge] = run
                (results if bridge == OURS else peers).append(run)
            if len(runs) == 2 and not any("error" in r for r in runs.values()):
                ratio = peer_ratios(runs[OURS], runs[args.peer])
                ratio["round"] = round_number
                ratios.append(ratio)
    if args.protocol == "rosbridge":
        failed = _run_rosbridge(scenarios, settings, peers) or failed
    if failed or args.keep_logs:
        print(f"logs kept in {log_dir}", file=sys.stderr)
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
    document = {"scenarios": results, "machine": machine, "command": command}
    if args.peer or args.protocol == "rosbridge":
        document.update(peers=peers, peer_ratios=ratios)
    return document, failed


def _run_rosbridge(scenarios: list[Any], settings: RunSettings,
                   runs: list[dict[str, Any]]) -> bool:
    """`--protocol rosbridge`: each Imu scenario again on our bridge, its clients speaking
    rosbridge (JSON, then CBOR), reported beside the native runs. True if one failed."""
    failed = False
    for scenario in [s for s in scenarios if s.peer_capable]:
        for encoding in ("json", "cbor"):
            print(f"  {scenario.name} with rosbridge {encoding} clients", file=sys.stderr,
                  flush=True)
            try:
                runs.append(ScenarioRun(scenario, settings, rosbridge_encoding=encoding).run())
            except BenchError as exc:
                failed = True
                runs.append(_failed(scenario, f"rosbridge {encoding}", exc))
    return failed


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.load is not None and (args.scenario or args.peer):
        print("rover-ws-bridge-bench: --load runs nothing; --scenario and --peer do not apply",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        scenarios = select(args.scenario)
    except KeyError as exc:
        print(f"rover-ws-bridge-bench: {exc.args[0]}", file=sys.stderr)
        return EXIT_USAGE
    if args.duration <= 0 or args.warmup < 0 or args.drain < 0 or args.rounds < 1:
        print("rover-ws-bridge-bench: --duration must be > 0, --warmup and --drain >= 0, "
              "--rounds >= 1", file=sys.stderr)
        return EXIT_USAGE
    if args.peer == "foxglove-sdk" and args.load is None:
        try:
            import foxglove  # noqa: F401
        except ImportError:
            print("rover-ws-bridge-bench: --peer foxglove-sdk needs the foxglove-sdk package "
                  "(pip install foxglove-sdk)", file=sys.stderr)
            return EXIT_USAGE
    old = None
    try:
        old = read_json(args.compare) if args.compare is not None else None
        loaded = read_json(args.load) if args.load is not None else None
    except (OSError, ValueError) as exc:
        print(f"rover-ws-bridge-bench: {exc}", file=sys.stderr)
        return EXIT_USAGE

    command = shlex.join(["rover-ws-bridge-bench", *(sys.argv[1:] if argv is None else argv)])
    failed = False
    if loaded is not None:
        document = loaded
    else:
        try:
            document, failed = _run(args, scenarios, command)
        except KeyboardInterrupt:
            print("rover-ws-bridge-bench: interrupted; children stopped", file=sys.stderr)
            return 130

    machine = document.get("machine", {})
    if args.markdown:
        print(format_table(document["scenarios"] + document.get("peers", []), markdown=True))
        if document.get("peer_ratios"):
            print("\n" + format_ratios(document["peer_ratios"], markdown=True))
            print("\n" + format_ratio_summary(ratio_summary(document["peer_ratios"]),
                                              markdown=True))
    else:
        print(format_report(document["scenarios"], machine, document.get("peers"),
                            document.get("peer_ratios")))
    print(f"\nmachine: {machine.get('cpu_count')} x {machine.get('cpu_model')}, Python "
          f"{machine.get('python')}, rclpy {machine.get('rclpy')}, commit "
          f"{machine.get('commit')}, {machine.get('date')}")
    if args.json is not None and loaded is None:
        write_json(args.json, document["scenarios"], machine, command, document.get("peers"),
                   document.get("peer_ratios"))
        print(f"results written to {args.json}")

    code = EXIT_FAILED if failed else 0
    if args.plot is not None:
        from .plot import PlotUnavailable, plot

        try:
            drawn = plot(document["scenarios"] + document.get("peers", []), args.plot,
                         title=f"{machine.get('cpu_count')} x {machine.get('cpu_model')}, "
                               f"commit {machine.get('commit')}, {machine.get('date')}")
            print(f"latency distributions of {drawn} runs drawn in {args.plot}")
        except PlotUnavailable as exc:
            print(f"rover-ws-bridge-bench: {exc}", file=sys.stderr)
            code = code or EXIT_USAGE
    if old is not None:
        comparison = compare(old, document, CompareSettings(alpha=args.alpha,
                                                            threshold_pct=args.threshold))
        print(format_comparison(comparison, str(args.compare)))
        if comparison.regressions:
            code = EXIT_REGRESSION
    return code


if __name__ == "__main__":
    sys.exit(main())
