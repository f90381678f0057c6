// The teleop pad's rules (src/dashboard/teleop.ts), without a DOM: what is sent, when, and
// when it stops.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { directionOfKey, SEND_INTERVAL_MS, TeleopDrive, twist, type Twist } from "../../src/dashboard/teleop.js";

let sent: Twist[];
let advertised: number;
let linkOpen: boolean;
let advertiseResult: () => Promise<unknown>;

function drive(): TeleopDrive {
  const d = new TeleopDrive({
    advertise: () => {
      advertised++;
      return advertiseResult();
    },
    publish: (m) => {
      if (!linkOpen) return false;
      sent.push(m);
      return true;
    },
  });
  d.setMaxSpeed(2.0);
  d.setLimit(1.0);
  d.setLinkUp(true);
  return d;
}

/** Let the advertise promise settle. */
const settle = () => vi.advanceTimersByTimeAsync(0);

beforeEach(() => {
  vi.useFakeTimers();
  sent = [];
  advertised = 0;
  linkOpen = true;
  advertiseResult = () => Promise.resolve({});
});

afterEach(() => {
  vi.useRealTimers();
});

const zero = twist(0, 0);

describe("TeleopDrive", () => {
  it("advertises once, then sends the pad's command at once and every 100 ms while held; a zero twist on release", async () => {
    const d = drive();
    expect(d.pressPad(0.2, 0.5)).toBe(true);
    await settle();
    expect(advertised).toBe(1);
    expect(sent).toEqual([twist(0.5, -0.2 * d.maxTurnRadps)]);
    expect(d.status).toBe("driving");
    await vi.advanceTimersByTimeAsync(10 * SEND_INTERVAL_MS);
    expect(sent).toHaveLength(11);
    d.movePad(-0.5, -1);
    await vi.advanceTimersByTimeAsync(SEND_INTERVAL_MS);
    expect(sent.at(-1)).toEqual(twist(-1.0, 0.5 * d.maxTurnRadps));
    d.releasePad();
    expect(sent.at(-1)).toEqual(zero);
    const count = sent.length;
    await vi.advanceTimersByTimeAsync(10 * SEND_INTERVAL_MS);
    expect(sent).toHaveLength(count);
    expect(d.status).toBe("idle");

    d.pressPad(0, 1);
    await settle();
    expect(advertised).toBe(1); // once per page: the client advertises again after reconnecting
    expect(sent.at(-1)).toEqual(twist(1.0, 0));
  });

  it("clamps to the limit, and the limit to the rover's max speed; the centre is a dead zone", async () => {
    const d = drive();
    d.pressPad(0.03, 7);
    await settle();
    expect(sent.at(-1)).toEqual(twist(1.0, 0));
    d.setLimit(5);
    expect(d.limitMps).toBe(2.0);
    await vi.advanceTimersByTimeAsync(SEND_INTERVAL_MS);
    expect(sent.at(-1)).toEqual(twist(2.0, 0));
    d.setMaxSpeed(0.8);
    expect(d.limitMps).toBe(0.8);
    d.movePad(-3, 0.05);
    await vi.advanceTimersByTimeAsync(SEND_INTERVAL_MS);
    expect(sent.at(-1)).toEqual(twist(0, d.maxTurnRadps));
  });

  it("keys: forward/back and left/right combine; the last key up sends zero", async () => {
    const d = drive();
    d.pressKey("forward");
    d.pressKey("left");
    await settle();
    await vi.advanceTimersByTimeAsync(SEND_INTERVAL_MS);
    expect(sent.at(-1)).toEqual(twist(1.0, d.maxTurnRadps));
    d.releaseKey("left");
    d.pressKey("right");
    await vi.advanceTimersByTimeAsync(SEND_INTERVAL_MS);
    expect(sent.at(-1)).toEqual(twist(1.0, -d.maxTurnRadps));
    d.releaseKey("forward");
    await vi.advanceTimersByTimeAsync(SEND_INTERVAL_MS);
    expect(sent.at(-1)).toEqual(twist(0, -d.maxTurnRadps));
    d.releaseKey("right");
    expect(sent.at(-1)).toEqual(zero);
    const count = sent.length;
    await vi.advanceTimersByTimeAsync(5 * SEND_INTERVAL_MS);
    expect(sent).toHaveLength(count);
  });

  it("stop() (focus lost, page hidden) sends a zero twist and lets go; when idle it sends nothing", async () => {
    const d = drive();
    d.stop();
    expect(sent).toEqual([]);
    d.pressKey("forward");
    await settle();
    d.stop();
    expect(sent.at(-1)).toEqual(zero);
    expect(d.held).toBe(false);
    const count = sent.length;
    await vi.advanceTimersByTimeAsync(5 * SEND_INTERVAL_MS);
    expect(sent).toHaveLength(count);
    d.releaseKey("forward"); // the keyup after the blur: nothing more
    expect(sent).toHaveLength(count);
  });

  it("a lost link stops sending and forgets the inputs: nothing resumes after the reconnection", async () => {
    const d = drive();
    d.pressPad(0, 0.5);
    await settle();
    await vi.advanceTimersByTimeAsync(3 * SEND_INTERVAL_MS);
    const count = sent.length;
    linkOpen = false;
    d.setLinkUp(false);
    expect(d.status).toBe("link-down");
    expect(d.held).toBe(false);
    expect(d.pressKey("forward")).toBe(false); // presses while down are ignored
    await vi.advanceTimersByTimeAsync(5 * SEND_INTERVAL_MS);
    linkOpen = true;
    d.setLinkUp(true);
    d.movePad(0, 1); // the pointer still down from before: not a press
    d.releasePad();
    await vi.advanceTimersByTimeAsync(10 * SEND_INTERVAL_MS);
    expect(sent).toHaveLength(count);
    expect(d.status).toBe("idle");
    d.pressPad(0, 0.5);
    await settle();
    expect(sent).toHaveLength(count + 1);
  });

  it("a release before the advertisement is answered sends nothing; a refused advertisement lets the next press retry", async () => {
    let answer!: () => void;
    advertiseResult = () => new Promise<void>((resolve) => { answer = resolve; });
    const d = drive();
    d.pressKey("forward");
    expect(d.status).toBe("advertising");
    d.releaseKey("forward");
    answer();
    await settle();
    expect(sent).toEqual([]);
    expect(d.status).toBe("idle");

    const refused = drive();
    advertiseResult = () => Promise.reject(new Error("not_allowed: publishing to /cmd_vel is not allowed"));
    refused.pressPad(0, 1);
    await settle();
    expect(refused.status).toBe("error");
    expect(refused.error).toMatch(/not_allowed/);
    expect(refused.held).toBe(false);
    expect(sent).toEqual([]);
    advertiseResult = () => Promise.resolve({});
    refused.pressPad(0, 1);
    await settle();
    expect(sent).toEqual([twist(1.0, 0)]);
  });
});

describe("directionOfKey", () => {
  it.each([
    ["ArrowUp", "forward"], ["w", "forward"], ["W", "forward"], ["ArrowDown", "back"], ["s", "back"],
    ["ArrowLeft", "left"], ["A", "left"], ["ArrowRight", "right"], ["d", "right"], ["x", undefined], ["Shift", undefined],
  ])("%s -> %s", (key, direction) => {
    expect(directionOfKey(key)).toBe(direction);
  });
});
