// The job page's actions: cancel it, delete it once finished (a sweep's trial job goes
// only with its sweep), delete a finished job's checkpoints (to free storage quota).
// Each asks first, and shows the server's refusal beside its button: one message, the
// last try's, replaced by the next try.
import { api } from "../api.js";
import { el, errorBox, patch, TERMINAL } from "../dom.js";
import { deleteButton } from "./delete_button.js";

// `onCancelled(job)`: the job as the cancel answered it; `onCheckpointsDeleted()`.
export function jobActions(jobId, signal, { onCancelled, onCheckpointsDeleted }) {
  let cancelError = null;
  const cancel = el("button", { type: "button", id: "cancel", class: "danger", onclick: async () => {
    // One stray click must not end hours of training: ask first.
    // The dispatcher sees the cancel at its next heartbeat (within about 5 s; a job on
    // warm actors is then given up to 2 s to end its round); fast rounds run on until
    // then, and a job that finishes first stays succeeded.
    if (!window.confirm(`Cancel job ${jobId}? A running job stops within a few seconds.`)) return;
    cancelError?.remove();
    cancelError = null;
    cancel.disabled = true;
    try { onCancelled(await api(`/v1/jobs/${jobId}/cancel`, { method: "POST", signal })); }
    catch (error) {
      if (!signal.aborted) cancel.after(cancelError = errorBox(error));
      cancel.disabled = false;
    }
  } }, "Cancel");

  const remove = deleteButton({ id: "delete-job", label: "Delete job", signal,
    path: `/v1/jobs/${jobId}`, list: "#/jobs",
    question: () => `Delete job ${jobId} with its metrics, events and checkpoints? `
      + "This cannot be undone." });
  // In place of Delete job on a finished trial job's page: its sweep's page deletes it
  // ("deleted with its sweep" read as if the job were gone already).
  const trialNote = el("span", { id: "delete-with-sweep", class: "muted", hidden: true });

  let checkpointsError = null;
  const removeCheckpoints = el("button", { type: "button", id: "delete-checkpoints",
    class: "danger", hidden: true, onclick: async () => {
      // Deleting the final checkpoint loses the trained weights: ask first.
      if (!window.confirm(`Delete every checkpoint of job ${jobId}, the final one included? `
        + "Its metrics stay; its weights cannot be downloaded afterwards.")) return;
      checkpointsError?.remove();
      checkpointsError = null;
      removeCheckpoints.disabled = true;
      try {
        await api(`/v1/jobs/${jobId}/checkpoints`, { method: "DELETE", signal });
        await onCheckpointsDeleted();
      } catch (error) {
        if (!signal.aborted) removeCheckpoints.after(checkpointsError = errorBox(error));
      }
      removeCheckpoints.disabled = false;
    } }, "Delete checkpoints");

  return {
    toolbar: [cancel, remove, trialNote],
    removeCheckpoints,
    // Which actions the job, as last drawn, allows.
    showJob(job) {
      const finished = TERMINAL.has(job.status);
      const trial = job.sweep_id != null;
      cancel.hidden = finished || job.status === "cancelling";
      remove.hidden = !finished || trial;
      trialNote.hidden = !finished || !trial;
      if (trial) {
        patch(trialNote, "a trial: delete it with ",
          el("a", { href: `#/sweeps/${job.sweep_id}` }, `sweep ${job.sweep_id}`));
      }
    },
    // Only a finished job's: a running one may still resume from them (409).
    showCheckpoints(job, count) {
      removeCheckpoints.hidden = !TERMINAL.has(job.status) || count === 0;
    },
  };
}
