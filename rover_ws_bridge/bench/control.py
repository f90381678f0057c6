"""The line protocol between the bench runner and its child processes.

Child -> runner: one JSON object per stdout line, with an "event": "ready" (set up, data
flowing), "result" (the figures of the measurement window), "error" (gave up; "message" says
why). Anything else a child has to say goes to stderr, which the runner keeps in a log file.

Runner -> child: text lines on stdin. "window START_NS END_NS": the measurement window, in
wall-clock (time.time_ns) nanoseconds, compared with the publish stamps of messages, so every
process counts exactly the same messages whatever their delivery delay. "stop", or the end of
stdin: finish and exit.
"""
from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass
from typing import Any


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n")
    sys.stdout.flush()


@dataclass(frozen=True)
class Window:
    start_ns: int
    end_ns: int

    def __contains__(self, stamp_ns: int) -> bool:
        return self.start_ns <= stamp_ns < self.end_ns

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


class Commands:
    """Reads the runner's commands on a daemon thread. Thread-safe reads of `window`/`stopped`."""

    def __init__(self) -> None:
        self.window: Window | None = None
        self.window_set = threading.Event()
        self.stopped = threading.Event()
        self._thread = threading.Thread(target=self._read, name="bench-commands", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for line in sys.stdin:
                words = line.split()
                if not words:
                    continue
                if words[0] == "window" and len(words) == 3:
                    self.window = Window(int(words[1]), int(words[2]))
                    self.window_set.set()
                elif words[0] == "stop":
                    break
        finally:
            self.stopped.set()
            self.window_set.set()  # wake up anyone waiting for a window that will not come


# -- the life of a bench child process that runs a ROS node ---------------------------------------

def stop_on_signals() -> threading.Event:
    """SIGINT/SIGTERM set the returned event. rclpy's own handlers stay off (init with
    SignalHandlerOptions.NO), so the process leaves its loop and shuts down in order."""
    import signal

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def shut_down_ros(node: Any, executor: Any = None) -> None:
    """Executor, node, then rclpy: any other order can abort the process."""
    import rclpy

    if executor is not None:
        executor.shutdown(timeout_sec=2.0)
    node.destroy_node()
    rclpy.try_shutdown()
