"""Statistics of per-step times and the seed's checks on a run (framework-free)."""

from __future__ import annotations

import math

import numpy as np

from .stopping import SPREAD_STEPS, ci_halfwidth, drift, median_ci

UNSTABLE_CV = 0.10  # stdev / mean above this: the run is flagged unstable (pyperf's rule)
OVERHEAD_LIMIT = 0.01  # loop wall time may exceed the sum of step times by at most 1%...
# ...or by 0.2 ms a step: below that, a gap is the OS scheduling the process out between
# two clock reads (seen at the millisecond steps of the smoke profile on a busy machine),
# not a cost of the harness, which does no more than append to a list between steps
# (and asks the stop rule whether to go on, a time the worker leaves out of the loop's).
OVERHEAD_FLOOR_S = 2e-4


def summarize(times) -> dict:
    """Median (headline), p10, p90, mean, stdev, a bootstrap 95% CI of the median (the one
    precision-targeted stopping judges by) with its half-width in percent of the median,
    and the drift of the sequence (rnnbench.stopping.drift)."""
    t = np.asarray(times, dtype=float)
    if t.size == 0:
        raise ValueError("no measured steps")
    low, high = median_ci(t)
    median = float(np.median(t))
    mean = float(t.mean())
    stdev = float(t.std(ddof=1)) if t.size > 1 else 0.0
    change, trend = drift(t)
    shows_spread = t.size >= SPREAD_STEPS  # if not: unstable too, and no CI width
    return {
        "median_s": median,
        "p10_s": float(np.percentile(t, 10)),
        "p90_s": float(np.percentile(t, 90)),
        "mean_s": mean,
        "stdev_s": stdev,
        "ci_low_s": low,
        "ci_high_s": high,
        "ci_halfwidth_pct": 100 * ci_halfwidth(median, low, high) if shows_spread and median > 0 else None,
        "drift_pct": None if change is None else 100 * change,
        "drift": trend,
        "stable": bool(shows_spread and stdev <= UNSTABLE_CV * mean),
    }


def check_finite(losses) -> bool:
    return all(math.isfinite(v) for v in losses)


def check_decreasing(losses) -> bool:
    """The loss goes down over the run: the last loss is below the first and a least-squares
    line through all losses slopes downwards. One loss cannot show a trend: passes."""
    v = np.asarray(losses, dtype=float)
    if v.size < 2:
        return True
    if not np.all(np.isfinite(v)):
        return False
    slope = np.polyfit(np.arange(v.size), v, 1)[0]
    return bool(v[-1] < v[0] and slope < 0)


def overhead(loop_s: float, step_times) -> float:
    """Fraction of the measured loop's wall time spent outside the timed steps."""
    return (loop_s - float(np.sum(step_times))) / loop_s if loop_s > 0 else 0.0


def run_checks(losses, step_times, loop_s: float) -> dict:
    """The seed's three checks: all losses finite, loss globally decreasing, and the loop's
    wall time within 1% of the sum of step times (the harness adds no hidden cost),
    with the per-step floor above."""
    frac = overhead(loop_s, step_times)
    floor = OVERHEAD_FLOOR_S * len(step_times) / loop_s if loop_s > 0 else 0.0
    return {
        "finite": check_finite(losses),
        "decreasing": check_decreasing(losses),
        "overhead": frac <= max(OVERHEAD_LIMIT, floor),
        "overhead_pct": round(100 * frac, 4),
    }


def checks_label(checks: dict) -> str:
    failed = [k for k in ("finite", "decreasing", "overhead") if checks.get(k) is False]
    return "ok" if not failed else "failed: " + ",".join(failed)
