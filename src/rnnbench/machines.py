"""The machines section: how the same matrix ran on each machine of an ``--every-node``
run (``rnnbench run --executor ray --every-node``), which writes ``DIR/<node>/``, one
complete results directory per node, and ``DIR/nodes.json`` naming them.

Per scenario: each machine's fastest implementation and its median, and each machine's
time over the fastest machine's (1.00x: the fastest; the ratio compares the machines at
their best, whatever implementation that takes on each). Above it, what each machine is:
CPU, cores, flags, memory, GPUs and the GEMM rate measured on it.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from . import fmt
from .analysis import Results, load

NODES_FILE = "nodes.json"


def node_dirs(directory: str | Path) -> list[Path]:
    """The machines' results directories of an --every-node directory; [] for any other."""
    path = Path(directory)
    try:
        return [path / name for name in json.loads((path / NODES_FILE).read_text())["nodes"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def fastest(r: Results) -> dict[str, tuple[str, float]]:
    """scenario -> (implementation, median seconds) of the fastest ok run on this machine."""
    ok = r.summary[r.summary["status"] == "ok"]
    best = ok.loc[ok.groupby("scenario")["median_s"].idxmin()]
    return {row.scenario: (row.impl, float(row.median_s)) for row in best.itertuples()}


def tables(runs: dict[str, Results]) -> list[tuple[str, list[list[str]]]]:
    """(title, rows with a header first) of the machines and of the scenarios."""
    about = [["machine", "CPU", "cores", "flags", "memory", "GPUs", "GEMM GFLOP/s"]]
    for name, r in runs.items():
        m = r.meta.get("machine") or {}
        memory = f"{m['memory_gib']:g} GiB" if m.get("memory_gib") else "?"
        about.append([name, str(m.get("cpu", "?")), str(m.get("cores", "?")), ", ".join(m.get("cpu_flags") or []),
                      memory, ", ".join(m.get("gpus") or []) or "none",
                      fmt.number((r.meta.get("gemm") or {}).get("gflops"))])
    best = {name: fastest(r) for name, r in runs.items()}
    scenarios = list(dict.fromkeys(s for r in runs.values() for s in r.scenarios))
    per = [["scenario", *runs]]
    for s in scenarios:
        top = min((b[s][1] for b in best.values() if s in b), default=None)
        per.append([s, *(f"{b[s][0]} {fmt.seconds(b[s][1])} ({fmt.ratio(b[s][1] / top)})" if s in b else "no ok run"
                         for b in best.values())])
    return [("Machines", about), ("Fastest implementation per machine (median per step, time over the fastest "
                                  "machine's)", per)]


def markdown(runs: dict[str, Results]) -> str:
    out = ["## Machines", "", "The same matrix on each machine; each machine's own report is in its directory.", ""]
    for title, rows in tables(runs):
        cells = [[str(c).replace("|", "\\|") for c in row] for row in rows]
        out += [f"### {title}", "", "| " + " | ".join(cells[0]) + " |", "|" + " --- |" * len(cells[0])]
        out += ["| " + " | ".join(row) + " |" for row in cells[1:]] + [""]
    out += [f"- [{name}]({name}/report.md)" for name in runs]
    return "\n".join(out) + "\n"


def page(runs: dict[str, Results]) -> str:
    parts = ["<!doctype html><meta charset='utf-8'><title>rnnbench: machines</title><h2>Machines</h2>"]
    for title, rows in tables(runs):
        head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
        parts.append(f"<h3>{html.escape(title)}</h3><table><tr>{head}</tr>{body}</table>")
    parts.append("<ul>" + "".join(f"<li><a href='{html.escape(n)}/report.html'>{html.escape(n)}</a></li>"
                                  for n in runs) + "</ul>")
    return "\n".join(parts) + "\n"


def write_report(directory: str | Path) -> Path:
    """DIR/report.md and DIR/report.html with the machines section; returns report.md's path."""
    path = Path(directory)
    runs = {d.name: load(d) for d in node_dirs(path)}
    (path / "report.html").write_text(page(runs), encoding="utf-8")
    (path / "report.md").write_text(markdown(runs), encoding="utf-8")
    return path / "report.md"
