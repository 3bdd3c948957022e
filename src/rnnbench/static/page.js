// The rnnbench results page: renders the embedded document (#rnnbench-data, written by
// rnnbench.report_html) with Chart.js (bars with CI whiskers, step panels) and tablesort.
// Everything is derived from the current view's rows, so that a switch between runs or
// devices redraws the whole page.
"use strict";
(() => {
  const DATA = JSON.parse(document.getElementById("rnnbench-data").textContent);
  const FRAMEWORK_COLOUR = Object.fromEntries(DATA.frameworks.map((f) => [f.name, f.colour]));
  const SCENARIO = Object.fromEntries(DATA.scenarios.map((s) => [s.name, s]));
  const FLAG = "\u26a0";
  const state = { view: 0, scenario: null, hidden: new Set(), log: false };
  const charts = {};

  Chart.register(ChartErrorBars.BarWithErrorBarsController, ChartErrorBars.BarWithErrorBar);
  Chart.defaults.animation = false;
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.maintainAspectRatio = false;

  // --- formatting ------------------------------------------------------------------------
  const DASH = "\u2013";
  function digits(v) {
    const a = Math.abs(v);
    return a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
  }
  function fmt(v, d) {
    if (v === null || v === undefined) return DASH;
    d = d === undefined ? digits(v) : d;
    return v.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
  }
  const range = (a, b) => (a === null || b === null ? DASH : `${fmt(a)}${DASH}${fmt(b)}`);
  const verifiedText = (v) => (v === true ? "yes" : v === false ? "NO" : "not checked");

  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role") e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }
  // Log axes: label 1, 2 and 5 times a power of ten only, so that the labels do not crowd.
  const LOG_TICKS = {
    autoSkip: false,
    callback: (v) => {
      const mantissa = v / 10 ** Math.floor(Math.log10(v));
      return [1, 2, 5].some((k) => Math.abs(mantissa - k) < 1e-9) ? v.toLocaleString("en-US") : "";
    },
  };
  const swatch = (colour) => el("span", { class: "swatch", style: `background:${colour}` });
  function draw(name, canvas, config) {
    if (charts[name]) charts[name].destroy();
    charts[name] = new Chart(canvas, config);
    return charts[name];
  }

  // --- the current view --------------------------------------------------------------------
  function current() {
    const v = DATA.views[state.view];
    const run = DATA.runs[v.run];
    const rows = run.rows.filter((r) => Object.entries(v.filter).every(([k, x]) => !r[k] || r[k] === x));
    const best = {};
    for (const r of rows) {
      if (r.status === "ok" && (best[r.scenario] === undefined || r.median_ms < best[r.scenario])) {
        best[r.scenario] = r.median_ms;
      }
    }
    for (const r of rows) r.ratio = r.status === "ok" ? r.median_ms / best[r.scenario] : null;
    const scenarios = DATA.scenarios.map((s) => s.name).filter((s) => rows.some((r) => r.scenario === s));
    const frameworks = DATA.frameworks.map((f) => f.name).filter((f) => rows.some((r) => r.framework === f));
    return { run, rows, scenarios, frameworks };
  }
  const okRows = (rows) => rows.filter((r) => r.status === "ok").sort((a, b) => a.median_ms - b.median_ms);
  function fastest(rows, scenario, framework) {
    return okRows(rows.filter((r) => r.scenario === scenario && r.framework === framework))[0];
  }
  function tooltipLines(r) {
    const lines = [
      `${r.framework}: ${DATA.impls[r.impl] ? DATA.impls[r.impl].description : ""}`,
      `median ${fmt(r.median_ms)} ms, ${fmt(r.ratio, 2)}\u00d7 fastest`,
      `95% CI ${range(r.ci_low_ms, r.ci_high_ms)} ms`,
      `p10${DASH}p90 ${range(r.p10_ms, r.p90_ms)} ms`,
      `${r.steps ?? "?"} measured steps after ${r.warmup ?? "?"} warm-up`,
      `checks ${r.checks || "?"}, verified ${verifiedText(r.verified)}`,
    ];
    return lines.concat(r.flags.map((f) => `${FLAG} ${f}`));
  }
  function tooltip(rowOf) {
    return {
      callbacks: {
        title: (items) => rowOf(items[0]).impl,
        label: (item) => tooltipLines(rowOf(item)),
      },
    };
  }

  // --- header ----------------------------------------------------------------------------
  function renderHeader({ run, rows, scenarios }) {
    document.getElementById("title").textContent = `rnnbench results: ${run.label}`;
    const count = (f) => rows.filter(f).length;
    const statuses = ["ok", "failed", "timeout", "skipped", "interrupted"]
      .map((s) => [s, count((r) => r.status === s)]).filter(([, n]) => n)
      .map(([s, n]) => `${n} ${s}`).join(", ");
    const ok = (f) => count((r) => r.status === "ok" && f(r));
    document.getElementById("tally").textContent =
      `Profile ${run.profile} \u00b7 ${scenarios.length} scenarios \u00d7 ` +
      `${new Set(rows.map((r) => r.impl)).size} implementations: ${statuses || "no results"} \u00b7 ` +
      `verified against the float64 reference: ${ok((r) => r.verified === true)} yes, ` +
      `${ok((r) => r.verified === false)} failed, ${ok((r) => r.verified === null)} not checked`;
    document.getElementById("unfinished").hidden = run.finished;
  }

  function renderSwitch() {
    const box = document.getElementById("view-switch");
    const select = document.getElementById("view");
    box.hidden = DATA.views.length < 2;
    select.replaceChildren(...DATA.views.map((v, k) => el("option", { value: k, text: v.label })));
    select.value = state.view;
    select.onchange = () => {
      state.view = Number(select.value);
      renderAll();
    };
  }

  // --- overview: the seed's two tables -----------------------------------------------------
  function scenarioLink(name) {
    return el("a", { href: `#scenario=${name}`, text: name, "data-scenario": name });
  }
  function statusOf(rows) {
    return [...new Set(rows.map((r) => r.status))].join(" / ");
  }
  function timeCell(r) {
    return [el("strong", { text: fmt(r.median_ms) }), r.flags.length ? ` ${FLAG}` : ""];
  }

  function renderFastest({ rows, scenarios, frameworks }) {
    const head = el("tr", {}, ...["Scenario", "Network", "Loss", "Masking"].map((h) => el("th", { text: h })),
      ...frameworks.map((f) => el("th", { class: "num" }, swatch(FRAMEWORK_COLOUR[f]), f)));
    const body = scenarios.map((s) => {
      const sc = SCENARIO[s];
      return el("tr", {}, el("td", {}, scenarioLink(s)), el("td", { text: sc.network }),
        el("td", { text: sc.loss }), el("td", { text: sc.masking ? "Yes" : "No" }),
        ...frameworks.map((f) => {
          const best = fastest(rows, s, f);
          if (!best) return el("td", { class: "num", text: statusOf(rows.filter((r) => r.scenario === s && r.framework === f)) });
          return el("td", { class: "num", title: tooltipLines(best).join("\n") },
            ...timeCell(best), el("br"), el("small", { text: best.impl }));
        }));
    });
    document.getElementById("fastest").replaceChildren(el("thead", {}, head), el("tbody", {}, ...body));

    const datasets = frameworks.map((f) => ({
      label: f,
      backgroundColor: FRAMEWORK_COLOUR[f],
      rows: scenarios.map((s) => fastest(rows, s, f) || null),
    }));
    for (const d of datasets) {
      // A gap is a point of nulls: the error-bar plugin cannot read a null point.
      d.data = d.rows.map((r) => (r ? { y: r.median_ms, yMin: r.ci_low_ms, yMax: r.ci_high_ms } : { y: null, yMin: null, yMax: null }));
    }
    draw("overview", document.getElementById("overview-chart"), {
      type: "barWithErrorBars",
      data: { labels: scenarios, datasets },
      options: {
        plugins: {
          title: { display: true, text: "Fastest implementation of each framework: median with 95% CI (log scale)" },
          tooltip: tooltip((item) => item.dataset.rows[item.dataIndex]),
        },
        scales: { y: { type: "logarithmic", ticks: LOG_TICKS, title: { display: true, text: "ms per step" } } },
      },
    });
  }

  function renderEvery({ rows }) {
    const name = DATA.second_table;
    document.getElementById("second-title").textContent = `${name}: every implementation`;
    const table = document.getElementById("every");
    const sel = rows.filter((r) => r.scenario === name);
    if (!sel.length) {
      table.replaceChildren(el("caption", { text: `${name} was not part of this run.` }));
      return;
    }
    const sc = SCENARIO[name];
    const head = el("tr", {}, ...["Network", "Loss", "Masking"].map((h) => el("th", { text: h })),
      ...sel.map((r) => el("th", { class: "num" }, swatch(DATA.impls[r.impl].colour), r.impl)));
    const body = el("tr", {}, el("td", { text: sc.network }), el("td", { text: sc.loss }),
      el("td", { text: sc.masking ? "Yes" : "No" }),
      ...sel.map((r) => (r.status === "ok"
        ? el("td", { class: "num", title: tooltipLines(r).join("\n") }, ...timeCell(r))
        : el("td", { class: "num", text: r.status }))));
    table.replaceChildren(el("thead", {}, head), el("tbody", {}, body));
  }

  // --- one scenario --------------------------------------------------------------------------
  function renderTabs({ scenarios }) {
    if (!scenarios.includes(state.scenario)) state.scenario = scenarios[0] || null;
    const tabs = scenarios.map((s) => el("button", {
      type: "button", role: "tab", text: s, "data-scenario": s, "aria-selected": String(s === state.scenario),
      onclick: () => selectScenario(s),
    }));
    document.getElementById("scenario-tabs").replaceChildren(...tabs);
  }

  function renderFilter({ frameworks }) {
    const boxes = frameworks.map((f) => {
      const input = el("input", { type: "checkbox", checked: !state.hidden.has(f), "data-framework": f });
      input.onchange = () => {
        if (input.checked) state.hidden.delete(f);
        else state.hidden.add(f);
        applyFilter(current());
      };
      return el("label", {}, input, " ", swatch(FRAMEWORK_COLOUR[f]), f);
    });
    const log = el("input", { type: "checkbox", checked: state.log, id: "log-scale" });
    log.onchange = () => {
      state.log = log.checked;
      renderBars(current());
    };
    document.getElementById("framework-filter").replaceChildren(
      el("strong", { text: "Frameworks:" }), ...boxes, el("label", {}, log, " log scale"));
  }

  const visible = (r) => !state.hidden.has(r.framework);

  function renderDescription({ rows }) {
    const sc = SCENARIO[state.scenario];
    const sel = rows.filter((r) => r.scenario === state.scenario && r.status === "ok");
    const parts = [sc.description || sc.name];
    if (sc.shape) {
      const s = sc.shape;
      parts.push(`(B, T, F) = (${s.batch}, ${s.time_steps}, ${s.features}), hidden ${s.hidden}`);
    }
    // One count, or the range precision-targeted stopping took across the runs.
    const span = (xs) => (Math.min(...xs) === Math.max(...xs) ? `${xs[0]}` : `${Math.min(...xs)}–${Math.max(...xs)}`);
    if (sel.length) {
      parts.push(`median of ${span(sel.map((r) => r.steps || 0))} measured steps after ` +
                 `${span(sel.map((r) => r.warmup || 0))} warm-up`);
    }
    const parameters = [...new Set(sel.map((r) => r.parameters).filter((p) => p !== null))];
    if (parameters.length) parts.push(`${parameters.map((p) => fmt(p, 0)).join(" / ")} parameters`);
    document.getElementById("scenario-desc").textContent = parts.join(" \u00b7 ");
  }

  function renderBars({ rows }) {
    const sel = okRows(rows.filter((r) => r.scenario === state.scenario && visible(r)));
    const box = document.getElementById("bars-box");
    box.style.height = `${70 + 24 * Math.max(sel.length, 1)}px`;
    draw("bars", document.getElementById("bars-chart"), {
      type: "barWithErrorBars",
      data: {
        labels: sel.map((r) => r.impl),
        datasets: [{
          label: state.scenario,
          data: sel.map((r) => ({ x: r.median_ms, xMin: r.ci_low_ms, xMax: r.ci_high_ms })),
          backgroundColor: sel.map((r) => DATA.impls[r.impl].colour),
        }],
      },
      options: {
        indexAxis: "y",
        plugins: {
          legend: { display: false },
          title: { display: true, text: `${state.scenario}: median time per step with 95% CI (hover for details)` },
          tooltip: tooltip((item) => sel[item.dataIndex]),
        },
        scales: {
          x: state.log ? { type: "logarithmic", ticks: LOG_TICKS, title: { display: true, text: "ms per step (log scale)" } }
            : { beginAtZero: true, title: { display: true, text: "ms per step" } },
        },
      },
    });
  }

  // Columns of the detail table: header, numeric (sorted as numbers), value and text.
  const COLUMNS = [
    ["#", true, (r) => r.rank, (r) => (r.rank === null ? DASH : String(r.rank))],
    ["implementation", false, (r) => r.impl, (r) => [swatch(DATA.impls[r.impl].colour), r.impl]],
    ["framework", false, (r) => r.framework],
    ["median", true, (r) => r.median_ms, (r) => (r.status === "ok" ? timeCell(r) : r.status)],
    ["95% CI", true, (r) => r.ci_low_ms, (r) => range(r.ci_low_ms, r.ci_high_ms)],
    [`p10${DASH}p90`, true, (r) => r.p10_ms, (r) => range(r.p10_ms, r.p90_ms)],
    ["\u00d7 fastest", true, (r) => r.ratio, (r) => fmt(r.ratio, 2)],
    ["steps", true, (r) => r.steps,
      (r) => fmt(r.steps, 0) + (r.stop_reason && r.stop_reason !== "precision" ? ` (${r.stop_reason})` : "")],
    ["CI \u00b1 %", true, (r) => r.ci_halfwidth_pct, (r) => fmt(r.ci_halfwidth_pct, 1)],
    ["spread of process medians %", true, (r) => r.process_spread_pct, (r) => fmt(r.process_spread_pct, 1)],
    ["first step", true, (r) => r.first_step_ms],
    ["GFLOP/s", true, (r) => r.gflops],
    ["efficiency %", true, (r) => r.efficiency_pct, (r) => fmt(r.efficiency_pct, 1)],
    ["RSS MiB", true, (r) => r.peak_rss_mib, (r) => fmt(r.peak_rss_mib, 0)],
    ["GPU MiB", true, (r) => r.peak_gpu_mib, (r) => fmt(r.peak_gpu_mib, 0)],
    ["verified", false, (r) => verifiedText(r.verified), (r) => (r.verified === null ? DASH : verifiedText(r.verified))],
    ["flags / reason", false, (r) => (r.status === "ok" ? r.flags.map((f) => `${FLAG} ${f}`).join("; ") : r.reason)],
  ];

  function renderDetail({ rows }) {
    const all = rows.filter((r) => r.scenario === state.scenario);
    const ok = okRows(all);
    ok.forEach((r, k) => { r.rank = k + 1; });
    const rest = all.filter((r) => r.status !== "ok");
    for (const r of rest) r.rank = null;
    const gpu = all.some((r) => r.peak_gpu_mib !== null);
    const processes = all.some((r) => r.process_spread_pct !== null);
    const columns = COLUMNS.filter(([h]) => (gpu || h !== "GPU MiB") && (processes || !h.startsWith("spread of process")));
    const head = el("tr", {}, ...columns.map(([h, num]) => el("th", num
      ? { class: "num", text: h, "data-sort-method": "number" } : { text: h })));
    const body = ok.concat(rest).map((r) => {
      const tr = el("tr", { "data-impl": r.impl, "data-framework": r.framework, class: r.status === "ok" ? "" : "failed" },
        ...columns.map(([h, num, value, text]) => {
          const v = value(r);
          const shown = text ? text(r) : num ? fmt(v) : v;
          const td = el("td", { class: num ? "num" : h === "flags / reason" ? "reason" : "" }, ...[].concat(shown));
          if (num) td.setAttribute("data-sort", v === null || v === undefined ? "" : String(v));
          if ((h === "verified" && r.verified === false) || (h === "median" && r.status !== "ok")) td.classList.add("bad");
          return td;
        }));
      // Failed, skipped and timed-out rows stay below the ones that ran, whatever the sort.
      if (r.status !== "ok") tr.setAttribute("data-sort-method", "none");
      return tr;
    });
    const table = el("table", { id: "detail" }, el("thead", {}, head), el("tbody", {}, ...body));
    document.getElementById("detail").replaceWith(table);
    new Tablesort(table);
  }

  function panel(run, r) {
    const steps = run.steps[`${r.scenario}/${r.impl}`];
    const warm = steps.warmup;
    const meas = steps.measure;
    const basis = meas.length ? meas : warm;
    const lo = Math.min(...basis);
    const hi = Math.max(...basis);
    const pad = (hi - lo) * 0.15 || hi * 0.05;
    const ymin = Math.max(0, lo - pad);
    const ymax = hi + pad;
    const outliers = new Set(steps.outliers);
    const point = (v, k, phase) => ({
      x: (phase === "measure" ? warm.length : 0) + k + 1,
      y: Math.min(Math.max(v, ymin), ymax),
      ms: v,
      loss: steps[`${phase}_loss`][k],
      phase,
      off: v > ymax || v < ymin,
      outlier: phase === "measure" && outliers.has(k),
    });
    const colour = DATA.impls[r.impl].colour;
    const canvas = el("canvas");
    const title = el("h4", {}, swatch(colour), r.impl, " ",
      el("small", { text: (r.status === "ok" ? `median ${fmt(r.median_ms)}` : r.status) + ` \u00b7 first step ${fmt(r.first_step_ms ?? warm[0] ?? null)}` }),
      outliers.size ? el("small", { text: ` \u00b7 ${outliers.size} outlier${outliers.size > 1 ? "s" : ""}` }) : null);
    const div = el("div", { class: "panel", "data-impl": r.impl, "data-framework": r.framework }, title,
      el("div", { class: "box" }, canvas));
    const annotations = {};
    if (warm.length) {
      annotations.warmup = {
        type: "box", xMin: 0.5, xMax: warm.length + 0.5, backgroundColor: "rgba(140,149,159,0.18)", borderWidth: 0,
      };
    }
    if (r.median_ms !== null) {
      annotations.median = { type: "line", yMin: r.median_ms, yMax: r.median_ms, borderColor: colour, borderWidth: 1, borderDash: [4, 3] };
    }
    const style = (ctx) => (ctx.raw && ctx.raw.off ? "triangle" : "circle");
    const fill = (ctx) => (ctx.raw && ctx.raw.outlier ? "#cf222e" : ctx.raw && ctx.raw.phase === "warmup" ? "#8c959f" : colour);
    return [div, () => draw(`panel:${r.impl}`, canvas, {
      type: "scatter",
      data: {
        datasets: [{
          data: warm.map((v, k) => point(v, k, "warmup")).concat(meas.map((v, k) => point(v, k, "measure"))),
          showLine: true, borderColor: colour, borderWidth: 1.2, clip: false,
          pointStyle: style, pointBackgroundColor: fill, pointBorderColor: fill,
          pointRadius: (ctx) => (ctx.raw && (ctx.raw.outlier || ctx.raw.off) ? 4.5 : 2.5),
        }],
      },
      options: {
        layout: { padding: { top: 6 } },
        plugins: {
          legend: { display: false },
          annotation: { annotations },
          tooltip: {
            callbacks: {
              title: (items) => `step ${items[0].raw.x} (${items[0].raw.phase === "warmup" ? "warm-up" : "measured"})`,
              label: (item) => {
                const p = item.raw;
                return `${fmt(p.ms)} ms` + (p.loss !== null && p.loss !== undefined ? `, loss ${fmt(p.loss, 4)}` : "") +
                  (p.outlier ? " (outlier)" : "") + (p.off ? " (off the panel's scale)" : "");
              },
            },
          },
        },
        scales: {
          x: { min: 0.5, max: warm.length + meas.length + 0.5, ticks: { precision: 0, maxTicksLimit: 8, includeBounds: false }, grid: { display: false } },
          y: { min: ymin, max: ymax, ticks: { maxTicksLimit: 5, includeBounds: false } },
        },
      },
    })];
  }

  function renderPanels({ run, rows }) {
    for (const name of Object.keys(charts)) {
      if (name.startsWith("panel:")) {
        charts[name].destroy();
        delete charts[name];
      }
    }
    const sel = rows.filter((r) => r.scenario === state.scenario && visible(r) && run.steps[`${r.scenario}/${r.impl}`]);
    const panels = sel.map((r) => panel(run, r));
    document.getElementById("panels").replaceChildren(...panels.map(([div]) => div));
    for (const [, show] of panels) show();
  }

  function applyFilter(view) {
    for (const tr of document.querySelectorAll("#detail tbody tr")) {
      tr.hidden = state.hidden.has(tr.getAttribute("data-framework"));
    }
    renderBars(view);
    renderPanels(view);
  }

  function renderScenario(view) {
    renderTabs(view);
    renderFilter(view);
    if (!state.scenario) return;
    renderDescription(view);
    renderDetail(view);
    applyFilter(view);
  }

  function selectScenario(name) {
    state.scenario = name;
    history.replaceState(null, "", `#scenario=${name}`);
    renderScenario(current());
  }

  // --- failures, flags and the environment ---------------------------------------------------
  function renderProblems({ rows }) {
    const items = [];
    for (const r of rows) {
      if (r.status !== "ok") items.push([r, r.status, r.reason || "(no reason recorded)"]);
      else for (const f of r.flags) items.push([r, `ok, ${FLAG}`, f]);
    }
    const table = el("table", { id: "problem-table" });
    if (items.length) {
      table.append(el("thead", {}, el("tr", {}, ...["scenario", "implementation", "status", "reason / flag"].map((h) => el("th", { text: h })))),
        el("tbody", {}, ...items.map(([r, status, text]) => el("tr", {}, el("td", {}, scenarioLink(r.scenario)),
          el("td", {}, swatch(DATA.impls[r.impl].colour), r.impl), el("td", { text: status }), el("td", { text })))));
    } else {
      table.append(el("caption", { text: "Every cell ran, passed its checks and was stable." }));
    }
    document.getElementById("problem-table").replaceWith(table);
    if (items.length) new Tablesort(table);
    const unverified = [...new Set(rows.filter((r) => r.status === "ok" && r.verified === null).map((r) => r.impl))];
    document.getElementById("unverified").replaceChildren(...(unverified.length
      ? ["Not verified against the float64 reference (run ", el("code", { text: "rnnbench verify" }),
        `): ${unverified.join(", ")}.`] : []));
  }

  function renderEnvironment({ run, frameworks }) {
    document.getElementById("env").replaceChildren(el("tbody", {},
      ...run.environment.map(([k, v]) => el("tr", {}, el("td", { text: k }), el("td", { text: v })))));
    document.getElementById("versions").replaceChildren(
      el("thead", {}, el("tr", {}, el("th", { text: "framework" }), el("th", { text: "versions" }))),
      el("tbody", {}, ...frameworks.map((f) => el("tr", {}, el("td", {}, swatch(FRAMEWORK_COLOUR[f]), f),
        el("td", { text: (run.versions[f] || []).join(" / ") || "?" })))));
  }

  function renderAll() {
    const view = current();
    renderHeader(view);
    renderFastest(view);
    renderEvery(view);
    renderScenario(view);
    renderProblems(view);
    renderEnvironment(view);
  }

  // A link #scenario=NAME (the overview's scenario names, a bookmark) opens that scenario.
  function followHash() {
    const m = /^#scenario=(.+)$/.exec(location.hash);
    if (m && SCENARIO[decodeURIComponent(m[1])]) {
      selectScenario(decodeURIComponent(m[1]));
      document.getElementById("scenarios").scrollIntoView();
    }
  }

  document.getElementById("outlier-rule").textContent =
    `a measured step more than ${DATA.outliers.iqr}\u00d7 the interquartile range beyond the quartiles ` +
    `and more than ${100 * DATA.outliers.min_rel}% from the median`;
  renderSwitch();
  renderAll();
  window.addEventListener("hashchange", followHash);
  followHash();
  window.rnnbench = { data: DATA, state, charts };
})();
