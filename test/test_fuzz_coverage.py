"""The coverage-guided fuzz run (atheris, test/fuzz/): each harness for a bounded time
(FUZZ_SECONDS, default 5 s: CI's share of the 15-minute budget; FUZZ_SECONDS=300 for a real
campaign), zero crashes. Executions, coverage and the known bugs hit are
printed (pytest -s, or in the failure message)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris is not installed (pip install atheris; "
                    "requirements-test.txt): the coverage-guided fuzz run is skipped")

RUNNER = Path(__file__).resolve().parent / "fuzz" / "run.py"
SECONDS = float(os.environ.get("FUZZ_SECONDS", "5"))


@pytest.mark.parametrize("harness", ["native", "codec", "frame"])
def test_fuzz_harness_finds_no_crash(harness):
    proc = subprocess.run([sys.executable, str(RUNNER), "--seconds", str(SECONDS), "--only",
                           harness, "--json"], capture_output=True, text=True,
                          timeout=SECONDS + 180)
    assert proc.stdout.strip(), proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    summary = (f"{harness}: {result['executions']} executions in {result['seconds']} s, "
               f"coverage {result['coverage_edges']} edges / {result['features']} features, "
               f"known findings hit: {sorted(result['known_findings']) or 'none'}")
    print(summary)
    assert not result["crashed"], summary + "\n" + result["log_tail"]
    assert result["executions"] and result["executions"] > 100, summary
