"""How a step's cost grows with the work (framework-free; NumPy only): the sweeps in a
run's results, a cost model fitted per implementation, and the crossovers where the
fastest implementation changes.

A *sweep* is every custom point (``rnnbench.network``: a name that says its shape) that
differs from the others in one size only; ``--sweep batch=...`` makes one per value of
the other swept sizes. Per implementation and sweep:

* time steps: ``median = fixed + per_step * T`` by least squares on the relative errors
  (timing noise is relative: a plain fit would be the longest point's alone): ``fixed`` is
  what a step costs whatever its length (Python dispatch, the head, the optimizer),
  ``per_step`` what each time step adds. A step cannot cost less than nothing: where the
  points grow faster than linearly (measured here: torch-nn's 1x320 LSTM 119 ms at T = 200,
  297 ms at T = 400) the free fit's ``fixed`` comes out negative, and the model is refitted
  through the origin (``fixed`` 0);
* batch, hidden, layers, features: ``median = c * x ** k`` by least squares on the logs;
  ``k`` near 0 means the size is nearly free (overhead-bound), near 1 proportional, and
  near 2 for hidden (the recurrent product is H x H) means the matrix products dominate.

A crossover is where the fastest implementation at one swept value is not the fastest at
the next; its position is where the two implementations' log-log lines cross between them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import fmt
from .network import SWEEP_KEYS, shape_of

LABELS = {"batch": "batch", "time_steps": "time steps", "hidden": "hidden size", "layers": "layers",
          "features": "features"}
SYMBOLS = {"batch": "B", "time_steps": "T", "hidden": "H", "layers": "L", "features": "F"}


@dataclass
class Fit:
    """A cost model: ``kind`` "linear" (``a`` fixed seconds, ``b`` seconds per time step)
    or "power" (``a`` the factor, ``b`` the exponent); ``r2`` on the fitted scale."""

    kind: str
    a: float
    b: float
    r2: float | None


@dataclass
class Crossover:
    key: str
    before: str  # the fastest implementation at ``low``
    after: str  # the fastest at ``high``
    low: int
    high: int
    at: float  # where their lines cross (log-log interpolation)


@dataclass
class Sweep:
    """One swept size with the rest of the shape fixed; ``points``: impl -> [(x, median,
    CI low, CI high)] in x order (the CI bounds may be None)."""

    key: str
    fixed: dict
    points: dict[str, list[tuple]] = field(default_factory=dict)

    @property
    def title(self) -> str:
        """``lstm-1x320-ce, (B, T, F) = (B, 100, 123)``: the swept size by its letter."""
        f = {**self.fixed, self.key: SYMBOLS[self.key]}
        return (f"{f['cell']}-{f['layers']}x{f['hidden']}{'bi' if f['bidirectional'] else ''}-{f['loss']}, "
                f"(B, T, F) = ({f['batch']}, {f['time_steps']}, {f['features']})")

    @property
    def values(self) -> list[int]:
        return sorted({x for pts in self.points.values() for x, *_ in pts})

    def fit(self, impl: str) -> Fit | None:
        pts = self.points.get(impl, [])
        return fit(self.key, [p[0] for p in pts], [p[1] for p in pts])

    def fastest(self) -> dict[int, str]:
        """Swept value -> the implementation with the lowest median there."""
        best: dict[int, tuple[float, str]] = {}
        for impl, pts in self.points.items():
            for x, median, *_ in pts:
                if x not in best or median < best[x][0]:
                    best[x] = (median, impl)
        return {x: best[x][1] for x in sorted(best)}

    def crossovers(self) -> list[Crossover]:
        out = []
        fastest = list(self.fastest().items())
        for (x0, a), (x1, b) in zip(fastest, fastest[1:]):
            if a != b:
                out.append(Crossover(self.key, a, b, x0, x1, crossing(self.points[a], self.points[b], x0, x1)))
        return out


def fit(key: str, xs, medians) -> Fit | None:
    """The cost model of one implementation's points (see the module docstring); None
    with fewer than two distinct sizes."""
    x, y = np.asarray(xs, float), np.asarray(medians, float)
    if len(set(x)) < 2 or np.any(y <= 0) or np.any(x <= 0):
        return None
    if key == "time_steps":
        b, a = np.polyfit(x, y, 1, w=1 / y)
        if a < 0:
            a, b = 0.0, float(np.sum(x / y) / np.sum((x / y) ** 2))
        return Fit("linear", float(a), float(b), r_squared(y, a + b * x))
    k, log_c = np.polyfit(np.log(x), np.log(y), 1)
    return Fit("power", float(math.exp(log_c)), float(k), r_squared(np.log(y), log_c + k * np.log(x)))


def r_squared(y, fitted) -> float | None:
    total = float(np.sum((y - np.mean(y)) ** 2))
    return 1 - float(np.sum((y - fitted) ** 2)) / total if len(y) > 2 and total > 0 else None


def crossing(a: list[tuple], b: list[tuple], x0: int, x1: int) -> float:
    """Where implementation a's and b's log-log lines between x0 and x1 meet (a is faster
    at x0, b at x1); the geometric midpoint where one lacks a point."""
    at = lambda pts, x: next((m for px, m, *_ in pts if px == x), None)
    ends = [at(a, x0), at(b, x0), at(a, x1), at(b, x1)]
    if None in ends:
        return math.sqrt(x0 * x1)
    r0, r1 = math.log(ends[0] / ends[1]), math.log(ends[2] / ends[3])  # log(a / b): <= 0, then > 0
    f = r0 / (r0 - r1) if r0 != r1 else 0.5
    return math.exp(math.log(x0) + f * (math.log(x1) - math.log(x0)))


def find_sweeps(rows) -> list[Sweep]:
    """The sweeps among ok rows (dicts with scenario, impl, median_s, ci_low_s,
    ci_high_s): for each size, the custom points that differ in it alone, where it takes
    at least two values."""
    shaped = [(shape_of(r["scenario"]), r) for r in rows]
    shaped = [(s, r) for s, r in shaped if s is not None and _positive(r.get("median_s"))]
    sweeps = []
    for key in SWEEP_KEYS:
        groups: dict[tuple, Sweep] = {}
        for s, r in shaped:
            fixed = {k: v for k, v in s.items() if k != key}
            sw = groups.setdefault(tuple(sorted(fixed.items())), Sweep(key, fixed))
            sw.points.setdefault(r["impl"], []).append(
                (s[key], float(r["median_s"]), _number(r.get("ci_low_s")), _number(r.get("ci_high_s"))))
        for sw in groups.values():
            if len(sw.values) >= 2:
                sw.points = {i: sorted(p) for i, p in sw.points.items()}
                sweeps.append(sw)
    return sweeps


def _number(v) -> float | None:
    return float(v) if _positive(v) else None


def _positive(v) -> bool:
    try:
        return v is not None and math.isfinite(float(v)) and float(v) > 0
    except (TypeError, ValueError):
        return False


def step_name(meta: dict) -> str:
    """What a run timed, as its report says it: ``--mode forward`` or a training step."""
    return "forward pass" if meta.get("timed") == "forward" else "training step"


INTRO = ("Each sweep: the median time per {what} against one size, the others fixed, log-log, with each "
         "implementation's fitted cost model: for time steps *fixed* + *per time step* x T (least squares); for "
         "the other sizes the exponent k of time ~ size^k (least squares on the logs: k near 0, the size is "
         "nearly free; near 1, proportional). *R²* of the fit (with three points or more). A crossover is where "
         "the fastest implementation changes, at the size where the two lines cross.")


@dataclass
class Section:
    """One sweep as the report shows it: a heading, a table of fitted models, and lines
    on the fastest implementation and the crossovers."""

    sweep: Sweep
    heading: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str]


def sections(results) -> list[Section]:
    """The report's scaling section, one part per sweep in ``results`` (analysis.Results)."""
    out = []
    for sw in find_sweeps(results.ok.to_dict("records")):
        label = LABELS[sw.key]
        rows = []
        for impl in sw.points:
            f = sw.fit(impl)
            r2 = fmt.number(f.r2) if f and f.r2 is not None else fmt.MISSING
            model = [fmt.MISSING] * 2 if f is None else (
                [fmt.seconds(f.a), fmt.seconds(f.b)] if f.kind == "linear" else [f"{f.b:.2f}", fmt.seconds(f.a)])
            rows.append([impl, str(len(sw.points[impl])), *model, r2])
        fastest = sw.fastest()
        notes = ["Fastest: " + "; ".join(f"{impl} at {label} {', '.join(str(x) for x in fastest if fastest[x] == impl)}"
                                         for impl in dict.fromkeys(fastest.values())) + "."]
        notes += [f"Crossover: {c.before} -> {c.after} between {label} {c.low} and {c.high} "
                  f"(the lines cross at about {c.at:.3g})." for c in sw.crossovers()]
        header = ["fixed", "per time step"] if sw.key == "time_steps" else ["exponent k", f"time at {label} 1"]
        out.append(Section(sw, f"{label.capitalize()} sweep: {sw.title}",
                           ["Implementation", "points", *header, "R²"], rows, notes))
    return out
