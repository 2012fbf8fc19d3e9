// Instant query results as a table: one row per series, a column per
// label name and the value; a scalar as one cell.

import { escapeHtml, formatValue, formatMs } from "./format.js";

/** Renders a `vector` or `scalar` result into `container`. */
export function drawTable(container, resultType, result) {
  if (resultType === "scalar") {
    const [t, v] = result;
    container.innerHTML = `<table class="instant"><thead><tr><th scope="col">Time</th><th scope="col">Value</th></tr></thead>` +
      `<tbody><tr><td>${escapeHtml(formatMs(t * 1000))}</td><td class="num">${escapeHtml(formatValue(Number(v)))}</td></tr></tbody></table>`;
    return;
  }
  const names = [...new Set(result.flatMap((s) => Object.keys(s.metric ?? {})))].sort();
  const rows = [...result].sort((a, b) => Number(b.value[1]) - Number(a.value[1]));
  const head = names.map((n) => `<th scope="col">${escapeHtml(n)}</th>`).join("") + `<th scope="col">Value</th>`;
  const body = rows
    .map((s) => `<tr>${names.map((n) => `<td>${escapeHtml(s.metric?.[n] ?? "")}</td>`).join("")}` +
      `<td class="num">${escapeHtml(formatValue(Number(s.value[1])))}</td></tr>`)
    .join("");
  container.innerHTML = rows.length
    ? `<table class="instant"><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`
    : `<p class="empty">No series.</p>`;
}
