"""The abuse suite (bench/abuse.py) for real, briefly: a bridge, the publisher, a good client and
four cheap attacks of 1 s each. It must exit 0 and print one row per attack."""
from __future__ import annotations

import signal
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(120)

ATTACKS = ["huge_list", "deep_nesting", "oversized", "link_flood"]


def test_abuse_suite_runs_and_prints_a_row_per_attack() -> None:
    suite = subprocess.Popen(
        [sys.executable, "-m", "rover_ws_bridge.bench.abuse", "--seconds-per-attack", "1",
         "--attack", *ATTACKS],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = suite.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        # SIGINT, not a kill: the suite then stops the bridge and publisher it started.
        suite.send_signal(signal.SIGINT)
        stdout, stderr = suite.communicate(timeout=20)
        pytest.fail(f"the abuse suite did not finish in 90 s:\n{stdout}{stderr}")
    done = subprocess.CompletedProcess(suite.args, suite.returncode, stdout, stderr)
    assert done.returncode == 0, done.stdout + done.stderr
    table = done.stdout.split("\n\n")[-1].splitlines()
    assert table[0].startswith("attack")
    rows = {line.split()[0]: line for line in table[1:] if line.split()}
    for name in ATTACKS:
        assert name in rows, done.stdout
        rate = float(rows[name].split()[1])
        assert rate > 0, rows[name]  # the good client kept receiving /imu
    assert "bad_request" in rows["huge_list"]
    assert "1009" in rows["oversized"]
    assert "rate_limit" in rows["link_flood"]  # the per-client message limit, as for ping
    assert "bridge alive at the end" in done.stdout
