"""The columns of a results directory, their types and units, and the document versions
(framework-free, no dependencies): the one list the CSV writer and the loader share.

A run document (``runs/<scenario>__<impl>.json``, schema ``rnnbench.run/3``) holds every
summary column below under the same name, and its steps under ``step_log``; ``summary.csv``
and ``results.csv`` are exports of those documents, one cell per column, written by
:func:`cell`. Units are in the names: ``_s`` seconds, ``_mib`` mebibytes, ``gflops``
GFLOP/s, ``efficiency_pct`` the percentage of the measured GEMM rate; ``_pct`` a percentage.
Version 3 added how many steps a run took and why (``stop_reason``, ``warmup_reason``),
the achieved precision (``ci_halfwidth_pct``) and the drift (``drift_pct``, ``drift``: "up", "down" or "").
Later, as optional columns (``Column.optional``: a CSV written before them still loads):
``layers`` and ``timed``, what a timed step was, "train" (forward, backward and update) or
"forward" (``--mode forward``: the loss only), empty in documents written before: "train";
a run measured in several processes (``--processes K``) records ``processes``, the spread
between their medians (``process_spread_pct``) beside the typical spread within one
(``process_ci_pct``), and each step its ``process``; a run of the Ray executor, the
``node`` it ran on; what the compile cache held for a run's compiles (``cache_state``: cold,
partly cold, warm, or not cached), empty in results written before it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .protocol import STOP_REASONS, TIMED, WARMUP_REASONS

META_SCHEMA = "rnnbench.meta/1"
RUN_SCHEMA = "rnnbench.run/3"

STATUSES = ("ok", "failed", "timeout", "skipped", "interrupted")
PHASES = ("warmup", "measure")
VERDICTS = ("yes", "no", "")  # verified: passed, failed, not checked
DRIFTS = ("up", "down", "")  # step times trended up, down, or did not (rnnbench.stopping.drift)
# What a run did to its compile cache (``rnnbench.launch.cache_record``): compiled into it
# for the first time at its sizes; added to what the same implementation at the same sizes had compiled there
# before (a part it did not run then: its verification step, or a new framework version);
# found everything there; or wrote nothing ever (TensorFlow, JAX, eager PyTorch keep no
# compile on disk here: they compile in memory, cold in every worker).
CACHE_STATES = ("cold", "partly cold", "warm", "not cached")

# No training step of this suite takes 11 days: a larger "time" is a damaged file (1e308),
# not a measurement, and would overflow every rate computed from it.
MAX_STEP_S = 1e6


@dataclass(frozen=True)
class Column:
    """``kind``: text | int | float | bool | switch (True/False, or text starting with
    on/off where a runtime says more, e.g. "on (XLA CPU always flushes)")."""

    name: str
    kind: str
    minimum: float | None = None  # numbers: the smallest valid value
    timing: bool = False  # seconds of a step: finite, > 0 and at most MAX_STEP_S
    finite: bool = True  # False: inf and nan are values too (a diverging loss)
    choices: tuple[str, ...] | None = None
    # Added to rnnbench.run/3 after its first CSVs: a CSV without the column reads as
    # empty (null) in it, so results written before it still load.
    optional: bool = False


def _text(*names, choices=None):
    return [Column(n, "text", choices=choices) for n in names]


def _count(*names, minimum=0):
    return [Column(n, "int", minimum=minimum) for n in names]


def _timing(*names):
    return [Column(n, "float", timing=True) for n in names]


SUMMARY = (
    *_text("run_id", "profile", "scenario", "impl", "framework", "version"),
    Column("status", "text", choices=STATUSES), *_text("reason"),
    *_timing("median_s", "p10_s", "p90_s", "mean_s"), Column("stdev_s", "float", minimum=0),
    *_timing("ci_low_s", "ci_high_s", "first_step_s"),
    *_count("steps", "warmup"),
    Column("stop_reason", "text", choices=STOP_REASONS), Column("warmup_reason", "text", choices=WARMUP_REASONS),
    Column("ci_halfwidth_pct", "float", minimum=0), Column("drift_pct", "float"),
    Column("drift", "text", choices=DRIFTS),
    *(Column(n, "float", minimum=0) for n in ("gflops", "efficiency_pct", "peak_rss_mib", "peak_gpu_mib")),
    *_count("parameters"), *_text("checks"), Column("stable", "bool"),
    Column("verified", "text", choices=VERDICTS), *_text("device", "device_name"),
    *_count("threads", minimum=1), Column("flush_denormal", "switch"),
    *_count("batch", "time_steps", "features", "hidden", minimum=1),
    Column("layers", "int", minimum=1, optional=True),
    Column("timed", "text", choices=TIMED, optional=True),
    Column("processes", "int", minimum=1, optional=True),
    Column("process_spread_pct", "float", minimum=0, optional=True),
    Column("process_ci_pct", "float", minimum=0, optional=True),
    Column("node", "text", optional=True),  # the Ray node a run ran on (--executor ray)
    Column("cache_state", "text", choices=CACHE_STATES, optional=True),
)
STEPS = (
    *_text("run_id", "scenario", "impl", "framework", "version"), *_count("parameters"),
    Column("phase", "text", choices=PHASES), *_count("step"), *_timing("runtime_s"),
    Column("loss", "float", finite=False),  # a diverging loss is a check's result, not damage
    Column("process", "int", minimum=1, optional=True),  # which of a run's --processes took the step
)
SUMMARY_COLUMNS = [c.name for c in SUMMARY]
STEP_COLUMNS = [c.name for c in STEPS]
COLUMNS = {c.name: c for c in (*SUMMARY, *STEPS)}  # the two share names only where types agree

TRUE, FALSE = "true", "false"  # the one spelling of a boolean in a CSV cell


def show(value, limit: int = 60) -> str:
    """A value as an error message quotes it: repr, one line, shortened."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def problem(col: Column, value) -> str | None:
    """Why ``value`` (from a JSON document) cannot be in ``col``, or None when it can.
    None (JSON null) is valid everywhere: "not measured"."""
    if value is None:
        return None
    if col.kind == "text":
        if not isinstance(value, str):
            return f"expected text, got {show(value)}"
        if col.choices is not None and value not in col.choices:
            return f"expected one of {', '.join(repr(c) for c in col.choices)}, got {show(value)}"
        return None
    if col.kind == "bool":
        return None if isinstance(value, bool) else f"expected true or false, got {show(value)}"
    if col.kind == "switch":
        ok = isinstance(value, bool) or (isinstance(value, str) and value.startswith(("on", "off")))
        return None if ok else f"expected true, false or on/off text, got {show(value)}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"expected a number, got {show(value)}"
    if col.kind == "int" and not isinstance(value, int):
        return f"expected a whole number, got {show(value)}"
    if col.timing and not (math.isfinite(value) and 0 < value <= MAX_STEP_S):
        return f"{show(value)} cannot be a time in seconds (expected > 0 and <= {MAX_STEP_S:g})"
    if col.finite and not math.isfinite(value):
        return f"expected a finite number, got {show(value)}"
    if col.minimum is not None and value < col.minimum:
        return f"expected a number >= {col.minimum:g}, got {show(value)}"
    return None


def switch_text(value) -> str:
    """A switch as text: on/off, or the runtime's own words ("on (XLA CPU always flushes)")."""
    if isinstance(value, bool) or str(value).lower() in (TRUE, FALSE):
        return "on" if value is True or str(value).lower() == TRUE else "off"
    return str(value)


def cell(col: Column, value) -> str:
    """The CSV text of a value: empty for None, true/false, whole numbers as such, floats
    at full precision (the shortest text that reads back as the same float)."""
    if value is None:
        return ""
    if col.kind == "switch":
        return switch_text(value)
    if isinstance(value, bool):
        return TRUE if value else FALSE
    return repr(value) if isinstance(value, float) else str(value)


def parse(col: Column, text: str):
    """A CSV cell back to its value (None for empty). Raises ValueError with the reason."""
    if text.strip() == "":
        return None
    if col.kind == "text":
        return text
    if col.kind == "switch":
        return switch_text(text.strip())
    if col.kind == "bool":
        word = text.strip().lower()  # also True/False: what Python's str() writes
        if word not in (TRUE, FALSE):
            raise ValueError(f"expected {TRUE} or {FALSE}, got {text!r}")
        return word == TRUE
    try:
        return int(text) if col.kind == "int" else float(text)
    except ValueError:
        what = "a whole number" if col.kind == "int" else "a number"
        raise ValueError(f"expected {what}, got {text!r}") from None


# meta.json: dotted field -> kind (text, int, seconds, rate, bool, texts = list of text,
# object). Every field is optional but "schema"; one present must have its kind. The
# report reads these; other fields are kept as they are.
META_FIELDS = {
    "schema": "text", "run_id": "text", "profile": "text", "started": "text", "finished": "text",
    "argv": "texts", "rnnbench": "text", "threads": "int", "flush_denormal": "bool",
    "device": "text", "warmup": "int", "steps": "int", "timeout_s": "seconds", "time_steps": "int",
    "stop": "object", "stop.precision": "rate", "stop.min_steps": "int", "stop.max_time_s": "seconds",
    "stop.max_warmup": "int", "timed": "text",
    "scenarios": "texts", "impls": "texts", "interrupted": "bool",
    "machine": "object", "machine.cpu": "text", "machine.cores": "int", "machine.python": "text",
    "machine.platform": "text", "git": "object", "git.revision": "text", "git.dirty": "bool",
    "gemm": "object", "gemm.gflops": "rate", "gemm.n": "int", "gemm.threads": "int",
    "gemm.library": "text",
}


def version_problem(doc: dict, expected: str) -> str | None:
    """Why ``doc["schema"]`` is not ``expected``, or None: a document of another version
    may mean other things by the same field names, so it is refused, not guessed at."""
    got = doc.get("schema")
    if got == expected:
        return None
    return f"unknown version {show(got)}; this rnnbench reads {expected}" if got else f"missing (expected {expected!r})"


def meta_problem(meta: dict) -> tuple[str, str] | None:
    """The first (field, reason) that makes ``meta`` unusable, or None."""
    bad = version_problem(meta, META_SCHEMA)
    if bad:
        return "schema", bad
    for name, kind in META_FIELDS.items():
        *parents, key = name.split(".")
        parent = meta.get(parents[0]) if parents else meta
        if not isinstance(parent, dict) or parent.get(key) is None:
            continue  # absent: checked at its parent, or optional
        value = parent[key]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = {"text": isinstance(value, str), "bool": isinstance(value, bool),
              "object": isinstance(value, dict),
              "texts": isinstance(value, list) and all(isinstance(v, str) for v in value),
              "int": number and isinstance(value, int) and value >= 0,
              "seconds": number and math.isfinite(value) and value > 0,
              "rate": number and math.isfinite(value) and value > 0}[kind]
        if not ok:
            expected = {"text": "text", "bool": "true or false", "object": "a JSON object",
                        "texts": "a list of text", "int": "a whole number >= 0",
                        "seconds": "a finite number of seconds > 0",
                        "rate": "a finite number > 0"}[kind]
            return name, f"expected {expected}, got {show(value)}"
    return None


def run_json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a run document, built from the columns above so
    that the two cannot drift; ``docs/schema/`` holds it as a file (``python -m
    rnnbench.schema`` rewrites it). A document holds every summary column (null where it
    does not apply), its steps under ``step_log``, and may hold more (worker metadata,
    check details, verification errors)."""
    json_type = {"text": "string", "int": "integer", "float": "number", "bool": "boolean"}

    def prop(col: Column) -> dict:
        if col.kind == "switch":
            p: dict = {"type": ["boolean", "string", "null"]}
        else:
            p = {"type": [json_type[col.kind], "null"]}
        if col.choices:
            p["enum"] = [*col.choices, None]
        if col.timing:
            p.update(exclusiveMinimum=0, maximum=MAX_STEP_S)
        elif col.minimum is not None:
            p["minimum"] = col.minimum
        return p

    step_cols = ("phase", "step", "runtime_s", "loss", "process")
    step = {"type": "object", "required": list(step_cols[:3]),
            "properties": {c: prop(COLUMNS[c]) for c in step_cols}}
    step["properties"]["loss"] = {"type": ["number", "null"]}  # null: a non-finite loss (JSON has no inf)
    required = ["schema", "run_id", "scenario", "impl", "framework", "status"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{RUN_SCHEMA}",
        "title": "rnnbench run document: one (scenario, implementation) run",
        "type": "object",
        "required": required,
        "properties": {
            "schema": {"const": RUN_SCHEMA},
            **{c.name: prop(c) for c in SUMMARY},
            "step_log": {"type": "array", "items": step},
        },
    }


if __name__ == "__main__":
    import json
    from pathlib import Path

    target = Path(__file__).resolve().parents[2] / "docs" / "schema" / (RUN_SCHEMA.replace("/", "-") + ".schema.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(run_json_schema(), indent=1) + "\n")
    print(target)
