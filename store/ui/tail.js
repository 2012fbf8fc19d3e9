// Live tail over Loki's WebSocket API. The tenant and token go in the
// subprotocol list (a browser cannot set headers on a WebSocket), hex
// encoded, never in the URL. New lines are shown as they come, newest on
// top; paused, they wait in a buffer. Both are bounded: past the bound the
// oldest lines go, and the count of those dropped is shown.

import { hex } from "./format.js";
import * as api from "./api.js";
import { entries } from "./logs.js";

/** Lines kept on the page and waiting while paused. */
export const MAX_LINES = 1000;

export class Tail {
  /**
   * @param {string} query
   * @param {{onEntries: (list: object[]) => void, onStatus: (text: string, failed: boolean) => void}} handlers
   */
  constructor(query, { onEntries, onStatus }) {
    this.onEntries = onEntries;
    this.onStatus = onStatus;
    this.paused = false;
    this.pending = [];
    this.received = 0;
    this.dropped = 0;
    this.stopped = false;
    const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
    const params = new URLSearchParams({ query, limit: "100", start: api.ns(Date.now() - 60000) });
    const protocols = ["larch"];
    if (api.getTenant()) protocols.push(`larch.tenant.${hex(api.getTenant())}`);
    if (api.getToken()) protocols.push(`larch.bearer.${hex(api.getToken())}`);
    this.ws = new WebSocket(`${proto}//${window.location.host}/loki/api/v1/tail?${params}`, protocols);
    this.ws.addEventListener("open", () => this.status());
    this.ws.addEventListener("message", (ev) => this.onMessage(ev));
    this.ws.addEventListener("close", (ev) => {
      if (this.stopped) return;
      this.stopped = true;
      const why = ev.reason || (ev.code === 1006 ? "the connection failed (is the query valid?)" : `code ${ev.code}`);
      this.onStatus(`Live tail ended: ${why}`, ev.code !== 1000);
    });
  }

  onMessage(ev) {
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return;
    }
    const list = entries(msg.streams ?? []).sort((a, b) => (BigInt(a.ts) < BigInt(b.ts) ? 1 : -1));
    this.received += list.length;
    this.dropped += (msg.dropped_entries ?? []).length;
    if (this.paused) {
      this.pending.unshift(...list);
      if (this.pending.length > MAX_LINES) {
        this.dropped += this.pending.length - MAX_LINES;
        this.pending.length = MAX_LINES;
      }
    } else if (list.length) {
      this.onEntries(list);
    }
    this.status();
  }

  status() {
    const state = this.paused ? `paused, ${this.pending.length} waiting` : "live";
    const dropped = this.dropped ? `, ${this.dropped} dropped` : "";
    const lines = this.received === 1 ? "1 line" : `${this.received} lines`;
    this.onStatus(`Live tail ${state}: ${lines} received${dropped}.`, false);
  }

  /** Pauses (true) or resumes, showing what waited. */
  pause(on) {
    this.paused = on;
    if (!on && this.pending.length) {
      const waiting = this.pending;
      this.pending = [];
      this.onEntries(waiting);
    }
    this.status();
  }

  stop() {
    this.stopped = true;
    this.ws.close(1000, "stopped");
  }
}
