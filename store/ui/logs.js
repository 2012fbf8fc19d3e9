// Log lines: merged from every stream, newest or oldest first, coloured by
// level, each expandable to its stream labels, structured metadata and
// parsed fields with buttons that filter for or exclude a value; and the
// paging of "load more".

import { escapeHtml, formatNs } from "./format.js";

const LEVEL_KEYS = ["detected_level", "level", "lvl", "severity", "loglevel"];

/** The level class of a value (`error`, `warn`, `info`, `debug`, `trace`, `unknown`). */
export function levelClass(value) {
  const v = String(value ?? "").toLowerCase();
  if (["error", "err", "eror", "fatal", "critical", "crit", "panic", "alert", "emerg", "emergency"].includes(v)) return "error";
  if (["warn", "warning", "wrn"].includes(v)) return "warn";
  if (["info", "information", "informational", "notice", "inf"].includes(v)) return "info";
  if (["debug", "dbg"].includes(v)) return "debug";
  if (["trace", "trc"].includes(v)) return "trace";
  return "unknown";
}

/**
 * The entries of a `streams` result, each `{ts, line, labels, metadata,
 * parsed, level, key}`. With `categorize-labels` a value's third element
 * holds `structuredMetadata` and `parsed`; without it they are part of the
 * stream's labels.
 */
export function entries(result) {
  const out = [];
  for (const s of result) {
    const labels = s.stream ?? {};
    for (const v of s.values ?? []) {
      const cat = v[2] ?? {};
      const metadata = cat.structuredMetadata ?? {};
      const parsed = cat.parsed ?? {};
      const level = LEVEL_KEYS.map((k) => metadata[k] ?? parsed[k] ?? labels[k]).find((x) => x !== undefined);
      out.push({
        ts: v[0],
        line: v[1],
        labels,
        metadata,
        parsed,
        level: level ?? "",
        key: `${v[0]}\u0000${v[1]}\u0000${JSON.stringify(labels)}`,
      });
    }
  }
  return out;
}

/** Sorts entries newest first (`backward`) or oldest first. */
export function sortEntries(list, direction) {
  const sign = direction === "forward" ? 1 : -1;
  return list.sort((a, b) => {
    const x = BigInt(a.ts);
    const y = BigInt(b.ts);
    return x === y ? 0 : (x < y ? -1 : 1) * sign;
  });
}

export class LogView {
  /**
   * @param {HTMLOListElement} list
   * @param {(kind: string, name: string, value: string, exclude: boolean) => void} onFilter
   */
  constructor(list, onFilter) {
    this.list = list;
    this.onFilter = onFilter;
    this.shown = [];
    this.keys = new Set();
    list.addEventListener("click", (e) => this.onClick(e));
  }

  clear() {
    this.shown = [];
    this.keys = new Set();
    this.list.innerHTML = "";
  }

  get count() {
    return this.shown.length;
  }

  /** The timestamp (ns, string) of the last entry shown, or null. */
  get lastTs() {
    return this.shown.length ? this.shown[this.shown.length - 1].ts : null;
  }

  /** Appends entries not shown yet (paging repeats the boundary timestamp); how many were new. */
  append(list) {
    const fresh = list.filter((e) => !this.keys.has(e.key));
    for (const e of fresh) this.keys.add(e.key);
    this.shown.push(...fresh);
    const frag = document.createDocumentFragment();
    for (const e of fresh) frag.append(row(e));
    this.list.append(frag);
    return fresh.length;
  }

  /** Adds live entries at the top (newest first), keeping at most `max` rows. */
  prepend(list, max) {
    const frag = document.createDocumentFragment();
    for (const e of list) frag.append(row(e));
    this.list.prepend(frag);
    this.shown.unshift(...list);
    while (this.shown.length > max) {
      this.shown.pop();
      this.list.lastElementChild?.remove();
    }
  }

  onClick(e) {
    const filter = e.target.closest("button[data-filter]");
    if (filter) {
      const d = filter.dataset;
      this.onFilter(d.kind, d.name, d.value, d.filter === "out");
      return;
    }
    const head = e.target.closest("button.log-head");
    if (!head) return;
    const li = head.parentElement;
    const open = head.getAttribute("aria-expanded") === "true";
    head.setAttribute("aria-expanded", String(!open));
    const details = li.querySelector(".log-details");
    if (details) {
      details.hidden = open;
      return;
    }
    const entry = this.shown[[...this.list.children].indexOf(li)];
    if (entry) li.append(detailsOf(entry));
  }
}

function row(e) {
  const li = document.createElement("li");
  const lvl = levelClass(e.level);
  li.className = `log lvl-${lvl}`;
  li.innerHTML =
    `<button type="button" class="log-head" aria-expanded="false">` +
    `<span class="log-time">${escapeHtml(formatNs(e.ts))}</span>` +
    `<span class="log-level">${escapeHtml(e.level || "")}</span>` +
    `<span class="log-line">${escapeHtml(e.line)}</span></button>`;
  return li;
}

function detailsOf(e) {
  const div = document.createElement("div");
  div.className = "log-details";
  const section = (title, kind, map) => {
    const names = Object.keys(map).sort();
    if (!names.length) return "";
    const rows = names
      .map((n) => {
        const v = String(map[n]);
        const data = `data-kind="${kind}" data-name="${escapeHtml(n)}" data-value="${escapeHtml(v)}"`;
        return `<tr><th scope="row">${escapeHtml(n)}</th><td>${escapeHtml(v)}</td><td class="actions">` +
          `<button type="button" data-filter="in" ${data} aria-label="Filter for ${escapeHtml(n)}=${escapeHtml(v)}" title="Filter for value">+</button>` +
          `<button type="button" data-filter="out" ${data} aria-label="Filter out ${escapeHtml(n)}=${escapeHtml(v)}" title="Filter out value">−</button></td></tr>`;
      })
      .join("");
    return `<table><caption>${title}</caption><tbody>${rows}</tbody></table>`;
  };
  div.innerHTML =
    section("Labels", "label", e.labels) +
    section("Structured metadata", "metadata", e.metadata) +
    section("Parsed fields", "parsed", e.parsed) +
    `<p class="log-ts">Timestamp: <code>${escapeHtml(e.ts)}</code> ns</p>`;
  return div;
}
