"""What the runner watches while a run lasts (framework-free): the machine's load, this
runner's own share of it, and where a worker is, from its progress file."""

from __future__ import annotations

import math
import os
import time

from . import machine
from .protocol import Job, read_progress

LOAD_WINDOW_S = 60.0  # the kernel's 1-minute load average decays as exp(-t / 60 s)


def load_average() -> list[float]:
    """The machine's 1-, 5- and 15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


class OwnLoad:
    """This runner's own share of the 1-minute load average: its workers' threads, as
    the kernel averages them (every 5 s, decaying as exp(-t / 60 s)). Taken out of the
    load before a run, what is left is the rest of the machine. An upper bound: a
    worker does not keep all its threads busy all the time (imports, compiles)."""

    def __init__(self):
        self.share, self.at = 0.0, time.monotonic()

    def now(self) -> float:
        return self.share * math.exp(-(time.monotonic() - self.at) / LOAD_WINDOW_S)

    def ran(self, threads: int, seconds: float) -> None:
        """``threads`` threads were busy for the last ``seconds``."""
        self.share = self.now() + threads * (1 - math.exp(-seconds / LOAD_WINDOW_S))
        self.at = time.monotonic()


# Load the rest of the machine may add before a warning. OwnLoad is an estimate (the runner's
# own work between workers is not in it) and an idle machine's daemons load it a little: with
# every core in use and nothing else running, a 75-worker sweep here was warned 7 times
# without it, for loads of 0.0 to 0.9 (5 of them 0.1 or less).
BUSY_TOLERANCE = 0.5


def busy_warning(load: float, own: float, threads: int) -> str | None:
    """A warning when the rest of the machine loads more cores than ``threads`` leave free
    (by more than ``BUSY_TOLERANCE``)."""
    cores = machine.usable_cores()
    others = max(0.0, load - own)
    if others <= cores - threads + BUSY_TOLERANCE:
        return None
    return (f"machine busy: load {others:.1f} from other processes (1-min average) > {max(cores - threads, 0)} "
            f"of {cores} cores left free by {threads} threads; this run's times may be slow")


def phase(job: Job) -> str:
    """Where a running worker is, from its progress file: none yet while it imports its
    framework and builds the model; empty while the first step runs (compiles, mostly);
    then its steps; all of them reported, the verification step (or its exit)."""
    if job.mode == "verify":
        return "import, build, verify"
    if not os.path.exists(job.progress):
        return "import, build"
    steps = read_progress(job.progress)
    if not steps:
        return "first step (compile)"
    if len(steps) >= job.warmup + job.steps:
        return "verify" if job.verify else "finishing"
    last = steps[-1]
    if last["phase"] == "warmup":
        # an adaptive warm-up may run past its count; a precision rule may stop early
        return f"warm-up step {last['step'] + 1}" + ("" if job.stop else f"/{job.warmup}")
    return f"measure step {last['step'] + 1}/" + (f"\u2264{job.steps}" if job.stop else f"{job.steps}")
