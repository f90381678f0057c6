"""Load scenarios: what to publish, how many clients, what they subscribe to.

A scenario is data; `runner.ScenarioRun` is generic over it. Adding a scenario should mostly
mean adding an entry here, and a field when the runner must learn something new.

The specification's five scenarios are "connections at Hz each" on the IMU stream; the rest
exercise one thing each (fan-out, many clients, the rover's real topic mix, a slow client, the
ceiling, idle CPU).
"""
from __future__ import annotations

from dataclasses import dataclass

# The simulated rover's topics (rover_ws_bridge.sim, default namespace), all at their real
# rates, the e-stop (CRITICAL, latched) included.
SIM_TOPICS = ("/imu", "/odom", "/joint_states", "/gps/fix", "/battery_state",
              "/camera/image/compressed", "/estop")

# The specification's targets: the floor every scenario is held to (reported, not asserted).
TARGET_P95_MS = 50.0
TARGET_DROP_PCT = 0.1


@dataclass(frozen=True)
class LinkSpec:
    """A client behind a slow link of its own (bench/slowlink.py: a network namespace, a veth
    pair, tbf on the bridge's side)."""

    rate_kbit: int
    # The link's rate from the middle of the window on (`tc qdisc change`); None: constant.
    later_rate_kbit: int | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    # Bench publisher rate per topic, Hz; 0 = as fast as it can in a tight loop. None = no
    # publisher at all (the idle scenario). Ignored with publisher="sim" (its own rates).
    rate_hz: float | None = 200.0
    topics: tuple[str, ...] = ("/imu",)
    # "bench": bench/publisher.py (sensor_msgs/Imu, exact rate); "sim": the simulated rover
    # (every topic at its real rate and QoS), counted by bench/sim_publisher.py.
    publisher: str = "bench"
    # Extra ROS parameters of the sim, as (name, value) pairs.
    sim_parameters: tuple[tuple[str, str], ...] = ()
    client_processes: int = 1
    clients_per_process: int = 1
    # Clients (in a process of their own) that read slowly through a tiny receive buffer.
    slow_clients: int = 0
    slow_read_bytes_per_s: int = 50_000
    encoding: str = "msgpack"
    compression: str | None = None  # None: the bridge's default
    # Also run a bare rclpy subscriber (no bridge) on the same publisher: the ceiling.
    bare_subscriber: bool = False
    # Extra bridge parameters, as (name, value) pairs passed with `-p name:=value`.
    bridge_parameters: tuple[tuple[str, str], ...] = ()
    # One more client per link, each in a network namespace behind its link (needs root); the
    # bridge then listens on the first link's host address.
    links: tuple[LinkSpec, ...] = ()
    # A CPU hog (bench/cpu_hog.py) pinned to core 0, busy this share of the time: the rest of
    # the rover's software. 0 = none.
    cpu_hog_duty: float = 0.0

    @property
    def clients(self) -> int:
        """Clients held to every target (the slow ones are not among them)."""
        return self.client_processes * self.clients_per_process

    @property
    def is_idle(self) -> bool:
        return self.rate_hz is None

    @property
    def peer_capable(self) -> bool:
        """The foxglove-sdk peer takes bench-publisher (sensor_msgs/Imu) scenarios."""
        return not self.is_idle and self.publisher == "bench" and not self.slow_clients \
            and not self.links


def _imu(name: str, clients: int, rate_hz: float, processes: int = 1, note: str = "") -> Scenario:
    per_process = -(-clients // processes)
    assert per_process * processes == clients, name
    return Scenario(name, f"{clients} clients on /imu at {rate_hz:g} Hz, msgpack"
                    + (f", {note}" if note else ""), rate_hz=rate_hz,
                    client_processes=processes, clients_per_process=per_process)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("idle", "bridge alone: no publisher, no client", rate_hz=None,
             client_processes=0),
    Scenario("imu_200", "one client on /imu at 200 Hz, msgpack", rate_hz=200.0),
    # The specification's five, as connections @ Hz each.
    _imu("low_load", 5, 10.0),
    _imu("normal_load", 10, 20.0),
    _imu("high_load", 20, 20.0, processes=2),
    _imu("stress_test", 50, 10.0, processes=2),
    _imu("burst_test", 10, 100.0, processes=2),
    _imu("fanout_1000", 10, 1000.0, processes=2),
    _imu("clients_100", 100, 200.0, processes=4, note="25 asyncio clients per process"),
    Scenario("rover_mix", "the simulated rover (every topic at its real rate), 3 clients on "
             "all topics, msgpack + lz4", rate_hz=0.0, topics=SIM_TOPICS, publisher="sim",
             sim_parameters=(("estop_toggle_period_s", "0.5"),), clients_per_process=3,
             compression="lz4"),
    Scenario("slow_client", "the rover mix, 3 fast clients and one that reads 50 kB/s through "
             "a 4 KiB receive buffer; e-stop toggling every 0.5 s", rate_hz=0.0,
             topics=SIM_TOPICS, publisher="sim",
             sim_parameters=(("estop_toggle_period_s", "0.5"),), clients_per_process=3,
             slow_clients=1, compression="lz4"),
    Scenario("slow_link", "the rover mix, one client on loopback and three behind tbf links, "
             "each in a network namespace: 2 Mbit/s, 400 kbit/s, and 2 Mbit/s halved to 1 "
             "Mbit/s mid-window; e-stop toggling every 0.1 s (needs root)", rate_hz=0.0,
             topics=SIM_TOPICS, publisher="sim",
             sim_parameters=(("estop_toggle_period_s", "0.1"),), compression="lz4",
             links=(LinkSpec(2000), LinkSpec(400), LinkSpec(2000, 1000))),
    Scenario("slow_link_20k", "the rover mix, one client on loopback and two behind tbf links "
             "of 20 kB/s (160 kbit/s), one of them from 40 kB/s halved mid-window; e-stop "
             "toggling every 0.1 s (needs root)", rate_hz=0.0, topics=SIM_TOPICS,
             publisher="sim", sim_parameters=(("estop_toggle_period_s", "0.1"),),
             compression="lz4", links=(LinkSpec(160), LinkSpec(320, 160))),
    Scenario("busy_rover", "10 clients on /imu at 200 Hz, msgpack, beside a CPU hog busy 80 % "
             "of core 0 (the rest of the rover's software)", rate_hz=200.0,
             client_processes=2, clients_per_process=5, cpu_hog_duty=0.8),
    Scenario("max_rate", "publisher in a tight loop, one client through the bridge, and a bare "
             "rclpy subscriber on the same publisher as the ceiling", rate_hz=0.0,
             bare_subscriber=True),
)

BY_NAME = {s.name: s for s in SCENARIOS}


def select(names: list[str] | None) -> list[Scenario]:
    """Scenarios named in `names` (items may be comma lists), in the order given; all if none."""
    if not names:
        return list(SCENARIOS)
    chosen: list[Scenario] = []
    for item in names:
        for name in filter(None, (n.strip() for n in item.split(","))):
            if name not in BY_NAME:
                raise KeyError(f"unknown scenario {name!r}; known: {', '.join(BY_NAME)}")
            if BY_NAME[name] not in chosen:
                chosen.append(BY_NAME[name])
    return chosen
