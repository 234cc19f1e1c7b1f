// EDT Compute dashboard: jobs list and job page, drawn with plotly.js.
// Served by the API (data through /v1 with the token kept in sessionStorage), or inlined in a
// report file whose data sits in <script id="edt-data"> (then nothing is fetched at all).
"use strict";
(function () {
  const embedded = document.getElementById("edt-data");
  const REPORT = embedded ? JSON.parse(embedded.textContent) : null;
  const root = document.getElementById("app");
  const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
  const TOKEN_KEY = "edt-token";
  const REFRESH_MS = 2000; // the job's status line while it runs (one small request)
  const FIGURES_MS = 15000; // figures of a running job: each is a pass over its Parquet parts
  const PLOT_CONFIG = { displaylogo: false, responsive: true };
  let timer = null;
  let notice = ""; // the answer to the last cancel/resume, kept across refreshes of the page

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }

  function num(v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    const d = digits === undefined ? 3 : digits;
    return Math.abs(v) >= 1e4 ? v.toLocaleString("en", { maximumFractionDigits: 0 }) : v.toPrecision(d + 1);
  }
  const pct = (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(1) + " %");

  class Unauthorized extends Error {}

  async function api(path, options) {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const headers = token ? { Authorization: "Bearer " + token } : {};
    const response = await fetch(path, Object.assign({ headers }, options || {}));
    if (response.status === 401) throw new Unauthorized("token refused");
    return response;
  }

  async function json(path) {
    const r = await api(path);
    if (!r.ok) return null;
    return r.json();
  }

  function tokenGate(message) {
    const input = el("input", { type: "password", id: "token", placeholder: "token", autocomplete: "off" });
    const form = el("form", { id: "token-form" }, input, el("button", { type: "submit", text: "Open" }));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      route();
    });
    root.replaceChildren(
      el("h1", { text: "EDT Compute" }),
      el("p", { class: "note", text: "The token is kept for this browser tab only (sessionStorage)." }),
      message ? el("p", { class: "error", id: "gate-error", text: message }) : "",
      form
    );
    document.body.dataset.view = "gate";
  }

  // A refresh by the timer (`refresh` true) never wipes a field being typed; a route the
  // user asked for (a filter applied, a form sent) always redraws.
  function later(fn) {
    clearTimeout(timer);
    timer = setTimeout(() => fn(true), REFRESH_MS);
  }

  const typingIn = (id) => document.activeElement !== null && document.activeElement.id === id;

  // Routes may overlap (a filter applied while the last list is still loading): only the
  // latest one may draw, or a slow answer to an earlier one would overwrite the newer view.
  let routeSeq = 0;
  const stale = (mine) => mine !== routeSeq;

  async function route(refresh) {
    clearTimeout(timer);
    const mine = ++routeSeq;
    if (REPORT) return showJob(REPORT, false);
    const match = location.hash.match(/^#job\/([A-Za-z0-9._-]+)$/);
    try {
      if (match) await jobPage(match[1], refresh === true, mine);
      else await jobsList(refresh === true, mine);
    } catch (e) {
      if (e instanceof Unauthorized) return tokenGate(sessionStorage.getItem(TOKEN_KEY) ? "That token was refused." : "");
      root.replaceChildren(el("p", { class: "error", text: String(e) }));
    }
  }
  window.addEventListener("hashchange", () => { notice = ""; shown = null; route(); });

  // ---- jobs list ---------------------------------------------------------------------------

  const filters = { status: "", label: "" };

  async function jobsList(refresh, mine) {
    if (refresh && typingIn("filter-label")) return later(route); // the user is typing a filter
    const q = new URLSearchParams({ limit: "100" });
    if (filters.status) q.set("status", filters.status);
    if (filters.label) q.append("label", filters.label);
    const r = await api("/v1/jobs?" + q);
    const page = r.ok ? await r.json() : { data: [] };
    if (stale(mine)) return;
    const status = el("select", { id: "filter-status" },
      ...["", "queued", "running", "succeeded", "failed", "cancelled", "interrupted"].map((s) =>
        el("option", { value: s, text: s || "any status" })));
    status.value = filters.status;
    const label = el("input", { id: "filter-label", placeholder: "label key=value", value: filters.label });
    const apply = () => { filters.status = status.value; filters.label = label.value.trim(); route(); };
    status.addEventListener("change", apply);
    label.addEventListener("change", apply);
    const rows = page.data.map((j) => el("tr", { "data-job": j.id },
      el("td", {}, el("a", { href: "#job/" + j.id, text: j.id })),
      el("td", { text: j.name }),
      el("td", { class: "status-" + j.status, text: j.status }),
      el("td", {}, progressBar(j.progress), " " + pct(j.progress)),
      el("td", { class: "num", text: j.eta_seconds ? Math.round(j.eta_seconds) + " s" : "–" }),
      el("td", {}, ...Object.entries(j.labels).map(([k, v]) => el("span", { class: "label", text: k + "=" + v }))),
      el("td", { text: j.created_at.replace("T", " ").slice(0, 19) })));
    root.replaceChildren(
      el("header", {}, el("h1", { text: "EDT Compute: jobs" }), logout()),
      el("div", { class: "controls" }, status, label, !r.ok ? el("span", { class: "error", text: "bad filter" }) : ""),
      el("table", { id: "jobs" },
        el("thead", {}, el("tr", {}, ...["id", "name", "status", "progress", "ETA", "labels", "created"].map((h) => el("th", { text: h })))),
        el("tbody", {}, ...rows)));
    document.body.dataset.view = "jobs";
    if (page.data.some((j) => !TERMINAL.has(j.status))) later(route);
  }

  function progressBar(p) {
    const inner = el("span");
    inner.style.width = (100 * (p || 0)).toFixed(1) + "%";
    return el("span", { class: "bar" }, inner);
  }

  function logout() {
    return el("a", { href: "#", id: "logout", text: "forget token", onclick: (e) => {
      e.preventDefault(); sessionStorage.removeItem(TOKEN_KEY); tokenGate("");
    } });
  }

  // ---- job page ----------------------------------------------------------------------------

  // What the job page shows now: a running job's page polls only its status line, and
  // reads the figures again when they changed and are due; discovery (PRIM over the parts) runs
  // when the page opens, when the user asks and once the job has ended.
  let shown = null;

  async function jobPage(id, refresh, mine) {
    const r = await api("/v1/jobs/" + id);
    if (stale(mine)) return; // the user went elsewhere, or asked again, meanwhile
    if (!r.ok) {
      shown = null;
      root.replaceChildren(el("p", { class: "error", text: "no job " + id }), el("a", { href: "#", text: "all jobs" }));
      return;
    }
    const job = await r.json();
    if (stale(mine)) return;
    const first = !shown || shown.id !== id || discoveryAsked;
    const changed = first || shown.done !== job.scenarios_done || shown.status !== job.status;
    const ended = TERMINAL.has(job.status);
    const due = first || ended || Date.now() - shown.at >= FIGURES_MS;
    const typing = refresh && typingIn("discover-threshold");
    if ((changed || shown.dirty) && due && !typing) {
      const rediscover = first || (ended && !shown.ended);
      discoveryAsked = false;
      const [summary, figures, discovery] = await Promise.all([
        json("/v1/jobs/" + id + "/summary"),
        json("/v1/jobs/" + id + "/figures"),
        rediscover ? discover(id, discoveryQuery) : Promise.resolve(shown.discovery),
      ]);
      if (stale(mine)) return;
      shown = { id, done: job.scenarios_done, status: job.status, at: Date.now(), dirty: false, ended, discovery };
      await showJob({ job, summary, figures, discovery }, true);
    } else {
      if (changed) shown.dirty = true;
      const line = document.getElementById("job-state");
      if (line) line.replaceWith(jobStatus(job, true));
      document.body.dataset.ready = job.status + ":" + job.scenarios_done;
    }
    if (!ended) later(route);
  }

  let discoveryAsked = false;

  const discoveryQuery = { metric: "npv", side: "below", threshold: "0" };

  async function discover(id, q) {
    const params = new URLSearchParams({ metric: q.metric, [q.side]: q.threshold });
    const r = await api("/v1/jobs/" + id + "/discover?" + params);
    const body = await r.json();
    return r.ok ? body : { error: body.error ? body.error.message : "no answer" };
  }

  async function showJob(data, live) {
    const { job, summary, figures, discovery } = data;
    const sections = [
      el("header", {},
        el("h1", { id: "job-title", text: job.name + " " }),
        el("span", { class: "note", text: job.id }),
        live ? el("a", { href: "#", text: "all jobs" }) : el("span", { class: "note", text: "report" }),
        live ? logout() : ""),
      jobStatus(job, live),
      el("h2", { text: "Summary" }),
      summaryTable(summary),
      downloads(job, summary, live),
    ];
    const charts = [];
    const grid = el("div", { class: "grid" });
    const chart = (id, title, traces, layout, where) => {
      const div = el("div", { class: "chart", id });
      (where || grid).append(div);
      charts.push([div, traces, Object.assign({ title: { text: title }, margin: { t: 40, l: 60, r: 20, b: 50 } }, layout)]);
    };
    if (figures) {
      histogram(chart, figures, summary);
      scurve(chart, figures, summary);
      tornado(chart, figures.tornado);
      convergence(chart, figures.convergence);
      built(chart, figures.built);
    }
    sections.push(el("h2", { text: "Distribution and drivers" }), figures ? grid : el("p", { class: "note", text: "no committed results yet" }));
    sections.push(el("h2", { text: "Scenario discovery" }), discoveryPanel(job, discovery, live, chart));
    root.replaceChildren(...sections);
    document.body.dataset.view = "job";
    await Promise.all(charts.map(([div, traces, layout]) => Plotly.newPlot(div, traces, layout, PLOT_CONFIG)));
    document.body.dataset.ready = job.status + ":" + job.scenarios_done;
  }

  function jobStatus(job, live) {
    const bits = [
      el("span", { id: "job-status", class: "status-" + job.status, text: job.status }),
      " ", progressBar(job.progress), " ",
      el("span", { text: `${job.scenarios_done} of ${job.total_scenarios} scenarios (${pct(job.progress)})` }),
      job.eta_seconds ? el("span", { text: " · ETA " + Math.round(job.eta_seconds) + " s" }) : "",
      job.mode ? el("span", { class: "note", text: " · " + job.mode }) : "",
      ...Object.entries(job.labels).map(([k, v]) => el("span", { class: "label", text: k + "=" + v })),
    ];
    if (live && !TERMINAL.has(job.status)) bits.push(action(job, "cancel"));
    if (live && job.status === "interrupted") bits.push(action(job, "resume"));
    if (job.cancel_requested && !TERMINAL.has(job.status)) bits.push(el("span", { class: "note", text: "cancel requested" }));
    if (notice) bits.push(el("span", { class: "error", id: "job-notice", text: notice }));
    if (job.error) bits.push(el("p", { class: "error", text: job.error }));
    return el("div", { class: "controls", id: "job-state" }, ...bits);
  }

  function action(job, verb) {
    return el("button", { id: verb + "-job", text: verb, onclick: async () => {
      const r = await api(`/v1/jobs/${job.id}/${verb}`, { method: "POST" });
      notice = r.ok ? verb + " requested" : (await r.json()).error.message;
      route();
    } });
  }

  const ROWS = [
    ["NPV mean", "npv", "mean"], ["NPV P5", "npv", "p5"], ["NPV P50", "npv", "p50"],
    ["NPV P95", "npv", "p95"], ["P(NPV < 0)", "npv", "prob_negative", pct],
    ["VaR 95 % (NPV at the 5 % quantile)", "npv", "var95"], ["CVaR 95 % (mean of the worst 5 %)", "npv", "cvar95"],
    ["IRR mean", "irr", "mean", pct], ["IRR P5", "irr", "p5", pct], ["IRR P50", "irr", "p50", pct],
    ["IRR P95", "irr", "p95", pct], ["IRR undefined (no sign change)", "irr", "share_undefined", pct],
    ["Expected effect, λ = 0.3", "npv", "expected_integral_effect"],
  ];

  function summaryTable(summary) {
    if (!summary) return el("p", { class: "note", id: "summary", text: "no summary yet (the job has not finished)" });
    const unit = summary.currency ? " (" + summary.currency + ")" : "";
    const rows = ROWS.map(([label, metric, key, f]) => {
      const v = (summary[metric] || {})[key];
      return el("tr", { "data-key": metric + "." + key },
        el("th", { text: label + (f ? "" : unit) }), el("td", { class: "num", text: (f || num)(v) }));
    });
    rows.push(el("tr", {}, el("th", { text: "scenarios" }), el("td", { class: "num", text: String(summary.scenarios) })));
    return el("table", { id: "summary" }, el("tbody", {}, ...rows));
  }

  function downloads(job, summary, live) {
    const links = [];
    const save = (name, makeBlob) => el("a", { href: "#", text: name, onclick: async (e) => {
      e.preventDefault();
      const blob = await makeBlob();
      if (!blob) return;
      const a = el("a", { href: URL.createObjectURL(blob), download: name });
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 0);
    } });
    const fetched = (path) => async () => { const r = await api(path); return r.ok ? r.blob() : null; };
    if (live) {
      links.push(save(job.id + "-scenarios.parquet", fetched(`/v1/jobs/${job.id}/results?format=parquet`)));
      links.push(save(job.id + "-scenarios.csv", fetched(`/v1/jobs/${job.id}/results?format=csv`)));
      links.push(save(job.id + "-report.html", fetched(`/v1/jobs/${job.id}/report`)));
    }
    if (summary) {
      links.push(save(job.id + "-summary.json", async () => new Blob([JSON.stringify(summary, null, 2)], { type: "application/json" })));
    }
    return el("div", { class: "controls", id: "downloads" }, "Download: ", ...links.flatMap((l) => [l, " "]));
  }

  function histogram(chart, figures, summary) {
    const h = figures.histogram;
    if (!h.count) return;
    const centres = h.counts.map((_, i) => (h.edges[i] + h.edges[i + 1]) / 2);
    const traces = [{ type: "bar", x: centres, y: h.counts, width: h.edges[1] - h.edges[0], name: "scenarios", marker: { color: "#5c7cba" } }];
    const unit = summary && summary.currency ? " (" + summary.currency + ")" : "";
    chart("chart-histogram", `NPV distribution (${h.count} scenarios)`, traces,
      { xaxis: { title: { text: "NPV" + unit } }, yaxis: { title: { text: "scenarios" } }, bargap: 0.02,
        shapes: [{ type: "line", x0: 0, x1: 0, yref: "paper", y0: 0, y1: 1, line: { color: "#b71c1c", dash: "dot" } }] });
  }

  function scurve(chart, figures, summary) {
    const c = figures.cdf;
    if (!c.x.length) return;
    const traces = [{ type: "scatter", mode: "lines", x: c.x, y: c.p, name: "P(NPV < x)", line: { color: "#2e7d32" } }];
    const loss = summary && summary.npv ? summary.npv.prob_negative : null;
    if (loss !== null && loss !== undefined) {
      traces.push({ type: "scatter", mode: "markers+text", x: [0], y: [loss], name: "P(NPV<0)",
        text: ["P(NPV<0) = " + pct(loss)], textposition: "middle right", marker: { color: "#b71c1c", size: 10 } });
    }
    chart("chart-scurve", "Cumulative distribution (S-curve)", traces,
      { xaxis: { title: { text: "NPV" } }, yaxis: { title: { text: "share of scenarios" }, range: [0, 1] }, showlegend: false });
  }

  function tornado(chart, t) {
    if (!t || !t.bars.length) return;
    const bars = t.bars.slice().reverse(); // plotly draws the first bar at the bottom
    const names = bars.map((b) => b.parameter);
    if (t.kind === "one_at_a_time") {
      chart("chart-tornado", "Tornado: NPV swing, one input at a time", [
        { type: "bar", orientation: "h", y: names, x: bars.map((b) => b.low_delta), name: "low" },
        { type: "bar", orientation: "h", y: names, x: bars.map((b) => b.high_delta), name: "high" },
      ], { barmode: "group", xaxis: { title: { text: "NPV change from base" } }, margin: { l: 260, t: 40 } });
    } else {
      chart("chart-tornado", "What drives the NPV: rank correlation (Spearman)", [
        { type: "bar", orientation: "h", y: names, x: bars.map((b) => b.rho), name: "rho",
          marker: { color: bars.map((b) => (b.rho < 0 ? "#b71c1c" : "#2e7d32")) } },
      ], { xaxis: { title: { text: "Spearman rho with NPV" }, range: [-1, 1] }, margin: { l: 260, t: 40 } });
    }
  }

  function convergence(chart, conv) {
    if (!conv || !conv.history || !conv.history.length) return;
    conv.targets.forEach((target, i) => {
      const rows = conv.history.filter((r) => r.metric === target.metric && r.statistic === target.statistic);
      if (!rows.length) return;
      const est = rows.map((r) => r.estimate);
      const goal = target.half_width !== null && target.half_width !== undefined ? "±" + target.half_width : "±" + 100 * target.relative + " %";
      const met = rows[rows.length - 1].met ? "met" : "not met";
      chart("chart-convergence-" + i, `Convergence: ${target.metric} ${target.statistic} (goal ${goal}, ${met})`, [{
        type: "scatter", mode: "lines+markers", x: rows.map((r) => r.n), y: est, name: "estimate",
        error_y: { type: "data", symmetric: false,
          array: rows.map((r) => (r.upper === null ? null : r.upper - r.estimate)),
          arrayminus: rows.map((r) => (r.lower === null ? null : r.estimate - r.lower)) },
      }], { xaxis: { title: { text: "scenarios" } }, yaxis: { title: { text: `${target.statistic} with its ${100 * conv.confidence} % interval` } } });
    });
  }

  function built(chart, b) {
    const projects = Object.keys(b || {});
    if (!projects.length) return;
    chart("chart-built-share", "Share of scenarios that build each project", [
      { type: "bar", x: projects, y: projects.map((p) => b[p].share), name: "built" },
    ], { yaxis: { title: { text: "share of scenarios" }, range: [0, 1] } });
    chart("chart-built-when", "When each project is built", projects.map((p) => (
      { type: "bar", x: b[p].periods, y: b[p].counts, name: p })),
    { xaxis: { title: { text: "build period" }, dtick: 1 }, yaxis: { title: { text: "scenarios" } } });
  }

  function discoveryPanel(job, d, live, chart) {
    const parts = [];
    if (live) {
      const metric = el("select", { id: "discover-metric" }, ...["npv", "irr", "mirr", "pi", "enterprise_npv"].map((m) => el("option", { value: m, text: m })));
      const side = el("select", { id: "discover-side" }, el("option", { value: "below", text: "below" }), el("option", { value: "above", text: "above" }));
      const threshold = el("input", { id: "discover-threshold", type: "number", step: "any", value: discoveryQuery.threshold });
      metric.value = discoveryQuery.metric;
      side.value = discoveryQuery.side;
      const form = el("form", { id: "discover-form" }, "Scenarios with ", metric, " ", side, " ", threshold,
        el("button", { type: "submit", text: "Find input ranges" }));
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        Object.assign(discoveryQuery, { metric: metric.value, side: side.value, threshold: threshold.value || "0" });
        discoveryAsked = true;
        route();
      });
      parts.push(form);
    }
    if (!d || d.error) {
      parts.push(el("p", { class: "note", id: "discovery", text: d ? d.error : "no results yet" }));
      return el("div", {}, ...parts);
    }
    const sign = d.side === "below" ? "<" : ">";
    if (!d.cases) {
      parts.push(el("p", { id: "discovery-figures", text: `No scenario has ${d.metric} ${sign} ${d.threshold} (of ${d.sampled}).` }));
      return el("div", { id: "discovery" }, ...parts);
    }
    parts.push(el("p", { id: "discovery-figures" },
      `PRIM box for ${d.metric} ${sign} ${d.threshold}: coverage ${pct(d.coverage)}, density ${pct(d.density)}, ` +
      `mass ${pct(d.mass)} (${d.cases} of ${d.sampled} scenarios are cases` +
      (d.subsampled ? `; a fixed sample of ${d.sampled} of the ${d.scenarios} scenarios` : "") + ")."));
    const rows = d.box.map((r) => el("tr", {},
      el("td", { text: r.input }), el("td", { class: "num", text: r.lower === null ? "–" : num(r.lower) }),
      el("td", { class: "num", text: r.upper === null ? "–" : num(r.upper) })));
    parts.push(d.box.length
      ? el("table", { id: "discovery-box" }, el("thead", {}, el("tr", {}, el("th", { text: "input" }), el("th", { text: "from" }), el("th", { text: "to" }))), el("tbody", {}, ...rows))
      : el("p", { class: "note", id: "discovery-box", text: "no input range singles the cases out" }));
    const grid = el("div", { class: "grid" });
    parts.push(grid);
    const t = d.trajectory;
    chart("chart-prim", "PRIM peeling: density against coverage",
      [{ type: "scatter", mode: "lines+markers", x: t.map((p) => p.coverage), y: t.map((p) => p.density), name: "peeling" }],
      { xaxis: { title: { text: "coverage" }, range: [0, 1.05] }, yaxis: { title: { text: "density" }, range: [0, 1.05] } }, grid);
    return el("div", { id: "discovery" }, ...parts);
  }

  route();
})();
