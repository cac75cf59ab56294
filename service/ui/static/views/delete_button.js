// A page's "Delete …" button for the thing it shows (a finished job, a finished sweep):
// it asks first; once deleted — or found deleted already (a 404: another tab) — the
// page goes to the list it came from; any other refusal (a 409: not finished yet) is
// shown beside the button, one message, the last try's.
import { api } from "../api.js";
import { el, errorBox } from "../dom.js";

// `question()`: the confirmation's text, asked at the click (it may name counts that
// change while the page is open).
export function deleteButton({ id, label, question, path, list, signal }) {
  let refusal = null;
  const button = el("button", { type: "button", id, class: "danger", hidden: true,
    onclick: async () => {
      if (!window.confirm(question())) return;
      refusal?.remove();
      refusal = null;
      button.disabled = true;
      try {
        await api(path, { method: "DELETE", signal });
        location.hash = list;
      } catch (error) {
        if (error.status === 404) { location.hash = list; return; }
        if (!signal.aborted) button.after(refusal = errorBox(error));
        button.disabled = false;
      }
    } }, label);
  return button;
}
