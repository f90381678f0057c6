"""Bad start-up input, as a ROS user meets it through `ros2 launch`: each stops the bridge with
exit code 2 and one line on stderr naming the parameter or file and what is allowed, never a
traceback and never a start on silent defaults. Also: `--log-level` reaches the bridge's own
Python loggers, and a second Ctrl-C while it stops exits cleanly.

`ros2 launch` runs the console script with the same arguments used here: the launch file's
params file and launch_ros's temporary file of overrides as `--ros-args --params-file`, the
log level as `--ros-args --log-level`, and `--require-params-file` (launch_ros leaves out a
params file that does not exist). The launch file's own check (port:=abc) is run with the
stand-ins of launch/launch_ros of test_packaging.py.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import READY_MARKER, REPO_ROOT, START_TIMEOUT_S
from test_packaging import LAUNCH_FILE, _bridge_node, _LaunchConfiguration, _load_launch_file

from rover_ws_bridge.ros.node import _node_key_matches

GOOD = ["-p", "port:=0", "-p", "address:=127.0.0.1"]
BAD_CASES = ("port_not_an_integer", "address_does_not_resolve", "address_not_local",
             "params_file_yaml_error", "params_file_missing",
             "params_file_missing_through_launch", "params_file_wrong_top_key")


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "rover_ws_bridge.ros.node", *args]


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(_command(*args), cwd=REPO_ROOT, env=os.environ.copy(),
                          capture_output=True, text=True, timeout=START_TIMEOUT_S)


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (arguments, what the one line must name)."""
    yaml_error = tmp / "yaml_error.yaml"
    yaml_error.write_text("rover_ws_bridge:\n  ros__parameters:\n    port: [1\n")
    wrong_key = tmp / "wrong_key.yaml"
    wrong_key.write_text("rover_bridge:\n  ros__parameters:\n    port: 0\n")
    missing = tmp / "missing.yaml"
    return {
        "port_not_an_integer": (["--ros-args", "-p", "port:=abc", "-p", "address:=127.0.0.1"],
                                "'port'"),
        "address_does_not_resolve": (["--ros-args", "-p", "port:=0",
                                      "-p", "address:=no-such-host.invalid"], "'address'"),
        "address_not_local": (["--ros-args", "-p", "port:=0", "-p", "address:=192.0.2.1"],
                              "'address'"),
        "params_file_yaml_error": (["--ros-args", "--params-file", str(yaml_error), *GOOD],
                                   str(yaml_error)),
        "params_file_missing": (["--ros-args", "--params-file", str(missing), *GOOD],
                                str(missing)),
        # As launch passes it: launch_ros has already left the missing file out.
        "params_file_missing_through_launch": (
            ["--require-params-file", str(missing), "--ros-args", "--log-level", "info",
             "--ros-args", "-r", "__node:=rover_ws_bridge", *GOOD], str(missing)),
        "params_file_wrong_top_key": (["--ros-args", "--params-file", str(wrong_key), *GOOD],
                                      "'rover_bridge'"),
    }


@pytest.fixture(scope="module")
def bad_results(tmp_path_factory) -> dict[str, tuple[str, subprocess.CompletedProcess]]:
    """All bad starts at once (each is a process start; in parallel they take one's time)."""
    cases = _bad_inputs(tmp_path_factory.mktemp("startup"))
    assert set(cases) == set(BAD_CASES)
    with ThreadPoolExecutor(len(cases)) as pool:
        runs = {name: pool.submit(_run, args) for name, (args, _) in cases.items()}
        return {name: (cases[name][1], run.result()) for name, run in runs.items()}


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_start_up_input_gives_one_line_and_exit_code_2(bad_results, case):
    named, result = bad_results[case]
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr + result.stdout
    assert READY_MARKER not in result.stdout  # never started
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rover_ws_bridge: ")
    assert named in lines[0]
    assert "expected" in lines[0]  # what is allowed


def test_the_wrong_top_key_line_names_the_expected_one(bad_results):
    _, result = bad_results["params_file_wrong_top_key"]
    assert "'rover_ws_bridge'" in result.stderr and "'/**'" in result.stderr


@pytest.mark.parametrize("key, node, matches", [
    ("rover_ws_bridge", "/rover_ws_bridge", True),
    ("/rover_ws_bridge", "/rover_ws_bridge", True),
    ("/**", "/rover/rover_ws_bridge", True),
    ("/**/rover_ws_bridge", "/rover/rover_ws_bridge", True),
    ("/rover/*", "/rover/rover_ws_bridge", True),
    ("rover_ws_bridge", "/rover/rover_ws_bridge", False),
    ("/*", "/rover/rover_ws_bridge", False),
    ("other_node", "/rover_ws_bridge", False),
])
def test_params_file_top_keys_follow_rcl(key, node, matches):
    assert _node_key_matches(key, node) is matches


def test_launch_file_refuses_a_port_that_is_not_an_integer(monkeypatch):
    launch_file = _load_launch_file(LAUNCH_FILE, monkeypatch, "/opt/rover/share/rover_ws_bridge")
    # launch prints an exception raised while it runs the launch file as one line:
    # "Caught exception in launch (see debug for traceback): <the text>".
    for bad in ("abc", "-1", "65536", "80.5"):
        with pytest.raises(ValueError, match=r"launch argument 'port' = .* expected an integer"):
            _bridge_node(launch_file.generate_launch_description(), port=bad)
    node = _bridge_node(launch_file.generate_launch_description(), port="9000")
    assert node.kwargs["arguments"] == ["--require-params-file",
                                        _LaunchConfiguration("params_file")]


class _Bridge:
    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            _command(*args), cwd=REPO_ROOT, env=os.environ.copy(), text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT_S
        line = ""
        while READY_MARKER not in line:
            line = self.process.stdout.readline()
            assert line or self.process.poll() is None, self.process.stderr.read()
            assert time.monotonic() < deadline, "the bridge did not start"

    def stop(self, signals: int = 1) -> tuple[int, str]:
        """SIGINT, and again every 5 ms (a process-group Ctrl-C, a user pressing it twice)
        until it exits, at most `signals` times."""
        for _ in range(signals):
            if self.process.poll() is not None:
                break
            self.process.send_signal(signal.SIGINT)
            time.sleep(0.005)
        try:
            _, stderr = self.process.communicate(timeout=START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        return self.process.returncode, stderr


def test_log_level_reaches_the_bridge_python_loggers():
    bridge = _Bridge("--ros-args", "--params-file", str(REPO_ROOT / "config" / "bridge.yaml"),
                     *GOOD, "--log-level", "debug")
    code, stderr = bridge.stop()
    assert code == 0, stderr
    assert "[DEBUG] rover_ws_bridge." in stderr, stderr


def test_info_level_hides_debug_lines():
    bridge = _Bridge("--ros-args", *GOOD, "--log-level", "info")
    code, stderr = bridge.stop()
    assert code == 0, stderr
    assert "[DEBUG]" not in stderr


def test_repeated_ctrl_c_during_shutdown_exits_cleanly():
    bridge = _Bridge("--ros-args", *GOOD)
    code, stderr = bridge.stop(signals=200)
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert code == 0, stderr


# A call that hangs holding the GIL, as a hung rcl/rmw destroy does: libc pause() through
# ctypes.PyDLL, which keeps the GIL (CDLL would release it).
_HANGS_IN_THE_TEARDOWN = """
import ctypes
from rover_ws_bridge.ros.node import bounded
with bounded(0.5):
    ctypes.PyDLL(None).pause()
"""
_TEARDOWN_RETURNS = """
import time
from rover_ws_bridge.ros.node import bounded
with bounded(0.2):
    pass
time.sleep(1.0)
print("still running")
"""


def test_a_teardown_that_hangs_holding_the_gil_still_ends_the_process():
    done = subprocess.run([sys.executable, "-c", _HANGS_IN_THE_TEARDOWN], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=START_TIMEOUT_S)
    assert done.returncode == 1, done.stderr
    # faulthandler's dump: where it hung, for the bug report.
    assert "Timeout" in done.stderr and "<module>" in done.stderr, done.stderr


def test_the_teardown_bound_ends_with_its_block():
    done = subprocess.run([sys.executable, "-c", _TEARDOWN_RETURNS], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=START_TIMEOUT_S)
    assert (done.returncode, done.stdout.strip()) == (0, "still running"), done.stderr
