// The dashboard's router: #/route?query → a view module's render(root, params, signal).
// Leaving a view aborts `signal`, which closes its event streams.
import { api, session } from "./api.js";
import { el, errorBox } from "./dom.js";

const VIEWS = {
  signin: () => import("./views/signin.js"),
  jobs: () => import("./views/jobs.js"),
  job: () => import("./views/job.js"),
  compare: () => import("./views/compare.js"),
  lab: () => import("./views/lab.js"),
  submit: () => import("./views/submit.js"),
  sweeps: () => import("./views/sweeps.js"),
  sweep: () => import("./views/sweep.js"),
  data: () => import("./views/data.js"),
  audit: () => import("./views/audit.js"),
};

let current = null;

function parseRoute() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const parts = path.split("/").filter(Boolean);
  const params = Object.fromEntries(new URLSearchParams(query));
  if (parts[0] === "jobs" && parts[1]) return { name: "job", params: { ...params, id: parts[1] } };
  if (parts[0] === "sweeps" && parts[1]) {
    return { name: "sweep", params: { ...params, id: parts[1] } };
  }
  return { name: VIEWS[parts[0]] ? parts[0] : "jobs", params };
}

function showChrome() {
  const user = session.user;
  document.getElementById("nav").hidden = !user;
  document.getElementById("signout").hidden = !user;
  // The audit log is the API's for admins only (views/audit.js says so to others).
  document.getElementById("nav-audit").hidden = user?.role !== "admin";
  document.getElementById("who").textContent = user ? `${user.name} (${user.role})` : "";
}

// The page to open once signed in (views/signin.js reads it).
function rememberPage() {
  if (parseRoute().name !== "signin") {
    sessionStorage.setItem("lagtrain.next", location.hash || "#/jobs");
  }
}

async function route() {
  current?.abort();
  current = new AbortController();
  const { signal } = current;
  let { name, params } = parseRoute();
  if (!session.token && name !== "signin") {
    rememberPage();
    history.replaceState(null, "", "#/signin"); // signing in then changes the hash
    name = "signin";
  }
  showChrome();
  const root = document.getElementById("view");
  root.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  root.dataset.view = name;
  root.dataset.routes = String(Number(root.dataset.routes || 0) + 1); // one a navigation
  try {
    const view = await VIEWS[name]();
    if (signal.aborted) return;
    const page = el("div", { class: `view view-${name}` });
    root.replaceChildren(page);
    await view.render(page, params, signal);
  } catch (error) {
    if (!signal.aborted) root.replaceChildren(errorBox(error));
  }
}

document.getElementById("signout").addEventListener("click", () => {
  session.signOut();
  location.hash = "#/signin";
  route();
});
// The server refused the tab's token (api.js): signing in again returns to this page.
window.addEventListener("lagtrain:signed-out", () => {
  rememberPage();
  location.hash = "#/signin";
});
window.addEventListener("hashchange", route);
// Once: a module runs after parsing (readyState "interactive"), before
// DOMContentLoaded; routing on both drew every page twice, and the second draw
// dropped a token already typed into the first sign-in form.
if (document.readyState === "loading") window.addEventListener("DOMContentLoaded", route);
else route();

export { api };
