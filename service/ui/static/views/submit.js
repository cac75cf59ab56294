// Submit a job or a sweep spec as YAML or JSON, prefilled from the repository's
// examples/. The server's 422 errors are shown beside the lines that hold the fields
// they name.
import { ApiError, api, SPEC_DRAFT_KEY } from "../api.js";
import { el, errorBox } from "../dom.js";

const LINE_EM = 1.5; // the editor's line-height; the error gutter uses the same grid

export async function render(root, params, signal) {
  const examples = await fetch("/ui/examples", { signal }).then((r) => r.json());
  const names = Object.keys(examples);
  // The tab's draft, kept across pages (Jobs, then Back): the text and the example it
  // started from. A link naming an example opens that example instead.
  const draft = params.example in examples ? null : savedDraft();
  const start = params.example in examples ? params.example
    : draft && (draft.example in examples || draft.example === null) ? draft.example : names[0];
  // wrap="off": the error gutter places a note at its line's height, which holds only
  // while one line of the spec is one line on screen (long lines scroll sideways).
  const editor = el("textarea", { id: "spec-text", name: "spec", spellcheck: "false",
    wrap: "off", "aria-label": "job or sweep spec (YAML or JSON)", rows: 24 });
  editor.value = draft ? draft.text : start ? examples[start] : "task: {kind: lag_paper_linreg}\n";
  let loaded = start ?? undefined; // the example the editor was last filled from
  // Beside the select: the text is no longer the example it names (a pasted spec kept
  // reading as, say, "digits-lag").
  const edited = () => loaded !== undefined && editor.value !== examples[loaded];
  // "(edited from digits-lag)": the select names where the text started, not what it is.
  const editedMark = el("span", { id: "spec-edited", class: "muted", hidden: !edited() },
    `(edited from ${loaded})`);
  editor.addEventListener("input", () => {
    editedMark.hidden = !edited();
    saveDraft({ text: editor.value, example: loaded ?? null });
  });
  const gutter = el("div", { class: "gutter", id: "spec-errors", "aria-live": "polite" });
  const list = el("ul", { class: "error-list" });
  const choose = el("select", { name: "example", "aria-label": "example", onchange: () => {
    if (edited() && !confirm(`Replace your edits with the example ${choose.value}?`)) {
      choose.value = loaded; // keep the text, and the select naming where it came from
      return;
    }
    loaded = choose.value;
    editor.value = examples[loaded];
    editedMark.hidden = true;
    editedMark.textContent = `(edited from ${loaded})`;
    saveDraft({ text: editor.value, example: loaded });
    clear();
  } }, names.map((n) => el("option", { value: n, selected: n === start }, n)));
  const button = el("button", { type: "submit", id: "submit" }, "Submit");

  function clear() {
    gutter.replaceChildren();
    list.replaceChildren();
  }
  editor.addEventListener("scroll", () => { gutter.style.top = `${-editor.scrollTop}px`; });

  function showErrors(errors, lines) {
    clear();
    const notes = new Map(); // line → its note: a second error on a line joins the first
    const found = errors.map((error) => {
      const path = (error.loc || []).filter((p, i) => !(i === 0 && p === "body")).join(".");
      let line = error.line ?? null;
      for (let parts = path.split("."); line === null && parts.length; parts.pop()) {
        line = lines[parts.join(".")] ?? null;
      }
      return { error, path, line };
    });
    // In line order, the errors of no line first (a sort is stable: the server's order
    // on one line).
    found.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
    for (const { error, path, line } of found) {
      // A bare `text`: the parse's field, the editor's whole text, is no field of the spec.
      const message = path === "text" ? error.msg.replace(/^text: /, "")
        : `${path || "spec"}: ${error.msg.replace(`${path}: `, "")}`;
      const shared = notes.get(line || 1);
      if (shared) {
        shared.append(`; ${message}`);
        shared.title += `; ${message}`;
      } else {
        const note = el("div", { class: "field-error", dataset: { field: path },
          style: `top: ${((line || 1) - 1) * LINE_EM}em`, title: message }, `← ${message}`);
        notes.set(line || 1, note);
        gutter.append(note);
      }
      list.append(el("li", { dataset: { field: path } }, line ? `line ${line}: ${message}` : message));
    }
  }

  // One Idempotency-Key per text submitted: a submit whose answer was lost (a proxy's
  // 502, a dropped connection) pressed again answers the job it made, not a second one
  // (a second sweep's whole budget counted against the user's queue). An edited text
  // is a new submit. (crypto.randomUUID needs a secure context; a lab's server is
  // often plain http.)
  let keyed = { text: null, key: null };
  function submitKey(text) {
    if (keyed.text !== text) {
      const bytes = crypto.getRandomValues(new Uint8Array(16));
      keyed = { text, key: Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("") };
    }
    return keyed.key;
  }

  const form = el("form", { class: "submit", onsubmit: async (event) => {
    event.preventDefault();
    button.disabled = true;
    let lines = {};
    // The text as pressed: the editor stays editable while the parse is on its way, and
    // the key must be the body's (a key reused for another body is a 409).
    const text = editor.value;
    try {
      const parsed = await api("/ui/parse-spec", { method: "POST", body: { text }, signal });
      lines = parsed.lines;
      // A sweep spec (`base`, no `task`: the server's rule, which the CLI also uses)
      // goes to /v1/sweeps; anything else to /v1/jobs, whose 422s say what is wrong.
      const sweep = parsed.kind === "sweep";
      const made = await api(sweep ? "/v1/sweeps" : "/v1/jobs",
        { method: "POST", body: parsed.spec, signal,
          extra: { "Idempotency-Key": submitKey(text) } });
      saveDraft(null); // submitted: the next visit starts from an example again
      location.hash = sweep ? `#/sweeps/${made.id}` : `#/jobs/${made.id}`;
    } catch (error) {
      if (error instanceof ApiError && Array.isArray(error.detail)) {
        showErrors(error.detail, lines);
      } else {
        clear();
        list.append(errorBox(error));
      }
    } finally {
      button.disabled = false;
    }
  } },
  el("div", { class: "toolbar" }, el("label", {}, "Start from ", choose, " ", editedMark)),
  el("div", { class: "editor" }, editor, el("div", { class: "gutter-frame" }, gutter)),
  // After the editor, in the page and in the Tab order: example, spec, Submit.
  el("div", { class: "toolbar submit-row" }, button), list);
  root.append(el("h1", {}, "Submit a job or a sweep"), form);
}

// One draft per tab (sessionStorage): what the editor held when the user left, and the
// example it was filled from.
const DRAFT_KEY = SPEC_DRAFT_KEY;

function savedDraft() {
  try {
    const draft = JSON.parse(sessionStorage.getItem(DRAFT_KEY) || "null");
    return typeof draft?.text === "string" ? draft : null;
  } catch {
    return null;
  }
}

function saveDraft(draft) {
  if (draft) sessionStorage.setItem(DRAFT_KEY, JSON.stringify(draft));
  else sessionStorage.removeItem(DRAFT_KEY);
}
