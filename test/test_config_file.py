"""The files generated from PARAMETERS, and the validation of parameters.

config/bridge.yaml and docs/PARAMETERS.md are renderings of PARAMETERS; the tests check that
the committed files are exactly that. ROS reads the params file with rcl's own YAML parser (not
PyYAML), which types each value from how it is written, so one test loads the file through
rclpy, in a child process with its own ROS domain, exactly as the node gets it.
"""
from __future__ import annotations

import dataclasses
import itertools
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
    COMPONENTS,
    NODE_NAME,
    PARAMETERS,
    BridgeConfig,
    ConfigError,
    ExplicitTopic,
    PublishQosRule,
    main,
    render_markdown,
    render_params_yaml,
)
from rover_ws_bridge.priority import Priority, PriorityOverride

REPO = Path(__file__).resolve().parent.parent
PARAMS_FILE = REPO / "config" / "bridge.yaml"
MARKDOWN_FILE = REPO / "docs" / "PARAMETERS.md"
REGENERATE = ("regenerate it: python -m rover_ws_bridge.config --write-yaml config/bridge.yaml "
              "--write-markdown docs/PARAMETERS.md")


# --- the generated files --------------------------------------------------------------------


def test_params_file_is_the_rendering_of_parameters():
    assert PARAMS_FILE.read_text() == render_params_yaml(), REGENERATE


def test_markdown_is_the_rendering_of_parameters():
    assert MARKDOWN_FILE.read_text() == render_markdown(), REGENERATE


def test_check_exits_nonzero_only_when_a_file_differs(tmp_path, capsys):
    yaml_file, markdown_file = tmp_path / "bridge.yaml", tmp_path / "PARAMETERS.md"
    files = ["--write-yaml", str(yaml_file), "--write-markdown", str(markdown_file)]
    assert main([*files, "--check"]) == 1  # missing files differ too
    assert main(files) == 0
    assert main([*files, "--check"]) == 0
    yaml_file.write_text(yaml_file.read_text().replace("port: 8000", "port: 9000"))
    assert main([*files, "--check"]) == 1
    assert "bridge.yaml differs" in capsys.readouterr().err


def test_file_is_for_the_node_by_name():
    document = yaml.safe_load(PARAMS_FILE.read_text())
    # The node's name, not "/**": the file is this node's, and a wildcard would also hand
    # these parameters to any other node started with it.
    assert list(document) == [NODE_NAME]
    assert list(document[NODE_NAME]) == ["ros__parameters"]


def test_node_name_is_the_node_s():
    node = pytest.importorskip("rover_ws_bridge.ros.node")
    assert node.NODE_NAME == NODE_NAME


def test_file_values_validate_and_equal_the_defaults():
    params = yaml.safe_load(PARAMS_FILE.read_text())[NODE_NAME]["ros__parameters"]
    assert BridgeConfig.from_mapping(params) == BridgeConfig()


@pytest.mark.parametrize("spec", [s for s in PARAMETERS if s.example is not None],
                         ids=lambda s: s.name)
def test_documented_examples_are_allowed(spec):
    BridgeConfig.from_mapping({spec.name: spec.example})


def test_each_component_is_known_and_declared_in_one_run():
    runs = [component for component, _ in itertools.groupby(s.component for s in PARAMETERS)]
    assert runs == list(COMPONENTS)


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
    for spec in PARAMETERS:
        if spec.default == []:
            assert spec.name not in loaded, f"{spec.name}: an empty list must stay commented out"
        else:
            assert loaded[spec.name] == [ros_type[spec.type], spec.default], spec.name


def test_readme_names_only_known_parameters():
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Parameters\n", 1)[1].split("\n## ", 1)[0]
    assert "docs/PARAMETERS.md" in section
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    named = {name for row in rows for name in re.findall(r"`([a-z_]+)`", row.split("|")[1])}
    assert named and named <= {spec.name for spec in PARAMETERS}


# --- the typed object -----------------------------------------------------------------------


def test_dataclass_has_one_typed_field_per_parameter():
    fields = dataclasses.fields(BridgeConfig)
    assert [f.name for f in fields] == [spec.name for spec in PARAMETERS]
    types = {f.name: f.type for f in fields}
    assert types["port"] is int and types["unsubscribe_grace_s"] is float
    assert types["topics"] == tuple[ExplicitTopic, ...]
    assert types["priority_overrides"] == tuple[PriorityOverride, ...]
    assert types["publish_qos"] == tuple[PublishQosRule, ...]
    assert types["topic_allow"] == tuple[str, ...]


def test_dataclass_defaults_are_the_parameters_defaults():
    assert BridgeConfig() == BridgeConfig.from_mapping({})
    assert BridgeConfig().write_allowed_networks == ("127.0.0.0/8", "::1/128")


def test_config_is_frozen_and_replace_makes_a_new_one():
    config = BridgeConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.port = 1
    changed = config.replace(port=9000)
    assert (changed.port, config.port) == (9000, 8000)
    assert changed == BridgeConfig.from_mapping({"port": 9000})


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
        "publish_qos": ["/estop=reliable,transient_local,1"],
    })
    assert config.topics == (ExplicitTopic("/imu"), ExplicitTopic("/estop", "std_msgs/msg/Bool"))
    assert config.priority_overrides == (
        PriorityOverride("/estop*", Priority.CRITICAL),
        PriorityOverride("/camera/*", Priority.LOW),
    )
    assert config.topic_deny == ("/debug/*",)
    assert config.publish_qos == (PublishQosRule("/estop", True, True, 1),)


def test_empty_lists_are_accepted_whatever_their_container():
    # rclpy may hand over an empty array of another type (an empty list has no element type).
    config = BridgeConfig.from_mapping({"topics": (), "topic_allow": []})
    assert config.topics == () and config.topic_allow == ()
