// Charts are drawn by plotly.js (served by this server); this module loads it and
// shapes the data.
import { BASELINES, HEADLINE_METRICS, HIGHER_IS_BETTER } from "../rules.js";
import { bytes, el } from "./dom.js";

// plotly.js is 4.8 MB of script: parsing it was most of every page load here, the
// jobs list's too. Only the pages that draw charts (a job, Compare, a sweep) import
// this module, so plotly is loaded when it is first imported, beside the page's own
// requests, and not by index.html (docs/benchmarks.md, ui_page_load).
const PLOTLY_URL = "/ui/vendor/plotly.min.js";
// After a failed load, the next draw asks again at most this often (a live page draws
// on every batch of records).
const PLOTLY_RETRY_MS = 5000;
const PLOTLY_FAILED = "The charts could not be drawn: their script did not load "
  + "(reload the page to try again).";
let plotlyLoading = null;
let plotlyFailedAt = -Infinity;
// While plotly loads, each chart's latest draw (a live page may ask several times):
// only that one is drawn once plotly has loaded.
const waiting = new Map();
// Each chart's latest draw, by number: plot() resolves for that one only.
const requested = new WeakMap();
let draws = 0;

function loadPlotly() {
  if (window.Plotly || plotlyLoading || performance.now() - plotlyFailedAt < PLOTLY_RETRY_MS) {
    return;
  }
  plotlyLoading = new Promise((resolve, reject) => {
    const script = el("script", { src: PLOTLY_URL });
    script.addEventListener("load", resolve);
    script.addEventListener("error", () => { script.remove(); reject(); });
    document.head.append(script);
  });
  plotlyLoading.then(() => {
    for (const [node, draw] of waiting) if (node.isConnected) draw();
    waiting.clear();
  }, () => {
    plotlyLoading = null;
    plotlyFailedAt = performance.now();
    for (const node of waiting.keys()) showFailure(node);
    waiting.clear();
  });
}

function showFailure(node) {
  if (!node.querySelector(":scope > .chart-failed")) {
    node.append(el("p", { class: "error chart-failed", role: "alert" }, PLOTLY_FAILED));
  }
}

loadPlotly();

// Long runs are downsampled for drawing: each bucket of rounds keeps its first, min
// and max point, so spikes stay visible while a 10,000-round job draws ~2,000 points.
export const DEFAULT_MAX_POINTS = 2000;
export const DEFAULT_MAX_RASTER_COLUMNS = 600;

// `#…?points=all` draws every point and every raster column (for measuring).
function everyPoint() {
  return new URLSearchParams(location.hash.split("?")[1] || "").get("points") === "all";
}

export function maxPoints() {
  return everyPoint() ? Infinity : DEFAULT_MAX_POINTS;
}

export function downsample(xs, ys, limit = maxPoints()) {
  if (xs.length <= limit) return { x: xs, y: ys };
  const buckets = Math.floor(limit / 3);
  const size = xs.length / buckets;
  const x = [];
  const y = [];
  for (let b = 0; b < buckets; b += 1) {
    const start = Math.floor(b * size);
    const end = Math.min(xs.length, Math.floor((b + 1) * size));
    let lo = start;
    let hi = start;
    for (let i = start; i < end; i += 1) {
      if (ys[i] < ys[lo]) lo = i;
      if (ys[i] > ys[hi]) hi = i;
    }
    for (const i of [...new Set([start, lo, hi])].sort((a, c) => a - c)) {
      x.push(xs[i]);
      y.push(ys[i]);
    }
  }
  const last = xs.length - 1;
  if (x[x.length - 1] !== xs[last]) { x.push(xs[last]); y.push(ys[last]); }
  return { x, y };
}

const LAYOUT = {
  margin: { l: 56, r: 16, t: 36, b: 90 },
  height: 330,
  paper_bgcolor: "rgba(0,0,0,0)",
  plot_bgcolor: "#fff",
  legend: { orientation: "h", y: -0.3, yanchor: "top" },
  font: { family: "system-ui, sans-serif", size: 12 },
};
const CONFIG = { displaylogo: false, responsive: true };
// Plotly's mode bar (shown on hover) sits in the chart's top right corner: a centred
// title in the top margin lay under it. A title stands on the plot area's top left
// edge instead, below the mode bar's strip (TITLE_ROOM px of top margin, the chart
// taller by as much, so the plot area keeps its size).
const TITLE = { x: 0, xref: "paper", xanchor: "left", y: 1, yref: "paper", yanchor: "bottom",
  pad: { b: 8 } };
const TITLE_ROOM = 64;

// Draws (or redraws) a chart. The promise resolves once the chart shows this draw,
// and never if a later draw of the chart was asked for meanwhile (its caller would
// mark the chart with what it no longer shows) or plotly did not load (the card says
// so).
export function plot(node, traces, layout = {}) {
  const titled = { ...layout };
  // Long tick labels (1.2e-9, 5×10¹⁸³ from a diverging run) widen the margin instead
  // of being cut, on every chart's value axes.
  for (const axis of ["yaxis", "yaxis2"]) {
    if (axis === "yaxis" || layout[axis]) titled[axis] = { automargin: true, ...layout[axis] };
  }
  if (layout.title) {
    const margin = { ...LAYOUT.margin, ...layout.margin };
    const room = Math.max(0, TITLE_ROOM - margin.t);
    titled.title = { ...TITLE, ...layout.title };
    titled.margin = { ...margin, t: margin.t + room };
    titled.height = (layout.height ?? LAYOUT.height) + room;
  }
  // The chart's height held from its first draw, while plotly may still be loading:
  // the page below it does not jump when it draws (a link pressed meanwhile moved).
  node.style.minHeight = `${titled.height ?? LAYOUT.height}px`;
  // react() reuses the chart: redraws keep the user's zoom (uirevision) and are cheap.
  const draw = () => {
    node.querySelector(":scope > .chart-failed")?.remove();
    return window.Plotly.react(node, traces, { ...LAYOUT, uirevision: "keep", ...titled },
      CONFIG);
  };
  const id = (draws += 1);
  requested.set(node, id);
  const drawn = window.Plotly ? draw() : new Promise((resolve) => {
    waiting.set(node, () => resolve(draw()));
    loadPlotly();
    if (!plotlyLoading) {
      waiting.delete(node);
      showFailure(node);
    }
  });
  return drawn.then(() => new Promise((resolve) => {
    if (requested.get(node) === id) resolve();
  }));
}

// Plotly reads trace names and hover text as its own HTML subset (<b>, <a href>,
// <br>); a job name or a sweep parameter is the user's text, so it is shown as written.
export function plainText(text) {
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export function line(name, xs, ys, extra = {}) {
  const { x, y } = downsample(xs, ys);
  return { type: "scatter", mode: "lines", name: plainText(name), x, y, ...extra };
}

// A job's uploads a round jump between none and every replica from round to round:
// past ROLLING_FROM rounds a line of them is a solid band. It is drawn then as their
// mean over the last `window` rounds (10, 100, … : about a fiftieth of the run, so
// the legend keeps its window while a live run grows), and the legend says so.
export const ROLLING_FROM = 200;

export function uploadsPerRound(xs, ys, extra = {}) {
  if (xs.length <= ROLLING_FROM) return line("uploads this round", xs, ys, extra);
  const window = 10 ** Math.ceil(Math.log10(xs.length / 50));
  const means = new Array(ys.length);
  let sum = 0;
  for (let i = 0; i < ys.length; i += 1) {
    sum += ys[i] - (i >= window ? ys[i - window] : 0);
    means[i] = sum / Math.min(i + 1, window);
  }
  return line(`uploads a round (mean of the last ${window} rounds)`, xs, means, extra);
}

// Replicas × rounds: 1 where the coordinator used a replica's upload. Beyond
// `columns` rounds, a cell is the fraction of its rounds in which the replica uploaded.
export function rasterTrace(rounds, uploaded, replicas,
  columns = everyPoint() ? Infinity : DEFAULT_MAX_RASTER_COLUMNS) {
  const bins = Math.max(1, Math.ceil(rounds.length / columns));
  const width = Math.ceil(rounds.length / bins);
  const z = Array.from({ length: replicas }, () => new Array(width).fill(0));
  const x = new Array(width);
  for (let i = 0; i < rounds.length; i += 1) {
    const column = Math.floor(i / bins);
    if (x[column] === undefined) x[column] = rounds[i];
    for (const rank of uploaded[i] || []) {
      if (rank < replicas) z[rank][column] += 1 / bins;
    }
  }
  return {
    type: "heatmap", x, y: Array.from({ length: replicas }, (_, r) => r), z,
    zmin: 0, zmax: 1, colorscale: [[0, "#f4f6f8"], [1, "#1f5fbf"]], showscale: bins > 1,
    hovertemplate: bins > 1 ? "round %{x}, replica %{y}: %{z:.0%} uploaded<extra></extra>"
      : "round %{x}, replica %{y}: %{z}<extra></extra>",
  };
}

// Validation metrics in order of preference: a task's headline metric first (the
// server's list, service/schemas/metric_names.py), then val_loss, which every task
// reports. Each task has one headline and val_loss, so the first a job has is its
// task's headline.
export const VALIDATION_METRICS = [...HEADLINE_METRICS, "val_loss"];

export function validationMetric(names) {
  return VALIDATION_METRICS.find((n) => names.has(n));
}

// An axis of a chart with nothing to draw yet: plotly's default ranges (-1..4, -1..6)
// would read as data, so it shows no ticks, grid or zero line until there is some.
export function emptyAxis(hasData) {
  return hasData ? {} : { showticklabels: false, showgrid: false, zeroline: false };
}

// The baseline a headline metric is read against, where the server names one (a
// language model's unigram perplexity, a classifier's chance accuracy): the name of
// its series, or undefined.
export function baselineOf(name) {
  return BASELINES[name];
}

// A finished job's headline that is no better than its baseline (an accuracy no
// higher, a perplexity or MSE no lower): [headline, baseline, its value], or null.
export function noBetterThanBaseline(finalMetrics) {
  for (const [headline, baseline] of Object.entries(BASELINES)) {
    const value = finalMetrics?.[headline];
    const reference = finalMetrics?.[baseline];
    if (value == null || reference == null) continue;
    if (HIGHER_IS_BETTER.includes(headline) ? value <= reference : value >= reference) {
      return [headline, baseline, reference];
    }
  }
  return null;
}

// The optimality gap falls by orders of magnitude (to 1e-8 and below): on a linear
// axis every round after the first few reads as zero.
const LOG_SCALE_METRICS = new Set(["optimality_gap"]);

// A metric's value axis (plotly layout).
export function valueAxis(name) {
  return LOG_SCALE_METRICS.has(name) ? { type: "log", exponentformat: "power" } : {};
}

// A log axis of byte counts with its ticks in binary units, as dom.js's bytes() and the
// tables beside the charts write them (plotly's own tick labels would read 1.048576M):
// powers of two, a few of them across the data's range.
export function bytesAxis(title, values, maxTicks = 8) {
  const positive = values.filter((v) => Number.isFinite(v) && v > 0);
  const axis = { type: "log", title: { text: title } };
  if (positive.length === 0) return { ...axis, ...emptyAxis(false) };
  // Not Math.min(...positive): a long run's points would overflow a call's arguments.
  const smallest = positive.reduce((a, b) => Math.min(a, b));
  const largest = positive.reduce((a, b) => Math.max(a, b));
  const low = Math.floor(Math.log2(smallest));
  const high = Math.ceil(Math.log2(largest));
  const step = Math.max(1, Math.ceil((high - low + 1) / maxTicks));
  let tickvals = [];
  for (let e = Math.floor(low / step) * step; e <= high; e += step) tickvals.push(2 ** e);
  // Data within about a doubling (a sweep's trials: 6.6 to 9 KiB) would get one tick
  // or none: quarter steps between the powers of two then (6, 7, 8, 10 KiB …).
  const inside = (v) => v >= smallest && v <= largest;
  if (tickvals.filter(inside).length < 2) {
    tickvals = [];
    for (let e = low; e <= high; e += 1) {
      for (const m of [1, 1.25, 1.5, 1.75]) tickvals.push(m * 2 ** e);
    }
  }
  return { ...axis, tickmode: "array", tickvals, ticktext: tickvals.map(bytes) };
}
