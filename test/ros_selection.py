"""Which tests touch ROS: they get the `ros` marker, and the second distro's run (`make
test-jazzy`, `pytest -m ros`) runs only them.

The distro matters where rclpy, the message packages or rcl run: in the test process, or in a
bridge, simulator, bench or colcon build that a test starts. The pure core, the protocols, the
wire format, the dashboard's TypeScript and the browser pages do not change with it, so the
second run leaves them out (the full suite runs them under the first distro).

A test touches ROS when its function (decorators included), one of its fixtures, or a module-
level name either uses, transitively, imports a ROS package (rclpy, *_msgs, rosidl, ament,
rover_ws_bridge.ros / .sim / .demo) or names a ROS process in a string
("-m rover_ws_bridge.ros.node", "colcon", ...). This is read from the source (ast), so it
needs no list to keep up to date; what it cannot see is named in ALSO_ROS. A new test that
starts ROS some other way should be added there.

Leaving a test out is the cheap mistake to make silently, so the run checks its selection:
`pytest -m ros` on the whole suite fails unless it selects at least MIN_SELECTED tests.
"""
from __future__ import annotations

import ast
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

TEST_DIR = Path(__file__).resolve().parent
MARKER = "ros"

ROS_MODULE = re.compile(
    r"^(rclpy|rcl_\w+|rosidl\w*|rpyutils|ament_\w+|launch(_ros)?|builtin_interfaces|rosgraph_msgs"
    r"|\w+_msgs|\w+_srvs|\w+_interfaces)(\.|$)"
    r"|^rover_ws_bridge\.(ros|sim|demo)(\.|$)")
ROS_PROCESS = re.compile(r"rover_ws_bridge\.(ros|sim|demo|bench)\b|\bcolcon\b|import rclpy")

# ROS that the source does not show: a subprocess whose command names no ROS module.
ALSO_ROS = {
    "test/test_fuzz_coverage.py::test_fuzz_harness_finds_no_crash[codec]":
        "test/fuzz/fuzz_codec.py serializes messages with rclpy",
}

# Tests that touch ROS but whose subject is not ROS: a browser page, our TypeScript client, or
# how the bridge treats a client that stalls or floods (timing under load, the longest tests of
# the suite). Their ROS side (the same bridge, simulator and subscriptions) runs under the
# second distro in the roslib, Foxglove and bridge integration tests.
NOT_ROS = {
    "test/test_web.py::test_node_client_against_real_bridge":
        "the TypeScript client against the demo (ROS side: the roslib and Foxglove tests)",
    "test/test_backpressure_integration.py::test_stalled_client_beside_a_fast_one":
        "a stalled native client (ROS side: test_bridge_integration.py)",
    "test/test_foxglove_integration.py::test_stalled_foxglove_client_beside_a_fast_one":
        "a stalled Foxglove client (ROS side: the official client test in the same file)",
    "test/test_rosbridge_roslib.py::test_a_stalled_rosbridge_client_keeps_critical_and_does_"
    "not_slow_a_fast_one": "a stalled rosbridge client (ROS side: the rest of that file)",
    "test/test_limits_integration.py::test_flooder_is_warned_dropped_paused_then_closed_while_"
    "another_keeps_its_rate": "a flooding client (ROS side: test_bridge_integration.py)",
    "test/test_web.py::test_dashboard_in_headless_chromium":
        "the dashboard in Chromium (its ROS side: the demo's bridge and sim, as in the roslib "
        "tests)",
    "test/test_rosbridge_browser.py::test_a_roslib_page_in_headless_chromium_subscribes_and_"
    "shows_imu_data": "a roslib page in Chromium (its ROS side: test_rosbridge_roslib.py)",
    # A second wire encoding or subprotocol name of a test whose ROS side its first one runs.
    "test/test_rosbridge_roslib.py::test_imu_arrives_with_sec_nanosec_stamps_at_the_sims_rate"
    "[cbor]": "roslib's CBOR compression (ROS side: the [none] case)",
    "test/test_rosbridge_roslib.py::test_imu_arrives_with_sec_nanosec_stamps_at_the_sims_rate"
    "[png]": "roslib's PNG compression (ROS side: the [none] case)",
    "test/test_bridge_integration.py::test_imu_at_200hz_is_delivered_decoded_and_in_order[json]":
        "the JSON encoding (ROS side: the [msgpack] case; [cdr] is CDR passthrough)",
    "test/test_foxglove_integration.py::test_official_client_reads_publishes_calls_sets_and_"
    "fetches[foxglove.websocket.v1]": "the older subprotocol name (ROS side: the "
    "[foxglove.sdk.v1] case)",
}

# About 80 % of what the selection held when this was written (283 of 712): far fewer means
# the selection broke, not that the suite changed.
MIN_SELECTED = 230


class _Names(ast.NodeVisitor):
    """What a statement refers to: loaded names, imported modules, string constants.
    Annotations are skipped: a type named in a signature runs nothing."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.modules: set[str] = set()
        self.strings: list[str] = []

    def visit_Name(self, node: ast.Name) -> None:
        self.names.add(node.id)

    def visit_Import(self, node: ast.Import) -> None:
        self.modules.update(alias.name for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and not node.level:
            self.modules.add(node.module)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            self.strings.append(node.value)

    def visit_Call(self, node: ast.Call) -> None:
        # pytest.importorskip("rclpy"), importlib.import_module("std_msgs.msg")
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in ("importorskip", "import_module") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                self.modules.add(first.value)
        self.generic_visit(node)

    def visit_arg(self, node: ast.arg) -> None:
        pass  # its annotation

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.target)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for child in (*node.decorator_list, *node.args.defaults, *node.args.kw_defaults):
            if child is not None:
                self.visit(child)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring: words, not a command
        inner = _Names()
        for child in body:
            inner.visit(child)
        args = node.args
        local = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs,
                                 args.vararg, args.kwarg) if a is not None}
        local |= {n for child in body for n in _stored(child)}
        self.names |= inner.names - local  # a local of the same name is not the module's
        self.modules |= inner.modules
        self.strings += inner.strings

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.ListComp,
           ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _stored(node: ast.AST) -> Iterable[str]:
    """The names `node` binds in its own scope (not in nested functions or comprehensions)."""
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
        yield node.id
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        yield node.name
        return
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
        for alias in node.names:
            yield (alias.asname or alias.name).split(".")[0]
    elif isinstance(node, _SCOPES):
        return
    for child in ast.iter_child_nodes(node):
        yield from _stored(child)


def _bound(statement: ast.stmt) -> Iterable[str]:
    """The module-level names a statement binds."""
    return _stored(statement)


@lru_cache(maxsize=None)
def ros_names(path: Path) -> frozenset[str]:
    """The module-level names of the module at `path` that touch ROS."""
    tree = ast.parse(path.read_text(), str(path))
    statements = []
    for statement in tree.body:
        refs = _Names()
        refs.visit(statement)
        touches = (any(ROS_MODULE.match(m) for m in refs.modules)
                   or any(ROS_PROCESS.search(s) for s in refs.strings))
        if isinstance(statement, ast.ImportFrom) and not statement.level and statement.module:
            local = TEST_DIR / (statement.module.replace(".", "/") + ".py")
            if local.is_file() and local != path:  # conftest, another test module, fuzz.*
                imported = ros_names(local)
                touches = touches or any(a.name in imported for a in statement.names)
        statements.append((touches, refs.names, list(_bound(statement))))
    tainted: set[str] = set()
    changed = True
    while changed:  # to a fixed point: a helper that calls a helper that imports rclpy
        changed = False
        for touches, names, bound in statements:
            if bound and not set(bound) <= tainted and (touches or names & tainted):
                tainted.update(bound)
                changed = True
    return frozenset(tainted)


def _touches(path: Path, name: str) -> bool:
    path = path.resolve()
    return TEST_DIR in path.parents and name in ros_names(path)  # else a plugin's fixture


def _fixture_touches(func: Any) -> bool:
    source = getattr(sys.modules.get(getattr(func, "__module__", "")), "__file__", None)
    return source is not None and _touches(Path(source), func.__qualname__.split(".")[0])


def touches_ros(item: Any) -> bool:
    nodeid = item.nodeid
    if nodeid in NOT_ROS:
        return False
    if nodeid in ALSO_ROS:
        return True
    # By module and name: wrappers such as hypothesis's @given change the function's.
    name = item.cls.__name__ if getattr(item, "cls", None) else getattr(item, "originalname", "")
    if name and _touches(Path(item.path), name):
        return True
    fixtures = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    return any(_fixture_touches(definition.func) for definitions in fixtures.values()
               for definition in definitions)


def _whole_suite(config: Any) -> bool:
    return config.args_source == config.ArgsSource.TESTPATHS


def mark(config: Any, items: list[Any]) -> None:
    """Marks the collected tests that touch ROS (before -m deselects any)."""
    import pytest

    known = {item.nodeid for item in items}
    collected_files = {nodeid.split("::")[0] for nodeid in known}
    for item in items:
        if touches_ros(item):
            item.add_marker(pytest.mark.ros)
    # (a file left out with --ignore, as make test-jazzy does, has none of its tests here)
    stale = [nodeid for nodeid in (*ALSO_ROS, *NOT_ROS)
             if nodeid.split("::")[0] in collected_files and nodeid not in known]
    if _whole_suite(config) and stale:  # a renamed test must not fall out unseen
        raise pytest.UsageError(f"test/ros_selection.py names tests that do not exist: {stale}")


def check_selection(config: Any, items: list[Any]) -> None:
    """`pytest -m ros` over the whole suite: fail when it selected too few tests."""
    import pytest

    if config.option.markexpr != MARKER or not _whole_suite(config):
        return
    if len(items) < MIN_SELECTED:
        raise pytest.UsageError(
            f"-m {MARKER} selected {len(items)} tests, fewer than the {MIN_SELECTED} expected "
            "(test/ros_selection.py): the ROS-facing tests are no longer found")


def report(config: Any, items: list[Any]) -> list[str]:
    if config.option.markexpr != MARKER:
        return []
    return [f"-m {MARKER}: {len(items)} tests that touch ROS (test/ros_selection.py)"]
