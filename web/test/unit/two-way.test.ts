// The two-way ops of the client (docs/PROTOCOL.md, "Two ways"): permissions, advertise and
// publish (text and binary), service calls, parameters, against the scripted bridge.
import WebSocket from "ws";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  BridgeError,
  globMatch,
  OptimizedTelemetryClient,
  PublishError,
  ServiceCallError,
  type StatusMessage,
  type TelemetryClientOptions,
  type WebSocketConstructor,
} from "../../src/index.js";
import { FakeBridge, waitFor } from "../support/fake-bridge.js";

let bridge: FakeBridge;
const clients: OptimizedTelemetryClient[] = [];

function client(options: Partial<TelemetryClientOptions> = {}): OptimizedTelemetryClient {
  const c = new OptimizedTelemetryClient({
    WebSocket: WebSocket as unknown as WebSocketConstructor, statsIntervalMs: 0,
    reconnect: { initialDelayMs: 20, maxDelayMs: 200 }, ...options, url: options.url ?? bridge.url,
  });
  clients.push(c);
  return c;
}

beforeEach(async () => {
  bridge = await FakeBridge.start();
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await bridge.stop();
});

const TWIST = { linear: { x: 0.5, y: 0, z: 0 }, angular: { x: 0, y: 0, z: -0.25 } };

describe("globMatch (fnmatch rules, as the bridge's policy)", () => {
  it.each([
    ["/cmd_vel", "/cmd_vel", true],
    ["/cmd_vel", "/cmd_vel2", false],
    ["/rover_sim/*", "/rover_sim/set_estop", true],
    ["/rover_sim/*", "/rover_sim/deep/name", true], // `*` crosses "/"
    ["/rover_sim/*", "/rover_sim", false],
    ["*", "/anything/at/all", true],
    ["/cmd_vel_?", "/cmd_vel_1", true],
    ["/cmd_vel_?", "/cmd_vel_12", false],
    ["/arm[12]/cmd", "/arm2/cmd", true],
    ["/arm[!12]/cmd", "/arm2/cmd", false],
    ["/arm[!12]/cmd", "/arm3/cmd", true],
    ["/a.b", "/aXb", false], // "." is literal
    ["/rover_sim:*", "/rover_sim:max_speed_mps", true],
    ["/rover_sim:max_*", "/other:max_speed_mps", false],
    ["/weird[", "/weird[", true], // no closing bracket: literal
    ["/CMD_VEL", "/cmd_vel", false], // case-sensitive
  ])("%s matches %s: %s", (pattern, name, expected) => {
    expect(globMatch(pattern, name)).toBe(expected);
  });
});

describe("permissions", () => {
  it("come from hello, with mayPublish / mayCall / maySetParameter", async () => {
    const c = client();
    expect(c.mayPublish("/cmd_vel")).toBe(false); // no hello yet: nothing
    await c.ready(10_000);
    expect(c.permissions).toEqual({ publish: ["/cmd_vel"], call_service: ["/rover_sim/*"], set_parameters: ["/rover_sim:*"], get_parameters: true });
    expect(c.mayPublish("/cmd_vel")).toBe(true);
    expect(c.mayPublish("/estop")).toBe(false);
    expect(c.mayCall("/rover_sim/set_estop")).toBe(true);
    expect(c.mayCall("/other/set_estop")).toBe(false);
    expect(c.maySetParameter("/rover_sim", "max_speed_mps")).toBe(true);
    expect(c.maySetParameter("/bridge", "port")).toBe(false);
  });

  it("a bridge that announces none allows nothing", async () => {
    bridge.permissions = undefined;
    const c = client();
    await c.ready(10_000);
    expect(c.permissions).toEqual({ publish: [], call_service: [], set_parameters: [], get_parameters: false });
    expect(c.mayPublish("/cmd_vel")).toBe(false);
    expect(c.mayCall("/rover_sim/set_estop")).toBe(false);
  });
});

describe("advertise and publish", () => {
  it("advertises (reply with channel id and QoS), publishes JSON, unadvertises", async () => {
    const c = client();
    await c.ready(10_000);
    const advertised = await c.advertise("/cmd_vel", "geometry_msgs/msg/Twist", { reliability: "best_effort", depth: 1 });
    expect(advertised).toMatchObject({ op: "advertised", topic: "/cmd_vel", type: "geometry_msgs/msg/Twist", channel_id: 101 });
    expect(advertised.qos).toEqual({ reliability: "best_effort", durability: "volatile", depth: 1 });
    expect(bridge.ops("advertise")[0]).toMatchObject({ topic: "/cmd_vel", type: "geometry_msgs/msg/Twist", qos: { reliability: "best_effort", depth: 1 } });
    expect(c.channelId("/cmd_vel")).toBe(101);
    expect(c.advertised).toEqual(["/cmd_vel"]);

    expect(c.publish("/cmd_vel", TWIST)).toBe(true);
    expect(c.publish("/cmd_vel", TWIST)).toBe(true);
    await waitFor(() => bridge.published.length === 2, "two publishes");
    expect(bridge.published[0]).toEqual({ connection: 1, topic: "/cmd_vel", msg: TWIST });
    const [p1, p2] = bridge.ops("publish");
    expect(typeof p1.id).toBe("number");
    expect(p2.id).not.toBe(p1.id);

    await c.unadvertise("/cmd_vel");
    expect(bridge.ops("unadvertise")).toEqual([expect.objectContaining({ topic: "/cmd_vel" })]);
    expect(c.channelId("/cmd_vel")).toBeUndefined();
  });

  it("an advertise the bridge refuses rejects with its code and is not remembered", async () => {
    const c = client();
    await c.ready(10_000);
    await expect(c.advertise("/estop", "std_msgs/msg/Bool")).rejects.toMatchObject({ code: "not_allowed" });
    expect(c.advertised).toEqual([]);
    bridge.dropConnections();
    await waitFor(() => c.state === "open" && bridge.connections === 2, "open again");
    expect(bridge.ops("advertise", 2)).toEqual([]);
  });

  it("a refused publish rejects nothing: it comes out as a status and a PublishError event", async () => {
    const c = client();
    const statuses: StatusMessage[] = [];
    const errors: Error[] = [];
    c.on("status", (s) => statuses.push(s));
    c.on("error", (e) => errors.push(e));
    await c.ready(10_000);
    // Not advertised: the bridge says so.
    expect(c.publish("/cmd_vel", TWIST)).toBe(true);
    await waitFor(() => errors.length === 1, "an error event");
    expect(errors[0]).toBeInstanceOf(PublishError);
    expect(errors[0]).toBeInstanceOf(BridgeError);
    expect(errors[0]).toMatchObject({ code: "not_advertised", topic: "/cmd_vel" });
    expect(statuses.at(-1)).toMatchObject({ code: "not_advertised", id: bridge.ops("publish")[0].id });
    expect(c.statuses.at(-1)?.code).toBe("not_advertised");

    await c.advertise("/cmd_vel", "geometry_msgs/msg/Twist");
    bridge.publishError = { code: "bad_message", message: "linear.q: no such field in geometry_msgs/msg/Twist" };
    c.publish("/cmd_vel", { linear: { q: 1 } });
    await waitFor(() => errors.length === 2, "a second error event");
    expect(errors[1].message).toMatch(/bad_message: publish on \/cmd_vel: linear\.q/);
    expect(c.state).toBe("open");
  });

  it("publish returns false, sending nothing, while not connected", async () => {
    const c = client({ reconnect: { initialDelayMs: 300, maxDelayMs: 300, jitter: 0 } });
    await c.ready(10_000);
    await c.advertise("/cmd_vel", "geometry_msgs/msg/Twist");
    bridge.dropConnections();
    await waitFor(() => c.state === "reconnecting", "reconnecting");
    expect(c.publish("/cmd_vel", TWIST)).toBe(false);
    expect(c.publishBinary(101, "msgpack", TWIST)).toBe(false);
    expect(c.channelId("/cmd_vel")).toBeUndefined();
    c.close();
    expect(c.publish("/cmd_vel", TWIST)).toBe(false);
    expect(bridge.ops("publish")).toEqual([]);
  });

  it("advertises again after a reconnection, before it is open; channel ids follow the new connection", async () => {
    const c = client();
    await c.ready(10_000);
    await c.advertise("/cmd_vel", "geometry_msgs/msg/Twist", { durability: "volatile" });
    expect(c.channelId("/cmd_vel")).toBe(101);
    bridge.dropConnections();
    await waitFor(() => c.state === "reconnecting", "reconnecting");
    await c.ready(10_000);
    // By `open`, the advertisement is back (so a publish right away is accepted).
    expect(bridge.ops("advertise", 2)).toEqual([expect.objectContaining({ topic: "/cmd_vel", type: "geometry_msgs/msg/Twist", qos: { durability: "volatile" } })]);
    expect(c.channelId("/cmd_vel")).toBe(201);
    expect(c.publish("/cmd_vel", TWIST)).toBe(true);
    await waitFor(() => bridge.published.length === 1, "a publish");
    expect(bridge.published[0].connection).toBe(2);
    // Unadvertised topics stay so.
    await c.unadvertise("/cmd_vel");
    bridge.dropConnections();
    await waitFor(() => c.state === "open" && bridge.connections === 3, "open a third time");
    expect(bridge.ops("advertise", 3)).toEqual([]);
  });

  it("publishBinary: opcode 1, encoding, channel id u32 LE, then the message", async () => {
    const c = client();
    const statuses: StatusMessage[] = [];
    c.on("status", (s) => statuses.push(s));
    await c.ready(10_000);
    const { channel_id: channelId } = await c.advertise("/cmd_vel", "geometry_msgs/msg/Twist");
    expect(c.publishBinary(channelId, "msgpack", TWIST)).toBe(true);
    const cdr = new Uint8Array([0, 1, 0, 0, 1, 2, 3, 4]);
    expect(c.publishBinary(channelId, "cdr", cdr)).toBe(true);
    await waitFor(() => bridge.binaryPublished.length === 2, "two binary publishes");
    expect(bridge.binaryPublished[0]).toMatchObject({ connection: 1, channelId, encoding: 1, decoded: TWIST });
    expect(bridge.binaryPublished[1]).toMatchObject({ channelId, encoding: 0 });
    expect([...bridge.binaryPublished[1].payload]).toEqual([...cdr]);
    // An unknown channel: the bridge's status comes out as a status event (the frame has no id).
    c.publishBinary(0xdead_beef, "msgpack", TWIST);
    await waitFor(() => statuses.some((s) => s.code === "not_advertised"), "a not_advertised status");
    expect(() => c.publishBinary(-1, "msgpack", TWIST)).toThrow(RangeError);
    expect(() => c.publishBinary(2 ** 32, "msgpack", TWIST)).toThrow(RangeError);
    expect(() => c.publishBinary(channelId, "cdr", TWIST)).toThrow(TypeError);
  });

  it("the binary frame layout, byte for byte", async () => {
    const c = client();
    await c.ready(10_000);
    const sent: unknown[] = [];
    const ws = (c as unknown as { ws: { send(d: unknown): void } }).ws;
    const send = ws.send.bind(ws);
    ws.send = (d: unknown) => { sent.push(d); send(d as string); };
    c.publishBinary(0x04030201, "msgpack", new Uint8Array([0x81, 0xa4, 0x64, 0x61, 0x74, 0x61, 0xc3]));
    expect([...(sent[0] as Uint8Array)]).toEqual([1, 1, 1, 2, 3, 4, 0x81, 0xa4, 0x64, 0x61, 0x74, 0x61, 0xc3]);
  });
});

describe("service calls", () => {
  it("resolves with the response's values when result is true", async () => {
    const c = client();
    await c.ready(10_000);
    await expect(c.callService("/rover_sim/set_estop", { data: true })).resolves.toEqual({ success: true, message: "e-stop engaged" });
    expect(bridge.estop).toBe(true);
    expect(bridge.ops("call_service")[0]).toMatchObject({ service: "/rover_sim/set_estop", args: { data: true } });
    expect(bridge.ops("call_service")[0]).not.toHaveProperty("type");
    await c.callService("/rover_sim/set_estop", { data: false }, { type: "std_srvs/srv/SetBool", timeoutS: 2.5 });
    expect(bridge.ops("call_service")[1]).toMatchObject({ type: "std_srvs/srv/SetBool", timeout_s: 2.5 });
    expect(bridge.estop).toBe(false);
  });

  it("rejects with a ServiceCallError carrying the code: service_response errors and status errors", async () => {
    const c = client();
    await c.ready(10_000);
    const timeout = c.callService("/rover_sim/slow");
    await expect(timeout).rejects.toBeInstanceOf(ServiceCallError);
    await expect(timeout).rejects.toMatchObject({ code: "timeout", service: "/rover_sim/slow", detail: "no answer within 1 s" });
    await expect(c.callService("/rover_sim/nothing")).rejects.toMatchObject({ code: "no_such_service" });
    await expect(c.callService("/rover_sim/set_estop", { data: "yes" })).rejects.toMatchObject({ code: "bad_message" });
    const refused = c.callService("/elsewhere/reboot");
    await expect(refused).rejects.toBeInstanceOf(ServiceCallError);
    await expect(refused).rejects.toMatchObject({ code: "not_allowed", service: "/elsewhere/reboot", message: "not_allowed: may not call /elsewhere/reboot" });
    expect(c.state).toBe("open");
  });
});

describe("parameters", () => {
  it("lists, reads and sets a node's parameters", async () => {
    const c = client();
    await c.ready(10_000);
    await expect(c.listParameters("/rover_sim")).resolves.toEqual(["max_speed_mps", "speed_mps", "use_sim_time"]);
    await expect(c.getParameters("/rover_sim", ["max_speed_mps"])).resolves.toEqual([{ name: "max_speed_mps", value: 2.0, type: "double" }]);
    expect((await c.getParameters("/rover_sim")).map((p) => p.name)).toEqual(["max_speed_mps", "speed_mps", "use_sim_time"]);
    expect(bridge.ops("get_parameters")[1]).not.toHaveProperty("names");
    const results = await c.setParameters("/rover_sim", [{ name: "max_speed_mps", value: 1.5 }, { name: "speed_mps", value: "fast" }]);
    expect(results).toEqual([
      { name: "max_speed_mps", successful: true, reason: "" },
      { name: "speed_mps", successful: false, reason: "expected double" },
    ]);
    await expect(c.getParameters("/rover_sim", ["max_speed_mps"])).resolves.toEqual([{ name: "max_speed_mps", value: 1.5, type: "double" }]);
    await expect(c.getParameters("/nobody")).rejects.toMatchObject({ code: "no_such_node" });
  });
});
