// The sweeps list, newest first, in cursor pages (as the jobs list: ← newest, ← newer, older →).
import { api } from "../api.js";
import { pagerLinks } from "../pager.js";
import { el, finishedTrials, statusBadge, when } from "../dom.js";

export async function render(root, params, signal) {
  const query = new URLSearchParams();
  for (const key of ["status", "owner", "cursor"]) if (params[key]) query.set(key, params[key]);
  query.set("limit", params.limit || "100");
  const page = await api(`/v1/sweeps?${query}`, { signal });
  root.append(el("h1", {}, "Sweeps"), el("table", { id: "sweeps" },
    el("thead", {}, el("tr", {}, ["id", "name", "owner", "status", "trials", "created"]
      .map((h) => el("th", {}, h)))),
    el("tbody", {}, page.data.map((s) => el("tr", { dataset: { sweepId: s.id } },
      el("td", { class: "id" }, el("a", { href: `#/sweeps/${s.id}` }, s.id)),
      el("td", {}, el("a", { href: `#/sweeps/${s.id}` }, s.name || "(unnamed)")),
      el("td", { class: "free" }, s.owner), el("td", {}, statusBadge(s.status)),
      el("td", { class: "trial-count" }, `${finishedTrials(s)} finished of ${s.spec.trials}`), el("td", {}, when(s.created_at)))))));
  if (page.data.length === 0) root.append(el("p", { class: "muted" }, "No sweeps yet."));
  root.append(el("div", { class: "pager" }, pagerLinks("sweeps", params, page.next_cursor,
    { newest: "newest-sweeps", newer: "newer-sweeps", older: "older-sweeps" })));
}
