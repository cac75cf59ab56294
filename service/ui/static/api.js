// Talking to the API. The token lives in this tab's sessionStorage and travels only
// in the Authorization header: never in a URL (no logs, no Referer) and never in a
// cookie, so a cross-site page cannot make the browser send it (no CSRF).
import { MAX_METRICS_PAGE } from "../rules.js";

const TOKEN_KEY = "lagtrain.token";
const USER_KEY = "lagtrain.user";
// Why this tab was signed out (the API's 401 detail), for the sign-in page to say.
const SIGNED_OUT_KEY = "lagtrain.signedOutBecause";
// Whose token the server refused: what the tab kept for them (the Submit page's draft,
// the page to return to) is theirs only.
const SIGNED_OUT_USER_KEY = "lagtrain.signedOutUser";
export const SPEC_DRAFT_KEY = "lagtrain.specDraft";
export const NEXT_PAGE_KEY = "lagtrain.next";

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  get user() { return JSON.parse(sessionStorage.getItem(USER_KEY) || "null"); },
  get signedOutBecause() { return sessionStorage.getItem(SIGNED_OUT_KEY); },
  signIn(token, user) {
    // Another user signing in after a refused token starts afresh: they were handed
    // the previous user's draft and sent to their page (a review).
    const before = sessionStorage.getItem(SIGNED_OUT_USER_KEY);
    if (before !== null && before !== String(user.id)) {
      sessionStorage.removeItem(SPEC_DRAFT_KEY);
      sessionStorage.removeItem(NEXT_PAGE_KEY);
    }
    sessionStorage.removeItem(SIGNED_OUT_USER_KEY);
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(USER_KEY, JSON.stringify(user));
    sessionStorage.removeItem(SIGNED_OUT_KEY);
  },
  // `reason`: the server's, when it refused the token; none when the user signed out.
  signOut(reason = null) {
    const user = this.user;
    if (reason && user) sessionStorage.setItem(SIGNED_OUT_USER_KEY, String(user.id));
    else sessionStorage.removeItem(SIGNED_OUT_USER_KEY);
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(USER_KEY);
    if (reason) sessionStorage.setItem(SIGNED_OUT_KEY, reason);
    else sessionStorage.removeItem(SIGNED_OUT_KEY);
    // Signing out ends the Submit page's draft (views/submit.js); a refused token keeps
    // it for the same user signing in again (signIn).
    if (!reason) sessionStorage.removeItem(SPEC_DRAFT_KEY);
  },
};

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

export function headers(extra = {}, token = session.token) {
  return { Authorization: `Bearer ${token}`, ...extra };
}

// The server refused `token` (revoked, expired, its user disabled): the tab signs out
// and the sign-in page says why. A 401 for a token this tab no longer holds (a request
// still in flight when the user signed out) changes nothing.
function refused(token, detail) {
  if (!token || token !== session.token) return;
  session.signOut(typeof detail === "string" ? detail : "the server refused the token");
  window.dispatchEvent(new Event("lagtrain:signed-out"));
}

// A FormData body goes as multipart (the browser writes its boundary); any other
// body as JSON. `token`: one to try (sign-in) instead of the session's; its 401 signs
// nothing out. `extra`: more request headers (a submit's Idempotency-Key).
export async function api(path, { method = "GET", body, signal, token, extra = {} } = {}) {
  const form = body instanceof FormData;
  const sent = token ?? session.token;
  const init = {
    method,
    signal,
    credentials: "omit",
    cache: "no-store",
    headers: headers(body === undefined || form ? extra
      : { ...extra, "Content-Type": "application/json" }, sent),
  };
  if (body !== undefined) init.body = form ? body : JSON.stringify(body);
  const response = await fetch(path, init);
  // A body cut off (the view left, which aborts `signal`; the connection lost) rejects
  // here: read as "no JSON", it answered null for the job or page the caller awaited,
  // and the caller drew null. Only a body that arrived whole and is not JSON is null
  // (204, a proxy's HTML error page).
  let text = "";
  try {
    text = await response.text();
  } catch (error) {
    // An error's body lost to the network still answers its status (a 401 signs out,
    // a 404 is "gone"); any other cut-off body rejects.
    if (response.ok || signal?.aborted) throw error;
  }
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON: no details */ }
  if (!response.ok) throw apiError(response, data, token === undefined ? sent : null);
  return data;
}

// A file (a checkpoint) fetched with the token in a header, never in its URL: its
// bytes as a blob and the name the server gave it (null when none).
export async function apiFile(path, { signal } = {}) {
  const sent = session.token;
  const response = await fetch(path, { headers: headers({}, sent), credentials: "omit",
    cache: "no-store", signal });
  if (!response.ok) throw apiError(response, await response.json().catch(() => null), sent);
  const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  return { blob: await response.blob(), filename: name ? name[1] : null };
}

// The error an answer that is not ok stands for; a 401 for the session's `token` signs
// the tab out (refused).
export function apiError(response, data, token) {
  const detail = data?.detail ?? response.statusText;
  if (response.status === 401) refused(token, detail);
  return new ApiError(response.status, detail);
}

// Reads every page of a job's metrics after seq `after` (all of them by default).
export async function allMetrics(jobId, signal, after = 0) {
  const records = [];
  for (;;) {
    const page = await api(`/v1/jobs/${jobId}/metrics?after_seq=${after}&limit=${MAX_METRICS_PAGE}`, { signal });
    records.push(...page.data);
    if (page.data.length === 0 || page.next_after_seq === after) return records;
    after = page.next_after_seq;
  }
}
