"""The package as a rover builds and starts it: `colcon build`, then the installed executable.

colcon (ament_python, through colcon-ros) decides where console scripts, the launch file, the
params file and the ament index marker land; `ros2 run` and `ros2 launch` look only there. A
plain `pip install` would put the scripts in bin/, so only a colcon build shows whether a rover
finds them. The build runs once per module, into a temporary directory.

The launch file needs `launch` and `launch_ros`, which exist only in a ROS install (not on any
package registry here). Here it is compiled and then executed against small stand-ins for those
two packages, which check what it declares and what Node it asks for; the real launch is only
exercised on a ROS install (test_launch_file_with_real_launch_ros, skipped elsewhere).
"""
from __future__ import annotations

import importlib.util
import os
import py_compile
import queue
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "rover_ws_bridge"
NODE_SOURCE = REPO / PACKAGE / "ros" / "node.py"
LAUNCH_FILE = REPO / "launch" / "bridge.launch.py"
LAUNCH_ARGUMENTS = {"params_file", "port", "address", "log_level"}
LISTENING = re.compile(r"^rover_ws_bridge: listening on ws://127\.0\.0\.1:(?P<port>\d+)$")
START_TIMEOUT_S = 20.0  # a deadline for the start-up line, not a measured time
STOP_TIMEOUT_S = 20.0


# --- the colcon build -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def install_prefix(tmp_path_factory) -> Path:
    """colcon-build the repository as a rover would; return the package's install prefix."""
    base = tmp_path_factory.mktemp("colcon")
    colcon = Path(sys.executable).parent / "colcon"
    if not colcon.exists():
        pytest.fail(f"{colcon} not found: install requirements-test.txt "
                    "(colcon-common-extensions)")
    env = dict(os.environ)
    env["COLCON_HOME"] = str(base / "colcon_home")  # no user defaults (e.g. --symlink-install)
    env.pop("COLCON_DEFAULTS_FILE", None)
    command = [
        str(colcon), "--log-base", str(base / "log"),
        "build", "--base-paths", str(REPO),
        "--build-base", str(base / "build"), "--install-base", str(base / "install"),
    ]
    result = subprocess.run(command, env=env, cwd=base, capture_output=True, text=True,
                            timeout=900)
    if result.returncode != 0:
        logs = "\n".join(
            f"--- {path}\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted((base / "log").glob("latest_build/*/stderr.log")))
        pytest.fail(f"colcon build failed ({result.returncode}):\n{result.stdout[-4000:]}\n"
                    f"{result.stderr[-4000:]}\n{logs}")
    install = base / "install"
    # colcon's default layout is isolated (install/<package>/...); --merge-install is flat.
    layout = (install / ".colcon_install_layout").read_text().strip()
    return install if layout == "merged" else install / PACKAGE


def _site_packages(prefix: Path) -> Path:
    # lib/python3.X/site-packages here; local/lib/python3.X/dist-packages with Debian's Python.
    found = [p for pattern in ("lib/python3*/site-packages", "local/lib/python3*/dist-packages",
                               "lib/python3*/dist-packages", "local/lib/python3*/site-packages")
             for p in prefix.glob(pattern) if (p / PACKAGE / "__init__.py").exists()]
    assert len(found) == 1, f"expected one site-packages holding {PACKAGE} in {prefix}: {found}"
    return found[0]


def _ros_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(random.randint(1, 100)),
               ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_LOG_DIR=str(tmp_path / "ros_log"))
    env.pop("ROS_LOCALHOST_ONLY", None)  # deprecated since Jazzy; the range above replaces it
    return env


def _installed_env(prefix: Path, tmp_path: Path) -> dict[str, str]:
    """What sourcing install/setup.bash gives, with the install tree FIRST on the path, so the
    editable install of the development venv cannot stand in for it."""
    env = _ros_env(tmp_path)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(_site_packages(prefix)), env.get("PYTHONPATH", "")) if p)
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(
        p for p in (str(prefix), env.get("AMENT_PREFIX_PATH", "")) if p)
    return env


@pytest.mark.parametrize("executable", ["bridge", "rover-ws-bridge", "rover-sim"])
def test_console_scripts_are_where_ros2_run_looks(install_prefix, executable):
    path = install_prefix / "lib" / PACKAGE / executable
    assert path.is_file(), f"{path} missing (setup.cfg [install] install_scripts)"
    assert os.access(path, os.X_OK)
    assert path.read_text().startswith("#!")


@pytest.mark.parametrize("relative", [
    f"share/{PACKAGE}/launch/bridge.launch.py",
    f"share/{PACKAGE}/config/bridge.yaml",
    f"share/{PACKAGE}/package.xml",
])
def test_data_files_are_installed_unchanged(install_prefix, relative):
    installed = install_prefix / relative
    assert installed.is_file(), f"{installed} missing (setup.py data_files)"
    source = REPO / Path(relative).relative_to(f"share/{PACKAGE}")
    assert installed.read_bytes() == source.read_bytes()


def test_ament_index_finds_the_package(install_prefix, monkeypatch):
    marker = install_prefix / "share/ament_index/resource_index/packages" / PACKAGE
    assert marker.is_file()
    from ament_index_python.packages import get_package_prefix, get_package_share_directory

    monkeypatch.setenv("AMENT_PREFIX_PATH", str(install_prefix))
    assert Path(get_package_prefix(PACKAGE)) == install_prefix
    assert Path(get_package_share_directory(PACKAGE)) == install_prefix / "share" / PACKAGE


def test_installed_version_matches_package_xml(install_prefix):
    import xml.etree.ElementTree as ElementTree

    import rover_ws_bridge

    manifest = ElementTree.parse(install_prefix / "share" / PACKAGE / "package.xml").getroot()
    assert manifest.findtext("name") == PACKAGE
    assert manifest.find("export/build_type").text == "ament_python"
    (pkg_info,) = _site_packages(install_prefix).glob(f"{PACKAGE}-*.egg-info/PKG-INFO")
    version = re.search(r"^Version: (.+)$", pkg_info.read_text(), re.MULTILINE)[1]
    assert manifest.findtext("version") == version == rover_ws_bridge.__version__


def test_python_imports_the_install_tree_not_the_sources(install_prefix, tmp_path):
    site = _site_packages(install_prefix)
    code = ("import importlib.util, rover_ws_bridge; print(rover_ws_bridge.__file__); "
            "spec = importlib.util.find_spec('rover_ws_bridge.ros.node'); "
            "print(spec.origin if spec else '')")
    result = subprocess.run([sys.executable, "-c", code], env=_installed_env(install_prefix,
                            tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for origin in filter(None, result.stdout.splitlines()):
        assert Path(origin).resolve().is_relative_to(site.resolve()), origin


# --- the installed executable ---------------------------------------------------------------


def _read_lines(stream, lines: list[str], sink: "queue.Queue[str | None]") -> None:
    for line in stream:
        lines.append(line)
        sink.put(line.rstrip("\n"))
    sink.put(None)  # end of stream: the process closed it (usually: it exited)


@pytest.mark.skipif(not NODE_SOURCE.exists(),
                    reason="rover_ws_bridge/ros/node.py does not exist yet: nothing to start")
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_installed_bridge_starts_and_stops_cleanly(install_prefix, tmp_path, stop_signal):
    share = install_prefix / "share" / PACKAGE
    command = [
        str(install_prefix / "lib" / PACKAGE / "bridge"),
        "--ros-args", "--params-file", str(share / "config" / "bridge.yaml"),
        "-p", "port:=0", "-p", "discover_topics:=false",
    ]
    process = subprocess.Popen(command, env=_installed_env(install_prefix, tmp_path),
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    stdout: list[str] = []
    stderr: list[str] = []
    stdout_lines: queue.Queue[str | None] = queue.Queue()
    readers = [
        threading.Thread(target=_read_lines, args=(process.stdout, stdout, stdout_lines),
                         daemon=True),
        threading.Thread(target=_read_lines, args=(process.stderr, stderr, queue.Queue()),
                         daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        port = None
        deadline = time.monotonic() + START_TIMEOUT_S
        while port is None and (remaining := deadline - time.monotonic()) > 0:
            try:
                line = stdout_lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                break
            if match := LISTENING.match(line):
                port = int(match["port"])
        if port is None:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)
            for reader in readers:
                reader.join(timeout=5)
            pytest.fail(
                f"no 'listening on ws://127.0.0.1:PORT' line within {START_TIMEOUT_S} s "
                f"(exit code {process.returncode})\nstdout:\n{''.join(stdout)}\n"
                f"stderr:\n{''.join(stderr)}")
        assert port != 0, "the line must give the port the OS chose, not 0"
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass  # the announced port really accepts connections
        process.send_signal(stop_signal)
        try:
            returncode = process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            for reader in readers:
                reader.join(timeout=5)
            pytest.fail(f"still running {STOP_TIMEOUT_S} s after {stop_signal.name}; "
                        f"killed.\nstderr:\n{''.join(stderr)}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    for reader in readers:
        reader.join(timeout=5)
    errors = "".join(stderr)
    assert returncode == 0, f"exit code {returncode} after {stop_signal.name}:\n{errors}"
    assert "terminate called" not in errors, errors
    assert "Traceback" not in errors, errors


# --- the launch file ------------------------------------------------------------------------


def test_launch_file_compiles(tmp_path):
    py_compile.compile(str(LAUNCH_FILE), cfile=str(tmp_path / "bridge.launch.pyc"), doraise=True)


class _LaunchConfiguration:
    def __init__(self, variable_name, default=None):
        self.variable_name = variable_name

    def perform(self, context):
        return context.launch_configurations[self.variable_name]

    def __eq__(self, other):
        return (isinstance(other, _LaunchConfiguration)
                and other.variable_name == self.variable_name)

    def __repr__(self):
        return f"LaunchConfiguration({self.variable_name!r})"


class _DeclareLaunchArgument:
    def __init__(self, name, *, default_value=None, description="", choices=None, **kwargs):
        self.name, self.default_value, self.choices = name, default_value, choices
        self.description = description


class _OpaqueFunction:
    def __init__(self, *, function, args=None, kwargs=None):
        self.function, self.args, self.kwargs = function, args or [], kwargs or {}

    def execute(self, context):
        return self.function(context, *self.args, **self.kwargs)


class _LaunchDescription:
    def __init__(self, initial_entities=None):
        self.entities = list(initial_entities or [])


class _Node:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


class _ParameterValue:
    def __init__(self, value, *, value_type=None):
        self.value, self.value_type = value, value_type


def _module(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


def _load_launch_file(path: Path, monkeypatch, share_directory: str | None):
    """Import a launch file with stand-ins for launch and launch_ros (and ament_index when
    share_directory is given), the way `ros2 launch` would import it."""
    fakes = {
        "launch": _module("launch", LaunchDescription=_LaunchDescription),
        "launch.actions": _module("launch.actions", DeclareLaunchArgument=_DeclareLaunchArgument,
                                  OpaqueFunction=_OpaqueFunction),
        "launch.substitutions": _module("launch.substitutions",
                                        LaunchConfiguration=_LaunchConfiguration),
        "launch_ros": _module("launch_ros"),
        "launch_ros.actions": _module("launch_ros.actions", Node=_Node),
        "launch_ros.parameter_descriptions": _module("launch_ros.parameter_descriptions",
                                                     ParameterValue=_ParameterValue),
    }
    if share_directory is not None:
        def get_package_share_directory(package):
            assert package == PACKAGE
            return share_directory

        fakes["ament_index_python"] = _module("ament_index_python")
        fakes["ament_index_python.packages"] = _module(
            "ament_index_python.packages", get_package_share_directory=get_package_share_directory)
    for name, module in fakes.items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("bridge_launch_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Context:
    def __init__(self, launch_configurations):
        self.launch_configurations = launch_configurations


def _launch(description: _LaunchDescription, **given: str) -> tuple[dict, list[_Node]]:
    """Play `ros2 launch ... name:=value`: defaults, then the given arguments, then actions."""
    arguments = {e.name: e for e in description.entities if isinstance(e, _DeclareLaunchArgument)}
    assert set(given) <= set(arguments)
    context = _Context({name: a.default_value for name, a in arguments.items()} | given)
    nodes = [e for e in description.entities if isinstance(e, _Node)]
    for entity in description.entities:
        if isinstance(entity, _OpaqueFunction):
            nodes += [e for e in entity.execute(context) if isinstance(e, _Node)]
    return arguments, nodes


def _bridge_node(description, **given) -> _Node:
    _, nodes = _launch(description, **given)
    assert len(nodes) == 1
    (node,) = nodes
    assert node.kwargs["package"] == PACKAGE
    assert node.kwargs["executable"] == "bridge"
    assert node.kwargs["name"] == "rover_ws_bridge"
    assert node.kwargs["output"] == "screen"
    assert node.kwargs["parameters"][0] == _LaunchConfiguration("params_file")
    return node


def test_launch_file_declares_its_arguments(monkeypatch):
    launch_file = _load_launch_file(LAUNCH_FILE, monkeypatch, "/opt/rover/share/rover_ws_bridge")
    arguments, _ = _launch(launch_file.generate_launch_description())
    assert set(arguments) == LAUNCH_ARGUMENTS
    assert arguments["params_file"].default_value == (
        "/opt/rover/share/rover_ws_bridge/config/bridge.yaml")
    assert arguments["log_level"].default_value in arguments["log_level"].choices
    for argument in arguments.values():
        assert argument.description


def test_launch_file_leaves_the_params_file_alone_by_default(monkeypatch):
    launch_file = _load_launch_file(LAUNCH_FILE, monkeypatch, "/opt/rover/share/rover_ws_bridge")
    node = _bridge_node(launch_file.generate_launch_description())
    # Without port:=/address:= the params file decides; a launch default would override it.
    assert node.kwargs["parameters"] == [_LaunchConfiguration("params_file")]
    assert _LaunchConfiguration("log_level") in node.kwargs["ros_arguments"]


def test_launch_file_passes_port_as_an_integer_and_address_as_a_string(monkeypatch):
    launch_file = _load_launch_file(LAUNCH_FILE, monkeypatch, "/opt/rover/share/rover_ws_bridge")
    node = _bridge_node(launch_file.generate_launch_description(),
                        port="9000", address="127.0.0.1", log_level="debug")
    overrides = node.kwargs["parameters"][1]
    assert set(overrides) == {"port", "address"}
    assert overrides["port"].value == _LaunchConfiguration("port")
    assert overrides["port"].value_type is int
    assert overrides["address"].value == _LaunchConfiguration("address")
    assert overrides["address"].value_type is str
    only_port = _bridge_node(launch_file.generate_launch_description(), port="0")
    assert set(only_port.kwargs["parameters"][1]) == {"port"}


def test_installed_launch_file_defaults_to_the_installed_params_file(install_prefix, monkeypatch):
    # The real ament_index_python (it is on PyPI) against the colcon install tree.
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(install_prefix))
    share = install_prefix / "share" / PACKAGE
    launch_file = _load_launch_file(share / "launch" / "bridge.launch.py", monkeypatch, None)
    arguments, _ = _launch(launch_file.generate_launch_description())
    params_file = Path(arguments["params_file"].default_value)
    assert params_file == share / "config" / "bridge.yaml"
    assert params_file.is_file()


def test_launch_file_with_real_launch_ros(install_prefix, monkeypatch):
    """Only on a ROS install: the same checks with the real launch and launch_ros."""
    # launch_ros first: with the repository as working directory, `import launch` alone would
    # find the launch/ folder here as a namespace package.
    pytest.importorskip("launch_ros", reason="launch_ros is only in a ROS install")
    from launch import LaunchContext
    from launch.actions import OpaqueFunction
    from launch.utilities import perform_substitutions
    from launch_ros.actions import Node

    monkeypatch.setenv("AMENT_PREFIX_PATH", os.pathsep.join(
        p for p in (str(install_prefix), os.environ.get("AMENT_PREFIX_PATH", "")) if p))
    spec = importlib.util.spec_from_file_location("bridge_launch_real", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert {a.name for a in description.get_launch_arguments()} == LAUNCH_ARGUMENTS
    context = LaunchContext()
    for argument in description.get_launch_arguments():
        context.launch_configurations[argument.name] = (
            "9000" if argument.name == "port" else
            perform_substitutions(context, argument.default_value))
    nodes = [action for entity in description.entities
             if isinstance(entity, OpaqueFunction)
             for action in entity.execute(context) or [] if isinstance(action, Node)]
    assert [(n.node_package, n.node_executable) for n in nodes] == [(PACKAGE, "bridge")]
