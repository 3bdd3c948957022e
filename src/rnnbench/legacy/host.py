"""Today's side of the legacy worker (rnnbench.legacy): which interpreter runs it, whether
it has the 2017 packages, how it is started and the inputs file it reads.

The interpreter: ``$RNNBENCH_LEGACY_PYTHON``, else this checkout's ``.venv-legacy``
(``make legacy``), else pyenv's Python 3.6 or ``python3.6`` on PATH (which have the
packages only if someone installed them there). The first that exists is probed once
per process: a framework of the 2017 stack counts as installed if its modules are found
by that interpreter. Without one, or with a broken one, every legacy row is skipped with
the reason (``problem``), like any framework that is not installed, and the rest of the
matrix runs.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from . import FRAMEWORKS, HERE

ROOT = Path(HERE).parents[2]  # the checkout: src/rnnbench/legacy -> .
WORKER = os.path.join(HERE, "worker.py")
PROBE_TIMEOUT_S = 60.0
PROBE = """import importlib.util, json, sys
try:
    import pkg_resources
    dists = dict((d.project_name, d.version) for d in pkg_resources.working_set)
except ImportError:
    dists = {}
print(json.dumps({"version": "%d.%d.%d" % sys.version_info[:3], "dists": dists,
                  "found": [m for m in sys.argv[1:] if importlib.util.find_spec(m) is not None]}))"""
# OpenBLAS 0.2.20 (NumPy 1.13) takes CPUs newer than it for the oldest x86-64 kernels:
# AVX2 is what 2017's CPUs had, and what it would have chosen on them.
OPENBLAS_CORETYPE = "Haswell"


def candidates():
    """(where it came from, interpreter path), in the order they are tried (lazily: no
    look-up past the first that exists)."""
    if os.environ.get("RNNBENCH_LEGACY_PYTHON"):
        yield "RNNBENCH_LEGACY_PYTHON", os.environ["RNNBENCH_LEGACY_PYTHON"]
    yield "make legacy", str(ROOT / ".venv-legacy" / "bin" / "python")
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    for path in sorted(pyenv.glob("versions/3.6*/bin/python3.6"), reverse=True):
        yield "pyenv", str(path)
    if shutil.which("python3.6"):
        yield "PATH", shutil.which("python3.6")


def python() -> str | None:
    """The legacy interpreter: the first candidate that exists (RNNBENCH_LEGACY_PYTHON is
    taken as given, so that a wrong one says so instead of being passed over)."""
    for source, path in candidates():
        if source == "RNNBENCH_LEGACY_PYTHON" or os.path.isfile(path):
            return path
    return None


@functools.lru_cache(maxsize=None)
def probe(interpreter: str) -> tuple[set[str], str, dict[str, str]]:
    """The modules of the 2017 stack that ``interpreter`` finds, why it found none if it
    could not be run or answered nonsense (a broken venv; "" when all is well), and the
    versions of the distributions it has (what a legacy worker records, and what
    ``--resume`` compares them with)."""
    modules = sorted({m for _, mods in FRAMEWORKS.values() for m in mods})
    try:
        p = subprocess.run([interpreter, "-c", PROBE, *modules], capture_output=True, text=True,
                           timeout=PROBE_TIMEOUT_S, env={**os.environ, "PYTHONPATH": ""})
        answer = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as e:
        return set(), f"the legacy interpreter {interpreter} does not run ({type(e).__name__}: {e})", {}
    if answer is None:
        why = (p.stderr.strip().splitlines() or [f"exit status {p.returncode}"])[-1]
        return set(), f"the legacy interpreter {interpreter} does not run ({why[:200]})", {}
    if not answer["version"].startswith("3.6."):
        return set(), f"the legacy interpreter {interpreter} is Python {answer['version']}, not 3.6", {}
    return set(answer["found"]), "", answer.get("dists") or {}


def problem(modules: tuple[str, ...]) -> str:
    """Why a legacy framework needing ``modules`` cannot run ("" if it can)."""
    interpreter = python()
    if interpreter is None:
        return "no Python 3.6 for the 2017 stack (RNNBENCH_LEGACY_PYTHON, .venv-legacy, pyenv, python3.6)"
    found, why, _ = probe(interpreter)
    if why:
        return why
    lacking = [m for m in modules if m not in found]
    return f"{interpreter} lacks {', '.join(lacking)}" if lacking else ""


def versions(distributions) -> dict[str, str]:
    """The versions of ``distributions`` in the legacy interpreter, as its worker records them."""
    interpreter = python()
    found = {k.lower(): v for k, v in (probe(interpreter)[2] if interpreter else {}).items()}
    return {d: found[d.lower()] for d in distributions if d.lower() in found}


def command(job_path: str, env: dict[str, str]) -> tuple[str, list[str], dict[str, str]]:
    """How to start the legacy worker on a job: (interpreter, argv after it, environment).
    Raises OSError if there is no interpreter."""
    interpreter = python()
    if interpreter is None:
        raise OSError(problem(()))
    env = {**env, "OPENBLAS_CORETYPE": env.get("OPENBLAS_CORETYPE") or OPENBLAS_CORETYPE,
           "PYTHONPATH": "", "PYTHONNOUSERSITE": "1"}
    return interpreter, [WORKER, job_path], env


def write_inputs(job, path: Path) -> str:
    """The batch and canonical weights of the job's timed and verified scenarios in an
    .npz file that NumPy 1.13 reads (``bench.x``, ``bench.w.l0.fw.w_ih``, ...); its path."""
    from ..data import canonical_weights, make_batch
    from ..scenarios import Scenario

    arrays = {}
    for part, sizes in (("bench", job.scenario), ("verify", job.verify and job.verify["scenario"])):
        if sizes is None:
            continue
        s = Scenario(**sizes)
        b = make_batch(s)
        arrays.update({f"{part}.x": b.x, f"{part}.y": b.y, f"{part}.lengths": b.lengths,
                       f"{part}.label_lengths": b.label_lengths})
        arrays.update({f"{part}.w.{k}": v for k, v in canonical_weights(s).items()})
    np.savez(path, **arrays)
    return str(path)
