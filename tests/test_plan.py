"""``rnnbench plan``: every run of the matrix with its predicted wall time and the total,
before anything runs, from earlier runs in --out, else the shipped cost model, else a
guess; rows that grow faster than linearly in T are flagged. It runs nothing."""

import json
import re
import subprocess

import pytest

from rnnbench import cli, plan, results
from rnnbench.impls import IMPLEMENTATIONS
from rnnbench.scenarios import SEED_SCENARIOS


@pytest.fixture
def nothing_runs(monkeypatch):
    """Starting any process (a worker, a fork server, the GEMM probe) fails the test."""
    def no_process(*args, **kwargs):
        raise AssertionError(f"plan started a process: {args}")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    # The 2017 stack's interpreter is asked once which modules it has: not here (its rows skip).
    monkeypatch.setattr("rnnbench.legacy.host.probe", lambda python: (set(), "not asked in this test", {}))
    monkeypatch.setattr("rnnbench.launch.Launcher.start", no_process)


def plan_of(capsys, *args):
    code = cli.main(["plan", *map(str, args)])
    out, err = capsys.readouterr()
    assert code == 0, err
    rows = {}
    for line in out.splitlines()[2:]:
        m = re.match(r"(\S+)\s+(\S+)\s+([\d.,]+ (?:s|min|h|days))\s+(\S.*?)(?:\s{2,}(.*))?$", line)
        if m and not line.startswith("total"):
            rows[(m[1], m[2])] = (m[3], m[4], m[5] or "")
    return out, rows


def test_plan_of_the_seed_profile_says_days_and_runs_nothing(capsys, tmp_path, nothing_runs):
    out, rows = plan_of(capsys, "--profile", "seed", "--out", tmp_path / "never")
    assert set(rows) == {(s, i) for s in SEED_SCENARIOS for i in IMPLEMENTATIONS}
    total = re.search(rf"^total: ([\d.,]+) days for {len(rows)} runs \(", out, re.M)
    assert total and float(total[1]) > 2, out  # the seed's matrix is days on a 2-core machine
    assert rows[("gru-1x320-ce", "torch-nn")][1] == "model, scaled from T=100"
    assert rows[("lstm-1x320-ce", "tf-xla")][1:] == ("model, T=1000", "grows like T^1.95 (T=100 and T=1000)")
    assert "grows like T^" in rows[("lstm-4x320bi-ce", "keras-torch")][2]  # as measured on another network
    assert "T^" not in rows[("lstm-4x320bi-ce", "torch-nn")][2]
    assert not (tmp_path / "never").exists()


def test_plan_of_the_quick_profile_is_near_the_measured_run(capsys, tmp_path, nothing_runs):
    """The model's own run (docs/latest: 68 runs in 29.5 min, meta.json's started to
    finished): the plan of the same matrix. In-sample: it checks the model is built and
    read back consistently, not how well it predicts another machine."""
    out, rows = plan_of(capsys, "--out", tmp_path)
    total = re.search(r"^total: ([\d.]+) min", out, re.M)
    assert total and 25 < float(total[1]) < 35, out
    assert rows[("gru-1x320-ce", "torch-packed")][1:] == ("model", "skipped there")


def write_run(directory, time_steps, median_s, status="ok", wall_s=5.0):
    """A run document of gru-1x320-ce with torch-nn at the smoke sizes but for T."""
    steps = [2.0 + median_s] + [median_s] * 3 if median_s else []
    doc = {"schema": results.RUN_SCHEMA, "run_id": "earlier", "scenario": "gru-1x320-ce", "impl": "torch-nn",
           "status": status, "batch": 4, "time_steps": time_steps, "features": 8, "hidden": 8,
           "median_s": median_s, "first_step_s": steps[0] if steps else None, "wall_s": wall_s,
           "step_log": [{"phase": "measure", "step": i, "runtime_s": s, "loss": 1.0} for i, s in enumerate(steps)]}
    (directory / "runs").mkdir(parents=True, exist_ok=True)
    (directory / "runs" / "gru-1x320-ce__torch-nn.json").write_text(json.dumps(doc))


def test_plan_from_runs_in_out_measured_or_scaled(capsys, tmp_path, nothing_runs):
    write_run(tmp_path, 12, 0.01)  # wall 5 s: 2.96 s outside the steps, a 2 s compile, 4 steps of 10 ms
    args = ("--profile", "smoke", "-s", "gru-1x320-ce", "-i", "torch-nn", "--out", tmp_path)
    _, rows = plan_of(capsys, *args)
    assert rows[("gru-1x320-ce", "torch-nn")] == ("5.00 s", "measured here", "")
    _, rows = plan_of(capsys, *args, "--time-steps", 24, "--steps", 13)  # 14 steps of 20 ms
    assert rows[("gru-1x320-ce", "torch-nn")] == ("5.24 s", "scaled from T=12", "")


def test_plan_flags_a_row_that_grows_faster_than_linearly(capsys, tmp_path, nothing_runs):
    write_run(tmp_path, 12, 0.01)
    write_run(tmp_path / "archive" / "20260101-000000-1", 6, 0.0025)  # 2x T, 4x the step: T^2
    _, rows = plan_of(capsys, "--profile", "smoke", "-s", "gru-1x320-ce", "-i", "torch-nn", "--out", tmp_path,
                      "--time-steps", 24)
    assert rows[("gru-1x320-ce", "torch-nn")] == ("5.12 s", "scaled from T=12", "grows like T^2.00 (T=6 and T=12)")


def test_plan_repeats_a_failure_or_timeout_seen_here(capsys, tmp_path, nothing_runs):
    write_run(tmp_path, 12, None, status="timeout", wall_s=None)
    _, rows = plan_of(capsys, "--profile", "smoke", "-s", "gru-1x320-ce", "-i", "torch-nn", "--out", tmp_path,
                      "--timeout", 120)
    assert rows[("gru-1x320-ce", "torch-nn")] == ("2.00 min", "measured here", "timeout here")


@pytest.mark.parametrize("seconds, text", [(0, "0 s"), (2.4e-5, "0 s"), (4.29, "4.29 s"), (45, "45.0 s"), (89.9, "89.9 s"), (750, "12.5 min"),
                                           (11520, "3.20 h"), (256608, "2.97 days")])
def test_durations_carry_their_unit(seconds, text):
    assert plan.duration(seconds) == text


def test_plan_with_resume_counts_only_what_would_run(capsys, tmp_path, monkeypatch):
    from test_resume import matrix

    monkeypatch.setattr("rnnbench.gemm.in_subprocess", lambda threads, env: {"gflops": 100.0, "threads": threads})
    out = tmp_path / "out"
    matrix(out, modes=["ok", "crash", "ok", "ok"])  # gru x (torch-nn, jax-scan), then lstm-1x320-ce x the same
    monkeypatch.setattr("rnnbench.launch.Launcher.start", lambda *a: pytest.fail("plan started a worker"))
    args = ["--profile", "smoke", "-s", "gru-1x320-ce", "-s", "lstm-1x320-ce", "-i", "torch-nn", "-i", "jax-scan",
            "--warmup", "1", "--steps", "3", "--no-verify", "--out", out, "--resume"]
    text, rows = plan_of(capsys, *args, "--threads", 1)
    assert {k: v[1:] for k, v in rows.items()} == {
        ("gru-1x320-ce", "torch-nn"): ("kept", ""), ("gru-1x320-ce", "jax-scan"): ("measured here", "failed here"),
        ("lstm-1x320-ce", "torch-nn"): ("kept", ""), ("lstm-1x320-ce", "jax-scan"): ("kept", "")}
    assert rows[("gru-1x320-ce", "torch-nn")][0] == "0 s"
    code = cli.main(["plan", *map(str, args), "--threads", "2"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and err == [f"rnnbench: error: cannot resume {out}: its settings differ (threads 1 -> 2); "
                                 "repeat them, or run without --resume (the earlier run is then archived)"]


def test_plan_has_help_with_runs_options(cli):
    p = cli("plan", "--help")
    assert p.returncode == 0 and "usage: rnnbench plan" in p.stdout and "--time-steps" in p.stdout


def test_plan_of_the_full_profile_is_bounded_by_its_time_budget(capsys, tmp_path, nothing_runs):
    """Precision stopping: at most max-time of measured steps per run (at least its
    minimum count), so `full` is hours where `seed` (500 steps each) is days."""
    def total_hours(*args):
        out, _ = plan_of(capsys, *args, "--out", tmp_path / "never")
        number, unit = re.search(r"^total: ([\d.,]+) (\w+) for", out, re.M).groups()
        return float(number.replace(",", "")) * {"days": 24, "h": 1, "hours": 1, "min": 1 / 60}[unit]

    full, seed = total_hours("--profile", "full"), total_hours("--profile", "seed")
    assert full < seed / 3, (full, seed)
    assert full <= 68 * (2 * 3600 + 600) / 3600  # no run past its timeout + budget


def test_a_precision_stopped_run_is_predicted_between_its_minimum_and_its_budget():
    """The measured steps of a precision-stopped run: no step starts past the budget (a step
    longer than the budget is measured BUDGET_FLOOR times, whatever the minimum), and the run is expected to take PRECISION_STEPS measured steps at PRECISION_AT
    (4x as many at half of it, never below the minimum), after the warm-up count and
    SETTLE_STEPS more where the rule lets warm-up settle."""
    from rnnbench.plan import PRECISION_AT, PRECISION_STEPS, SETTLE_STEPS, Evidence, Point, network, predict
    from rnnbench.scenarios import SCENARIOS
    from rnnbench.stopping import stop_rule

    s = SCENARIOS["gru-1x320-ce"]

    def predicted(step_s, precision=PRECISION_AT, budget=600.0, least=5, most=500, settle=True):
        ev = Evidence()
        ev.add((network(s), "torch-nn"), Point("here", "ok", s.time_steps, step_s, 4.0, 10.0, 100.0))
        stop = stop_rule(precision, least, budget, 2, settle)
        return predict(ev, s, "torch-nn", 2 + most, 7200.0, stop=stop, warmup=2).seconds - 14.0

    assert predicted(36.0, budget=30.0) == pytest.approx((2 + SETTLE_STEPS + 4) * 36.0)  # over budget
    # The quick profile's rule: a fixed warm-up, 4 to 8 steps within 6 s.
    assert predicted(2.5, budget=6.0, least=4, most=8, settle=False) == pytest.approx((2 + 4) * 2.5)
    assert predicted(1.0, budget=6.0, least=4, most=8, settle=False) == pytest.approx(2 + 6)
    assert predicted(0.1, budget=6.0, least=4, most=8, settle=False) == pytest.approx((2 + 8) * 0.1)
    assert predicted(1.0) == pytest.approx(2 + SETTLE_STEPS + PRECISION_STEPS)
    assert predicted(1.0, precision=PRECISION_AT / 2) == pytest.approx(2 + SETTLE_STEPS + 4 * PRECISION_STEPS)
    assert predicted(1.0, precision=0.5) == pytest.approx(2 + SETTLE_STEPS + 5)  # the minimum
    assert predicted(1.0, precision=0.001) == pytest.approx(2 + SETTLE_STEPS + 500)  # at most the count
    assert predicted(10.0, budget=30.0) == pytest.approx((2 + SETTLE_STEPS + 4) * 10.0)  # 3 fit, 4 taken: not the minimum 5
    fixed = Evidence()
    fixed.add((network(s), "torch-nn"), Point("here", "ok", s.time_steps, 1.0, 4.0, 10.0, 100.0))
    assert predict(fixed, s, "torch-nn", 10, 7200.0).seconds == pytest.approx(14.0 + 10)


def test_the_cost_model_leaves_out_frameworks_not_installed_in_its_run(tmp_path):
    """A row skipped because its framework was not installed where the model was measured
    is no evidence: left out, so that a machine that has it gets a guess, not "skipped there"."""
    import csv
    import shutil
    from pathlib import Path

    run = Path(shutil.copytree(Path(__file__).parent / "fixtures" / "quick-base", tmp_path / "run"))
    with open(run / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    absent = dict(rows[0], impl="lasagne", framework="theano", status="skipped", median_s="", first_step_s="",
                  reason="framework theano is not installed (make legacy)")
    skipped = dict(rows[0], impl="tf-cudnn", framework="tensorflow", status="skipped", median_s="", first_step_s="",
                   reason="CudnnRNNV3 needs a CUDA GPU")
    with open(run / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows + [absent, skipped])
    plan.build_model(run, tmp_path / "costs.csv")
    model = plan.read_model(tmp_path / "costs.csv")
    impls = {(r["scenario"], r["impl"]): r for r in model}
    assert (rows[0]["scenario"], "lasagne") not in impls
    assert impls[(rows[0]["scenario"], "tf-cudnn")]["status"] == "skipped"
    assert impls[(rows[0]["scenario"], rows[0]["impl"])]["median_s"] == pytest.approx(float(rows[0]["median_s"]))


def warm_copy(cold, target, first_step_s, minutes_less):
    """A copy of the quick run ``cold`` as a run on a warm cache would leave it: every ok
    row's first step ``first_step_s`` above its median, the matrix ``minutes_less`` shorter."""
    import csv
    import datetime as dt
    import shutil

    shutil.copytree(cold, target)
    with open(target / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        if r["status"] == "ok":
            r["first_step_s"] = str(float(r["median_s"]) + first_step_s)
    with open(target / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    meta = results.read_json(target / "meta.json")
    meta["finished"] = (dt.datetime.fromisoformat(meta["finished"]) - dt.timedelta(minutes=minutes_less)).isoformat()
    results.write_json(target / "meta.json", meta)
    return rows


def test_the_cost_model_predicts_a_run_whose_verdict_is_kept_from_its_warm_run(tmp_path):
    """The model holds a run on an empty cache and one on a warm cache of the same matrix;
    a run predicted warm takes the warm run's first step and time outside the steps."""
    from pathlib import Path

    from rnnbench.plan import Evidence, predict
    from rnnbench.scenarios import PROFILES, SCENARIOS, apply_profile

    cold = Path(__file__).parent / "fixtures" / "quick-base"
    rows = warm_copy(cold, tmp_path / "warm", first_step_s=0.5, minutes_less=20)
    plan.build_model(cold, tmp_path / "costs.csv", warm=tmp_path / "warm")
    cold_rows, cold_other = plan.quick_run(cold)
    _, warm_other = plan.quick_run(tmp_path / "warm")
    assert warm_other < cold_other
    evidence = Evidence.read(None, tmp_path / "costs.csv")
    r = next(r for r in rows if r["status"] == "ok" and r["scenario"] == "lstm-4x320bi-ce")
    s = apply_profile(SCENARIOS[r["scenario"]], PROFILES["quick"])
    first_cold = float(next(c for c in cold_rows if c["impl"] == r["impl"] and c["scenario"] == r["scenario"])
                       ["first_step_s"])
    at = {warm: predict(evidence, s, r["impl"], 2 + 5, 1800.0, warm=warm) for warm in (False, True)}
    assert (at[False].basis, at[True].basis) == ("model, T=100", "model, T=100, warm")
    assert at[False].seconds - at[True].seconds == pytest.approx(
        first_cold - float(r["first_step_s"]) + cold_other - warm_other, abs=1e-3)
    # A model without a warm run predicts every run as before, warm or not.
    plan.build_model(cold, tmp_path / "cold-only.csv")
    evidence = Evidence.read(None, tmp_path / "cold-only.csv")
    assert predict(evidence, s, r["impl"], 7, 1800.0, warm=True) == at[False]


def test_plan_predicts_warm_the_runs_whose_verdict_the_cache_keeps(capsys, tmp_path, monkeypatch, nothing_runs):
    """A quick run whose passed verification is kept (rnnbench.verdicts) made its compiles
    into the same cache: plan says "warm" for it, with the model's warm figures, and not
    for the others, nor with --fresh-cache."""
    from pathlib import Path

    from rnnbench import verdicts
    from rnnbench.runner import Runner
    from rnnbench.scenarios import SCENARIOS

    monkeypatch.setenv("RNNBENCH_CACHE_DIR", str(tmp_path / "cache"))
    args = ["-s", "lstm-4x320bi-ce", "-i", "torch-nn", "-i", "torch-cell", "--out", tmp_path / "out"]
    _, before = plan_of(capsys, *args)
    runner = Runner(cli.run_settings(cli.build_parser().parse_args(["run", *map(str, args)])))
    job = runner.job(SCENARIOS["lstm-4x320bi-ce"], "torch-nn", Path("unused"))
    verdicts.keep(str(tmp_path / "cache"), verdicts.key(job), {"verified": "yes", "verify_message": "ok"}, "earlier")
    _, after = plan_of(capsys, *args)
    assert after[("lstm-4x320bi-ce", "torch-nn")][1] == "model, T=100, warm"
    assert after[("lstm-4x320bi-ce", "torch-cell")] == before[("lstm-4x320bi-ce", "torch-cell")]
    assert after[("lstm-4x320bi-ce", "torch-nn")][0] != before[("lstm-4x320bi-ce", "torch-nn")][0]
    _, fresh = plan_of(capsys, *args, "--fresh-cache")
    assert fresh[("lstm-4x320bi-ce", "torch-nn")] == before[("lstm-4x320bi-ce", "torch-nn")]


def test_a_run_here_that_compiled_or_verified_is_predicted_warm_with_the_models_warm_costs(tmp_path):
    """Evidence in --out from a run that compiled cold or ran its verification step: a run
    now predicted warm keeps its step time but takes the first step and the time outside
    the steps from the model's warm run; a run here that was warm already is taken as is."""
    from pathlib import Path

    from rnnbench.plan import Evidence, network, point_of, predict
    from rnnbench.scenarios import PROFILES, SCENARIOS, apply_profile
    from rnnbench.verdicts import KEPT_FROM

    cold = Path(__file__).parent / "fixtures" / "quick-base"
    rows = warm_copy(cold, tmp_path / "warm", first_step_s=0.5, minutes_less=20)
    plan.build_model(cold, tmp_path / "costs.csv", warm=tmp_path / "warm")
    r = next(r for r in rows if r["status"] == "ok" and r["scenario"] == "lstm-4x320bi-ce")
    s = apply_profile(SCENARIOS[r["scenario"]], PROFILES["quick"])
    _, warm_other = plan.quick_run(tmp_path / "warm")
    here = {"status": "ok", "scenario": s.name, "impl": r["impl"], "batch": s.batch, "time_steps": s.time_steps,
            "features": s.features, "hidden": s.hidden, "median_s": 1.0, "first_step_s": 61.0, "wall_s": 100.0,
            "step_log": [{"runtime_s": x} for x in [61.0] + [1.0] * 6], "cache_state": "partly cold",
            "verified": "yes", "verify_message": "matches the reference"}
    kept = {**here, "cache_state": "warm", "verify_message": f"matches the reference {KEPT_FROM}earlier: ...)"}

    def predicted(doc, warm):
        evidence = Evidence.read(None, tmp_path / "costs.csv")
        evidence.add((network(s), r["impl"]), point_of(doc))
        return predict(evidence, s, r["impl"], 7, 1800.0, warm=warm)

    as_it_ran = 60.0 + (100.0 - 67.0) + 7 * 1.0  # compile + outside the steps + the steps
    assert predicted(here, warm=False) == plan.Estimate(pytest.approx(as_it_ran), "measured here")
    warm = predicted(here, warm=True)
    assert warm.basis == "measured here, warm"
    assert warm.seconds == pytest.approx(0.5 + warm_other + 7 * 1.0, abs=1e-3)
    assert predicted(kept, warm=True) == plan.Estimate(pytest.approx(as_it_ran), "measured here")
    # Where its worker timed its import and build, those stand for its time outside the steps.
    timed = predicted({**here, "meta": {"import_s": 2.0, "build_s": 20.0}}, warm=True)
    assert timed.seconds == pytest.approx(0.5 + 22.0 + plan.WARM_REST_S + 7 * 1.0, abs=1e-3)
