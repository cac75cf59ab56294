import { api } from "../api.js";
import { el, statusBadge, when } from "../dom.js";

export async function render(root, _params, signal) {
  const page = await api("/v1/sweeps?limit=100", { signal });
  root.append(el("h1", {}, "Sweeps"), el("table", { id: "sweeps" },
    el("thead", {}, el("tr", {}, ["id", "name", "owner", "status", "trials", "created"]
      .map((h) => el("th", {}, h)))),
    el("tbody", {}, page.data.map((s) => el("tr", {},
      el("td", {}, el("a", { href: `#/sweeps/${s.id}` }, s.id)),
      el("td", {}, el("a", { href: `#/sweeps/${s.id}` }, s.name || "(unnamed)")),
      el("td", {}, s.owner), el("td", {}, statusBadge(s.status)),
      el("td", {}, `${s.trials.length}/${s.spec.trials}`), el("td", {}, when(s.created_at)))))));
  if (page.data.length === 0) root.append(el("p", { class: "muted" }, "No sweeps yet."));
}
