// Several jobs overlaid: a chosen metric against rounds and against bytes uploaded,
// and a table of what each rule cost relative to a chosen baseline. Jobs need not
// share a metric (a classifier's val_accuracy, a language model's val_perplexity, a
// job not evaluated yet): the chooser offers every metric of any of them, and the
// jobs without the chosen one are named beside the charts, not silently left blank.
// A metric read against a baseline of the data (chance accuracy, unigram perplexity)
// has it drawn dashed on both charts.
import { allMetrics, api } from "../api.js";
import { baselineOf, bytesAxis, line, plot, VALIDATION_METRICS, valueAxis } from "../charts.js";
import {
  bytes, el, errorBox, fmt, routeId, section, statusBadge, TERMINAL, unreachable,
} from "../dom.js";

// The validation metrics, then the training loss that every round reports.
const CURVES = [...VALIDATION_METRICS, "train_loss"];

export async function render(root, params, signal) {
  // Each job once, in the order first given: #/compare?ids=3,3 is job 3.
  const given = (params.ids || "").split(",").map((part) => part.trim()).filter(Boolean);
  const ids = [...new Set(given.map(routeId).filter((n) => n !== null))];
  // Named, not silently dropped: #/compare?ids=5,abc compares job 5 and says so.
  const notIds = [...new Set(given.filter((part) => routeId(part) === null))];
  // Every other parameter (`points=all`, the metric and baseline shown) is kept.
  let shown = {};
  const go = (changes) => {
    const query = { ...params, ids: ids.join(","), ...shown, ...changes };
    location.hash = `#/compare?${Object.entries(query).filter(([, v]) => v)
      .map(([k, v]) => `${k}=${encodeURIComponent(v).replaceAll("%2C", ",")}`).join("&")}`;
  };
  const picker = el("input", { name: "ids", value: ids.join(","), placeholder: "job ids, e.g. 3,4",
    "aria-label": "job ids" });
  root.append(el("h1", {}, "Compare"), el("form", { class: "filters", onsubmit: (event) => {
    event.preventDefault();
    go({ ids: picker.value.replace(/\s+/g, ""), baseline: undefined });
  } }, picker, el("button", { type: "submit" }, "Compare")));
  for (const part of notIds) {
    root.append(el("p", { class: "error", role: "alert" },
      `No job '${part}': a job id is a number.`));
  }
  if (ids.length === 0) {
    root.append(el("p", { class: "muted" }, "Pick jobs on the Jobs page, or type their ids."));
    return;
  }

  const runs = await Promise.all(ids.map(async (id) => {
    try {
      const [job, records] = await Promise.all([api(`/v1/jobs/${id}`, { signal }),
        allMetrics(id, signal)]);
      return { id, job, records };
    } catch (error) {
      return { id, error };
    }
  }));
  // The server unreachable: the router says so and draws the page again once it answers.
  const lost = runs.find((r) => r.error && unreachable(r.error));
  if (lost) throw lost.error;
  for (const run of runs.filter((r) => r.error)) root.append(errorBox(run.error));
  const ok = runs.filter((r) => !r.error);
  if (ok.length === 0) return; // no job to draw: the messages alone, no empty charts
  for (const run of ok) {
    run.names = new Set(run.records.flatMap((m) => Object.keys(m.values)
      .filter((name) => m.values[name] !== null)));
  }
  const having = (name) => ok.filter((r) => r.names.has(name));
  const count = (name) => having(name).length;
  const tasks = (name) => new Set(having(name).map((r) => r.job.spec.task.kind)).size;
  const choices = CURVES.filter((name) => count(name) > 0);
  // By default the validation metric most of the jobs have; on a tie, the one more of
  // their tasks share (jobs of two tasks: val_loss, which both report), then the first
  // in VALIDATION_METRICS' order (one task's jobs: its headline; sort is stable).
  const metric = choices.includes(params.metric) ? params.metric
    : VALIDATION_METRICS.filter((name) => count(name) > 0)
      .sort((a, b) => count(b) - count(a) || tasks(b) - tasks(a))[0] || "train_loss";
  const asked = Number(params.baseline);
  // By default the first job that has the metric: one without it has no ratio to give.
  const baselineId = ok.some((r) => r.id === asked) ? asked
    : (ok.find((r) => r.names.has(metric)) || ok[0])?.id;
  shown = { metric, baseline: baselineId };

  for (const run of ok) {
    run.rounds = [];
    run.bytes = [];
    run.metric = [];
    for (const record of run.records) {
      const value = record.values[metric];
      if (value === undefined || value === null) continue;
      run.rounds.push(record.round);
      run.bytes.push(record.values.bytes_up_total ?? null);
      run.metric.push(value);
    }
    const last = run.records[run.records.length - 1]?.values || {};
    run.final = { metric: run.metric[run.metric.length - 1], uploads: last.uploads_total,
      bytes: last.bytes_up_total, dense: last.dense_equiv_uploads };
  }
  const label = (run) => `${run.id} ${run.job.name || ""} (${run.job.spec.aggregation.strategy}`
    + ` + ${optimizerName(run.job.spec.optimizer)})`;
  const byRound = el("div", { id: "chart-compare-rounds", class: "chart" });
  const byBytes = el("div", { id: "chart-compare-bytes", class: "chart" });
  const chooser = el("select", { name: "metric", "aria-label": "metric",
    onchange: () => go({ metric: chooser.value }) },
  choices.map((name) => el("option", { value: name, selected: name === metric },
    `${name} (${count(name)} of ${ok.length} jobs)`)));
  const has = (run) => {
    const evaluated = VALIDATION_METRICS.filter((name) => run.names.has(name));
    if (evaluated.length) return `has ${evaluated.join(", ")}`;
    const over = TERMINAL.has(run.job.status);
    if (run.records.length) return over ? "never evaluated" : "not evaluated yet";
    return over ? "no metrics" : "no metrics yet";
  };
  const missing = ok.filter((r) => r.metric.length === 0);
  const otherWouldDraw = missing.some((r) => choices.some((c) => c !== metric && r.names.has(c)));
  const unknown = params.metric && params.metric !== metric
    ? `No job has ${params.metric}; showing ${metric}. ` : "";
  const note = missing.length === 0 && !unknown ? null : el("p", { id: "compare-missing",
    class: "note", role: "status", dataset: { jobs: missing.map((r) => r.id).join(",") } },
  unknown, missing.length ? `No ${metric} to draw for ` : "",
  missing.flatMap((r, i) => [i ? "; " : "", el("a", { href: `#/jobs/${r.id}` }, label(r)),
    ` (${has(r)})`]),
  missing.length ? (otherWouldDraw ? ". Pick another metric above." : ".") : "");
  const baseline = el("select", { name: "baseline", "aria-label": "baseline",
    onchange: () => go({ baseline: baseline.value }) },
  ok.map((r) => el("option", { value: r.id, selected: r.id === baselineId }, label(r))));
  const base = ok.find((r) => r.id === baselineId)?.final;
  // Each job's figure over the baseline's: "is the lazy rule within 1 % of its dense
  // twin's final metric, with how many of its uploads and bytes?" read off one row.
  const ratio = (value, of) => (value != null && of ? `${fmt(value / of, 3)}×` : "—");
  // A job that has not succeeded (cancelled, failed, still running) counts the bytes of
  // the rounds it ran: beside a complete run its ratio reads as a saving it never made.
  const partial = (r) => r.job.status !== "succeeded";
  const rounds = (r) => `${r.job.progress.round} of ${r.job.progress.rounds} rounds`;
  // A lazy rule's resolved optimizer is not dense's (CADA2: AMSGrad without bias
  // correction): a difference besides the aggregation is a difference in accuracy
  // the lazy rule did not cause, so it is named.
  const differing = differingSettings(ok.map((r) => r.job.spec));
  const settingsNote = differing.length ? el("p", { id: "compare-settings", class: "note" },
    `These jobs also differ in ${differing.join(", ")}: their curves differ by more `
    + "than the aggregation rule.") : null;
  const partialNote = ok.some(partial) ? el("p", { id: "compare-partial", class: "note" },
    "Partial: a job that has not succeeded counts only the rounds it ran, so its final "
    + "metric, uploads, bytes and their ratios are not those of a complete run.") : null;
  const table = el("table", { id: "compare-table" },
    el("thead", {}, el("tr", {}, ["job", "status", `final ${metric}`, `${metric} vs baseline`,
      "uploads", "uploads vs baseline", "dense equivalent", "bytes up", "bytes vs baseline"]
      .map((h) => el("th", {}, h)))),
    el("tbody", {}, ok.map((r) => el("tr", { class: partial(r) ? "partial" : "",
      dataset: { jobId: r.id } },
      el("td", {}, el("a", { href: `#/jobs/${r.id}` }, label(r))),
      el("td", {}, statusBadge(r.job.status)),
      el("td", {}, fmt(r.final.metric)),
      el("td", { class: "metric-ratio" }, ratio(r.final.metric, base?.metric)),
      el("td", {}, fmt(r.final.uploads)),
      el("td", { class: "uploads-ratio" }, ratio(r.final.uploads, base?.uploads)),
      el("td", {}, fmt(r.final.dense)), el("td", {}, bytes(r.final.bytes)),
      el("td", { class: "ratio" }, ratio(r.final.bytes, base?.bytes),
        partial(r) ? el("span", { class: "partial-mark muted", title: "did not succeed" },
          ` partial: ${rounds(r)}`) : null)))));
  root.append(section(`${metric} against rounds and bytes uploaded`,
    choices.length ? el("label", {}, "metric ", chooser) : null, note,
    el("div", { class: "charts two" }, byRound, byBytes)),
  section("Summary", el("label", {}, "baseline ", baseline), table, settingsNote, partialNote));
  const yaxis = valueAxis(metric);
  const references = baselineLines(ok, metric);
  const byRoundDrawn = plot(byRound,
    [...ok.map((r) => line(label(r), r.rounds, r.metric, { mode: "lines+markers" })),
      ...references((r) => r.rounds)],
    { title: { text: `${metric} by round` }, xaxis: { title: { text: "round" } }, yaxis });
  const byBytesDrawn = plot(byBytes,
    [...ok.map((r) => line(label(r), r.bytes, r.metric, { mode: "lines+markers" })),
      ...references((r) => r.bytes.filter((b) => b > 0))], // a log axis
    { title: { text: `${metric} by bytes uploaded` },
      xaxis: bytesAxis("bytes uploaded (log scale)", ok.flatMap((r) => r.bytes)), yaxis });
  // Ready (tests wait on it) once both charts are drawn: plotly may still be loading.
  Promise.all([byRoundDrawn, byBytesDrawn]).then(() => { root.dataset.ready = "true"; });
}

// The metric's baseline as the jobs reported it (a classifier's chance accuracy, a
// language model's unigram perplexity; it depends on the data and the seed's hold-out):
// one dashed line per value as shown, across the x values `xsOf(run)` of its jobs,
// named with them — "chance_accuracy 0.1226 (jobs 3, 5)".
function baselineLines(runs, metric) {
  const name = baselineOf(metric);
  const byValue = new Map();
  for (const run of name ? runs : []) {
    const value = run.records.findLast((m) => m.values[name] != null)?.values[name];
    if (value == null) continue;
    const shown = fmt(value);
    const same = byValue.get(shown) || { value, sharing: [] };
    same.sharing.push(run);
    byValue.set(shown, same);
  }
  return (xsOf) => [...byValue].flatMap(([shown, { value, sharing }]) => {
    // A loop, not Math.min(...xs): a long run's xs would overflow the call's arguments.
    let low = Infinity;
    let high = -Infinity;
    for (const x of sharing.flatMap(xsOf)) {
      if (x != null) { low = Math.min(low, x); high = Math.max(high, x); }
    }
    if (low > high) return [];
    const ids = sharing.map((r) => r.id).join(", ");
    return [line(`${name} ${shown} (job${sharing.length > 1 ? "s" : ""} ${ids})`,
      [low, high], [value, value], { mode: "lines", line: { dash: "dash", color: "#888" } })];
  });
}

// "adam", "AMSGrad without bias correction", "sgd, momentum 0.9": what trained.
function optimizerName(optimizer) {
  if (optimizer.name !== "adam") {
    return optimizer.momentum ? `sgd, momentum ${optimizer.momentum}` : "sgd";
  }
  return (optimizer.amsgrad ? "AMSGrad" : "adam")
    + (optimizer.bias_correction ? "" : " without bias correction");
}

// Dotted paths of the resolved specs' settings that are not the same in every job,
// leaving out what is no training setting (name, priority, attempts) and the
// aggregation, the comparison's subject.
const NOT_COMPARED = new Set(["name", "priority", "max_attempts", "aggregation"]);

function differingSettings(specs) {
  const flat = (value, prefix, out) => {
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [key, inner] of Object.entries(value)) {
        if (!prefix && NOT_COMPARED.has(key)) continue;
        flat(inner, prefix ? `${prefix}.${key}` : key, out);
      }
    } else {
      out.set(prefix, JSON.stringify(value));
    }
    return out;
  };
  const all = specs.map((spec) => flat(spec, "", new Map()));
  const paths = new Set(all.flatMap((one) => [...one.keys()]));
  return [...paths].filter((path) => new Set(all.map((one) => one.get(path))).size > 1).sort();
}
