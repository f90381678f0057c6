"""A CPU hog at a fixed duty on one core: the rest of a rover's software, for `busy_rover`.

    python -m rover_ws_bridge.bench.cpu_hog --duty 0.8 --core 0

Pinned to one core, it spins for `duty` of every period and sleeps the rest, so that core
is that busy whatever else runs (the navigation stack's share), and the other core stays as
free as before. The bridge under test is not pinned: the scheduler places it as on a rover.

Speaks the runner's line protocol (control.py): "ready" once pinned and spinning; "stop" (or
SIGTERM) ends it.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from .control import Commands, emit, stop_on_signals

PERIOD_S = 0.01  # short against the latencies measured, long against a context switch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rover_ws_bridge.bench.cpu_hog")
    parser.add_argument("--duty", type=float, required=True, help="busy share, 0..1")
    parser.add_argument("--core", type=int, default=0, help="the core to pin to")
    args = parser.parse_args(argv)
    if not 0.0 < args.duty <= 1.0:
        emit("error", message=f"--duty {args.duty}: expected 0 < duty <= 1")
        return 2
    try:
        os.sched_setaffinity(0, {args.core})
    except (OSError, AttributeError) as exc:
        emit("error", message=f"cannot pin to core {args.core}: {exc}")
        return 1
    stop = stop_on_signals()
    commands = Commands()
    busy_s = args.duty * PERIOD_S
    emit("ready", core=args.core, duty=args.duty)
    next_start = time.monotonic()
    while not stop.is_set() and not commands.stopped.is_set():
        busy_until = next_start + busy_s
        while time.monotonic() < busy_until:
            pass
        next_start += PERIOD_S
        pause = next_start - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        else:  # fell behind (the core was taken): start afresh, do not catch up
            next_start = time.monotonic()
    return 0


if __name__ == "__main__":
    sys.exit(main())
