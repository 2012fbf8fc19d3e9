// LogQL for the editor: a tokenizer for highlighting, the completion
// context at the cursor, the position of a parse error, and the edits the
// filter buttons make. It is forgiving: any text tokenizes, unfinished
// strings included, because the editor runs it on every keystroke.

import { quote } from "./format.js";

export const FUNCTIONS = [
  "rate", "count_over_time", "bytes_over_time", "bytes_rate", "avg_over_time", "sum_over_time",
  "min_over_time", "max_over_time", "stddev_over_time", "stdvar_over_time", "quantile_over_time",
  "first_over_time", "last_over_time", "absent_over_time", "rate_counter",
  "sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk", "sort", "sort_desc",
  "approx_topk", "label_replace", "vector", "scalar",
];

export const KEYWORDS = [
  "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
  "and", "or", "unless",
];

export const STAGES = [
  "json", "logfmt", "regexp", "pattern", "unpack", "line_format", "label_format",
  "drop", "keep", "decolorize", "unwrap",
];

const OPERATORS = ["|=", "!=", "|~", "!~", "|>", "!>", "=~", "==", ">=", "<=", "=", "|", ">", "<",
  "+", "-", "*", "/", "%", "^", ",", "(", ")", "{", "}", "[", "]"];

/**
 * Tokens of `text`: {type, start, end}, types `ws`, `comment`, `string`,
 * `number`, `duration`, `ident`, `op`, `other`; identifiers are refined to
 * `label` (in a selector before its operator), `function`, `keyword`,
 * `stage` (after `|`) or `field`.
 */
export function tokenize(text) {
  const tokens = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    const start = i;
    if (/\s/.test(c)) {
      while (i < n && /\s/.test(text[i])) i++;
      tokens.push({ type: "ws", start, end: i });
    } else if (c === "#") {
      while (i < n && text[i] !== "\n") i++;
      tokens.push({ type: "comment", start, end: i });
    } else if (c === '"') {
      i++;
      while (i < n && text[i] !== '"' && text[i] !== "\n") i += text[i] === "\\" ? 2 : 1;
      const closed = i < n && text[i] === '"';
      if (closed) i++;
      tokens.push({ type: "string", start, end: Math.min(i, n), open: !closed });
    } else if (c === "`") {
      i++;
      while (i < n && text[i] !== "`") i++;
      const closed = i < n;
      if (closed) i++;
      tokens.push({ type: "string", start, end: i, open: !closed });
    } else if (/[0-9]/.test(c) || (c === "." && /[0-9]/.test(text[i + 1] || ""))) {
      while (i < n && /[0-9.eE]/.test(text[i])) i++;
      let type = "number";
      const unit = /^(ms|us|µs|ns|[smhdwy]|[KMGTPE]i?B|[kKMGTPE]B|B)+/.exec(text.slice(i));
      if (unit) {
        i += unit[0].length;
        type = "duration";
      }
      tokens.push({ type, start, end: i });
    } else if (/[A-Za-z_]/.test(c)) {
      while (i < n && /[A-Za-z0-9_.]/.test(text[i])) i++;
      tokens.push({ type: "ident", start, end: i });
    } else {
      const op = OPERATORS.find((o) => text.startsWith(o, i));
      i += op ? op.length : 1;
      tokens.push({ type: op ? "op" : "other", start, end: i });
    }
  }
  classify(text, tokens);
  return tokens;
}

function classify(text, tokens) {
  let depth = 0;
  let prev = null; // the previous token that is not whitespace or a comment
  const next = (k) => {
    for (let j = k + 1; j < tokens.length; j++) {
      if (tokens[j].type !== "ws" && tokens[j].type !== "comment") return tokens[j];
    }
    return null;
  };
  tokens.forEach((t, k) => {
    const s = text.slice(t.start, t.end);
    if (t.type === "op") {
      if (s === "{") depth++;
      if (s === "}") depth = Math.max(0, depth - 1);
    }
    if (t.type === "ident") {
      const after = next(k);
      const afterText = after ? text.slice(after.start, after.end) : "";
      const prevText = prev ? text.slice(prev.start, prev.end) : "";
      if (depth > 0) t.type = "label";
      else if (prevText === "|" && STAGES.includes(s)) t.type = "stage";
      else if (FUNCTIONS.includes(s) && afterText === "(") t.type = "function";
      else if (KEYWORDS.includes(s)) t.type = "keyword";
      else if (STAGES.includes(s) && prevText === "|") t.type = "stage";
      else t.type = "field";
    }
    if (t.type !== "ws" && t.type !== "comment") prev = t;
  });
}

/**
 * What may be completed at `cursor`: `{kind: "label"|"value"|"stage", prefix,
 * from, to, label?, quote?}`, or null. `from`..`to` is the text a choice
 * replaces; `quote` says the choice must be written as a string literal.
 */
export function completionContext(text, cursor) {
  const before = text.slice(0, cursor);
  const tokens = tokenize(before);
  const significant = tokens.filter((t) => t.type !== "ws" && t.type !== "comment");
  const last = significant[significant.length - 1];
  const lastText = (t) => (t ? before.slice(t.start, t.end) : "");
  const touching = last && last.end === cursor;
  // Inside an unfinished string after `name op`: a label value.
  if (last && last.type === "string" && last.open && before[last.start] === '"') {
    const op = significant[significant.length - 2];
    const name = significant[significant.length - 3];
    if (op && name && name.type === "label" && ["=", "!=", "=~", "!~"].includes(lastText(op))) {
      return { kind: "value", label: lastText(name), prefix: before.slice(last.start + 1), from: last.start + 1, to: cursor, quote: false };
    }
    return null;
  }
  // Right after `name op` in a selector: a value, quoted when chosen.
  if (last && last.type === "op" && ["=", "!=", "=~", "!~"].includes(lastText(last))) {
    const name = significant[significant.length - 2];
    if (name && name.type === "label") {
      return { kind: "value", label: lastText(name), prefix: "", from: cursor, to: cursor, quote: true };
    }
  }
  // A label name being typed after `{` or `,` in a selector.
  if (last && last.type === "label" && touching) {
    const p = significant[significant.length - 2];
    if (p && ["{", ","].includes(lastText(p))) {
      return { kind: "label", prefix: lastText(last), from: last.start, to: cursor };
    }
  }
  if (last && last.type === "op" && ["{", ","].includes(lastText(last)) && inSelector(tokens, before)) {
    return { kind: "label", prefix: "", from: cursor, to: cursor };
  }
  // A stage after `|`.
  if (last && touching && (last.type === "stage" || last.type === "field")) {
    const p = significant[significant.length - 2];
    if (p && lastText(p) === "|") return { kind: "stage", prefix: lastText(last), from: last.start, to: cursor };
  }
  if (last && lastText(last) === "|" && before.endsWith(" ")) {
    return { kind: "stage", prefix: "", from: cursor, to: cursor };
  }
  return null;
}

function inSelector(tokens, text) {
  let depth = 0;
  for (const t of tokens) {
    if (t.type !== "op") continue;
    const s = text.slice(t.start, t.end);
    if (s === "{") depth++;
    if (s === "}") depth = Math.max(0, depth - 1);
  }
  return depth > 0;
}

/**
 * The position a store's parse error points at, from its text (`parse error at
 * line 1, col 13: ...`): `{offset, line, col, message}`, or null. The column
 * is 1-based; line 0 (as Loki says for some errors) is the first line.
 */
export function errorPosition(text, message) {
  const m = /line (\d+), col (\d+)/.exec(message);
  if (!m) return null;
  const line = Math.max(1, Number(m[1]));
  const col = Math.max(1, Number(m[2]));
  const lines = text.split("\n");
  let offset = 0;
  for (let l = 1; l < line && l <= lines.length; l++) offset += lines[l - 1].length + 1;
  offset = Math.min(text.length, offset + col - 1);
  return { offset, line, col, message };
}

const PARSERS = ["json", "logfmt", "regexp", "pattern", "unpack"];
const MATCH_OPS = ["=", "!=", "=~", "!~"];
const LINE_FILTERS = ["|=", "!=", "|~", "!~", "|>", "!>"];

/**
 * The value of a LogQL string literal (Go's quoting, or a raw string in
 * backquotes); null if `s` is not one.
 */
export function unquote(s) {
  if (s.length >= 2 && s[0] === "`" && s.endsWith("`")) return s.slice(1, -1);
  if (s.length < 2 || s[0] !== '"' || !s.endsWith('"')) return null;
  const simple = { n: "\n", t: "\t", r: "\r", a: "\x07", b: "\b", f: "\f", v: "\v", "\\": "\\", '"': '"', "'": "'" };
  let out = "";
  for (let i = 1; i < s.length - 1; i++) {
    const c = s[i];
    if (c !== "\\") {
      out += c;
      continue;
    }
    const e = s[++i];
    if (e in simple) out += simple[e];
    else if (e === "x" || e === "u" || e === "U") {
      const len = { x: 2, u: 4, U: 8 }[e];
      const hex = s.slice(i + 1, i + 1 + len);
      if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== len) return null;
      out += e === "x" ? String.fromCharCode(parseInt(hex, 16)) : String.fromCodePoint(parseInt(hex, 16));
      i += len;
    } else if (/[0-7]/.test(e)) {
      const oct = s.slice(i, i + 3);
      if (!/^[0-7]{3}$/.test(oct)) return null;
      out += String.fromCharCode(parseInt(oct, 8));
      i += 2;
    } else return null;
  }
  return out;
}

/**
 * The parts of a log query the filter buttons edit: its first selector
 * (`{start, end, matchers}`, each matcher `{start, end, name, op, value}`)
 * and the stages of the pipeline after it (`{kind, start, end, matcher}`,
 * kind `parser`, `filter` (a label filter), `line` (a line filter) or
 * `other`; `matcher` when a label filter is one `name op "value"`). Null
 * without a selector.
 */
export function logQueryParts(text) {
  const sig = tokenize(text).filter((t) => t.type !== "ws" && t.type !== "comment");
  const str = (t) => (t ? text.slice(t.start, t.end) : "");
  const matcherAt = (k) => {
    const [n, o, v] = [sig[k], sig[k + 1], sig[k + 2]];
    if (!n || !o || !v || !["label", "field"].includes(n.type) || !MATCH_OPS.includes(str(o)) || v.type !== "string") return null;
    const value = unquote(str(v));
    return value === null ? null : { start: n.start, end: v.end, name: str(n), op: str(o), value };
  };
  const open = sig.findIndex((t) => str(t) === "{");
  if (open < 0) return null;
  let k = open + 1;
  const matchers = [];
  while (k < sig.length && str(sig[k]) !== "}") {
    const m = matcherAt(k);
    if (m) {
      matchers.push(m);
      k += 3;
    } else k++;
  }
  if (k >= sig.length) return null;
  const selector = { start: sig[open].start, end: sig[k].end, matchers };
  const stages = [];
  let depth = 0;
  let stage = null;
  for (k++; k < sig.length; k++) {
    const t = sig[k];
    const s = str(t);
    if (depth === 0) {
      const prev = sig[k - 1];
      const lineFilter = LINE_FILTERS.includes(s) && !(s.startsWith("!") && ["label", "field"].includes(prev.type));
      if (s === "|" || lineFilter) {
        const next = sig[k + 1];
        let kind = "line";
        if (s === "|") {
          if (next?.type === "stage") kind = PARSERS.includes(str(next)) ? "parser" : "other";
          else kind = "filter";
        }
        stage = { kind, start: t.start, end: t.end, first: k };
        stages.push(stage);
        continue;
      }
      // The end of the log query inside a metric query.
      if (s === ")" || s === "[") break;
    }
    if (s === "(") depth++;
    if (s === ")") depth = Math.max(0, depth - 1);
    if (stage) stage.end = t.end;
  }
  for (const st of stages) {
    // A label filter that is a single `name op "value"`.
    const m = st.kind === "filter" ? matcherAt(st.first + 1) : null;
    if (m && m.end === st.end) st.matcher = m;
    delete st.first;
  }
  return { selector, stages };
}

/** The query without `part` (a matcher or a stage) and the separator before or after it. */
function cut(text, part, isMatcher) {
  if (!isMatcher) return text.slice(0, part.start).replace(/[ \t]+$/, "") + text.slice(part.end);
  const after = /^\s*,\s*/.exec(text.slice(part.end));
  if (after) return text.slice(0, part.start) + text.slice(part.end + after[0].length);
  const before = /\s*,\s*$/.exec(text.slice(0, part.start));
  if (before) return text.slice(0, part.start - before[0].length) + text.slice(part.end);
  return text.slice(0, part.start) + text.slice(part.end);
}

/**
 * The query a filter button makes: `name op "value"` (op `=`, or `!=`
 * when `exclude`) as a matcher of the first selector for a stream label
 * (`kind` "label"), else as a label filter `| name op "value"` after the
 * last parser or label filter (after the selector without either), as
 * Grafana's Explore writes them. A filter of the same value with the other
 * operator is taken out first; one already there is not added twice.
 */
export function addFilter(text, kind, name, value, exclude) {
  const op = exclude ? "!=" : "=";
  const other = exclude ? "=" : "!=";
  const filter = `${name}${op}${quote(value)}`;
  let q = logQueryParts(text);
  if (!q) return text.trim() || kind !== "label" ? text : `{${filter}}`;
  const label = kind === "label";
  const same = (m, o) => m && m.name === name && m.op === o && m.value === value;
  const find = (o) => label
    ? q.selector.matchers.find((m) => same(m, o))
    : q.stages.find((st) => same(st.matcher, o));
  for (let opposite = find(other); opposite; opposite = find(other)) {
    text = cut(text, opposite, label);
    q = logQueryParts(text);
    if (!q) return text;
  }
  if (find(op)) return text;
  if (label) {
    // After the last matcher, or in the empty braces.
    const last = q.selector.matchers[q.selector.matchers.length - 1];
    if (last) return `${text.slice(0, last.end)}, ${filter}${text.slice(last.end)}`;
    const at = q.selector.end - 1;
    return `${text.slice(0, at).replace(/\s+$/, "")}${filter}${text.slice(at)}`;
  }
  const after = [q.selector, ...q.stages.filter((st) => st.kind === "parser" || st.kind === "filter")];
  const at = Math.max(...after.map((p) => p.end));
  return `${text.slice(0, at)} | ${filter}${text.slice(at)}`;
}

/** Whether a query is a log query (a selector and a pipeline, no metric around it). */
export function isLogQuery(text) {
  const tokens = tokenize(text).filter((t) => t.type !== "ws" && t.type !== "comment");
  return tokens.length > 0 && text.slice(tokens[0].start, tokens[0].end) === "{";
}
