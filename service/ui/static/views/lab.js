// The lab at a glance: dispatchers and Ray resources, the front of the queue in the
// order the dispatchers will take it (/v1/cluster's queue_head, each row explained),
// usage and uploads and bytes saved per user.
// Redrawn whenever the live jobs feed changes, and every CLUSTER_POLL_MS.
import { api, session } from "../api.js";
import { jobsFeed, latestOnly, poller, sleep } from "../live.js";
import {
  bytes, el, emptyRow, fmt, percent, patch, section, statusBadge, streamWaitNote, when,
} from "../dom.js";
import { MAX_PAGE } from "../../rules.js";

const FEED_JOBS = MAX_PAGE; // the newest jobs the live feed carries (its largest page)
// What no job event announces is read again this often while the page is shown: a
// dispatcher that stops or is lost, Ray's free resources, the queue's reasons.
const CLUSTER_POLL_MS = 5000;
// The feed sends a page every 0.5 s while jobs run, and each draw asks /v1/cluster
// (the queue head's explanations) and the users: one draw this often at most, of the
// newest page (an open Lab asked both twice a second; a review).
const DRAW_EVERY_MS = 2000;

// A dispatcher as /v1/cluster judges it: alive (seen within the lease, not stopped),
// stopped (it exited cleanly: stopped_at) or lost (not seen within the lease and it
// never said it stopped: killed, crashed or cut off, and it may come back).
const dispatcherState = (d) => (d.alive ? "alive" : d.stopped_at ? "stopped" : "lost");

// A user's usage against their quota as a reader says it, not as JSON (DESIGN §11's
// fields): "1 of 4 running · 1.2 GiB of 20 GiB stored · 24 h a job".
const QUOTA_PARTS = [
  ["max_running_jobs", "running_jobs", (v) => `${fmt(v)} running`],
  ["max_queued_jobs", "queued_jobs", (v) => `${fmt(v)} queued`],
  ["max_cpus", "cpus", (v) => `${fmt(v)} CPU`],
  ["max_gpus", "gpus", (v) => `${fmt(v)} GPU`],
  ["max_storage_bytes", "storage_bytes", (v) => `${bytes(v)} stored`],
  ["max_job_hours", null, (v) => `${fmt(v)} h a job`],
];

function quotaText(quota, usage) {
  return QUOTA_PARTS.filter(([key]) => quota[key] != null).map(([key, used, say]) => {
    if (!used || usage?.[used] == null) return say(quota[key]);
    const amount = used === "storage_bytes" ? bytes(usage[used]) : fmt(usage[used]);
    return `${amount} of ${say(quota[key])}`;
  }).join(" · ") || "—";
}

function jobsCount(n) {
  return n === 1 ? "1 job" : `${n} jobs`;
}

export async function render(root, _params, signal) {
  const admin = session.user?.role === "admin";
  const body = el("div");
  const waiting = streamWaitNote();
  root.append(el("h1", {}, "Lab"), waiting.node, body);

  let lastJobs = null; // the feed's last page, which a poll redraws with
  async function draw(jobs) {
    lastJobs = jobs;
    // The queue's front in claim order comes from /v1/cluster (queue_head, each job
    // with explain's reasons: one request, not two per job), not from the feed: the
    // feed holds the newest jobs, the front holds the oldest.
    const [cluster, users] = await Promise.all([api("/v1/cluster", { signal }),
      admin ? api(`/v1/users?limit=${MAX_PAGE}`, { signal }).then((p) => p.data)
        : api("/v1/users/me", { signal }).then((u) => [u])]);
    const order = cluster.queue_head || [];
    const resources = cluster.resources || { total: {}, free: {} };
    const saved = new Map();
    // Every job with a summary counts, however it ended: a cancelled or failed job's
    // summary is the traffic its rounds really sent (none: it ran no round).
    for (const job of jobs) {
      if (!job.summary) continue;
      const s = saved.get(job.owner)
        || { uploads: 0, dense: 0, jobs: 0, sent: 0, denseBytes: 0, byteJobs: 0 };
      s.uploads += job.summary.uploads_total || 0;
      s.dense += job.summary.dense_equiv_uploads || 0;
      s.jobs += 1;
      // A job finished before summaries had dense_equiv_bytes counts for uploads
      // only: its bytes have nothing dense to be measured against.
      if (job.summary.dense_equiv_bytes) {
        s.sent += job.summary.bytes_up_total || 0;
        s.denseBytes += job.summary.dense_equiv_bytes;
        s.byteJobs += 1;
      }
      saved.set(job.owner, s);
    }
    patch(body,
      section("Cluster",
        el("table", { id: "resources" }, el("thead", {}, el("tr", {}, el("th", {}, "resource"),
          el("th", {}, "free"), el("th", {}, "total"))),
        el("tbody", {}, Object.entries(resources.total || {}).map(([name, total]) => el("tr", {},
          el("td", {}, name), el("td", {}, fmt(resources.free?.[name] ?? 0)), el("td", {}, fmt(total)))))),
        el("p", {}, "All users' jobs by status: ", Object.entries(cluster.queue).map(([s, n]) =>
          el("span", { class: "count" }, statusBadge(s), ` ${n} `))),
        el("table", { id: "dispatchers" }, el("thead", {}, el("tr", {}, ["dispatcher", "host",
          "state", "last seen"].map((h) => el("th", {}, h)))),
        el("tbody", {}, cluster.dispatchers.map((d) => {
          const state = dispatcherState(d);
          return el("tr", { key: d.id, dataset: { dispatcher: d.id, state } }, el("td", {}, d.id),
            el("td", { class: "free" }, d.hostname),
            el("td", { class: "state" }, el("span", { class: `badge dispatcher-${state}` }, state),
              state === "stopped" ? ` ${when(d.stopped_at)}` : ""),
            el("td", {}, when(d.last_seen_at)));
        })))),
      section("Queue (fair-share order)", el("table", { id: "queue" },
        el("thead", {}, el("tr", {}, ["position", "job", "owner", "priority", "waiting for"]
          .map((h) => el("th", {}, h)))),
        el("tbody", {}, order.length ? [] : emptyRow(5, admin ? "No job is queued." : "None of your jobs is queued."), order.map((place) => el("tr",
          { key: place.job_id, dataset: { jobId: place.job_id }, class: place.position == null ? "skipped" : undefined },
          el("td", {}, place.position ?? "skipped"),
          el("td", { class: "name" },
            el("a", { href: `#/jobs/${place.job_id}` }, `${place.job_id} ${place.name || ""}`)),
          el("td", { class: "free" }, place.owner), el("td", {}, place.priority),
          el("td", { class: "free" }, place.reasons.map((r) => r.message).join("; ") || "next free slot")))))),
      section("Users", el("table", { id: "users" },
        el("thead", {}, el("tr", {}, ["user", "role", "jobs", "by status", "usage of quota",
          `uploads saved (newest ${FEED_JOBS} jobs)`, "bytes saved"]
          .map((h) => el("th", {}, h)))),
        el("tbody", {}, users.map((u) => {
          const s = saved.get(u.name);
          // A disabled account (its tokens refused) says so where its role is.
          return el("tr", { key: u.name, dataset: { user: u.name }, class: u.disabled ? "disabled" : "" },
            el("td", { class: "free name" }, u.name),
            el("td", { class: "role" }, u.disabled ? `${u.role} · disabled` : u.role),
            el("td", {}, u.usage?.jobs_total ?? "—"),
            el("td", {}, Object.entries(u.usage?.jobs_by_status || {}).filter(([, n]) => n)
              .map(([k, n]) => `${k} ${n}`).join(", ")),
            el("td", { class: "quota" }, u.quota ? quotaText(u.quota, u.usage)
              : u.max_running_jobs != null ? `max running ${u.max_running_jobs}` : "—"),
            el("td", { class: "saved" }, s && s.dense
              ? `${percent(1 - s.uploads / s.dense)} of ${fmt(s.dense)} (${jobsCount(s.jobs)})`
              : "—"),
            el("td", { class: "bytes-saved" }, s && s.denseBytes
              ? `${percent(1 - s.sent / s.denseBytes)} of ${bytes(s.denseBytes)}`
                + ` (${jobsCount(s.byteJobs)})`
              : "—"));
        })))),
    );
    root.dataset.updates = String(Number(root.dataset.updates || 0) + 1);
  }

  const redraw = latestOnly(async (jobs) => {
    const began = performance.now();
    try {
      await draw(jobs);
    } finally {
      await sleep(DRAW_EVERY_MS - (performance.now() - began), signal);
    }
  });
  const poll = poller(CLUSTER_POLL_MS, () => true, async () => {
    if (lastJobs && !document.hidden) await redraw(lastJobs);
  }, signal);
  poll();
  // Refused (429), the lab is drawn from GET /v1/jobs at each retry (live.js jobsFeed).
  await jobsFeed(`limit=${FEED_JOBS}`, (page) => redraw(page.data), { signal, waiting });
}
