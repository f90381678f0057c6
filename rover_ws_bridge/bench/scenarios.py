"""Load scenarios: what to publish, how many clients, what they subscribe to.

A scenario is data; `runner.run_scenario` is generic over it. Adding a scenario (many clients,
a slow client, a topic mix, a peer bridge) should mostly mean adding an entry here, and a field
when the runner must learn something new.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    # Bench publisher rate per topic, Hz; 0 = as fast as it can in a tight loop. None = no
    # publisher at all (the idle scenario).
    rate_hz: float | None = 200.0
    topics: tuple[str, ...] = ("/imu",)
    client_processes: int = 1
    clients_per_process: int = 1
    encoding: str = "msgpack"
    compression: str | None = None  # None: the bridge's default
    # Also run a bare rclpy subscriber (no bridge) on the same publisher: the ceiling.
    bare_subscriber: bool = False
    # Extra bridge parameters, as (name, value) pairs passed with `-p name:=value`.
    bridge_parameters: tuple[tuple[str, str], ...] = ()

    @property
    def clients(self) -> int:
        return self.client_processes * self.clients_per_process

    @property
    def is_idle(self) -> bool:
        return self.rate_hz is None


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("idle", "bridge alone: no publisher, no client", rate_hz=None,
             client_processes=0),
    Scenario("imu_200", "one client on /imu at 200 Hz, msgpack", rate_hz=200.0),
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
