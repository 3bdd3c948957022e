"""The time plan: how long each run of a matrix will take, said before it starts
(framework-free). ``rnnbench plan`` prints it; the progress line of ``rnnbench run``
takes its ETA from it. A run's wall time is predicted as

    wall = other + compile + (warm-up steps + measured steps) * step(T)

``other`` is everything outside the steps (starting the worker, imports, building the
model, the verification step), ``compile`` what the first step takes beyond a step's
median (cold compiles), ``step(T)`` a step's median at T time steps. From the best
evidence at hand, for the same network (scenario, batch, features, hidden size):

1. runs recorded in ``--out`` (``runs/``, and ``archive/*/runs/``): "measured here" at the
   same T, else "scaled from T=..."; where such a run compiled into the cache or verified
   its step and the run now is predicted warm (below), its step time with its worker's
   import and build and the model's warm first step;
2. the cost model shipped in ``costs.csv``: a quick run (T = 100, 2 threads) on a 2-core
   machine, and, for the rows measured to grow faster than T, their step time at T = 1000
   on that machine ("model, ...": another machine's numbers, a first idea). Its first step
   and time outside the steps come twice: from a run on an empty compile cache, and from a
   run whose compiles and verifications were all in the cache ("warm"). A run whose passed
   verification is kept (``rnnbench.verdicts``: the same code, versions and check, so its
   compiles were made into the same cache) is predicted warm;
3. else a "guess": the implementation's FLOP rate in the model, at this network's FLOPs.

Scaling with T: step(T) = step(T0) * (T / T0)^k, with k = 1 (linear: most rows were
measured to grow 9-14x for 10x the time steps), or k from the two sizes nearest T where
the evidence has two. A k above ``SUPERLINEAR`` is flagged: that row's cost grows faster
than linearly with T, so a short-sequence ranking says little about it.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from . import fmt, results
from .errors import ResultsError
from .flops import train_flops
from .impls import IMPLEMENTATIONS
from .scenarios import Scenario, apply_profile
from .stopping import BUDGET_FLOOR
from .verdicts import verified_here

MODEL = Path(__file__).with_name("costs.csv")
MODEL_COLUMNS = ("scenario", "impl", "status", "batch", "time_steps", "features", "hidden",
                 "median_s", "first_step_s", "other_s", "warm_first_step_s", "warm_other_s")
SUPERLINEAR = 1.2  # T^1.2: 10x the time steps cost 16x; measured rows grew 9-14x, tf-xla 76-90x
GUESS_GFLOPS = 20.0  # an implementation the model does not know: a slow CPU row's rate
SKIP_S = 2.0  # a run its script skips: the worker starts and says no (1-3 s measured)
# Precision-stopped runs of the full profile on the 2-core machine (gru-1x320-ce and
# lstm-1x320-ce at T = 1000, the default 600 s budget, 29 runs): warm-up took the count and
# one more step in most runs (the rule compares the step after the count with the compiling
# one). How many measured steps reach the precision depends on how noisy a row's steps are,
# not on the budget: 6 to 343 steps to +-2% (median 46, mean 78 over the 27 runs that
# reached it; 7 noisy rows took 136-343, tf-cell's LSTM the most). The mean: it predicts the
# matrix's total (88.6 min for 90.7 taken), not each run (4 of 34 within 25%).
SETTLE_STEPS = 1
PRECISION_STEPS = 78  # expected measured steps at PRECISION_AT; a CI's width goes as 1/sqrt(n)
PRECISION_AT = 0.02
# A warm quick run's worker time outside its import, build and steps (start, stop, no
# verification): 18-20 s over the 60 runs of each of two warm quick matrices there.
WARM_REST_S = 0.3
# Per-step growth from T = 100 to T = 1000 (ratio of medians), measured on the 2-core
# machine of the model (quiet, 2 threads, 1 warm-up + 4 steps) for the rows that grow
# faster than T; the others grew 9-14x.
MEASURED_GROWTH = {("gru-1x320-ce", "tf-xla"): 76, ("lstm-1x320-ce", "tf-xla"): 90,
                   ("gru-1x320-ce", "keras-torch"): 272, ("lstm-1x320-ce", "keras-torch"): 292}


@dataclass(frozen=True)
class Point:
    """One recorded run of a network at ``time_steps``: where it comes from ("here" or
    "model") and the parts of its wall time."""

    source: str
    status: str
    time_steps: int
    median_s: float | None = None
    compile_s: float = 0.0
    other_s: float | None = None
    wall_s: float | None = None
    warm: "Point | None" = None  # the same with the compile cache and the verdict kept (model)
    cold: bool = False  # it compiled into the cache or verified its step (here)
    setup_s: float | None = None  # its worker's import and build (here)


@dataclass(frozen=True)
class Estimate:
    seconds: float
    basis: str  # measured here | scaled from T=... | model, ... | guess | kept | not installed
    note: str = ""
    superlinear: bool = False


def network(s: Scenario | dict) -> tuple:
    """What makes two runs' step times comparable, but for T."""
    d = asdict(s) if isinstance(s, Scenario) else s
    return tuple(v if isinstance(v, (int, str)) else None for v in (d.get(k) for k in ("name", "batch", "features",
                                                                                           "hidden")))


def duration(seconds: float) -> str:
    """A long time in the unit a person plans with: 45.0 s, 12.5 min, 3.20 h, 2.97 days
    (under 50 ms: 0 s, not 2.37e-05 s)."""
    if seconds < 90:
        return f"{fmt.number(seconds if seconds >= 0.05 else 0)} s"
    for unit, size, below in (("min", 60, 90 * 60), ("h", 3600, 48 * 3600)):
        if seconds < below:
            return f"{fmt.number(seconds / size)} {unit}"
    return f"{fmt.number(seconds / 86400)} days"


class Evidence:
    """Every point known for each (network, implementation): this machine's first."""

    def __init__(self):
        self.points: dict[tuple, list[Point]] = {}

    def add(self, key: tuple, point: Point) -> None:
        if point.time_steps > 0:
            self.points.setdefault(key, []).append(point)

    @classmethod
    def read(cls, out: Path | None, model: Path = MODEL) -> "Evidence":
        ev = cls()
        for d in runs_in(out) if out else []:
            ev.add((network({**d, "name": d.get("scenario")}), d.get("impl")), point_of(d))
        for row in read_model(model):
            def compile_s(first):  # what the first step takes beyond a step
                return max(0.0, (first or 0.0) - (row["median_s"] or 0.0))

            point = Point("model", row["status"], row["time_steps"], row["median_s"], compile_s(row["first_step_s"]),
                          row["other_s"])
            if row.get("warm_first_step_s") is not None and row.get("warm_other_s") is not None:
                point = replace(point, warm=replace(point, compile_s=compile_s(row["warm_first_step_s"]),
                                                    other_s=row["warm_other_s"]))
            ev.add(((row["scenario"], row["batch"], row["features"], row["hidden"]), row["impl"]), point)
        return ev

    def growth(self, key: tuple, target_t: int) -> tuple[float | None, str]:
        """The exponent k of step(T) ~ T^k from the two sizes nearest ``target_t`` in
        the best source that has two, and where they come from; (None, "") if none has."""
        for source in ("here", "model"):
            ok: dict[int, Point] = {}
            for p in self.points.get(key, []):
                if p.source == source and p.median_s:
                    ok.setdefault(p.time_steps, p)  # the newest at each size
            if len(ok) >= 2:
                a, b = sorted(sorted(ok, key=lambda t: abs(math.log(t / target_t)))[:2])
                return math.log(ok[b].median_s / ok[a].median_s) / math.log(b / a), f"T={a} and T={b}"
        return None, ""

    def impl_growth(self, impl: str, target_t: int) -> tuple[float | None, str]:
        """The steepest growth this implementation shows on another network."""
        found = [(k, key[0][0]) for key in self.points if key[1] == impl
                 for k, _ in [self.growth(key, target_t)] if k is not None]
        return max(found, default=(None, ""))

    def rate(self, impl: str) -> float:
        """The implementation's mean FLOP rate over the model's networks (FLOP/s)."""
        from .scenarios import SCENARIOS

        rates = [train_flops(SCENARIOS[key[0][0]].resized(batch=key[0][1], time_steps=p.time_steps,
                                                          features=key[0][2], hidden=key[0][3])) / p.median_s
                 for key, points in self.points.items() if key[1] == impl and key[0][0] in SCENARIOS
                 for p in points if p.source == "model" and p.median_s]
        return sum(rates) / len(rates) if rates else GUESS_GFLOPS * 1e9

    def compile_s(self, impl: str) -> float:
        found = [p.compile_s for key, points in self.points.items() if key[1] == impl
                 for p in points if p.source == "model" and p.median_s]
        return sum(found) / len(found) if found else 0.0


def runs_in(out: Path) -> list[dict]:
    """The run documents of ``out`` and of its archive, newest first (unreadable ones
    left out: a plan is advice)."""
    dirs = [out] + sorted((out / "archive").glob("*"), reverse=True) if (out / "archive").is_dir() else [out]
    docs = []
    for d in dirs:
        try:
            docs += results.load_runs(d)
        except (ResultsError, OSError):
            continue
    return docs


def _seconds(value) -> float | None:
    """A time from a document, or None where it holds none (or something else)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    return float(value) if ok else None


def point_of(doc: dict) -> Point:
    steps = [_seconds(x.get("runtime_s")) or 0.0 for x in doc.get("step_log") or [] if isinstance(x, dict)]
    median, first, wall = (_seconds(doc.get(k)) for k in ("median_s", "first_step_s", "wall_s"))
    t = doc.get("time_steps")
    cold = doc.get("cache_state") in ("cold", "partly cold") or verified_here(doc)
    meta = doc.get("meta") if isinstance(doc.get("meta"), dict) else {}
    setup = [_seconds(meta.get(k)) for k in ("import_s", "build_s")]
    return Point("here", str(doc.get("status")), t if isinstance(t, int) else 0, median,
                 max(0.0, (first or 0.0) - (median or 0.0)), max(0.0, wall - sum(steps)) if wall else None, wall,
                 cold=cold, setup_s=sum(setup) if None not in setup else None)


def read_model(path: Path = MODEL) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    numbers = {"batch": int, "time_steps": int, "features": int, "hidden": int,
               "median_s": float, "first_step_s": float, "other_s": float, "warm_first_step_s": float,
               "warm_other_s": float}
    return [{k: (numbers[k](v) if v else None) if k in numbers else v for k, v in row.items()} for row in rows]


def other_default(evidence: Evidence) -> float:
    """The time outside the steps of a run with no evidence of its own: the mean of this
    machine's runs, else of the model's."""
    for source in ("here", "model"):
        found = [p.other_s for points in evidence.points.values() for p in points
                 if p.source == source and p.other_s is not None]
        if found:
            return sum(found) / len(found)
    return 15.0


def predict(evidence: Evidence, s: Scenario, impl: str, steps: int, timeout_s: float,
            stop: dict | None = None, warmup: int = 0, warm: bool = False) -> Estimate:
    """The wall time of ``steps`` warm-up and measured steps of ``impl`` on ``s`` (the
    sizes it runs at), and how sure that is; ``warm``: its compiles and verification are
    in the cache (the model's warm run then stands for it). Under a precision ``stop`` rule ``steps`` is
    the most it may take: the measured steps are then bounded by the rule's time budget
    (no step starts past it, even below the minimum count, but for ``BUDGET_FLOOR``), and
    the run is expected to stop after ``PRECISION_STEPS`` measured steps at a precision of
    ``PRECISION_AT``, 4x as many at half that (within its minimum and that bound), after
    ``SETTLE_STEPS`` warm-up steps past the count where the rule lets warm-up settle. Those
    counts come from the full profile: for quick's few steps they make the bound the
    prediction, an upper one (its short rows often stop on precision sooner)."""
    key = (network(s), impl)
    points = evidence.points.get(key, [])
    here = [p for p in points if p.source == "here"]
    same = [p for p in here if p.time_steps == s.time_steps]
    if same and same[0].status in ("failed", "timeout", "skipped"):
        p = same[0]
        seconds = timeout_s if p.status == "timeout" else (p.wall_s or 0.0)
        return Estimate(seconds, "measured here", f"{p.status} here")
    usable = [p for p in here if p.median_s] or [p for p in points if p.median_s]
    k, between = evidence.growth(key, s.time_steps)
    if k is None:
        k, other = evidence.impl_growth(impl, s.time_steps)
        between = f"as {impl} on {other}" if k is not None else ""
    if usable:
        base = min(usable, key=lambda p: (abs(math.log(p.time_steps / s.time_steps)), p.source != "here"))
        # A run predicted warm: the model's warm run; or, where the run here compiled cold or
        # verified its step, that run's import and build and the model's warm first step.
        model_warm = next((p.warm for p in points if p.warm is not None and p.time_steps == base.time_steps), None)
        warmed = warm and model_warm is not None and (base.source == "model" or base.cold)
        if warmed and base.source == "model":
            base = model_warm
        elif warmed:
            other = model_warm.other_s if base.setup_s is None else base.setup_s + WARM_REST_S
            base = replace(base, compile_s=model_warm.compile_s, other_s=other)
        step = base.median_s * (s.time_steps / base.time_steps) ** (k if k is not None else 1.0)
        compile_s, other_s = base.compile_s, base.other_s
        if base.source == "here":
            basis = "measured here" if base.time_steps == s.time_steps else f"scaled from T={base.time_steps}"
        else:
            basis = f"model, T={base.time_steps}" if base.time_steps == s.time_steps else \
                f"model, scaled from T={base.time_steps}"
        basis += ", warm" if warmed else ""
    elif points and all(p.status == "skipped" for p in points):
        return Estimate(SKIP_S, "model", "skipped there")
    else:
        step = max(train_flops(s) / evidence.rate(impl), 1e-3)
        compile_s, other_s, basis = evidence.compile_s(impl), None, "guess"
    other_s = other_default(evidence) if other_s is None else other_s
    superlinear = k is not None and k > SUPERLINEAR
    note = f"grows like T^{k:.2f} ({between})" if superlinear else ""
    stepping = steps * step
    if stop:
        # Measured steps: no step starts past the budget, which wins over the minimum (but
        # for BUDGET_FLOOR steps), and a run stops on precision after about as
        # many steps as such runs took; warm-up past its count where the rule allows it.
        most = steps - warmup
        bound = min(most, max(BUDGET_FLOOR, math.floor(stop["max_time_s"] / step)))
        least = min(stop["min_steps"], bound)
        expected = PRECISION_STEPS * (PRECISION_AT / stop["precision"]) ** 2
        settle = SETTLE_STEPS if stop["max_warmup"] > warmup else 0
        stepping = (warmup + settle + min(bound, max(least, expected))) * step
    return Estimate(other_s + compile_s + stepping, basis, note, superlinear)


def quick_run(run: Path) -> tuple[list[dict], float]:
    """A quick run's rows (summary.csv), less those of frameworks not installed there (no
    evidence, not a skip), and the time outside the steps per run: the matrix's wall time
    (meta.json) less every run's steps, shared evenly."""
    import datetime as dt

    meta = results.read_json(run / "meta.json")
    with open(run / "summary.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if not (r["status"] == "skipped" and "is not installed" in r["reason"])]
    wall = (dt.datetime.fromisoformat(meta["finished"]) - dt.datetime.fromisoformat(meta["started"])).total_seconds()
    in_steps = sum(float(r["first_step_s"]) + (int(r["warmup"]) + int(r["steps"]) - 1) * float(r["mean_s"])
                   for r in rows if r["status"] == "ok")
    return rows, round((wall - in_steps) / len(rows), 1)


def build_model(run: Path, target: Path = MODEL, warm: Path | None = None) -> None:
    """Write the cost model from a quick run's directory (its summary.csv and meta.json),
    on an empty compile cache: each row's median and first step, the time outside the
    steps shared evenly among the runs (``quick_run``), and the step times at T = 1000 of
    ``MEASURED_GROWTH``; with ``warm``, a quick run of the same matrix whose compiles and
    verdicts were all kept, its first steps and time outside the steps beside them."""
    rows, other = quick_run(run)
    warm_rows, warm_other = quick_run(warm) if warm else ([], None)
    warm_first = {(r["scenario"], r["impl"]): float(r["first_step_s"]) for r in warm_rows if r["status"] == "ok"}
    out = []
    for r in rows:
        row = {c: r.get(c, "") for c in MODEL_COLUMNS}
        first = warm_first.get((r["scenario"], r["impl"]))
        if r["status"] != "ok":
            out.append({**row, "median_s": "", "first_step_s": ""})
            continue
        out.append({**row, "other_s": other, "warm_first_step_s": first or "", "warm_other_s": warm_other or ""})
        growth = MEASURED_GROWTH.get((r["scenario"], r["impl"]))
        if growth:
            t, median = int(r["time_steps"]), float(r["median_s"])
            added = median * (growth - 1)  # the first step holds a step too
            out.append({**out[-1], "time_steps": t * 10, "median_s": round(median * growth, 6),
                        "first_step_s": round(float(r["first_step_s"]) + added, 6),
                        "warm_first_step_s": round(first + added, 6) if first else ""})
    with open(target, "w", newline="") as f:
        w = csv.DictWriter(f, MODEL_COLUMNS)
        w.writeheader()
        w.writerows(out)


if __name__ == "__main__":  # python -m rnnbench.plan docs/latest [docs/warm]: rewrite costs.csv
    import sys

    build_model(Path(sys.argv[1]), warm=Path(sys.argv[2]) if len(sys.argv) > 2 else None)
    print(MODEL)


def estimate(settings, evidence: Evidence, s: Scenario, impl: str, missing=frozenset(), kept=(),
             processes: int = 1, warm=()) -> Estimate:
    """The prediction for one run of a matrix run with ``settings`` (runner.Settings):
    for one of its worker processes, or for all ``processes`` of them; ``warm``: the
    (scenario, implementation) pairs whose verdicts the cache keeps."""
    if (s.name, impl) in kept:
        return Estimate(0.0, "kept")
    if IMPLEMENTATIONS[impl].framework in missing:
        return Estimate(0.0, "not installed")
    timed = apply_profile(s, settings.profile, settings.time_steps)
    one = predict(evidence, timed, impl, settings.warmup + settings.steps, settings.timeout_s,
                  stop=settings.stop, warmup=settings.warmup, warm=(s.name, impl) in warm)
    return replace(one, seconds=one.seconds * processes)


class Eta:
    """The matrix's elapsed time and ETA: what the plan leaves (``left``: the predicted
    seconds of each run not yet done), scaled by how the runs done so far fared against
    their predictions (the plan may come from another machine)."""

    def __init__(self):
        self.started = time.monotonic()
        self.left: list[float] = []
        self.fared = [0.0, 0.0]  # seconds the runs done so far took, and were predicted to take

    def predicted(self, n: int) -> float | None:
        return self.left[n] if self.left else None

    def took(self, n: int, seconds: float) -> None:
        if self.left:
            self.fared = [self.fared[0] + seconds, self.fared[1] + self.left[n]]

    def done(self, n: int) -> None:
        if self.left:
            self.left[n] = 0.0

    def clock(self, run_s: float) -> dict:
        """Elapsed and ETA seconds, the current run ``run_s`` seconds in."""
        if not self.left:
            return {"matrix_s": time.monotonic() - self.started, "eta_s": None}
        pace = self.fared[0] / self.fared[1] if self.fared[1] > 0 else 1.0
        current = next((x for x in self.left if x > 0), 0.0)
        eta = pace * (sum(self.left) - current) + max(pace * current - run_s, 0.0)
        return {"matrix_s": time.monotonic() - self.started, "eta_s": eta}
