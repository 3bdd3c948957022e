"""Facts about the machine and the code that every run records in its meta.json
(framework-free): they travel with the results, wherever the run went."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


# CPU flags that change how fast the same code runs: wide vectors, matrix units, and
# AVX-512's denormal behaviour (an unflushed denormal costs far more on some of these).
FLAGS = {"avx2": "avx2", "avx512f": "avx512", "amx_tile": "amx"}


def machine() -> dict:
    """What tells two machines apart: CPU model and flags, cores, memory, load, GPUs."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
        flags = set(next(line.split(":", 1)[1].split() for line in lines if line.startswith("flags")))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "hostname": platform.node(),
            "cpu_flags": [name for flag, name in FLAGS.items() if flag in flags],
            "memory_gib": memory_gib(), "load": list(os.getloadavg()), "gpus": gpus()}


def memory_gib() -> float | None:
    try:
        kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:"))
    except (OSError, StopIteration, ValueError):
        return None
    return round(kib / 2**20, 1)


def gpus() -> list[str]:
    """The NVIDIA GPUs' names (``nvidia-smi``), none where there is no driver."""
    try:
        p = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                           text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in p.stdout.splitlines() if line.strip()] if p.returncode == 0 else []


def git_revision() -> dict:
    """The revision of the rnnbench checkout, and whether it has uncommitted changes."""
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        if rev.returncode == 0:
            return {"revision": rev.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        pass
    return {"revision": "unknown", "dirty": None}


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask), not all the machine has."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
