// The jobs list, live over one SSE feed (/v1/feeds/jobs), newest first, paginated.
import { jobsFeed, session } from "../api.js";
import { pagerLinks } from "../pager.js";
import { bytesSaved, el, percent, statusBadge, streamWaitNote, when } from "../dom.js";
import { JOB_STATUSES } from "../../rules.js";

const STATUSES = ["", ...JOB_STATUSES];  // "": any status

export async function render(root, params, signal) {
  const admin = session.user?.role === "admin";
  const query = new URLSearchParams();
  for (const key of ["status", "owner", "cursor"]) if (params[key]) query.set(key, params[key]);
  query.set("limit", params.limit || "25");

  // A new status applies at once (the owner box still waits for Filter or Enter).
  const status = el("select", { name: "status", "aria-label": "status",
    onchange: () => filters.requestSubmit() },
    STATUSES.map((s) => el("option", { value: s, selected: s === (params.status || "") },
      s || "any status")));
  const owner = admin ? el("input", { name: "owner", placeholder: "owner", value: params.owner || "",
    "aria-label": "owner" }) : null;
  const filters = el("form", { class: "filters", onsubmit: (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    if (status.value) next.set("status", status.value);
    if (owner?.value.trim()) next.set("owner", owner.value.trim());
    location.hash = `#/jobs?${next}`;
  } }, status, owner, el("button", { type: "submit" }, "Filter"));

  const selected = new Set();
  const compare = el("button", { type: "button", id: "compare-selected", disabled: true,
    onclick: () => { location.hash = `#/compare?ids=${[...selected].join(",")}`; } },
  "Compare selected");
  const body = el("tbody");
  const pager = el("div", { class: "pager" });
  const table = el("table", { class: "jobs", id: "jobs-table" },
    el("thead", {}, el("tr", {}, el("th", {}, ""), el("th", {}, "id"), el("th", {}, "name"),
      admin ? el("th", {}, "owner") : null, el("th", {}, "status"), el("th", {}, "progress"),
      el("th", {}, "uploads saved"), el("th", {}, "bytes saved"), el("th", {}, "created"))),
    body);
  const waiting = streamWaitNote();
  root.append(el("h1", {}, "Jobs"), el("div", { class: "toolbar" }, filters, compare),
    waiting.node, table, pager);

  function row(job) {
    const box = el("input", { type: "checkbox", "aria-label": `select job ${job.id}`,
      checked: selected.has(job.id), onchange: (event) => {
        if (event.target.checked) selected.add(job.id); else selected.delete(job.id);
        compare.disabled = selected.size < 2;
      } });
    const { round, rounds } = job.progress;
    return el("tr", { dataset: { jobId: job.id, status: job.status } },
      el("td", {}, box),
      el("td", { class: "id" }, el("a", { href: `#/jobs/${job.id}` }, job.id)),
      el("td", {}, el("a", { href: `#/jobs/${job.id}` }, job.name || "(unnamed)")),
      admin ? el("td", { class: "owner free" }, job.owner) : null,
      el("td", {}, statusBadge(job.status)),
      el("td", {}, el("progress", { max: rounds || 1, value: round }), ` ${round}/${rounds}`),
      el("td", { class: "uploads-saved" }, percent(job.summary?.uploads_saved_fraction)),
      // LAQ uploads nearly every round but b-bit gradients: its saving is in bytes.
      el("td", { class: "bytes-saved" }, percent(bytesSaved(job.summary))),
      el("td", {}, when(job.created_at)));
  }

  function show(page) {
    body.replaceChildren(...page.data.map(row));
    if (page.data.length === 0) {
      // Across every column (an admin's list has an owner column too).
      const columns = table.tHead.rows[0].cells.length;
      body.append(el("tr", {}, el("td", { colspan: columns }, "No jobs.")));
    }
    pager.replaceChildren(...pagerLinks("jobs", params, page.next_cursor,
      { newest: "newest", newer: "newer", older: "older" }));
    table.dataset.updates = String(Number(table.dataset.updates || 0) + 1);
  }

  jobsFeed(query, show, { signal, waiting })
    .catch((error) => root.prepend(el("p", { class: "error" }, error.message)));
}
