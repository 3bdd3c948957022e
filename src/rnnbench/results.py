"""Result documents and files (framework-free).

A results directory holds:

* ``meta.json``: the invocation (schema ``rnnbench.meta/1``): run id, profile, machine,
  git revision, thread and denormal settings, the GEMM rate, the selection.
* ``runs/<scenario>__<impl>.json``: one document per (scenario, implementation) run
  (schema ``rnnbench.run/1``) with every field of its summary row, the raw steps
  (``step_log``: phase, step, runtime_s, loss) and the
  worker's metadata (versions, runtime settings, source hash, verification errors).
* ``results.csv``: long format, one row per step (warm-up and measured).
* ``summary.csv``: one row per (scenario, implementation).
* ``logs/<scenario>__<impl>.log``: the worker's stderr.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from .errors import ResultsError

META_SCHEMA = "rnnbench.meta/1"
RUN_SCHEMA = "rnnbench.run/1"

STEP_COLUMNS = ["run_id", "scenario", "impl", "framework", "version", "parameters",
                "phase", "step", "runtime_s", "loss"]
SUMMARY_COLUMNS = [
    "run_id", "profile", "scenario", "impl", "framework", "version", "status", "reason",
    "median_s", "p10_s", "p90_s", "mean_s", "stdev_s", "ci_low_s", "ci_high_s",
    "first_step_s", "steps", "warmup", "gflops", "efficiency", "peak_rss_mb", "peak_gpu_mb",
    "parameters", "checks", "stable", "verified", "device", "device_name", "threads",
    "flush_denormal", "batch", "time_steps", "features", "hidden",
]
STATUSES = ("ok", "failed", "timeout", "skipped", "interrupted")




def write_json(path: Path, doc: dict) -> None:
    """Write atomically, so an interruption never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str))
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ResultsError(f"cannot read {path}: {e}") from None


def run_path(out: Path, scenario: str, impl: str) -> Path:
    return out / "runs" / f"{scenario}__{impl}.json"


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def summary_row(doc: dict) -> dict:
    return {c: _cell(doc.get(c)) for c in SUMMARY_COLUMNS}


def step_rows(doc: dict) -> list[dict]:
    base = {c: doc.get(c) for c in ("run_id", "scenario", "impl", "framework", "version", "parameters")}
    return [{**base, **{k: st[k] for k in ("phase", "step", "runtime_s", "loss")}}
            for st in doc.get("step_log", [])]


def append_steps(out: Path, doc: dict) -> None:
    path = out / "results.csv"
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, STEP_COLUMNS)
        if new:
            w.writeheader()
        w.writerows(step_rows(doc))


def write_summary(out: Path, docs: list[dict]) -> None:
    tmp = out / "summary.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, SUMMARY_COLUMNS)
        w.writeheader()
        w.writerows(summary_row(d) for d in docs)
    os.replace(tmp, out / "summary.csv")


def load_runs(out: Path) -> list[dict]:
    """Every run document of a results directory."""
    docs = []
    for path in sorted((Path(out) / "runs").glob("*.json")):
        doc = read_json(path)
        if doc.get("schema") != RUN_SCHEMA:
            raise ResultsError(f"{path}: not a {RUN_SCHEMA} document")
        docs.append(doc)
    return docs
