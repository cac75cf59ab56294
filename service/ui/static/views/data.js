// Uploads and storage: the signed-in user's storage against max_storage_bytes, an
// upload form (the new upload's `upload:<id>` is what a spec's task.dataset names),
// and the uploads (an admin's: everyone's), newest first, with what each holds (the
// shape summary taken at upload), each deletable after a confirmation. A delete the
// server refuses (409: an unfinished job or sweep names the upload) shows its reason
// under the table.
import { api, session } from "../api.js";
import { bytes, el, emptyRow, errorBox, section, when } from "../dom.js";
import { MAX_PAGE } from "../../rules.js";

const MAX_SHOWN = 2000;

// The summary taken at upload, as `lagtrain datasets` writes it (cli_data.contents):
// "1,797 rows, 65 columns, 10 classes", "1,519,392 chars, 80 distinct"; "—" for an
// upload stored before summaries were kept.
function contents(shape) {
  if (!shape) return "—";
  const count = (n, one, many = `${one}s`) => `${n.toLocaleString("en")} ${n === 1 ? one : many}`;
  if ("rows" in shape) {
    const grid = `${count(shape.rows, "row")}, ${count(shape.columns, "column")}`;
    return shape.integer_labels ? `${grid}, ${count(shape.classes, "class", "classes")}`
      : `${grid}, labels not integers`;
  }
  return `${count(shape.chars, "char")}, ${shape.distinct_chars.toLocaleString("en")} distinct`;
}

export async function render(root, _params, signal) {
  const admin = session.user?.role === "admin";
  const columns = ["ref", "file", "format", "size", "contents", "sha256",
    ...(admin ? ["owner"] : []), "uploaded", ""];
  const storage = el("p", { id: "storage" });
  const result = el("div", { id: "upload-result", "aria-live": "polite" });
  const rows = el("tbody");
  const problems = el("div", { id: "dataset-errors", "aria-live": "polite" });
  const more = el("p", { class: "muted", id: "more-datasets" });
  // Any file: the server decides (UTF-8 text or a numeric CSV), naming what is wrong.
  const file = el("input", { type: "file", id: "dataset-file", name: "file", required: true });
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

  // The API lists uploads oldest first, in pages: read them all (a user's uploads
  // are few; an admin's list stops at MAX_SHOWN) and show the newest first.
  async function showUploads() {
    const all = [];
    let cursor = null;
    do {
      const query = new URLSearchParams({ limit: String(MAX_PAGE) });
      if (cursor) query.set("cursor", cursor);
      const page = await api(`/v1/datasets?${query}`, { signal });
      all.push(...page.data);
      cursor = page.next_cursor;
    } while (cursor && all.length < MAX_SHOWN);
    rows.replaceChildren(...all.reverse().map(uploadRow));
    if (all.length === 0) {
      rows.append(emptyRow(columns.length, "No uploads yet."));
    }
    more.replaceChildren(cursor ? `The ${all.length} oldest uploads shown; `
      + "`lagtrain datasets` lists every one." : "");
  }

  function uploadRow(d) {
    const remove = el("button", { type: "button", class: "danger delete",
      "aria-label": `Delete upload ${d.ref} (${d.filename})`, onclick: async () => {
      if (!window.confirm(`Delete upload ${d.ref} (${d.filename})? `
        + "Finished jobs that used it keep their results; it cannot be used again.")) return;
      problems.replaceChildren();
      remove.disabled = true;
      try {
        await api(`/v1/datasets/${d.id}`, { method: "DELETE", signal });
      } catch (error) {
        if (!signal.aborted) problems.replaceChildren(errorBox(error));
        remove.disabled = false;
        return;
      }
      remove.closest("tr").remove();  // gone, whether or not the redraw below works
      await redraw();
    } }, "Delete");
    return el("tr", { dataset: { datasetId: d.id } },
      el("td", { class: "mono ref free" }, d.ref), el("td", { class: "free" }, d.filename), el("td", {}, d.format),
      el("td", {}, bytes(d.bytes)), el("td", { class: "contents" }, contents(d.shape)),
      el("td", { class: "mono", title: d.sha256 },
        d.sha256.slice(0, 12)),
      admin ? el("td", { class: "free" }, d.owner) : null, el("td", {}, when(d.created_at)), el("td", {}, remove));
  }

  // Two calls, drawn together: the storage line and the table agree after a change.
  async function refresh() {
    await Promise.all([showStorage(), showUploads()]);
  }

  // After an upload or a delete has happened: a failed redraw says so, and does not
  // pass for a failure of what the user did.
  async function redraw() {
    try {
      await refresh();
    } catch (error) {
      if (!signal.aborted) problems.replaceChildren(errorBox(error));
    }
  }

  const form = el("form", { class: "toolbar", id: "upload-form", onsubmit: async (event) => {
    event.preventDefault();
    if (!file.files.length) return;
    const body = new FormData();
    body.append("file", file.files[0]);
    if (format.value) body.append("format", format.value);
    send.disabled = true;
    result.replaceChildren();
    let made;
    try {
      made = await api("/v1/datasets", { method: "POST", body, signal });
    } catch (error) {
      if (!signal.aborted) result.replaceChildren(errorBox(error));
      send.disabled = false;
      return;
    }
    result.replaceChildren(el("p", { class: "note", role: "status" }, `Uploaded as `,
      el("code", { id: "new-ref" }, made.ref),
      ` — name it as task.dataset in a char_lm (text) or sequence_classification (csv) spec.`));
    form.reset();
    send.disabled = false;
    await redraw();
  } }, el("label", {}, "File ", file), format, send);

  root.append(el("h1", {}, "Data"),
    section("Storage", storage),
    section("Upload a dataset", form,
      // The formats (docs/tasks.md, "Uploaded datasets"): a CSV's first column is its label.
      el("p", { class: "muted", id: "format-hint" }, "CSV (sequence_classification): one "
        + "sample a row, the label (an integer class 0 … K−1) first, then the sequence's "
        + "values; a first row whose first field is not an integer is a header. Text "
        + "(char_lm): UTF-8 plain text."),
      result),
    section(admin ? "Uploads (every user's)" : "Your uploads", el("table", { id: "datasets" },
      el("thead", {}, el("tr", {}, columns.map((h) => el("th", {}, h)))), rows), problems,
    more));
  await refresh();
  root.dataset.ready = "true";
}
