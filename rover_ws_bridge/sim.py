"""The simulated rover: realistic topics, rates and QoS, for demos, tests and the bench.

The rover drives a loop (a circle at a gently varying speed) until someone drives it: while
cmd_vel commands arrive it follows them (speed clamped to max_speed_mps, yaw rate to 1.5 rad/s;
a zero twist stands still), and cmd_vel_timeout_s after the last one it drives its loop again,
from wherever it then is. While the e-stop is engaged it stands still and ignores cmd_vel.

The motion is a chain of closed-form pieces (`RoverMotion`), each started where the previous
one left the rover, and every topic is evaluated from it at the message's time: odometry, IMU,
wheel joints and GPS agree with each other without integrating anything step by step, whatever
the rates and however late a timer fires.

Topics (relative names, so a namespace or remapping moves them) and the QoS real stacks use:

    imu                       sensor_msgs/Imu              200 Hz  sensor data (best effort)
    odom                      nav_msgs/Odometry            100 Hz  reliable, volatile, depth 10
    joint_states              sensor_msgs/JointState       100 Hz  sensor data (best effort)
    gps/fix                   sensor_msgs/NavSatFix         10 Hz  sensor data (best effort)
    battery_state             sensor_msgs/BatteryState       1 Hz  reliable, volatile, depth 10
    estop                     std_msgs/Bool            on change  reliable, transient_local, depth 1
    camera/image/compressed   sensor_msgs/CompressedImage   15 Hz  sensor data (best effort)
    cmd_vel (subscribed)      geometry_msgs/Twist                 best effort, volatile, depth 10
                              (linear.x forward speed, angular.z yaw rate; the rest is ignored)

Services (private: under the node's name, /rover_sim/... by default):

    ~/set_estop               std_srvs/SetBool   data true engages the e-stop, false releases it
    ~/reset_odometry          std_srvs/Trigger   odom's pose back to the origin (GPS, the
                                                 wheels' encoders and the IMU carry on)

The e-stop toggles by itself every estop_toggle_period_s (a demo) until set_estop is first
called: from then on an operator is in charge, for good.

Parameters settable at run time (the others, rates included, are read once at start-up):

    max_speed_mps   0-5 m/s       cmd_vel speed clamp (default 2)
    speed_mps       0-5 m/s       the loop's mean speed (default 1)
    loop_radius_m   0.1-1000 m    the loop's radius (default 10)

A new loop speed or radius takes effect from the current pose, without a jump. Values out of
range are refused, the reason naming the parameter and the allowed range.

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
from geometry_msgs.msg import Quaternion, Twist
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
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
from std_srvs.srv import SetBool, Trigger

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
# Matches reliable and best-effort publishers alike (teleop tools and dashboards use both);
# a late command is worse than a lost one, so nothing is kept for late joiners.
CMD_VEL_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.BEST_EFFORT,
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
# Commands asking for more are clamped: about 90 degrees per second, what skid-steered rovers
# of this size manage without their wheels shuddering.
MAX_YAW_RATE_RADPS = 1.5

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
    """A non-rate parameter of the sim, with its command-line option and documentation.

    `settable` ones may be changed while the sim runs (`ros2 param set`, a dashboard), within
    [minimum, maximum]; the others are read once, at start-up.
    """

    name: str
    option: str
    default: float
    minimum: float
    unit: str
    description: str
    maximum: float = math.inf
    settable: bool = False


SCALAR_PARAMETERS = (
    ScalarParameter("estop_toggle_period_s", "--estop-toggle-period", 30.0, 0.0, "SECONDS",
                    "seconds between e-stop engage/release; 0 = never toggles; stops for good "
                    "once set_estop is called"),
    ScalarParameter("loop_radius_m", "--loop-radius", 10.0, 0.1, "METRES",
                    "radius of the circle the rover drives", maximum=1000.0, settable=True),
    ScalarParameter("speed_mps", "--speed", 1.0, 0.0, "M/S",
                    "mean forward speed on the loop (varies +-20 % over a minute)",
                    maximum=5.0, settable=True),
    ScalarParameter("max_speed_mps", "--max-speed", 2.0, 0.0, "M/S",
                    "cmd_vel speeds are clamped to +-this", maximum=5.0, settable=True),
    ScalarParameter("cmd_vel_timeout_s", "--cmd-vel-timeout", 0.5, 0.01, "SECONDS",
                    "seconds without cmd_vel after which the rover drives its loop again",
                    maximum=60.0),
    ScalarParameter("battery_runtime_s", "--battery-runtime", 1800.0, 1.0, "SECONDS",
                    "seconds to drain from 100 % to the swap level (20 %), then swap"),
    ScalarParameter("gps_origin_latitude_deg", "--gps-origin-latitude", 46.5191, -90.0, "DEGREES",
                    "latitude where the loop starts", maximum=90.0),
    ScalarParameter("gps_origin_longitude_deg", "--gps-origin-longitude", 6.5668, -180.0, "DEGREES",
                    "longitude where the loop starts", maximum=180.0),
    ScalarParameter("gps_origin_altitude_m", "--gps-origin-altitude", 372.0, -1000.0, "METRES",
                    "altitude above the WGS84 ellipsoid"),
)
SETTABLE_PARAMETERS = {p.name: p for p in SCALAR_PARAMETERS if p.settable}


def number_problem(name: str, value: Any, minimum: float, maximum: float = math.inf) -> str | None:
    """Why `value` is not allowed for parameter `name`, or None if it is."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not (math.isfinite(value) and minimum <= value <= maximum)):
        allowed = (f"a number >= {minimum:g}" if maximum == math.inf
                   else f"a number in [{minimum:g}, {maximum:g}]")
        return f"parameter '{name}' = {value!r} is not allowed: expected {allowed}"
    return None


# --------------------------------------------------------------------------------------------
# Pure models: no ROS, so they are testable in microseconds.


@dataclass(frozen=True)
class Pose2D:
    """A planar pose: position and heading (counter-clockwise from +x, not wrapped)."""

    x_m: float = 0.0
    y_m: float = 0.0
    heading_rad: float = 0.0

    def advanced_by(self, step: Pose2D) -> Pose2D:
        """Where this pose ends up after moving by `step`, given in this pose's own frame."""
        cos_h, sin_h = math.cos(self.heading_rad), math.sin(self.heading_rad)
        return Pose2D(self.x_m + cos_h * step.x_m - sin_h * step.y_m,
                      self.y_m + sin_h * step.x_m + cos_h * step.y_m,
                      self.heading_rad + step.heading_rad)

    def relative_to(self, origin: Pose2D) -> Pose2D:
        """This pose seen from `origin`: the inverse of `origin.advanced_by`."""
        cos_h, sin_h = math.cos(origin.heading_rad), math.sin(origin.heading_rad)
        dx, dy = self.x_m - origin.x_m, self.y_m - origin.y_m
        return Pose2D(cos_h * dx + sin_h * dy, -sin_h * dx + cos_h * dy,
                      self.heading_rad - origin.heading_rad)


@dataclass(frozen=True)
class MotionState:
    """Where the rover is and how it moves at one instant, in the world frame (x east, y north).

    The heading is not wrapped: it is the total turn since the start, so each wheel's travel
    follows from it and the distance (`wheel_travel_m`).
    """

    x_m: float
    y_m: float
    heading_rad: float
    distance_m: float  # signed: reversing counts down
    speed_mps: float
    acceleration_mps2: float
    yaw_rate_radps: float

    @property
    def centripetal_acceleration_mps2(self) -> float:
        return self.speed_mps * self.yaw_rate_radps

    @property
    def pose(self) -> Pose2D:
        return Pose2D(self.x_m, self.y_m, self.heading_rad)


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

    def state_at(self, t_s: float) -> MotionState:
        omega = self.swing_angular_frequency
        swing = self.speed_swing_fraction
        speed = self.mean_speed_mps * (1.0 + swing * math.sin(omega * t_s))
        distance = self.mean_speed_mps * (t_s + swing * (1.0 - math.cos(omega * t_s)) / omega)
        acceleration = self.mean_speed_mps * swing * omega * math.cos(omega * t_s)
        heading = distance / self.radius_m
        return MotionState(
            x_m=self.radius_m * math.sin(heading),
            y_m=self.radius_m * (1.0 - math.cos(heading)),
            heading_rad=heading,
            distance_m=distance,
            speed_mps=speed,
            acceleration_mps2=acceleration,
            yaw_rate_radps=speed / self.radius_m,
        )


class LoopPiece:
    """The loop, carried over to start from `start`: the rover drives the same circle shape
    from wherever it is, so switching to the loop never makes it jump.

    The loop is still evaluated at the absolute time, so its speed swing keeps its phase when
    the loop is re-anchored (an odometry reset, a new radius) and the speed does not jump.
    """

    def __init__(self, loop: LoopTrajectory, start_s: float, start: MotionState) -> None:
        self.loop = loop
        self.start = start
        self._loop_at_start = loop.state_at(start_s)

    def state_at(self, t_s: float) -> MotionState:
        on_loop = self.loop.state_at(t_s)
        pose = self.start.pose.advanced_by(on_loop.pose.relative_to(self._loop_at_start.pose))
        return MotionState(
            x_m=pose.x_m, y_m=pose.y_m, heading_rad=pose.heading_rad,
            distance_m=self.start.distance_m + on_loop.distance_m - self._loop_at_start.distance_m,
            speed_mps=on_loop.speed_mps,
            acceleration_mps2=on_loop.acceleration_mps2,
            yaw_rate_radps=on_loop.yaw_rate_radps,
        )


class TwistPiece:
    """Constant speed and yaw rate from `start` (an arc, a line, or standing still) until
    `expires_s` (None: until replaced)."""

    def __init__(self, start_s: float, start: MotionState, speed_mps: float,
                 yaw_rate_radps: float, expires_s: float | None) -> None:
        self.start_s = start_s
        self.start = start
        self.speed_mps = speed_mps
        self.yaw_rate_radps = yaw_rate_radps
        self.expires_s = expires_s

    def state_at(self, t_s: float) -> MotionState:
        dt = t_s - self.start_s
        turn = self.yaw_rate_radps * dt
        # The arc's chord points half-way through the turn; sinc keeps a straight line exact.
        half_turn = turn / 2.0
        sinc = math.sin(half_turn) / half_turn if abs(half_turn) > 1e-9 else 1.0
        chord = self.speed_mps * dt * sinc
        pose = self.start.pose.advanced_by(
            Pose2D(chord * math.cos(half_turn), chord * math.sin(half_turn), turn))
        return MotionState(
            x_m=pose.x_m, y_m=pose.y_m, heading_rad=pose.heading_rad,
            distance_m=self.start.distance_m + self.speed_mps * dt,
            speed_mps=self.speed_mps,
            acceleration_mps2=0.0,
            yaw_rate_radps=self.yaw_rate_radps,
        )


class RoverMotion:
    """What the rover does: drive its loop, follow velocity commands, or stand still while the
    e-stop is engaged.

    The motion is a chain of closed-form pieces, each started from the state the previous one
    had reached at the switch. So the pose never jumps, and any instant of the current piece
    can be evaluated directly, in any order and however late a timer fires. Integrating the
    pose on every tick instead would be as simple, but would tie its accuracy to the timers'
    rates and let the topics drift apart. Times are seconds since the sim started.
    """

    def __init__(self, loop: LoopTrajectory, command_timeout_s: float,
                 max_speed_mps: float, max_yaw_rate_radps: float = MAX_YAW_RATE_RADPS) -> None:
        self.loop = loop
        self.command_timeout_s = command_timeout_s
        self.max_speed_mps = max_speed_mps
        self.max_yaw_rate_radps = max_yaw_rate_radps
        self.estop_engaged = False
        at_rest = MotionState(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        self._piece: LoopPiece | TwistPiece = LoopPiece(loop, 0.0, at_rest)

    def state_at(self, t_s: float) -> MotionState:
        piece = self._piece
        if isinstance(piece, TwistPiece) and piece.expires_s is not None \
                and t_s >= piece.expires_s:
            # The commands stopped: the loop takes over from where they had taken the rover.
            self._piece = LoopPiece(self.loop, piece.expires_s, piece.state_at(piece.expires_s))
        return self._piece.state_at(t_s)

    def command(self, t_s: float, speed_mps: float, yaw_rate_radps: float) -> bool:
        """Follow this command (clamped) until the next one or the timeout; False if ignored
        (e-stop engaged, or not finite numbers)."""
        if self.estop_engaged or not (math.isfinite(speed_mps) and math.isfinite(yaw_rate_radps)):
            return False
        self._piece = TwistPiece(
            t_s, self.state_at(t_s),
            min(max(speed_mps, -self.max_speed_mps), self.max_speed_mps),
            min(max(yaw_rate_radps, -self.max_yaw_rate_radps), self.max_yaw_rate_radps),
            expires_s=t_s + self.command_timeout_s)
        return True

    def set_estop(self, t_s: float, engaged: bool) -> bool:
        """Stand still from now on, or drive the loop again; False if that was already so."""
        if engaged == self.estop_engaged:
            return False
        state = self.state_at(t_s)
        self._piece = (TwistPiece(t_s, state, 0.0, 0.0, expires_s=None) if engaged
                       else LoopPiece(self.loop, t_s, state))
        self.estop_engaged = engaged
        return True

    def set_loop(self, t_s: float, loop: LoopTrajectory) -> None:
        """Drive `loop` from now on (from the current pose), or once the commands stop."""
        state = self.state_at(t_s)
        self.loop = loop
        if isinstance(self._piece, LoopPiece):
            self._piece = LoopPiece(loop, t_s, state)


def wheel_travel_m(distance_m: float, turned_rad: float,
                   track_width_m: float = TRACK_WIDTH_M) -> tuple[float, ...]:
    """Each wheel's ground travel, in joint order, for a skid-steered rover whose centre went
    `distance_m` while it turned `turned_rad` (left positive).

    Being linear, the same holds for rates: pass speed and yaw rate to get the wheels' speeds.
    Turning left, the left wheels are on the inside and roll less.
    """
    left = distance_m - turned_rad * track_width_m / 2.0
    right = distance_m + turned_rad * track_width_m / 2.0
    return (left, right, left, right)


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
    """Publishes a rover's telemetry, one timer per topic, and drives as cmd_vel says.

    Rates are read once, at construction (the parameters are read-only afterwards); a rate of
    0 leaves that topic without a publisher. The SETTABLE_PARAMETERS may change at run time.
    Pass `parameter_overrides=[Parameter(...)]` or a `context=` through `node_kwargs` to
    embed it.
    """

    def __init__(self, node_name: str = "rover_sim", **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self.rates_hz = {spec.topic: self._declare_number(
            spec.rate_parameter, spec.default_rate_hz, 0.0,
            f"publish rate of {spec.topic} in Hz; 0 disables it") for spec in PERIODIC_TOPICS}
        settings = {p.name: self._declare_number(p.name, p.default, p.minimum, p.description,
                                                 p.maximum, read_only=not p.settable)
                    for p in SCALAR_PARAMETERS}
        self.settings = {name: settings[name] for name in SETTABLE_PARAMETERS}
        self.estop_toggle_period_s = settings["estop_toggle_period_s"]
        self._gps_origin = (
            settings["gps_origin_latitude_deg"],
            settings["gps_origin_longitude_deg"],
            settings["gps_origin_altitude_m"],
        )

        self._motion = RoverMotion(
            LoopTrajectory(settings["loop_radius_m"], settings["speed_mps"]),
            command_timeout_s=settings["cmd_vel_timeout_s"],
            max_speed_mps=settings["max_speed_mps"])
        # Where the odometry's origin lies in the world: a reset moves the odom frame, not the
        # rover, so GPS (and the wheels' encoders) carry on unchanged.
        self._odom_origin = Pose2D()
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

        self._estop_publisher = self.create_publisher(
            Bool, "estop", LATCHED_QOS, event_callbacks=WITHOUT_EVENT_HANDLERS)
        self._publish_estop()
        self._estop_toggle_timer = (
            self.create_timer(self.estop_toggle_period_s, self._toggle_estop)
            if self.estop_toggle_period_s > 0.0 else None)

        self.create_subscription(Twist, "cmd_vel", self._on_cmd_vel, CMD_VEL_QOS)
        self.create_service(Trigger, "~/reset_odometry", self._on_reset_odometry)
        self.create_service(SetBool, "~/set_estop", self._on_set_estop)
        # Registered after the declarations: start-up values are checked by _declare_number.
        self.add_on_set_parameters_callback(self._on_set_parameters)

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

    def _declare_number(self, name: str, default: float, minimum: float, doc: str,
                        maximum: float = math.inf, read_only: bool = True) -> float:
        # dynamic_typing lets `-p imu_rate_hz:=50` (an integer) through; it is coerced here.
        descriptor = ParameterDescriptor(description=doc, read_only=read_only,
                                         dynamic_typing=True)
        value = self.declare_parameter(name, default, descriptor).value
        problem = number_problem(name, value, minimum, maximum)
        if problem is not None:
            raise ValueError(problem)
        return float(value)

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        # rclpy has already refused the read-only ones. The changes are applied here, not in a
        # post-set callback, because Humble has none; all are checked first, so a refused
        # request changes nothing.
        changes = {}
        for parameter in parameters:
            spec = SETTABLE_PARAMETERS.get(parameter.name)
            if spec is None:
                continue  # not one of ours (use_sim_time): rclpy's business
            problem = number_problem(spec.name, parameter.value, spec.minimum, spec.maximum)
            if problem is not None:
                return SetParametersResult(successful=False, reason=problem)
            changes[spec.name] = float(parameter.value)
        if changes:
            self._apply_settings(changes)
        return SetParametersResult(successful=True)

    def _apply_settings(self, changes: dict[str, float]) -> None:
        self.settings.update(changes)
        self._motion.max_speed_mps = self.settings["max_speed_mps"]
        loop = self._motion.loop
        if (loop.radius_m, loop.mean_speed_mps) != (self.settings["loop_radius_m"],
                                                    self.settings["speed_mps"]):
            self._motion.set_loop(self._elapsed_s(), LoopTrajectory(
                self.settings["loop_radius_m"], self.settings["speed_mps"]))
        self.get_logger().info(
            "set " + ", ".join(f"{name} = {value:g}" for name, value in changes.items()))

    # -- commands -----------------------------------------------------------------------------

    @property
    def estop_engaged(self) -> bool:
        return self._motion.estop_engaged

    def _on_cmd_vel(self, twist: Twist) -> None:
        if (not self._motion.command(self._elapsed_s(), twist.linear.x, twist.angular.z)
                and not self.estop_engaged):
            self.get_logger().warning(
                f"cmd_vel ignored: not finite (linear.x {twist.linear.x}, angular.z "
                f"{twist.angular.z})", throttle_duration_sec=5.0)

    def _on_reset_odometry(self, request: Trigger.Request,
                           response: Trigger.Response) -> Trigger.Response:
        self._odom_origin = self._motion.state_at(self._elapsed_s()).pose
        self.get_logger().info("odometry reset: the rover is at the origin of odom")
        response.success = True
        response.message = "odometry reset to the origin"
        return response

    def _on_set_estop(self, request: SetBool.Request,
                      response: SetBool.Response) -> SetBool.Response:
        if self._estop_toggle_timer is not None:
            self.destroy_timer(self._estop_toggle_timer)
            self._estop_toggle_timer = None
            self.get_logger().info(
                "set_estop called: an operator has taken over, automatic e-stop toggling stops")
        state = "engaged" if request.data else "released"
        response.success = True
        response.message = (f"e-stop {state}" if self._set_estop(request.data)
                            else f"e-stop already {state}")
        return response

    def _set_estop(self, engaged: bool) -> bool:
        if not self._motion.set_estop(self._elapsed_s(), engaged):
            return False
        self.get_logger().info(f"e-stop {'engaged' if engaged else 'released'}")
        self._publish_estop()
        return True

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
        state = self._motion.state_at(self._elapsed_s())
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
        state = self._motion.state_at(self._elapsed_s())
        pose = state.pose.relative_to(self._odom_origin)
        msg = self._odom_msg
        msg.pose.pose.position.x = pose.x_m
        msg.pose.pose.position.y = pose.y_m
        msg.pose.pose.orientation = yaw_quaternion(pose.heading_rad)
        msg.twist.twist.linear.x = state.speed_mps
        msg.twist.twist.angular.z = state.yaw_rate_radps
        self._stamp_and_publish(publisher, msg)

    def _publish_joint_states(self, publisher: Any) -> None:
        state = self._motion.state_at(self._elapsed_s())
        gauss = self._noise.gauss
        # Each wheel pushes a quarter of rolling resistance (against the motion, none standing
        # still) plus the force that accelerates.
        rolling_resistance_n = math.copysign(
            ROLLING_RESISTANCE_COEFFICIENT * ROVER_MASS_KG * STANDARD_GRAVITY_MPS2,
            state.speed_mps) if state.speed_mps != 0.0 else 0.0
        wheel_force = (rolling_resistance_n + ROVER_MASS_KG * state.acceleration_mps2) / len(
            WHEEL_JOINT_NAMES)
        msg = self._joint_state_msg
        msg.position = [travel / WHEEL_RADIUS_M
                        for travel in wheel_travel_m(state.distance_m, state.heading_rad)]
        msg.velocity = [speed / WHEEL_RADIUS_M
                        for speed in wheel_travel_m(state.speed_mps, state.yaw_rate_radps)]
        msg.effort = [wheel_force * WHEEL_RADIUS_M + gauss(0.0, 0.05) for _ in WHEEL_JOINT_NAMES]
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
        state = self._motion.state_at(self._elapsed_s())
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
        self._set_estop(not self.estop_engaged)


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
