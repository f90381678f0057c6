/**
 * E-stop buttons: engage and release through a std_srvs/srv/SetBool service; the state shown
 * is the rover's own, from its latched e-stop topic, not the buttons' last press.
 */
import { el, setText } from "./format.js";

export const ESTOP_SERVICE = "/rover_sim/set_estop";
export const ESTOP_TOPIC = "/estop";

/** A SetBool call: resolves with the response's {success, message}. */
export type SetBool = (data: boolean) => Promise<{ success?: boolean; message?: string }>;

export class EstopControl {
  readonly root: HTMLElement;
  private readonly engage: HTMLButtonElement;
  private readonly release: HTMLButtonElement;
  private readonly state: HTMLElement;
  private readonly result: HTMLElement;
  private calls = 0;

  constructor(private readonly setBool: SetBool) {
    this.engage = el("button", { type: "button", class: "estop-button", "data-testid": "estop-engage", title: `${ESTOP_SERVICE} true` }, "E-STOP");
    this.engage.setAttribute("aria-label", "Engage the e-stop");
    this.release = el("button", { type: "button", class: "release-button", "data-testid": "estop-release", title: `${ESTOP_SERVICE} false` }, "Release");
    this.release.setAttribute("aria-label", "Release the e-stop");
    this.state = el("div", { class: "estop-state", "data-testid": "estop-state" }, "e-stop state unknown");
    this.result = el("div", { class: "estop-result", "data-testid": "estop-result", role: "status", "aria-live": "polite" });
    this.root = el("div", { class: "estop-control", "data-testid": "estop-control" },
      el("div", { class: "estop-buttons" }, this.engage, this.release),
      el("div", { class: "estop-info" }, this.state, this.result));
    this.engage.addEventListener("click", () => this.call(true));
    this.release.addEventListener("click", () => this.call(false));
  }

  private call(data: boolean): void {
    const call = ++this.calls;
    setText(this.result, data ? "engaging…" : "releasing…");
    this.result.className = "estop-result";
    this.setBool(data).then((values) => {
      if (call !== this.calls) return;
      const ok = values.success !== false;
      setText(this.result, `${ok ? (data ? "engage" : "release") + " accepted" : "refused"}${values.message ? `: ${values.message}` : ""}`);
      this.result.className = `estop-result ${ok ? "ok" : "failed"}`;
    }, (error: Error) => {
      if (call !== this.calls) return;
      setText(this.result, `${data ? "engage" : "release"} failed: ${error.message}`);
      this.result.className = "estop-result failed";
    });
  }

  /** The rover's e-stop state from its topic (undefined: no message yet). */
  setState(engaged: boolean | undefined): void {
    setText(this.state, engaged === undefined ? "e-stop state unknown" : engaged ? "E-STOP ENGAGED" : "e-stop released");
    this.state.className = `estop-state ${engaged === undefined ? "" : engaged ? "engaged" : "released"}`;
  }

  /** While the link is down a press cannot reach the rover: the buttons say so. */
  setEnabled(enabled: boolean): void {
    this.engage.disabled = !enabled;
    this.release.disabled = !enabled;
  }
}
