/**
 * Teleoperation: a pad (pointer and keyboard) that drives the rover with
 * geometry_msgs/msg/Twist on /cmd_vel.
 *
 * Safety rules, all in `TeleopDrive` (no DOM, unit-tested):
 * - commands go out only while an input is held, at 10 Hz (the rover stops on its own when
 *   they stop: the simulator goes back to its loop 0.5 s after the last one);
 * - releasing the last input sends one zero twist; so do losing focus and hiding the page;
 * - a lost link forgets every held input and sends nothing more: after the reconnection
 *   nothing resumes until the user presses again (a key still held down does not count, its
 *   auto-repeat is ignored).
 */
import { el, fixed, setText } from "./format.js";

export const CMD_VEL_TOPIC = "/cmd_vel";
export const TWIST_TYPE = "geometry_msgs/msg/Twist";
export const SEND_INTERVAL_MS = 100;
/** Without a max_speed_mps parameter to read, the pad goes up to this. */
export const DEFAULT_MAX_SPEED_MPS = 1.0;
export const MAX_TURN_RADPS = 1.5;
/** Fraction of the pad around its centre lines that counts as 0 (a tap in the middle stands still). */
const DEAD_ZONE = 0.08;

export interface Vector3 { x: number; y: number; z: number }
export interface Twist { linear: Vector3; angular: Vector3 }

export function twist(linearX: number, angularZ: number): Twist {
  // `+ 0` turns -0 (the pad's centre line, negated) into 0.
  return { linear: { x: linearX + 0, y: 0, z: 0 }, angular: { x: 0, y: 0, z: angularZ + 0 } };
}

export type Direction = "forward" | "back" | "left" | "right";

const KEY_DIRECTIONS: Record<string, Direction> = {
  ArrowUp: "forward", ArrowDown: "back", ArrowLeft: "left", ArrowRight: "right",
  w: "forward", s: "back", a: "left", d: "right",
};

/** The direction of a KeyboardEvent.key: arrows and WASD (either case). */
export function directionOfKey(key: string): Direction | undefined {
  return KEY_DIRECTIONS[key.length === 1 ? key.toLowerCase() : key];
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));
const dead = (v: number) => (Math.abs(v) < DEAD_ZONE ? 0 : v);

/** Where the commands go: the client's advertise and publish for /cmd_vel. */
export interface DriveTarget {
  advertise(): Promise<unknown>;
  publish(message: Twist): boolean;
}

export interface Timers {
  setInterval(callback: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

const GLOBAL_TIMERS: Timers = {
  setInterval: (callback, ms) => setInterval(callback, ms),
  clearInterval: (handle) => clearInterval(handle as ReturnType<typeof setInterval>),
};

export type DriveStatus = "idle" | "advertising" | "driving" | "link-down" | "error";

export class TeleopDrive {
  /** What the rover allows (its max_speed_mps parameter), m/s. */
  maxSpeedMps = DEFAULT_MAX_SPEED_MPS;
  /** The user's limit, at most maxSpeedMps: full deflection of the pad, and the keys' speed. */
  limitMps = DEFAULT_MAX_SPEED_MPS;
  readonly maxTurnRadps = MAX_TURN_RADPS;
  status: DriveStatus = "link-down";
  error = "";
  /** Commands sent (for the page and tests). */
  sent = 0;
  onChange: () => void = () => undefined;

  private readonly keys = new Set<Direction>();
  /** Pointer position on the pad, -1..1 each way (y up), while it is held. */
  private pad: { x: number; y: number } | null = null;
  private linkUp = false;
  private advertised = false;
  private advertising = false;
  private timer: unknown = null;

  constructor(private readonly target: DriveTarget, private readonly timers: Timers = GLOBAL_TIMERS) {}

  get held(): boolean {
    return this.keys.size > 0 || this.pad !== null;
  }

  get padPosition(): { x: number; y: number } | null {
    return this.pad === null ? null : { ...this.pad };
  }

  holdsKey(direction: Direction): boolean {
    return this.keys.has(direction);
  }

  /** The twist the held inputs ask for: the pad if held, else the keys. */
  command(): Twist {
    if (this.pad !== null) {
      return twist(dead(this.pad.y) * this.limitMps, -dead(this.pad.x) * this.maxTurnRadps);
    }
    const k = (d: Direction) => (this.keys.has(d) ? 1 : 0);
    return twist((k("forward") - k("back")) * this.limitMps, (k("left") - k("right")) * this.maxTurnRadps);
  }

  setMaxSpeed(mps: number): void {
    if (!(mps > 0) || !Number.isFinite(mps)) return;
    this.maxSpeedMps = mps;
    this.limitMps = Math.min(this.limitMps, mps);
    this.onChange();
  }

  setLimit(mps: number): void {
    if (!Number.isFinite(mps)) return;
    this.limitMps = clamp(mps, 0, this.maxSpeedMps);
    this.onChange();
  }

  /** The link came up or went down. Down: every input is forgotten, nothing more is sent. */
  setLinkUp(up: boolean): void {
    if (up === this.linkUp) return;
    this.linkUp = up;
    if (!up) {
      this.keys.clear();
      this.pad = null;
      this.stopTimer();
      this.status = "link-down";
    } else if (this.status === "link-down") {
      this.status = "idle";
    }
    this.onChange();
  }

  /** A key went down (not an auto-repeat of one already forgotten). false: ignored. */
  pressKey(direction: Direction): boolean {
    if (!this.linkUp) return false;
    this.keys.add(direction);
    this.engage();
    return true;
  }

  releaseKey(direction: Direction): void {
    if (this.keys.delete(direction)) this.released();
  }

  /** The pointer went down on the pad at (x, y), each -1..1 (y up). false: ignored. */
  pressPad(x: number, y: number): boolean {
    if (!this.linkUp) return false;
    this.pad = { x: clamp(x, -1, 1), y: clamp(y, -1, 1) };
    this.engage();
    return true;
  }

  /** The pointer moved; only counts while the pad is held. */
  movePad(x: number, y: number): void {
    if (this.pad === null) return;
    this.pad = { x: clamp(x, -1, 1), y: clamp(y, -1, 1) };
    this.onChange();
  }

  releasePad(): void {
    if (this.pad === null) return;
    this.pad = null;
    this.released();
  }

  /** Let go of everything and send a zero twist (focus lost, page hidden, Escape). */
  stop(): void {
    const wasDriving = this.held || this.timer !== null;
    this.keys.clear();
    this.pad = null;
    this.stopTimer();
    if (wasDriving) this.sendZero();
    if (this.status === "driving" || this.status === "advertising") this.status = "idle";
    this.onChange();
  }

  private engage(): void {
    this.onChange();
    if (this.timer !== null || this.advertising) return;
    if (this.advertised) {
      this.startSending();
      return;
    }
    // Advertise once; the client advertises again by itself after a reconnection.
    this.advertising = true;
    this.status = "advertising";
    this.onChange();
    this.target.advertise().then(() => {
      this.advertised = true;
      this.error = "";
    }, (error: Error) => {
      this.error = error.message;
    }).finally(() => {
      this.advertising = false;
      if (!this.advertised) {
        this.keys.clear();
        this.pad = null;
        this.status = this.linkUp ? "error" : "link-down";
      } else if (this.held && this.linkUp) {
        this.startSending();
      } else if (this.status === "advertising") {
        this.status = this.linkUp ? "idle" : "link-down";
      }
      this.onChange();
    });
  }

  private startSending(): void {
    this.status = "driving";
    this.send(this.command());
    this.timer = this.timers.setInterval(() => this.tick(), SEND_INTERVAL_MS);
    this.onChange();
  }

  private tick(): void {
    if (!this.held || !this.linkUp) {
      this.stopTimer();
      return;
    }
    this.send(this.command());
  }

  private released(): void {
    if (!this.held) {
      const wasSending = this.timer !== null;
      this.stopTimer();
      if (wasSending) this.sendZero();
      if (this.status === "driving") this.status = "idle";
    }
    this.onChange();
  }

  private sendZero(): void {
    if (this.linkUp && this.advertised) this.send(twist(0, 0));
  }

  private send(message: Twist): void {
    if (this.target.publish(message)) this.sent++;
  }

  private stopTimer(): void {
    if (this.timer !== null) this.timers.clearInterval(this.timer);
    this.timer = null;
  }
}

// -- the view ------------------------------------------------------------------------------------

const STATUS_TEXT: Record<DriveStatus, string> = {
  idle: "hold to drive",
  advertising: "advertising /cmd_vel…",
  driving: "driving · /cmd_vel at 10 Hz",
  "link-down": "link down · stopped",
  error: "could not advertise /cmd_vel",
};

/**
 * The pad: a square to press and drag (up = forward, left = turn left), which also takes the
 * arrow keys and WASD while it has keyboard focus (click it or Tab to it); Escape stops.
 */
export class TeleopPad {
  readonly root: HTMLElement;
  private readonly pad: HTMLElement;
  private readonly knob: HTMLElement;
  private readonly readout: HTMLElement;
  private readonly linear: HTMLElement;
  private readonly angular: HTMLElement;
  private readonly statusLine: HTMLElement;
  private readonly limit: HTMLInputElement;
  private readonly limitText: HTMLElement;
  private pointerId: number | null = null;

  constructor(readonly drive: TeleopDrive) {
    this.knob = el("div", { class: "knob" });
    this.pad = el("div", {
      class: "pad", tabindex: "0", role: "application", "data-testid": "teleop-pad",
      "aria-label": "Drive pad: press and drag, or hold the arrow keys or W A S D; Escape stops",
      "aria-describedby": "teleop-readout",
    }, el("span", { class: "axis-label up" }, "▲"), el("span", { class: "axis-label down" }, "▼"),
    el("span", { class: "axis-label left" }, "◀"), el("span", { class: "axis-label right" }, "▶"), this.knob);
    this.linear = el("span", { class: "linear" }, "0.00 m/s");
    this.angular = el("span", { class: "angular" }, "0.00 rad/s");
    this.readout = el("div", { class: "readout", id: "teleop-readout", "data-testid": "teleop-command", title: "linear.x · angular.z" },
      this.linear, " · ", this.angular);
    this.statusLine = el("div", { class: "drive-status", "data-testid": "teleop-status" });
    this.limit = el("input", { type: "range", min: "0.1", step: "0.1", id: "teleop-limit", "data-testid": "teleop-limit" });
    this.limitText = el("span", { class: "limit-value", "data-testid": "teleop-max-speed" });
    this.root = el("div", { class: "teleop", "data-testid": "teleop" },
      el("h4", {}, "Drive ", el("span", { class: "hint" }, "hold the pad, or focus it and use arrows / WASD")),
      el("div", { class: "teleop-body" }, this.pad,
        el("div", { class: "teleop-side" }, this.readout, this.statusLine,
          el("label", { class: "limit", for: "teleop-limit" }, "max speed ", this.limitText),
          this.limit)));
    this.limit.addEventListener("input", () => drive.setLimit(Number.parseFloat(this.limit.value)));
    this.listen();
    drive.onChange = () => this.render();
    this.render();
  }

  private padXY(event: PointerEvent): [number, number] {
    const r = this.pad.getBoundingClientRect();
    const x = ((event.clientX - r.left) / r.width) * 2 - 1;
    const y = 1 - ((event.clientY - r.top) / r.height) * 2;
    return [x, y];
  }

  private listen(): void {
    const pad = this.pad;
    pad.addEventListener("pointerdown", (event) => {
      if (event.button !== 0 || this.pointerId !== null) return;
      event.preventDefault();
      pad.focus();
      if (!this.drive.pressPad(...this.padXY(event))) return;
      this.pointerId = event.pointerId;
      try {
        pad.setPointerCapture(event.pointerId);
      } catch {
        // synthetic events have no capturable pointer: fine
      }
    });
    pad.addEventListener("pointermove", (event) => {
      if (event.pointerId === this.pointerId) this.drive.movePad(...this.padXY(event));
    });
    const up = (event: PointerEvent) => {
      if (event.pointerId !== this.pointerId) return;
      this.pointerId = null;
      this.drive.releasePad();
    };
    pad.addEventListener("pointerup", up);
    pad.addEventListener("pointercancel", up);
    pad.addEventListener("lostpointercapture", up);
    pad.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        this.drive.stop();
        return;
      }
      const direction = directionOfKey(event.key);
      if (direction === undefined || event.ctrlKey || event.metaKey || event.altKey) return;
      event.preventDefault(); // no scrolling with the arrows
      // An auto-repeat of a key the drive forgot (the link dropped meanwhile) is not a press.
      if (event.repeat && !this.drive.holdsKey(direction)) return;
      if (!this.drive.holdsKey(direction)) this.drive.pressKey(direction);
    });
    pad.addEventListener("keyup", (event) => {
      const direction = directionOfKey(event.key);
      if (direction !== undefined) this.drive.releaseKey(direction);
    });
    // Keys only count while the pad has focus: leaving it lets go of them.
    pad.addEventListener("blur", () => {
      if (this.drive.held && this.pointerId === null) this.drive.stop();
    });
  }

  /** The pointer is forgotten too when the drive is stopped from outside (link, focus). */
  forgetPointer(): void {
    if (this.pointerId !== null) {
      try {
        this.pad.releasePointerCapture(this.pointerId);
      } catch {
        // already released
      }
    }
    this.pointerId = null;
  }

  render(): void {
    const drive = this.drive;
    if (!drive.held && this.pointerId !== null && drive.padPosition === null) this.forgetPointer();
    const command = drive.command();
    setText(this.linear, `${fixed(command.linear.x, 2)} m/s`);
    setText(this.angular, `${fixed(command.angular.z, 2)} rad/s`);
    setText(this.statusLine, drive.status === "error" && drive.error ? `${STATUS_TEXT.error}: ${drive.error}` : STATUS_TEXT[drive.status]);
    this.statusLine.className = `drive-status drive-${drive.status}`;
    this.limit.max = String(drive.maxSpeedMps);
    if (document.activeElement !== this.limit) this.limit.value = String(drive.limitMps);
    setText(this.limitText, `${fixed(drive.limitMps, 1)} of ${fixed(drive.maxSpeedMps, 1)} m/s`);
    this.pad.classList.toggle("held", drive.held);
    this.pad.classList.toggle("disabled", drive.status === "link-down");
    // The knob: where the command points (pad or keys), as a fraction of full deflection.
    const fx = drive.maxTurnRadps > 0 ? -command.angular.z / drive.maxTurnRadps : 0;
    const fy = drive.limitMps > 0 ? command.linear.x / drive.limitMps : 0;
    const at = drive.padPosition ?? { x: fx, y: fy };
    this.knob.style.left = `${(at.x + 1) * 50}%`;
    this.knob.style.top = `${(1 - at.y) * 50}%`;
  }
}
