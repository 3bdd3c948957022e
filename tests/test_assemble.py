"""The run document, built without processes or files: job + how the worker ended +
what it handed back -> statistics, checks, efficiency and the verification verdict."""

from dataclasses import asdict

import numpy as np
import pytest

from rnnbench.assemble import Outcome, Run, run_document
from rnnbench.protocol import Job, ProtocolError, Result, step_record
from rnnbench.scenarios import PROFILES, SCENARIOS, apply_profile
from rnnbench.verify import VERIFY_EPS, VERIFY_LR, verify_scenario

SCENARIO = apply_profile(SCENARIOS["gru-1x320-ce"], PROFILES["smoke"])
RUN = Run("r1", "smoke", timeout_s=30.0, gemm_gflops=10.0)


def job(mode="bench", verify=False, **changes):
    spec = {"scenario": asdict(verify_scenario(SCENARIOS["gru-1x320-ce"])), "lr": VERIFY_LR, "adam_eps": VERIFY_EPS}
    values = dict(mode=mode, impl="torch-nn", scenario=asdict(SCENARIO) if mode == "bench" else None, warmup=1,
                  steps=4, threads=2, flush_denormal=True, device="auto", verify=spec if verify or mode == "verify" else None,
                  result="", progress="")
    return Job(**{**values, **changes})


def steps(times=(0.2, 0.2, 0.4, 0.1), losses=(3.0, 2.9, 2.7, 2.6, 2.4)):
    return [step_record("warmup", 0, 1.5, losses[0])] + [
        step_record("measure", i, t, loss) for i, (t, loss) in enumerate(zip(times, losses[1:]))]


def ok(**changes):
    values = dict(status="ok", reason="", runtime={"device": "cpu", "device_name": "EPYC", "threads": 2,
                                                  "flush_denormal": "on"},
                  versions={"torch": "2.13.0"}, parameters=1234, notes={"adam": "standard"}, steps=steps(),
                  loop_s=0.9001, peak_rss_mib=300.0, import_s=2.0, build_s=0.1, warmup_reason="fixed",
                  stop_reason="fixed", rule_s=1e-5)
    return Result(**{**values, **changes})


def exited(result=None, **kw):
    return Outcome("exited", returncode=0, result=result, worker="spawned", wall_s=5.0, **kw)


def test_an_ok_run_gets_statistics_checks_and_efficiency():
    doc = run_document(job(), RUN, exited(ok()))
    assert doc["status"] == "ok" and doc["steps"] == 4 and doc["warmup"] == 1
    assert doc["median_s"] == pytest.approx(0.2) and doc["mean_s"] == pytest.approx(0.225)
    assert doc["first_step_s"] == 1.5 and doc["checks"] == "ok" and doc["parameters"] == 1234
    assert doc["gflops"] == pytest.approx(doc["flops_per_step"] / 0.2 / 1e9)
    assert doc["efficiency_pct"] == pytest.approx(100 * doc["gflops"] / 10.0)
    assert doc["version"] == "torch 2.13.0" and doc["device_name"] == "EPYC" and doc["flush_denormal"] == "on"
    assert doc["meta"]["import_s"] == 2.0 and doc["worker"] == "spawned" and doc["verified"] == ""
    assert (doc["batch"], doc["time_steps"], doc["hidden"]) == (4, 12, 8) and doc["run_id"] == "r1"
    assert (doc["stop_reason"], doc["warmup_reason"], doc["stop_rule"]) == ("fixed", "fixed", None)
    assert doc["meta"]["rule_s"] == 1e-5


def test_a_precision_run_records_how_many_steps_and_why():
    stop = {"precision": 0.05, "min_steps": 3, "max_time_s": 60.0, "max_warmup": 4}
    warm = [step_record("warmup", k, t, 3.0) for k, t in enumerate((1.5, 0.3, 0.2))]
    measured = [step_record("measure", k, t, 2.9 - 0.1 * k) for k, t in enumerate((0.2, 0.201, 0.199, 0.2))]
    result = ok(steps=warm + measured, loop_s=0.8, warmup_reason="settled", stop_reason="precision")
    doc = run_document(job(steps=40, stop=stop), RUN, exited(result))
    assert (doc["steps"], doc["warmup"], doc["stop_reason"], doc["warmup_reason"]) == (4, 3, "precision", "settled")
    low, median, high = doc["ci_low_s"], doc["median_s"], doc["ci_high_s"]
    assert doc["ci_halfwidth_pct"] == pytest.approx(100 * max(median - low, high - median) / median)
    assert 0 < doc["ci_halfwidth_pct"] < 0.51  # the CI within the steps' range, 199-201 ms
    assert doc["drift"] == "" and doc["checks"] == "ok"
    assert doc["stop_rule"] == stop
    with pytest.raises(ProtocolError, match="the job allowed 1 to 4 warm-up and 1 to 3 measured"):
        result.check_answers(job(steps=3, stop=stop))


def test_checks_and_missing_yardsticks_show_in_the_document():
    doc = run_document(job(), Run("r1", "smoke"), exited(ok(steps=steps(losses=(3, 3.1, 3.2, float("nan"), 3.3)),
                                                              loop_s=1.5)))
    assert doc["checks"] == "failed: finite,decreasing,overhead" and doc["efficiency_pct"] is None
    doc = run_document(job(), RUN, exited(ok(steps=steps(times=(0.0,) * 4), loop_s=0.0)))
    assert doc["median_s"] == 0.0 and doc["gflops"] is None and doc["efficiency_pct"] is None  # no rate from zero time


def test_a_timeout_keeps_the_reported_steps():
    progress = steps()[:2]
    doc = run_document(job(), RUN, Outcome("timeout", progress=progress, worker="forked"))
    assert doc["status"] == "timeout" and doc["step_log"] == progress
    assert doc["reason"] == "no result within 30 s (last reported: measure step 1, 2/5 steps reported)"
    doc = run_document(job(), RUN, Outcome("timeout"))
    assert "no step finished: still compiling or building" in doc["reason"]
    stop = {"precision": 0.05, "min_steps": 3, "max_time_s": 60.0, "max_warmup": 4}
    doc = run_document(job(steps=40, stop=stop), RUN, Outcome("timeout", progress=progress))
    assert doc["reason"].endswith("(last reported: measure step 1, 2 of at most 44 steps reported)")


def test_interrupted_and_not_started_runs():
    doc = run_document(job(), RUN, Outcome("interrupted", reason="interrupted by Ctrl-C", progress=steps()[:1]))
    assert (doc["status"], doc["reason"], len(doc["step_log"])) == ("interrupted", "interrupted by Ctrl-C", 1)
    doc = run_document(job(), RUN, Outcome("not started", reason="framework torch is not installed"))
    assert doc["status"] == "skipped" and "worker" not in doc


@pytest.mark.parametrize("outcome, words", [
    (Outcome("exited", returncode=3, error="no result file"), "worker exited with code 3: no result file"),
    (Outcome("exited", returncode=-11), "worker exited with code -11: no result file"),
    (Outcome("exited", error="could not start the worker: disk full"), "could not start the worker: disk full"),
    (exited(ok(loop_s=None)), "worker exited with code 0: result: an ok bench result lacks 'loop_s'"),
    (exited(ok(steps=steps()[:3])), "3 steps (2 measured), the job asked for 1 + 4"),
    (exited(Result(status="failed", reason="RuntimeError: boom")), "RuntimeError: boom"),
])
def test_a_worker_without_a_usable_result_is_a_failure_with_its_reason(outcome, words):
    doc = run_document(job(), RUN, outcome)
    assert doc["status"] == "failed" and words in doc["reason"] and "median_s" not in doc


def test_a_run_the_implementation_cannot_do_is_skipped():
    doc = run_document(job(), RUN, exited(Result(status="skipped", reason="needs a GPU", versions={"tf": "2"})))
    assert (doc["status"], doc["reason"], doc["version"]) == ("skipped", "needs a GPU", "tf 2")


def reference_step(scale=1.0):
    """The verification part a correct implementation hands back (the float64 reference's
    own step), with the first tensor's update scaled by ``scale``."""
    from rnnbench.data import canonical_weights, make_batch
    from rnnbench.reference import adam_step, loss_and_grads

    s = verify_scenario(SCENARIOS["gru-1x320-ce"])
    w = canonical_weights(s)
    loss, grads = loss_and_grads(s, make_batch(s), w, gru="reset-after")
    new = adam_step(w, grads, lr=VERIFY_LR, eps=VERIFY_EPS, variant="standard")
    first = next(iter(new))
    new[first] = w[first] + scale * (new[first] - w[first])
    return {"scenario": asdict(s), "loss": float(loss), "weights": {k: np.asarray(v).tolist() for k, v in new.items()},
            "notes": {"gru": "reset-after", "adam": "standard"}}


def test_the_verification_step_is_judged_against_the_reference():
    doc = run_document(job(mode="verify"), RUN, exited(Result(status="ok", reason="", verify=reference_step())))
    assert doc["verified"] == "yes" and "median_s" not in doc and doc["verify_loss_err"] < 1e-6
    doc = run_document(job(verify=True), RUN, exited(ok(verify=reference_step(scale=1.05))))
    assert doc["verified"] == "no" and "weight updates differ" in doc["verify_message"] and doc["median_s"] > 0
    doc = run_document(job(mode="verify"), RUN, exited(Result(status="ok", reason="", verify={"skipped": "no GPU"})))
    assert doc["verified"] == "" and doc["verify_message"] == "skipped: no GPU"
    broken = {**reference_step(), "weights": {"l0.w_ih": [[1.0], [1.0, 2.0]]}}
    doc = run_document(job(mode="verify"), RUN, exited(Result(status="ok", reason="", verify=broken)))
    assert doc["verified"] == "no" and doc["verify_message"].startswith("malformed verification step")
    doc = run_document(job(mode="verify"), RUN, exited(Result(status="ok", reason="")))
    assert doc["status"] == "failed" and "lacks the verification step" in doc["reason"]


def test_a_gpu_run_has_no_efficiency_against_the_cpu_gemm_rate():
    gpu = ok(runtime={"device": "cuda", "device_name": "NVIDIA H100", "threads": 2, "flush_denormal": "on"})
    doc = run_document(job(device="cuda"), RUN, exited(gpu))
    assert doc["device"] == "cuda" and doc["gflops"] > 0 and doc["efficiency_pct"] is None
    assert run_document(job(), RUN, exited(ok()))["efficiency_pct"] is not None
