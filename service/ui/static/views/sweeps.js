// The sweeps list, newest first, in cursor pages (as the jobs list: ← newest, ← newer,
// older →). Re-read every POLL_MS while a sweep on the page is unfinished, so its
// status and trial count move without a reload; no feed announces a sweep's changes,
// and a page of finished sweeps is not polled.
import { api } from "../api.js";
import { latestOnly, poller } from "../live.js";
import { pagerLinks } from "../pager.js";
import { el, finishedTrials, patch, statusBadge, TERMINAL, when } from "../dom.js";

const POLL_MS = 3000;

export async function render(root, params, signal) {
  const query = new URLSearchParams();
  for (const key of ["status", "owner", "cursor"]) if (params[key]) query.set(key, params[key]);
  query.set("limit", params.limit || "25");
  const body = el("tbody");
  const table = el("table", { id: "sweeps" },
    el("thead", {}, el("tr", {}, ["id", "name", "owner", "status", "trials", "created"]
      .map((h) => el("th", {}, h)))),
    body);
  const empty = el("p", { class: "muted", hidden: true }, "No sweeps yet.");
  const pager = el("div", { class: "pager" });
  root.append(el("h1", {}, "Sweeps"), el("div", { class: "scroll-x" }, table), empty, pager);

  let unfinished = false;
  async function draw() {
    const page = await api(`/v1/sweeps?${query}`, { signal });
    patch(body, page.data.map((s) => el("tr", { key: s.id, dataset: { sweepId: s.id } },
      el("td", { class: "id" }, el("a", { href: `#/sweeps/${s.id}` }, s.id)),
      el("td", {}, el("a", { href: `#/sweeps/${s.id}` }, s.name || "(unnamed)")),
      el("td", { class: "free" }, s.owner), el("td", {}, statusBadge(s.status)),
      el("td", { class: "trial-count" }, `${finishedTrials(s)} finished of ${s.spec.trials}`),
      el("td", {}, when(s.created_at)))));
    empty.hidden = page.data.length > 0;
    patch(pager, pagerLinks("sweeps", params, page.next_cursor,
      { newest: "newest-sweeps", newer: "newer-sweeps", older: "older-sweeps" }));
    unfinished = page.data.some((s) => !TERMINAL.has(s.status));
    table.dataset.updates = String(Number(table.dataset.updates || 0) + 1);
  }

  const redraw = latestOnly(draw);
  await draw();
  poller(POLL_MS, () => unfinished, () => redraw(), signal)();
}
