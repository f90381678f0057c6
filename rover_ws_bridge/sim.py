"""The simulated rover: realistic topics, rates and QoS, for demos, tests and the bench.

The rover drives a loop (a circle at a gently varying speed). Every topic is derived from the
same closed-form trajectory evaluated at the message's time, so odometry, IMU, wheel joints and
GPS agree with each other without integrating anything, whatever the rates and however late a
timer fires.

Topics (relative names, so a namespace or remapping moves them) and the QoS real stacks use:

    imu                       sensor_msgs/Imu              200 Hz  sensor data (best effort)
    odom                      nav_msgs/Odometry            100 Hz  reliable, volatile, depth 10
    joint_states              sensor_msgs/JointState       100 Hz  sensor data (best effort)
    gps/fix                   sensor_msgs/NavSatFix         10 Hz  sensor data (best effort)
    battery_state             sensor_msgs/BatteryState       1 Hz  reliable, volatile, depth 10
    estop                     std_msgs/Bool            on change  reliable, transient_local, depth 1
    camera/image/compressed   sensor_msgs/CompressedImage   15 Hz  sensor data (best effort)

Every header.stamp is read from the node's clock right before publishing: the bench measures
latency from it.

`SimulatedRover` is a plain node (no spinning of its own) so a process can add it to its own
executor; `main()` is the `rover-sim` console script.
"""
from __future__ import annotations

import argparse
import array
import math
import os
import random
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import rclpy
from geometry_msgs.msg import Quaternion
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.signals import SignalHandlerOptions
from rclpy.utilities import remove_ros_args
from sensor_msgs.msg import BatteryState, CompressedImage, Imu, JointState, NavSatFix, NavSatStatus
from std_msgs.msg import Bool

from rover_ws_bridge import sim_jpeg
from rover_ws_bridge.ros.qos_events import no_publisher_events

STANDARD_GRAVITY_MPS2 = 9.80665
WGS84_EQUATORIAL_RADIUS_M = 6_378_137.0

RELIABLE_VOLATILE_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
# Latched: a subscriber that joins late still learns the current e-stop state.
LATCHED_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)

# rclpy gives every publisher handlers that log incompatible QoS/type by default; each is one
# more entity in the executor's wait set, rebuilt in Python on every wake-up, which cost the
# sim about a third of its CPU. Subscribers still log the mismatch on their side.
WITHOUT_EVENT_HANDLERS = no_publisher_events()

BASE_FRAME = "base_link"
ODOM_FRAME = "odom"
IMU_FRAME = "imu_link"
GPS_FRAME = "gps"
CAMERA_FRAME = "camera"

WHEEL_JOINT_NAMES = (
    "front_left_wheel_joint",
    "front_right_wheel_joint",
    "rear_left_wheel_joint",
    "rear_right_wheel_joint",
)
WHEEL_RADIUS_M = 0.15
TRACK_WIDTH_M = 0.6
ROVER_MASS_KG = 50.0
ROLLING_RESISTANCE_COEFFICIENT = 0.05

BATTERY_CELLS = 6
BATTERY_CAPACITY_AH = 20.0
# The simulated pack is swapped for a full one when it reaches this charge, so a sim left
# running for hours keeps showing a plausible, moving battery.
BATTERY_SWAP_AT_PERCENTAGE = 0.2

CAMERA_FRAME_MIN_BYTES = 31_000  # above 30 KiB
CAMERA_FRAME_MAX_BYTES = 59_000  # below 60 kB
CAMERA_LOOP_FRAMES = 48  # 3.2 s of pictures at 15 Hz, encoded at start-up


@dataclass(frozen=True)
class TopicSpec:
    """One periodic topic of the sim: its parameter, command-line option and default rate."""

    topic: str
    rate_parameter: str
    rate_option: str
    default_rate_hz: float


PERIODIC_TOPICS = (
    TopicSpec("imu", "imu_rate_hz", "--imu-rate", 200.0),
    TopicSpec("odom", "odom_rate_hz", "--odom-rate", 100.0),
    TopicSpec("joint_states", "joint_states_rate_hz", "--joint-states-rate", 100.0),
    TopicSpec("gps/fix", "gps_rate_hz", "--gps-rate", 10.0),
    TopicSpec("battery_state", "battery_rate_hz", "--battery-rate", 1.0),
    TopicSpec("camera/image/compressed", "camera_rate_hz", "--camera-rate", 15.0),
)


@dataclass(frozen=True)
class ScalarParameter:
    """A non-rate parameter of the sim, with its command-line option and documentation."""

    name: str
    option: str
    default: float
    minimum: float
    unit: str
    description: str


SCALAR_PARAMETERS = (
    ScalarParameter("estop_toggle_period_s", "--estop-toggle-period", 30.0, 0.0, "SECONDS",
                    "seconds between e-stop engage/release; 0 = never toggles"),
    ScalarParameter("loop_radius_m", "--loop-radius", 10.0, 0.1, "METRES",
                    "radius of the circle the rover drives"),
    ScalarParameter("speed_mps", "--speed", 1.0, 0.0, "M/S",
                    "mean forward speed (varies +-20 % over a minute)"),
    ScalarParameter("battery_runtime_s", "--battery-runtime", 1800.0, 1.0, "SECONDS",
                    "seconds to drain from 100 % to the swap level (20 %), then swap"),
    ScalarParameter("gps_origin_latitude_deg", "--gps-origin-latitude", 46.5191, -90.0, "DEGREES",
                    "latitude where the loop starts"),
    ScalarParameter("gps_origin_longitude_deg", "--gps-origin-longitude", 6.5668, -180.0, "DEGREES",
                    "longitude where the loop starts"),
    ScalarParameter("gps_origin_altitude_m", "--gps-origin-altitude", 372.0, -1000.0, "METRES",
                    "altitude above the WGS84 ellipsoid"),
)


# --------------------------------------------------------------------------------------------
# Pure models: no ROS, so they are testable in microseconds.


@dataclass(frozen=True)
class LoopState:
    """Where the rover is on its loop at one instant, in the odom frame (x east, y north)."""

    x_m: float
    y_m: float
    heading_rad: float
    distance_m: float
    speed_mps: float
    acceleration_mps2: float
    yaw_rate_radps: float

    @property
    def centripetal_acceleration_mps2(self) -> float:
        return self.speed_mps * self.yaw_rate_radps


class LoopTrajectory:
    """A counter-clockwise circle started at the origin heading east (+x).

    The speed swings sinusoidally around its mean so that the IMU sees some longitudinal
    acceleration too; distance is the exact integral of that speed, hence closed form.
    """

    def __init__(
        self,
        radius_m: float = 10.0,
        mean_speed_mps: float = 1.0,
        speed_swing_fraction: float = 0.2,
        speed_swing_period_s: float = 60.0,
    ) -> None:
        if radius_m <= 0.0:
            raise ValueError(f"loop radius must be positive, got {radius_m}")
        self.radius_m = radius_m
        self.mean_speed_mps = mean_speed_mps
        self.speed_swing_fraction = speed_swing_fraction
        self.swing_angular_frequency = 2.0 * math.pi / speed_swing_period_s

    def state_at(self, t_s: float) -> LoopState:
        omega = self.swing_angular_frequency
        swing = self.speed_swing_fraction
        speed = self.mean_speed_mps * (1.0 + swing * math.sin(omega * t_s))
        distance = self.mean_speed_mps * (t_s + swing * (1.0 - math.cos(omega * t_s)) / omega)
        acceleration = self.mean_speed_mps * swing * omega * math.cos(omega * t_s)
        heading = distance / self.radius_m
        return LoopState(
            x_m=self.radius_m * math.sin(heading),
            y_m=self.radius_m * (1.0 - math.cos(heading)),
            heading_rad=math.atan2(math.sin(heading), math.cos(heading)),
            distance_m=distance,
            speed_mps=speed,
            acceleration_mps2=acceleration,
            yaw_rate_radps=speed / self.radius_m,
        )


def wheel_surface_ratios(
    radius_m: float, track_width_m: float = TRACK_WIDTH_M
) -> tuple[float, ...]:
    """Each wheel's ground distance per metre the rover's centre travels, in joint order.

    Turning left, the left wheels run on the inner circle; the ratio is constant on a circle,
    so a wheel's angle is simply the rover's distance times this ratio over the wheel radius.
    """
    inner = 1.0 - track_width_m / (2.0 * radius_m)
    outer = 1.0 + track_width_m / (2.0 * radius_m)
    return (inner, outer, inner, outer)


def yaw_quaternion(yaw_rad: float) -> Quaternion:
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw_rad / 2.0), w=math.cos(yaw_rad / 2.0))


def enu_offset_to_geodetic(
    east_m: float, north_m: float, origin_latitude_deg: float, origin_longitude_deg: float
) -> tuple[float, float]:
    """Small offsets on a local tangent plane: accurate to centimetres over a few hundred m."""
    latitude = origin_latitude_deg + math.degrees(north_m / WGS84_EQUATORIAL_RADIUS_M)
    longitude = origin_longitude_deg + math.degrees(
        east_m / (WGS84_EQUATORIAL_RADIUS_M * math.cos(math.radians(origin_latitude_deg)))
    )
    return latitude, longitude


@dataclass(frozen=True)
class BatteryReading:
    percentage: float
    voltage_v: float
    current_a: float
    cell_voltages_v: tuple[float, ...]


class DischargingBattery:
    """A 6S LiPo drained at constant current, swapped for a full one at 20 %."""

    def __init__(self, runtime_s: float = 1800.0) -> None:
        self.runtime_s = runtime_s
        usable_ah = BATTERY_CAPACITY_AH * (1.0 - BATTERY_SWAP_AT_PERCENTAGE)
        self.discharge_current_a = usable_ah * 3600.0 / runtime_s

    def reading_at(self, t_s: float) -> BatteryReading:
        fraction_of_runtime = (max(t_s, 0.0) % self.runtime_s) / self.runtime_s
        percentage = 1.0 - (1.0 - BATTERY_SWAP_AT_PERCENTAGE) * fraction_of_runtime
        # A roughly linear LiPo curve: 4.20 V per cell full, about 3.68 V at 20 %.
        cell_voltage = 3.55 + 0.65 * percentage
        cells = (cell_voltage,) * BATTERY_CELLS
        return BatteryReading(
            percentage=percentage,
            voltage_v=cell_voltage * BATTERY_CELLS,
            current_a=-self.discharge_current_a,  # ROS convention: negative while discharging
            cell_voltages_v=cells,
        )


class SyntheticCameraFrames:
    """Camera payloads that are real JPEG pictures, sized like the rover's camera's frames.

    A loop of synthetic views is encoded once (`sim_jpeg`, about half a second); each
    frame is the next picture of the loop with a comment segment after its JFIF header that
    carries the frame number and filler bytes, which decoders skip. The filler brings each
    frame to a size drawn in [min_bytes, max_bytes], so consecutive frames differ in size and
    content, as compressed video does, at the cost of a copy per frame.
    """

    def __init__(
        self,
        min_bytes: int = CAMERA_FRAME_MIN_BYTES,
        max_bytes: int = CAMERA_FRAME_MAX_BYTES,
        rng: random.Random | None = None,
        loop_frames: int = CAMERA_LOOP_FRAMES,
    ) -> None:
        self.pictures = [sim_jpeg.split_after_app0(jpeg)
                         for jpeg in sim_jpeg.encode_camera_loop(loop_frames)]
        largest = max(len(head) + len(tail) for head, tail in self.pictures)
        # Room for the comment's marker, length and frame number.
        if not largest + 64 <= min_bytes <= max_bytes:
            raise ValueError(f"frame size range [{min_bytes}, {max_bytes}] is not valid for "
                             f"pictures of up to {largest} bytes")
        self.min_bytes = min_bytes
        self.max_bytes = max_bytes
        self._rng = rng or random.Random()
        self._pool = os.urandom(2 * max_bytes)
        self.frame_count = 0

    def next_frame(self) -> bytes:
        head, tail = self.pictures[self.frame_count % len(self.pictures)]
        self.frame_count += 1
        label = b"rover-sim frame %010d\n" % self.frame_count
        room = self._rng.randint(self.min_bytes, self.max_bytes) - len(head) - len(tail)
        # Each comment segment spends 4 bytes on its marker and length.
        segments = -(-room // (sim_jpeg.COM_MAX_PAYLOAD + 4))
        filler = room - 4 * segments - len(label)
        offset = self._rng.randrange(len(self._pool) - filler)
        comment = sim_jpeg.comment_segments(label + self._pool[offset:offset + filler])
        return b"".join((head, comment, tail))


# --------------------------------------------------------------------------------------------
# The ROS node.


class SimulatedRover(Node):
    """Publishes a rover's telemetry; one timer per topic, rates from ROS parameters.

    Rates are read once, at construction (the parameters are read-only afterwards); a rate of
    0 leaves that topic without a publisher. Pass `parameter_overrides=[Parameter(...)]` or a
    `context=` through `node_kwargs` to embed it.
    """

    def __init__(self, node_name: str = "rover_sim", **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self.rates_hz = {spec.topic: self._declare_number(
            spec.rate_parameter, spec.default_rate_hz, 0.0,
            f"publish rate of {spec.topic} in Hz; 0 disables it") for spec in PERIODIC_TOPICS}
        settings = {p.name: self._declare_number(p.name, p.default, p.minimum, p.description)
                    for p in SCALAR_PARAMETERS}
        self.estop_toggle_period_s = settings["estop_toggle_period_s"]
        self._gps_origin = (
            settings["gps_origin_latitude_deg"],
            settings["gps_origin_longitude_deg"],
            settings["gps_origin_altitude_m"],
        )

        self._trajectory = LoopTrajectory(settings["loop_radius_m"], settings["speed_mps"])
        self._wheel_ratios = wheel_surface_ratios(settings["loop_radius_m"])
        self._battery = DischargingBattery(settings["battery_runtime_s"])
        self._noise = random.Random()
        # Encoding the camera's pictures takes a moment at start-up: only if they are wanted.
        self._camera_frames: SyntheticCameraFrames | None = (
            SyntheticCameraFrames(rng=self._noise)
            if self.rates_hz["camera/image/compressed"] > 0.0 else None)
        self._start_ns = self.get_clock().now().nanoseconds

        # Messages are built once and refreshed in place: constant fields (frames, names,
        # covariances) then cost nothing per publish, and publish() serializes immediately.
        self._imu_msg = self._new_imu_msg()
        self._odom_msg = self._new_odom_msg()
        self._joint_state_msg = JointState(name=list(WHEEL_JOINT_NAMES))
        self._joint_state_msg.header.frame_id = BASE_FRAME
        self._gps_msg = self._new_gps_msg()
        self._battery_msg = self._new_battery_msg()
        self._camera_msg = CompressedImage(format="jpeg")
        self._camera_msg.header.frame_id = CAMERA_FRAME

        publish_callbacks: dict[str, tuple[type, QoSProfile, Callable[[Any], None]]] = {
            "imu": (Imu, qos_profile_sensor_data, self._publish_imu),
            "odom": (Odometry, RELIABLE_VOLATILE_QOS, self._publish_odom),
            "joint_states": (JointState, qos_profile_sensor_data, self._publish_joint_states),
            "gps/fix": (NavSatFix, qos_profile_sensor_data, self._publish_gps),
            "battery_state": (BatteryState, RELIABLE_VOLATILE_QOS, self._publish_battery),
            "camera/image/compressed": (
                CompressedImage, qos_profile_sensor_data, self._publish_camera),
        }
        self.publishers_by_topic: dict[str, Any] = {}
        for topic, rate_hz in self.rates_hz.items():
            if rate_hz <= 0.0:
                continue
            msg_type, qos, publish = publish_callbacks[topic]
            publisher = self.create_publisher(
                msg_type, topic, qos, event_callbacks=WITHOUT_EVENT_HANDLERS)
            self.publishers_by_topic[topic] = publisher
            self.create_timer(1.0 / rate_hz, self._timer_callback(publish, publisher))

        self.estop_engaged = False
        self._estop_publisher = self.create_publisher(
            Bool, "estop", LATCHED_QOS, event_callbacks=WITHOUT_EVENT_HANDLERS)
        self._publish_estop()
        if self.estop_toggle_period_s > 0.0:
            self.create_timer(self.estop_toggle_period_s, self._toggle_estop)

    @staticmethod
    def _timer_callback(publish: Callable[[Any], None], publisher: Any) -> Callable[[], None]:
        # A plain closure: recent rclpy inspects the callback's signature on every tick (to
        # pass TimerInfo if asked for), which costs 4x more on a functools.partial.
        return lambda: publish(publisher)

    def publishing_summary(self) -> str:
        """One line naming each resolved topic and its rate, for the start-up message."""
        parts = []
        for spec in PERIODIC_TOPICS:
            publisher = self.publishers_by_topic.get(spec.topic)
            if publisher is not None:
                parts.append(f"{publisher.topic_name}@{self.rates_hz[spec.topic]:g}Hz")
        toggle = (f"toggles every {self.estop_toggle_period_s:g}s"
                  if self.estop_toggle_period_s > 0.0 else "never toggles")
        parts.append(f"{self._estop_publisher.topic_name} (latched, {toggle})")
        return ", ".join(parts)

    # -- parameters ---------------------------------------------------------------------------

    def _declare_number(self, name: str, default: float, minimum: float, doc: str) -> float:
        # dynamic_typing lets `-p imu_rate_hz:=50` (an integer) through; it is coerced here.
        descriptor = ParameterDescriptor(description=doc, read_only=True, dynamic_typing=True)
        value = self.declare_parameter(name, default, descriptor).value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"parameter '{name}' = {value!r} is not allowed: expected a number")
        if not math.isfinite(value) or value < minimum:
            raise ValueError(
                f"parameter '{name}' = {value!r} is not allowed: expected a number >= {minimum:g}")
        return float(value)

    # -- state --------------------------------------------------------------------------------

    def _elapsed_s(self) -> float:
        return (self.get_clock().now().nanoseconds - self._start_ns) * 1e-9

    def _stamp_and_publish(self, publisher: Any, msg: Any) -> None:
        msg.header.stamp = self.get_clock().now().to_msg()
        publisher.publish(msg)

    # -- per-topic publishing -----------------------------------------------------------------

    @staticmethod
    def _new_imu_msg() -> Imu:
        msg = Imu()
        msg.header.frame_id = IMU_FRAME
        msg.orientation_covariance = [1e-4, 0.0, 0.0, 0.0, 1e-4, 0.0, 0.0, 0.0, 4e-4]
        msg.angular_velocity_covariance = [4e-6, 0.0, 0.0, 0.0, 4e-6, 0.0, 0.0, 0.0, 4e-6]
        msg.linear_acceleration_covariance = [4e-4, 0.0, 0.0, 0.0, 4e-4, 0.0, 0.0, 0.0, 4e-4]
        return msg

    def _publish_imu(self, publisher: Any) -> None:
        state = self._trajectory.state_at(self._elapsed_s())
        gauss = self._noise.gauss
        msg = self._imu_msg
        msg.orientation = yaw_quaternion(state.heading_rad + gauss(0.0, 0.005))
        msg.angular_velocity.x = gauss(0.0, 0.002)
        msg.angular_velocity.y = gauss(0.0, 0.002)
        msg.angular_velocity.z = state.yaw_rate_radps + gauss(0.0, 0.002)
        # The accelerometer measures specific force: along-track acceleration on x, the
        # centripetal pull towards the loop's centre (to the left) on y, gravity's reaction on z.
        msg.linear_acceleration.x = state.acceleration_mps2 + gauss(0.0, 0.02)
        msg.linear_acceleration.y = state.centripetal_acceleration_mps2 + gauss(0.0, 0.02)
        msg.linear_acceleration.z = STANDARD_GRAVITY_MPS2 + gauss(0.0, 0.02)
        self._stamp_and_publish(publisher, msg)

    @staticmethod
    def _new_odom_msg() -> Odometry:
        msg = Odometry()
        msg.header.frame_id = ODOM_FRAME
        msg.child_frame_id = BASE_FRAME
        pose_variances = (0.01, 0.01, 1e6, 1e6, 1e6, 0.003)  # planar: z, roll, pitch unknown
        twist_variances = (0.001, 0.001, 1e6, 1e6, 1e6, 0.001)
        msg.pose.covariance = [pose_variances[i // 6] if i % 7 == 0 else 0.0 for i in range(36)]
        msg.twist.covariance = [twist_variances[i // 6] if i % 7 == 0 else 0.0 for i in range(36)]
        return msg

    def _publish_odom(self, publisher: Any) -> None:
        state = self._trajectory.state_at(self._elapsed_s())
        msg = self._odom_msg
        msg.pose.pose.position.x = state.x_m
        msg.pose.pose.position.y = state.y_m
        msg.pose.pose.orientation = yaw_quaternion(state.heading_rad)
        msg.twist.twist.linear.x = state.speed_mps
        msg.twist.twist.angular.z = state.yaw_rate_radps
        self._stamp_and_publish(publisher, msg)

    def _publish_joint_states(self, publisher: Any) -> None:
        state = self._trajectory.state_at(self._elapsed_s())
        gauss = self._noise.gauss
        # Each wheel pushes a quarter of rolling resistance plus the force that accelerates.
        wheel_force = (ROLLING_RESISTANCE_COEFFICIENT * ROVER_MASS_KG * STANDARD_GRAVITY_MPS2
                       + ROVER_MASS_KG * state.acceleration_mps2) / len(WHEEL_JOINT_NAMES)
        msg = self._joint_state_msg
        msg.position = [state.distance_m * ratio / WHEEL_RADIUS_M for ratio in self._wheel_ratios]
        msg.velocity = [state.speed_mps * ratio / WHEEL_RADIUS_M for ratio in self._wheel_ratios]
        msg.effort = [wheel_force * WHEEL_RADIUS_M + gauss(0.0, 0.05) for _ in self._wheel_ratios]
        self._stamp_and_publish(publisher, msg)

    def _new_gps_msg(self) -> NavSatFix:
        msg = NavSatFix()
        msg.header.frame_id = GPS_FRAME
        msg.status.status = NavSatStatus.STATUS_FIX
        msg.status.service = NavSatStatus.SERVICE_GPS | NavSatStatus.SERVICE_GALILEO
        msg.position_covariance = [0.25, 0.0, 0.0, 0.0, 0.25, 0.0, 0.0, 0.0, 1.0]
        msg.position_covariance_type = NavSatFix.COVARIANCE_TYPE_DIAGONAL_KNOWN
        return msg

    def _publish_gps(self, publisher: Any) -> None:
        state = self._trajectory.state_at(self._elapsed_s())
        gauss = self._noise.gauss
        origin_latitude, origin_longitude, origin_altitude = self._gps_origin
        msg = self._gps_msg
        msg.latitude, msg.longitude = enu_offset_to_geodetic(
            state.x_m + gauss(0.0, 0.5), state.y_m + gauss(0.0, 0.5),
            origin_latitude, origin_longitude)
        msg.altitude = origin_altitude + gauss(0.0, 1.0)
        self._stamp_and_publish(publisher, msg)

    @staticmethod
    def _new_battery_msg() -> BatteryState:
        msg = BatteryState()
        msg.header.frame_id = BASE_FRAME
        msg.capacity = BATTERY_CAPACITY_AH
        msg.design_capacity = BATTERY_CAPACITY_AH
        msg.power_supply_status = BatteryState.POWER_SUPPLY_STATUS_DISCHARGING
        msg.power_supply_health = BatteryState.POWER_SUPPLY_HEALTH_GOOD
        msg.power_supply_technology = BatteryState.POWER_SUPPLY_TECHNOLOGY_LIPO
        msg.present = True
        msg.location = "main_bay"
        msg.serial_number = "SIM-6S-20AH"
        return msg

    def _publish_battery(self, publisher: Any) -> None:
        reading = self._battery.reading_at(self._elapsed_s())
        gauss = self._noise.gauss
        msg = self._battery_msg
        msg.percentage = reading.percentage
        msg.charge = reading.percentage * BATTERY_CAPACITY_AH
        msg.voltage = reading.voltage_v + gauss(0.0, 0.02)
        msg.current = reading.current_a + gauss(0.0, 0.3)
        msg.temperature = 31.0 + gauss(0.0, 0.1)
        msg.cell_voltage = [v + gauss(0.0, 0.003) for v in reading.cell_voltages_v]
        msg.cell_temperature = [31.0] * BATTERY_CELLS
        self._stamp_and_publish(publisher, msg)

    def _publish_camera(self, publisher: Any) -> None:
        msg = self._camera_msg
        assert self._camera_frames is not None  # this timer exists only with the frames
        # An array.array is taken as-is by every rclpy release; a bytes object is validated
        # element by element on older ones (about a millisecond per frame).
        msg.data = array.array("B", self._camera_frames.next_frame())
        self._stamp_and_publish(publisher, msg)

    def _publish_estop(self) -> None:
        self._estop_publisher.publish(Bool(data=self.estop_engaged))

    def _toggle_estop(self) -> None:
        self.estop_engaged = not self.estop_engaged
        self.get_logger().info(f"e-stop {'engaged' if self.estop_engaged else 'released'}")
        self._publish_estop()


# --------------------------------------------------------------------------------------------
# The `rover-sim` console script.

PROGRAM_NAME = "rover-sim"


def _option_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM_NAME,
        description="Simulated rover: publishes IMU, odometry, joint states, GPS, battery, "
        "e-stop and camera topics with realistic rates and QoS. Options override the ROS "
        "parameters of the same meaning; `--ros-args ...` is passed to ROS.",
    )
    for spec in PERIODIC_TOPICS:
        parser.add_argument(spec.rate_option, type=float, metavar="HZ", dest=spec.rate_parameter,
                            help=f"rate of {spec.topic} (default {spec.default_rate_hz:g}, "
                            "0 disables it)")
    for parameter in SCALAR_PARAMETERS:
        help_text = f"{parameter.description} (default {parameter.default:g})"
        parser.add_argument(parameter.option, type=float, metavar=parameter.unit,
                            dest=parameter.name, help=help_text.replace("%", "%%"))
    return parser


def _parameter_overrides(options: argparse.Namespace) -> list[Parameter]:
    names = [spec.rate_parameter for spec in PERIODIC_TOPICS] + [p.name for p in SCALAR_PARAMETERS]
    return [Parameter(name, value=getattr(options, name))
            for name in names if getattr(options, name) is not None]


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    own_arguments = remove_ros_args(args=[PROGRAM_NAME, *arguments])[1:]
    options = _option_parser().parse_args(own_arguments)

    # Signals only write to a pipe: the main thread sleeps on it, and nothing else that a signal
    # handler could interrupt mid-way (locks, rclpy) is touched from the handler.
    stop_reader, stop_writer = os.pipe()
    os.set_blocking(stop_writer, False)

    def request_stop(signum: int, frame: Any) -> None:
        try:
            os.write(stop_writer, b"s")
        except BlockingIOError:
            pass  # the pipe is full of earlier requests; one is enough

    previous_handlers = {sig: signal.signal(sig, request_stop)
                         for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        rclpy.init(args=[PROGRAM_NAME, *arguments],
                   signal_handler_options=SignalHandlerOptions.NO)
        try:
            rover = SimulatedRover(parameter_overrides=_parameter_overrides(options))
        except ValueError as error:
            print(f"{PROGRAM_NAME}: {error}", file=sys.stderr, flush=True)
            rclpy.try_shutdown()
            return 2
        print(f"{PROGRAM_NAME}: publishing {rover.publishing_summary()}", flush=True)
        return _spin_until_stop_requested(rover, stop_reader, stop_writer)
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
        os.close(stop_reader)
        os.close(stop_writer)


def _spin_until_stop_requested(rover: SimulatedRover, stop_reader: int, stop_writer: int) -> int:
    """Spin on a worker thread until the pipe is written; then shut down in the safe order.

    The main thread must stay free to run the signal handler: a Python handler only runs
    when the main thread executes bytecode, which it does not while blocked in rcl_wait.
    """
    executor = SingleThreadedExecutor()
    executor.add_node(rover)
    keep_spinning = threading.Event()
    keep_spinning.set()
    # Triggering this wakes spin_once() at once, so the worker needs no polling timeout.
    wake_executor = rover.create_guard_condition(lambda: None)
    spin_errors: list[BaseException] = []

    def spin() -> None:
        try:
            while keep_spinning.is_set():
                executor.spin_once()
        except BaseException as error:  # reported by the main thread, after a clean shutdown
            spin_errors.append(error)
        finally:
            if keep_spinning.is_set():  # died on its own: wake the main thread to clean up
                try:
                    os.write(stop_writer, b"e")
                except BlockingIOError:
                    pass

    spinner = threading.Thread(target=spin, name="rover-sim-executor")
    spinner.start()
    try:
        os.read(stop_reader, 1)
    finally:
        keep_spinning.clear()
        wake_executor.trigger()
        spinner.join()
        executor.shutdown()
        rover.destroy_node()
        rclpy.try_shutdown()
    if spin_errors:
        print(f"{PROGRAM_NAME}: executor stopped: {spin_errors[0]!r}", file=sys.stderr,
              flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
