"""The bench runs for real: one short imu_200 scenario, as a subprocess, with a JSON report.

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


def test_bench_imu_200_writes_a_complete_report(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "rover_ws_bridge.bench", "--scenario", "imu_200",
         "--duration", "2", "--warmup", "1", "--drain", "1", "--json", str(report)],
        cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "imu_200" in run.stdout  # the printed table

    document = json.loads(report.read_text())
    assert set(document) >= {"scenarios", "machine", "command"}
    assert "--scenario imu_200" in document["command"]
    assert {"cpu_count", "python", "date"} <= set(document["machine"])
    [result] = document["scenarios"]
    assert "error" not in result, result.get("error")
    assert {"name", "clients", "rate_hz", "duration_s", "expected", "delivered",
            "throughput_msgs_s", "latency_ms", "bridge_cpu_pct"} <= set(result)
    assert result["name"] == "imu_200"
    assert result["clients"] == 1
    assert result["rate_hz"] == 200
    assert result["expected"] > 0
    assert 0 < result["delivered"] <= result["expected"]
    assert set(result["latency_ms"]) == {"p50", "p95", "p99", "max"}
    assert result["latency_ms"]["p50"] <= result["latency_ms"]["max"]
    assert result["bridge_cpu_pct"] >= 0
    assert result["bridge_exit_code"] == 0


def test_unknown_scenario_is_refused_with_the_known_names() -> None:
    run = subprocess.run([sys.executable, "-m", "rover_ws_bridge.bench", "--scenario", "nope"],
                         cwd=REPO, capture_output=True, text=True, timeout=30)
    assert run.returncode == 2
    assert "imu_200" in run.stderr


def test_scenario_selection_takes_comma_lists_and_repeats() -> None:
    assert {"idle", "imu_200", "max_rate"} <= {s.name for s in select(None)}
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
