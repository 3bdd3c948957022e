"""The results page: one self-contained HTML file to explore a run in a browser.

``write_html(results, path)`` embeds the run as JSON and inlines the page's own script and
style (``static/page.*``) with the vendored libraries (``static/vendor/``: Chart.js with its
error-bar and annotation plugins, tablesort), so that the file opens from disk with no
network. The page shows the seed's two tables, a sortable detail table per scenario
filterable by framework, bar charts of the median with its 95% CI (hover for the details),
every step of every implementation in a small panel (warm-up shaded, outliers marked), the
failures and flags, and the environment. All times are milliseconds.

The embedded document (``page_data``) is a list of runs and a list of *views*: a view is
one run, optionally restricted to one value of a column that differs between its rows
(``SWITCH_COLUMNS``, e.g. the device); the page offers a switch when there are several.
Passing several ``Results`` (machines, modes) gives one view per run.

    from rnnbench.analysis import load
    from rnnbench.report_html import write_html
    write_html(load("results/2025-06-02T12-00-00"), "report.html")
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from . import fmt
from .analysis import SECOND_TABLE_SCENARIO, Results, flags, network
from .impls import IMPLEMENTATIONS, colour, family_colour
from .scenarios import SCENARIOS

SCHEMA = "rnnbench.page/1"
STATIC = files("rnnbench") / "static"
# Inlined in this order: the error-bar and annotation plugins and tablesort's number
# parser register themselves with the library loaded before them.
VENDOR = ("chart.umd.min.js", "chartjs-chart-error-bars.umd.min.js",
          "chartjs-plugin-annotation.min.js", "tablesort.min.js", "tablesort.number.min.js")
# Summary columns whose distinct values become views of one run (add a column here when
# runs record one, e.g. a mode).
SWITCH_COLUMNS = ("device", "timed")
# A measured step is an outlier outside the Tukey fences (1.5 IQR beyond the quartiles)
# and more than OUTLIER_MIN_REL from the median: tiny spreads do not make every wobble one.
OUTLIER_IQR = 1.5
OUTLIER_MIN_REL = 0.10

_MS = {"median_s": "median_ms", "ci_low_s": "ci_low_ms", "ci_high_s": "ci_high_ms",
       "p10_s": "p10_ms", "p90_s": "p90_ms", "first_step_s": "first_step_ms"}
_INTS = ("steps", "warmup", "parameters")


def write_html(results: Results | Sequence[Results], path: str | Path) -> Path:
    """Write the page for one run (or several, with a switch between them) to ``path``."""
    path = Path(path)
    path.write_text(render(results), encoding="utf-8")
    return path


def render(results: Results | Sequence[Results]) -> str:
    """The page as one HTML string."""
    runs = [results] if isinstance(results, Results) else list(results)
    data = page_data(runs)
    title = "rnnbench: " + " / ".join(r.run_id for r in runs)
    page = (STATIC / "page.html").read_text(encoding="utf-8")
    parts = {
        "title": _escape_html(title),
        "style": (STATIC / "page.css").read_text(encoding="utf-8"),
        "vendor": "\n".join(_vendor(name) for name in VENDOR),
        "data": json_for_script(data),
        "app": (STATIC / "page.js").read_text(encoding="utf-8"),
    }
    from .scaling_report import html as scaling_html  # sweeps: charts and fitted models, before the failures

    parts["scaling"] = "".join(map(scaling_html, runs))
    if all(r.meta.get("timed") == "forward" for r in runs):  # --mode forward: what the times are
        page = page.replace("per training step\n    (forward, loss, backward, Adam update on one fixed batch)",
                            "per forward pass\n    (the loss only, no backward or update: --mode forward)")
    page = page.replace('<section id="problems">', '{{scaling}}<section id="problems">', 1)
    # One pass, so that a placeholder-like text inside an inlined part stays as it is.
    return re.sub(r"\{\{(\w+)\}\}", lambda m: parts[m.group(1)], page)


def _vendor(name: str) -> str:
    text = (STATIC / "vendor" / name).read_text(encoding="utf-8")
    # The source maps are not shipped: a reference to one would be a failed request.
    return re.sub(r"^//# sourceMappingURL=.*$", "", text, flags=re.M)


def json_for_script(data: Any) -> str:
    """JSON that cannot end or alter the <script> element it is inlined in, whatever text
    (an error message, say) it holds: <, > and & only occur inside strings, as escapes."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _escape_html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- the embedded document ------------------------------------------------------------------

def page_data(runs: Sequence[Results]) -> dict[str, Any]:
    """Everything the page shows, JSON-ready: times in ms, counts as integers, booleans
    as true/false/null, efficiency in percent, no NaN (null instead)."""
    scenarios = list(dict.fromkeys(s for r in runs for s in r.scenarios))
    impls = list(dict.fromkeys(i for r in runs for i in r.summary["impl"]))
    frameworks = list(dict.fromkeys(f for r in runs for f in r.frameworks))
    return {
        "schema": SCHEMA,
        "unit": "ms",
        "second_table": SECOND_TABLE_SCENARIO,
        "runs": [_run(r, len(runs) > 1) for r in runs],
        "views": views(runs),
        "scenarios": [_scenario(runs, s) for s in scenarios],
        "frameworks": [{"name": f, "colour": family_colour(f)} for f in frameworks],
        "impls": {i: {"colour": colour(i),
                      "description": IMPLEMENTATIONS[i].description if i in IMPLEMENTATIONS else ""}
                  for i in impls},
        "outliers": {"iqr": OUTLIER_IQR, "min_rel": OUTLIER_MIN_REL},
    }


def views(runs: Sequence[Results]) -> list[dict[str, Any]]:
    """One view per run, split by each SWITCH_COLUMNS column whose ok rows hold several
    values (rows with no value belong to every view of their run)."""
    out = []
    for k, r in enumerate(runs):
        label = _run_label(r) if len(runs) > 1 else ""
        column, values = _split(r)
        if values:
            out += [{"label": " \u00b7 ".join(x for x in (label, f"{column} {v}") if x),
                     "run": k, "filter": {column: v}} for v in values]
        else:
            out.append({"label": label or r.run_id, "run": k, "filter": {}})
    return out


def _split(r: Results) -> tuple[str, list[str]]:
    """The first SWITCH_COLUMNS column whose ok rows hold several values, and those values."""
    for column in SWITCH_COLUMNS:
        values = [v for v in dict.fromkeys(r.ok[column]) if v] if column in r.summary else []
        if len(values) > 1:
            return column, values
    return "", []


def _run_label(r: Results) -> str:
    cpu = (r.meta.get("machine") or {}).get("cpu")
    return f"{r.run_id} ({cpu})" if cpu else r.run_id


def _run(r: Results, several: bool) -> dict[str, Any]:
    return {
        "run_id": r.run_id,
        "label": _run_label(r) if several else r.run_id,
        "profile": r.profile,
        "finished": bool(r.meta.get("finished")) and not r.meta.get("interrupted"),
        "rows": [row_record(row) for _, row in r.summary.iterrows()],
        "steps": steps_records(r),
        "environment": environment(r),
        "versions": {f: sorted({v for v in r.summary.loc[r.summary["framework"] == f, "version"] if v})
                     for f in r.frameworks},
    }


def _scenario(runs: Sequence[Results], name: str) -> dict[str, Any]:
    network_text, loss, masking = network(name)
    return {
        "name": name,
        "description": SCENARIOS[name].description if name in SCENARIOS else "",
        "network": network_text,
        "loss": loss,
        "masking": masking == "Yes",
        "shape": next((sh for r in runs if name in r.scenarios and (sh := r.shape(name))), None),
    }


def _number(v: Any) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) or math.isinf(v) else v


def _truth(v: Any) -> bool | None:
    """One boolean spelling for the page, whichever the loader hands over."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    return {"yes": True, "true": True, "no": False, "false": False}.get(str(v).strip().lower())


def row_record(row) -> dict[str, Any]:
    """One summary row as the page embeds it."""
    rec: dict[str, Any] = {k: str(row.get(k) or "") for k in
                           ("scenario", "impl", "framework", "version", "status", "reason", "checks",
                            "device", "stop_reason")}
    for src, dst in _MS.items():
        v = _number(row.get(src))
        rec[dst] = None if v is None else v * 1e3
    for k in _INTS:
        v = _number(row.get(k))
        rec[k] = None if v is None else int(v)
    rec["gflops"] = _number(row.get("gflops"))
    rec["efficiency_pct"] = _number(row.get("efficiency_pct"))
    rec["peak_rss_mib"] = _number(row.get("peak_rss_mib"))
    rec["peak_gpu_mib"] = _number(row.get("peak_gpu_mib"))
    rec["ci_halfwidth_pct"] = _number(row.get("ci_halfwidth_pct"))
    rec["process_spread_pct"] = _number(row.get("process_spread_pct"))
    rec["stable"] = _truth(row.get("stable"))
    rec["verified"] = _truth(row.get("verified"))
    rec["flags"] = flags(row)
    return rec


def outliers(ms: Sequence[float]) -> list[int]:
    """Indices of the outliers among measured step times (see OUTLIER_IQR)."""
    t = np.asarray(ms, dtype=float)
    if t.size < 4:
        return []
    q1, med, q3 = np.percentile(t, [25, 50, 75])
    fence = OUTLIER_IQR * (q3 - q1)
    out = ((t < q1 - fence) | (t > q3 + fence)) & (np.abs(t - med) > OUTLIER_MIN_REL * med)
    return [int(k) for k in np.flatnonzero(out)]


def steps_records(r: Results) -> dict[str, dict[str, Any]]:
    """"scenario/impl" -> warm-up and measured step times (ms) and losses, in step order,
    with the measured outliers."""
    out: dict[str, dict[str, Any]] = {}
    s = r.steps.sort_values(["scenario", "impl", "phase", "step"], kind="stable")
    for (scenario, impl), g in s.groupby(["scenario", "impl"], sort=False):
        rec: dict[str, Any] = {}
        for phase in ("warmup", "measure"):
            p = g[g["phase"] == phase]
            rec[phase] = [round(float(v) * 1e3, 6) for v in p["runtime_s"]]
            rec[phase + "_loss"] = [_number(v) for v in p["loss"]] if "loss" in p else []
        rec["outliers"] = outliers(rec["measure"])
        out[f"{scenario}/{impl}"] = rec
    return out


def environment(r: Results) -> list[list[str]]:
    """[label, text] pairs: what the numbers belong to."""
    m = r.meta
    machine = m.get("machine") or {}
    git = m.get("git") or {}
    gemm = m.get("gemm") or {}
    s = r.summary
    ok = r.ok
    started = m.get("started") or "?"
    finished = m.get("finished") if not m.get("interrupted") else None
    items = [
        ["run", r.run_id],
        ["date", f"{started} \u2192 {finished}" if finished else f"{started}, did not finish (partial results)"],
        ["command", " ".join(map(str, m.get("argv") or [])) or "?"],
        ["profile", r.profile],
    ]
    steps, warm = s["steps"].dropna(), s["warmup"].dropna()
    if len(steps):
        items.append(["steps", f"{fmt.span(warm) if len(warm) else '?'} warm-up + {fmt.span(steps)} measured"])
    cores = machine.get("cores")
    items += [
        ["CPU", f"{machine.get('cpu', '?')}" + (f", {cores} cores" if cores else "")],
        ["platform", f"{machine.get('platform', '?')}, Python {machine.get('python', '?')}"],
        ["device", f"requested {m.get('device', '?')}; used "
                   + (", ".join(sorted({d for d in ok["device"] if d})) or "?")],
        ["threads", str(m.get("threads", "?"))],
        ["flush denormals", {True: "on", False: "off"}.get(m.get("flush_denormal"), "?")],
        ["GEMM rate", (f"{gemm['gflops']:.1f} GFLOP/s (float32 {gemm.get('n', '?')}\u00b2 matrix product, "
                       f"{gemm.get('threads', '?')} threads, {gemm.get('library', '?')}); "
                       "efficiency = a step's GFLOP/s \u00f7 this rate")
         if gemm.get("gflops") else "not measured"],
        ["rnnbench", f"{m.get('rnnbench', '?')}, git {git.get('revision') or '?'}"
                     + (" (dirty)" if git.get("dirty") else "")],
    ]
    return items
