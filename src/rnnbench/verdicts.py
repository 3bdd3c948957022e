"""Passed verifications kept across runs (framework-free), for the quick profile.

Whether an implementation's training step matches the float64 reference
(``rnnbench.verify``) depends on nothing that changes from one quick run to the next
unless the code or the software does: the verification step runs at the smoke size from
fixed weights and data. Yet it cost each run a second build and compile of the model: in
a quick matrix on an empty cache on the 2-core machine, the worker time outside imports,
build and steps (mostly that) was 0-9 s for most rows, 25 s for pytensor-jax and 91-117 s
for pytensor-scan on the 4x320 networks, 431 s of the matrix's 1708 s. So a profile that keeps verdicts (``Profile.keep_verdicts``)
stores each passed verification in its compile cache, under a key made of everything the
verdict depends on:

* the implementation and its source hash (``rnnbench.sources``: its module, the modules it
  imports, its framework's runtime module);
* the framework's versions (``Framework.versions``);
* the checker's own code (this package's reference, verification, data and assembly
  modules), so that a stricter check re-verifies everything;
* the verification job: its scenario and hyper-parameters, what is timed (a forward run
  also checks the forward loss), the device asked for, threads and denormal flag.

A later run whose key matches skips the verification step and records the kept verdict,
its message saying which run it comes from. Failed verifications are never kept: a row
that failed is checked again every time. ``--fresh-cache`` starts from an empty cache, so
it verifies every row again; so do the profiles that share no cache (seed, full).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .frameworks import FRAMEWORKS
from .impls import IMPLEMENTATIONS
from .sources import source_hash

DIR = "verdicts"  # in the compile cache
CHECKER = ("reference.py", "verify.py", "data.py", "assemble.py")
KEPT = ("verified", "verify_message", "verify_loss_err", "verify_worst")
PACKAGE = Path(__file__).resolve().parent
KEPT_FROM = "(kept from run "  # how a run document's verify_message says its verdict was kept


def verified_here(doc: dict) -> bool:
    """Whether a run document's worker ran the verification step (its verdict not kept)."""
    return doc.get("verified") in ("yes", "no") and KEPT_FROM not in str(doc.get("verify_message") or "")


def checker_hash() -> str:
    digest = hashlib.sha256()
    for name in CHECKER:
        digest.update(name.encode() + b"\0" + (PACKAGE / name).read_bytes())
    return digest.hexdigest()[:16]


def key(job) -> str:
    """The key of a job's verification (a ``rnnbench.protocol.Job`` whose ``verify`` is set)."""
    framework = FRAMEWORKS[IMPLEMENTATIONS[job.impl].framework]
    what = {"impl": job.impl, "source": source_hash(job.impl), "versions": framework.versions(),
            "checker": checker_hash(), "verify": job.verify, "timed": job.timed or "train",
            "device": job.device, "threads": job.threads, "flush_denormal": job.flush_denormal}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:32]


def lookup(cache: str, k: str) -> dict | None:
    """The kept verdict for key ``k``: the run document's verification fields, its message
    saying where it comes from; None if there is none (or it cannot be read)."""
    try:
        kept = json.loads((Path(cache) / DIR / f"{k}.json").read_text())
        fields = {f: kept[f] for f in KEPT}
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if fields["verified"] != "yes":
        return None
    fields["verify_message"] = (f"{fields['verify_message']} {KEPT_FROM}{kept.get('run_id', '?')}: "
                                "the same code, versions and check)")
    return fields


def keep(cache: str, k: str, doc: dict, run_id: str) -> None:
    """Keep a run document's passed verification under key ``k`` (write-then-rename, so a
    reader never sees half a file; a full disk only means the next run verifies again)."""
    if doc.get("verified") != "yes":
        return
    folder = Path(cache) / DIR
    tmp = folder / f".{k}.{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({**{f: doc.get(f) for f in KEPT}, "run_id": run_id}))
        os.replace(tmp, folder / f"{k}.json")
    except OSError:
        tmp.unlink(missing_ok=True)
