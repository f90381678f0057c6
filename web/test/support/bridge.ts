// Starts the real bridge beside the simulated rover (`python -m rover_ws_bridge.demo`) for the
// integration and browser tests, in a private ROS domain, on a port the OS picks, loopback only.
//
// Python: $ROVER_PYTHON (test/test_web.py passes its own interpreter), else the repository's
// .venv (made by `make test`), else python3.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

function python(): string {
  if (process.env.ROVER_PYTHON) return process.env.ROVER_PYTHON;
  const venv = `${REPO_ROOT}.venv/bin/python`;
  return existsSync(venv) ? venv : "python3";
}

export interface RunningBridge {
  url: string;
  httpUrl: string;
  port: number;
  output: () => string;
  stop: () => Promise<number | null>;
}

const running = new Set<ChildProcess>();

/** The process and its direct children (the simulator), by PID. */
function killTree(pid: number): void {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    // not Linux, or already gone
  }
  for (const p of [pid, ...children]) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      // already gone
    }
  }
}

// A test run that ends without stopping its bridges (a failed assertion in a hook) still must
// not leave them running.
process.once("exit", () => {
  for (const child of running) if (child.pid !== undefined && child.exitCode === null) killTree(child.pid);
});

const READY = /rover_ws_bridge: listening on ws:\/\/[^\s:]+:(\d+)/;

/** The interpreter the bridge runs with (for the tests' own helpers, e.g. `rover_ws_bridge.auth`). */
export const PYTHON = python();

/**
 * Start the demo; resolves once it listens (the sim's topics appear a little later).
 * `parameters` are the bridge's ROS parameters, passed after `--` as
 * `--ros-args -p name:=value ... --`, e.g. `{ auth_tokens_file: "/tmp/x/tokens.yaml" }`.
 */
export async function startBridge(port = 0, timeoutMs = 60_000, parameters: Record<string, string> = {}): Promise<RunningBridge> {
  const domain = String(1 + Math.floor(Math.random() * 100));
  const bridgeArgs = Object.keys(parameters).length === 0 ? [] : [
    "--", "--ros-args", ...Object.entries(parameters).flatMap(([name, value]) => ["-p", `${name}:=${value}`]), "--",
  ];
  const child: ChildProcess = spawn(PYTHON, ["-m", "rover_ws_bridge.demo", "--port", String(port), "--address", "127.0.0.1", ...bridgeArgs], {
    cwd: REPO_ROOT,
    env: { ...process.env, ROS_DOMAIN_ID: domain, ROS_AUTOMATIC_DISCOVERY_RANGE: "LOCALHOST", PYTHONUNBUFFERED: "1" },
    // Same process group as the test runner: whoever kills the test run's group (pytest on a
    // timeout) takes the bridge and its simulator down too.
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  child.once("exit", () => running.delete(child));
  let output = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const port_ = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`bridge not listening after ${timeoutMs} ms:\n${output}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = READY.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`bridge exited (${code}) before listening:\n${output}`));
    });
  });
  return {
    port: port_,
    url: `ws://127.0.0.1:${port_}`,
    httpUrl: `http://127.0.0.1:${port_}/`,
    output: () => output,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill("SIGINT"); // the demo stops the bridge, then the simulator
      const timeout = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 20_000));
      if ((await Promise.race([exited, timeout])) === "timeout") {
        killTree(child.pid!);
      }
      return exited;
    },
  };
}
