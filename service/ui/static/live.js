// What keeps a page live: the API's event streams read over fetch, the jobs feed,
// pollers for what no event announces, and redraws that follow the newest event.
import { ApiError, api, apiError, headers, session } from "./api.js";

// Server-sent events over fetch (EventSource cannot send an Authorization header).
// Calls onEvent({event, data, id}) per event; resumes with Last-Event-ID after a
// dropped connection; returns when `signal` aborts or the server ends the stream:
// with `reconnect`, only once `finished()` says the stream's subject is done (a
// server stopping ends every stream cleanly too). `onLive(true|false, error)` hears when
// the stream connects and when it is lost and about to be resumed (`error`: the
// failed request's, null for a stream the server ended).
//
// A 429 (the user's max_streams_per_user: other tabs hold their streams) is retried,
// 2 s after the first refusal, doubling to 30 s between tries: `onWait(detail)` hears
// each refusal (the page says it waits and may read its data with plain GETs),
// `onLive(true)` the connection that follows. Any other 4xx throws.
//
// A hidden tab gives its connection back and resumes (Last-Event-ID) once shown: a
// browser opens at most six HTTP/1.1 connections to one server and every open list,
// lab, sweep or job page holds one, so a seventh tab could not even sign in.
export async function stream(path, onEvent,
  { signal, reconnect = false, finished = () => false, onLive = () => {}, onWait = () => {} }
  = {}) {
  let lastId = null;
  let refusals = 0;  // 429s in a row
  let losses = 0;  // connections lost in a row (a server restarting, a database outage)
  for (;;) {
    // Resumed after 1 s, then 2, 4, up to 8 s while it keeps failing: every open page
    // retried each second through a database outage (its 503s say Retry-After: 5).
    let pause = Math.min(STREAM_RETRY_MAX_MS, 1000 * 2 ** losses);
    let failed = null;  // why the connection was lost: null when the stream just ended
    await shown(signal);
    if (signal?.aborted) return;
    const hidden = new AbortController();
    const onHide = () => { if (document.hidden) hidden.abort(); };
    document.addEventListener("visibilitychange", onHide);
    try {
      const extra = { Accept: "text/event-stream" };
      if (lastId !== null) extra["Last-Event-ID"] = lastId;
      const sent = session.token;
      const response = await fetch(path, {
        headers: headers(extra, sent), credentials: "omit", cache: "no-store",
        signal: signal ? AbortSignal.any([signal, hidden.signal]) : hidden.signal,
      });
      if (!response.ok) {
        throw apiError(response, await response.json().catch(() => null), sent);
      }
      refusals = 0;
      losses = 0;
      onLive(true);
      await readEvents(response.body, (event) => {
        if (event.id !== undefined) lastId = event.id;
        onEvent(event);
      });
      if (!reconnect || finished()) return;
    } catch (error) {
      if (signal?.aborted) return;
      if (hidden.signal.aborted) continue; // paused by us: resume as soon as shown
      if (error instanceof ApiError && error.status === 429) {
        pause = Math.min(STREAM_WAIT_MAX_MS, STREAM_WAIT_MS * 2 ** refusals);
        refusals += 1;
        onWait(error.detail);
      } else if (error instanceof ApiError && error.status < 500) {
        throw error;
      } else {
        refusals = 0;  // lost (a server restarting): say so, not "waiting for a stream"
        losses += 1;
        failed = error;
      }
    } finally {
      document.removeEventListener("visibilitychange", onHide);
    }
    if (refusals === 0) onLive(false, failed);  // lost: resumed after a second
    await sleep(pause, signal); // back off, then resume
    if (signal?.aborted) return;
  }
}

// The jobs feed (`query`: the list's parameters): `onPage(page)` with each page it
// sends. While it is refused (429: the user's other pages hold their streams), a plain
// GET /v1/jobs at each retry, drawn unless the feed came back meanwhile: not live,
// but not blank. Lost (the server unreachable), the note says so until it is back.
// `waiting`: the page's note (dom.js streamWaitNote). A feed row is a job without its
// spec (the Lab's 500 rows were ~730 KB with them).
export function jobsFeed(query, onPage, { signal, waiting }) {
  let live = false;
  // The rows this connection sent, by id, in the page's order: after its first page
  // (`jobs`) the feed sends only the new or changed rows, and the page's ids when they
  // changed (`changes`); a reconnection starts with a whole page again.
  let rows = new Map();
  return stream(`/v1/feeds/jobs?${query}`, (event) => {
    if (event.event === "jobs") {
      const page = JSON.parse(event.data);
      rows = new Map(page.data.map((job) => [job.id, job]));
      onPage(page);
    } else if (event.event === "changes") {
      const change = JSON.parse(event.data);
      for (const job of change.data) rows.set(job.id, job);  // a known id keeps its place
      if (change.ids) rows = new Map(change.ids.map((id) => [id, rows.get(id)]));
      const data = [...rows.values()];
      onPage({ data, next_cursor: change.next_cursor });
    }
  }, {
    signal,
    reconnect: true,
    onLive: (up, error) => {
      live = up;
      if (up) waiting.onLive();
      else if (error) waiting.onLost?.();
    },
    onWait: async (detail) => {
      waiting.onWait(detail);
      try {
        const page = await api(`/v1/jobs?${query}`, { signal });
        if (!live) await onPage(page);
      } catch { /* the next retry reads it again */ }
    },
  });
}

// A refused stream's first wait and the longest, and a lost one's longest (stream()).
const STREAM_WAIT_MS = 2000;
const STREAM_WAIT_MAX_MS = 30000;
const STREAM_RETRY_MAX_MS = 8000;

// Resolves after `ms`, or at once when `signal` aborts.
export function sleep(ms, signal) {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done);
  });
}

// Resolves once the page is visible (at once if it is), or when `signal` aborts.
function shown(signal) {
  if (!document.hidden || signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (document.hidden && !signal?.aborted) return;
      document.removeEventListener("visibilitychange", done);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    document.addEventListener("visibilitychange", done);
    signal?.addEventListener("abort", done);
  });
}

// The events of an SSE body, as the WHATWG parser reads them. Exported for tests.
export async function readEvents(body, dispatch) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { event: "message", data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    // A "\r" that ends a chunk may be the first half of the server's "\r\n": it waits
    // for the next chunk. Read alone, it ended the line and the "\n" ended another,
    // so an empty line flushed the event half-read (its type or id lost; a review).
    const held = buffer.endsWith("\r") ? "\r" : "";
    const lines = buffer.slice(0, buffer.length - held.length).split(/\r\n|\r|\n/);
    buffer = lines.pop() + held;
    for (const line of lines) {
      if (line === "") {
        if (event.data.length) dispatch({ ...event, data: event.data.join("\n") });
        event = { event: "message", data: [] };
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "data") event.data.push(text);
      else if (field === "event") event.event = text;
      else if (field === "id") event.id = text;
    }
  }
}

// `tick` every `ms` while `keepGoing()` holds, one run at a time, none after `signal`
// aborts (the view is left): for what no event announces. Returns `start`, which does
// nothing while a tick is already scheduled. A failed tick is retried at the next. A
// hidden tab asks nothing until it is shown again (as its streams give their
// connections back): a sweep page polled every 2 s behind other tabs all day.
export function poller(ms, keepGoing, tick, signal) {
  let timer = null;
  signal.addEventListener("abort", () => clearTimeout(timer));
  return function start() {
    if (timer !== null || signal.aborted || !keepGoing()) return;
    timer = setTimeout(async () => {
      try {
        await shown(signal);
        if (!signal.aborted && keepGoing()) await tick();
      } catch { /* the next tick tries again */ }
      timer = null;
      start();
    }, ms);
  };
}

// `fn` run with the newest arguments only: a call while a run is in flight replaces
// any call still waiting. A view redrawn on every feed event (one every 0.5 s while
// jobs run) then never falls behind: a draw slower than the feed used to queue one
// draw per event, each with its own requests, without end. Errors are left to the
// next call (the next event redraws).
export function latestOnly(fn) {
  let pending = null;
  let running = false;
  return async function run(...args) {
    pending = args;
    if (running) return;
    running = true;
    try {
      while (pending) {
        const next = pending;
        pending = null;
        try { await fn(...next); } catch { /* the next event redraws */ }
      }
    } finally {
      running = false;
    }
  };
}
