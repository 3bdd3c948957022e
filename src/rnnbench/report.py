"""The Markdown report of a results directory: DIR/report.md with its charts in DIR/plots/.

Sections: the seed's two tables (each framework's fastest implementation per scenario;
the 1x320 LSTM across every implementation), a detail table per scenario (95% CI, ratio
to the fastest, cost against the measured GEMM rate, memory, first-step time,
verification, flags), the failures and flags, and the environment the numbers belong to.

    from rnnbench.report import write_report
    write_report("results/2025-06-02T12-00-00")   # -> Path to report.md
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from . import fmt, then_now
from .analysis import SECOND_TABLE_SCENARIO, Results, flags, framework_key, load, network
from .errors import ResultsError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

UNSTABLE_MARK = "\u26a0"  # shown next to a headline number that carries a flag


def write_report(directory: str | Path, *, plots: bool = True) -> Path:
    """Write DIR/report.md, DIR/report.html (the results page, ``rnnbench.report_html``)
    and the charts into DIR/plots/ unless ``plots`` is False; returns report.md's path.
    Raises :class:`rnnbench.errors.ResultsError` for an unreadable directory, and for one
    it cannot write into (read-only, full, or a file where a folder should be)."""
    from . import machines

    if machines.node_dirs(directory):  # --every-node: each machine's report, and the machines section
        for d in machines.node_dirs(directory):
            write_report(d, plots=plots)
        return machines.write_report(directory)
    results = load(directory)
    path = results.path / "report.md"
    try:
        charts: dict[str, Path] = {}
        if plots:
            from .plots import write_plots

            charts = write_plots(results)
            charts["then_and_now"] = then_now.write_chart(results, results.path / "plots" / "then_and_now.png")
        path.write_text(render(results, charts), encoding="utf-8")
        from .report_html import write_html  # imports this module: keep it here

        write_html(results, results.path / "report.html")
    except OSError as e:
        where = e.filename or path
        raise ResultsError(f"{where}: cannot write the report ({e.strerror or e}); "
                           "copy the results directory somewhere writable and report that") from None
    return path


# --- formatting ---------------------------------------------------------------------------

def _cell(text: str) -> str:
    """Make text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    align = align or ["l"] * len(header)
    sep = [{"l": ":---", "r": "---:", "c": ":---:"}[a] for a in align]
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _verified(row) -> str:
    return {"yes": "yes", "no": "**NO**"}.get(str(row.get("verified") or ""), "not checked")


def _status_cell(rows: "pd.DataFrame") -> str:
    if rows.empty:
        return ""
    statuses = list(dict.fromkeys(rows["status"]))
    return " / ".join(statuses)


def _rel(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


# --- sections -----------------------------------------------------------------------------

def _framework_table(results: Results) -> str:
    s = results.summary
    frameworks = results.frameworks
    best = results.fastest_by_framework()
    rows = []
    for scenario in results.scenarios:
        net, loss, masking = network(scenario)
        cells = [f"[{scenario}](#{scenario})", net, loss, masking]
        for fw in frameworks:
            b = best[(best["scenario"] == scenario) & (best["framework"] == fw)]
            if len(b):
                r = b.iloc[0]
                mark = f" {UNSTABLE_MARK}" if flags(r) else ""
                cells.append(f"{fmt.seconds(r['median_s'])} ({r['impl']}){mark}")
            else:
                cells.append(_status_cell(s[(s["scenario"] == scenario) & (s["framework"] == fw)]))
        rows.append(cells)
    header = ["Scenario", "Network", "Loss", "Masking"] + frameworks
    return _table(header, rows, ["l", "l", "l", "c"] + ["r"] * len(frameworks))


def _impl_table(results: Results, scenario: str) -> str:
    rows = results.rows(scenario)
    net, loss, masking = network(scenario)
    cells = [net, loss, masking]
    for _, r in rows.iterrows():
        if r["status"] == "ok":
            mark = f" {UNSTABLE_MARK}" if flags(r) else ""
            cells.append(f"{fmt.seconds(r['median_s'])}{mark}")
        else:
            cells.append(r["status"])
    header = ["Network", "Loss", "Masking"] + list(rows["impl"])
    return _table(header, [cells], ["l", "l", "c"] + ["r"] * len(rows))


def _shape_text(results: Results, scenario: str) -> str:
    shape = results.shape(scenario)
    if not shape:
        return ""
    return (f"(B, T, F) = ({shape['batch']}, {shape['time_steps']}, {shape['features']}), "
            f"hidden {shape['hidden']}")


def _detail(results: Results, scenario: str, charts: dict[str, Path]) -> str:
    from .scenarios import SCENARIOS

    rows = results.rows(scenario)
    ok = rows[rows["status"] == "ok"].sort_values("median_s", kind="stable")
    rest = rows[rows["status"] != "ok"]
    gpu = rows["peak_gpu_mib"].notna().any()
    desc = SCENARIOS[scenario].description if scenario in SCENARIOS else ""
    parts = [f"### {scenario}", ""]
    line = [x for x in (desc, _shape_text(results, scenario)) if x]
    steps = ok["steps"].dropna()
    warm = ok["warmup"].dropna()
    if len(steps):
        line.append(f"median of {fmt.span(steps)} measured steps after {fmt.span(warm)} warm-up")
    if line:
        parts += [" \u00b7 ".join(line), ""]
    if f"bars:{scenario}" in charts:
        parts += [f"![{scenario}: median time per step]({_rel(charts[f'bars:{scenario}'], results.path)})", ""]

    processes = "processes" in ok and bool((ok["processes"].fillna(1) > 1).any())
    header = ["#", "implementation", "framework", "median per step", "95% CI", "p10\u2013p90", "steps (stopped by)"]
    if processes:
        header += ["processes: spread of medians", "CI within one"]
    header += ["\u00d7 fastest", "GFLOP/s", "efficiency", "first step", "peak RSS MiB"]
    if gpu:
        header.append("peak GPU MB")
    header += ["parameters", "verified", "flags / reason"]
    table = []
    for k, (_, r) in enumerate(ok.iterrows(), 1):
        median = r["median_s"]
        cells = [str(k), r["impl"], r["framework"], fmt.seconds(median),
                 fmt.interval(r["ci_low_s"], r["ci_high_s"], median),
                 fmt.interval(r["p10_s"], r["p90_s"], median), _stopped(r)]
        if processes:
            cells += [fmt.percent(r.get("process_spread_pct")), fmt.spread(r.get("process_ci_pct"))]
        cells += [fmt.ratio(r["ratio"]), fmt.number(r["gflops"]), fmt.percent(r["efficiency_pct"]),
                 fmt.first_step(r["first_step_s"], r.get("cache_state")), fmt.number(r["peak_rss_mib"])]
        if gpu:
            cells.append(fmt.number(r["peak_gpu_mib"]))
        f = flags(r)
        cells += [fmt.count(r["parameters"]), _verified(r),
                  "; ".join(f"{UNSTABLE_MARK} {x}" for x in f)]
        table.append(cells)
    for _, r in rest.iterrows():
        cells = ["\u2013", r["impl"], r["framework"], f"**{r['status']}**"] + ["" for _ in header[4:-1]]
        cells.append(r["reason"] or "(no reason recorded)")
        table.append(cells)
    align = ["r", "l", "l"] + ["r"] * (len(header) - 6) + ["c", "c", "l"]
    parts += [_table(header, table, align), ""]
    if f"steps:{scenario}" in charts:
        parts += [f"![{scenario}: time of every step]({_rel(charts[f'steps:{scenario}'], results.path)})", ""]
    return "\n".join(parts)


def _stopped(r) -> str:
    """How many steps a run measured and why it stopped there: "8 (fixed)", "37 (±1.9%)"
    (precision reached, with the CI half-width achieved), "500 (max-steps, ±2.6%)"."""
    reason, width = r.get("stop_reason"), r.get("ci_halfwidth_pct")
    why = [reason] if isinstance(reason, str) and reason not in ("", "precision") else []
    if reason in ("precision", "max-steps", "max-time") and not fmt.missing(width):
        why.append(fmt.spread(width))
    return fmt.count(r["steps"]) + (f" ({', '.join(why)})" if why else "")


def _problems(results: Results) -> str:
    s = results.summary
    rows = []
    for _, r in s.iterrows():
        if r["status"] != "ok":
            rows.append([r["scenario"], r["impl"], f"**{r['status']}**", r["reason"] or "(no reason recorded)"])
        else:
            for f in flags(r):
                rows.append([r["scenario"], r["impl"], f"ok, {UNSTABLE_MARK}", f])
    unchecked = s[(s["status"] == "ok") & ~s["verified"].isin(["yes", "no"])]
    out = []
    if rows:
        out.append(_table(["scenario", "implementation", "status", "reason / flag"], rows))
    else:
        out.append("Every cell ran, passed its checks and was stable.")
    if len(unchecked):
        names = ", ".join(sorted(set(unchecked["impl"]), key=lambda n: n))
        out.append("")
        out.append(f"Not verified against the float64 reference (run `rnnbench verify`): {names}.")
    return "\n".join(out)


def _plural(n, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _duration(meta: dict) -> str:
    try:
        a = datetime.fromisoformat(str(meta["started"]))
        b = datetime.fromisoformat(str(meta["finished"]))
    except (KeyError, TypeError, ValueError):
        return ""
    minutes = (b - a).total_seconds() / 60
    return f" ({minutes:.1f} min)"


def _environment(results: Results) -> str:
    from .scenarios import PROFILES

    m = results.meta
    s = results.summary
    machine = m.get("machine") or {}
    git = m.get("git") or {}
    gemm = m.get("gemm") or {}
    items: list[tuple[str, str]] = []
    items.append(("run", f"`{results.run_id}`"))
    started = m.get("started") or "?"
    if m.get("finished") and not m.get("interrupted"):
        items.append(("date", f"{started} \u2192 {m['finished']}{_duration(m)}"))
    else:
        items.append(("date", f"{started}, **did not finish** (interrupted: partial results)"))
    if m.get("argv"):
        items.append(("command", "`" + " ".join(map(str, m["argv"])) + "`"))
    profile = results.profile
    desc = PROFILES[profile].description if profile in PROFILES else ""
    done = s[s["status"] == "ok"]  # a failed or timed-out run stopped short
    steps, warm = done["steps"].dropna(), done["warmup"].dropna()
    counts = ""
    if len(steps):
        counts = f"; {fmt.span(warm)} warm-up + {fmt.span(steps)} measured steps"
    items.append(("profile", f"{profile}" + (f": {desc}" if desc else "") + counts))
    shapes = {sc: _shape_text(results, sc) for sc in results.scenarios}
    if len(set(shapes.values())) == 1:
        items.append(("shapes", next(iter(shapes.values())) or "?"))
    else:
        items.append(("shapes", "; ".join(f"{k}: {v}" for k, v in shapes.items())))
    cpu = machine.get("cpu", "?")
    cores = machine.get("cores")
    items.append(("CPU", f"{cpu}" + (f", {cores} cores" if cores else "")))
    items.append(("platform", f"{machine.get('platform', '?')}, Python {machine.get('python', '?')}"))
    ok = s[s["status"] == "ok"]
    devices = sorted({d for d in ok["device"] if d}) or ["?"]
    names = sorted({d for d in ok["device_name"] if d and d not in devices})
    items.append(("device", f"requested {m.get('device', '?')}; used {', '.join(devices)}"
                  + (f" ({', '.join(names)})" if names else "")))
    items.append(("threads", str(m.get("threads", "?"))))
    fd = m.get("flush_denormal")
    items.append(("flush denormals", {True: "on", False: "**off**"}.get(fd, "?")))
    if gemm.get("gflops"):
        items.append(("GEMM rate", f"{fmt.number(gemm['gflops'])} GFLOP/s (float32 {gemm.get('n', '?')}\u00b2 matrix "
                      f"product, {_plural(gemm.get('threads', '?'), 'thread')}, {gemm.get('library', '?')}); "
                      "efficiency = achieved GFLOP/s of a step \u00f7 this rate"))
    else:
        items.append(("GEMM rate", "not measured"))
    rev = git.get("revision") or "?"
    items.append(("rnnbench", f"{m.get('rnnbench', '?')}, git {rev}" + (" (dirty)" if git.get("dirty") else "")))
    versions = []
    for fw in results.frameworks:
        v = sorted({x for x in s[s["framework"] == fw]["version"] if x})
        versions.append([fw, " / ".join(v) if v else "?"])
    return (_table(["", ""], [[f"**{k}**", v] for k, v in items]) + "\n\n"
            + _table(["framework", "versions"], versions))


def render(results: Results, charts: dict[str, Path] | None = None) -> str:
    """The report as Markdown text (charts: the paths write_plots returned)."""
    charts = charts or {}
    s = results.summary
    n_ok = int((s["status"] == "ok").sum())
    counts = s["status"].value_counts()
    tally = ", ".join(f"{int(counts[k])} {k}" for k in ("ok", "failed", "timeout", "skipped", "interrupted")
                      if k in counts)
    out = [f"# rnnbench report: {results.run_id}", ""]
    out += [f"Profile **{results.profile}** \u00b7 {len(results.scenarios)} scenarios \u00d7 "
            f"{s['impl'].nunique()} implementations: {tally or 'no results'}.", ""]
    timed = ("forward pass (the loss only, no backward or update: --mode forward)"
             if results.meta.get("timed") == "forward" else "training step (forward, loss, backward, Adam update)")
    out += [f"Median wall-clock time per {timed} on one fixed batch, warm-up steps excluded; lower is better. "
            f"{UNSTABLE_MARK} marks a number with a flag (failed checks, unstable timing or failed "
            "verification): see the scenario's detail table.", ""]
    if not results.meta.get("finished") or results.meta.get("interrupted"):
        out += ["> **This run did not finish**: the tables hold the cells that completed.", ""]
    if n_ok == 0:
        out += ["No cell ran successfully.", ""]

    out += ["## Fastest implementation per framework", ""]
    if len(s):
        out += ["Each cell: the median time per step of that framework's fastest implementation that ran "
                "(which one in parentheses); otherwise the status of its implementations.", ""]
        out += [_framework_table(results), ""]
    if "overview" in charts:
        out += [f"![fastest implementation per framework]({_rel(charts['overview'], results.path)})", ""]

    out += [f"## {SECOND_TABLE_SCENARIO}: every implementation", ""]
    if SECOND_TABLE_SCENARIO in results.scenarios:
        out += [_impl_table(results, SECOND_TABLE_SCENARIO), ""]
    else:
        out += [f"{SECOND_TABLE_SCENARIO} was not part of this run.", ""]

    out += then_now.section(results, charts.get("then_and_now"))  # only where the 2017 stack ran

    out += ["## Scenarios in detail", ""]
    out += ["*95% CI*: bootstrap confidence interval of the median; *p10\u2013p90*: the spread of the "
            "measured steps; *\u00d7 fastest*: median over the scenario's fastest median; "
            "*GFLOP/s*: analytic matrix-product FLOPs per step \u00f7 median; *efficiency*: that over the "
            "GEMM rate measured in the same run; *first step*: the first warm-up step (compilation, "
            "tracing, allocation), with what the compile cache held for the run's compiles: *cold* (all "
            "compiled anew; `rnnbench run --fresh-cache` makes every run so), *partly cold*, *warm* (all "
            "found in the cache) or *no disk cache* (the framework compiles in memory, in every run); "
            "*peak RSS*: the worker process's peak memory; *verified*: one step "
            "on tiny shapes matches the float64 NumPy reference.", ""]
    for scenario in results.scenarios:
        out += [_detail(results, scenario, charts), ""]

    from .scaling_report import markdown as scaling_section

    out += scaling_section(results, charts, lambda p: _rel(p, results.path), _table)
    out += ["## Failures, skips and flags", "", _problems(results), ""]
    out += ["## Environment", "", _environment(results), ""]
    return "\n".join(out).rstrip() + "\n"
