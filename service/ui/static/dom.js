// Tiny DOM helpers: every text goes through textContent (never innerHTML with data).
import { BYTE_METRICS, FINISHED_TRIAL_STATUSES, TERMINAL_STATUSES } from "../rules.js";

// Elements el() gave a listener (patch() replaces rather than patches them), and
// each element's `key`: its identity among its siblings (a row's job id).
const listening = new WeakSet();
const keys = new WeakMap();

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "key") keys.set(node, String(value));
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) {
      node.addEventListener(key.slice(2), value);
      listening.add(node);
    }
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// Draws `children` (as el() takes them) into `parent`, changing only what differs:
// a live page redraws every few seconds, and a link or button replaced between a
// click's press and its release lost the click (the browser sends it to what the
// two share, not to the new link). A kept node keeps its focus too. Keyed children
// (rows) match by key, so a row arriving at the top is inserted above the shown ones
// rather than rewriting each row below it. patch() owns what it draws: an attribute
// set by other code afterwards goes at the next redraw, and a form field's typed
// value is not rewritten.
export function patch(parent, ...children) {
  patchChildren(parent, [...el(parent.tagName, {}, ...children).childNodes]);
}

function patchChildren(parent, fresh) {
  let next = parent.firstChild; // the first shown node not matched yet
  for (const node of fresh) {
    const key = keys.get(node);
    if (key !== undefined) {
      let match = next;
      while (match && keys.get(match) !== key) match = match.nextSibling;
      if (!match) { // new here
        parent.insertBefore(node, next);
        continue;
      }
      while (next !== match) { // the shown rows before it are gone (or moved: redrawn)
        const gone = next;
        next = next.nextSibling;
        gone.remove();
      }
    }
    if (!next) {
      parent.append(node);
      continue;
    }
    const old = next;
    next = next.nextSibling;
    if (old.isEqualNode(node) && keys.get(old) === key) continue;
    if (patchable(old, node)) update(old, node);
    else old.replaceWith(node);
  }
  while (next) {
    const gone = next;
    next = next.nextSibling;
    gone.remove();
  }
}

function update(old, node) {
  for (const name of old.getAttributeNames()) {
    if (!node.hasAttribute(name)) old.removeAttribute(name);
  }
  for (const name of node.getAttributeNames()) {
    if (old.getAttribute(name) !== node.getAttribute(name)) {
      old.setAttribute(name, node.getAttribute(name));
    }
  }
  patchChildren(old, [...node.childNodes]);
}

// Elements of one tag and key without listeners: the shown one is kept, its
// attributes and contents brought to the new one's (a job's row whose status changed
// keeps its links). An element with a listener is kept only when equal, its listener
// closing over what it was drawn from: what that listener reads must be in its markup.
function patchable(a, b) {
  return a instanceof Element && b instanceof Element && a.tagName === b.tagName
    && keys.get(a) === keys.get(b) && !listening.has(a) && !listening.has(b);
}

// The one row of an empty table body, across its `columns` ("No jobs.").
export function emptyRow(columns, text) {
  return el("tr", { class: "empty" }, el("td", { colspan: columns, class: "muted" }, text));
}

export function fmt(value, digits = 4) {
  if (value === undefined || value === null) return "—";
  if (typeof value !== "number") return String(value);
  // Safe integers only: 2.07e187 is an "integer" too, and would print all its digits.
  if (Number.isSafeInteger(value)) return value.toLocaleString("en");
  const rounded = Number(value.toPrecision(digits));
  // JS writes up to 21 digits before it turns to an exponent.
  return Math.abs(rounded) >= 1e15 ? rounded.toExponential() : rounded.toString();
}

// A fraction as a percentage, 3 significant digits ("91.8 %"); "—" when absent.
export function percent(fraction) {
  return fraction === undefined || fraction === null ? "—" : `${fmt(100 * fraction, 3)} %`;
}

// A finished job's bytes saved against dense, or undefined for a job that finished
// before its summary had dense_equiv_bytes (nothing to measure the saving against).
export function bytesSaved(summary) {
  return summary?.dense_equiv_bytes ? summary.bytes_saved_fraction : undefined;
}

export function bytes(n) {
  if (n === undefined || n === null) return "—";
  // Binary units, as the server's quotas and messages use them (a 20 GiB quota is
  // "20 GiB", not "21.5 GB").
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${Number(n.toPrecision(3))} ${units[i]}`;
}

// A metric counted in bytes (the server's list: bytes_up_total, dense_equiv_bytes): its
// values are written with bytes() wherever one is shown beside byte counts (a sweep's
// objectives).
const BYTES = new Set(BYTE_METRICS);
export function bytesMetric(name) {
  return BYTES.has(name);
}

export function when(iso) {
  return iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC") : "—";
}

// A job's or a sweep's finished statuses (DESIGN §4, §11), as the server has them.
export const TERMINAL = new Set(TERMINAL_STATUSES);

// A sweep's trials that have finished (as the CLI counts them): a pending or running
// trial has started, not finished.
const FINISHED_TRIAL = new Set(FINISHED_TRIAL_STATUSES);
export function isFinishedTrial(trial) {
  return FINISHED_TRIAL.has(trial.status);
}
export function finishedTrials(sweep) {
  return sweep.trials.filter(isFinishedTrial).length;
}

export function statusBadge(status) {
  return el("span", { class: `badge status-${status}`, dataset: { status } }, status);
}

// A 422's field error as the CLI writes it: `field: message`, the field a dotted path
// inside the body, query or path (left out where the message already starts with it).
function fieldError(error) {
  const loc = (error.loc || []).map(String);
  const field = (["body", "query", "path"].includes(loc[0]) ? loc.slice(1) : loc).join(".");
  return !field || error.msg.startsWith(field) ? error.msg : `${field}: ${error.msg}`;
}

// Said while the server cannot be reached (network down, server restarting).
export const UNREACHABLE = "Cannot reach the server; retrying…";

// A request or a module import that never got an answer (fetch's TypeError), or a
// proxy's answer for a server that is down: worth retrying, not an error to show.
export function unreachable(error) {
  if (error?.name === "AbortError") return false;
  if (error instanceof TypeError && /fetch|import|network|load/i.test(error.message)) return true;
  return [502, 503, 504].includes(error?.status);
}

export function errorBox(error) {
  const detail = error?.detail;
  // "Cannot reach the server", not fetch's "TypeError: Failed to fetch".
  const text = unreachable(error) ? "Cannot reach the server: try again once it is back."
    : typeof detail === "string" ? detail
    : Array.isArray(detail) ? detail.map(fieldError).join("; ") : String(error);
  return el("p", { class: "error", role: "alert" }, text);
}

// A route's id (#/jobs/12): a positive integer, or null (#/jobs/abc, which is no job:
// not worth asking the server, whose 422 read "job_id: Input should be a valid integer").
export function routeId(text) {
  return /^[1-9]\d*$/.test(text ?? "") ? Number(text) : null;
}

export function section(title, ...children) {
  return el("section", { class: "card" }, el("h2", {}, title), ...children);
}

// A page's notice while its event stream waits for a free slot (a 429: the user's
// max_streams_per_user, held by their other tabs): a note, not an error, hidden again
// once the stream connects. `onWait`/`onLive` go to live.js stream(); `onLost` is
// live.js jobsFeed's.
export function streamWaitNote() {
  const node = el("p", { class: "note stream-wait", role: "status", hidden: true });
  return {
    node,
    onWait(detail) {
      const open = /you have (\d+) open/.exec(typeof detail === "string" ? detail : "");
      node.textContent = `Waiting for a free event stream (you have ${open ? open[1] : "too many"}`
        + " open in other tabs or pages; closing one frees it): not live, retrying.";
      node.hidden = false;
    },
    // The stream lost (the server unreachable): retried every second.
    onLost() {
      node.textContent = UNREACHABLE;
      node.hidden = false;
    },
    onLive() { node.hidden = true; },
  };
}
