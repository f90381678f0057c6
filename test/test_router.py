"""Router and handoff: ROS-free, socket-free (a fake ROS link, fake sessions)."""
from __future__ import annotations

import asyncio
import threading

import msgpack

from rover_ws_bridge.priority import Priority
from rover_ws_bridge.streaming.handoff import Handoff
from rover_ws_bridge.streaming.router import Router
from rover_ws_bridge.streaming.topics import TopicDescription
from rover_ws_bridge.wire.frame import Encoding


class FakeRos:
    def __init__(self):
        self.wanted = []
        self.decodes = 0

    def set_wanted(self, names):
        self.wanted.append(set(names))

    def decoder_for(self, type_name):
        def decode(cdr):
            self.decodes += 1
            return {"value": cdr.decode()}
        return decode


class FakeSession:
    def __init__(self):
        self.records = []
        self.changes = []

    def enqueue(self, record):
        self.records.append(record)

    def topics_changed(self, added, changed, removed):
        self.changes.append((added, changed, removed))


IMU = TopicDescription("/imu", "sensor_msgs/msg/Imu", Priority.NORMAL)
ESTOP = TopicDescription("/estop", "std_msgs/msg/Bool", Priority.CRITICAL, transient_local=True)


def test_fan_out_decodes_once_and_encodes_once_per_encoding():
    async def scenario():
        ros = FakeRos()
        router = Router(ros, unsubscribe_grace_s=0.05)
        router.update_topics([IMU])
        sessions = [FakeSession() for _ in range(5)]
        for i, s in enumerate(sessions):
            router.add_session(s)
            router.subscribe(s, "/imu", Encoding.CDR if i == 0 else Encoding.MSGPACK)
        router.dispatch([("/imu", b"a", 10, 1), ("/imu", b"b", 20, 2)])
        assert ros.decodes == 2  # once per message, for 4 msgpack clients
        data = [r.data for r in sessions[1].records]
        assert data == [msgpack.packb({"value": "a"}), msgpack.packb({"value": "b"})]
        assert sessions[2].records[0].data is sessions[1].records[0].data
        assert [r.data for r in sessions[0].records] == [b"a", b"b"]
        assert sessions[0].records[0].priority == Priority.NORMAL
    asyncio.run(scenario())


def test_lazy_wanted_set_with_grace_period():
    async def scenario():
        ros = FakeRos()
        router = Router(ros, unsubscribe_grace_s=0.05)
        router.update_topics([IMU, ESTOP])
        a, b = FakeSession(), FakeSession()
        router.subscribe(a, "/imu", Encoding.MSGPACK)
        router.subscribe(b, "/imu", Encoding.MSGPACK)
        assert ros.wanted == [{"/imu"}]  # one ROS subscription for two clients
        router.unsubscribe(a, "/imu")
        router.remove_session(b)
        assert ros.wanted[-1] == {"/imu"}  # still held during the grace period
        await asyncio.sleep(0.15)
        assert ros.wanted[-1] == set()
    asyncio.run(scenario())


def test_latched_samples_are_replayed_to_late_subscribers():
    async def scenario():
        router = Router(FakeRos())
        router.update_topics([ESTOP])
        first = FakeSession()
        router.subscribe(first, "/estop", Encoding.MSGPACK)
        router.dispatch([("/estop", b"on", 5, 1)])
        late = FakeSession()
        router.subscribe(late, "/estop", Encoding.JSON)
        assert [r.sequence for r in late.records] == [1]
        assert late.records[0].encoding == Encoding.JSON
    asyncio.run(scenario())


def test_throttling_keeps_at_most_one_message_per_interval():
    async def scenario():
        router = Router(FakeRos())
        router.update_topics([IMU])
        s = FakeSession()
        router.subscribe(s, "/imu", Encoding.CDR, max_rate_hz=10)  # 100 ms
        ms = 1_000_000
        router.dispatch([("/imu", b"x", t * 5 * ms, t) for t in range(1, 101)])  # 500 ms at 200 Hz
        assert 4 <= len(s.records) <= 6
    asyncio.run(scenario())


def test_topic_changes_are_announced_and_ids_are_stable():
    async def scenario():
        router = Router(FakeRos())
        s = FakeSession()
        router.add_session(s)
        router.update_topics([IMU, ESTOP])
        imu_id = router.topic("/imu").id
        router.update_topics([ESTOP])
        router.update_topics([IMU, ESTOP])
        assert router.topic("/imu").id == imu_id
        assert [len(c[0]) for c in s.changes] == [2, 0, 1]
        assert [len(c[2]) for c in s.changes] == [0, 1, 0]
    asyncio.run(scenario())


def test_handoff_wakes_once_for_many_messages_and_bounds_non_critical():
    async def scenario():
        loop = asyncio.get_running_loop()
        got = []
        handoff = Handoff(loop, got.extend, max_messages=100)

        def producer():
            for i in range(300):
                handoff.put(("/imu", b"", i, i), Priority.NORMAL)
            handoff.put(("/estop", b"", 0, 0), Priority.CRITICAL)

        thread = threading.Thread(target=producer)
        thread.start()
        thread.join()
        await asyncio.sleep(0.05)
        assert handoff.dropped == 200
        assert len(got) == 101 and got[-1][0] == "/estop"
        assert handoff.wakeups < 10
    asyncio.run(scenario())


def test_a_session_closed_during_fan_out_does_not_cost_the_others_their_messages():
    async def scenario():
        router = Router(FakeRos())
        router.update_topics([ESTOP])

        class ClosingSession(FakeSession):
            def enqueue(self, record):
                router.remove_session(self)  # what close_soon does for a hopeless client

        closing, healthy = ClosingSession(), FakeSession()
        router.subscribe(closing, "/estop", Encoding.CDR)
        router.subscribe(healthy, "/estop", Encoding.CDR)
        router.dispatch([("/estop", b"x", i, i) for i in range(1, 6)])
        assert [r.sequence for r in healthy.records] == [1, 2, 3, 4, 5]
    asyncio.run(scenario())


def test_latched_samples_survive_until_the_ros_subscription_is_released():
    async def scenario():
        router = Router(FakeRos(), unsubscribe_grace_s=0.01)
        router.update_topics([ESTOP])
        first = FakeSession()
        router.subscribe(first, "/estop", Encoding.CDR)
        router.dispatch([("/estop", b"on", 5, 1)])
        router.remove_session(first)
        await asyncio.sleep(0.05)  # no client wants it; the ROS side may keep it (always on)
        late = FakeSession()
        router.subscribe(late, "/estop", Encoding.CDR)
        assert [r.sequence for r in late.records] == [1]
        router.ros_subscription_released("/estop")
        later = FakeSession()
        router.subscribe(later, "/estop", Encoding.CDR)
        assert later.records == []
    asyncio.run(scenario())


def test_a_replayed_latched_sample_is_cached_for_late_joiners_and_sent_to_nobody():
    async def scenario():
        router = Router(FakeRos())
        router.update_topics([ESTOP, IMU])
        current = FakeSession()
        router.subscribe(current, "/estop", Encoding.CDR)
        router.subscribe(current, "/imu", Encoding.CDR)
        router.dispatch([("/estop", b"on", 5, 1)])
        router.ros_subscription_released("/estop")  # re-created with another QoS
        router.ros_replayed("/estop", b"on", 5, 1)
        router.ros_replayed("/imu", b"a", 6, 1)  # not transient_local: nothing to keep
        assert [r.sequence for r in current.records] == [1]
        late = FakeSession()
        router.subscribe(late, "/estop", Encoding.CDR)
        router.subscribe(late, "/imu", Encoding.CDR)
        assert [(r.data, r.sequence, r.timestamp_ns) for r in late.records] == [(b"on", 1, 5)]
    asyncio.run(scenario())
