// A job's checkpoints table: a row per checkpoint, each with its Download button.
import { apiFile } from "../api.js";
import { bytes, el, errorBox } from "../dom.js";

// The rows' maker for one job's page: one failure message at a time, the last
// Download's (as the page's other buttons keep theirs).
export function checkpointRows(jobId, signal) {
  let downloadError = null;
  return (c) => el("tr", { key: c.id }, el("td", {}, c.round),
    el("td", {}, c.attempt), el("td", {}, bytes(c.bytes)),
    el("td", { class: "mono" }, c.sha256.slice(0, 12)),
    el("td", {}, el("button", { type: "button", class: "download",
      dataset: { checkpointId: c.id }, // what the listener reads (dom.js patch)
      // Each row's button named for its checkpoint (a screen reader's list of buttons
      // read "Download" once per row).
      "aria-label": `Download checkpoint round ${c.round}`
        + (c.attempt > 1 ? ` (attempt ${c.attempt})` : ""),
      onclick: async (event) => {
        downloadError?.remove();
        downloadError = null;
        try { await download(jobId, c, signal); } catch (error) {
          // Say so (deleted from another tab, say) rather than save the error as a file.
          if (!signal.aborted) event.target.after(downloadError = errorBox(error));
        }
      } }, "Download")));
}

// Saved from a blob (apiFile keeps the token out of every URL).
async function download(jobId, checkpoint, signal) {
  const { blob, filename } = await apiFile(`/v1/jobs/${jobId}/checkpoints/${checkpoint.id}`,
    { signal });
  const link = el("a", { href: URL.createObjectURL(blob),
    download: filename || `job-${jobId}-round-${checkpoint.round}` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}
