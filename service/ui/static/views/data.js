// Uploads and storage: the signed-in user's storage against max_storage_bytes, an
// upload form (the new upload's `upload:<id>` is what a spec's task.dataset names),
// and the uploads (an admin's: everyone's) in cursor pages, each deletable after a
// confirmation. A delete the server refuses (409: an unfinished job or sweep names
// the upload) shows its reason under the table.
import { api, session } from "../api.js";
import { bytes, el, errorBox, section, when } from "../dom.js";

export async function render(root, params, signal) {
  const admin = session.user?.role === "admin";
  const storage = el("p", { id: "storage" });
  const result = el("div", { id: "upload-result", "aria-live": "polite" });
  const rows = el("tbody");
  const problems = el("div", { id: "dataset-errors", "aria-live": "polite" });
  const pager = el("div", { class: "pager" });
  const file = el("input", { type: "file", id: "dataset-file", name: "file", required: true,
    accept: ".txt,.csv,text/plain,text/csv" });
  const format = el("select", { id: "dataset-format", name: "format", "aria-label": "format" },
    el("option", { value: "" }, "format from the file name"),
    el("option", { value: "text" }, "text (char_lm)"),
    el("option", { value: "csv" }, "csv (sequence_classification)"));
  const send = el("button", { type: "submit", id: "upload" }, "Upload");

  async function showStorage() {
    const me = await api("/v1/users/me", { signal });
    storage.replaceChildren(`${bytes(me.usage.storage_bytes)} of `
      + `${bytes(me.quota.max_storage_bytes)} used by your uploads and checkpoints`);
    storage.dataset.bytes = String(me.usage.storage_bytes);
  }

  async function showUploads() {
    const query = new URLSearchParams({ limit: params.limit || "100" });
    if (params.cursor) query.set("cursor", params.cursor);
    const page = await api(`/v1/datasets?${query}`, { signal });
    rows.replaceChildren(...page.data.map(uploadRow));
    if (page.data.length === 0) {
      rows.append(el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No uploads yet.")));
    }
    const links = [];
    if (params.cursor) links.push(el("a", { href: "#/data" }, "← first"));
    if (page.next_cursor) {
      links.push(el("a", { href: `#/data?${new URLSearchParams({ cursor: page.next_cursor })}`,
        id: "newer-datasets" }, "newer →"));
    }
    pager.replaceChildren(...links);
  }

  function uploadRow(d) {
    const remove = el("button", { type: "button", class: "danger delete", onclick: async () => {
      if (!window.confirm(`Delete upload ${d.ref} (${d.filename})? `
        + "Finished jobs that used it keep their results; it cannot be used again.")) return;
      problems.replaceChildren();
      remove.disabled = true;
      try {
        await api(`/v1/datasets/${d.id}`, { method: "DELETE", signal });
        await refresh();
      } catch (error) {
        if (!signal.aborted) problems.replaceChildren(errorBox(error));
        remove.disabled = false;
      }
    } }, "Delete");
    return el("tr", { dataset: { datasetId: d.id } },
      el("td", { class: "mono ref" }, d.ref), el("td", {}, d.filename), el("td", {}, d.format),
      el("td", {}, bytes(d.bytes)), el("td", { class: "mono", title: d.sha256 },
        d.sha256.slice(0, 12)),
      admin ? el("td", {}, d.owner) : null, el("td", {}, when(d.created_at)), el("td", {}, remove));
  }

  // Two calls, drawn together: the storage line and the table agree after a change.
  async function refresh() {
    await Promise.all([showStorage(), showUploads()]);
  }

  const form = el("form", { class: "toolbar", id: "upload-form", onsubmit: async (event) => {
    event.preventDefault();
    if (!file.files.length) return;
    const body = new FormData();
    body.append("file", file.files[0]);
    if (format.value) body.append("format", format.value);
    send.disabled = true;
    result.replaceChildren();
    try {
      const made = await api("/v1/datasets", { method: "POST", body, signal });
      result.replaceChildren(el("p", { class: "note", role: "status" }, `Uploaded as `,
        el("code", { id: "new-ref" }, made.ref),
        ` — name it as task.dataset in a char_lm (text) or sequence_classification (csv) spec.`));
      form.reset();
      await refresh();
    } catch (error) {
      if (!signal.aborted) result.replaceChildren(errorBox(error));
    } finally {
      send.disabled = false;
    }
  } }, el("label", {}, "File ", file), format, send);

  root.append(el("h1", {}, "Data"),
    section("Storage", storage),
    section("Upload a dataset", form, result),
    section(admin ? "Uploads (every user's)" : "Your uploads", el("table", { id: "datasets" },
      el("thead", {}, el("tr", {}, ["ref", "file", "format", "size", "sha256",
        admin ? "owner" : null, "uploaded", ""].filter((h) => h !== null)
        .map((h) => el("th", {}, h)))), rows), problems, pager));
  await refresh();
  root.dataset.ready = "true";
}
