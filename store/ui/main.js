// The page: reads the view from the URL, runs queries, shows their results
// (log lines with a volume histogram, a graph, a table) and live tails,
// and keeps the URL in step so that links and back/forward work.

import * as api from "./api.js";
import { Editor } from "./editor.js";
import { fromSearch, record } from "./state.js";
import { RELATIVE, resolveRange, pickerValue, toLocalInput, fromLocalInput, autoStep, describe } from "./timerange.js";
import { LogView, entries, sortEntries } from "./logs.js";
import { drawSeries, drawHistogram } from "./chart.js";
import { drawTable } from "./table.js";
import { Tail, MAX_LINES } from "./tail.js";
import { formatBytes, formatCount, formatSeconds, parseDuration } from "./format.js";
import { addFilter, isLogQuery } from "./logql.js";

const $ = (id) => document.getElementById(id);
const TENANTS_KEY = "larch.tenants";

const ui = {
  form: $("query-form"),
  range: $("range"),
  absolute: $("absolute"),
  from: $("from"),
  to: $("to"),
  type: $("type"),
  limit: $("limit"),
  step: $("step"),
  direction: $("direction"),
  tenant: $("tenant"),
  tenants: $("tenants"),
  live: $("live"),
  pause: $("pause"),
  error: $("error"),
  status: $("status"),
  histogram: $("histogram"),
  graph: $("graph"),
  table: $("table"),
  more: $("more"),
  stats: $("stats"),
  results: $("results"),
  tokenButton: $("token-button"),
  tokenDialog: $("token-dialog"),
  tokenInput: $("token-input"),
};

let current = null; // the state of the results shown
let controller = null; // aborts the requests of the results shown
let tail = null;
let paging = null; // {params, lastTs} of a log query that may have more

const editor = new Editor($("query"), $("highlight"), $("suggestions"), $("parse-error"), () => {
  const r = resolveRange(...rangeOfControls());
  return r.error ? { start: Date.now() - 3600000, end: Date.now() } : r;
});
const logs = new LogView($("logs"), (kind, name, value, exclude) => {
  editor.value = addFilter(editor.value, kind, name, value, exclude);
  // The button pressed goes with the lines it was on: a keyboard user
  // continues from the top of the results.
  ui.results.focus();
  run(true);
});

// ---- controls and state

for (const [d, label] of RELATIVE) ui.range.add(new Option(label, d));
ui.range.add(new Option("Absolute range…", "custom"));

function rangeOfControls() {
  if (ui.range.value !== "custom") return [`now-${ui.range.value}`, "now"];
  const f = fromLocalInput(ui.from.value);
  const t = fromLocalInput(ui.to.value);
  return [Number.isNaN(f) ? "" : String(f), Number.isNaN(t) ? "" : String(t)];
}

function readControls() {
  const [from, to] = rangeOfControls();
  return {
    query: editor.value,
    from,
    to,
    type: ui.type.value,
    limit: ui.limit.value || "100",
    step: ui.step.value.trim(),
    direction: ui.direction.value,
    tenant: ui.tenant.value.trim(),
    live: ui.live.getAttribute("aria-pressed") === "true" ? "1" : "",
  };
}

function applyState(s) {
  editor.value = s.query;
  const picked = pickerValue(s.from, s.to);
  ui.range.value = picked;
  ui.absolute.hidden = picked !== "custom";
  if (picked === "custom") {
    const r = resolveRange(s.from, s.to);
    if (!r.error) {
      ui.from.value = toLocalInput(r.start);
      ui.to.value = toLocalInput(r.end);
    }
  }
  ui.type.value = s.type;
  ui.limit.value = s.limit;
  ui.step.value = s.step;
  ui.direction.value = s.direction;
  ui.tenant.value = s.tenant;
  api.setTenant(s.tenant);
  setLive(s.live === "1");
}

function setLive(on) {
  ui.live.setAttribute("aria-pressed", String(on));
  ui.live.textContent = on ? "Stop live tail" : "Live tail";
  ui.pause.hidden = !on;
  if (!on) {
    ui.pause.setAttribute("aria-pressed", "false");
    ui.pause.textContent = "Pause";
  }
}

ui.range.addEventListener("change", () => {
  const custom = ui.range.value === "custom";
  ui.absolute.hidden = !custom;
  if (custom && !ui.from.value) {
    const now = Date.now();
    ui.from.value = toLocalInput(now - 3600000);
    ui.to.value = toLocalInput(now);
  }
  if (custom) ui.from.focus();
  else run(true);
});

ui.tenant.addEventListener("change", () => {
  api.setTenant(ui.tenant.value);
  rememberTenant(ui.tenant.value.trim());
  editor.forget();
  run(true);
});

function rememberTenant(t) {
  let list = [];
  try {
    list = JSON.parse(localStorage.getItem(TENANTS_KEY) || "[]");
  } catch {
    list = [];
  }
  if (t) list = [t, ...list.filter((x) => x !== t)].slice(0, 10);
  try {
    localStorage.setItem(TENANTS_KEY, JSON.stringify(list));
  } catch {
    // Not kept: the list is a convenience.
  }
  ui.tenants.innerHTML = "";
  for (const x of list) ui.tenants.append(new Option(x));
}

// ---- running

ui.form.addEventListener("submit", (e) => {
  e.preventDefault();
  run(true);
});

document.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    run(true);
  }
});

window.addEventListener("popstate", () => {
  applyState(fromSearch(window.location.search));
  execute(readControls());
});

ui.live.addEventListener("click", () => {
  setLive(ui.live.getAttribute("aria-pressed") !== "true");
  run(true);
});

ui.pause.addEventListener("click", () => {
  const on = ui.pause.getAttribute("aria-pressed") !== "true";
  ui.pause.setAttribute("aria-pressed", String(on));
  ui.pause.textContent = on ? "Resume" : "Pause";
  tail?.pause(on);
});

ui.more.addEventListener("click", () => loadMore());

/** Runs the query of the controls, recording it in the history. */
function run(push) {
  const state = readControls();
  record(state, push);
  execute(state);
}

function reset() {
  controller?.abort();
  controller = new AbortController();
  tail?.stop();
  tail = null;
  paging = null;
  ui.error.hidden = true;
  ui.error.textContent = "";
  ui.status.textContent = "";
  ui.stats.textContent = "";
  ui.histogram.innerHTML = "";
  ui.graph.innerHTML = "";
  ui.table.innerHTML = "";
  ui.more.hidden = true;
  logs.clear();
}

function showError(e) {
  if (e.name === "AbortError") return;
  ui.status.textContent = "";
  // A parse error is shown once, under the editor, at its position.
  if (e.status === 400 && /^parse error/.test(e.message)) {
    editor.showError(e.message);
    return;
  }
  ui.error.hidden = false;
  ui.error.textContent = e.message;
  if (e.needsToken) openTokenDialog();
  if (e.needsTenant) ui.tenant.focus();
}

async function execute(state) {
  reset();
  current = state;
  document.title = state.query ? `${state.query} · Larch` : "Larch";
  if (!state.query.trim()) return;
  const range = resolveRange(state.from, state.to);
  if (range.error) return showError(new api.ApiError(0, range.error));
  if (state.live === "1") return startTail(state);
  const signal = controller.signal;
  ui.status.textContent = `Running over ${describe(state.from, state.to).toLowerCase()}…`;
  try {
    if (state.type === "instant") {
      const body = await api.get("/loki/api/v1/query", {
        query: state.query,
        time: api.ns(range.end),
        limit: state.limit,
        direction: state.direction,
      }, { signal, categorize: true });
      show(state, range, body, null);
    } else {
      let step = state.step;
      if (!step && !isLogQuery(state.query)) step = autoStep(range.start, range.end, 200);
      const params = {
        query: state.query,
        start: api.ns(range.start),
        end: api.ns(range.end),
        limit: state.limit,
        direction: state.direction,
        step,
      };
      const body = await api.get("/loki/api/v1/query_range", params, { signal, categorize: true });
      show(state, range, body, params);
    }
    editor.showError(null);
  } catch (e) {
    showError(e);
  }
}

function show(state, range, body, params) {
  const data = body.data ?? {};
  ui.status.textContent = "";
  switch (data.resultType) {
    case "streams": {
      const list = sortEntries(entries(data.result ?? []), state.direction);
      logs.append(list);
      ui.status.textContent = list.length ? "" : "No lines in this range.";
      const limit = Number(state.limit);
      if (params && list.length >= limit) {
        paging = { params, state };
        ui.more.hidden = false;
      }
      if (params) histogram(state, range);
      break;
    }
    case "matrix": {
      const stepMs = parseDuration(params?.step || "") || (range.end - range.start) / 200;
      if (!(data.result ?? []).length) ui.status.textContent = "No series in this range.";
      else drawSeries(ui.graph, data.result, range.start, range.end, stepMs);
      break;
    }
    case "vector":
    case "scalar":
      drawTable(ui.table, data.resultType, data.result ?? []);
      break;
    default:
      ui.status.textContent = `Unexpected result type ${data.resultType}.`;
  }
  showStats(data.stats);
}

function showStats(stats) {
  const s = stats?.summary;
  if (!s) return;
  ui.stats.textContent =
    `${formatCount(s.totalLinesProcessed ?? 0)} lines and ${formatBytes(s.totalBytesProcessed ?? 0)} processed ` +
    `in ${formatSeconds(Number(s.execTime ?? 0))}` +
    (s.totalEntriesReturned !== undefined ? `; ${formatCount(s.totalEntriesReturned)} returned.` : ".");
}

/** The volume histogram above log lines: lines per step by level. */
async function histogram(state, range) {
  const step = autoStep(range.start, range.end, 60);
  const query = `sum by (detected_level) (count_over_time(${state.query} [${step}]))`;
  try {
    const body = await api.get("/loki/api/v1/query_range", {
      query,
      start: api.ns(range.start),
      end: api.ns(range.end),
      step,
    }, { signal: controller.signal });
    if (body.data?.resultType === "matrix") {
      drawHistogram(ui.histogram, body.data.result, range.start, range.end, parseDuration(step), (s, e) => {
        ui.range.value = "custom";
        ui.absolute.hidden = false;
        ui.from.value = toLocalInput(s);
        ui.to.value = toLocalInput(e);
        run(true);
      });
    }
  } catch (e) {
    // The lines are what was asked for; a histogram that cannot be drawn
    // is left out rather than shown as an error.
    if (e.name !== "AbortError") ui.histogram.innerHTML = "";
  }
}

async function loadMore() {
  if (!paging || !logs.lastTs) return;
  const { params, state } = paging;
  const last = BigInt(logs.lastTs);
  const next = { ...params };
  // Loki's paging: the boundary timestamp is asked for again, and the
  // lines already shown are skipped.
  if (state.direction === "forward") next.start = last.toString();
  else next.end = (last + 1n).toString();
  ui.more.disabled = true;
  try {
    const body = await api.get("/loki/api/v1/query_range", next, { signal: controller.signal, categorize: true });
    const list = sortEntries(entries(body.data?.result ?? []), state.direction);
    const added = logs.append(list);
    paging.params = next;
    ui.more.hidden = added === 0 || list.length < Number(state.limit);
    showStats(body.data?.stats);
  } catch (e) {
    showError(e);
  } finally {
    ui.more.disabled = false;
  }
}

function startTail(state) {
  tail = new Tail(state.query, {
    onEntries: (list) => logs.prepend(list, MAX_LINES),
    onStatus: (text, failed) => {
      ui.status.textContent = text;
      if (failed) {
        ui.error.hidden = false;
        ui.error.textContent = text;
      }
    },
  });
}

// ---- credentials

ui.tokenButton.addEventListener("click", () => openTokenDialog());

function openTokenDialog() {
  if (ui.tokenDialog.open) return;
  ui.tokenInput.value = "";
  ui.tokenDialog.showModal();
  ui.tokenInput.focus();
}

ui.tokenDialog.addEventListener("close", () => {
  const v = ui.tokenDialog.returnValue;
  if (v === "ok" && ui.tokenInput.value.trim()) api.setToken(ui.tokenInput.value.trim());
  if (v === "forget") api.setToken("");
  ui.tokenInput.value = "";
  ui.tokenButton.textContent = api.getToken() ? "Token set" : "Sign in";
  if (v === "ok" || v === "forget") {
    editor.forget();
    if (current) execute(readControls());
  }
});

// ---- start

rememberTenant("");
ui.tokenButton.textContent = api.getToken() ? "Token set" : "Sign in";
applyState(fromSearch(window.location.search));
if (editor.value.trim()) execute(readControls());
$("query").focus();
