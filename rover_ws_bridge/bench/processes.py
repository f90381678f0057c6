"""Child processes of the bench: started with `sys.executable -m ...`, watched, stopped by PID.

Each child gets its own session (so a Ctrl-C in the terminal reaches the bench only, which then
stops its children in order), a pipe for stdin (the runner's commands) and stdout (JSON events,
control.py), and a log file for stderr. Only processes started here are ever signalled, and only
through their Popen object.
"""
from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Sequence

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
LOG_TAIL_LINES = 15
# The folder holding the rover_ws_bridge package the bench itself runs (see ChildProcess).
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent.parent)


class BenchError(RuntimeError):
    """A scenario could not be run (a child failed, timed out, or said why it gave up)."""


def process_cpu_times(pid: int) -> tuple[float, float] | None:
    """(user, system) CPU seconds of a process (all its threads); None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(b")") + 2:].split()
    return int(fields[11]) / CLOCK_TICKS_PER_S, int(fields[12]) / CLOCK_TICKS_PER_S  # 14, 15


def thread_cpu_s(pid: int) -> dict[int, tuple[str, float]]:
    """Per thread of a process: tid -> (its name, utime + stime in seconds), from
    /proc/<pid>/task/<tid>/{comm,stat}; empty once the process is gone. Threads that ended
    between two samples are missing from the later one (their time is not counted)."""
    out: dict[int, tuple[str, float]] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                stat = f.read()
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        out[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S)
    return out


def process_cpu_s(pid: int) -> float | None:
    """utime + stime of a process, in seconds; None once it is gone."""
    times = process_cpu_times(pid)
    return None if times is None else times[0] + times[1]


def process_memory_mb(pid: int) -> dict[str, float]:
    """Resident memory of a process, MiB: "rss" now, "hwm" its peak since it started (from
    /proc/<pid>/status VmRSS and VmHWM); empty once it is gone."""
    out: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line[2:5].lower()] = round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return out


def tcp_send_queue_bytes(local_port: int, remote_port: int) -> int | None:
    """Bytes the kernel holds unsent or unacknowledged on the loopback TCP connection
    local_port -> remote_port (tx_queue in /proc/net/tcp[6]); None if there is none."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    local, remote, queues = fields[1], fields[2], fields[4]
                    if (int(local.rsplit(":", 1)[1], 16) == local_port
                            and int(remote.rsplit(":", 1)[1], 16) == remote_port):
                        return int(queues.split(":")[0], 16)
        except OSError:
            continue
    return None


def machine_cpu_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all cores, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values)
    return (total - idle) / CLOCK_TICKS_PER_S, total / CLOCK_TICKS_PER_S


class ChildProcess:
    def __init__(self, name: str, module: str, args: list[str], env: dict[str, str],
                 log_dir: Path, prefix: Sequence[str] = ()) -> None:
        """`prefix`: a command that execs the rest (`ip netns exec NAME`): the PID stays
        the module's own."""
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.command = [*prefix, sys.executable, "-m", module, *args]
        self._log: IO[bytes] = open(self.log_path, "wb")
        # Run in the log folder, with the bench's own package last on PYTHONPATH: `python -m`
        # puts the working directory first on sys.path, so a bench started in one checkout
        # with PYTHONPATH naming another (a before/after comparison) ran the checkout's code
        # in every child, whatever PYTHONPATH said.
        env = dict(env)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (env.get("PYTHONPATH", ""), _PACKAGE_ROOT) if p)
        self.popen = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            env=env, cwd=log_dir, text=True, bufsize=1, start_new_session=True)
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read_stdout, name=f"{name}-stdout",
                                        daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _read_stdout(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                event = json.loads(line)
                if not isinstance(event, dict):
                    raise ValueError
            except ValueError:
                event = {"event": "line", "text": line}
            self._events.put(event)
        self._events.put({"event": "eof"})

    # -- talking to it -----------------------------------------------------------------------

    def send(self, line: str) -> None:
        try:
            assert self.popen.stdin is not None
            self.popen.stdin.write(line + "\n")
            self.popen.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass  # it is gone; wait_for will say so with its log

    def wait_for(self, event: str, timeout_s: float, pattern: str | None = None) -> dict[str, Any]:
        """The next event of this kind (or, for "line", a stdout line matching `pattern`)."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(f"{self.name}: no '{event}' within {timeout_s:g} s"
                                 + self.log_tail())
            try:
                got = self._events.get(timeout=remaining)
            except queue.Empty:
                continue
            kind = got.get("event")
            if kind == event and (pattern is None or re.search(pattern, got.get("text", ""))):
                return got
            if kind == "error":
                raise BenchError(f"{self.name}: {got.get('message')}" + self.log_tail())
            if kind == "eof":
                code = self.popen.wait(timeout=5)
                raise BenchError(f"{self.name}: exited (code {code}) before '{event}'"
                                 + self.log_tail())

    def log_tail(self) -> str:
        try:
            self._log.flush()
            lines = self.log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        except OSError:
            return ""
        if not lines:
            return f" (log {self.log_path} is empty)"
        return f"\n  last lines of {self.log_path}:\n    " + "\n    ".join(lines)

    def cpu_s(self) -> float | None:
        return process_cpu_s(self.pid)

    def cpu_times(self) -> tuple[float, float] | None:
        return process_cpu_times(self.pid)

    # -- stopping it ---------------------------------------------------------------------------

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0,
             command_first: bool = True) -> int:
        """Ask it to finish ("stop" on stdin, if it reads commands, then `sig`); kill it if it
        will not. Returns its exit code."""
        if self.popen.poll() is None:
            stopped = False
            if command_first:
                self.send("stop")
                try:
                    self.popen.wait(timeout=min(2.0, timeout_s))
                    stopped = True
                except subprocess.TimeoutExpired:
                    pass
            if not stopped:
                self.popen.send_signal(sig)
                try:
                    self.popen.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    self.popen.kill()
                    self.popen.wait(timeout=5)
        self._reader.join(timeout=2.0)
        for stream in (self.popen.stdin, self.popen.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        self._log.close()
        return self.popen.returncode
