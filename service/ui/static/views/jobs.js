// The jobs list, live over one SSE feed (/v1/feeds/jobs), newest first, paginated;
// selected jobs are compared, or (finished ones) deleted.
import { api, session } from "../api.js";
import { jobsFeed } from "../live.js";
import { pagerLinks } from "../pager.js";
import {
  bytesSaved, el, emptyRow, errorBox, percent, patch, statusBadge, streamWaitNote, TERMINAL,
  unreachable, when,
} from "../dom.js";
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
  const statuses = new Map();  // id -> status, as the feed last drew it
  const compare = el("button", { type: "button", id: "compare-selected", disabled: true,
    onclick: () => { location.hash = `#/compare?ids=${[...selected].join(",")}`; } },
  "Compare selected");
  let deleteErrors = null;  // the last try's refusals, replaced by the next try
  const remove = el("button", { type: "button", id: "delete-selected", class: "danger",
    disabled: true, onclick: async () => {
      const ids = [...selected];
      if (!window.confirm(`Delete ${ids.length === 1 ? "job" : `${ids.length} jobs`} `
        + `${ids.join(", ")} with their metrics, events and checkpoints? `
        + "This cannot be undone.")) return;
      deleteErrors?.remove();
      remove.disabled = true;
      const deleted = [];
      const refused = [];
      for (const id of ids) {  // one at a time: the server audits each
        try {
          await api(`/v1/jobs/${id}`, { method: "DELETE", signal });
          selected.delete(id);
          deleted.push(id);
        } catch (error) {  // a trial of a running sweep (409), or gone already (404)
          if (signal.aborted) return;
          if (error.status === 404) selected.delete(id); else refused.push(refusal(id, error));
        }
      }
      // What was deleted and what was not, both: a partial result read as a failure.
      deleteErrors = el("div", { id: "delete-errors" },
        deleted.length ? el("p", { class: "note", id: "deleted", role: "status" },
          `Deleted ${deleted.length === 1 ? "job" : "jobs"} ${deleted.join(", ")}.`) : null,
        ...refused);
      tableFrame.before(deleteErrors);
      updateButtons();  // the feed's next page drops the deleted rows
    } }, "Delete selected");
  const deleteWhy = el("span", { id: "delete-why", class: "muted", hidden: true });
  remove.setAttribute("aria-describedby", "delete-why");
  const body = el("tbody");
  const pager = el("div", { class: "pager" });
  const table = el("table", { class: "jobs", id: "jobs-table" },
    el("thead", {}, el("tr", {}, el("th", {}, ""), el("th", {}, "id"), el("th", {}, "name"),
      admin ? el("th", {}, "owner") : null, el("th", {}, "status"), el("th", {}, "progress"),
      el("th", {}, "uploads saved"), el("th", {}, "bytes saved"), el("th", {}, "created"))),
    body);
  const waiting = streamWaitNote();
  // Hidden until the first page: during an outage the note says so, not an empty list.
  const tableFrame = el("div", { class: "scroll-x", hidden: true }, table);
  root.append(el("h1", {}, "Jobs"), el("div", { class: "toolbar" }, filters, compare, remove, deleteWhy),
    waiting.node, tableFrame, pager);

  // A job the server did not delete, named (its refusal need not say which job it was).
  function refusal(id, error) {
    const box = errorBox(error);
    if (unreachable(error)) box.textContent = "could not reach the server";
    if (!new RegExp(`\\bjob ${id}\\b`).test(box.textContent)) {
      box.textContent = `job ${id}: ${box.textContent}`;
    }
    return box;
  }

  function row(job) {
    // Ticked by its property, not a `checked` attribute: a box whose attribute differed
    // from the shown one's was replaced at the next feed page, taking the keyboard's
    // focus with it (patch keeps an element with a listener only when equal).
    const box = el("input", { type: "checkbox", "aria-label": `select job ${job.id}`,
      onchange: (event) => {
        if (event.target.checked) selected.add(job.id); else selected.delete(job.id);
        updateButtons();
      } });
    box.checked = selected.has(job.id);
    const { round, rounds } = job.progress;
    return el("tr", { key: job.id, dataset: { jobId: job.id, status: job.status } },
      el("td", {}, box),
      // One tab stop a row: the name's link (the id's opens the same page).
      el("td", { class: "id" }, el("a", { href: `#/jobs/${job.id}`, tabindex: "-1" }, job.id)),
      el("td", { class: "name" }, el("a", { href: `#/jobs/${job.id}` }, job.name || "(unnamed)")),
      admin ? el("td", { class: "owner free" }, job.owner) : null,
      el("td", {}, statusBadge(job.status)),
      el("td", {}, el("progress", { max: rounds || 1, value: round }), ` ${round}/${rounds}`),
      el("td", { class: "uploads-saved" }, percent(job.summary?.uploads_saved_fraction)),
      // LAQ uploads nearly every round but b-bit gradients: its saving is in bytes.
      el("td", { class: "bytes-saved" }, percent(bytesSaved(job.summary))),
      el("td", {}, when(job.created_at)));
  }

  // Delete only when every selected job is finished (the server refuses the others),
  // and say why the button is disabled then.
  function updateButtons() {
    compare.disabled = selected.size < 2;
    const unfinished = [...selected].filter((id) => !TERMINAL.has(statuses.get(id)));
    remove.disabled = selected.size === 0 || unfinished.length > 0;
    deleteWhy.textContent = unfinished.length
      ? `Only finished jobs can be deleted: ${unfinished.length === 1 ? "job" : "jobs"} `
        + `${unfinished.join(", ")} ${unfinished.length === 1 ? "is" : "are"} not finished.`
      : "";
    deleteWhy.hidden = !unfinished.length;
    remove.title = deleteWhy.textContent;
  }

  function show(page) {
    tableFrame.hidden = false;
    for (const job of page.data) statuses.set(job.id, job.status);
    // An empty list's row spans every column (an admin's list has an owner column too).
    patch(body, page.data.length ? page.data.map(row)
      : emptyRow(table.tHead.rows[0].cells.length, "No jobs."));
    updateButtons();
    patch(pager, pagerLinks("jobs", params, page.next_cursor,
      { newest: "newest", newer: "newer", older: "older" }));
    table.dataset.updates = String(Number(table.dataset.updates || 0) + 1);
  }

  jobsFeed(query, show, { signal, waiting })
    // A filter the API refuses (a 422: an owner's name with a space) names the field.
    .catch((error) => { if (!signal.aborted) root.prepend(errorBox(error)); });
}
