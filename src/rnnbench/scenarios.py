"""The benchmark scenarios (the seed's four networks and two extra sizes) and profiles.

Framework-free: plain frozen dataclasses. A profile scales the time axis, the step counts
and (for CTC) the label count so that the labels fit the shortest sequence; only the tiny
``smoke`` profile also shrinks the network, so that every code path runs in seconds. A
profile measures a fixed number of steps, or (``precision``) until the median is known to
that precision (rnnbench.stopping), within its step and time bounds; those bounds also
apply when ``--precision`` asks for it on a fixed-count profile.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    """One network, loss and toy batch. Shapes are (batch, time_steps, features)."""

    name: str
    cell: str  # "gru" | "lstm"
    layers: int
    hidden: int
    bidirectional: bool
    loss: str  # "ce" (last time step -> Dense -> softmax cross-entropy) | "ctc"
    classes: int  # Dense outputs; for CTC this includes the blank (index 0)
    batch: int = 25
    time_steps: int = 1000
    features: int = 123
    description: str = ""
    # A network or size chosen on the command line (rnnbench.network): its sizes are the
    # ones to time, already as the profile and the user's flags make them.
    custom: bool = False

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def head_inputs(self) -> int:
        return self.hidden * self.directions

    @property
    def gates(self) -> int:
        return {"gru": 3, "lstm": 4}[self.cell]

    # CTC data shape rules: lengths linspace(T/2, T, B), T/10 (at least 2) labels per sequence.
    @property
    def min_length(self) -> int:
        return self.time_steps // 2

    @property
    def label_length(self) -> int:
        return max(2, self.time_steps // 10)

    def resized(self, **changes) -> "Scenario":
        return dataclasses.replace(self, **changes)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario("gru-1x320-ce", "gru", 1, 320, False, "ce", 25,
                 description="1x320 unidirectional GRU, Dense(25), cross-entropy"),
        Scenario("lstm-4x320bi-ce", "lstm", 4, 320, True, "ce", 25,
                 description="4x320 bidirectional LSTM, Dense(25), cross-entropy"),
        # The seed's README says 59 classes, but its code's parameter count (8,564,538)
        # is a Dense(58): the blank (0) and the labels 1..57.
        Scenario("lstm-4x320bi-ctc", "lstm", 4, 320, True, "ctc", 58,
                 description="4x320 bidirectional LSTM, Dense(58) per step, CTC, masking"),
        Scenario("lstm-1x320-ce", "lstm", 1, 320, False, "ce", 25,
                 description="1x320 unidirectional LSTM, Dense(25), cross-entropy"),
        # Extra sizes from the seed's later version; not in the default selection.
        Scenario("lstm-1x320-ce-short", "lstm", 1, 320, False, "ce", 10, batch=64,
                 time_steps=100, description="CE-short: (64, 100, 123), 10 classes"),
        Scenario("lstm-1x320-ce-long", "lstm", 1, 320, False, "ce", 25, batch=32,
                 description="CE-long: (32, 1000, 123), 25 classes"),
    ]
}
SEED_SCENARIOS = ("gru-1x320-ce", "lstm-4x320bi-ce", "lstm-4x320bi-ctc", "lstm-1x320-ce")


@dataclass(frozen=True)
class Profile:
    name: str
    warmup: int
    steps: int
    time_steps: int | None  # None: the scenario's own length
    timeout_s: float
    tiny: bool = False  # shrink the network too (smoke only)
    # Compile caches: fresh per worker, so first-step times are cold compiles; or the
    # per-user cache kept across workers and runs (smoke, quick), where each run records
    # whether its compiles were cold or warm (``cache_state``; ``--fresh-cache`` for cold ones).
    shared_cache: bool = False
    # Fork each worker from a per-framework fork server that imported the framework once
    # (rnnbench.forkserver), instead of paying the import per worker (smoke, quick).
    fork_server: bool = False
    # Keep each passed verification in the compile cache and reuse it while the code and
    # the software stay the same (rnnbench.verdicts), instead of verifying again (quick).
    keep_verdicts: bool = False
    description: str = ""
    # Precision-targeted stopping: on by default where ``precision`` is set (a fraction:
    # 0.02 stops once the median's 95% CI is within +-2%); the bounds serve --precision too.
    precision: float | None = None
    min_steps: int = 5
    max_steps: int = 500
    max_time_s: float = 600.0  # measured seconds per run
    # Warm-up past the profile's count while step times still fall (rnnbench.stopping).
    settle: bool = True


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in [
        Profile("smoke", warmup=1, steps=3, time_steps=12, timeout_s=900, tiny=True,
                shared_cache=True, fork_server=True, max_time_s=30.0,
                description="tiny shapes, a few steps: every code path in seconds"),
        # Cold compiles (PyTensor's numba compile of the 4-layer CTC graph takes minutes)
        # and imports were most of a quick matrix: it compiles into the per-user cache, so a
        # later run finds its compiles there (each run records cold or warm), forks the
        # workers of frameworks with a preload (rnnbench.frameworks: today's, but PyTensor's
        # numba backend) from one import, and keeps passed verifications (rnnbench.verdicts).
        # Measured to +-2%, 4 to 8 steps, none started past 6 s of measured steps a run (but
        # for the first 4: rnnbench.stopping.BUDGET_FLOOR), after a
        # fixed warm-up of 2 (the compiling step and one more: ``settle=False``, as the rule
        # that extends warm-up compares the step after the count with the compiling one, so
        # it would always take a third). Replayed on the 8 measured steps of each of the 60
        # runs of a quick matrix (docs/latest, 2-core machine), against the median of
        # all 8: 5 fixed steps were 1.0% off (median over the runs), 4.9% (90th percentile),
        # 63% (worst: a short row with two slow steps), in 253 s of steps; this rule 0.1%,
        # 4.1%, 6.7% in 220 s. Noisy short rows take up to 8 cheap steps, the 1.5-3 s rows of
        # the 4x320 networks 4 (their 90th percentile is 5.5%, against 3.8% at 5 steps: this
        # machine's run-to-run spread, about 10%, is larger than either). Not 3 (198 s): two
        # quick runs' 3 steps against 3 cannot show a change to `compare` (p >= 0.1). 5 fixed steps had
        # replaced 8 before (the median of 5 within 1.2-1.7% of that of 8 on two matrices);
        # a fixed 4 was no good: a median of 4 is the mean of the middle two, so two slow
        # steps move it (tf-xla's GRU: 0.074 0.221 0.234 0.079 0.070 ... gave 0.150 s for 4
        # steps, 0.079 s for 5 and 0.073 s for 8). ``--steps N`` still measures exactly N.
        Profile("quick", warmup=2, steps=8, time_steps=100, timeout_s=1800, precision=0.02, min_steps=4,
                max_steps=8, max_time_s=6.0, settle=False, shared_cache=True, fork_server=True, keep_verdicts=True,
                description="the seed's networks on a 100-step time axis (the default)"),
        Profile("seed", warmup=5, steps=500, time_steps=None, timeout_s=24 * 3600,
                description="exactly the seed: T=1000, 500 steps, median"),
        # The seed's table at its own size in hours, not days: the 500 steps of `seed`
        # are mostly spent on rows whose median was known long before. Its timeout
        # covers what is not measured (import, cold compile, warm-up, verification):
        # `rnnbench run` adds the measuring budget to it.
        Profile("full", warmup=2, steps=500, time_steps=None, timeout_s=2 * 3600, precision=0.02,
                description="the seed's sizes (T=1000), measured until the median's 95% CI is within "
                            "+-2% (5 to 500 steps, at most 10 min of measuring a run)"),
    ]
}
DEFAULT_PROFILE = "quick"

# The tiny network of the smoke profile (also used by `rnnbench verify`).
TINY = dict(batch=4, features=8, hidden=8)


def apply_profile(scenario: Scenario, profile: Profile, time_steps: int | None = None) -> Scenario:
    """The scenario as a profile (and an optional --time-steps override) runs it. A
    custom scenario's sizes are final (rnnbench.network applied the profile to them)."""
    if scenario.custom:
        return scenario
    changes: dict = {}
    if profile.tiny:
        changes.update(TINY)
    t = time_steps or profile.time_steps
    if t is not None and (profile.tiny or time_steps or scenario.time_steps > t):
        changes["time_steps"] = t
    return scenario.resized(**changes) if changes else scenario


def ctc_steps_needed(labels: int) -> int:
    """Time steps a CTC alignment of ``labels`` labels needs whatever they are: one per
    label and a blank between two equal neighbours (labels are drawn at random)."""
    return 2 * labels - 1


def validate(s: Scenario) -> None:
    """Raise ValueError (one line, saying what to do) for a scenario that cannot train:
    call it on the scenario as a profile and --time-steps make it (``apply_profile``).
    A CTC loss whose labels cannot fit the shortest sequence is infinite, and its
    gradient NaN: timing it would time nonsense."""
    for name in ("batch", "time_steps", "features", "hidden", "layers"):
        if getattr(s, name) < 1:
            raise ValueError(f"{s.name}: {name} must be at least 1, got {getattr(s, name)}")
    if s.classes < 2:  # one class has nothing to learn; CTC needs the blank and a label
        raise ValueError(f"{s.name}: classes must be at least 2, got {s.classes}")
    def fits(c: Scenario) -> bool:
        return c.min_length >= ctc_steps_needed(c.label_length)

    if s.loss == "ctc" and not fits(s):
        enough = next(t for t in itertools.count(s.time_steps) if fits(s.resized(time_steps=t)))
        raise ValueError(f"{s.name} at {s.time_steps} time steps: its shortest sequence has {s.min_length} "
                         f"step(s), too few for {s.label_length} CTC labels (which need up to "
                         f"{ctc_steps_needed(s.label_length)}); use --time-steps {enough} or more")


def select(patterns: list[str] | None, names, default=None) -> list[str]:
    """Names matching any glob in ``patterns`` (in catalogue order). Raises ValueError
    naming the first pattern that matches nothing."""
    names = list(names)
    if not patterns:
        return list(default if default is not None else names)
    chosen = []
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise ValueError(pattern)
        chosen += [h for h in hits if h not in chosen]
    return [n for n in names if n in chosen]
