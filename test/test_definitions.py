"""Full message definitions as foxglove_bridge sends them in a channel's `schema`.

The golden texts below are built by hand from the installed .msg files, with the separators and
the order written out: the root file verbatim, then each dependency once, depth first, the
dependencies of each file in sorted order of their names (foxglove_bridge keeps them in a
std::set: ros-foxglove-bridge 4e801bb and foxglove-sdk ca8a1ce, message_definition_cache.cpp),
each named as the referencing file spells it. Sorted, not field order: in Imu the Header field
comes first, but std_msgs/Header comes after geometry_msgs/Vector3.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from rover_ws_bridge.ros import definitions
from rover_ws_bridge.ros.definitions import (
    DefinitionNotFoundError,
    InvalidTypeNameError,
    clear_cache,
    definition,
    message_definition,
)

# "\n" + 80 "=" + "\nMSG: ", written out.
SEP = "\n================================================================================\nMSG: "
IDL_RULE = "================================================================================\nIDL: "


def _installed(relative: str) -> Path:
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    for prefix in [*prefixes, sys.prefix]:
        path = Path(prefix) / "share" / relative
        if path.is_file():
            return path
    raise AssertionError(f"{relative} is not installed")


def read(relative: str) -> str:
    with open(_installed(relative)) as file:
        return file.read()


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def test_separator_is_80_equals_signs():
    assert SEP == "\n" + "=" * 80 + "\nMSG: "


# ---------------------------------------------------------------------------------------------
# Golden texts of installed types


def test_imu():
    expected = (
        read("sensor_msgs/msg/Imu.msg")
        + SEP + "geometry_msgs/Quaternion\n" + read("geometry_msgs/msg/Quaternion.msg")
        + SEP + "geometry_msgs/Vector3\n" + read("geometry_msgs/msg/Vector3.msg")
        + SEP + "std_msgs/Header\n" + read("std_msgs/msg/Header.msg")
        + SEP + "builtin_interfaces/Time\n" + read("builtin_interfaces/msg/Time.msg")
    )
    assert message_definition("sensor_msgs/msg/Imu") == ("ros2msg", expected)
    # Comments are kept: the file's first line is a comment.
    assert expected.startswith("#")


def test_image():
    expected = (
        read("sensor_msgs/msg/Image.msg")
        + SEP + "std_msgs/Header\n" + read("std_msgs/msg/Header.msg")
        + SEP + "builtin_interfaces/Time\n" + read("builtin_interfaces/msg/Time.msg")
    )
    assert message_definition("sensor_msgs/msg/Image") == ("ros2msg", expected)


def test_odometry():
    # Odometry: Header, PoseWithCovariance, TwistWithCovariance -> sorted, Header last; Pose
    # writes bare `Point` and `Quaternion`, Twist bare `Vector3`: the current package.
    expected = (
        read("nav_msgs/msg/Odometry.msg")
        + SEP + "geometry_msgs/PoseWithCovariance\n"
        + read("geometry_msgs/msg/PoseWithCovariance.msg")
        + SEP + "geometry_msgs/Pose\n" + read("geometry_msgs/msg/Pose.msg")
        + SEP + "geometry_msgs/Point\n" + read("geometry_msgs/msg/Point.msg")
        + SEP + "geometry_msgs/Quaternion\n" + read("geometry_msgs/msg/Quaternion.msg")
        + SEP + "geometry_msgs/TwistWithCovariance\n"
        + read("geometry_msgs/msg/TwistWithCovariance.msg")
        + SEP + "geometry_msgs/Twist\n" + read("geometry_msgs/msg/Twist.msg")
        + SEP + "geometry_msgs/Vector3\n" + read("geometry_msgs/msg/Vector3.msg")
        + SEP + "std_msgs/Header\n" + read("std_msgs/msg/Header.msg")
        + SEP + "builtin_interfaces/Time\n" + read("builtin_interfaces/msg/Time.msg")
    )
    assert message_definition("nav_msgs/msg/Odometry") == ("ros2msg", expected)


def test_diagnostic_array_nested_arrays_and_bare_names():
    # DiagnosticArray has `DiagnosticStatus[] status`, which has `KeyValue[] values`: arrays of
    # messages two deep, both written bare in diagnostic_msgs files.
    expected = (
        read("diagnostic_msgs/msg/DiagnosticArray.msg")
        + SEP + "diagnostic_msgs/DiagnosticStatus\n"
        + read("diagnostic_msgs/msg/DiagnosticStatus.msg")
        + SEP + "diagnostic_msgs/KeyValue\n" + read("diagnostic_msgs/msg/KeyValue.msg")
        + SEP + "std_msgs/Header\n" + read("std_msgs/msg/Header.msg")
        + SEP + "builtin_interfaces/Time\n" + read("builtin_interfaces/msg/Time.msg")
    )
    assert message_definition("diagnostic_msgs/msg/DiagnosticArray") == ("ros2msg", expected)


def test_path_array_of_stamped_messages_each_dependency_once():
    # Path: Header, PoseStamped[]. Depth first into PoseStamped (sorted before std_msgs), which
    # brings Header in; Path's own Header is then already there.
    expected = (
        read("nav_msgs/msg/Path.msg")
        + SEP + "geometry_msgs/PoseStamped\n" + read("geometry_msgs/msg/PoseStamped.msg")
        + SEP + "geometry_msgs/Pose\n" + read("geometry_msgs/msg/Pose.msg")
        + SEP + "geometry_msgs/Point\n" + read("geometry_msgs/msg/Point.msg")
        + SEP + "geometry_msgs/Quaternion\n" + read("geometry_msgs/msg/Quaternion.msg")
        + SEP + "std_msgs/Header\n" + read("std_msgs/msg/Header.msg")
        + SEP + "builtin_interfaces/Time\n" + read("builtin_interfaces/msg/Time.msg")
    )
    assert message_definition("nav_msgs/msg/Path") == ("ros2msg", expected)
    assert expected.count("MSG: std_msgs/Header\n") == 1


def test_bare_type_name_gets_the_current_package():
    # Pose.msg says `Point position`, `Quaternion orientation`.
    assert "\nPoint position" in read("geometry_msgs/msg/Pose.msg")
    expected = (
        read("geometry_msgs/msg/Pose.msg")
        + SEP + "geometry_msgs/Point\n" + read("geometry_msgs/msg/Point.msg")
        + SEP + "geometry_msgs/Quaternion\n" + read("geometry_msgs/msg/Quaternion.msg")
    )
    assert message_definition("geometry_msgs/msg/Pose") == ("ros2msg", expected)


def test_short_type_name_without_msg():
    text = message_definition("sensor_msgs/msg/Imu")
    clear_cache()
    assert message_definition("sensor_msgs/Imu") == text


def test_files_list_matches_the_text():
    found = definition("nav_msgs/msg/Odometry")
    assert [name for name, _ in found.files] == [
        "nav_msgs/msg/Odometry", "geometry_msgs/PoseWithCovariance", "geometry_msgs/Pose",
        "geometry_msgs/Point", "geometry_msgs/Quaternion", "geometry_msgs/TwistWithCovariance",
        "geometry_msgs/Twist", "geometry_msgs/Vector3", "std_msgs/Header",
        "builtin_interfaces/Time"]
    assert found.files[0][1] + "".join(SEP + n + "\n" + t for n, t in found.files[1:]) \
        == found.text


# ---------------------------------------------------------------------------------------------
# Services


def test_service_request_and_response_are_the_halves_of_the_srv():
    assert read("std_srvs/srv/SetBool.srv") == (
        "bool data # e.g. for hardware enabling / disabling\n"
        "---\n"
        "bool success   # indicate successful run of triggered service\n"
        "string message # informational, e.g. for error messages\n")
    assert message_definition("std_srvs/srv/SetBool_Request") == (
        "ros2msg", "bool data # e.g. for hardware enabling / disabling")
    assert message_definition("std_srvs/srv/SetBool_Response") == (
        "ros2msg", "bool success   # indicate successful run of triggered service\n"
                   "string message # informational, e.g. for error messages")


def test_service_event_is_synthesized():
    event = ("service_msgs/msg/ServiceEventInfo info\n"
             "std_srvs/srv/SetBool_Request[<=1] request\n"
             "std_srvs/srv/SetBool_Response[<=1] response\n")
    expected = (
        event
        + SEP + "service_msgs/msg/ServiceEventInfo\n"
        + read("service_msgs/msg/ServiceEventInfo.msg")
        + SEP + "builtin_interfaces/Time\n" + read("builtin_interfaces/msg/Time.msg")
        + SEP + "std_srvs/srv/SetBool_Request\n"
        + "bool data # e.g. for hardware enabling / disabling"
        + SEP + "std_srvs/srv/SetBool_Response\n"
        + "bool success   # indicate successful run of triggered service\n"
          "string message # informational, e.g. for error messages"
    )
    assert message_definition("std_srvs/srv/SetBool_Event") == ("ros2msg", expected)


def test_service_without_a_part_suffix_is_not_found():
    with pytest.raises(DefinitionNotFoundError, match="std_srvs/srv/SetBool"):
        message_definition("std_srvs/srv/SetBool")


# ---------------------------------------------------------------------------------------------
# Not found


def test_unknown_type_raises_naming_it():
    with pytest.raises(DefinitionNotFoundError, match="std_msgs/msg/DoesNotExist") as info:
        message_definition("std_msgs/msg/DoesNotExist")
    assert isinstance(info.value, LookupError)
    assert info.value.type_name == "std_msgs/msg/DoesNotExist"


def test_unknown_package_raises_naming_the_type():
    with pytest.raises(LookupError, match="no_such_msgs/msg/Thing"):
        message_definition("no_such_msgs/msg/Thing")


@pytest.mark.parametrize("name", ["Imu", "sensor_msgs/msg/Imu/x", "../../etc/passwd",
                                  "sensor_msgs/foo/Imu", "sensor_msgs/msg/Imu\n", ""])
def test_malformed_name(name):
    with pytest.raises(InvalidTypeNameError) as info:
        message_definition(name)
    assert isinstance(info.value, LookupError) and isinstance(info.value, ValueError)
    assert info.value.type_name == name


# ---------------------------------------------------------------------------------------------
# A prefix of our own on AMENT_PREFIX_PATH (an overlay: it wins over sys.prefix)


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


FAKE_FILES = {
    "msg/Plain.msg": (
        "# only builtins, in every form\n"
        "wstring w\nstring<=5 s\nwstring<=3[<=2] ws\nint32[<=4] b\nuint8[] u\n"
        "float64[3] f\nbyte CONST=1\nstring GREETING=\"hi there\"\nchar c\nbool t true\n"
        "  # fake_msgs/Commented out\n\n"),
    "msg/Both.msg": (
        "builtin_interfaces/msg/Time a\n"
        "builtin_interfaces/Time b  # two spellings, two entries\n"
        "Inner[3] inner\nInner[<=2] more\n"),
    "msg/Inner.msg": "Leaf[] leaves\n",
    "msg/Leaf.msg": "uint8 x\n",
    "msg/Leaf.idl": "module fake_msgs { module msg { struct Leaf { uint8 x; }; }; };\n",
    "msg/OnlyIdl.idl": (
        '#include "fake_msgs/msg/Leaf.idl"\n#include <builtin_interfaces/msg/Time.idl>\n'
        "module fake_msgs { module msg { struct OnlyIdl {\n"
        "  fake_msgs::msg::Leaf leaf; builtin_interfaces::msg::Time t; }; }; };\n"),
    "msg/Partial.msg": "Gone g\n",
    "msg/Partial.idl": '#include "fake_msgs/msg/Gone.idl"\nmodule fake_msgs {};\n',
    "msg/Gone.idl": "module fake_msgs {};\n",
    "msg/Broken.msg": "Missing m\n",
    "custom_dir/Odd.msg": "int8 odd\n",
    "action/Count.action": "int32 target\n---\nint32[] sequence\n---\nint32 current\n",
}


@pytest.fixture
def overlay(tmp_path, monkeypatch):
    share = tmp_path / "share"
    for relative, text in FAKE_FILES.items():
        _write(share / "fake_msgs", relative, text)
    _write(share, "ament_index/resource_index/rosidl_interfaces/fake_msgs",
           "\n".join(FAKE_FILES) + "\n")
    # A package with no index entry: found at share/<pkg>/msg/<Name>.msg.
    _write(share, "noindex_msgs/msg/Thing.msg", "Part p\n")
    _write(share, "noindex_msgs/msg/Part.msg", "float32 v\n")
    # An overlay of std_msgs with a different Header.
    _write(share, "std_msgs/msg/Header.msg", "builtin_interfaces/Time stamp\nuint32 seq\n")
    _write(share, "ament_index/resource_index/rosidl_interfaces/std_msgs", "msg/Header.msg\n")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))
    clear_cache()
    return share


def test_builtins_and_their_bounded_and_array_forms_are_not_dependencies(overlay):
    assert message_definition("fake_msgs/msg/Plain") == ("ros2msg", FAKE_FILES["msg/Plain.msg"])


def test_nested_arrays_and_spellings_of_one_type(overlay):
    # Sorted byte-wise: builtin_interfaces/Time < builtin_interfaces/msg/Time < fake_msgs/Inner;
    # each spelling is its own entry, as in foxglove_bridge.
    time_msg = read("builtin_interfaces/msg/Time.msg")
    expected = (
        FAKE_FILES["msg/Both.msg"]
        + SEP + "builtin_interfaces/Time\n" + time_msg
        + SEP + "builtin_interfaces/msg/Time\n" + time_msg
        + SEP + "fake_msgs/Inner\n" + "Leaf[] leaves\n"
        + SEP + "fake_msgs/Leaf\n" + "uint8 x\n"
    )
    assert message_definition("fake_msgs/msg/Both") == ("ros2msg", expected)


def test_idl_only_type(overlay):
    expected = (
        IDL_RULE + "fake_msgs/msg/OnlyIdl\n" + FAKE_FILES["msg/OnlyIdl.idl"]
        + "\n" + IDL_RULE + "builtin_interfaces/msg/Time\n"
        + read("builtin_interfaces/msg/Time.idl")
        + "\n" + IDL_RULE + "fake_msgs/msg/Leaf\n" + FAKE_FILES["msg/Leaf.idl"]
    )
    assert message_definition("fake_msgs/msg/OnlyIdl") == ("ros2idl", expected)


def test_a_dependency_without_msg_makes_the_whole_text_idl(overlay):
    expected = (
        IDL_RULE + "fake_msgs/msg/Partial\n" + FAKE_FILES["msg/Partial.idl"]
        + "\n" + IDL_RULE + "fake_msgs/msg/Gone\n" + FAKE_FILES["msg/Gone.idl"]
    )
    assert message_definition("fake_msgs/msg/Partial") == ("ros2idl", expected)


def test_missing_dependency_names_the_type_and_the_dependency(overlay):
    with pytest.raises(DefinitionNotFoundError, match="fake_msgs/msg/Broken") as info:
        message_definition("fake_msgs/msg/Broken")
    assert info.value.missing == "fake_msgs/Missing"
    assert "Missing" in str(info.value)


def test_the_ament_index_says_where_the_file_is(overlay):
    assert message_definition("fake_msgs/msg/Odd") == ("ros2msg", "int8 odd\n")


def test_without_an_index_the_conventional_path(overlay):
    assert message_definition("noindex_msgs/msg/Thing") == (
        "ros2msg", "Part p\n" + SEP + "noindex_msgs/Part\n" + "float32 v\n")


def test_ament_prefix_path_comes_before_sys_prefix(overlay):
    assert message_definition("std_msgs/msg/Header") == (
        "ros2msg", "builtin_interfaces/Time stamp\nuint32 seq\n"
        + SEP + "builtin_interfaces/Time\n" + read("builtin_interfaces/msg/Time.msg"))
    # Packages the overlay does not have still come from sys.prefix.
    assert message_definition("geometry_msgs/msg/Point")[0] == "ros2msg"


def test_last_resort_the_tree_above_the_python_module(tmp_path, monkeypatch):
    # Neither AMENT_PREFIX_PATH nor sys.prefix has the files: found from where importlib finds
    # the sensor_msgs Python package (<prefix>/lib/pythonX.Y/site-packages/sensor_msgs).
    expected = message_definition("sensor_msgs/msg/Imu")
    clear_cache()
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert message_definition("sensor_msgs/msg/Imu") == expected


def test_action_parts(overlay):
    uuid = SEP + "unique_identifier_msgs/UUID\n" + read("unique_identifier_msgs/msg/UUID.msg")
    assert message_definition("fake_msgs/action/Count_FeedbackMessage") == (
        "ros2msg", "unique_identifier_msgs/UUID goal_id\nint32 current" + uuid)
    assert message_definition("fake_msgs/action/Count_SendGoal_Request") == (
        "ros2msg", "unique_identifier_msgs/UUID goal_id\nint32 target" + uuid)
    assert message_definition("fake_msgs/action/Count_GetResult_Response") == (
        "ros2msg", "int8 status\nint32[] sequence")
    assert message_definition("fake_msgs/action/Count_SendGoal_Response") == (
        "ros2msg", "bool accepted\nbuiltin_interfaces/msg/Time stamp"
        + SEP + "builtin_interfaces/msg/Time\n" + read("builtin_interfaces/msg/Time.msg"))
    with pytest.raises(DefinitionNotFoundError, match="fake_msgs/action/Count_Goal"):
        message_definition("fake_msgs/action/Count_Goal")


# ---------------------------------------------------------------------------------------------
# Cache and cost


def test_cached_per_type(overlay):
    first = definition("fake_msgs/msg/Inner")
    assert definition("fake_msgs/msg/Inner") is first
    assert message_definition("fake_msgs/msg/Inner")[1] is first.text
    (overlay / "fake_msgs/msg/Inner.msg").write_text("uint8 changed\n")
    assert definition("fake_msgs/msg/Inner") is first
    clear_cache()
    assert message_definition("fake_msgs/msg/Inner") == ("ros2msg", "uint8 changed\n")


def test_failures_are_not_cached(overlay):
    index = overlay / "ament_index/resource_index/rosidl_interfaces/fake_msgs"
    index.write_text(index.read_text() + "msg/Later.msg\n")
    with pytest.raises(DefinitionNotFoundError, match="fake_msgs/msg/Later"):
        message_definition("fake_msgs/msg/Later")
    assert "fake_msgs/msg/Later" not in definitions._definitions
    (overlay / "fake_msgs/msg/Later.msg").write_text("uint8 x\n")
    assert message_definition("fake_msgs/msg/Later") == ("ros2msg", "uint8 x\n")


def test_scanning_is_linear_on_pathological_files(overlay):
    # Many blank lines and many unclosed `[`: a backtracking regular expression takes
    # quadratic time on these (minutes); one pass takes well under a second.
    (overlay / "fake_msgs/msg/Blank.msg").write_text("\n" * 400_000 + "x[\n" * 100_000)
    (overlay / "ament_index/resource_index/rosidl_interfaces/fake_msgs").write_text(
        "msg/Blank.msg\n")
    clear_cache()
    started = time.perf_counter()
    encoding, text = message_definition("fake_msgs/msg/Blank")
    assert time.perf_counter() - started < 10
    assert encoding == "ros2msg" and len(text) == 700_000
