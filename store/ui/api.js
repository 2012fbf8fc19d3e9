// The store's Loki API as the page uses it: one fetch wrapper that adds
// the tenant (X-Scope-OrgID) and the bearer token, reads Loki's JSON, and
// turns a failure into an ApiError carrying the store's own message.
//
// The token lives in sessionStorage (gone when the tab closes), is sent
// only in the Authorization header, and never appears in a URL.

const TOKEN_KEY = "larch.token";

let tenant = "";

/** Sets the tenant sent with every request ("" for none). */
export function setTenant(t) {
  tenant = t.trim();
}

/** The tenant in use. */
export function getTenant() {
  return tenant;
}

/** The bearer token of this tab, or "". */
export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

/** Keeps `token` for this tab ("" forgets it). */
export function setToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage refused (private mode): the token is not kept.
  }
}

/** A failed request: the HTTP status and the store's message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }

  /** Whether the store asked for credentials (not a missing tenant). */
  get needsToken() {
    return (this.status === 401 || this.status === 403) && !/org ?id/i.test(this.message);
  }

  /** Whether the store wants a tenant. */
  get needsTenant() {
    return this.status === 401 && /no org ?id/i.test(this.message);
  }
}

/** The headers of every request. */
export function headers(extra = {}) {
  const h = { ...extra };
  if (tenant) h["X-Scope-OrgID"] = tenant;
  const token = getToken();
  if (token) h["Authorization"] = `Bearer ${token}`;
  return h;
}

/**
 * GET `path` with `params`; the parsed JSON body. Throws ApiError with
 * the store's text on a non-2xx answer, and lets an AbortError through.
 */
export async function get(path, params = {}, { signal, categorize = false } = {}) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") qs.set(k, String(v));
  }
  const extra = categorize ? { "X-Loki-Response-Encoding-Flags": "categorize-labels" } : {};
  let resp;
  try {
    resp = await fetch(`${path}?${qs}`, { headers: headers(extra), signal, credentials: "same-origin" });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, `cannot reach the store: ${e.message}`);
  }
  const text = await resp.text();
  if (!resp.ok) {
    throw new ApiError(resp.status, text.trim() || `${resp.status} ${resp.statusText}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(resp.status, `the store answered something other than JSON: ${text.slice(0, 200)}`);
  }
}

/** Nanoseconds (as a string) of a time in milliseconds. */
export function ns(ms) {
  return (BigInt(Math.round(ms)) * 1000000n).toString();
}
