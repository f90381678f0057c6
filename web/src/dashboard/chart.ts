/**
 * One live time-series chart per topic (uPlot: canvas, ~50 KB, draws thousands of points per
 * frame). Messages only append to arrays; `render()`, called from requestAnimationFrame, trims
 * to the time window and hands the arrays to uPlot once per displayed frame at most.
 */
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { accessor } from "./fields.js";
import { el, setText, value } from "./format.js";

const COLORS = ["#4fc3f7", "#ffb74d", "#81c784", "#e57373", "#ba68c8", "#fff176", "#4db6ac", "#f06292"];
const WINDOW_S = 20;

/** Axis labels: local wall-clock time of the bridge's receive time, to the second. */
function clockTime(seconds: number): string {
  const d = new Date(seconds * 1000);
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
}

interface Series {
  path: string;
  get: (data: unknown) => number | undefined;
  values: (number | null)[];
  latest: HTMLElement;
}

export class TopicChart {
  readonly root: HTMLElement;
  private readonly plotBox: HTMLElement;
  private readonly legend: HTMLElement;
  private readonly waiting: HTMLElement;
  private plot: uPlot | null = null;
  private times: number[] = [];
  private series: Series[] = [];
  private dirty = false;
  private width = 0;
  private readonly onRemovePath: (path: string) => void;

  constructor(readonly topic: string, paths: string[], onRemovePath: (path: string) => void) {
    this.legend = el("div", { class: "legend" });
    this.plotBox = el("div", { class: "plot" });
    this.waiting = el("div", { class: "waiting" }, `waiting for ${topic}…`);
    this.plotBox.hidden = true;
    this.root = el("section", { class: "card chart", "data-chart": topic },
      el("h3", {}, el("span", { class: "topic-name" }, topic)), this.legend, this.plotBox, this.waiting);
    this.onRemovePath = onRemovePath;
    for (const path of paths) this.addPath(path);
  }

  get paths(): string[] {
    return this.series.map((s) => s.path);
  }

  addPath(path: string): void {
    if (this.series.some((s) => s.path === path)) return;
    const color = COLORS[this.series.length % COLORS.length];
    const latest = el("span", { class: "value", "data-series": path }, "–");
    const remove = el("button", { class: "remove", title: `stop plotting ${path}` }, "×");
    remove.addEventListener("click", () => this.onRemovePath(path));
    this.legend.append(el("span", { class: "legend-item", "data-path": path },
      el("i", { style: `background:${color}` }), `${path} `, latest, remove));
    this.series.push({ path, get: accessor(path), values: this.times.map(() => null), latest });
    this.rebuild();
  }

  removePath(path: string): void {
    const index = this.series.findIndex((s) => s.path === path);
    if (index < 0) return;
    this.series.splice(index, 1);
    this.legend.querySelector(`[data-path="${CSS.escape(path)}"]`)?.remove();
    this.rebuild();
  }

  /** One message: O(number of series), no drawing. */
  push(timeS: number, data: unknown): void {
    const n = this.times.length;
    if (n > 0 && timeS < this.times[n - 1]) return; // out of order (another batch): drop, keep x sorted
    this.times.push(timeS);
    for (const s of this.series) s.values.push(s.get(data) ?? null);
    this.dirty = true;
  }

  /** Called once per animation frame. */
  render(): void {
    const width = this.plotBox.clientWidth;
    if (this.plot !== null && width > 0 && width !== this.width) {
      this.width = width;
      this.plot.setSize({ width, height: this.height() });
    }
    if (!this.dirty) return;
    this.dirty = false;
    const n = this.times.length;
    if (n === 0) return;
    const cutoff = this.times[n - 1] - WINDOW_S;
    let drop = 0;
    while (drop < n && this.times[drop] < cutoff) drop++;
    if (drop > 0) {
      this.times.splice(0, drop);
      for (const s of this.series) s.values.splice(0, drop);
    }
    if (this.plot === null) {
      this.waiting.hidden = true;
      this.plotBox.hidden = false;
      this.rebuild();
    }
    this.plot?.setData([this.times, ...this.series.map((s) => s.values)] as uPlot.AlignedData);
    for (const s of this.series) setText(s.latest, value(s.values[s.values.length - 1] ?? undefined));
  }

  private height(): number {
    return 170;
  }

  private rebuild(): void {
    this.plot?.destroy();
    this.plot = null;
    // No plot before the first sample: an empty time axis would show 1970.
    if (this.series.length === 0 || this.times.length === 0) return;
    this.width = this.plotBox.clientWidth || 600;
    const axis = { stroke: "#9aa4b2", grid: { stroke: "#2a3140", width: 1 }, ticks: { stroke: "#2a3140", width: 1 } };
    this.plot = new uPlot({
      width: this.width,
      height: this.height(),
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: {
        // A window that scrolls with the newest sample, not one that jumps with the data range.
        x: { time: true, range: (_u, _min, max) => [max - WINDOW_S, max] },
      },
      axes: [{ ...axis, values: (_u, ticks) => ticks.map(clockTime) }, { ...axis, size: 60 }],
      series: [{}, ...this.series.map((s, i) => ({ label: s.path, stroke: COLORS[i % COLORS.length], width: 1.5, points: { show: false } }))],
    }, [this.times, ...this.series.map((s) => s.values)] as uPlot.AlignedData, this.plotBox);
  }

  destroy(): void {
    this.plot?.destroy();
    this.root.remove();
  }
}
