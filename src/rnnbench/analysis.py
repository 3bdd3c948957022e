"""Load a results directory into pandas, for the report, the comparison and your own analysis.

A results directory (written by ``rnnbench run``) holds:

* ``meta.json``: the run's environment (machine, threads, denormal flag, GEMM rate, git
  revision, profile, selection);
* ``summary.csv``: one row per (scenario, implementation) with status, median and spread,
  confidence interval, first-step time, cost figures, memory, checks and verification;
* ``results.csv``: one row per training step (``phase`` "warmup" or "measure").

Example::

    from rnnbench.analysis import load
    r = load("results/2025-01-01T12-00-00")
    ok = r.ok                                   # the rows that ran
    ok.pivot(index="scenario", columns="impl", values="median_s")
    r.samples("lstm-1x320-ce", "torch-nn")      # measured seconds per step (NumPy)

``load`` raises :class:`ResultsError` (one line, naming the file) for a missing or
unreadable directory, JSON or CSV. pandas is imported lazily so that importing this module
stays cheap.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ResultsError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

STATUSES = ("ok", "failed", "timeout", "skipped", "interrupted")

SUMMARY_NUMERIC = (
    "median_s", "p10_s", "p90_s", "mean_s", "stdev_s", "ci_low_s", "ci_high_s",
    "first_step_s", "steps", "warmup", "gflops", "efficiency", "peak_rss_mb", "peak_gpu_mb",
    "parameters", "threads", "batch", "time_steps", "features", "hidden",
)
SUMMARY_TEXT = (
    "run_id", "profile", "scenario", "impl", "framework", "version", "status", "reason",
    "checks", "verified", "device", "device_name",
)
SUMMARY_REQUIRED = ("scenario", "impl", "status", "median_s")
STEPS_REQUIRED = ("scenario", "impl", "phase", "step", "runtime_s")
SHAPE_COLUMNS = ("batch", "time_steps", "features", "hidden")


@dataclass
class Results:
    """One run: ``meta`` (dict from meta.json), ``summary`` (one row per scenario and
    implementation, in catalogue order, plus a computed ``ratio`` column: median over the
    fastest ok median of the scenario) and ``steps`` (one row per step)."""

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
        if not profile and len(self.summary) and "profile" in self.summary:
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
        rows = self.rows(scenario)
        for _, row in rows.iterrows():
            values = [row.get(c) for c in SHAPE_COLUMNS]
            if all(v is not None and not _isnan(v) for v in values):
                return {c: int(v) for c, v in zip(SHAPE_COLUMNS, values)}
        return None

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


def _isnan(v: Any) -> bool:
    try:
        return v is None or (isinstance(v, float) and math.isnan(v)) or v != v
    except (TypeError, ValueError):
        return False


# --- loading -------------------------------------------------------------------------------

def _read_csv(path: Path, required: tuple[str, ...]) -> "pd.DataFrame":
    import pandas as pd

    if not path.is_file():
        raise ResultsError(f"{path}: missing (not a complete rnnbench results directory)")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[])
    except pd.errors.EmptyDataError:
        raise ResultsError(f"{path}: empty file, no CSV header") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ResultsError(f"{path}: not a valid CSV ({first})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ResultsError(f"{path}: missing column(s) {', '.join(missing)}")
    return df


def _numeric(df: "pd.DataFrame", columns, path: Path) -> None:
    import pandas as pd

    for c in columns:
        if c not in df.columns:
            df[c] = float("nan")
            continue
        text = df[c].astype(str).str.strip()
        values = pd.to_numeric(text.where(text != "", None), errors="coerce")
        bad = values.isna() & (text != "") & ~text.str.lower().isin(["nan", "none", "null"])
        if bad.any():
            k = int(bad.to_numpy().nonzero()[0][0])
            raise ResultsError(f"{path}: column {c!r} line {k + 2}: not a number: {text.iloc[k]!r}")
        df[c] = values.astype(float)


def _boolean(df: "pd.DataFrame", columns, path: Path, strict: bool = True) -> None:
    """true/false, 1/0, yes/no, on/off -> bool; empty -> None. Other text raises (strict)
    or reads as None."""
    truth = {"true": True, "1": True, "yes": True, "on": True,
             "false": False, "0": False, "no": False, "off": False}
    for c in columns:
        if c not in df.columns:
            df[c] = None
            continue
        text = df[c].astype(str).str.strip().str.lower()
        bad = ~text.isin(list(truth) + ["", "none", "nan"])
        if strict and bad.any():
            k = int(bad.to_numpy().nonzero()[0][0])
            raise ResultsError(f"{path}: column {c!r} line {k + 2}: not true/false: {df[c].iloc[k]!r}")
        df[c] = [truth.get(t) for t in text]


def load(directory: str | Path) -> Results:
    """Read a results directory. Raises :class:`ResultsError` with a one-line message."""
    import pandas as pd

    path = Path(directory)
    if not path.exists():
        raise ResultsError(f"{path}: no such results directory")
    if not path.is_dir():
        raise ResultsError(f"{path}: not a directory")

    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise ResultsError(f"{meta_path}: missing (not an rnnbench results directory)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultsError(f"{meta_path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise ResultsError(f"{meta_path}: expected a JSON object")

    summary_path = path / "summary.csv"
    summary = _read_csv(summary_path, SUMMARY_REQUIRED)
    _numeric(summary, SUMMARY_NUMERIC, summary_path)
    _boolean(summary, ("stable",), summary_path)
    _boolean(summary, ("flush_denormal",), summary_path, strict=False)  # informational
    for c in SUMMARY_TEXT:
        summary[c] = summary[c].astype(str).str.strip() if c in summary.columns else ""
    unknown = sorted(set(summary["status"]) - set(STATUSES))
    if unknown:
        raise ResultsError(f"{summary_path}: unknown status {unknown[0]!r}")
    bad_ok = summary[(summary["status"] == "ok") & summary["median_s"].isna()]
    if len(bad_ok):
        row = bad_ok.iloc[0]
        raise ResultsError(f"{summary_path}: ok row {row['scenario']}/{row['impl']} has no median_s")
    _, _, _, impl_framework = _catalogue()
    missing_fw = summary["framework"] == ""
    summary.loc[missing_fw, "framework"] = [impl_framework.get(i, "?") for i in summary.loc[missing_fw, "impl"]]
    # A re-run of the same cell supersedes the earlier row.
    summary = summary.drop_duplicates(["scenario", "impl"], keep="last")
    summary = _in_order(summary)
    best = summary[summary["status"] == "ok"].groupby("scenario")["median_s"].min()
    summary["ratio"] = summary["median_s"] / summary["scenario"].map(best)

    steps_path = path / "results.csv"
    steps = _read_csv(steps_path, STEPS_REQUIRED)
    _numeric(steps, ("step", "runtime_s", "loss", "parameters"), steps_path)
    for c in ("scenario", "impl", "phase", "framework", "version", "run_id"):
        steps[c] = steps[c].astype(str).str.strip() if c in steps.columns else ""
    bad_phase = sorted(set(steps["phase"]) - {"warmup", "measure"})
    if bad_phase:
        raise ResultsError(f"{steps_path}: unknown phase {bad_phase[0]!r}")
    if steps["runtime_s"].isna().any():
        k = int(steps["runtime_s"].isna().to_numpy().nonzero()[0][0])
        raise ResultsError(f"{steps_path}: line {k + 2}: runtime_s is empty")
    return Results(path=path, meta=meta, summary=summary, steps=pd.DataFrame(steps))
