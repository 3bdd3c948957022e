"""The run document: what one (scenario, implementation) run gave, built from the job,
how its worker ended and what it handed back (framework-free, no processes, no files:
unit tests call it directly).

``run_document(job, run, outcome)`` adds the statistics of the measured steps (with how
many steps were taken and why: the stop rule's reasons, the achieved CI half-width, the
drift), the seed's checks (finite, decreasing losses; no hidden loop overhead), the FLOP
rate and the efficiency against the machine's GEMM rate, and the verdict of the
verification step against the float64 reference.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field

from . import flops, stats
from .impls import IMPLEMENTATIONS
from .protocol import Job, ProtocolError, Result
from .results import RUN_SCHEMA
from .scenarios import Scenario

ENDINGS = ("exited", "timeout", "interrupted", "not started")


@dataclass
class Run:
    """What every document of one run shares."""

    run_id: str
    profile: str
    timeout_s: float = 0.0
    gemm_gflops: float | None = None  # the machine's GEMM rate: the efficiency yardstick


@dataclass
class Outcome:
    """How the worker ended: ``ended`` is one of ENDINGS; ``result`` is what it handed
    back (None, with ``error`` saying why, if nothing readable); ``progress`` the step
    records it reported while running; ``reason`` explains "interrupted" and "not started"."""

    ended: str
    returncode: int | None = None
    result: Result | None = None
    error: str = ""
    progress: list = field(default_factory=list)
    reason: str = ""
    wall_s: float | None = None
    worker: str = ""  # how it started: "spawned" | "forked"
    stderr_tail: str = ""


def base_document(job: Job, run: Run) -> dict:
    """The fields every run document has, whatever happened to the worker."""
    s = Scenario(**job.sizes())
    return {
        "schema": RUN_SCHEMA, "run_id": run.run_id, "profile": run.profile,
        "scenario": s.name, "impl": job.impl, "framework": IMPLEMENTATIONS[job.impl].framework,
        "status": "failed", "reason": "", "warmup": job.warmup, "steps": 0,
        "threads": job.threads, "flush_denormal": job.flush_denormal, "device": job.device,
        "batch": s.batch, "time_steps": s.time_steps, "features": s.features, "hidden": s.hidden,
        "layers": s.layers, "timed": job.timed or "train",
        "shape": asdict(s), "flops_per_step": flops.step_flops(s, job.timed), "stop_rule": job.stop,
    }


def run_document(job: Job, run: Run, outcome: Outcome) -> dict:
    doc = base_document(job, run)
    if outcome.ended == "not started":
        doc.update(status="skipped", reason=outcome.reason)
        return doc
    doc.update(worker=outcome.worker, wall_s=outcome.wall_s, stderr_tail=outcome.stderr_tail,
               step_log=outcome.progress)
    if outcome.ended == "interrupted":
        doc.update(status="interrupted", reason=outcome.reason)
        return doc
    if outcome.ended == "timeout":
        doc.update(status="timeout", reason=f"no result within {run.timeout_s:g} s "
                   f"({progress_text(outcome.progress, job)})")
        return doc
    result = outcome.result
    try:
        if result is None:
            raise ProtocolError(outcome.error or "no result file")
        result.check_answers(job)
    except ProtocolError as e:
        doc["reason"] = str(e) if outcome.returncode is None else f"worker exited with code {outcome.returncode}: {e}"
        return doc
    rt = result.runtime or {}
    doc.update(status=result.status, reason=result.reason,
               device=rt.get("device", job.device), device_name=rt.get("device_name"),
               threads=rt.get("threads", job.threads), flush_denormal=rt.get("flush_denormal", job.flush_denormal),
               version=", ".join(f"{k} {v}" for k, v in (result.versions or {}).items()),
               notes=result.notes or {},
               meta={k: getattr(result, k) for k in ("runtime", "versions", "source_sha256", "import_s",
                                                       "build_s", "notes", "rule_s")})
    if result.status != "ok":
        return doc
    if job.mode == "bench":
        # The GEMM yardstick is the CPU's: against it a GPU run's "efficiency" meant nothing
        # (334% on an H100), so a GPU run has none until a GPU yardstick exists.
        on_cpu = doc.get("device") != "cuda"
        doc.update(timing(result, doc["flops_per_step"], run.gemm_gflops if on_cpu else None,
                          forward=doc["timed"] == "forward"))
    doc.update(verdict(result.verify))
    return doc


def timing(result: Result, flops_per_step: float, gemm_gflops: float | None, forward: bool = False) -> dict:
    """Statistics of the measured steps, the checks, the FLOP rate and the efficiency.
    A forward-only run updates nothing, so its loss has no reason to decrease."""
    measured = [x["runtime_s"] for x in result.steps if x["phase"] == "measure"]
    summary = stats.summarize(measured)
    checks = stats.run_checks([x["loss"] for x in result.steps], measured, result.loop_s)
    if forward:
        checks["decreasing"] = None
    median = summary["median_s"]
    gflops = flops_per_step / median / 1e9 if median > 0 else None  # a zero-time step has no rate
    return {
        **summary, "parameters": result.parameters, "step_log": result.steps, "steps": len(measured),
        "warmup": len(result.steps) - len(measured), "warmup_reason": result.warmup_reason,
        "stop_reason": result.stop_reason,
        "first_step_s": result.steps[0]["runtime_s"] if result.steps else None,
        "check_details": checks, "checks": stats.checks_label(checks), "gflops": gflops,
        "efficiency_pct": 100 * gflops / gemm_gflops if gflops and gemm_gflops else None,
        "peak_rss_mib": result.peak_rss_mib, "peak_gpu_mib": result.peak_gpu_mib,
    }


def verdict(v: dict | None) -> dict:
    """The worker's verification step compared with the float64 reference."""
    if v is None:
        return {"verified": ""}
    if "skipped" in v:
        return {"verified": "", "verify_message": "skipped: " + v["skipped"]}
    import numpy as np

    from .data import canonical_weights, make_batch
    from .verify import compare

    try:
        s = Scenario(**v["scenario"])
        weights = {k: np.asarray(x, dtype=np.float32) for k, x in v["weights"].items()}
    except (TypeError, ValueError) as e:
        return {"verified": "no", "verify_message": f"malformed verification step: {e}"}
    checked = compare(s, make_batch(s), canonical_weights(s), v["loss"], weights, v.get("notes") or {},
                      v.get("forward_loss"))
    return {"verified": "yes" if checked.ok else "no", "verify_message": checked.message,
            "verify_loss_err": checked.loss_err, "verify_worst": list(checked.worst)}


def progress_text(steps: list[dict], job: Job) -> str:
    if not steps:
        return "no step finished: still compiling or building"
    last = steps[-1]
    total = f"/{job.warmup + job.steps}" if job.stop is None else f" of at most {job.stop['max_warmup'] + job.steps}"
    return f"last reported: {last['phase']} step {last['step'] + 1}, {len(steps)}{total} steps reported"


def pooled_check(verdicts: list) -> bool | None:
    """One check over the processes: None (not applicable, e.g. "decreasing" for a forward
    run) where no process applied it, else whether every process that did passed."""
    applied = [v for v in verdicts if v is not None]
    return all(applied) if applied else None


def combine(parts: list[dict], planned: int) -> dict:
    """The document of one (scenario, implementation) measured in several worker
    processes (``--processes K``, pyperf's way: a slow minute of the machine lands in one
    process of each run, not in all the steps of one run), from the documents of its
    processes so far (``planned``: how many it will have).

    The headline statistics are those of every measured step of every process, pooled;
    ``process_spread_pct`` is the spread between the processes' medians (max - min, in
    percent of the pooled median) and ``process_ci_pct`` the typical spread within one
    (the median of their CI half-widths), so that the two can be read side by side. Steps
    are renumbered across processes (each keeps its ``process``). The verification step
    and the worker's metadata are the first process's (the others do not verify). A
    process that did not end ok makes the whole run that status, with the reason naming it.
    """
    per = [{"median_s": d.get("median_s"), "steps": d.get("steps"), "ci_halfwidth_pct": d.get("ci_halfwidth_pct"),
            "stop_reason": d.get("stop_reason"), "wall_s": d.get("wall_s"), "status": d["status"],
            "load_before": d.get("load_before"), "load_after": d.get("load_after")} for d in parts]
    counts = {"processes": len(parts), "process_stats": per}
    bad = next((n for n, d in enumerate(parts) if d["status"] != "ok"), None)
    if bad is not None:
        doc = dict(parts[bad])
        if planned > 1:
            doc["reason"] = f"process {bad + 1} of {planned}: {doc.get('reason') or doc['status']}"
        return {**doc, **counts}
    first = parts[0]
    steps, seen = [], {}
    for n, d in enumerate(parts, 1):
        for x in d.get("step_log") or []:
            seen[x["phase"]] = seen.get(x["phase"], -1) + 1
            steps.append({**x, "step": seen[x["phase"]], "process": n})
    measured = [x["runtime_s"] for x in steps if x["phase"] == "measure"]
    summary = stats.summarize(measured)
    details = [d.get("check_details") or {} for d in parts]
    checks = {k: pooled_check([c.get(k, True) for c in details]) for k in ("finite", "decreasing", "overhead")}
    checks["overhead_pct"] = max((c.get("overhead_pct") or 0.0) for c in details)
    median = summary["median_s"]
    gflops = first["flops_per_step"] / median / 1e9 if median > 0 else None
    efficiency = (first["efficiency_pct"] * gflops / first["gflops"]
                  if gflops and first.get("gflops") and first.get("efficiency_pct") is not None else None)
    medians = [p["median_s"] for p in per]
    halfwidths = [p["ci_halfwidth_pct"] for p in per if p["ci_halfwidth_pct"] is not None]
    return {
        **first, **summary, **counts, "step_log": steps, "steps": len(measured), "warmup": len(steps) - len(measured),
        "check_details": checks, "checks": stats.checks_label(checks), "gflops": gflops, "efficiency_pct": efficiency,
        "wall_s": sum(d.get("wall_s") or 0.0 for d in parts), "load_after": parts[-1].get("load_after"),
        "peak_rss_mib": max((d.get("peak_rss_mib") or 0.0) for d in parts) or None,
        "process_spread_pct": 100 * (max(medians) - min(medians)) / median if len(parts) > 1 and median > 0 else None,
        "process_ci_pct": statistics.median(halfwidths) if halfwidths and len(parts) > 1 else None,
    }
