/**
 * The latest frame of a sensor_msgs/CompressedImage topic, as an <img> of a blob URL.
 * At most one image decode in flight: frames that arrive meanwhile replace each other, so a
 * slow decode never queues work. Bytes that do not decode as an image (a corrupt frame, or the
 * simulator's random payloads) show a panel with the frame's size and rate instead.
 */
import type { TelemetryMessage } from "../index.js";
import { bytes, el, fixed, setText } from "./format.js";

interface CompressedImage {
  format?: string;
  data?: Uint8Array;
}

export class CameraView {
  readonly root: HTMLElement;
  private readonly img: HTMLImageElement;
  private readonly fallback: HTMLElement;
  private readonly fallbackText: HTMLElement;
  private readonly caption: HTMLElement;
  private readonly title: HTMLElement;
  private latest: TelemetryMessage | null = null;
  private shown: TelemetryMessage | null = null;
  private loading = false;
  private url: string | null = null;
  topic: string | null = null;
  frames = 0;
  undecodable = 0;

  constructor() {
    this.img = el("img", { alt: "latest camera frame", "data-testid": "camera-image" });
    this.img.hidden = true;
    this.fallbackText = el("div", { class: "fallback-text" });
    this.fallback = el("div", { class: "camera-fallback", "data-testid": "camera-fallback" },
      el("div", { class: "camera-icon" }, "◉"), this.fallbackText);
    this.caption = el("div", { class: "caption", "data-testid": "camera-caption" }, "no camera topic");
    this.title = el("span", { class: "topic-name" }, "camera");
    this.root = el("section", { class: "card camera" }, el("h3", {}, this.title), el("div", { class: "frame-box" }, this.img, this.fallback), this.caption);
    this.img.addEventListener("load", () => this.loaded(true));
    this.img.addEventListener("error", () => this.loaded(false));
    this.setFallback("waiting for a frame…");
  }

  setTopic(topic: string | null): void {
    this.topic = topic;
    setText(this.title, topic ?? "camera");
  }

  offer(message: TelemetryMessage): void {
    this.latest = message;
    this.frames++;
  }

  /** Per animation frame: start decoding the newest frame if none is being decoded. */
  render(rateHz: number): void {
    const frame = this.latest;
    if (frame !== null) {
      const data = frame.data as CompressedImage;
      const size = data?.data?.length ?? frame.size;
      setText(this.caption, `${data?.format ?? "?"} · ${bytes(size)} · ${fixed(rateHz)} fps · ${this.frames} frames`);
    }
    if (this.loading || frame === null || frame === this.shown) return;
    this.shown = frame;
    const data = frame.data as CompressedImage;
    if (!(data?.data instanceof Uint8Array)) {
      this.setFallback("frame has no image bytes");
      return;
    }
    this.loading = true;
    const format = (data.format ?? "jpeg").split(";")[0].trim().toLowerCase();
    const previous = this.url;
    // Copy: the bytes are a view into the frame buffer; a Blob of a view would copy anyway.
    this.url = URL.createObjectURL(new Blob([data.data.slice()], { type: `image/${format === "jpg" ? "jpeg" : format}` }));
    this.img.src = this.url;
    if (previous !== null) URL.revokeObjectURL(previous);
  }

  private loaded(ok: boolean): void {
    this.loading = false;
    if (ok) {
      this.img.hidden = false;
      this.fallback.hidden = true;
    } else {
      this.undecodable++;
      const data = this.shown?.data as CompressedImage | undefined;
      this.setFallback(`latest frame does not decode as ${data?.format ?? "an image"} (${bytes(data?.data?.length ?? 0)}); still receiving`);
    }
  }

  private setFallback(text: string): void {
    this.img.hidden = true;
    this.fallback.hidden = false;
    setText(this.fallbackText, text);
  }
}
