import { ApiError, api, NEXT_PAGE_KEY, session } from "../api.js";
import { el } from "../dom.js";

export async function render(root) {
  const input = el("input", {
    type: "password", id: "token", name: "token", autocomplete: "off", required: true,
    placeholder: "API token", "aria-label": "API token",
  });
  const message = el("p", { class: "error", role: "alert", hidden: true });
  // Sent here because the server stopped accepting this tab's token: say so, in the
  // server's words (the token revoked or expired, or the account disabled).
  const because = session.signedOutBecause;
  const signedOut = because ? el("p", { id: "signed-out", class: "note", role: "status" },
    `You were signed out: the server no longer accepts this tab's token (${because}).`) : null;
  // The form never submits to the server: the token must not end up in a URL.
  const form = el("form", { class: "card signin", onsubmit: async (event) => {
    event.preventDefault();
    message.hidden = true;
    const token = input.value.trim();
    try {
      const me = await api("/v1/users/me", { token });
      session.signIn(token, { id: me.id, name: me.name, role: me.role });
      input.value = "";
      const next = sessionStorage.getItem(NEXT_PAGE_KEY);
      sessionStorage.removeItem(NEXT_PAGE_KEY);
      location.hash = next && !next.startsWith("#/signin") ? next : "#/jobs";
    } catch (error) {
      message.textContent = error instanceof ApiError && error.status === 401
        ? `That token is not valid (${error.message}).` : `Sign-in failed: ${error.message}`;
      message.hidden = false;
    }
  } },
  el("h1", {}, "Sign in"), signedOut,
  el("p", { class: "muted" },
    "Paste an API token: the admin's is in .lagtrain/admin-token after make run (lagtrain "
    + "server prints it once); admins create users' tokens."),
  input, el("button", { type: "submit" }, "Sign in"), message);
  root.append(form);
  input.focus();
}
