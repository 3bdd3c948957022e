"""Load a results directory into pandas, for the report, the comparison and your own analysis.

A results directory, as ``rnnbench run --out DIR`` writes it::

    DIR/meta.json                       the run: id, profile, machine, threads, GEMM rate...
    DIR/runs/<scenario>__<impl>.json    one document per (scenario, implementation): the record
    DIR/summary.csv                     export: one row per run document
    DIR/results.csv                     export: one row per training step
    DIR/logs/<scenario>__<impl>.log     the worker's stderr
    DIR/archive/<run_id>/               earlier runs into the same DIR (not read here)

Every number comes from the run documents, at full precision; the two CSV exports are
checked against them, so that a damaged or edited file is reported, never used.

Example::

    from rnnbench.analysis import load
    r = load("results")
    ok = r.ok                                   # the rows that ran
    ok.pivot(index="scenario", columns="impl", values="median_s")
    r.samples("lstm-1x320-ce", "torch-nn")      # measured seconds per step (NumPy)

``load`` raises :class:`ResultsError` with one line naming the file and the field for a
missing, unreadable, wrong-typed, unknown-version or inconsistent file, and for numbers
that cannot be timings. pandas is imported on first use, so importing this module is cheap.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import fmt, schema
from .errors import ResultsError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

__all__ = ["Results", "ResultsError", "load"]

SHAPE_COLUMNS = ("batch", "time_steps", "features", "hidden")
# Values written with 6 significant digits (summary.csv) are within 5e-6 of the record.
CSV_RTOL = 1e-5


@dataclass
class Results:
    """One run: ``meta`` (dict from meta.json), ``summary`` (one row per scenario and
    implementation, in catalogue order, the columns of ``schema.SUMMARY_COLUMNS`` plus
    ``ratio``: median over the fastest ok median of the scenario) and ``steps`` (one row
    per step, ``schema.STEP_COLUMNS``). Whole-number columns are pandas ``Int64``."""

    path: Path
    meta: dict[str, Any]
    summary: "pd.DataFrame"
    steps: "pd.DataFrame"

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id") or self.path.name)

    @property
    def profile(self) -> str:
        profile = self.meta.get("profile")
        if not profile and len(self.summary):
            profile = self.summary["profile"].iloc[0]
        return str(profile or "?")

    @property
    def ok(self) -> "pd.DataFrame":
        return self.summary[self.summary["status"] == "ok"]

    @property
    def scenarios(self) -> list[str]:
        return list(dict.fromkeys(self.summary["scenario"]))

    @property
    def frameworks(self) -> list[str]:
        return sorted(set(self.summary["framework"]), key=framework_key)

    def rows(self, scenario: str) -> "pd.DataFrame":
        return self.summary[self.summary["scenario"] == scenario]

    def samples(self, scenario: str, impl: str, phase: str = "measure") -> "np.ndarray":
        """Seconds per step of one run's ``phase`` steps, in step order."""
        import numpy as np

        s = self.steps
        sel = s[(s["scenario"] == scenario) & (s["impl"] == impl) & (s["phase"] == phase)]
        return np.asarray(sel.sort_values("step")["runtime_s"], dtype=float)

    def shape(self, scenario: str) -> dict[str, int] | None:
        """(batch, time_steps, features, hidden) the scenario ran with, from its rows."""
        rows = self.rows(scenario)[list(SHAPE_COLUMNS)].dropna()
        return {c: int(v) for c, v in rows.iloc[0].items()} if len(rows) else None

    def fastest_by_framework(self) -> "pd.DataFrame":
        """For each (scenario, framework) the fastest ok row (the seed's first table)."""
        ok = self.ok.sort_values("median_s", kind="stable")
        best = ok.drop_duplicates(["scenario", "framework"], keep="first")
        return _in_order(best)


# --- ordering: the catalogue's order, unknown names after it in order of appearance ---------

def _catalogue() -> tuple[list[str], list[str], list[str], dict[str, str]]:
    from .impls import FRAMEWORKS, IMPLEMENTATIONS
    from .scenarios import SCENARIOS, SEED_SCENARIOS

    scenarios = list(SEED_SCENARIOS) + [s for s in SCENARIOS if s not in SEED_SCENARIOS]
    impl_framework = {name: i.framework for name, i in IMPLEMENTATIONS.items()}
    return scenarios, list(IMPLEMENTATIONS), list(FRAMEWORKS), impl_framework


def _key(order: list[str], name: str) -> tuple[int, str]:
    return (order.index(name), "") if name in order else (len(order), str(name))


def scenario_key(name: str) -> tuple[int, str]:
    return _key(_catalogue()[0], name)


def impl_key(name: str) -> tuple[int, str]:
    return _key(_catalogue()[1], name)


def framework_key(name: str) -> tuple[int, str]:
    return _key(_catalogue()[2], name)


def _in_order(df: "pd.DataFrame") -> "pd.DataFrame":
    if df.empty:
        return df
    keys = [(scenario_key(s), impl_key(i)) for s, i in zip(df["scenario"], df["impl"])]
    order = sorted(range(len(df)), key=lambda k: keys[k])
    return df.iloc[order].reset_index(drop=True)


# --- reading and checking the files ---------------------------------------------------------

def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise ResultsError(f"{path}: missing (not a complete rnnbench results directory)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ResultsError(f"{path}: cannot read ({e.strerror or e})") from None
    except ValueError as e:  # UnicodeDecodeError too
        raise ResultsError(f"{path}: not valid JSON ({_first_line(e)})") from None
    if not isinstance(doc, dict):
        raise ResultsError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    return doc


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _read_meta(path: Path) -> dict:
    meta = _read_json(path)
    bad = schema.meta_problem(meta)
    if bad:
        raise ResultsError(f"{path}: field {bad[0]!r}: {bad[1]}")
    return meta


def _read_run(path: Path) -> dict:
    """One run document, every column and step checked (types, timings, its own median)."""
    doc = _read_json(path)
    bad = schema.version_problem(doc, schema.RUN_SCHEMA)
    if bad:
        raise ResultsError(f"{path}: field 'schema': {bad}")
    for col in schema.SUMMARY:
        bad = schema.problem(col, doc.get(col.name))
        if bad:
            raise ResultsError(f"{path}: field {col.name!r}: {bad}")
    for name in ("scenario", "impl", "status"):
        if not doc.get(name):
            raise ResultsError(f"{path}: field {name!r}: missing")
    if path.stem != f"{doc['scenario']}__{doc['impl']}":
        raise ResultsError(f"{path}: holds {doc['scenario']} / {doc['impl']}, not what its name says")
    measured = [st["runtime_s"] for st in _step_log(path, doc) if st["phase"] == "measure"]
    if doc["status"] == "ok":
        if doc.get("median_s") is None:
            raise ResultsError(f"{path}: field 'median_s': missing, though the status is ok")
        if measured and not math.isclose(doc["median_s"], statistics.median(measured), rel_tol=1e-9):
            raise ResultsError(f"{path}: field 'median_s': {doc['median_s']!r} is not the median of its "
                               f"{len(measured)} measured steps ({statistics.median(measured)!r})")
    return doc


def _step_log(path: Path, doc: dict) -> list[dict]:
    """The document's steps, each checked: phase, step and a time that can be one."""
    log = doc.get("step_log") or []
    if not isinstance(log, list):
        raise ResultsError(f"{path}: field 'step_log': expected a list, got {schema.show(log)}")
    for k, st in enumerate(log):
        if not isinstance(st, dict):
            raise ResultsError(f"{path}: step_log[{k}]: expected a JSON object, got {schema.show(st)}")
        for name in ("phase", "step", "runtime_s", "loss"):
            value = st.get(name)
            bad = "missing" if value is None and name != "loss" else schema.problem(schema.COLUMNS[name], value)
            if bad:
                raise ResultsError(f"{path}: step_log[{k}] field {name!r}: {bad}")
    return log


def _read_runs(directory: Path) -> list[dict]:
    if not directory.is_dir():
        raise ResultsError(f"{directory}: missing (not a results directory written by `rnnbench run`)")
    return [_read_run(p) for p in sorted(directory.glob("*.json"))]


def _read_csv(path: Path, columns: list[str]) -> list[tuple[int, dict]]:
    """(line number, row) of a CSV export that must have ``columns``; every row complete."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh, strict=True)
            header = next(reader, None)
            if header is None:
                raise ResultsError(f"{path}: empty (no header)")
            required = [c for c in columns if not schema.COLUMNS[c].optional]
            missing = [c for c in required if c not in header]
            if len(missing) > 3:
                raise ResultsError(f"{path}: missing {len(missing)} of its {len(required)} columns "
                                   f"({', '.join(missing[:3])}, ...)")
            if missing:
                raise ResultsError(f"{path}: missing column(s) {', '.join(missing)}")
            rows = []
            for cells in reader:
                if len(cells) != len(header):
                    raise ResultsError(f"{path}: line {reader.line_num}: {len(cells)} fields, expected "
                                       f"{len(header)} (the file was cut short or damaged)")
                rows.append((reader.line_num, {**dict.fromkeys(columns, ""), **dict(zip(header, cells))}))
    except (UnicodeDecodeError, csv.Error) as e:
        raise ResultsError(f"{path}: not a valid CSV ({_first_line(e)})") from None
    except OSError as e:
        raise ResultsError(f"{path}: cannot read ({e.strerror or e})") from None
    return rows


def _same(got, want) -> bool:
    """A CSV cell and the recorded value agree (floats to the export's precision)."""
    if isinstance(got, float) and isinstance(want, (int, float)) and not isinstance(want, bool):
        return (math.isnan(got) and math.isnan(want)) or math.isclose(got, want, rel_tol=CSV_RTOL)
    return got == want


def _agree(path: Path, name: str, line: int, cells: dict, columns, values: dict) -> None:
    """One CSV row against the record it exports; the first field that differs raises."""
    for col in columns:
        try:
            got = schema.parse(col, cells[col.name])
        except ValueError as e:
            raise ResultsError(f"{path}: line {line} field {col.name!r}: {e}") from None
        want = values.get(col.name)
        if col.kind == "switch" and want is not None:
            want = schema.switch_text(want)
        if col.kind in ("text", "switch"):
            got, want = got or "", want or ""
        if not _same(got, want):
            raise ResultsError(f"{path}: line {line} field {col.name!r}: {schema.show(cells[col.name])} disagrees "
                               f"with {schema.show(want)} in runs/{name}.json (a damaged or edited file)")


def _check_summary(path: Path, docs: dict[tuple[str, str], dict]) -> None:
    rows = _read_csv(path, schema.SUMMARY_COLUMNS)
    seen = set()
    for line, cells in rows:
        key = (cells["scenario"], cells["impl"])
        if key not in docs or key in seen:
            raise ResultsError(f"{path}: line {line}: {key[0]} / {key[1]} "
                               + ("appears twice" if key in seen else "has no run document in runs/"))
        seen.add(key)
        _agree(path, "__".join(key), line, cells, schema.SUMMARY, docs[key])
    lost = sorted(docs.keys() - seen)
    if lost:
        raise ResultsError(f"{path}: no row for {lost[0][0]} / {lost[0][1]}, which runs/ holds "
                           "(the file was cut short or damaged)")


def _step_values(doc: dict) -> list[dict]:
    base = {c: doc.get(c) for c in ("run_id", "scenario", "impl", "framework", "version", "parameters")}
    return [{**base, **{k: st.get(k) for k in ("phase", "step", "runtime_s", "loss", "process")}}
            for st in doc.get("step_log") or []]


def _check_steps(path: Path, docs: dict[tuple[str, str], dict]) -> None:
    rows: dict[tuple[str, str], list] = {}
    for line, cells in _read_csv(path, schema.STEP_COLUMNS):
        key = (cells["scenario"], cells["impl"])
        if key not in docs:
            raise ResultsError(f"{path}: line {line}: {key[0]} / {key[1]} has no run document in runs/")
        rows.setdefault(key, []).append((line, cells))
    for key, doc in docs.items():
        want, got = _step_values(doc), rows.get(key, [])
        if len(got) != len(want):
            raise ResultsError(f"{path}: {len(got)} steps of {key[0]} / {key[1]}, runs/ holds "
                               f"{len(want)} (the file was cut short or damaged)")
        for (line, cells), values in zip(got, want):
            _agree(path, "__".join(key), line, cells, schema.STEPS, values)


def _frame(records: list[dict], columns) -> "pd.DataFrame":
    """A DataFrame with one typed column per schema column: Int64, float, bool or text."""
    import pandas as pd

    data = {}
    for col in columns:
        values = [r.get(col.name) for r in records]
        if col.kind == "int":
            data[col.name] = pd.array(values, dtype="Int64")
        elif col.kind == "float":
            data[col.name] = pd.array([math.nan if v is None else float(v) for v in values], dtype=float)
        elif col.kind == "bool":
            data[col.name] = pd.Series(values, dtype=object)
        elif col.kind == "switch":
            data[col.name] = ["" if v is None else schema.switch_text(v) for v in values]
        else:
            data[col.name] = ["" if v is None else v for v in values]
    return pd.DataFrame(data, columns=[c.name for c in columns])


def load(directory: str | Path) -> Results:
    """Read and check a results directory. Raises :class:`ResultsError` with one line."""
    path = Path(directory)
    if not path.exists():
        raise ResultsError(f"{path}: no such results directory")
    if not path.is_dir():
        raise ResultsError(f"{path}: not a directory")
    meta = _read_meta(path / "meta.json")
    runs = _read_runs(path / "runs")
    docs = {(d["scenario"], d["impl"]): d for d in runs}
    for export, check in ((path / "summary.csv", _check_summary), (path / "results.csv", _check_steps)):
        if export.is_file():
            check(export, docs)
        elif docs or export.exists():  # absent only while no run has been recorded
            raise ResultsError(f"{export}: missing, though runs/ holds {len(docs)} run document(s) "
                               "(not a complete rnnbench results directory)")

    _, _, _, impl_framework = _catalogue()
    summary = _in_order(_frame(runs, schema.SUMMARY))
    summary["framework"] = summary["framework"].where(
        summary["framework"] != "", [impl_framework.get(i, "?") for i in summary["impl"]])
    best = summary[summary["status"] == "ok"].groupby("scenario")["median_s"].min()
    summary["ratio"] = summary["median_s"] / summary["scenario"].map(best).astype(float)
    steps = _frame([v for d in runs for v in _step_values(d)], schema.STEPS)
    return Results(path=path, meta=meta, summary=summary, steps=steps)


# -- facts the report and the results page both show ---------------------------------
SECOND_TABLE_SCENARIO = "lstm-1x320-ce"  # the seed's second table: every implementation


def flags(row) -> list[str]:
    """The warnings a result carries (empty for a clean ok row)."""
    out = []
    if row.get("status") != "ok":
        return out
    checks = str(row.get("checks") or "ok")
    if checks != "ok":
        out.append(f"checks {checks}")
    if row.get("stable") is False:
        spread = ""
        if not fmt.missing(row.get("stdev_s")) and not fmt.missing(row.get("mean_s")):
            spread = f" (stdev {fmt.percent(100 * row['stdev_s'] / row['mean_s'])} of the mean)"
        out.append("unstable" + spread)
    verified = str(row.get("verified") or "")
    if verified == "no":
        out.append("verification FAILED (does not match the reference)")
    return out


def network(scenario: str) -> tuple[str, str, str]:
    """The seed tables' first columns for a scenario: network, loss, masking."""
    from .scenarios import SCENARIOS

    s = SCENARIOS.get(scenario)
    if s is None:
        return scenario, "?", "?"
    net = f"{s.layers}x{s.hidden} {'bidir' if s.bidirectional else 'unidir'} {s.cell.upper()}"
    loss = {"ce": "Cross-Entropy", "ctc": "CTC"}.get(s.loss, s.loss)
    return net, loss, "Yes" if s.loss == "ctc" else "No"
