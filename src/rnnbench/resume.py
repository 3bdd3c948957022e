"""Resuming a results directory (``rnnbench run --resume``, framework-free): which
recorded runs the current code would repeat as they are, and taking the directory over."""

from __future__ import annotations

from pathlib import Path

from . import results, rundir
from .impls import IMPLEMENTATIONS, framework_versions
from .sources import source_hash


def reusable(doc: dict, sizes: dict, processes: int = 1, timed: str = "train") -> bool:
    """Whether a recorded run is one the current code would repeat as it is: finished
    (ok, or skipped by the implementation, not for a missing framework), at the same
    sizes, timing the same step (``timed``: train or forward), with the same framework
    versions and the same implementation source, and, if measured, in all of its
    ``processes`` (an interrupted matrix may have run only some)."""
    meta = doc.get("meta") or {}
    complete = doc.get("status") == "skipped" or (doc.get("processes") or 1) == processes
    return (doc.get("status") in ("ok", "skipped") and bool(meta) and complete and doc.get("shape") == sizes
            and (doc.get("timed") or "train") == timed
            and meta.get("versions") == framework_versions(IMPLEMENTATIONS[doc["impl"]].framework)
            and meta.get("source_sha256") == source_hash(doc["impl"]))


def finished(doc: dict) -> bool:
    """A run that ended with a result (one not to lose), not one that failed to."""
    return doc.get("status") in ("ok", "skipped") and bool(doc.get("meta"))


def kept_runs(docs: list[dict], planned: dict, processes: int = 1, timed: str = "train") -> dict:
    """The documents of ``docs`` that the matrix ``planned`` ((scenario, impl) -> sizes),
    each measured in ``processes`` processes timing ``timed`` steps, would repeat as they
    are (``reusable``), by (scenario, impl)."""
    return {(d["scenario"], d["impl"]): d for d in docs
            if (d["scenario"], d["impl"]) in planned
            and reusable(d, planned[(d["scenario"], d["impl"])], processes, timed)}


def reopen(out: Path, argv: list[str], meta: dict, planned: dict) -> tuple:
    """Continue the run in the results directory ``out``: keep its documents, move the
    finished runs of this matrix (``planned``: (scenario, impl) -> sizes) that would not be
    repeated as they are (the source or a framework changed) to an archive directory of
    their own, and let the rest (failed, timed out, interrupted) be replaced as they are run
    again. Updates ``meta``; returns the lock, the documents the directory keeps (in matrix
    order), the runs this matrix will not run again, and notices for the user."""
    with rundir.deferred_signals():
        lock, old, docs, notices = rundir.reopen(out, argv, meta)
        try:
            kept = kept_runs(docs, planned, meta.get("processes") or 1, meta.get("timed") or "train")
            stale = [d for d in docs if (d["scenario"], d["impl"]) in planned.keys() - kept.keys() and finished(d)]
            if stale:
                dest = rundir.set_aside(out, old, stale)
                notices.append(f"{len(stale)} finished run(s) whose sizes, --mode, source or framework versions changed "
                               f"moved to {dest}; they run again")
            for directory in (out, out / "runs"):
                results.remove_temp_files(directory)
            for sub in ("runs", "logs"):
                (out / sub).mkdir(exist_ok=True)
            meta.update(resumed_from=[*old.get("resumed_from", []), old.get("run_id")],
                        gemm=old.get("gemm") or meta["gemm"],
                        scenarios=list(dict.fromkeys([*old.get("scenarios", []), *meta["scenarios"]])),
                        impls=list(dict.fromkeys([*old.get("impls", []), *meta["impls"]])))
            docs = results.in_order([d for d in docs if not any(d is x for x in stale)],
                                    meta["scenarios"], meta["impls"])
            results.write_json(out / "meta.json", meta)
            results.write_exports(out, docs)
        except BaseException as e:
            lock.release()
            if isinstance(e, OSError):
                raise results.RecordError(f"cannot resume in {out}: {e.strerror or e}") from None
            raise
    notices.append(f"resuming {out}: {len(kept)} of {len(planned)} runs kept, {len(planned) - len(kept)} to run")
    return lock, docs, kept, notices
