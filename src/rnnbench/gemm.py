"""The machine's single-precision GEMM rate, the yardstick for efficiency figures.

``in_subprocess`` runs ``python -m rnnbench.gemm`` in a process with the same thread
settings as the workers, which prints one JSON object. NumPy's BLAS does the product: a
large square float32 matmul, best of several repetitions.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

COMMAND = [sys.executable, "-m", "rnnbench.gemm"]
TIMEOUT_S = 300


def in_subprocess(threads: int, env: dict[str, str]) -> dict:
    """The rate measured in a fresh process with environment ``env`` (the workers' thread
    variables), or gflops None and the error: a run goes on without an efficiency figure."""
    try:
        p = subprocess.run(COMMAND, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        if p.returncode != 0:
            raise ValueError((p.stderr.strip().splitlines() or [f"exit code {p.returncode}"])[-1])
        return {**json.loads(p.stdout), "threads": threads}
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:
        return {"gflops": None, "threads": threads, "error": str(e)}


def measure(n: int = 2048, repeats: int = 7) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    a @ b  # warm-up: thread pool start, page faults
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return {"gflops": 2 * n**3 / best / 1e9, "n": n, "best_s": best, "library": _blas()}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _blas() -> str:
    import numpy as np

    try:
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"numpy {np.__version__} {info.get('name', '?')} {info.get('version', '')}".strip()
    except Exception:  # the layout of show_config is not a stable API
        return f"numpy {np.__version__}"


if __name__ == "__main__":
    json.dump(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 2048), sys.stdout)
