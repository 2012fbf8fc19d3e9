// Charts in plain SVG: metric results as lines with a legend, and the
// volume histogram above log lines as bars stacked by level. Colours come
// from the style sheet (classes), so both follow the light or dark theme.

import { escapeHtml, formatTick, formatValue, formatMs } from "./format.js";
import { levelClass } from "./logs.js";

const SVG = "http://www.w3.org/2000/svg";
const PALETTE = 10;
const M = { left: 56, right: 14, top: 10, bottom: 24 };

/** About `count` round values covering `lo`..`hi`. */
export function ticks(lo, hi, count = 5, integer = false) {
  if (!(hi > lo)) return [lo];
  const raw = integer ? Math.max(1, (hi - lo) / count) : (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** Round times (ms) for the x axis. */
function timeTicks(start, end, count = 6) {
  const steps = [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800].map((s) => s * 1000);
  const want = (end - start) / count;
  const step = steps.find((s) => s >= want) ?? want;
  const offset = new Date(start).getTimezoneOffset() * 60000;
  const out = [];
  for (let t = Math.ceil((start - offset) / step) * step + offset; t <= end; t += step) out.push(t);
  return out;
}

function el(name, attrs = {}, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function frame(container, height) {
  const width = Math.max(320, Math.floor(container.clientWidth || 800));
  const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  return { svg, width, height, w: width - M.left - M.right, h: height - M.top - M.bottom };
}

function axes(f, start, end, lo, hi, integer = false) {
  const x = (t) => M.left + ((t - start) / (end - start)) * f.w;
  const y = (v) => M.top + f.h - ((v - lo) / (hi - lo || 1)) * f.h;
  const g = el("g", { class: "axes" });
  for (const v of ticks(lo, hi, integer ? 3 : 5, integer)) {
    g.append(el("line", { x1: M.left, x2: M.left + f.w, y1: y(v), y2: y(v), class: "grid" }));
    g.append(el("text", { x: M.left - 6, y: y(v) + 4, "text-anchor": "end" }, formatValue(v)));
  }
  for (const t of timeTicks(start, end)) {
    g.append(el("line", { x1: x(t), x2: x(t), y1: M.top + f.h, y2: M.top + f.h + 4, class: "tick" }));
    g.append(el("text", { x: x(t), y: M.top + f.h + 17, "text-anchor": "middle" }, formatTick(t, end - start)));
  }
  g.append(el("line", { x1: M.left, x2: M.left + f.w, y1: M.top + f.h, y2: M.top + f.h, class: "axis" }));
  f.svg.append(g);
  return { x, y };
}

/** The text of a label set: `{a="1", b="2"}`. */
export function labelText(metric) {
  const names = Object.keys(metric ?? {}).sort();
  return `{${names.map((n) => `${n}=${JSON.stringify(metric[n])}`).join(", ")}}`;
}

/**
 * Draws a `matrix` result as lines over [startMs, endMs] with a legend;
 * clicking a legend entry shows that series alone (again to show all).
 */
export function drawSeries(container, result, startMs, endMs, stepMs) {
  container.innerHTML = "";
  const series = result.map((s, i) => ({
    name: labelText(s.metric),
    cls: `s${i % PALETTE}`,
    points: (s.values ?? []).map(([t, v]) => [t * 1000, Number(v)]),
  }));
  let only = null;
  const fig = document.createElement("figure");
  fig.className = "series";
  const plot = document.createElement("div");
  plot.className = "plot";
  const tip = document.createElement("div");
  tip.className = "tooltip";
  tip.hidden = true;
  const legend = document.createElement("ul");
  legend.className = "legend";
  fig.append(plot, legend);
  container.append(fig);

  const paint = () => {
    plot.innerHTML = "";
    const visible = series.filter((s) => only === null || s.name === only);
    const values = visible.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
    let lo = Math.min(0, ...values);
    let hi = Math.max(...values, lo + 1e-9);
    if (hi === lo) hi = lo + 1;
    const f = frame(plot, 280);
    f.svg.setAttribute("aria-label", `Graph of ${series.length} series`);
    const { x, y } = axes(f, startMs, endMs, lo, hi);
    for (const s of visible) {
      let d = "";
      let prev = null;
      for (const [t, v] of s.points) {
        if (!Number.isFinite(v)) continue;
        d += `${prev !== null && t - prev <= stepMs * 1.5 ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
        prev = t;
      }
      const path = el("path", { d, class: `line ${s.cls}` });
      path.append(el("title", {}, s.name));
      f.svg.append(path);
      if (s.points.length === 1) {
        const [t, v] = s.points[0];
        f.svg.append(el("circle", { cx: x(t), cy: y(v), r: 3, class: `dot ${s.cls}` }));
      }
    }
    const cursor = el("line", { y1: M.top, y2: M.top + f.h, class: "cursor", visibility: "hidden" });
    f.svg.append(cursor);
    f.svg.addEventListener("mousemove", (ev) => {
      const r = f.svg.getBoundingClientRect();
      const px = ev.clientX - r.left;
      const t = startMs + ((px - M.left) / f.w) * (endMs - startMs);
      const near = visible
        .map((s) => {
          let best = null;
          for (const p of s.points) if (!best || Math.abs(p[0] - t) < Math.abs(best[0] - t)) best = p;
          return best && { s, p: best };
        })
        .filter((n) => n && Math.abs(n.p[0] - t) <= stepMs)
        .sort((a, b) => b.p[1] - a.p[1])
        .slice(0, 8);
      if (!near.length) {
        tip.hidden = true;
        cursor.setAttribute("visibility", "hidden");
        return;
      }
      const at = near[0].p[0];
      cursor.setAttribute("x1", x(at));
      cursor.setAttribute("x2", x(at));
      cursor.setAttribute("visibility", "visible");
      tip.innerHTML = `<strong>${escapeHtml(formatMs(at))}</strong>` +
        near.map((n) => `<div><span class="swatch ${n.s.cls}"></span>${escapeHtml(n.s.name)}: ${escapeHtml(formatValue(n.p[1]))}</div>`).join("");
      tip.hidden = false;
      tip.style.left = `${Math.min(px + 12, f.width - 260)}px`;
      tip.style.top = `${M.top}px`;
    });
    f.svg.addEventListener("mouseleave", () => {
      tip.hidden = true;
      cursor.setAttribute("visibility", "hidden");
    });
    plot.append(f.svg, tip);
  };

  legend.innerHTML = series
    .map((s) => `<li><button type="button" aria-pressed="false" data-name="${escapeHtml(s.name)}"><span class="swatch ${s.cls}"></span>${escapeHtml(s.name)}</button></li>`)
    .join("");
  legend.addEventListener("click", (ev) => {
    const b = ev.target.closest("button");
    if (!b) return;
    only = only === b.dataset.name ? null : b.dataset.name;
    for (const x of legend.querySelectorAll("button")) x.setAttribute("aria-pressed", String(x.dataset.name === only));
    paint();
  });
  paint();
}

const LEVEL_ORDER = ["error", "warn", "info", "debug", "trace", "unknown"];

/**
 * Draws the volume histogram: a `matrix` of line counts by level, as bars
 * stacked by level; a click on a bar calls `onZoom(startMs, endMs)`.
 */
export function drawHistogram(container, result, startMs, endMs, stepMs, onZoom) {
  container.innerHTML = "";
  const buckets = new Map();
  const levels = new Set();
  for (const s of result) {
    const lvl = levelClass(s.metric?.detected_level ?? s.metric?.level);
    levels.add(lvl);
    for (const [t, v] of s.values ?? []) {
      const ms = t * 1000;
      const b = buckets.get(ms) ?? {};
      b[lvl] = (b[lvl] ?? 0) + Number(v);
      buckets.set(ms, b);
    }
  }
  const totals = [...buckets.values()].map((b) => Object.values(b).reduce((a, v) => a + v, 0));
  const hi = Math.max(1, ...totals);
  const f = frame(container, 110);
  f.svg.classList.add("histogram");
  f.svg.setAttribute("aria-label", "Log volume by level");
  const { x, y } = axes(f, startMs, endMs, 0, hi, true);
  const bw = Math.max(1, (stepMs / (endMs - startMs)) * f.w - 1);
  for (const [ms, b] of buckets) {
    let base = 0;
    for (const lvl of LEVEL_ORDER) {
      const v = b[lvl];
      if (!v) continue;
      const rect = el("rect", {
        x: x(ms - stepMs) + 0.5,
        y: y(base + v),
        width: bw,
        height: Math.max(0.5, y(base) - y(base + v)),
        class: `bar lvl-${lvl}`,
      });
      rect.append(el("title", {}, `${formatMs(ms - stepMs)}: ${v} ${lvl}`));
      rect.addEventListener("click", () => onZoom(ms - stepMs, ms));
      f.svg.append(rect);
      base += v;
    }
  }
  const legend = document.createElement("ul");
  legend.className = "legend levels";
  legend.innerHTML = LEVEL_ORDER.filter((l) => levels.has(l))
    .map((l) => `<li><span class="swatch lvl-${l}"></span>${l}</li>`)
    .join("");
  container.append(f.svg, legend);
}
