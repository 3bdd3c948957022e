"""Result documents and files (framework-free).

A results directory holds:

* ``meta.json``: the invocation (schema ``rnnbench.meta/1``): run id, profile, machine,
  git revision, thread and denormal settings, the GEMM rate, the selection, and how far
  the run got: ``state`` "running", "finished" or "interrupted" (then ``stopped_by``: Ctrl-C,
  SIGTERM, a write error, or a runner that died), with ``started`` and ``finished`` times;
  ``resumed_from``: the run ids of the runs it continues (``rnnbench run --resume``).
* ``runs/<scenario>__<impl>.json``: one document per (scenario, implementation) run
  (schema ``rnnbench.run/3``) with every field of its summary row, the raw steps
  (``step_log``: phase, step, runtime_s, loss), the worker's metadata (versions, runtime
  settings, source hash, verification errors) and the machine's 1-, 5- and 15-minute
  load averages before and after the run (``load_before``, ``load_after``). A resumed run
  keeps the documents of the runs it does not repeat: they keep their own run id.
* ``results.csv``: long format, one row per step (warm-up and measured).
* ``summary.csv``: one row per (scenario, implementation).
* ``logs/<scenario>__<impl>.log``: the worker's stderr.

The run documents are the record; the two CSV files are exports regenerated from them
after every record (``record``), so the three always agree and the exports can be rebuilt
(``rebuild_exports``). Every file is written to a temp file beside it, flushed to disk and
moved into place: a reader sees the old file or the new one, never half of one. JSON is
written without NaN or Infinity (``strict``: such values become null, listed in the
document's ``non_finite``).
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

from . import schema
from .errors import ResultsError
from .schema import META_SCHEMA, RUN_SCHEMA, STATUSES, STEP_COLUMNS, SUMMARY_COLUMNS  # noqa: F401 (re-exported)





class RecordError(ResultsError):
    """A record could not be written (disk full, file too large, read-only file system...):
    nothing of it reached the directory, which still agrees with itself."""


TEMP_MARK = ".tmp-"  # in the name of a file being written: ``.<name>.tmp-<pid>``


def strict(doc):
    """``doc`` with every non-finite float (NaN, +-inf) replaced by null, so that it is JSON
    without extensions; the replaced values are listed in ``non_finite`` ({path: value})."""
    found = {}

    def clean(v, path):
        if isinstance(v, float) and not math.isfinite(v):
            found[path] = repr(v)
            return None
        if isinstance(v, dict):
            return {k: clean(x, f"{path}.{k}" if path else str(k)) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x, f"{path}[{i}]") for i, x in enumerate(v)]
        return v

    out = clean(doc, "")
    if found:
        out["non_finite"] = {**(doc.get("non_finite") or {}), **found}
    return out


def _json_writer(doc: dict):
    text = json.dumps(strict(doc), indent=1, allow_nan=False, default=str)
    return lambda f: f.write(text)


def _csv_writer(columns, rows):
    def write(f):
        w = csv.DictWriter(f, columns)
        w.writeheader()
        w.writerows(rows)
    return write


def _stage(path: Path, write) -> Path:
    """Write a temp file beside ``path``, flushed to disk; removed again if that fails."""
    tmp = path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")
    try:
        with open(tmp, "w", newline="") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        _remove(tmp)
        raise
    return tmp


def _commit(staged: list[tuple[Path, Path]]) -> None:
    """Move staged temp files into place, in order; the temps left are removed on failure."""
    try:
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            _remove(tmp)
    for parent in {path.parent for _, path in staged}:  # the new names reach the disk too
        fd = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def write_json(path: Path, doc: dict) -> None:
    """Write atomically: the whole document or, if interrupted or out of space, the old file."""
    _commit([(_stage(path, _json_writer(doc)), path)])


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ResultsError(f"cannot read {path}: {e}") from None


def run_path(out: Path, scenario: str, impl: str) -> Path:
    return out / "runs" / f"{scenario}__{impl}.json"


def summary_row(doc: dict) -> dict:
    """The run's summary.csv row, each cell in its column's one spelling (schema.cell:
    full precision, true/false, whole numbers as such)."""
    return {c: schema.cell(schema.COLUMNS[c], doc.get(c)) for c in SUMMARY_COLUMNS}


def step_rows(doc: dict) -> list[dict]:
    base = {c: doc.get(c) for c in ("run_id", "scenario", "impl", "framework", "version", "parameters")}
    return [{c: schema.cell(schema.COLUMNS[c], v) for c, v in
             {**base, **{k: st.get(k) for k in ("phase", "step", "runtime_s", "loss", "process")}}.items()}
            for st in doc.get("step_log") or []]


def _exports(out: Path, docs: list[dict]) -> list:
    return [(out / "summary.csv", _csv_writer(SUMMARY_COLUMNS, [summary_row(d) for d in docs])),
            (out / "results.csv", _csv_writer(STEP_COLUMNS, [r for d in docs for r in step_rows(d)]))]


def write_exports(out: Path, docs: list[dict]) -> None:
    """summary.csv and results.csv from the run documents ``docs`` (in that order)."""
    staged = []
    try:
        for path, write in _exports(out, docs):
            staged.append((_stage(path, write), path))
    except BaseException:
        for tmp, _ in staged:
            _remove(tmp)
        raise
    _commit(staged)


def record(out: Path, doc: dict, docs: list[dict], replaced: dict | None = None) -> None:
    """Write one run's document ``doc`` to runs/ and regenerate summary.csv and results.csv
    from ``docs`` (every recorded document, ``doc`` among them), so that the three always
    agree: all three are written to temp files first, then moved into place. ``replaced``:
    the document of the same run that ``doc`` replaces (a run done again), if any. On a
    write error nothing changes (if a move fails, the earlier document is put back and the
    exports rewritten without the new one) and RecordError says what could not be written."""
    path = run_path(out, doc["scenario"], doc["impl"])
    staged = []
    try:
        for target, write in [(path, _json_writer(doc)), *_exports(out, docs)]:
            staged.append((_stage(target, write), target))
    except OSError as e:
        for tmp, _ in staged:
            _remove(tmp)
        raise RecordError(f"cannot record {target}: {e.strerror or e}") from None
    try:
        _commit(staged)
    except OSError as e:
        try:
            if replaced is None:
                _remove(path)
            else:
                write_json(path, replaced)
            write_exports(out, [replaced if d is doc else d for d in docs if d is not doc or replaced is not None])
        except OSError:
            pass
        raise RecordError(f"cannot record {path}: {e.strerror or e}") from None


def remove_temp_files(directory: Path) -> None:
    """Temp files a killed runner left behind (never complete records)."""
    for tmp in Path(directory).glob(f".*{TEMP_MARK}*"):
        _remove(tmp)


def in_order(docs: list[dict], scenarios: list, impls: list) -> list[dict]:
    """Run documents in the order a run planned them: by ``scenarios``, then ``impls``;
    others follow by name."""
    def key(doc):
        s, i = doc.get("scenario"), doc.get("impl")
        return (scenarios.index(s) if s in scenarios else len(scenarios), impls.index(i) if i in impls else len(impls),
                str(s), str(i))

    return sorted(docs, key=key)


def rebuild_exports(out: Path, order: tuple[list, list] = ((), ())) -> None:
    """Regenerate summary.csv and results.csv from runs/ (after a runner died between
    writing a record and its exports); ``order``: scenarios and implementations, in the
    order the run planned them (others follow by name)."""
    write_exports(Path(out), in_order(load_runs(out), *(list(x) for x in order)))


def load_runs(out: Path) -> list[dict]:
    """Every run document of a results directory."""
    docs = []
    for path in sorted((Path(out) / "runs").glob("*.json")):
        doc = read_json(path)
        wrong = schema.version_problem(doc, RUN_SCHEMA) if isinstance(doc, dict) else "not a JSON object"
        if wrong:
            raise ResultsError(f"{path}: field 'schema': {wrong}")
        docs.append(doc)
    return docs
