"""How many steps a run takes: warm-up until step times stop falling, then measurement
until the median is known to a precision, within a budget (the way pyperf calibrates and
benchopt stops). Runs in the worker, between steps, after a step's clock is read; also
the statistics both sides share: the bootstrap CI of the median (rnnbench.stats reports
the same one) and the drift of a sequence of step times.

It runs under Python 3.6 and NumPy 1.13 too, as rnnbench.protocol does (no dataclasses,
no postponed annotations): the legacy worker for the 2017 stack (rnnbench.legacy) times
its steps with ``timed_steps`` and these rules, as today's worker does.

Warm-up (``Warmup``): the profile's count of steps, then, with a precision P (and a rule
that allows steps past the count: ``max_warmup``), more while the step times are still falling: one more step while the last was faster, by more than
P, than the median of the (up to) ``FALL_WINDOW`` steps before it, the first step left
out of that median where there are others (it holds one-time compilation). A fall
smaller than P does not matter at that precision. At most ``max_warmup`` steps in all,
and the steps past the count stop once they have taken ``WARMUP_SHARE`` of the measuring
budget. A count of 0 means no warm-up at all.

Measurement (``Measure``): exactly the count asked for ("fixed"), or, with a precision P,
until the 95% bootstrap CI of the median lies within +-P of the median ("precision";
never before ``min_steps``), at most ``max_steps`` steps ("max-steps"), and no step is
started once the measured time plus the median step so far would pass ``max_time_s``
("max-time"). The budget wins over ``min_steps``, down to ``BUDGET_FLOOR`` steps (4: 3
are the fewest that show a spread, and 4 against 4 the fewest with which
``rnnbench compare``'s exact test can reach p < 0.05, 2/70): a run whose steps are too slow
for its budget stops early and says so. The CI is computed at ``min_steps``, at every step up to
``CHECK_EVERY_STEP_UNTIL``, then each time the count has grown by a tenth: that keeps
the cost per step well under a millisecond (tests/test_stopping.py measures it), at the
price of up to a tenth more steps than a check at every step would take. The worker leaves the time the rule
takes out of the measured loop's wall time, so the loop-overhead check never sees it.
"""

import bisect
import json
import math
import statistics
import time

import numpy as np

from .protocol import STOP_REASONS, WARMUP_REASONS, step_record

FIXED, PRECISION, MAX_STEPS, MAX_TIME = STOP_REASONS
WARMUP_FIXED, SETTLED, MAX_WARMUP = WARMUP_REASONS

BOOTSTRAP_SAMPLES = 2000
CI_PERCENTILES = (2.5, 97.5)  # a 95% interval
FALL_WINDOW = 3
WARMUP_EXTRA = 10  # warm-up steps past the count, at most
WARMUP_SHARE = 0.25  # of the measuring budget, for the warm-up steps past the count
SPREAD_STEPS = 3  # fewer steps cannot show a spread: no CI width, no stop on precision
BUDGET_FLOOR = 4  # the time budget stops no run below this (compare: 4 vs 4 steps reach p = 0.029)
CHECK_EVERY_STEP_UNTIL = 20
CHECK_GROWTH = 10  # then a CI each time the count grows by 1/CHECK_GROWTH
# Drift: a trend at z >= DRIFT_Z (two-sided p < 0.003: about one false flag in 300 runs
# without drift; 8 steps can show one) that moves the median by DRIFT_LIMIT or more.
DRIFT_Z = 3.0
DRIFT_LIMIT = 0.05
PROGRESS_EVERY_S = 1.0


def median_ci(times):
    """The 95% bootstrap CI of the median: (low, high), seeded so that the same steps give
    the same interval wherever it is computed. Each resample is drawn as positions in the
    sorted times, so that its median comes from partitioning small integers rather than
    floats: half the cost of ``np.median`` on the resampled times, the same medians."""
    ordered = np.sort(np.asarray(times, dtype=float))
    n = ordered.size
    shape, dtype = (BOOTSTRAP_SAMPLES, n), np.min_scalar_type(n - 1)
    if hasattr(np.random, "default_rng"):
        draws = np.random.default_rng(0).integers(0, n, size=shape, dtype=dtype)
    else:  # NumPy < 1.17 (the legacy worker's stop rule): the same kind of interval, other draws
        draws = np.random.RandomState(0).randint(0, n, size=shape, dtype=dtype)
    middle = [(n - 1) // 2, n // 2]  # one position for an odd count, two to average for an even one
    medians = ordered[np.partition(draws, middle, axis=1)[:, middle]].mean(axis=1)
    low, high = np.percentile(medians, CI_PERCENTILES)
    return float(low), float(high)


def ci_halfwidth(median, low, high):
    """The CI's half-width as a fraction of the median: its farther end (it need not be
    symmetric)."""
    return max(median - low, high - median) / median


def drift(times):
    """(change, trend): the median of the last third of the steps less that of the first
    third, as a fraction of the median of all (medians: a busy moment or two do not move
    it), and "up" or "down" where the steps trend that way (a Mann-Kendall test: how many
    later steps are slower rather than faster than earlier ones, z >= DRIFT_Z) with a
    change of DRIFT_LIMIT or more, "" where they do not. (None, None) for fewer than
    SPREAD_STEPS steps."""
    t = np.asarray(times, dtype=float)
    n = t.size
    median = float(np.median(t)) if n else 0.0
    if n < SPREAD_STEPS or median <= 0:
        return None, None
    third = n // 3
    change = (float(np.median(t[-third:])) - float(np.median(t[:third]))) / median
    s = sum(float(np.sign(t[k + 1:] - t[k]).sum()) for k in range(n - 1))
    z = (abs(s) - 1) / math.sqrt(n * (n - 1) * (2 * n + 5) / 18.0)  # with continuity correction
    if z < DRIFT_Z or abs(change) < DRIFT_LIMIT:
        return change, ""
    return change, "up" if change > 0 else "down"


def timed_steps(step, rule, phase, progress):
    """Time ``step()`` until ``rule`` (a Warmup or Measure) is done, writing step records
    to the ``progress`` file (at most once a second, and the last). Returns the records,
    the loop's wall time less the rule's, and the rule's: a harness cost the overhead
    check is not about, measured so that it can be left out exactly."""
    records = []
    rule_s = 0.0
    last_flush = loop_start = time.perf_counter()
    while not rule.done:
        t0 = time.perf_counter()
        loss = step()
        t1 = time.perf_counter()
        records.append(step_record(phase, len(records), t1 - t0, float(loss)))
        r0 = time.perf_counter()
        rule.add(t1 - t0)  # outside the timed region, as everything below
        rule_s += time.perf_counter() - r0
        if t1 - last_flush >= PROGRESS_EVERY_S or rule.done:
            progress.write(json.dumps(records[-1]) + "\n")
            progress.flush()
            last_flush = time.perf_counter()
    return records, time.perf_counter() - loop_start - rule_s, rule_s


def run_steps(step, job, out):
    """The job's (rnnbench.protocol.Job) warm-up and measured steps, as its stop rule
    says, recorded in the Result ``out``: ``steps``, ``loop_s``, ``rule_s`` and why each
    phase ended. What today's worker and the legacy worker both run."""
    warmup, measure = rules(job.warmup, job.steps, job.stop)
    with open(job.progress, "w") as progress:
        warm, _, _ = timed_steps(step, warmup, "warmup", progress)
        measured, out.loop_s, out.rule_s = timed_steps(step, measure, "measure", progress)
    out.steps = warm + measured
    out.warmup_reason, out.stop_reason = warmup.reason, measure.reason


def stop_rule(precision, min_steps, max_time_s, warmup, settle=True):
    """The stop rule a job carries (rnnbench.protocol: Job.stop) for a run of ``warmup``
    warm-up steps measured to ``precision`` (a fraction), its maximum step count being
    the job's ``steps``; ``settle``: more warm-up steps while step times still fall (up
    to WARMUP_EXTRA), else exactly ``warmup``."""
    return {"precision": precision, "min_steps": min_steps, "max_time_s": max_time_s,
            "max_warmup": warmup + (WARMUP_EXTRA if settle else 0)}


def rules(warmup, steps, stop=None):
    """The job's two rules, (Warmup, Measure): fixed counts where ``stop`` is None; a
    fixed warm-up where the rule allows no step past the count (``max_warmup``)."""
    if stop is None:
        return Warmup(warmup), Measure(steps)
    settles = stop["max_warmup"] > warmup
    return (Warmup(warmup, stop["precision"], stop["max_warmup"], WARMUP_SHARE * stop["max_time_s"])
            if settles else Warmup(warmup),
            Measure(steps, stop["precision"], stop["min_steps"], stop["max_time_s"]))


class Warmup(object):
    """Warm-up steps: call ``add(seconds)`` after each until ``done``; ``reason`` says why
    it ended (WARMUP_REASONS). Without a ``threshold``, exactly ``count`` steps."""

    def __init__(self, count, threshold=None, max_steps=None, max_extra_s=math.inf):
        self.count = count
        self.threshold = threshold
        self.max_steps = count if max_steps is None else max_steps
        self.max_extra_s = max_extra_s
        self.times = []
        self.reason = WARMUP_FIXED if count == 0 else None

    @property
    def done(self):
        return self.reason is not None

    def add(self, seconds):
        self.times.append(seconds)
        n = len(self.times)
        if n < self.count:
            return
        if self.threshold is None:
            self.reason = WARMUP_FIXED
        elif n >= 2 and not falling(self.times, self.threshold):
            self.reason = SETTLED
        elif n >= self.max_steps or sum(self.times[self.count:]) >= self.max_extra_s:
            self.reason = MAX_WARMUP


def falling(times, threshold):
    """The last step was faster, by more than ``threshold``, than the median of the
    (up to) FALL_WINDOW before it, leaving out the first step where there are others."""
    before = times[1:-1] or times[:-1]
    return times[-1] < (1 - threshold) * statistics.median(before[-FALL_WINDOW:])


class Measure(object):
    """Measured steps: call ``add(seconds)`` after each until ``done``; ``reason`` says why
    it ended (STOP_REASONS). Without a ``precision``, exactly ``max_steps`` steps."""

    def __init__(self, max_steps, precision=None, min_steps=1, max_time_s=math.inf):
        self.max_steps = max_steps
        self.precision = precision
        self.max_time_s = max_time_s
        self.times = []
        self.ordered = []  # the same, sorted: the median at every step for the price of an insert
        self.total_s = 0.0
        self.next_check = max(min_steps, SPREAD_STEPS)
        self.reason = None

    @property
    def done(self):
        return self.reason is not None

    def median(self):
        o, n = self.ordered, len(self.ordered)
        return o[n // 2] if n % 2 else (o[n // 2 - 1] + o[n // 2]) / 2

    def add(self, seconds):
        self.times.append(seconds)
        bisect.insort(self.ordered, seconds)
        self.total_s += seconds
        n = len(self.times)
        if self.precision is None:
            self.reason = FIXED if n >= self.max_steps else None
        elif n >= self.next_check and self.precise():
            self.reason = PRECISION
        elif n >= self.max_steps:
            self.reason = MAX_STEPS
        elif n >= BUDGET_FLOOR and self.total_s + self.median() > self.max_time_s:
            self.reason = MAX_TIME

    def precise(self):
        """Whether the CI of the median is within the precision now; sets the next check."""
        n = len(self.times)
        self.next_check = n + (1 if n < CHECK_EVERY_STEP_UNTIL else n // CHECK_GROWTH)
        median = self.median()
        return median > 0 and ci_halfwidth(median, *median_ci(self.times)) <= self.precision
