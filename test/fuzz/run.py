"""Run every atheris harness for a bounded time; print executions, coverage and findings.

    python test/fuzz/run.py [--seconds 15] [--only native,codec,frame] [--keep DIR]

Each harness starts from a small seed corpus (valid messages and frames, written here) in a
temporary directory, runs `-max_total_time` seconds, and is a failure if it crashes (an
exception, a broken property, an input slower than -timeout, memory over -rss_limit_mb).
Crashing inputs are kept in --keep (default: test-output/fuzz/) as crash-<hash> files; replay
one with `python test/fuzz/fuzz_<name>.py <file>`. Known bugs (test/fuzz/checks.py) are
counted, not crashes. Exit status: 0 when no harness crashed, 1 otherwise, 2 without atheris.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
HARNESSES = ("native", "codec", "frame")


def _seeds(name: str) -> list[bytes]:
    import msgpack

    if name == "native":
        texts = [
            {"op": "subscribe", "id": 1, "topics": ["/imu", "/odom"], "encoding": "json",
             "max_rate_hz": 10},
            {"op": "subscribe", "topic": "/later", "type": "std_msgs/msg/Int32"},
            {"op": "unsubscribe", "topic": "/imu"},
            {"op": "configure", "id": "c", "compression": "zlib", "batching": False},
            {"op": "ping", "id": 2, "client_time_ns": 123},
            {"op": "list_topics"},
            {"op": "stats", "id": 3, "report": {"latency_ms": {"p50": 1.5, "p95": 3}}},
            {"op": "advertise", "id": 4, "topic": "/cmd_vel", "type": "geometry_msgs/msg/Twist",
             "qos": {"reliability": "best_effort", "durability": "volatile", "depth": 5}},
            {"op": "unadvertise", "topic": "/cmd_vel"},
            {"op": "publish", "id": 5, "topic": "/cmd_vel", "msg": {"linear": {"x": 1.0}}},
            {"op": "call_service", "id": 6, "service": "/sim/reset", "args": {"a": 1},
             "type": "std_srvs/srv/Trigger", "timeout_s": 2},
            {"op": "list_parameters", "node": "/sim"},
            {"op": "get_parameters", "node": "/sim", "names": ["a", "b"]},
            {"op": "set_parameters", "node": "/sim", "parameters": [{"name": "a", "value": 2}]},
        ]
        seeds = [b"\x01" + json.dumps(t).encode() for t in texts]
        seeds.append(b"\x00" + struct.pack("<BBI", 1, 1, 9) + msgpack.packb({"x": 1.0}))
        seeds.append(b"\x00" + struct.pack("<BBI", 1, 0, 9) + b"\0\1\0\0cdr")
        seeds.append(seeds[0] + b"\xff" + seeds[-1] + b"\xff" + seeds[6])
        return seeds
    if name == "codec":
        values = [
            (0, {"header": {"stamp": {"sec": 1, "nanosec": 2}, "frame_id": "imu"},
                 "orientation": {"w": 1.0}, "orientation_covariance": [0.0] * 9}),
            (1, {"linear": {"x": 0.5}, "angular": {"z": 0.2}}),
            (2, {"height": 2, "width": 2, "encoding": "mono8", "step": 2, "data": "AAECAw=="}),
            (3, {"status": [{"level": b"\x00", "name": "n",
                             "values": [{"key": "k", "value": "v"}]}]}),
            (4, {"name": ["j1"], "position": [1.0], "velocity": [], "effort": [None]}),
            (5, {"stamp": {"secs": 1, "nsecs": 2}, "frame_id": "x"}),
            (6, {"pose": {"pose": {"position": {"x": 1}}, "covariance": [0.0] * 36}}),
            (7, {"format": "jpeg", "data": [255, 216, 255]}),
        ]
        seeds = [bytes([i, 1]) + json.dumps(v, default=lambda b: list(b)).encode()
                 for i, v in values]
        seeds += [bytes([i, 0]) + msgpack.packb(v, use_bin_type=True) for i, v in values]
        return seeds
    sys.path.insert(0, str(REPO))
    from rover_ws_bridge.wire.compression import Compression
    from rover_ws_bridge.wire.frame import Record, encode_frame

    records = [Record(1_700_000_000_000_000_000 + i, i % 3, i, i % 4, i % 3, b"data" * i)
               for i in range(40)]
    return [encode_frame(records[:3]), encode_frame(records, Compression.LZ4, 0),
            encode_frame(records, Compression.ZLIB, 0), encode_frame([])]


# libFuzzer dictionaries: tokens the mutator splices in (JSON numbers that overflow, the ops
# and field names), so short runs reach the interesting branches.
DICTIONARIES = {
    "native": ["1e400", "-1e999", "NaN", "Infinity", "\\ud800", "\\u0000", "null", "true",
               "[[[[[[[[", "]]]]]]]]", "99999999999999999999"]
    + ["\"%s\"" % op for op in ("subscribe", "unsubscribe", "configure", "ping", "list_topics",
                                  "stats", "advertise", "unadvertise", "publish", "call_service",
                                  "list_parameters", "get_parameters", "set_parameters")]
    + ["\"%s\":" % key for key in ("op", "id", "topic", "topics", "encoding", "max_rate_hz",
                                     "type", "compression", "batching", "report", "msg",
                                     "service", "args", "timeout_s", "node", "names",
                                     "parameters", "qos", "depth", "reliability", "value")],
}


def _dictionary_line(token: str) -> str:
    return '"' + "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "\\x%02x" % ord(c)
                         for c in token) + '"'


def run_one(name: str, seconds: float, keep: Path) -> dict:
    harness = HERE / f"fuzz_{name}.py"
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        for i, seed in enumerate(_seeds(name)):
            (corpus / f"seed{i}").write_bytes(seed)
        known_file = Path(tmp) / "known.json"
        extra = []
        if name in DICTIONARIES:
            dictionary = Path(tmp) / "tokens.dict"
            dictionary.write_text("\n".join(map(_dictionary_line, DICTIONARIES[name])) + "\n")
            extra.append(f"-dict={dictionary}")
        keep.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "FUZZ_KNOWN_FILE": str(known_file),
               "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        command = [sys.executable, str(harness), f"-max_total_time={int(seconds)}",
                   "-timeout=10", "-rss_limit_mb=2048", "-max_len=8192",
                   "-print_final_stats=1", f"-artifact_prefix={keep}/{name}-", *extra,
                   str(corpus)]
        started = time.monotonic()
        proc = subprocess.run(command, env=env, capture_output=True, text=True,
                              timeout=seconds + 120, cwd=tmp)
        elapsed = time.monotonic() - started
        log = proc.stderr + proc.stdout
        known = json.loads(known_file.read_text()) if known_file.exists() else {}
    execs = _stat(log, r"stat::number_of_executed_units:\s*(\d+)") or \
        _stat(log, r"Done (\d+) runs")
    coverage = [int(m) for m in re.findall(r"cov: (\d+)", log)]
    features = [int(m) for m in re.findall(r"ft: (\d+)", log)]
    crashed = proc.returncode != 0
    return {"harness": name, "seconds": round(elapsed, 1), "executions": execs,
            "coverage_edges": max(coverage, default=None),
            "features": max(features, default=None), "crashed": crashed,
            "returncode": proc.returncode, "known_findings": known,
            "log_tail": "\n".join(log.splitlines()[-40:]) if crashed else ""}


def _stat(log: str, pattern: str) -> int | None:
    found = re.findall(pattern, log)
    return int(found[-1]) if found else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float,
                        default=float(os.environ.get("FUZZ_SECONDS", "15")))
    parser.add_argument("--only", default=",".join(HARNESSES))
    parser.add_argument("--keep", type=Path, default=REPO / "test-output" / "fuzz")
    parser.add_argument("--json", action="store_true", help="one JSON line per harness")
    args = parser.parse_args(argv)
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed (pip install atheris): coverage-guided fuzzing "
              "skipped", file=sys.stderr)
        return 2
    failed = False
    for name in args.only.split(","):
        result = run_one(name, args.seconds, args.keep)
        failed |= result["crashed"]
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            print(f"{name}: {result['executions']} executions in {result['seconds']} s, "
                  f"coverage {result['coverage_edges']} edges / {result['features']} "
                  f"features, {'CRASHED' if result['crashed'] else 'no crash'}"
                  + (f"; known findings hit: {', '.join(result['known_findings'])}"
                     if result["known_findings"] else ""), flush=True)
            if result["crashed"]:
                print(result["log_tail"], flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
