// The LogQL editor: a textarea over a highlighted copy of its text (the
// textarea's own text is transparent, its caret is not), completion of
// label names, label values and pipeline stages from the store's API, and
// the parse error marked at its position.

import { tokenize, completionContext, errorPosition, STAGES } from "./logql.js";
import { escapeHtml, quote } from "./format.js";
import * as api from "./api.js";

const CACHE_MS = 30000;

export class Editor {
  /**
   * @param {HTMLTextAreaElement} textarea
   * @param {HTMLElement} highlight the <code> under the textarea
   * @param {HTMLElement} list the suggestions listbox
   * @param {HTMLElement} errorBox where a parse error is written
   * @param {() => {start: number, end: number}} range the time range (ms) for label lookups
   */
  constructor(textarea, highlight, list, errorBox, range) {
    this.ta = textarea;
    this.hl = highlight;
    this.list = list;
    this.errorBox = errorBox;
    this.range = range;
    this.error = null;
    this.items = [];
    this.active = -1;
    this.context = null;
    this.cache = new Map();
    this.checkTimer = 0;
    this.checkSeq = 0;
    textarea.addEventListener("input", () => this.onInput());
    textarea.addEventListener("keydown", (e) => this.onKey(e));
    textarea.addEventListener("scroll", () => this.syncScroll());
    // Closed a little after the focus leaves (a click on a choice lands
    // first), unless it came back meanwhile.
    textarea.addEventListener("blur", () => setTimeout(() => {
      if (document.activeElement !== textarea) this.close();
    }, 150));
    textarea.addEventListener("click", () => this.close());
    list.addEventListener("mousedown", (e) => {
      const li = e.target.closest("li");
      if (li) {
        e.preventDefault();
        this.accept(Number(li.dataset.index));
      }
    });
    this.render();
  }

  get value() {
    return this.ta.value;
  }

  set value(text) {
    this.ta.value = text;
    this.error = null;
    this.render();
  }

  /** Drops cached label names and values (the tenant or range changed). */
  forget() {
    this.cache.clear();
  }

  onInput() {
    // The error was about the text before; the check below tells about this one.
    this.showError(null);
    this.suggest();
    clearTimeout(this.checkTimer);
    this.checkTimer = setTimeout(() => this.check(), 400);
  }

  /** Asks the store whether the query parses; marks the error if not. */
  async check() {
    const text = this.ta.value;
    const seq = ++this.checkSeq;
    if (!text.trim()) return;
    try {
      await api.get("/loki/api/v1/format_query", { query: text });
      if (seq === this.checkSeq) this.showError(null);
    } catch (e) {
      if (seq !== this.checkSeq || e.name === "AbortError") return;
      if (e.status === 400) this.showError(e.message);
    }
  }

  /** Shows a parse error (null clears it), marked at its position if it has one. */
  showError(message) {
    if (!message) {
      this.error = null;
      this.errorBox.hidden = true;
      this.errorBox.textContent = "";
      this.ta.removeAttribute("aria-invalid");
      this.render();
      return;
    }
    const pos = errorPosition(this.ta.value, message);
    this.error = pos ?? { offset: -1, message };
    this.errorBox.hidden = false;
    this.errorBox.textContent = message;
    this.errorBox.dataset.col = pos ? String(pos.col) : "";
    this.errorBox.dataset.offset = pos ? String(pos.offset) : "";
    this.ta.setAttribute("aria-invalid", "true");
    this.render();
  }

  render() {
    const text = this.ta.value;
    const rows = Math.min(12, Math.max(1, text.split("\n").length));
    this.ta.rows = rows;
    let html = "";
    const mark = this.error && this.error.offset >= 0 ? this.error.offset : -1;
    for (const t of tokenize(text)) {
      const s = text.slice(t.start, t.end);
      if (mark >= t.start && mark < t.end) {
        const a = mark - t.start;
        html += span(t.type, s.slice(0, a)) + `<mark class="err" data-offset="${mark}">` +
          escapeHtml(s[a]) + "</mark>" + span(t.type, s.slice(a + 1));
      } else {
        html += span(t.type, s);
      }
    }
    if (mark === text.length) html += `<mark class="err eol" data-offset="${mark}"> </mark>`;
    // A trailing newline needs a character after it to take up its line.
    this.hl.innerHTML = html + "\n";
    this.syncScroll();
  }

  syncScroll() {
    const pre = this.hl.parentElement;
    pre.scrollTop = this.ta.scrollTop;
    pre.scrollLeft = this.ta.scrollLeft;
  }

  onKey(e) {
    if (this.list.hidden) {
      if (e.key === " " && e.ctrlKey) {
        e.preventDefault();
        this.suggest(true);
      }
      return;
    }
    switch (e.key) {
      case "ArrowDown":
        e.preventDefault();
        this.move(1);
        break;
      case "ArrowUp":
        e.preventDefault();
        this.move(-1);
        break;
      case "Enter":
      case "Tab":
        if (e.ctrlKey || e.metaKey || this.active < 0) return;
        e.preventDefault();
        this.accept(this.active);
        break;
      case "Escape":
        e.preventDefault();
        e.stopPropagation();
        this.close();
        break;
      default:
    }
  }

  move(delta) {
    if (!this.items.length) return;
    this.active = (this.active + delta + this.items.length) % this.items.length;
    this.paint();
  }

  close() {
    this.list.hidden = true;
    this.items = [];
    this.active = -1;
    this.ta.setAttribute("aria-expanded", "false");
    this.ta.removeAttribute("aria-activedescendant");
  }

  /** Shows the choices for the text at the cursor (also when empty if `force`). */
  async suggest(force = false) {
    const cursor = this.ta.selectionStart;
    if (cursor !== this.ta.selectionEnd) return this.close();
    const ctx = completionContext(this.ta.value, cursor);
    if (!ctx) return this.close();
    let choices;
    try {
      choices = await this.choices(ctx);
    } catch {
      return this.close();
    }
    // The text may have changed while the store answered.
    if (this.ta.selectionStart !== cursor || completionContext(this.ta.value, cursor)?.kind !== ctx.kind) return;
    const p = ctx.prefix.toLowerCase();
    const starts = choices.filter((c) => c.toLowerCase().startsWith(p));
    const contains = choices.filter((c) => !c.toLowerCase().startsWith(p) && c.toLowerCase().includes(p));
    this.items = [...starts, ...contains].filter((c) => c !== ctx.prefix || force).slice(0, 50);
    this.context = ctx;
    if (!this.items.length) return this.close();
    this.active = 0;
    this.paint();
  }

  paint() {
    this.list.innerHTML = this.items
      .map((c, i) => `<li role="option" id="sugg-${i}" data-index="${i}" aria-selected="${i === this.active}">${escapeHtml(c)}</li>`)
      .join("");
    this.list.hidden = false;
    this.ta.setAttribute("aria-expanded", "true");
    if (this.active >= 0) {
      this.ta.setAttribute("aria-activedescendant", `sugg-${this.active}`);
      this.list.children[this.active]?.scrollIntoView({ block: "nearest" });
    }
  }

  accept(index) {
    const choice = this.items[index];
    const ctx = this.context;
    if (choice === undefined || !ctx) return;
    const text = this.ta.value;
    let insert;
    if (ctx.kind === "value") {
      // An unfinished string keeps its opening quote; its end is closed here.
      const escaped = quote(choice);
      insert = ctx.quote ? escaped : escaped.slice(1);
      let to = ctx.to;
      if (!ctx.quote && text[to] === '"') to++;
      this.replace(ctx.from, to, insert);
    } else if (ctx.kind === "label") {
      insert = choice;
      this.replace(ctx.from, ctx.to, insert);
    } else {
      insert = choice + " ";
      this.replace(ctx.from, ctx.to, insert);
    }
    this.close();
  }

  replace(from, to, insert) {
    this.ta.focus();
    this.ta.setSelectionRange(from, to);
    // execCommand keeps the browser's undo history; setRangeText where it is gone.
    if (!document.execCommand || !document.execCommand("insertText", false, insert)) {
      this.ta.setRangeText(insert, from, to, "end");
      this.onInput();
    }
  }

  async choices(ctx) {
    if (ctx.kind === "stage") return STAGES;
    const { start, end } = this.range();
    const params = { start: api.ns(start), end: api.ns(end) };
    const key = `${api.getTenant()}|${ctx.kind}|${ctx.label ?? ""}`;
    const hit = this.cache.get(key);
    if (hit && Date.now() - hit.at < CACHE_MS) return hit.values;
    const path = ctx.kind === "label"
      ? "/loki/api/v1/labels"
      : `/loki/api/v1/label/${encodeURIComponent(ctx.label)}/values`;
    const body = await api.get(path, params);
    const values = Array.isArray(body.data) ? body.data : [];
    this.cache.set(key, { at: Date.now(), values });
    return values;
  }
}

function span(type, s) {
  if (!s) return "";
  return type === "ws" ? escapeHtml(s) : `<span class="t-${type}">${escapeHtml(s)}</span>`;
}
