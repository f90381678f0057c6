// A Foxglove WebSocket client session against the bridge, with the official npm client
// (@foxglove/ws-protocol's FoxgloveClient over the `ws` package), driven by
// test/test_foxglove_integration.py. It prints one JSON object of what it saw on stdout; the
// Python side asserts on it. Decoding and encoding use the schemas the bridge advertised
// (@foxglove/rosmsg + @foxglove/rosmsg2-serialization), as the Foxglove app does.
//
//   node peer.js '<json options>'
//   options: url, subprotocol, imuTopic, imuSeconds, chatterTopic, service, parameter,
//            parameterValue, assetUri, refusedAssetUri, timeoutMs
"use strict";

const { FoxgloveClient } = require("@foxglove/ws-protocol");
const { parse } = require("@foxglove/rosmsg");
const { MessageReader, MessageWriter } = require("@foxglove/rosmsg2-serialization");
const WebSocket = require("ws");

const options = JSON.parse(process.argv[2]);
const result = { errors: [], statuses: [] };

function waitFor(what, predicate, timeoutMs = options.timeoutMs) {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = () => {
      const value = predicate();
      if (value) return resolve(value);
      if (Date.now() - started > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(poll, 20);
    };
    poll();
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const ws = new WebSocket(options.url, [options.subprotocol]);
  const client = new FoxgloveClient({ ws });
  const channels = new Map(); // id -> channel
  const services = new Map(); // name -> service
  const messages = []; // MessageData events
  const callResponses = new Map(); // callId -> response or failure
  const parameterAnswers = new Map(); // id -> parameters
  const assets = new Map(); // requestId -> response
  let serverInfo;

  client.on("error", (error) => result.errors.push(String(error && error.message)));
  client.on("serverInfo", (info) => { serverInfo = info; });
  client.on("status", (status) => result.statuses.push(status));
  client.on("advertise", (list) => list.forEach((c) => channels.set(c.id, c)));
  client.on("unadvertise", (ids) => ids.forEach((id) => channels.delete(id)));
  client.on("advertiseServices", (list) => list.forEach((s) => services.set(s.name, s)));
  client.on("message", (event) => messages.push(event));
  client.on("serviceCallResponse", (r) => callResponses.set(r.callId, r));
  client.on("serviceCallFailure", (f) => callResponses.set(f.callId, f));
  const parameterUpdates = []; // parameterValues without an id: subscribed updates
  const graphUpdates = [];
  client.on("parameterValues", (event) => {
    if (event.id === undefined) parameterUpdates.push(...event.parameters);
    else parameterAnswers.set(event.id, event.parameters);
  });
  client.on("connectionGraphUpdate", (event) => graphUpdates.push(event));
  client.on("fetchAssetResponse", (r) => assets.set(r.requestId, r));

  await waitFor("serverInfo", () => serverInfo);
  result.protocol = ws.protocol; // the subprotocol the server echoed
  result.serverInfo = serverInfo;

  // -- /imu: subscribe, decode with the advertised schema, count for imuSeconds ----------------
  const imu = await waitFor("the /imu channel",
    () => [...channels.values()].find((c) => c.topic === options.imuTopic));
  result.imuChannel = { encoding: imu.encoding, schemaName: imu.schemaName,
    schemaEncoding: imu.schemaEncoding };
  const imuReader = new MessageReader(parse(imu.schema, { ros2: true }));
  const subscriptionId = client.subscribe(imu.id);
  await waitFor("a first /imu message", () => messages.length > 0);
  const firstCount = messages.length;
  const started = Date.now();
  await sleep(options.imuSeconds * 1000);
  const elapsed = (Date.now() - started) / 1000;
  client.unsubscribe(subscriptionId);
  const imuMessages = messages.filter((m) => m.subscriptionId === subscriptionId);
  result.imuRateHz = (messages.length - firstCount) / elapsed;
  const decoded = imuMessages.slice(-5).map((m) => imuReader.readMessage(m.data));
  result.imuSamples = decoded.map((d) => ({
    frame_id: d.header.frame_id,
    stamp_sec: d.header.stamp.sec,
    orientation: d.orientation,
    linear_acceleration: d.linear_acceleration,
    angular_velocity: d.angular_velocity,
    orientation_covariance_length: d.orientation_covariance.length,
  }));
  result.imuLogTimesNs = imuMessages.slice(-5).map((m) => m.timestamp.toString());

  // -- publish a std_msgs/msg/String in json and in cdr ---------------------------------------
  const stringWriter = new MessageWriter(parse("string data", { ros2: true }));
  const jsonChannel = client.advertise({ topic: options.chatterTopic, encoding: "json",
    schemaName: "std_msgs/msg/String" });
  const cdrChannel = client.advertise({ topic: options.chatterTopic, encoding: "cdr",
    schemaName: "std_msgs/msg/String" });
  // Several of each, spread over a while: the bridge's publisher is new, and DDS needs a
  // moment to match it with the subscriber (reliable: whatever is matched is delivered).
  for (let i = 0; i < options.publishCount; i++) {
    const text = new TextEncoder().encode(JSON.stringify(
      { data: `${options.subprotocol} json ${i}` }));
    client.sendMessage(jsonChannel, text);
    client.sendMessage(cdrChannel, stringWriter.writeMessage(
      { data: `${options.subprotocol} cdr ${i}` }));
    await sleep(options.publishIntervalMs);
  }

  // -- call a real service, in json and in cdr ------------------------------------------------
  const service = await waitFor(`the service ${options.service}`, () => services.get(options.service));
  result.service = { type: service.type, requestSchemaName: service.request.schemaName,
    responseSchemaName: service.response.schemaName };
  client.sendServiceCallRequest({ serviceId: service.id, callId: 1, encoding: "json",
    data: new TextEncoder().encode(JSON.stringify({ data: true })) });
  const jsonAnswer = await waitFor("the json service response", () => callResponses.get(1));
  result.jsonCall = jsonAnswer.op === "serviceCallFailure" ? { failure: jsonAnswer.message } : {
    encoding: jsonAnswer.encoding,
    response: JSON.parse(new TextDecoder().decode(jsonAnswer.data)),
  };
  const requestWriter = new MessageWriter(parse(service.request.schema, { ros2: true }));
  const responseReader = new MessageReader(parse(service.response.schema, { ros2: true }));
  client.sendServiceCallRequest({ serviceId: service.id, callId: 2, encoding: "cdr",
    data: requestWriter.writeMessage({ data: false }) });
  const cdrAnswer = await waitFor("the cdr service response", () => callResponses.get(2));
  result.cdrCall = cdrAnswer.op === "serviceCallFailure" ? { failure: cdrAnswer.message } : {
    encoding: cdrAnswer.encoding, response: responseReader.readMessage(cdrAnswer.data),
  };

  // -- read and set a parameter of a real node ------------------------------------------------
  client.subscribeParameterUpdates([options.parameter]);
  client.getParameters([options.parameter], "before");
  result.parameterBefore = await waitFor("parameterValues before", () => parameterAnswers.get("before"));
  client.setParameters([{ name: options.parameter, value: options.parameterValue, type: "float64" }], "set");
  result.parameterSet = await waitFor("parameterValues after set", () => parameterAnswers.get("set"));
  client.getParameters([options.parameter], "after");
  result.parameterAfter = await waitFor("parameterValues after", () => parameterAnswers.get("after"));
  // The update comes from ROS /parameter_events, which the bridge subscribes to once asked:
  // set it once more, so that the update of a set made after that subscription is there.
  await sleep(500);
  client.setParameters([{ name: options.parameter, value: options.parameterValue + 0.25,
    type: "float64" }]);
  result.parameterUpdate = await waitFor("a parameter update", () => parameterUpdates.find(
    (p) => p.value === options.parameterValue + 0.25));
  client.unsubscribeParameterUpdates([]);

  // -- the connection graph -------------------------------------------------------------------
  client.subscribeConnectionGraph();
  result.graphImuPublishers = await waitFor("the connection graph", () => {
    for (const update of graphUpdates) {
      const imuTopic = update.publishedTopics.find((t) => t.name === options.imuTopic);
      if (imuTopic) return imuTopic.publisherIds;
    }
    return undefined;
  });
  result.graphServiceProviders = graphUpdates.flatMap((u) => u.advertisedServices)
    .filter((s) => s.name === options.service).map((s) => s.providerIds);
  client.unsubscribeConnectionGraph();

  // -- fetch a package:// asset, and one that is refused --------------------------------------
  client.fetchAsset(options.assetUri, 10);
  client.fetchAsset(options.refusedAssetUri, 11);
  const asset = await waitFor("the asset", () => assets.get(10));
  const refused = await waitFor("the refused asset", () => assets.get(11));
  result.asset = { status: asset.status, text: asset.status === 0
    ? new TextDecoder().decode(asset.data) : asset.error };
  result.refusedAsset = { status: refused.status, error: refused.error };

  client.close();
}

main().then(
  () => { process.stdout.write(JSON.stringify(result) + "\n"); process.exit(0); },
  (error) => {
    result.errors.push(String(error && error.stack || error));
    process.stdout.write(JSON.stringify(result) + "\n");
    process.exit(1);
  },
);
