"""config/bridge.yaml against rover_ws_bridge/config.py, and the validation of parameters.

The params file and PARAMETERS must not drift: same names in the same order, same defaults,
each documented with the spec's sentence and its allowed values. ROS reads the file with rcl's
own YAML parser (not PyYAML), which types each value from how it is written, so one test loads
the file through rclpy, in a child process with its own ROS domain, exactly as the node gets it.
"""
from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from rover_ws_bridge.config import (
    PARAMETERS,
    BridgeConfig,
    ConfigError,
    ExplicitTopic,
)
from rover_ws_bridge.priority import Priority, PriorityOverride

REPO = Path(__file__).resolve().parent.parent
PARAMS_FILE = REPO / "config" / "bridge.yaml"
NODE_NAME = "rover_ws_bridge"
SPECS = {spec.name: spec for spec in PARAMETERS}

# An entry of the file: "    name: value" (active) or "    # name: []" (an empty-list default,
# which a ROS params file cannot hold: rcl reads `[]` as "no value").
ACTIVE_ENTRY = re.compile(r"^    (?P<name>[A-Za-z_]\w*):")
EMPTY_LIST_ENTRY = re.compile(r"^    #\s*(?P<name>[A-Za-z_]\w*):\s*\[\]\s*$")
COMMENT = re.compile(r"^    #\s?(?P<text>.*)$")


def _params() -> dict:
    document = yaml.safe_load(PARAMS_FILE.read_text())
    return document[NODE_NAME]["ros__parameters"]


def _entries() -> list[tuple[str, bool, list[str]]]:
    """(name, is_active, comment lines above it) for each entry, in file order."""
    entries: list[tuple[str, bool, list[str]]] = []
    comments: list[str] = []
    for line in PARAMS_FILE.read_text().splitlines():
        if match := EMPTY_LIST_ENTRY.match(line):
            entries.append((match["name"], False, comments))
            comments = []
        elif match := ACTIVE_ENTRY.match(line):
            entries.append((match["name"], True, comments))
            comments = []
        elif match := COMMENT.match(line):
            comments.append(match["text"])
        elif not line.strip():
            comments = []  # a blank line ends a comment block
    return entries


def _normalized(text: str) -> str:
    return " ".join(text.split())


def _allowed_text(spec) -> str | None:
    """What the spec's own check says is allowed, e.g. 'a number in [0, 65535]'."""
    if spec.check is None:
        return None
    impossible = {str: "\0not-a-valid-value", list: ["\0not-a-valid-value"]}.get(spec.type,
                                                                           float("-inf"))
    return spec.check(impossible)


# --- the file against PARAMETERS ------------------------------------------------------------


def test_file_is_for_the_node_by_name():
    document = yaml.safe_load(PARAMS_FILE.read_text())
    # The node's name, not "/**": the file is this node's, and a wildcard would also hand
    # these parameters to any other node started with it.
    assert list(document) == [NODE_NAME]
    assert list(document[NODE_NAME]) == ["ros__parameters"]


def test_file_lists_every_parameter_in_declaration_order():
    names = [name for name, _, _ in _entries()]
    assert names == [spec.name for spec in PARAMETERS]


def test_only_empty_list_defaults_are_commented_out():
    commented = {name for name, active, _ in _entries() if not active}
    empty_list_defaults = {s.name for s in PARAMETERS if s.type is list and s.default == []}
    assert commented == empty_list_defaults
    assert list(_params()) == [name for name, active, _ in _entries() if active]


@pytest.mark.parametrize("spec", [s for s in PARAMETERS if s.default != []], ids=lambda s: s.name)
def test_value_is_the_default_with_the_declared_type(spec):
    value = _params()[spec.name]
    assert value == spec.default
    # Exact type: ROS types a value from how it is written, so a float written "2" would be an
    # integer, which a parameter declared as a double rejects.
    assert type(value) is spec.type
    if spec.type is list:
        assert all(type(item) is str for item in value)


@pytest.mark.parametrize("spec", PARAMETERS, ids=lambda s: s.name)
def test_each_entry_is_documented_with_the_spec_and_its_allowed_values(spec):
    comments = {name: lines for name, _, lines in _entries()}[spec.name]
    text = _normalized(" ".join(comments))
    assert _normalized(spec.doc) in text, f"{spec.name}: the comment lacks the spec's doc"
    assert "Allowed:" in text, f"{spec.name}: the comment does not say what is allowed"
    allowed = _allowed_text(spec)
    if allowed is None:
        return
    if allowed.startswith("one of "):
        for option in allowed.removeprefix("one of ").split(", "):
            assert f'"{option}"' in text, f"{spec.name}: allowed value {option!r} not documented"
    elif (interval := re.search(r"\[.*\]", allowed)) is not None:
        assert interval[0] in text, f"{spec.name}: range {interval[0]} not documented"
    else:
        assert _normalized(allowed) in text, f"{spec.name}: '{allowed}' not documented"


def test_file_values_validate_and_equal_the_defaults():
    from_file = BridgeConfig.from_mapping(_params())
    assert from_file == BridgeConfig.from_mapping({})


def test_dataclass_defaults_match_parameters():
    # BridgeConfig's field defaults and PARAMETERS are two spellings of the same defaults.
    assert BridgeConfig() == BridgeConfig.from_mapping({})


def test_rcl_reads_the_file_with_the_declared_types(tmp_path):
    """Load the file with rcl's parser, as `--ros-args --params-file` does for the node."""
    script = textwrap.dedent(
        """
        import json, sys
        import rclpy
        from rclpy.node import Node

        context = rclpy.Context()
        rclpy.init(args=["check", "--ros-args", "--params-file", sys.argv[1]], context=context)
        try:
            node = Node(sys.argv[2], context=context,
                        automatically_declare_parameters_from_overrides=True)
            values = {name: [p.type_.name, p.value]
                      for name, p in node.get_parameters_by_prefix("").items()}
            node.destroy_node()
        finally:
            rclpy.try_shutdown(context=context)
        print(json.dumps(values))
        """
    )
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(random.randint(1, 100)),
               ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_LOG_DIR=str(tmp_path / "log"))
    env.pop("ROS_LOCALHOST_ONLY", None)
    probe = subprocess.run([sys.executable, "-c", "import rclpy"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        pytest.skip(f"rclpy is not importable here: {probe.stderr.strip()[-300:]}")
    result = subprocess.run(
        [sys.executable, "-c", script, str(PARAMS_FILE), NODE_NAME],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    ros_type = {bool: "BOOL", int: "INTEGER", float: "DOUBLE", str: "STRING",
                list: "STRING_ARRAY"}
    for name, active, _ in _entries():
        spec = SPECS[name]
        if not active:
            assert name not in loaded, f"{name}: an empty list must stay commented out"
            continue
        assert loaded[name] == [ros_type[spec.type], spec.default], name


# --- validation -----------------------------------------------------------------------------


def _error(values: dict) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        BridgeConfig.from_mapping(values)
    return caught.value


@pytest.mark.parametrize(
    "values, name, allowed_fragments",
    [
        ({"port": 70000}, "port", ["[0, 65535]"]),
        ({"port": -1}, "port", ["[0, 65535]"]),
        ({"default_compression": "brotli"}, "default_compression", ["lz4", "zlib", "none"]),
        ({"default_encoding": "xml"}, "default_encoding", ["msgpack", "json", "cdr"]),
        ({"priority_overrides": ["x"]}, "priority_overrides", ["topic_glob=PRIORITY"]),
        ({"priority_overrides": ["=HIGH"]}, "priority_overrides", ["topic_glob=PRIORITY"]),
        ({"priority_overrides": ["/estop*=URGENT"]}, "priority_overrides",
         ["CRITICAL", "HIGH", "NORMAL", "LOW"]),
        ({"topics": ["imu"]}, "topics", ["'/'"]),
        ({"topics": ["/imu:Imu"]}, "topics", ["pkg/msg/Type"]),
        ({"discovery_period_s": 0.0}, "discovery_period_s", ["[0.05, 60.0]"]),
        ({"outbox_max_bytes": 1024}, "outbox_max_bytes", ["[65536, 2147483648]"]),
        ({"qos_depth_min": 30}, "qos_depth_min", ["qos_depth_max", "25"]),
        ({"qos_depth_min": 10, "qos_depth_max": 5}, "qos_depth_min", ["qos_depth_max", "5"]),
    ],
)
def test_bad_value_names_the_parameter_and_what_is_allowed(values, name, allowed_fragments):
    error = _error(values)
    assert error.name == name
    message = str(error)
    assert f"'{name}'" in message
    for fragment in allowed_fragments:
        assert fragment in message


def test_unknown_parameter_is_named_with_the_known_ones():
    error = _error({"prot": 8000})
    assert error.name == "prot"
    assert "'prot'" in str(error)
    for spec in PARAMETERS:
        assert spec.name in str(error)


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("port", "8000", "an integer"),
        ("port", 8000.0, "an integer"),
        ("port", True, "an integer"),  # bool is an int subclass in Python, not in ROS
        ("discover_topics", "yes", "true or false"),
        ("discover_topics", 1, "true or false"),
        ("address", 0, "a string"),
        ("address", False, "a string"),
        ("unsubscribe_grace_s", "2", "a number"),
        ("unsubscribe_grace_s", True, "a number"),
        ("topics", "/imu", "a list of strings"),
        ("topic_allow", ["/imu", 3], "a list of strings"),
        ("large_message_types", None, "a list of strings"),
    ],
)
def test_wrong_type_names_the_parameter_and_the_expected_type(name, value, expected):
    error = _error({name: value})
    assert error.name == name
    assert f"'{name}'" in str(error)
    assert expected in str(error)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize("port", [0, 1, 65535])
def test_port_bounds_are_accepted(port):
    assert BridgeConfig.from_mapping({"port": port}).port == port


def test_integer_is_accepted_for_a_float_parameter():
    config = BridgeConfig.from_mapping({"unsubscribe_grace_s": 3})
    assert config.unsubscribe_grace_s == 3.0
    assert type(config.unsubscribe_grace_s) is float


def test_equal_depth_clamps_are_accepted():
    config = BridgeConfig.from_mapping({"qos_depth_min": 7, "qos_depth_max": 7})
    assert (config.qos_depth_min, config.qos_depth_max) == (7, 7)


def test_lists_are_parsed_into_their_items():
    config = BridgeConfig.from_mapping({
        "topics": ["/imu", " /estop:std_msgs/msg/Bool "],
        "priority_overrides": ["/estop*=critical", " /camera/* = LOW "],
        "topic_deny": ("/debug/*",),
    })
    assert config.topics == (ExplicitTopic("/imu"), ExplicitTopic("/estop", "std_msgs/msg/Bool"))
    assert config.priority_overrides == (
        PriorityOverride("/estop*", Priority.CRITICAL),
        PriorityOverride("/camera/*", Priority.LOW),
    )
    assert config.topic_deny == ("/debug/*",)


def test_empty_lists_are_accepted_whatever_their_container():
    # rclpy may hand over an empty array of another type (an empty list has no element type).
    config = BridgeConfig.from_mapping({"topics": (), "topic_allow": []})
    assert config.topics == () and config.topic_allow == ()
