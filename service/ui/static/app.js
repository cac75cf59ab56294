// The dashboard's router: #/route?query → a view module's render(root, params, signal).
// Leaving a view aborts `signal`, which closes its event streams.
import { api, NEXT_PAGE_KEY, session } from "./api.js";
import { sleep } from "./live.js";
import { el, errorBox, UNREACHABLE, unreachable } from "./dom.js";

// A view drawn again after the server was unreachable: first after 1 s, doubling to 10 s.
const RETRY_MS = 1000;
const RETRY_MAX_MS = 10000;

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

// Each page's tab title ("job 12 · lagtrain"): tabs and history tell pages apart.
const TITLES = {
  signin: () => "Sign in", jobs: () => "Jobs", job: (p) => `job ${p.id}`, compare: () => "Compare",
  lab: () => "Lab", submit: () => "Submit", sweeps: () => "Sweeps", sweep: (p) => `sweep ${p.id}`,
  data: () => "Data", audit: () => "Audit",
};
// The nav link of a page, and of the list a job's or a sweep's page belongs to.
const NAV_OF = { job: "jobs", sweep: "sweeps" };

function showPlace(name, params) {
  document.title = `${TITLES[name](params)} · lagtrain`;
  for (const link of document.querySelectorAll("#nav a")) {
    const target = link.getAttribute("href").replace(/^#\//, "");
    if (target === name) link.setAttribute("aria-current", "page");
    else if (target === NAV_OF[name]) link.setAttribute("aria-current", "true");
    else link.removeAttribute("aria-current");
  }
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
    sessionStorage.setItem(NEXT_PAGE_KEY, location.hash || "#/jobs");
  }
}

// Plotly's charts (responsive) each keep a window resize listener, holding the chart
// and its data, until purged: a view left drops its charts' too (a review: four more
// listeners each time a job page was opened). Plotly is loaded only by chart pages.
function purgeCharts(root) {
  if (!window.Plotly) return;
  for (const chart of root.querySelectorAll(".js-plotly-plot")) window.Plotly.purge(chart);
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
  showPlace(name, params);
  const root = document.getElementById("view");
  purgeCharts(root);
  root.replaceChildren(el("p", { class: "muted" }, "Loading…"));
  root.dataset.view = name;
  root.dataset.routes = String(Number(root.dataset.routes || 0) + 1); // one a navigation
  // The server unreachable (the view's module or its first request lost): say so and
  // draw the view again once it answers, backing off, while it is still the shown one.
  for (let tries = 0; ; tries += 1) {
    const attempt = new AbortController(); // ends what a failed draw left running
    const drawing = AbortSignal.any([signal, attempt.signal]);
    try {
      const view = await VIEWS[name]();
      if (signal.aborted) return;
      const page = el("div", { class: `view view-${name}` });
      root.replaceChildren(page);
      await view.render(page, params, drawing);
      return;
    } catch (error) {
      attempt.abort();
      if (signal.aborted) return;
      purgeCharts(root);
      if (!unreachable(error)) {
        root.replaceChildren(errorBox(error));
        return;
      }
      root.replaceChildren(el("p", { class: "note", id: "unreachable", role: "status" },
        UNREACHABLE));
      await sleep(Math.min(RETRY_MAX_MS, RETRY_MS * 2 ** tries), signal);
      if (signal.aborted) return;
    }
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
