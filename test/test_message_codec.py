"""Plain values <-> ROS messages (message_codec): rclpy message classes only, no node, no
sockets."""
from __future__ import annotations

import base64
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rclpy.serialization import deserialize_message

from rover_ws_bridge.ros.message_codec import (
    MessageConversionError,
    UnknownMessageType,
    from_plain,
    import_message_type,
    import_service_type,
    make_encoder,
    to_plain,
)

Twist = import_message_type("geometry_msgs/msg/Twist")
Imu = import_message_type("sensor_msgs/msg/Imu")
Image = import_message_type("sensor_msgs/msg/Image")
JointState = import_message_type("sensor_msgs/msg/JointState")
NavSatFix = import_message_type("sensor_msgs/msg/NavSatFix")
BatteryState = import_message_type("sensor_msgs/msg/BatteryState")
DiagnosticArray = import_message_type("diagnostic_msgs/msg/DiagnosticArray")
Bool = import_message_type("std_msgs/msg/Bool")
String = import_message_type("std_msgs/msg/String")
Header = import_message_type("std_msgs/msg/Header")
ByteMultiArray = import_message_type("std_msgs/msg/ByteMultiArray")
Int8MultiArray = import_message_type("std_msgs/msg/Int8MultiArray")
UInt32MultiArray = import_message_type("std_msgs/msg/UInt32MultiArray")
Int64MultiArray = import_message_type("std_msgs/msg/Int64MultiArray")

TWIST = {"linear": {"x": 0.5, "y": 0.0, "z": 0.0}, "angular": {"x": 0.0, "y": 0.0, "z": -1.25}}
STAMP = {"sec": 1700000000, "nanosec": 123456789}
COVARIANCE = [0.01, 0.0, 0.0, 0.0, 0.01, 0.0, 0.0, 0.0, 0.02]
IMU = {
    "header": {"stamp": STAMP, "frame_id": "imu_link"},
    "orientation": {"x": 0.0, "y": 0.0, "z": 0.7071, "w": 0.7071},
    "orientation_covariance": COVARIANCE,
    "angular_velocity": {"x": 0.1, "y": -0.2, "z": 0.3},
    "angular_velocity_covariance": COVARIANCE,
    "linear_acceleration": {"x": 0.0, "y": 0.0, "z": 9.81},
    "linear_acceleration_covariance": COVARIANCE,
}
PIXELS = bytes(range(256)) * 3
DIAGNOSTICS = {
    "header": {"stamp": STAMP, "frame_id": ""},
    "status": [
        {"level": b"\x00", "name": "bridge: clients", "message": "OK", "hardware_id": "rover",
         "values": [{"key": "connections", "value": "2"}]},
        {"level": b"\x02", "name": "bridge: outbox", "message": "dropping", "hardware_id": "",
         "values": [{"key": "dropped", "value": "17"}, {"key": "queued", "value": "512"}]},
    ],
}


def round_trip(message_class, plain):
    return to_plain(from_plain(message_class, plain))


def conversion_error(message_class, plain) -> MessageConversionError:
    with pytest.raises(MessageConversionError) as caught:
        from_plain(message_class, plain)
    return caught.value


# --- round trips ---------------------------------------------------------------------------

def test_twist_round_trips():
    assert round_trip(Twist, TWIST) == TWIST


def test_missing_fields_keep_the_defaults():
    assert round_trip(Twist, {"angular": {"z": 1.0}}) == {
        "linear": {"x": 0.0, "y": 0.0, "z": 0.0}, "angular": {"x": 0.0, "y": 0.0, "z": 1.0}}
    assert round_trip(Twist, {}) == round_trip(Twist, {"linear": {}})


def test_imu_round_trips_with_fixed_size_covariances():
    assert round_trip(Imu, IMU) == IMU


def test_float_fields_accept_integers():
    plain = round_trip(Imu, {"orientation": {"w": 1}, "orientation_covariance": [1] * 9})
    assert plain["orientation"]["w"] == 1.0 and isinstance(plain["orientation"]["w"], float)
    assert plain["orientation_covariance"] == [1.0] * 9


@pytest.mark.parametrize("data", [
    base64.b64encode(PIXELS).decode(),  # JSON clients
    PIXELS,  # msgpack bin
    bytearray(PIXELS),
    list(PIXELS),  # rosbridge clients that send arrays of numbers
], ids=["base64", "bytes", "bytearray", "list"])
def test_image_data_in_each_form(data):
    image = {"header": {"stamp": STAMP, "frame_id": "camera"}, "height": 3, "width": 256,
             "encoding": "mono8", "is_bigendian": 0, "step": 256, "data": data}
    assert round_trip(Image, image) == {**image, "data": PIXELS}


def test_joint_state_round_trips():
    joints = {"header": {"stamp": STAMP, "frame_id": ""},
              "name": ["wheel_left", "wheel_right", "mast_pan"],
              "position": [0.1, -0.2, 1.5], "velocity": [3.0, 3.1, 0.0], "effort": []}
    assert round_trip(JointState, joints) == joints


def test_nav_sat_fix_round_trips():
    fix = {"header": {"stamp": STAMP, "frame_id": "gps"},
           "status": {"status": -1, "service": 1},
           "latitude": 48.8584, "longitude": 2.2945, "altitude": 35.5,
           "position_covariance": COVARIANCE, "position_covariance_type": 2}
    assert round_trip(NavSatFix, fix) == fix


def test_diagnostic_array_round_trips_sequences_of_messages():
    assert round_trip(DiagnosticArray, DIAGNOSTICS) == DIAGNOSTICS


def test_byte_fields_accept_integers():
    plain = round_trip(DiagnosticArray, {"status": [{"level": 2}]})
    assert plain["status"][0]["level"] == b"\x02"


def test_bool():
    assert round_trip(Bool, {"data": True}) == {"data": True}
    assert round_trip(Bool, {"data": False}) == {"data": False}


def test_stamp_in_ros1_names():
    assert round_trip(Header, {"stamp": {"secs": 12, "nsecs": 34}, "frame_id": "map"}) == {
        "stamp": {"sec": 12, "nanosec": 34}, "frame_id": "map"}


def test_null_is_nan_for_floats_and_float_sequences():
    twist = from_plain(Twist, {"linear": {"x": None}})
    assert math.isnan(twist.linear.x)
    battery = from_plain(BatteryState, {"voltage": None, "cell_voltage": [3.7, None, 3.6]})
    assert math.isnan(battery.voltage)
    assert battery.cell_voltage[0] == pytest.approx(3.7) and math.isnan(battery.cell_voltage[1])


def test_infinity_is_allowed_in_float32():
    battery = from_plain(BatteryState, {"current": math.inf, "cell_voltage": [-math.inf, 1.0]})
    assert battery.current == math.inf and list(battery.cell_voltage) == [-math.inf, 1.0]


def test_byte_sequence_accepts_base64_bytes_and_lists():
    for data in ("AAH/", b"\x00\x01\xff", [0, 1, 255]):
        assert round_trip(ByteMultiArray, {"data": data})["data"] == b"\x00\x01\xff"


def test_integer_sequences():
    assert round_trip(Int8MultiArray, {"data": [-128, 0, 127]})["data"] == b"\x80\x00\x7f"
    assert round_trip(UInt32MultiArray, {"data": [0, 4294967295]})["data"] == [0, 4294967295]
    assert round_trip(Int64MultiArray, {"data": [-2**63, 2**63 - 1]})["data"] == [-2**63, 2**63 - 1]


@pytest.mark.parametrize(("message_class", "plain"), [
    (Twist, TWIST), (Imu, IMU), (DiagnosticArray, DIAGNOSTICS),
    (Image, {"height": 1, "width": 3, "encoding": "rgb8", "step": 3, "data": "AAECAwQF"}),
])
def test_encoder_output_deserializes_to_the_same_values(message_class, plain):
    cdr = make_encoder(message_class)(plain)
    assert isinstance(cdr, bytes)
    assert to_plain(deserialize_message(cdr, message_class)) == round_trip(message_class, plain)


@given(st.fixed_dictionaries({
    part: st.fixed_dictionaries({}, optional={axis: st.floats(allow_nan=False) for axis in "xyz"})
    for part in ("linear", "angular")}))
def test_any_twist_of_floats_round_trips(twist):
    plain = round_trip(Twist, twist)
    for part, axes in twist.items():
        for axis, value in axes.items():
            assert plain[part][axis] == value
    assert to_plain(deserialize_message(make_encoder(Twist)(twist), Twist)) == plain


# --- errors --------------------------------------------------------------------------------

def test_unknown_field_is_named_with_its_path():
    error = conversion_error(Twist, {"linear": {"x": 1.0, "q": 2.0}})
    assert error.path == "linear.q"
    assert str(error).startswith("linear.q: no such field in geometry_msgs/msg/Twist")
    assert conversion_error(Twist, {"speed": 1.0}).path == "speed"
    assert conversion_error(Twist, {1: 1.0}).path == "1"  # msgpack maps may have int keys


def test_wrong_type_is_named_with_its_path():
    error = conversion_error(Imu, {"header": {"stamp": {"sec": "abc"}}})
    assert error.path == "header.stamp.sec"
    assert str(error) == ("header.stamp.sec: expected an integer in [-2147483648, 2147483647], "
                          "got 'abc'")
    assert error.type_name == "sensor_msgs/msg/Imu"


def test_path_through_sequences_of_messages():
    plain = {"status": [{}, {}, {"values": [{"key": 7}]}]}
    assert conversion_error(DiagnosticArray, plain).path == "status[2].values[0].key"


def test_uint8_out_of_range():
    error = conversion_error(Image, {"is_bigendian": 300})
    assert error.path == "is_bigendian" and "[0, 255]" in str(error) and "300" in str(error)
    assert conversion_error(Image, {"data": [1, 2, 300]}).path == "data[2]"
    assert conversion_error(NavSatFix, {"status": {"status": 128}}).path == "status.status"


def test_integers_in_other_ranges():
    assert conversion_error(UInt32MultiArray, {"data": [1, 2**32]}).path == "data[1]"
    assert conversion_error(UInt32MultiArray, {"data": [-1]}).path == "data[0]"
    assert conversion_error(Int64MultiArray, {"data": [2**63]}).path == "data[0]"
    assert conversion_error(Header, {"stamp": {"nanosec": -1}}).path == "stamp.nanosec"


def test_bools_and_integers_do_not_mix():
    assert conversion_error(Bool, {"data": 1}).path == "data"
    assert conversion_error(Image, {"height": True}).path == "height"
    assert conversion_error(Int8MultiArray, {"data": [1, True]}).path == "data[1]"
    assert conversion_error(Twist, {"linear": {"x": False}}).path == "linear.x"
    assert conversion_error(Twist, {"linear": {"x": "1.0"}}).path == "linear.x"


def test_float32_range():
    assert conversion_error(BatteryState, {"voltage": 1e39}).path == "voltage"
    assert conversion_error(BatteryState, {"cell_voltage": [1.0, 1e39]}).path == "cell_voltage[1]"


def test_fixed_size_array_length():
    error = conversion_error(Imu, {"orientation_covariance": [0.0] * 8})
    assert error.path == "orientation_covariance" and "expected 9 items, got 8" in str(error)


def test_list_where_a_message_is_expected():
    error = conversion_error(Twist, {"linear": [1.0, 2.0, 3.0]})
    assert error.path == "linear" and "geometry_msgs/msg/Vector3" in str(error)
    assert conversion_error(Twist, [TWIST]).path == ""
    assert conversion_error(DiagnosticArray, {"status": {"name": "x"}}).path == "status"
    assert conversion_error(DiagnosticArray, {"status": ["x"]}).path == "status[0]"


@pytest.mark.parametrize("text", ["not base64!", "AAE", "AA==AA", "é"])
def test_base64_that_is_not_base64(text):
    error = conversion_error(Image, {"data": text})
    assert error.path == "data" and "base64" in str(error)


def test_strings():
    assert conversion_error(String, {"data": 5}).path == "data"
    assert conversion_error(String, {"data": "\ud800"}).path == "data"  # JSON "\ud800"
    assert conversion_error(String, {"data": "a\x00b"}).path == "data"  # C would cut it
    assert round_trip(String, {"data": "Grüße, 火星"}) == {"data": "Grüße, 火星"}


def test_bounded_string():
    NodeEntitiesInfo = import_message_type("rmw_dds_common/msg/NodeEntitiesInfo")
    assert from_plain(NodeEntitiesInfo, {"node_name": "n" * 256}).node_name == "n" * 256
    assert conversion_error(NodeEntitiesInfo, {"node_name": "n" * 257}).path == "node_name"
    # the bound is in UTF-8 bytes, as on the C side
    assert conversion_error(NodeEntitiesInfo, {"node_name": "é" * 129}).path == "node_name"


def test_bounded_sequence():
    ChangeStateEvent = import_service_type("lifecycle_msgs/srv/ChangeState").Event
    assert len(from_plain(ChangeStateEvent, {"request": [{}]}).request) == 1
    error = conversion_error(ChangeStateEvent, {"request": [{}, {}]})
    assert error.path == "request" and "at most 1" in str(error)


def test_time_names_given_twice():
    assert conversion_error(Header, {"stamp": {"sec": 1, "secs": 2}}).path == "stamp"


def test_error_messages_stay_short_for_huge_values():
    assert len(str(conversion_error(Image, {"height": "x" * 1_000_000}))) < 200
    assert len(str(conversion_error(Image, {"height": 10**4000}))) < 200
    assert len(str(conversion_error(Twist, {"x" * 100_000: 1}))) < 300


def test_conversion_error_is_a_value_error():
    assert issubclass(MessageConversionError, ValueError)
    with pytest.raises(MessageConversionError):
        make_encoder(Twist)({"linear": {"x": "fast"}})


# --- type names ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["std_srvs/msg/Trigger", "std_srvs/Trigger", "nope/srv/X",
                                  "std_srvs/srv/NoSuchService", "/srv/", "std_msgs/srv/String"])
def test_import_service_type_rejects(name):
    with pytest.raises(UnknownMessageType):
        import_service_type(name)


def test_import_message_type_rejects_services():
    with pytest.raises(UnknownMessageType):
        import_message_type("lifecycle_msgs/srv/ChangeState")


def test_trigger_request():
    pytest.importorskip("std_srvs")
    Trigger = import_service_type("std_srvs/srv/Trigger")
    assert to_plain(from_plain(Trigger.Request, {})) == {}
    assert conversion_error(Trigger.Request, {"data": True}).path == "data"
    assert isinstance(make_encoder(Trigger.Request)({}), bytes)


def test_set_bool_request():
    pytest.importorskip("std_srvs")
    SetBool = import_service_type("std_srvs/srv/SetBool")
    request = from_plain(SetBool.Request, {"data": True})
    assert isinstance(request, SetBool.Request) and request.data is True
    error = conversion_error(SetBool.Request, {"data": "yes"})
    assert error.path == "data" and error.type_name == "std_srvs/srv/SetBool_Request"
    cdr = make_encoder(SetBool.Request)({"data": True})
    assert deserialize_message(cdr, SetBool.Request).data is True
