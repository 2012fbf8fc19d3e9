// The view's state and the URL: everything that decides what the page
// shows (query, range, options, tenant, live tail) is in the query string,
// so that a link reproduces the view and back/forward walk through the
// queries run. Credentials never are.

export const DEFAULTS = {
  query: "",
  from: "now-1h",
  to: "now",
  type: "range",
  limit: "100",
  step: "",
  direction: "backward",
  tenant: "",
  live: "",
};

const KEYS = Object.keys(DEFAULTS);

/** The state a URL's query string describes; missing keys take their defaults. */
export function fromSearch(search) {
  const p = new URLSearchParams(search);
  const s = { ...DEFAULTS };
  for (const k of KEYS) {
    const v = p.get(k);
    if (v !== null) s[k] = v;
  }
  if (s.type !== "instant") s.type = "range";
  if (s.direction !== "forward") s.direction = "backward";
  return s;
}

/** The query string of a state: only the keys that differ from the defaults. */
export function toSearch(state) {
  const p = new URLSearchParams();
  for (const k of KEYS) {
    if (state[k] !== undefined && state[k] !== DEFAULTS[k]) p.set(k, state[k]);
  }
  const q = p.toString();
  return q ? `?${q}` : "";
}

/**
 * Records `state` in the address bar: a new history entry when it differs
 * from the current one (`push`), else the entry is replaced.
 */
export function record(state, push) {
  const search = toSearch(state);
  if (search === window.location.search) return;
  const url = `${window.location.pathname}${search}`;
  if (push) window.history.pushState(null, "", url);
  else window.history.replaceState(null, "", url);
}
