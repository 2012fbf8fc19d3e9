// LogQL for the editor: a tokenizer for highlighting, the completion
// context at the cursor, the position of a parse error, and the edits the
// filter buttons make. It is forgiving: any text tokenizes, unfinished
// strings included, because the editor runs it on every keystroke.

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

/** The first stream selector of a query: {start, end} of its braces, or null. */
export function firstSelector(text) {
  const tokens = tokenize(text);
  let open = null;
  for (const t of tokens) {
    if (t.type !== "op") continue;
    const s = text.slice(t.start, t.end);
    if (s === "{" && open === null) open = t.start;
    if (s === "}" && open !== null) return { start: open, end: t.end };
  }
  return null;
}

/**
 * The query with a matcher `name op "value"` added to its first selector
 * (stream labels), unless it is there already.
 */
export function addMatcher(text, name, op, quotedValue) {
  const matcher = `${name}${op}${quotedValue}`;
  const sel = firstSelector(text);
  if (!sel) return `{${matcher}}`;
  const inside = text.slice(sel.start + 1, sel.end - 1);
  if (inside.replace(/\s+/g, "").split(",").includes(matcher)) return text;
  const sep = inside.trim() ? ", " : "";
  return `${text.slice(0, sel.end - 1).replace(/\s+$/, "")}${sep}${matcher}${text.slice(sel.end - 1)}`;
}

/** The query with a label filter stage `| name op "value"` appended. */
export function addLabelFilter(text, name, op, quotedValue) {
  const stage = `| ${name}${op}${quotedValue}`;
  const t = text.replace(/\s+$/, "");
  if (t.endsWith(stage)) return text;
  return `${t} ${stage}`;
}

/** Whether a query is a log query (a selector and a pipeline, no metric around it). */
export function isLogQuery(text) {
  const tokens = tokenize(text).filter((t) => t.type !== "ws" && t.type !== "comment");
  return tokens.length > 0 && text.slice(tokens[0].start, tokens[0].end) === "{";
}
