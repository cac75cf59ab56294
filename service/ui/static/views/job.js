// One job: spec, status timeline, explain while queued, live curves and the upload
// raster (over the job's SSE stream), checkpoints, and its actions (job_actions.js:
// cancel, delete a finished job's checkpoints, delete a finished job).
import { allMetrics, api } from "../api.js";
import { poller, sleep, stream } from "../live.js";
import {
  baselineOf, emptyAxis, line, plot, rasterTrace, uploadsPerRound, validationMetric, valueAxis,
} from "../charts.js";
import {
  bytes, bytesSaved, el, emptyRow, errorBox, fmt, percent, patch, routeId, section,
  statusBadge, streamWaitNote, TERMINAL, unreachable, when,
} from "../dom.js";
import { checkpointRows } from "./checkpoints.js";
import { jobActions } from "./job_actions.js";

// At most five redraws a second however fast records arrive, and never more than a
// third of the time spent drawing: a slow machine keeps its page responsive.
const REDRAW_MS = 200;
// While the job is queued its place moves as other jobs start, end or arrive, with
// no event on this job's own stream: its explanation is asked again this often.
const EXPLAIN_MS = 3000;
// A checkpoint round asks for the checkpoints table again at most this often: a
// finished job's stream replays every record at once, and each checkpoint round's two
// GETs went out together (a review: 406 requests opening a 2,000-round job's page).
const REFRESH_MS = 1000;
// A status event whose read failed is read again after this, doubling up to the most.
const CATCH_UP_MS = 1000;
const CATCH_UP_MAX_MS = 10000;
// What a running job with no round yet is doing (the CLI's `show` says the same).
const STARTING = "Starting: Ray places the gang and starts its processes (often 10-20 s); "
  + "the charts fill in from its first round.";

export async function render(root, params, signal) {
  const jobId = routeId(params.id);
  if (jobId === null) {
    root.append(el("p", { class: "error", role: "alert" },
      `No job '${params.id}': a job id is a number.`));
    return;
  }
  let job = await api(`/v1/jobs/${jobId}`, { signal });
  const replicas = job.spec.distributed.workers;
  // `seq`: the last record's (records come in seq order, from the stream or, while it
  // is refused, from GET …/metrics: one never repeats what the other added).
  const series = { round: [], uploaded: [], values: {}, seq: 0 };

  const title = el("h1", {}, `Job ${job.id}: ${job.name || "(unnamed)"} `);
  const badge = el("span", { id: "job-status" });
  const facts = el("p", { class: "facts" });
  const actions = jobActions(jobId, signal,
    { onCancelled: showJob, onCheckpointsDeleted: () => refreshDetails() });
  const explain = el("div", { id: "explain" });
  // Shown while the event stream is lost (a server restarting): the page is not live.
  const streamNote = el("span", { id: "stream-note", class: "note", hidden: true },
    "reconnecting…");
  const timeline = el("tbody");
  const checkpoints = el("tbody");
  const checkpointRow = checkpointRows(jobId, signal);
  const [lossChart, evalChart, uploadChart] = ["loss", "eval", "uploads"]
    .map((name) => el("div", { id: `chart-${name}`, class: "chart" }));
  const raster = el("div", { id: "chart-raster", class: "chart raster" });
  const rasterSection = el("details", { id: "raster", open: true },
    el("summary", {}, "Upload raster (replicas × rounds)"), raster);

  const charts = el("div", { class: "charts" }, lossChart, evalChart, uploadChart);
  const waiting = streamWaitNote();
  // Over the empty charts of a job with no rounds yet (a queued one); showJob's words.
  const noData = el("p", { id: "no-data", class: "muted", hidden: true });
  root.append(
    title, el("div", { class: "toolbar" }, badge, ...actions.toolbar, streamNote), waiting.node,
    facts, explain,
    section("Training", noData,
      charts,
      rasterSection),
    section("Status timeline", el("table", { id: "timeline" }, el("thead", {}, el("tr", {},
      ["time", "from", "to", "attempt", "by", "reason"].map((h) => el("th", {}, h)))), timeline)),
    section("Checkpoints", el("table", { id: "checkpoints" }, el("thead", {}, el("tr", {},
      ["round", "attempt", "size", "sha256", ""].map((h) => el("th", {}, h)))), checkpoints),
      actions.removeCheckpoints),
    section("Resolved spec", el("pre", { id: "spec" }, JSON.stringify(job.spec, null, 2))),
  );

  function showJob(next) {
    // A read answered late (an explain poll's, a cancel's) never takes a finished job
    // back to an earlier status: a finished job's status is its last (a review).
    if (TERMINAL.has(job.status) && !TERMINAL.has(next.status)) return;
    job = next;
    // A job that ended before its first round (failed at its start, cancelled while
    // queued) will never fill the charts in.
    noData.textContent = ranNoRound() ? "No rounds were run: the job ended before its first round."
      // Running with no round yet: the gang's start (10-20 s) read as a stuck job.
      : job.status === "running" && !(job.progress.round > 0) ? STARTING
      : "No data yet: the charts fill in as the job reports its rounds.";
    badge.replaceChildren(statusBadge(job.status));
    hideEmptyCharts();
    actions.showJob(job);
    const s = job.summary;
    patch(facts,
      `owner ${job.owner} · `,
      ...(job.sweep_id != null
        ? ["trial of ", el("a", { id: "job-sweep", href: `#/sweeps/${job.sweep_id}` },
          `sweep ${job.sweep_id}`), " · "]
        : []),
      `attempt ${job.attempt}/${job.max_attempts} · round `,
      el("span", { id: "progress" }, `${job.progress.round}/${job.progress.rounds}`),
      ` · created ${when(job.created_at)}`,
      job.finished_at ? ` · finished ${when(job.finished_at)}` : "",
      // A job cancelled or failed after running rounds keeps the summary of those.
      s && job.status !== "succeeded" && s.rounds_completed != null
        ? el("span", { id: "stopped-at" }, ` · stopped at round ${s.rounds_completed} of ${s.rounds}`)
        : "",
      s ? ` · uploads ${fmt(s.uploads_total)} of ${fmt(s.dense_equiv_uploads)} dense`
        + ` (${percent(s.uploads_saved_fraction)} saved), ${bytes(s.bytes_up_total)} up`
        + (bytesSaved(s) === undefined ? ""
          : ` of ${bytes(s.dense_equiv_bytes)} dense (${percent(bytesSaved(s))} saved)`)
        : "",
      job.error ? el("span", { class: "error" }, ` · ${job.error}`) : "");
  }

  // Refreshes overlap (checkpoint rounds, the final status, a delete): only the
  // newest one asked for draws, so an older answer never brings deleted rows back.
  let detailsAsked = 0;
  async function refreshDetails() {
    const asked = ++detailsAsked;
    const [history, points] = await Promise.all([
      api(`/v1/jobs/${jobId}/history`, { signal }),
      api(`/v1/jobs/${jobId}/checkpoints`, { signal }),
    ]);
    if (asked !== detailsAsked) return;
    patch(timeline, history.data.map((h) => el("tr", {}, el("td", {}, when(h.time)),
      el("td", {}, h.from_status || ""), el("td", {}, h.to_status), el("td", {}, h.attempt),
      el("td", { class: "free" }, h.actor), el("td", { class: "free" }, h.reason || ""))));
    patch(checkpoints, points.data.length ? points.data.map(checkpointRow)
      : emptyRow(5, "No checkpoints."));
    actions.showCheckpoints(job, points.data.length);
    if (job.status === "queued") {
      const why = await api(`/v1/jobs/${jobId}/explain`, { signal });
      if (asked === detailsAsked) showExplain(why);
      pollExplain();
    } else explain.replaceChildren();
  }

  function showExplain(why) {
    patch(explain, section("Waiting",
      el("p", { id: "queue-place" },
        `Queue position ${why.queue_position ?? "?"} (${why.queued_ahead ?? 0} ahead)`),
      el("ul", {}, why.reasons.map((r) => el("li", {}, `${r.kind}: ${r.message}`)))));
  }

  // Re-asked while queued; stops once the job has left the queue or the page is left.
  const pollExplain = poller(EXPLAIN_MS, () => job.status === "queued", async () => {
    const why = await api(`/v1/jobs/${jobId}/explain`, { signal });
    if (why.status !== "queued" && job.status === "queued") {
      // Started (or cancelled) while its stream was quiet or lost: draw it now.
      showJob(await api(`/v1/jobs/${jobId}`, { signal }));
      await refreshDetails();
    } else if (job.status === "queued") showExplain(why);
  }, signal);

  let drawTimer = null;
  // A draw after the view is left would give its detached charts plotly's resize
  // listener again (app.js purges the charts of a view left).
  signal.addEventListener("abort", () => clearTimeout(drawTimer));
  let drawnAt = 0;
  let drawCost = 0;
  function scheduleDraw() {
    if (drawTimer !== null) return;
    const gap = Math.max(REDRAW_MS, 3 * drawCost); // from the start of the last draw
    drawTimer = setTimeout(() => {
      drawTimer = null;
      drawnAt = performance.now();
      draw();
      drawCost = performance.now() - drawnAt;
    }, Math.max(0, gap - (performance.now() - drawnAt)));
  }

  function column(name) {
    const xs = [];
    const ys = [];
    const values = series.values[name] || [];
    for (let i = 0; i < values.length; i += 1) {
      if (values[i] !== undefined && values[i] !== null) { xs.push(series.round[i]); ys.push(values[i]); }
    }
    return [xs, ys];
  }

  // Not from the records alone: a finished job's come after the page's first draw,
  // whose charts were hidden then shown, moving the page under the pointer.
  const ranNoRound = () => TERMINAL.has(job.status) && !series.round.length
    && !(job.progress.round > 0);
  // A job that ended before its first round: the note alone, no empty chart frames.
  function hideEmptyCharts() {
    charts.hidden = rasterSection.hidden = ranNoRound();
    return charts.hidden;
  }

  function draw() {
    const began = performance.now();
    const n = series.round.length;
    // (Not while a finished job's rounds are on their way: the page would move.)
    noData.hidden = n > 0 || (TERMINAL.has(job.status) && job.progress.round > 0);
    if (hideEmptyCharts()) return;
    // No rounds yet: plotly's default axes (-1..4, -1..6) would read as data. Fresh
    // objects for each chart: plotly writes its computed axis (type, range) back into
    // the layout it is given.
    const empty = (count = n) => emptyAxis(count > 0);
    const rounds = (count = n) => ({ title: { text: "round" }, ...empty(count) });
    const valName = validationMetric(new Set(Object.keys(series.values)));
    const drawn = [[lossChart, plot(lossChart, [line("train loss", ...column("train_loss"))],
      { title: { text: "train loss" }, xaxis: rounds(), yaxis: empty() })]];
    const [valRounds, values] = valName ? column(valName) : [[], []];
    // Markers for a metric of evaluation rounds only; the optimality gap, reported
    // every round, is a line (thousands of markers would only slow the redraws).
    const mode = valRounds.length < n ? "lines+markers" : "lines";
    const traces = valName ? [line(valName, valRounds, values, { mode })] : [];
    const baseline = baselineOf(valName);
    if (baseline && series.values[baseline]) {
      traces.push(line(`${baseline} (baseline)`, ...column(baseline),
        { mode: "lines", line: { dash: "dash", color: "#888" } }));
    }
    drawn.push([evalChart, plot(evalChart, traces,
      { title: { text: valName || "validation (at eval rounds)" },
        // Rounds but no evaluation yet: empty axes here too, not plotly's defaults.
        xaxis: rounds(valRounds.length),
        yaxis: { ...valueAxis(valName), ...empty(valRounds.length) } })]);
    drawn.push([uploadChart, plot(uploadChart, [
      uploadsPerRound(...column("uploads"), { yaxis: "y2", opacity: 0.5 }),
      line("cumulative uploads", ...column("uploads_total")),
      line("dense equivalent", ...column("dense_equiv_uploads"), { line: { dash: "dot" } }),
    ], { title: { text: "uploads" }, xaxis: rounds(),
      margin: { l: 56, r: 56, t: 36, b: 90 },
      yaxis: { title: { text: "cumulative" }, ...empty() },
      yaxis2: { overlaying: "y", side: "right", title: { text: "per round" },
        range: [0, replicas + 0.2], dtick: Math.max(1, Math.ceil(replicas / 4)), ...empty() } })]);
    if (rasterSection.open) {
      drawn.push([raster, plot(raster, [rasterTrace(series.round, series.uploaded, replicas)],
        { title: { text: "uploads used (replica × round)" }, height: 140 + 18 * replicas,
          margin: { l: 56, r: 16, t: 36, b: 50 },
          xaxis: rounds(), yaxis: { title: { text: "replica" }, dtick: 1, ...empty() } })]);
    }
    // What each chart shows (tests and benchmarks wait on it), once drawn (charts.js).
    for (const [node, shown] of drawn) shown.then(() => { node.dataset.rounds = String(n); });
    root.dataset.drawMs = (performance.now() - began).toFixed(1); // read by the benchmark
    const progress = root.querySelector("#progress");
    if (n && progress) progress.textContent = `${series.round[n - 1] + 1}/${job.progress.rounds}`;
  }
  rasterSection.addEventListener("toggle", () => rasterSection.open && scheduleDraw());

  function addRecord(record) {
    if (record.seq !== undefined) {
      if (record.seq <= series.seq) return;
      series.seq = record.seq;
    }
    const i = series.round.length;
    series.round.push(record.round);
    series.uploaded.push(record.uploaded || []);
    for (const [name, value] of Object.entries(record.values)) {
      (series.values[name] ||= [])[i] = value;
    }
    const every = job.spec.schedule.checkpoint_every;
    if (every && record.round % every === 0) refreshSoon();
  }

  let refreshTimer = null;
  signal.addEventListener("abort", () => clearTimeout(refreshTimer));
  function refreshSoon() {
    if (refreshTimer !== null || signal.aborted) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      refreshDetails().catch(() => {});
    }, REFRESH_MS);
  }

  // The newest status event's read draws the job; one that fails is read again,
  // backing off, until the page shows it: a terminal status whose read met a server
  // restarting left the page "running" for good, its stream ended (a review).
  let statusAsked = 0;
  let statusError = null;
  async function catchUp() {
    const asked = ++statusAsked;
    for (let pause = CATCH_UP_MS; ; pause = Math.min(2 * pause, CATCH_UP_MAX_MS)) {
      try {
        const next = await api(`/v1/jobs/${jobId}`, { signal });
        if (asked !== statusAsked) return; // a newer status event's read draws
        showJob(next);
        await refreshDetails();
        statusError?.remove();
        statusError = null;
        root.dataset.drawnStatus = job.status; // the page has caught up (tests wait on it)
        return;
      } catch (error) {
        if (signal.aborted || asked !== statusAsked) return;
        const box = errorBox(error);
        if (statusError) statusError.replaceWith(box);
        else root.prepend(box);
        statusError = box;
        // Read again only what may pass (the server unreachable or failing): a 404 (the
        // job deleted from another tab) stays what it is.
        if (!(unreachable(error) || error?.status >= 500)) return;
        await sleep(pause, signal);
        if (signal.aborted || asked !== statusAsked) return;
      }
    }
  }

  showJob(job);
  await refreshDetails();
  draw();
  // The stream ends after the job's terminal status, which comes last (after its
  // metrics); any other end (a server restarting) is resumed with Last-Event-ID, so
  // no point repeats or goes missing.
  let ended = false;
  // Refused (429: the user's other pages hold their streams), the page reads the job
  // and its new metrics with plain GETs at each retry; a finished job's page is then
  // complete and stops asking for a stream.
  const events = new AbortController();
  async function readWithoutStream() {
    const next = await api(`/v1/jobs/${jobId}`, { signal });
    // Read after the status: a finished job's metrics are all stored by then.
    for (const record of await allMetrics(jobId, signal, series.seq)) addRecord(record);
    scheduleDraw();
    const changed = next.status !== job.status;
    showJob(next);
    if (changed) await refreshDetails();
    root.dataset.drawnStatus = job.status;
    if (TERMINAL.has(job.status)) {
      events.abort();
      waiting.onLive();
    }
  }
  stream(`/v1/jobs/${jobId}/events`, async (event) => {
    if (event.event === "metrics") {
      ended = false;
      const record = JSON.parse(event.data);
      if (record.seq === undefined && event.id !== undefined) record.seq = Number(event.id);
      addRecord(record);
      scheduleDraw();
    } else if (event.event === "status") {
      ended = TERMINAL.has(JSON.parse(event.data).status);
      await catchUp();
    }
  }, {
    signal: AbortSignal.any([signal, events.signal]),
    reconnect: true,
    finished: () => ended,
    onLive: (live) => {
      streamNote.hidden = live;
      if (live) waiting.onLive();
    },
    onWait: async (detail) => {
      streamNote.hidden = true;
      waiting.onWait(detail);
      try { await readWithoutStream(); } catch { /* the next retry reads again */ }
    },
  }).catch((error) => { streamNote.hidden = true; root.prepend(errorBox(error)); });
}
