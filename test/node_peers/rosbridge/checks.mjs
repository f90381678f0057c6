// The npm `roslib` 2.x client against the bridge, one scenario per run:
//   node checks.mjs <ws url> <scenario> [json options]
// prints one JSON line with what it saw and exits 0; on failure exits 1 with the reason on
// stderr. test/test_rosbridge_roslib.py runs it and asserts on what it printed.
import * as ROSLIB from "roslib";
import { WebSocket } from "ws";

const [url, scenario, optionsText] = process.argv.slice(2);
const options = optionsText ? JSON.parse(optionsText) : {};
const LIMIT_MS = options.limit_ms ?? 20000;

function connect() {
  return new Promise((resolve, reject) => {
    const ros = new ROSLIB.Ros({ url });
    ros.on("connection", () => resolve(ros));
    ros.on("error", (error) => reject(new Error(`connection error: ${error?.message ?? error}`)));
  });
}

function call(ros, name, args, serviceType = "") {
  return new Promise((resolve, reject) => {
    new ROSLIB.Service({ ros, name, serviceType }).callService(args, resolve,
      (reason) => reject(new Error(`${name} failed: ${reason}`)));
  });
}

// Messages of one topic until `count` arrived.
function collect(ros, name, count, extra = {}) {
  return new Promise((resolve) => {
    const topic = new ROSLIB.Topic({ ros, name, ...extra });
    const messages = [];
    topic.subscribe((message) => {
      messages.push({ at: performance.now(), message });
      if (messages.length === count) {
        topic.unsubscribe();
        resolve(messages);
      }
    });
  });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Typed arrays (CBOR) and bytes as plain lists, so that the output is JSON.
function plain(value) {
  return JSON.parse(JSON.stringify(value, (key, v) =>
    ArrayBuffer.isView(v) ? { typed: v.constructor.name, values: Array.from(v) } : v));
}

const scenarios = {
  async topics(ros) {
    return await new Promise((resolve, reject) => ros.getTopics(resolve, reject));
  },

  async subscribe(ros) {
    const messages = await collect(ros, options.topic, options.count,
      { messageType: options.type, compression: options.compression ?? "none",
        throttle_rate: options.throttle_rate ?? 0 });
    const seconds = (messages.at(-1).at - messages[0].at) / 1000;
    return { count: messages.length, seconds, first: plain(messages[0].message),
      stamps: messages.map((m) => m.message.header?.stamp ?? null) };
  },

  async fragmented(ros) {
    // fragment_size is a subscribe option in rosbridge; roslib's Topic does not send it, so
    // the op goes out as it is. roslib reassembles; a bare `ws` socket beside it counts the
    // fragments on the wire.
    const subscribe = { op: "subscribe", id: "fragmented", topic: options.topic,
      fragment_size: options.fragment_size };
    const raw = new WebSocket(url);
    const fragments = new Promise((resolve) => {
      raw.on("open", () => raw.send(JSON.stringify(subscribe)));
      raw.on("message", (data) => {
        const message = JSON.parse(data.toString());
        if (message.op === "fragment" && message.num === message.total - 1) {
          resolve({ total: message.total, size: message.data.length });
        }
      });
    });
    const received = new Promise((resolve) => ros.on(options.topic, resolve));
    ros.callOnConnection(subscribe);
    const message = await received;
    const wire = await fragments;
    raw.close();
    return { msg: plain(message.msg), fragments: wire.total };
  },

  async drive(ros) {
    // Publish Twist on cmd_vel at 20 Hz, then read odom: the sim follows cmd_vel.
    const cmdVel = new ROSLIB.Topic({ ros, name: options.cmd_vel,
      messageType: "geometry_msgs/msg/Twist" });
    const twist = { linear: { x: options.speed, y: 0, z: 0 }, angular: { x: 0, y: 0, z: 0 } };
    const timer = setInterval(() => cmdVel.publish(twist), 50);
    await sleep(1500);
    const odom = await collect(ros, options.odom, 5);
    clearInterval(timer);
    return { speeds: odom.map((m) => m.message.twist.twist.linear.x) };
  },

  async service(ros) {
    return await call(ros, options.service, options.args, options.type ?? "");
  },

  async param(ros) {
    const param = new ROSLIB.Param({ ros, name: options.param });
    const get = () => new Promise((resolve, reject) => param.get(resolve, reject));
    const before = await get();
    await new Promise((resolve, reject) => param.set(options.value, resolve, reject));
    return { before, after: await get() };
  },

  async deleteParam(ros) {
    // rosapi has_param (no roslib helper: a plain Service), then roslib's Param.delete.
    const has = async () => (await call(ros, "/rosapi/has_param", { name: options.param })).exists;
    const before = await has();
    const param = new ROSLIB.Param({ ros, name: options.param });
    const deleted = await new Promise((resolve) => param.delete(() => resolve(true),
      (reason) => resolve(String(reason))));
    return { before, deleted, after: await has() };
  },

  async graph(ros) {
    // rosapi's graph services through roslib's own helpers.
    const ask = (method, ...args) => new Promise((resolve, reject) =>
      ros[method](...args, resolve, reject));
    const imu = new ROSLIB.Topic({ ros, name: options.topic });
    return {
      nodes: await ask("getNodes"),
      details: await ask("getNodeDetails", options.node),
      services: await ask("getServices"),
      serviceType: await ask("getServiceType", options.service),
      servicesForType: await ask("getServicesForType", "std_srvs/srv/SetBool"),
      request: await ask("getServiceRequestDetails", "std_srvs/srv/SetBool"),
      response: await ask("getServiceResponseDetails", "std_srvs/srv/SetBool"),
      message: await ask("getMessageDetails", "sensor_msgs/msg/Imu"),
      publishers: await new Promise((resolve, reject) => imu.getPublishers(resolve, reject)),
      actionServers: await ask("getActionServers"),
      params: await ask("getParams"),
    };
  },

  async serve(ros) {
    // Serve a std_srvs/SetBool until `count` calls were answered; a call with data false is
    // never answered (the bridge's timeout answers it). First, a name the bridge does not let
    // this client serve: an error status.
    const refused = new Promise((resolve) => ros.on("status:refused", resolve));
    ros.callOnConnection({ op: "advertise_service", id: "refused", service: options.denied,
      type: "std_srvs/srv/SetBool" });
    const status = await refused;
    const others = [];  // statuses without an id (roslib's advertise_service sends none)
    ros.on("status", (message) => others.push(message));
    const calls = [];
    const service = new ROSLIB.Service({ ros, name: options.service,
      serviceType: "std_srvs/srv/SetBool" });
    await new Promise((resolve) => {
      service.advertiseAsync(async (request) => {
        calls.push(request);
        // Stay a while after the last call: its answer goes first, or its timeout passes.
        if (calls.length === options.count) setTimeout(resolve, options.linger_ms);
        if (!request.data) return await new Promise(() => {});
        return { success: true, message: `served by roslib: ${request.data}` };
      });
    });
    return { status, calls, others };
  },

  async action(ros) {
    // One goal through roslib's Action class: its feedback, then its result or failure.
    // With cancel_after, cancelGoal after that many feedback messages; with leave_after, the
    // client goes away after that many (the bridge must cancel the goal on the graph).
    const action = new ROSLIB.Action({ ros, name: options.action, actionType: options.type });
    const feedback = [];
    let id = null;
    const end = await new Promise((resolve) => {
      id = action.sendGoal(options.goal, (result) => resolve({ result }),
        (values) => {
          feedback.push(values);
          if (feedback.length === options.cancel_after) action.cancelGoal(id);
          if (feedback.length === options.leave_after) resolve({ left: true });
        },
        (error) => resolve({ failure: String(error) }));
    });
    return { ...end, feedback };
  },

  async errors(ros) {
    // A subscription to a topic that does not exist, without a type: a status names it.
    const status = new Promise((resolve) => ros.on("status:bad-subscribe", resolve));
    ros.callOnConnection({ op: "subscribe", id: "bad-subscribe", topic: "/no_such_topic" });
    const failed = await call(ros, "/no/such/service", {}).then(() => null,
      (error) => error.message);
    return { status: await status, failed,
      topics: (await new Promise((r, j) => ros.getTopics(r, j))).topics.length };
  },
};

const timer = setTimeout(() => {
  console.error(`${scenario}: no result within ${LIMIT_MS} ms`);
  process.exit(2);
}, LIMIT_MS);
try {
  const ros = await connect();
  const result = await scenarios[scenario](ros);
  clearTimeout(timer);
  ros.close();
  // Exit once the line is written: stdout to a pipe is asynchronous, and exit() cuts it.
  process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(0));
} catch (error) {
  console.error(`${scenario}: ${error?.stack ?? error}`);
  process.exit(1);
}
