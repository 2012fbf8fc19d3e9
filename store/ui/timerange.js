// The time range: relative (`now-1h` to `now`) or absolute (two instants),
// as the URL keeps it, and the picker's controls.

import { parseDuration, durationText } from "./format.js";

/** The relative choices of the picker: [duration, label]. */
export const RELATIVE = [
  ["5m", "Last 5 minutes"],
  ["15m", "Last 15 minutes"],
  ["30m", "Last 30 minutes"],
  ["1h", "Last 1 hour"],
  ["3h", "Last 3 hours"],
  ["6h", "Last 6 hours"],
  ["12h", "Last 12 hours"],
  ["24h", "Last 24 hours"],
  ["2d", "Last 2 days"],
  ["7d", "Last 7 days"],
  ["30d", "Last 30 days"],
];

/**
 * Milliseconds since the epoch of one end of the range: `now`, `now-<duration>`,
 * a number of milliseconds, or an RFC 3339 time. NaN if it is none of them.
 */
export function resolveTime(text, nowMs) {
  const t = String(text).trim();
  if (t === "now") return nowMs;
  if (t.startsWith("now-")) {
    const d = parseDuration(t.slice(4));
    return Number.isNaN(d) ? NaN : nowMs - d;
  }
  if (/^\d+$/.test(t)) return Number(t);
  const ms = Date.parse(t);
  return Number.isNaN(ms) ? NaN : ms;
}

/** Both ends in milliseconds, or an error message. */
export function resolveRange(from, to, nowMs = Date.now()) {
  const start = resolveTime(from, nowMs);
  const end = resolveTime(to, nowMs);
  if (Number.isNaN(start)) return { error: `invalid start time ${JSON.stringify(from)}` };
  if (Number.isNaN(end)) return { error: `invalid end time ${JSON.stringify(to)}` };
  if (start >= end) return { error: "the start of the range must be before its end" };
  return { start, end };
}

/** The picker's value for a range: a relative duration, or `custom`. */
export function pickerValue(from, to) {
  if (to === "now" && from.startsWith("now-")) {
    const d = from.slice(4);
    if (RELATIVE.some(([v]) => v === d)) return d;
  }
  return "custom";
}

/** A range as words, for the page title and status. */
export function describe(from, to) {
  const v = pickerValue(from, to);
  const rel = RELATIVE.find(([d]) => d === v);
  if (rel) return rel[1];
  if (to === "now" && from.startsWith("now-")) return `Last ${from.slice(4)}`;
  return `${from} to ${to}`;
}

/** `YYYY-MM-DDTHH:MM:SS` in local time, for a datetime-local input. */
export function toLocalInput(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** A datetime-local input's value (local time) as milliseconds; NaN when empty. */
export function fromLocalInput(value) {
  return value ? new Date(value).getTime() : NaN;
}

/** A step that gives about `points` points over the range, rounded to a readable duration. */
export function autoStep(startMs, endMs, points = 100) {
  const nice = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  const want = (endMs - startMs) / 1000 / points;
  const s = nice.find((n) => n >= want) ?? Math.ceil(want / 86400) * 86400;
  return durationText(s * 1000);
}
