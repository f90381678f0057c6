"""The bench runs for real: one short rover_mix scenario, as a subprocess, with a JSON report;
then --compare and --plot on that file, without running anything.

Checks the report's shape and that data got through; never a time or a rate (the machine is
shared, and figures are for the bench to print, not for tests to assert).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rover_ws_bridge.bench.scenarios import select
from rover_ws_bridge.bench.stamps import cdr_header_stamp_ns, decode_ns_array, encode_ns_array

REPO = Path(__file__).resolve().parent.parent
RUN_TIMEOUT_S = 90.0  # a deadline for a hung run, not a measured time
EXIT_REGRESSION = 3


def bench(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rover_ws_bridge.bench", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    run = bench("--scenario", "rover_mix", "--duration", "2", "--warmup", "1", "--drain", "1",
                "--json", str(path), timeout=RUN_TIMEOUT_S)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "rover_mix" in run.stdout and "p95<50ms" in run.stdout  # the printed table
    return path


def test_rover_mix_writes_a_complete_report(report: Path) -> None:
    document = json.loads(report.read_text())
    assert set(document) >= {"scenarios", "machine", "command"}
    assert "--scenario rover_mix" in document["command"]
    assert {"cpu_count", "python", "date", "commit"} <= set(document["machine"])
    [result] = document["scenarios"]
    assert "error" not in result, result.get("error")
    assert {"name", "clients", "rate_hz", "duration_s", "expected", "delivered",
            "throughput_msgs_s", "latency_ms", "bridge_cpu_pct", "latency_samples_ms",
            "compression_ratio", "wire_bytes_per_msg", "json_bytes_per_msg",
            "reduction_vs_json_pct", "drop_pct", "bridge_rss_mb_start", "bridge_rss_mb_end",
            "by_topic", "targets"} <= set(result)
    assert result["name"] == "rover_mix" and result["clients"] == 3
    assert 0 < result["delivered"] <= result["expected"]
    assert set(result["latency_ms"]) == {"p50", "p95", "p99", "max"}
    assert 0 < len(result["latency_samples_ms"]) <= 2000
    assert 0 < result["compression_ratio"] and result["wire_bytes_per_msg"] > 0
    assert result["json_bytes_per_msg"] > 0
    assert "/estop" in result["by_topic"] and "/imu" in result["by_topic"]
    # e-stop toggles every 0.5 s: CRITICAL traffic, counted both ways
    assert result["critical"]["messages"] > 0
    assert result["bridge_backpressure"]["critical_dropped"] >= 0
    assert {"p95_ms", "drop_pct", "clients_held", "critical_dropped"} <= set(result["targets"])
    assert all(isinstance(t["pass"], bool) for t in result["targets"].values())
    assert result["bridge_exit_code"] == 0


def test_foxglove_protocol_runs_imu_scenarios_with_foxglove_clients(tmp_path: Path) -> None:
    path = tmp_path / "foxglove.json"
    run = bench("--protocol", "foxglove", "--scenario", "imu_200,rover_mix", "--duration", "1",
                "--warmup", "0.5", "--drain", "0.5", "--json", str(path),
                timeout=RUN_TIMEOUT_S)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "rover_mix: skipped" in run.stderr  # not an Imu bench-publisher scenario
    [result] = json.loads(path.read_text())["scenarios"]
    assert (result["name"], result["protocol"]) == ("imu_200", "foxglove")
    assert "error" not in result and result["delivered"] > 0
    assert "imu_200 [foxglove protocol]" in run.stdout


def test_compare_with_itself_finds_no_regression(report: Path) -> None:
    run = bench("--load", str(report), "--compare", str(report))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "no regression" in run.stdout


def test_compare_flags_much_worse_latency(report: Path, tmp_path: Path) -> None:
    document = json.loads(report.read_text())
    for s in document["scenarios"]:
        s["latency_samples_ms"] = [5 * v + 20 for v in s["latency_samples_ms"]]
        s["latency_ms"] = {k: 5 * v + 20 for k, v in s["latency_ms"].items()}
    worse = tmp_path / "worse.json"
    worse.write_text(json.dumps(document))
    run = bench("--load", str(worse), "--compare", str(report))
    assert run.returncode == EXIT_REGRESSION, run.stdout + run.stderr
    assert "REGRESSION" in run.stdout


def test_plot_writes_a_png(report: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "latency.png"
    run = bench("--load", str(report), "--plot", str(png))
    assert run.returncode == 0, run.stdout + run.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_scenario_is_refused_with_the_known_names() -> None:
    run = bench("--scenario", "nope")
    assert run.returncode == 2
    assert "imu_200" in run.stderr


def test_scenario_selection_takes_comma_lists_and_repeats() -> None:
    names = {s.name for s in select(None)}
    assert {"idle", "imu_200", "max_rate", "low_load", "normal_load", "high_load",
            "stress_test", "burst_test", "fanout_1000", "clients_100", "rover_mix",
            "slow_client"} <= names
    assert [s.name for s in select(["max_rate,imu_200", "imu_200"])] == ["max_rate", "imu_200"]
    with pytest.raises(KeyError):
        select(["imu_200,nope"])


def test_header_stamp_read_from_cdr_and_latency_arrays_round_trip() -> None:
    import numpy as np
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Imu

    msg = Imu()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1_700_000_000, 123_456_789
    assert cdr_header_stamp_ns(serialize_message(msg)) == 1_700_000_000_123_456_789
    values = np.array([0, 1, -5, 2**40], dtype=np.int64)
    assert decode_ns_array(encode_ns_array(values)).tolist() == values.tolist()


def test_rounds_repeat_each_scenario_and_split_the_bridge_cpu_by_thread(tmp_path: Path) -> None:
    path = tmp_path / "rounds.json"
    run = bench("--rounds", "2", "--scenario", "busy_rover", "--duration", "1", "--warmup",
                "0.5", "--drain", "0.5", "--json", str(path), timeout=RUN_TIMEOUT_S)
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads(path.read_text())["scenarios"]
    assert [(r["name"], r["round"]) for r in results] == [("busy_rover", 1), ("busy_rover", 2)]
    for r in results:
        assert "error" not in r and r["delivered"] > 0
        assert r["cpu_hog_cpu_pct"] > 0  # the hog ran beside the bridge, and stopped after
        roles = r["bridge_cpu_pct_by_role"]
        assert {"ros_executor", "websocket", "dds"} <= set(roles)
        assert r["bridge_cpu_us_per_msg_ros_side"] > 0
        assert r["bridge_cpu_us_per_msg_websocket_side"] > 0
    assert "busy_rover #2" in run.stdout


def test_ratio_summary_calls_only_what_every_round_agrees_on() -> None:
    from rover_ws_bridge.bench.report import ratio_summary

    def ratio(p95: float, cpu: float) -> dict:
        return {"name": "imu_200", "peer": "foxglove-sdk", "p95_ratio": p95,
                "cpu_per_msg_ratio": cpu, "round": 1}

    [summary] = ratio_summary([ratio(0.8, 1.2), ratio(0.9, 0.7), ratio(0.7, 1.1)])
    assert summary["rounds"] == 3
    assert summary["p95"] == {"median": 0.8, "min": 0.7, "max": 0.9, "verdict": "ours lower"}
    assert summary["cpu_per_msg"]["verdict"] == "too spread to call"
    assert summary["cpu_per_msg"]["median"] == 1.1
    assert summary["ros_side_cpu_per_msg"] is None  # not measured in these rounds


def test_side_by_side_runs_two_source_trees_at_once(tmp_path: Path) -> None:
    """Two bridges from two source trees at the same time; each bridge imports its own tree
    (not the working directory's: `python -m` puts that first on sys.path)."""
    other = tmp_path / "other"
    other.mkdir()
    subprocess.run(f"git -C {REPO} archive HEAD rover_ws_bridge | tar -x -C {other}",
                   shell=True, check=True)
    run = subprocess.run(
        [sys.executable, "-m", "rover_ws_bridge.bench.side_by_side", "--a", str(REPO),
         "--b", str(other), "--seconds", "2", "--warmup", "1", "--repeat", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"A imports {REPO / 'rover_ws_bridge'}" in run.stdout, run.stdout
    assert f"B imports {other / 'rover_ws_bridge'}" in run.stdout, run.stdout
    rows = [line.split() for line in run.stdout.splitlines()
            if line.split()[:2] in (["1", "A"], ["1", "B"])]
    assert len(rows) == 2, run.stdout
    assert all(float(row[2]) > 0 for row in rows), run.stdout  # msgs/s: data got through
    assert "websocket" in run.stdout and "ros_executor" in run.stdout


def test_decode_bench_checks_both_paths_agree_and_prints_each() -> None:
    run = subprocess.run([sys.executable, "-m", "rover_ws_bridge.bench.decode", "--number",
                          "20", "sensor_msgs/msg/Imu", "nav_msgs/msg/Odometry"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {line.split()[0]: line.split()[1:] for line in run.stdout.splitlines()[1:]}
    assert set(rows) == {"sensor_msgs/msg/Imu", "nav_msgs/msg/Odometry"}
    assert all(float(value) > 0 for row in rows.values() for value in row)
