"""Priority levels and the QoS -> priority rules (the table in DESIGN.md, "Priority")."""
from __future__ import annotations

import itertools

import pytest

from rover_ws_bridge.config import BridgeConfig
from rover_ws_bridge.priority import (
    DEFAULT_LARGE_MESSAGE_TYPES,
    Priority,
    PriorityOverride,
    PublisherQos,
    QosPriorityRules,
)

RELIABLE_TRANSIENT_LOCAL = PublisherQos(reliable=True, transient_local=True)
RELIABLE_VOLATILE = PublisherQos(reliable=True, transient_local=False)
BEST_EFFORT = PublisherQos(reliable=False, transient_local=False)
BEST_EFFORT_TRANSIENT_LOCAL = PublisherQos(reliable=False, transient_local=True)

IMU = "sensor_msgs/msg/Imu"
IMAGE = "sensor_msgs/msg/Image"


def test_levels_are_ordered_highest_first():
    assert Priority.CRITICAL > Priority.HIGH > Priority.NORMAL > Priority.LOW


@pytest.mark.parametrize("text", ["CRITICAL", "critical", " High ", "normal", "LOW"])
def test_parse_accepts_any_case_and_spacing(text):
    assert Priority.parse(text) is Priority[text.strip().upper()]


def test_parse_error_lists_the_levels():
    with pytest.raises(ValueError) as caught:
        Priority.parse("URGENT")
    for level in Priority:
        assert level.name in str(caught.value)


# --- the QoS table --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "topic, type_name, publishers, expected",
    [
        ("/robot_description", "std_msgs/msg/String", [RELIABLE_TRANSIENT_LOCAL],
         Priority.CRITICAL),
        ("/estop_state", "std_msgs/msg/Bool",
         [RELIABLE_TRANSIENT_LOCAL, RELIABLE_TRANSIENT_LOCAL], Priority.CRITICAL),
        ("/battery_state", "sensor_msgs/msg/BatteryState", [RELIABLE_VOLATILE], Priority.HIGH),
        ("/odom", "nav_msgs/msg/Odometry", [RELIABLE_VOLATILE, RELIABLE_VOLATILE],
         Priority.HIGH),
        # A large type published reliably keeps the reliable rules: its sender wants it all.
        ("/map", "nav_msgs/msg/OccupancyGrid", [RELIABLE_TRANSIENT_LOCAL], Priority.CRITICAL),
        ("/camera/image_raw", IMAGE, [RELIABLE_VOLATILE], Priority.HIGH),
        ("/imu", IMU, [BEST_EFFORT], Priority.NORMAL),
        ("/joint_states", "sensor_msgs/msg/JointState", [BEST_EFFORT], Priority.NORMAL),
        ("/camera/image_raw", IMAGE, [BEST_EFFORT], Priority.LOW),
        ("/camera/compressed", "sensor_msgs/msg/CompressedImage", [BEST_EFFORT], Priority.LOW),
        ("/points", "sensor_msgs/msg/PointCloud2", [BEST_EFFORT], Priority.LOW),
    ],
)
def test_table_of_design(topic, type_name, publishers, expected):
    assert QosPriorityRules().priority(topic, type_name, publishers) is expected


def test_transient_local_needs_every_publisher():
    mixed = [RELIABLE_TRANSIENT_LOCAL, RELIABLE_VOLATILE]
    assert QosPriorityRules().priority("/mode", "std_msgs/msg/String", mixed) is Priority.HIGH


@pytest.mark.parametrize("type_name, expected", [(IMU, Priority.NORMAL), (IMAGE, Priority.LOW)])
def test_one_best_effort_publisher_makes_the_topic_best_effort(type_name, expected):
    for publishers in ([RELIABLE_TRANSIENT_LOCAL, BEST_EFFORT], [RELIABLE_VOLATILE, BEST_EFFORT],
                       [BEST_EFFORT_TRANSIENT_LOCAL]):
        assert QosPriorityRules().priority("/t", type_name, publishers) is expected


def test_order_of_publishers_does_not_matter():
    rules = QosPriorityRules()
    publishers = [RELIABLE_TRANSIENT_LOCAL, RELIABLE_VOLATILE, BEST_EFFORT]
    for type_name in (IMU, IMAGE):
        results = {rules.priority("/t", type_name, list(order))
                   for order in itertools.permutations(publishers)}
        assert len(results) == 1


@pytest.mark.parametrize("type_name", [IMU, IMAGE])
def test_no_publishers_is_normal(type_name):
    assert QosPriorityRules().priority("/not_yet_published", type_name, []) is Priority.NORMAL


def test_large_message_types_are_configurable():
    rules = QosPriorityRules(large_message_types=["my_msgs/msg/Blob"])
    assert rules.priority("/blob", "my_msgs/msg/Blob", [BEST_EFFORT]) is Priority.LOW
    assert rules.priority("/image", IMAGE, [BEST_EFFORT]) is Priority.NORMAL


def test_default_large_types_cover_images_and_point_clouds():
    for type_name in ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage",
                      "sensor_msgs/msg/PointCloud2"):
        assert type_name in DEFAULT_LARGE_MESSAGE_TYPES


# --- overrides ------------------------------------------------------------------------------


def _rules(*entries: str) -> QosPriorityRules:
    return QosPriorityRules([PriorityOverride.parse(entry) for entry in entries])


def test_override_beats_the_qos_rules():
    rules = _rules("/camera/*=CRITICAL", "/robot_description=LOW")
    assert rules.priority("/camera/image_raw", IMAGE, [BEST_EFFORT]) is Priority.CRITICAL
    assert rules.priority("/robot_description", "std_msgs/msg/String",
                          [RELIABLE_TRANSIENT_LOCAL]) is Priority.LOW


def test_override_applies_without_publishers():
    assert _rules("/estop*=CRITICAL").priority("/estop", "std_msgs/msg/Bool", []) is (
        Priority.CRITICAL)


def test_first_matching_override_wins():
    rules = _rules("/estop*=CRITICAL", "/e*=LOW", "*=HIGH")
    assert rules.priority("/estop_state", "std_msgs/msg/Bool", [BEST_EFFORT]) is (
        Priority.CRITICAL)
    assert rules.priority("/encoder", IMU, [BEST_EFFORT]) is Priority.LOW
    assert rules.priority("/imu", IMU, [BEST_EFFORT]) is Priority.HIGH
    # The same entries in another order give another answer: order is the user's tool.
    reordered = _rules("/e*=LOW", "/estop*=CRITICAL")
    assert reordered.priority("/estop_state", "std_msgs/msg/Bool", []) is Priority.LOW


def test_unmatched_topic_falls_back_to_the_qos_rules():
    rules = _rules("/estop*=CRITICAL")
    assert rules.override_for("/imu") is None
    assert rules.priority("/imu", IMU, [BEST_EFFORT]) is Priority.NORMAL


def test_glob_is_case_sensitive_like_ros_names():
    assert _rules("/estop*=CRITICAL").override_for("/ESTOP") is None


def test_override_parse_rejects_a_missing_level_or_pattern():
    for text in ("x", "=HIGH", "/a=", "/a=URGENT"):
        with pytest.raises(ValueError):
            PriorityOverride.parse(text)


def test_rules_from_config():
    config = BridgeConfig.from_mapping({
        "priority_overrides": ["/estop*=critical"],
        "large_message_types": ["my_msgs/msg/Blob"],
    })
    rules = QosPriorityRules(config.priority_overrides, config.large_message_types)
    assert rules.priority("/estop", "std_msgs/msg/Bool", [BEST_EFFORT]) is Priority.CRITICAL
    assert rules.priority("/blob", "my_msgs/msg/Blob", [BEST_EFFORT]) is Priority.LOW
    assert rules.priority("/image", IMAGE, [BEST_EFFORT]) is Priority.NORMAL


def test_ros_infrastructure_topics_are_sheddable_unless_overridden():
    from rover_ws_bridge.priority import PriorityOverride, PublisherQos, QosPriorityRules

    latched = [PublisherQos(reliable=True, transient_local=True)]
    rules = QosPriorityRules()
    assert rules.priority("/rosout", "rcl_interfaces/msg/Log", latched) == Priority.NORMAL
    assert rules.priority("/parameter_events", "rcl_interfaces/msg/ParameterEvent",
                          latched) == Priority.LOW
    assert rules.priority("/ns/rosout", "rcl_interfaces/msg/Log", latched) == Priority.CRITICAL
    mine = QosPriorityRules([PriorityOverride.parse("/rosout=HIGH")])
    assert mine.priority("/rosout", "rcl_interfaces/msg/Log", latched) == Priority.HIGH
