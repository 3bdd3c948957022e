"""Precision-targeted stopping: the warm-up and stop rules on synthetic step times, their
cost, the worker's loop (the rule's time stays out of the overhead check), and runs with
--precision end to end: the fake worker through the command line, and torch-nn."""

import ast
import csv
import dataclasses
import io
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from rnnbench import cli as command
from rnnbench import stats, stopping
from rnnbench.stopping import Measure, Warmup

from test_protocol import PYTHON36

FAKE = str(Path(__file__).with_name("fake_worker.py"))


def feed(rule, times):
    """Add step times to ``rule`` until it is done; the times it took."""
    for t in times:
        if rule.done:
            break
        rule.add(t)
    assert rule.done, "the rule wanted more steps than the sequence has"
    return rule.times


def noisy(n=500, cv=0.03, seed=0):
    return list(np.random.default_rng(seed).normal(1.0, cv, n))


def halfwidth(times):
    """The achieved half-width as the run document reports it (a fraction)."""
    return stats.summarize(times)["ci_halfwidth_pct"] / 100


# -- the stop rule ----------------------------------------------------------------------------
def test_a_fixed_count_is_exactly_that():
    m = Measure(4)
    assert len(feed(m, [1.0] * 10)) == 4 and m.reason == "fixed"
    w = Warmup(3)
    assert len(feed(w, [5.0, 1.0, 1.0, 1.0, 1.0])) == 3 and w.reason == "fixed"
    assert Warmup(0).done and Warmup(0).reason == "fixed"  # --warmup 0: no warm-up, whatever the rule


def test_steady_steps_stop_at_the_minimum():
    m = Measure(500, precision=0.02, min_steps=7)
    assert len(feed(m, [0.25] * 500)) == 7 and m.reason == "precision"


def test_precision_stops_at_the_first_check_where_the_reported_ci_is_within_p():
    """The CI it judges by is the one the run document reports; it looks at every step up
    to 20, then each time the count has grown by a tenth, and stops at the first look
    that finds the CI within P."""
    seq = noisy()
    m = Measure(500, precision=0.01, min_steps=5)
    n = len(feed(m, seq))
    looks = [5]
    while looks[-1] < n:
        looks.append(looks[-1] + (1 if looks[-1] < 20 else looks[-1] // 10))
    assert m.reason == "precision" and looks[-1] == n and 20 < n < 500
    assert halfwidth(seq[:n]) <= 0.01
    assert all(halfwidth(seq[:k]) > 0.01 for k in looks[:-1])


def test_max_steps_ends_a_run_that_never_gets_precise():
    m = Measure(30, precision=1e-4, min_steps=5)
    assert len(feed(m, noisy())) == 30 and m.reason == "max-steps"


def test_the_time_budget_is_never_passed_but_for_three_steps():
    m = Measure(500, precision=1e-4, min_steps=5, max_time_s=10.6)
    times = feed(m, [1.0, 1.1] * 100)
    # After 9 steps: 9.4 s + a median step of 1.0 s fits; after 10: 10.5 s + 1.05 s does not.
    assert m.reason == "max-time" and len(times) == 10 and sum(times) <= 10.6
    # The budget wins over the minimum: steps too slow for it stop early and say so, but
    # not before the 4 steps compare needs (BUDGET_FLOOR: 4 x 2.0 s passes the 5 s budget).
    m = Measure(500, precision=0.02, min_steps=10, max_time_s=5.0)
    assert len(feed(m, [2.0] * 20)) == stopping.BUDGET_FLOOR == 4 and m.reason == "max-time" and m.total_s == 8.0
    m = Measure(500, precision=0.02, min_steps=10, max_time_s=1.0)
    assert len(feed(m, [2.0] * 20)) == 4 and m.reason == "max-time"


def test_the_rule_costs_well_under_a_millisecond_a_step():
    """500 steps that never get precise (the CI computed at every check up to the end),
    in CPU time: the loop pays this between steps, outside the timed region."""
    seq = noisy()
    m = Measure(500, precision=1e-4, min_steps=5)
    t0 = time.process_time()
    feed(m, seq)
    per_step = (time.process_time() - t0) / len(seq)
    assert m.reason == "max-steps" and per_step < 0.5e-3, f"{per_step * 1e3:.3f} ms a step"


def test_the_rules_a_job_carries():
    stop = stopping.stop_rule(0.02, 5, 600.0, warmup=2)
    assert stop == {"precision": 0.02, "min_steps": 5, "max_time_s": 600.0, "max_warmup": 2 + stopping.WARMUP_EXTRA}
    w, m = stopping.rules(2, 500, stop)
    assert (w.count, w.threshold, w.max_steps, w.max_extra_s) == (2, 0.02, 12, 150.0)
    assert (m.max_steps, m.precision, m.next_check, m.max_time_s) == (500, 0.02, 5, 600.0)
    w, m = stopping.rules(2, 8)
    assert w.threshold is None and m.precision is None and m.max_steps == 8


def test_the_quick_profile_warms_up_its_count_then_stops_on_precision_or_its_budget():
    """`rnnbench run` (quick, the default): 2 warm-up steps whatever they show (the rule that
    settles would compare the second with the compiling first and always take a third),
    then 4 to 8 measured steps, none started past 6 s of them but the first 4."""
    from rnnbench import cli

    st = cli.run_settings(cli.build_parser().parse_args(["run"]))
    assert st.stop == {"precision": 0.02, "min_steps": 4, "max_time_s": 6.0, "max_warmup": 2} and st.steps == 8
    w, m = stopping.rules(st.warmup, st.steps, st.stop)
    assert len(feed(w, [5.0, 1.0, 0.5, 0.5])) == 2 and w.reason == "fixed"  # still falling: fixed all the same
    runs = {"steady short": [0.100] * 20, "noisy short": [0.1 * t for t in noisy(20, cv=0.2)], "2.5 s steps": [2.5, 3.0, 2.2] * 5,
            "1 s steps, noisy": [1.0, 1.3, 0.9, 1.2, 1.1] * 4}
    taken = {}
    for name, times in runs.items():
        w, m = stopping.rules(st.warmup, st.steps, st.stop)
        taken[name] = (len(feed(m, times)), m.reason)
    assert taken == {"steady short": (4, "precision"), "noisy short": (8, "max-steps"),
                     "2.5 s steps": (4, "max-time"), "1 s steps, noisy": (5, "max-time")}
    assert cli.run_settings(cli.build_parser().parse_args(["run", "--steps", "5"])).stop is None  # exactly 5


def test_summary_reports_the_precision_and_drift():
    s = stats.summarize([0.100, 0.102, 0.104, 0.101, 0.103])
    assert (s["ci_low_s"], s["ci_high_s"]) == stopping.median_ci([0.100, 0.102, 0.104, 0.101, 0.103])
    assert s["ci_halfwidth_pct"] == pytest.approx(100 * stopping.ci_halfwidth(0.102, s["ci_low_s"], s["ci_high_s"]))
    # The last step (the last third of five) is 3 ms slower than the first: 2.9% of the median, no trend.
    assert s["drift"] == "" and s["drift_pct"] == pytest.approx(100 * 0.003 / 0.102)
    few = stats.summarize([0.1, 0.2])
    assert (few["ci_halfwidth_pct"], few["drift_pct"], few["drift"]) == (None, None, None)  # two cannot show a spread


def test_the_rule_module_is_python_3_6():
    """The legacy worker (the 2017 stack, rnnbench.legacy) imports it under Python 3.6: 3.6
    syntax, and nothing but the standard library, NumPy and rnnbench.protocol."""
    path = Path(stopping.__file__)
    tree = ast.parse(path.read_text(), feature_version=(3, 6))
    imported = {n.name for node in ast.walk(tree) if isinstance(node, ast.Import) for n in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported == {"bisect", "json", "math", "statistics", "time", "numpy", "protocol"}
    if PYTHON36:
        subprocess.run([PYTHON36, "-c", "import ast, sys; ast.parse(open(sys.argv[1]).read())", str(path)],
                       check=True, timeout=60)


# -- warm-up ------------------------------------------------------------------------------------
def test_warmup_goes_on_while_step_times_fall():
    w = Warmup(2, threshold=0.02, max_steps=20)
    times = feed(w, [5.0, 2.0, 1.5, 1.2, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    # Step 7 (1.0) is the first not faster than the median of the three before it (1.2, 1.0, 1.0).
    assert len(times) == 7 and w.reason == "settled"
    w = Warmup(2, threshold=0.02, max_steps=20)
    assert len(feed(w, [5.0, 1.0, 1.0, 1.0])) == 3 and w.reason == "settled"  # flat after the compile
    w = Warmup(2, threshold=0.02, max_steps=20)
    assert len(feed(w, [5.0, 1.0, 0.99, 0.985, 0.98])) == 3  # a fall within the precision is no fall


def test_warmup_is_capped_in_steps_and_time():
    falling = [10 * 0.9 ** k for k in range(50)]
    w = Warmup(2, threshold=0.02, max_steps=12)
    assert len(feed(w, falling)) == 12 and w.reason == "max-warmup"
    w = Warmup(2, threshold=0.02, max_steps=40, max_extra_s=20.0)
    times = feed(w, falling)
    assert w.reason == "max-warmup" and sum(times[2:]) >= 20.0 > sum(times[2:-1])


# -- drift --------------------------------------------------------------------------------------
@pytest.mark.parametrize("slope, trend", [(0.002, "up"), (-0.002, "down"), (0.0, ""), (0.0002, "")])
def test_a_drifting_sequence_is_flagged(slope, trend):
    seq = [1.0 + slope * k + e for k, e in enumerate(np.random.default_rng(3).normal(0, 0.01, 60))]
    change, found = stopping.drift(seq)
    assert found == trend
    assert change == pytest.approx(slope * 40 / np.median(seq), abs=0.01)  # 40 steps between the thirds


def test_spikes_and_short_runs_are_not_drift():
    seq = noisy(60, cv=0.01)
    seq[5] = seq[40] = 3.0  # a busy moment or two
    assert stopping.drift(seq)[1] == ""
    assert stopping.drift([0.1, 0.2]) == (None, None)
    assert stopping.drift([1.0, 1.1, 1.2, 1.3, 1.4, 1.5])[1] == ""  # too short to tell a trend from chance


# -- the worker's loop ----------------------------------------------------------------------------
class SlowRule(Measure):
    """A stop rule that takes 20 ms to decide."""

    def add(self, seconds):
        time.sleep(0.02)
        super().add(seconds)


def test_the_rule_time_stays_out_of_the_loop_time():
    def step():
        time.sleep(0.005)
        return 1.0

    progress = io.StringIO()
    records, loop_s, rule_s = stopping.timed_steps(step, SlowRule(6), "measure", progress)
    assert len(records) == 6 and rule_s >= 6 * 0.02
    # 120 ms of rule against 30 ms of steps, and the check (1%, or 0.2 ms a step) passes.
    assert stats.run_checks([3.0 - k for k in range(6)], [r["runtime_s"] for r in records], loop_s)["overhead"]
    assert json.loads(progress.getvalue().splitlines()[-1]) == records[-1]  # the last step always reported


# -- end to end ----------------------------------------------------------------------------------
def test_precision_run_with_the_fake_worker(tmp_path, monkeypatch, capsys):
    """`rnnbench run --precision` through the command line, the runner and the job, with
    the fake worker (its warm-up falls from 0.5 s to 0.2 s, its steps are 0.100-0.104 s)."""
    settings = command._settings
    monkeypatch.setattr(command, "_settings",
                        lambda args, bench: dataclasses.replace(settings(args, bench), worker=(FAKE, "ok")))
    monkeypatch.setattr("rnnbench.launch.preload", lambda fw, cpu=False: ())
    monkeypatch.setattr("rnnbench.gemm.in_subprocess", lambda threads, env: {"gflops": 100.0, "threads": threads})
    out = tmp_path / "out"
    code = command.main(["run", "--profile", "smoke", "-i", "torch-nn", "-s", "gru-1x320-ce", "--precision", "0.05",
                         "--max-steps", "40", "--out", str(out), "--no-report"])
    assert code == 0, capsys.readouterr()
    doc = json.loads((out / "runs" / "gru-1x320-ce__torch-nn.json").read_text())
    # 0.5, 0.25, 0.2, 0.2, 0.2: the fifth is the first not 5% faster than those before it.
    assert (doc["warmup"], doc["warmup_reason"]) == (5, "settled")
    assert (doc["steps"], doc["stop_reason"], doc["checks"]) == (5, "precision", "ok")
    assert 0 < doc["ci_halfwidth_pct"] <= 5 and doc["drift"] == "" and doc["drift_pct"] is not None
    assert doc["stop_rule"] == {"precision": 0.05, "min_steps": 5, "max_time_s": 30.0, "max_warmup": 11}
    meta = json.loads((out / "meta.json").read_text())
    assert meta["stop"] == doc["stop_rule"] and meta["steps"] == 40
    assert meta["timeout_s"] == 900 + command.BUDGET_TIMEOUT_FACTOR * 30.0
    with open(out / "summary.csv") as f:
        (row,) = csv.DictReader(f)
    assert (row["stop_reason"], row["warmup_reason"], row["drift"]) == ("precision", "settled", "")


def test_precision_run_with_torch(cli, tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "out"
    p = cli("run", "--profile", "smoke", "-i", "torch-nn", "-s", "gru-1x320-ce", "--precision", "0.05",
            "--max-steps", "40", "--out", out, "--no-report", timeout=600)
    assert p.returncode == 0, p.stderr
    doc = json.loads((out / "runs" / "gru-1x320-ce__torch-nn.json").read_text())
    assert doc["status"] == "ok" and doc["checks"] == "ok", doc.get("check_details")
    assert doc["verified"] == "yes"
    measured = [s["runtime_s"] for s in doc["step_log"] if s["phase"] == "measure"]
    assert len(measured) == doc["steps"] and 5 <= doc["steps"] <= 40
    assert doc["warmup"] >= 1 and doc["warmup_reason"] in ("settled", "max-warmup")
    assert doc["stop_reason"] in ("precision", "max-steps")  # 40 steps of milliseconds: far from the budget
    if doc["stop_reason"] == "precision":
        assert doc["ci_halfwidth_pct"] <= 5
    else:
        assert doc["steps"] == 40
    assert doc["meta"]["rule_s"] >= 0
