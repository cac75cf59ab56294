// The audit log (admins), newest first: filters by who acted, the action (one, or a
// prefix such as "job.") and the target, kept in the hash so a link shows the same
// events; "Older" appends the next page (GET /v1/audit's next_after_id).
import { api, session } from "../api.js";
import { el, emptyRow, errorBox, unreachable, when } from "../dom.js";
import { AUDIT_ACTIONS, AUDIT_PREFIXES, MAX_PAGE } from "../../rules.js";

// The hash's filters are the API's own parameters, passed on as they are.
const FILTERS = ["actor_id", "action", "target"];

// `key=value` pairs as `lagtrain audit` prints them: strings bare, anything else as
// compact JSON.
function compact(detail) {
  return Object.entries(detail || {}).map(([key, value]) =>
    `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`).join(" ");
}

// Each job or sweep named in a target or an actor ("sweep:12 for user:alice", the
// trials a sweep submits) opens its page; the rest is text.
function linked(text) {
  return String(text).split(/\b((?:job|sweep):\d+)\b/).map((part, i) => {
    if (i % 2 === 0) return part;
    const [kind, id] = part.split(":");
    return el("a", { href: `#/${kind}s/${id}` }, part);
  });
}

export async function render(root, params, signal) {
  root.append(el("h1", {}, "Audit log"));
  if (session.user?.role !== "admin") {
    // The API would answer 403: say so plainly rather than show its detail.
    root.append(el("p", { class: "note", id: "admins-only", role: "status" },
      "The audit log is for admins only."));
    return;
  }
  const query = new URLSearchParams({ order: "newest", limit: params.limit || "50" });
  for (const key of FILTERS) if (params[key]) query.set(key, params[key]);

  const errors = el("div", { id: "audit-errors", "aria-live": "polite" });
  const rows = el("tbody");
  const end = el("p", { class: "muted", id: "audit-end" });
  const older = el("button", { type: "button", id: "audit-older", hidden: true,
    onclick: () => more() }, "Older");

  // A chosen user applies at once (the text boxes wait for Filter or Enter).
  const actor = el("select", { name: "actor_id", "aria-label": "user",
    onchange: () => filters.requestSubmit() }, el("option", { value: "" }, "anyone"));
  const action = el("input", { name: "action", list: "audit-actions", placeholder: "any action",
    value: params.action || "", "aria-label": "action" });
  // The actions the server writes (its AuditAction), their prefixes first; the box
  // takes any other text too, and the server's 422 says what it accepts.
  const choices = el("datalist", { id: "audit-actions" },
    [...AUDIT_PREFIXES, ...AUDIT_ACTIONS].map((a) => el("option", { value: a })));
  const targetBox = el("input", { name: "target", placeholder: "target, e.g. job:42",
    value: params.target || "", "aria-label": "target" });
  const filters = el("form", { class: "filters", id: "audit-filters", onsubmit: (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    if (actor.value) next.set("actor_id", actor.value);
    if (action.value.trim()) next.set("action", action.value.trim());
    if (targetBox.value.trim()) next.set("target", targetBox.value.trim());
    if (params.limit) next.set("limit", params.limit);
    location.hash = `#/audit?${next}`;
  } }, actor, action, choices, targetBox, el("button", { type: "submit" }, "Filter"));

  root.append(el("div", { class: "toolbar" }, filters), errors,
    el("div", { class: "scroll-x" }, el("table", { id: "audit" }, el("thead", {}, el("tr", {},
      ["time", "actor", "action", "target", "detail"].map((h) => el("th", {}, h)))), rows)),
    older, end);

  function row(e) {
    return el("tr", { dataset: { eventId: e.id, action: e.action } },
      el("td", {}, when(e.time)), el("td", { class: "free actor" }, linked(e.actor)),
      el("td", { class: "mono" }, e.action), el("td", { class: "free target" }, linked(e.target)),
      el("td", { class: "free mono detail" }, compact(e.detail)));
  }

  // One page onto the table. A full page names where to go on, and the next may be
  // empty (the API does not look ahead): "no more" shows once a page says so.
  let shown = 0;
  async function more() {
    older.disabled = true;
    errors.replaceChildren();
    let page;
    try {
      page = await api(`/v1/audit?${query}`, { signal });
    } catch (error) {
      // The first page lost to an outage: the router says so and retries the page.
      if (!shown && !rows.childElementCount && unreachable(error)) throw error;
      if (!signal.aborted) errors.replaceChildren(errorBox(error));
      older.disabled = false;
      return;
    }
    shown += page.data.length;
    rows.append(...page.data.map(row));
    if (!shown) {
      rows.append(emptyRow(5, "No events."));
    }
    if (page.next_after_id != null) query.set("after_id", page.next_after_id);
    older.hidden = page.next_after_id == null;
    older.disabled = false;
    end.replaceChildren(page.next_after_id == null && shown ? "no more" : "");
    root.dataset.pages = String(Number(root.dataset.pages || 0) + 1);
  }

  const users = await api(`/v1/users?limit=${MAX_PAGE}`, { signal });
  const known = users.data.map((u) => [String(u.id), u.name]);
  // A shared link may name a user beyond the first page (MAX_PAGE users): still show it as chosen.
  if (params.actor_id && !known.some(([id]) => id === params.actor_id)) {
    known.push([params.actor_id, `user ${params.actor_id}`]);
  }
  actor.append(...known.map(([id, name]) =>
    el("option", { value: id, selected: id === params.actor_id }, name)));
  await more();
  root.dataset.ready = "true";
}
