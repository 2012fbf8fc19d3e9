// Formatting helpers shared by the views: times, sizes, durations, HTML
// escaping and Go's string quoting (what LogQL reads).

/** Text safe inside HTML. */
export function escapeHtml(s) {
  return String(s)
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

/** A LogQL string literal for `s` (Go's quoting of the characters that need it). */
export function quote(s) {
  let out = '"';
  for (const ch of String(s)) {
    switch (ch) {
      case "\\": out += "\\\\"; break;
      case '"': out += '\\"'; break;
      case "\n": out += "\\n"; break;
      case "\r": out += "\\r"; break;
      case "\t": out += "\\t"; break;
      default: {
        const c = ch.codePointAt(0);
        out += c < 0x20 || c === 0x7f ? "\\x" + c.toString(16).padStart(2, "0") : ch;
      }
    }
  }
  return out + '"';
}

const pad = (n, w = 2) => String(n).padStart(w, "0");

/** Nanoseconds since the epoch (a decimal string) as local `YYYY-MM-DD HH:MM:SS.mmm`. */
export function formatNs(ns) {
  const ms = Number(BigInt(ns) / 1000000n);
  return formatMs(ms, true);
}

/** Milliseconds since the epoch as local date and time (with milliseconds if asked). */
export function formatMs(ms, withMillis = false) {
  const d = new Date(ms);
  const s = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return withMillis ? `${s}.${pad(d.getMilliseconds(), 3)}` : s;
}

/** A short axis label for a time, finer when the span is short. */
export function formatTick(ms, spanMs) {
  const d = new Date(ms);
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (spanMs <= 2 * 60 * 1000) return `${hm}:${pad(d.getSeconds())}`;
  if (spanMs <= 36 * 3600 * 1000) return hm;
  return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hm}`;
}

/** Bytes in humanized decimal units, as Loki prints them (`1.5 kB`). */
export function formatBytes(n) {
  const units = ["B", "kB", "MB", "GB", "TB", "PB"];
  let v = Number(n);
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** A count with thousands separators. */
export function formatCount(n) {
  return Number(n).toLocaleString("en-US");
}

/** A number for a chart or table: short, exact enough. */
export function formatValue(v) {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
  return String(Number(v.toPrecision(4)));
}

/** Seconds as `850ms` or `1.24s`. */
export function formatSeconds(s) {
  return s < 1 ? `${Math.round(s * 1000)}ms` : `${s.toFixed(2)}s`;
}

const UNITS = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000, w: 604800000, y: 31536000000 };

/** Milliseconds of a Prometheus duration (`1h30m`, `500ms`, `7d`); NaN if it is not one. */
export function parseDuration(text) {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)/y;
  let total = 0;
  let at = 0;
  const t = String(text).trim();
  if (!t) return NaN;
  while (at < t.length) {
    re.lastIndex = at;
    const m = re.exec(t);
    if (!m) return NaN;
    total += Number(m[1]) * UNITS[m[2]];
    at = re.lastIndex;
  }
  return total;
}

/** Milliseconds as the shortest Prometheus duration (`90000` → `1m30s`). */
export function durationText(ms) {
  if (ms <= 0) return "0s";
  let rest = Math.round(ms);
  let out = "";
  for (const [u, size] of [["d", 86400000], ["h", 3600000], ["m", 60000], ["s", 1000], ["ms", 1]]) {
    if (rest >= size) {
      out += Math.floor(rest / size) + u;
      rest %= size;
    }
  }
  return out;
}

/** Hex of the UTF-8 bytes of `s` (credentials in a WebSocket subprotocol). */
export function hex(s) {
  return Array.from(new TextEncoder().encode(s), (b) => b.toString(16).padStart(2, "0")).join("");
}
