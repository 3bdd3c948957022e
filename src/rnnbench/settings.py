"""A run's settings and its meta.json (framework-free)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from . import __version__, machine, results
from .launch import compile_cache
from .scenarios import Profile


@dataclass
class Settings:
    profile: Profile
    warmup: int
    steps: int
    threads: int
    device: str = "auto"
    flush_denormal: bool = True
    timeout_s: float = 900.0
    time_steps: int | None = None
    mode: str = "bench"  # "bench": time each run; "verify": only check one step (``rnnbench verify``)
    verify: bool = True  # bench: also run one step at the verification size and check it
    timed: str = "train"  # bench: what a timed step is: "train" (forward, backward, update) | "forward" (loss only)
    out: Path = Path("results")
    resume: bool = False  # continue the run in ``out``: keep its finished runs that match, run the rest
    worker: tuple[str, ...] = ("-m", "rnnbench.worker")  # what follows ``python`` to start a worker
    stop: dict | None = None  # bench: the stop rule (rnnbench.stopping.stop_rule); None: fixed counts
    processes: int = 1  # bench: worker processes per run, interleaved across the matrix (``--processes``)
    fresh_cache: bool = False  # every worker compiles into a new, empty cache (``--fresh-cache``): cold compiles

    def compile_cache(self) -> str | None:
        """The compile cache every worker shares, or None for a fresh one per worker."""
        return compile_cache(self.profile.shared_cache, self.fresh_cache)


def now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def settings_meta(st: Settings) -> dict:
    """The run-wide settings in meta.json: those a resumed run must share (``rundir.RESUME_KEYS``)."""
    return {"profile": st.profile.name, "mode": st.mode, "threads": st.threads, "flush_denormal": st.flush_denormal,
            "device": st.device, "warmup": st.warmup, "steps": st.steps, "stop": st.stop,
            "time_steps": st.time_steps, "verify": st.verify, "timed": st.timed, "processes": st.processes,
            "fresh_cache": st.fresh_cache}


def new_meta(st: Settings, run_id: str, scenarios: list, impls: list[str], argv: list[str]) -> dict:
    """A run's meta.json, saying "running"."""
    return {
        "schema": results.META_SCHEMA, "run_id": run_id, **settings_meta(st),
        "state": "running", "started": now(), "finished": None, "interrupted": False,
        "argv": list(argv), "machine": machine.machine(), "git": machine.git_revision(), "rnnbench": __version__,
        "timeout_s": st.timeout_s, "scenarios": [s.name for s in scenarios], "impls": list(impls),
        "compile_cache": st.compile_cache() or ("fresh per worker (--fresh-cache)" if st.fresh_cache
                                                else "fresh per worker"),
        "workers": "forked from a fork server per framework that preloads it" if st.profile.fork_server
                   else "a fresh process each",
        "gemm": {"gflops": None, "threads": st.threads,
                 "error": "not measured" if st.mode == "bench" else "verify only"},
    }
