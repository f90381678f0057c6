"""The core and the policy, ROS-free: requests from a fake connection, commands into a queue
that the test plays the ROS side of."""
from __future__ import annotations

import asyncio

from conftest import RecordingConnection

from rover_ws_bridge.config import BridgeConfig
from rover_ws_bridge.priority import Priority
from rover_ws_bridge.protocols import base as p
from rover_ws_bridge.streaming import commands as c
from rover_ws_bridge.streaming.core import BridgeCore
from rover_ws_bridge.streaming.policy import Client, Policy
from rover_ws_bridge.streaming.router import Router
from rover_ws_bridge.streaming.topics import TopicDescription
from rover_ws_bridge.wire.frame import Encoding

LOOPBACK = Client("127.0.0.1")
REMOTE = Client("192.0.2.7")


class FakeRos:
    def __init__(self):
        self.wanted = {}

    def set_wanted(self, topics):
        self.wanted = dict(topics)

    def decoder_for(self, type_name):
        return lambda cdr: {}


def make_core(**config):
    settings = {"publish_allow": ["/cmd_vel"], "service_allow": ["/sim/*"],
                "parameter_write_allow": ["/sim:speed"], "unadvertise_grace_s": 0.05,
                "max_service_calls_in_flight": 2, **config}
    cfg = BridgeConfig.from_mapping(settings)
    woken = []
    queue = c.CommandQueue(cfg.command_queue_max, lambda: woken.append(1))
    ros = FakeRos()
    router = Router(ros)
    router.update_topics([TopicDescription("/imu", "sensor_msgs/msg/Imu", Priority.NORMAL)])
    return BridgeCore(router, Policy(cfg), queue, cfg), queue, ros


def run(scenario):
    asyncio.run(scenario())


def last(connection):
    return connection.outcomes[-1]


def test_writes_need_an_allowlist_and_a_write_network():
    async def scenario():
        core, queue, _ = make_core()
        local, remote = RecordingConnection(LOOPBACK), RecordingConnection(REMOTE)
        core.execute(local, p.Advertise(1, "/other", "std_msgs/msg/Bool"))
        assert last(local).code == "not_allowed" and "publish_allow" in last(local).message
        core.execute(remote, p.Advertise(2, "/cmd_vel", "geometry_msgs/msg/Twist"))
        assert last(remote).code == "not_allowed"
        assert "write_allowed_networks" in last(remote).message
        core.execute(remote, p.CallService(3, "/sim/reset", {}))
        assert last(remote).code == "not_allowed"
        core.execute(local, p.SetParameters(4, "/sim", (("other", 1),)))
        assert last(local).code == "not_allowed"
        assert len(queue) == 0  # nothing reached ROS
    run(scenario)


def test_the_default_configuration_allows_no_writes():
    policy = Policy(BridgeConfig())
    assert policy.may_publish(LOOPBACK, "/cmd_vel") is not None
    assert policy.may_call(LOOPBACK, "/any") is not None
    assert policy.may_set_parameter(LOOPBACK, "/n", "p") is not None
    assert policy.permissions(LOOPBACK)["publish"] == []


def test_ipv4_mapped_loopback_counts_as_loopback():
    policy = Policy(BridgeConfig.from_mapping({"publish_allow": ["*"]}))
    assert policy.may_publish(Client("::ffff:127.0.0.1"), "/x") is None
    assert policy.may_publish(Client("not an address"), "/x") is not None


def test_one_publisher_per_topic_shared_and_released_after_the_grace_period():
    async def scenario():
        core, queue, _ = make_core()
        a, b = RecordingConnection(LOOPBACK), RecordingConnection(LOOPBACK)
        core.execute(a, p.Advertise(1, "/cmd_vel", "geometry_msgs/msg/Twist"))
        core.execute(b, p.Advertise(1, "/cmd_vel", "geometry_msgs/msg/Twist"))
        created = queue.take()
        assert [type(x) for x in created] == [c.CreatePublisher]
        assert created[0].qos == p.QosRequest(True, False, 10)
        assert last(a).channel_id != last(b).channel_id
        core.execute(b, p.Advertise(2, "/cmd_vel", "std_msgs/msg/Bool"))
        assert last(b).code == "bad_request"  # one type per topic
        core.forget(a)
        core.execute(b, p.Unadvertise(3, "/cmd_vel"))
        assert isinstance(last(b), p.Unadvertised)
        assert queue.take() == []  # still within the grace period
        await asyncio.sleep(0.1)
        assert [type(x) for x in queue.take()] == [c.DestroyPublisher]
    run(scenario)


def test_publish_needs_an_advertise_and_goes_out_as_a_command():
    async def scenario():
        core, queue, _ = make_core()
        conn = RecordingConnection(LOOPBACK)
        core.execute(conn, p.Publish(1, "/cmd_vel", {"linear": {"x": 1}}))
        assert last(conn).code == "not_advertised"
        core.execute(conn, p.Advertise(2, "/cmd_vel", "geometry_msgs/msg/Twist"))
        queue.take()
        core.execute(conn, p.Publish(3, "/cmd_vel", {"linear": {"x": 1}}))
        [command] = queue.take()
        assert isinstance(command, c.PublishMessage) and command.message == {"linear": {"x": 1}}
        command.done("bad_message", "linear.q: no such field")  # the ROS side refuses it
        await asyncio.sleep(0)
        assert last(conn) == p.Refused(3, "bad_message", "linear.q: no such field", "/cmd_vel")
    run(scenario)


def test_publish_qos_rules_win_over_what_the_client_asks():
    async def scenario():
        core, queue, _ = make_core(publish_allow=["/estop", "/cmd_vel"],
                                   publish_qos=["/estop=reliable,transient_local,1"])
        conn = RecordingConnection(LOOPBACK)
        core.execute(conn, p.Advertise(1, "/estop", "std_msgs/msg/Bool",
                                       p.QosRequest(False, False, 5)))
        core.execute(conn, p.Advertise(2, "/cmd_vel", "geometry_msgs/msg/Twist",
                                       p.QosRequest(False, False, 5)))
        estop, cmd_vel = queue.take()
        assert estop.qos == p.QosRequest(True, True, 1)
        assert cmd_vel.qos == p.QosRequest(False, False, 5)
    run(scenario)


def test_a_full_command_queue_refuses_with_busy():
    async def scenario():
        core, queue, _ = make_core(command_queue_max=10)
        conn = RecordingConnection(LOOPBACK)
        core.execute(conn, p.Advertise(1, "/cmd_vel", "geometry_msgs/msg/Twist"))
        for i in range(12):
            core.execute(conn, p.Publish(i, "/cmd_vel", {}))
        assert last(conn).code == "busy"
        assert len(queue) == 10
    run(scenario)


def test_service_call_answer_timeout_and_in_flight_bound():
    async def scenario():
        core, queue, _ = make_core()
        conn = RecordingConnection(LOOPBACK)
        core.execute(conn, p.CallService(1, "/sim/reset", {}, timeout_s=0.05))
        core.execute(conn, p.CallService(2, "/sim/slow", {}, timeout_s=10))
        core.execute(conn, p.CallService(3, "/sim/third", {}))
        assert last(conn).code == "too_many_calls"
        first, second = queue.take()
        first.done("ok", {"success": True})
        await asyncio.sleep(0)
        assert last(conn) == p.ServiceResult(1, "/sim/reset", {"success": True})
        core.execute(conn, p.CallService(4, "sim/relative", {}, timeout_s=0.05))
        [fourth] = queue.take()
        assert fourth.service == "/sim/relative"  # relative names expand
        await asyncio.sleep(0.1)
        assert last(conn).code == "timeout" and last(conn).ref == 4
        assert isinstance(queue.take()[0], c.CancelRosService)
        fourth.done("ok", {})  # too late: ignored
        await asyncio.sleep(0)
        assert last(conn).code == "timeout"
        core.forget(conn)  # the slow call is cancelled with the connection
        assert [type(x) for x in queue.take()] == [c.CancelRosService]
        second.done("ok", {})
        await asyncio.sleep(0)
        assert len(conn.outcomes) == 3  # nothing for the call of a connection that left
    run(scenario)


def test_set_parameters_reads_the_types_first_so_an_integer_sets_a_double():
    async def scenario():
        core, queue, _ = make_core(parameter_write_allow=["/sim:*"])
        conn = RecordingConnection(LOOPBACK)
        core.execute(conn, p.SetParameters(1, "/sim", (("speed", 2), ("ghost", 1))))
        [listing] = queue.take()
        assert listing.service == "/sim/list_parameters"
        listing.done("ok", {"result": {"names": ["speed", "other"]}})
        await asyncio.sleep(0)
        [get] = queue.take()  # only the declared one: a node answers nothing otherwise
        assert get.service == "/sim/get_parameters" and get.request == {"names": ["speed"]}
        get.done("ok", {"values": [{"type": 3, "double_value": 1.0}]})
        await asyncio.sleep(0)
        [set_] = queue.take()
        assert set_.request == {"parameters": [
            {"name": "speed", "value": {"type": 3, "double_value": 2.0}},
            {"name": "ghost", "value": {"type": 2, "integer_value": 1}}]}
        set_.done("ok", {"results": [{"successful": True, "reason": ""},
                                     {"successful": False, "reason": "not declared"}]})
        await asyncio.sleep(0)
        assert last(conn) == p.ParametersSet(1, "/sim", (("speed", True, ""),
                                                         ("ghost", False, "not declared")))
    run(scenario)


def test_get_parameters_answers_an_undeclared_name_as_not_set():
    async def scenario():
        core, queue, _ = make_core()
        conn = RecordingConnection(LOOPBACK)
        core.execute(conn, p.GetParameters(1, "/sim", ("speed", "ghost")))
        [listing] = queue.take()
        listing.done("ok", {"result": {"names": ["speed"]}})
        await asyncio.sleep(0)
        [get] = queue.take()
        assert get.request == {"names": ["speed"]}
        get.done("ok", {"values": [{"type": 3, "double_value": 1.5}]})
        await asyncio.sleep(0)
        assert last(conn) == p.ParameterValues(1, "/sim", (("speed", 1.5, "double"),
                                                           ("ghost", None, "not_set")))
    run(scenario)


def test_parameters_of_a_missing_node_are_no_such_node():
    async def scenario():
        core, queue, _ = make_core()
        conn = RecordingConnection(LOOPBACK)
        core.execute(conn, p.GetParameters(1, "/ghost"))
        [listing] = queue.take()
        assert listing.service == "/ghost/list_parameters"
        listing.done("no_such_service", "none")
        await asyncio.sleep(0)
        assert last(conn).code == "no_such_node"
    run(scenario)


def test_subscribe_before_a_topic_is_offered_needs_a_type_and_asks_ros_for_it():
    async def scenario():
        core, _, ros = make_core()
        conn = RecordingConnection(LOOPBACK)
        core.execute(conn, p.Subscribe(1, "/later", Encoding.MSGPACK))
        assert last(conn).code == "unknown_topic"
        core.execute(conn, p.Subscribe(2, "/later", Encoding.MSGPACK, None,
                                       "std_msgs/msg/Int32"))
        assert last(conn) == p.Subscribed(2, "/later", None)
        assert ros.wanted == {"/later": "std_msgs/msg/Int32"}
        core.execute(conn, p.Subscribe(3, "/imu", Encoding.CDR))
        assert last(conn).info.name == "/imu"
        assert ros.wanted == {"/later": "std_msgs/msg/Int32", "/imu": None}
    run(scenario)


def test_topics_the_policy_hides_cannot_be_subscribed():
    async def scenario():
        core, _, _ = make_core(topic_deny=["/imu"])
        conn = RecordingConnection(LOOPBACK)
        core.execute(conn, p.Subscribe(1, "/imu", Encoding.CDR))
        assert last(conn).code == "unknown_topic"
    run(scenario)


def test_a_client_cannot_make_the_bridge_wait_for_endless_topics_or_advertise_endlessly():
    async def scenario():
        core, queue, ros = make_core(publish_allow=["/free/*"])
        conn = RecordingConnection(LOOPBACK)
        for i in range(40):
            core.execute(conn, p.Subscribe(i, f"/ghost{i}", Encoding.MSGPACK, None,
                                           "std_msgs/msg/Int32"))
        refused = [o for o in conn.outcomes if isinstance(o, p.Refused)]
        assert len(ros.wanted) == 32 and len(refused) == 8
        assert {o.code for o in refused} == {"too_many_topics"}
        core.execute(conn, p.Subscribe(99, "/ghost0", Encoding.CDR, None, "std_msgs/msg/Int32"))
        assert isinstance(last(conn), p.Subscribed)  # changing one it already has is fine
        for i in range(70):
            core.execute(conn, p.Advertise(i, f"/free/t{i}", "std_msgs/msg/Bool"))
        assert len(queue.take()) == 64 and last(conn).code == "too_many_topics"
    run(scenario)


def test_client_services_are_locked_by_default_bounded_and_withdrawn_with_the_client():
    assert Policy(BridgeConfig()).may_offer(LOOPBACK, "/dash/x") is not None
    assert Policy(BridgeConfig()).permissions(LOOPBACK)["offer_service"] == []

    async def scenario():
        core, queue, _ = make_core(service_offer_allow=["/dash/*", "/sim/*"],
                                   service_timeout_s=0.05)
        dash, other = RecordingConnection(LOOPBACK), RecordingConnection(LOOPBACK)
        core.execute(dash, p.AdvertiseService(1, "/sim/get_parameters",
                                              "rcl_interfaces/srv/GetParameters"))
        assert last(dash).code == "not_allowed"  # a node's parameter services: never
        core.execute(dash, p.AdvertiseService(2, "/dash/ok", "std_srvs/srv/Trigger"))
        [create] = queue.take()
        assert isinstance(create, c.CreateClientService) and create.service == "/dash/ok"
        core.execute(other, p.AdvertiseService(3, "/dash/ok", "std_srvs/srv/Trigger"))
        assert last(other).code == "already_served"
        create.done("ok", None)
        await asyncio.sleep(0)
        assert last(dash) == p.ServiceAdvertised(2, "/dash/ok")
        # Two ROS calls (the bound in flight is 2), a third answered at once without the client.
        for call_id in (10, 11, 12):
            create.on_call(call_id, {})
        await asyncio.sleep(0)
        assert [o.call_id for o in dash.outcomes if isinstance(o, p.ServiceRequested)] == [10, 11]
        [refused] = queue.take()
        assert refused.call_id == 12 and refused.values is None
        core.execute(dash, p.AnswerServiceCall(4, 10, {"success": True}))
        [answer] = queue.take()
        assert answer == c.AnswerClientCall(10, {"success": True}, answer.reason)
        core.execute(other, p.AnswerServiceCall(5, 11, {}))  # not its call
        assert last(other).code == "not_pending"
        await asyncio.sleep(0.1)  # call 11 times out: the ROS caller is answered without values
        [timed_out] = queue.take()
        assert timed_out.call_id == 11 and "did not answer" in timed_out.reason
        for n in range(15):
            core.execute(dash, p.AdvertiseService(20 + n, f"/dash/s{n}", "std_srvs/srv/Trigger"))
        core.execute(dash, p.AdvertiseService(40, "/dash/more", "std_srvs/srv/Trigger"))
        assert last(dash).code == "too_many_services"
        queue.take()
        core.forget(dash)  # gone: every service it served is withdrawn
        assert sum(isinstance(x, c.DestroyClientService) for x in queue.take()) == 16
    run(scenario)


def test_action_goals_are_under_the_call_rule_bounded_per_client_and_cancelled_on_leaving():
    async def scenario():
        core, queue, _ = make_core(service_allow=["/nav/*"], max_action_goals_per_client=2,
                                   max_action_goals=3)
        one, two = RecordingConnection(LOOPBACK), RecordingConnection(LOOPBACK)
        fib = "test_msgs/action/Fibonacci"
        core.execute(one, p.SendActionGoal(1, "/other/fib", fib, {}))
        assert last(one).code == "not_allowed" and "service_allow" in last(one).message
        core.execute(one, p.SendActionGoal(2, "/nav/fib", "test_msgs/srv/Fibonacci", {}))
        assert last(one).code == "unknown_type"
        assert len(queue) == 0
        for ref in (3, 4):
            core.execute(one, p.SendActionGoal(ref, "/nav/fib", fib, {"order": ref}))
        core.execute(one, p.SendActionGoal(5, "/nav/fib", fib, {}))
        assert last(one).code == "too_many_goals"
        core.execute(two, p.SendActionGoal(6, "/nav/fib", fib, {}))
        core.execute(two, p.SendActionGoal(7, "/nav/fib", fib, {}))
        assert last(two).code == "busy"  # three in all
        sent = [cmd for cmd in queue.take() if isinstance(cmd, c.SendRosActionGoal)]
        assert [s.goal for s in sent] == [{"order": 3}, {"order": 4}, {}]
        # The ROS side answers: feedback, then the result, each to the goal's sender.
        sent[0].on_feedback("ok", {"sequence": [0, 1]})
        sent[0].done("ok", (4, {"sequence": [0, 1, 1]}))
        await asyncio.sleep(0)
        assert one.outcomes[-2:] == [p.ActionFeedback(3, "/nav/fib", {"sequence": [0, 1]}),
                                     p.ActionResult(3, "/nav/fib", 4, {"sequence": [0, 1, 1]})]
        core.execute(one, p.CancelActionGoal(8, 3))  # ended: no such goal any more
        assert last(one).code == "no_such_goal"
        core.execute(one, p.CancelActionGoal(9, 4))
        assert queue.take() == [c.CancelRosActionGoal(sent[1].goal_id)]
        core.forget(one)
        assert c.CancelRosActionGoal(sent[1].goal_id, forget=True) in queue.take()
        sent[1].done("ok", (5, {}))  # too late: nobody is told
        await asyncio.sleep(0)
        assert not any(isinstance(o, p.ActionResult) and o.ref == 4 for o in one.outcomes)
    run(scenario)


def test_deleting_a_parameter_is_a_parameter_write_and_sets_it_to_not_set():
    async def scenario():
        core, queue, _ = make_core()
        local = RecordingConnection(LOOPBACK)
        core.execute(local, p.DeleteParameters(1, "/sim", ("other",)))
        assert last(local).code == "not_allowed" and "deleting /sim:other" in last(local).message
        assert len(queue) == 0
        core.execute(local, p.DeleteParameters(2, "/sim", ("speed",)))
        [call] = queue.take()
        assert call.service == "/sim/set_parameters"
        assert call.request == {"parameters": [{"name": "speed", "value": {"type": 0}}]}
        call.done("ok", {"results": [{"successful": True, "reason": ""}]})
        await asyncio.sleep(0)
        assert last(local) == p.ParametersSet(2, "/sim", (("speed", True, ""),))
    run(scenario)
