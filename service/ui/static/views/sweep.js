// A sweep: each trial as its objective against the bytes its job uploaded, the
// sweep's best trials (its Pareto front with several objectives) highlighted.
// Redrawn when the live feed of the sweep's jobs reports a change and, while the sweep
// is not finished, every POLL_MS: the sweep controller writes the sweep's status, its
// trials' values and `best` after the last trial job has ended, and no feed event
// follows.
// Its owner (or an admin) can cancel an unfinished sweep: no new trials, its queued and
// running trial jobs cancelled (cancelling one trial's job only starts the next trial);
// and delete a finished one with its trials' jobs (their metrics and checkpoints).
import { api, session } from "../api.js";
import { jobsFeed, latestOnly, poller } from "../live.js";
import {
  bytesAxis, emptyAxis, noBetterThanBaseline, plainText, plot, valueAxis,
} from "../charts.js";
import {
  bytes, bytesMetric, el, errorBox, fmt, finishedTrials, isFinishedTrial, patch, routeId,
  section, statusBadge, streamWaitNote, TERMINAL,
} from "../dom.js";
import { MAX_PAGE } from "../../rules.js";
import { deleteButton } from "./delete_button.js";

const POLL_MS = 2000;
// The objective the trials table's "bytes up" column already shows.
const BYTES_UP = "bytes_up_total";
// The newest trial jobs the feed sends at each change: every running one (at most the
// sweep's `parallel`) and those just finished; the rest do not change any more.
const feedSize = (parallel) => Math.min(MAX_PAGE, Math.max(10, 2 * parallel));

export async function render(root, params, signal) {
  const sweepId = routeId(params.id);
  if (sweepId === null) {
    root.append(el("p", { class: "error", role: "alert" },
      `No sweep '${params.id}': a sweep id is a number.`));
    return;
  }
  const chart = el("div", { id: "chart-sweep", class: "chart" });
  const head = el("div");
  const table = el("tbody");
  const jobs = new Map();
  let status = null;  // the sweep's, as last drawn
  let parallel = 1;  // its trial jobs at a time
  let trials = 0;  // started, as last drawn
  let finishedFeed = () => {};  // closes the jobs feed (once the sweep is finished)
  let cancelError = null;  // one message, the last try's
  const cancel = el("button", { type: "button", id: "cancel-sweep", class: "danger", hidden: true,
    onclick: async () => {
      // One stray click must not end a whole sweep: ask first.
      if (!window.confirm(`Cancel sweep ${sweepId}? No new trials start; its running trial `
        + "jobs stop within a few seconds.")) return;
      cancelError?.remove();
      cancelError = null;
      cancel.disabled = true;
      try {
        await redraw(await api(`/v1/sweeps/${sweepId}/cancel`, { method: "POST", signal }));
        schedulePoll();  // cancelling, until the controller sees its trial jobs stopped
      } catch (error) {
        if (!signal.aborted) cancel.after(cancelError = errorBox(error));
      }
      cancel.disabled = false;
    } }, "Cancel sweep");
  // A 409 says what has not finished (a trial job still stopping).
  const remove = deleteButton({ id: "delete-sweep", label: "Delete sweep", signal,
    path: `/v1/sweeps/${sweepId}`, list: "#/sweeps",
    question: () => `Delete sweep ${sweepId} with its ${trials} trials' jobs, their `
      + "metrics and checkpoints? This cannot be undone." });
  const waiting = streamWaitNote();
  // What the bold rows are (tr.best: the sweep's `best`).
  const legend = el("p", { id: "trials-legend", class: "muted", hidden: true });
  root.append(head, el("div", { class: "toolbar" }, cancel, remove), waiting.node,
    section("Objective against bytes uploaded", chart),
    section("Trials", el("table", { id: "trials" }, el("thead", {}, el("tr", {},
      ["trial", "job", "status", "params", "values", "bytes up", "why"].map((h) => el("th", {}, h)))),
    table), legend));

  // `given`: the sweep as an answer already holds it (the cancel's).
  async function draw(given) {
    const sweep = given ?? await api(`/v1/sweeps/${sweepId}`, { signal });
    status = sweep.status;
    trials = sweep.trials.length;
    const user = session.user;
    const mine = user?.role === "admin" || user?.name === sweep.owner;
    cancel.hidden = TERMINAL.has(status) || status === "cancelling" || !mine;
    remove.hidden = !TERMINAL.has(status) || !mine;
    const objectives = sweep.spec.objectives;
    const shown = objectives.findIndex((o) => o.metric !== "bytes_up_total");
    const objective = objectives[Math.max(0, shown)];
    parallel = sweep.spec.parallel;
    // The trial jobs' statuses and summaries come from the feed; the sweep's jobs
    // listing is read only for trials the page holds no current copy of (a job not
    // seen yet, or one the sweep calls finished whose copy is not), and only as far as
    // they reach. A GET per trial job was a thousand requests for a thousand trials;
    // the whole listing at every draw, a megabyte.
    const wanted = new Set(sweep.trials.filter((t) => t.job_id && (!jobs.has(t.job_id)
      || (isFinishedTrial(t) && !TERMINAL.has(jobs.get(t.job_id).status)))).map((t) => t.job_id));
    if (wanted.size) await readJobs(wanted);
    const best = new Set(sweep.best);
    const points = sweep.trials.map((t) => {
      const job = jobs.get(t.job_id);
      // Only a succeeded job's summary is a result: a pruned or cancelled trial's job
      // keeps the summary of the rounds it ran, which is no point of the sweep.
      const done = job?.status === "succeeded" ? job.summary : undefined;
      const y = t.values ? t.values[Math.max(0, shown)] : done?.final_metrics?.[objective.metric];
      return { trial: t, x: done?.bytes_up_total, y };
    }).filter((p) => p.x != null && p.y != null);
    const front = points.filter((p) => best.has(p.trial.number)).sort((a, b) => a.x - b.x);
    const rest = points.filter((p) => !best.has(p.trial.number));
    patch(head, el("h1", {}, `Sweep ${sweep.id}: ${sweep.name || "(unnamed)"} `,
      statusBadge(sweep.status)), el("p", { class: "facts" },
      `owner ${sweep.owner} · `,
      el("span", { id: "trial-count" }, `${finishedTrials(sweep)} finished of `
        + `${sweep.spec.trials} trials (${sweep.trials.length} started)`),
      ` · sampler ${sweep.spec.sampler} · objectives `
      + `${objectives.map((o) => `${o.direction} ${o.metric}`).join(", ")}`),
    // Why the sweep failed ("no trial completed: …"): the server's words, as text.
    ...(sweep.error ? [el("p", { id: "sweep-error", class: "error" }, sweep.error)] : []));
    const text = (p) => plainText(`trial ${p.trial.number}: ${JSON.stringify(p.trial.params)}`);
    const drawn = plot(chart, [
      { type: "scatter", mode: "markers", name: "trials", x: rest.map((p) => p.x),
        y: rest.map((p) => p.y), text: rest.map(text), marker: { color: "#8a94a6", size: 9 } },
      { type: "scatter", mode: "lines+markers", name: best.size > 1 ? "Pareto front" : "best",
        x: front.map((p) => p.x), y: front.map((p) => p.y), text: front.map(text),
        marker: { color: "#d62728", size: 12, symbol: "diamond" }, line: { shape: "hv" } },
    ], { // Binary units, as the table beside it and Compare write bytes.
      xaxis: bytesAxis("bytes uploaded (log scale)", points.map((p) => p.x)),
      yaxis: { ...valueAxis(objective.metric), ...emptyAxis(points.length > 0),
        title: { text: `${objective.metric} (${objective.direction})` } },
    });
    // What the chart shows (tests wait on it), once it is drawn (charts.js).
    const frontNumbers = front.map((p) => p.trial.number).join(",");
    drawn.then(() => { chart.dataset.front = frontNumbers; });
    legend.textContent = best.size > 1
      ? "Bold rows: the Pareto front (no other trial does better on every objective)."
      : "Bold row: the best trial.";
    legend.hidden = best.size === 0;
    patch(table, sweep.trials.map((t) => el("tr", { key: t.number,
      class: best.has(t.number) ? "best" : "", dataset: { trial: t.number } },
    el("td", {}, t.number),
    el("td", {}, t.job_id ? el("a", { href: `#/jobs/${t.job_id}` }, t.job_id) : "—"),
    el("td", {}, statusBadge(t.status)),
    el("td", { class: "mono" }, Object.entries(t.params).map(([k, v]) => `${k}=${fmt(v)}`)
      .join(" ")),
    // In the objectives' order; a byte count in the units of the bytes-up column, and
    // bytes_up_total, that column's own number, left to it (not "0.5738, 287 KiB"
    // beside "287 KiB") unless it is the only objective.
    el("td", { class: "values" }, t.values ? t.values.map((v, i) => [v, objectives[i]?.metric])
      .filter(([, metric]) => objectives.length === 1 || metric !== BYTES_UP)
      .map(([v, metric]) => (bytesMetric(metric) ? bytes(v) : fmt(v))).join(", ") : "—"),
    el("td", { class: "bytes-up" }, bytes(jobs.get(t.job_id)?.summary?.bytes_up_total)),
    // Why a trial failed (an invalid point, its job's error) or why a pending one
    // waits (the owner's quota): an error only for a failed trial. A succeeded one
    // whose model did no better than its baseline says so (a wasted point).
    el("td", { class: `trial-error free ${t.status === "failed" ? "error" : "muted"}` },
      t.error || (t.status === "succeeded" ? baselineNote(jobs.get(t.job_id)) : "")))));
    if (TERMINAL.has(status)) finishedFeed();
    root.dataset.updates = String(Number(root.dataset.updates || 0) + 1);
  }

  // Newest first, so a running or just-finished trial's job is on the first page.
  async function readJobs(wanted) {
    let cursor = null;
    do {
      const query = new URLSearchParams({ sweep_id: sweepId, limit: MAX_PAGE });
      if (cursor) query.set("cursor", cursor);
      const page = await api(`/v1/jobs?${query}`, { signal });
      for (const job of page.data) {
        jobs.set(job.id, job);
        wanted.delete(job.id);
      }
      cursor = page.next_cursor;
    } while (cursor && wanted.size);
  }

  const redraw = latestOnly(draw);
  await draw();
  // Re-read while unfinished; stops once the sweep is finished or the page is left.
  const schedulePoll = poller(POLL_MS, () => !TERMINAL.has(status), () => redraw(), signal);
  schedulePoll();
  // The feed only tells an unfinished sweep's page to redraw: a finished sweep's page
  // holds no stream (each counts against the user's max_streams_per_user), and the
  // feed is closed once the sweep is drawn finished.
  if (TERMINAL.has(status)) return;
  const feed = new AbortController();
  finishedFeed = () => feed.abort();
  const query = new URLSearchParams({ sweep_id: sweepId, limit: feedSize(parallel) });
  await jobsFeed(query, (page) => {
    for (const job of page.data) jobs.set(job.id, job);
    redraw();
  }, {
    signal: AbortSignal.any([signal, feed.signal]),
    // While the feed is refused, the poll redraws too (jobsFeed reads the page).
    waiting: {
      onLive: () => waiting.onLive(),
      onLost: () => waiting.onLost(),
      onWait: (detail) => { waiting.onWait(detail); schedulePoll(); },
    },
  });
  waiting.onLive();
}

// "val_perplexity no better than its unigram_perplexity (24.6)" for a trial job
// whose model did not beat its baseline; "" otherwise (and before its summary is read).
function baselineNote(job) {
  const worse = noBetterThanBaseline(job?.summary?.final_metrics);
  return worse ? `${worse[0]} no better than its ${worse[1]} (${fmt(worse[2])})` : "";
}
