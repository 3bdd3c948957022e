"""The runner <-> worker protocol: versioned documents, checked field by field."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from rnnbench import protocol
from rnnbench.protocol import Job, ProtocolError, Result, read_progress, step_record

SCENARIO = {"name": "gru-1x320-ce", "cell": "gru", "layers": 1, "hidden": 8, "bidirectional": False,
            "loss": "ce", "classes": 25, "batch": 4, "time_steps": 12, "features": 8, "description": ""}
STOP = {"precision": 0.02, "min_steps": 2, "max_time_s": 60.0, "max_warmup": 5}


def job(**changes):
    values = dict(mode="bench", impl="torch-nn", scenario=SCENARIO, warmup=1, steps=2, threads=1,
                  flush_denormal=True, device="auto", verify=None, result="/r.json", progress="/p.jsonl")
    values.update(changes)
    return Job(**values)


def ok_result(**changes):
    steps = [step_record("warmup", 0, 0.5, 3.0), step_record("measure", 0, 0.1, 2.9), step_record("measure", 1, 0.1, 2.8)]
    values = dict(status="ok", reason="", parameters=42, steps=steps, loop_s=0.2)
    values.update(changes)
    return Result(**values)


def test_documents_round_trip_through_json_with_their_version(tmp_path):
    j = job(verify={"scenario": SCENARIO, "lr": 1.0, "adam_eps": 1.0})
    j.dump(str(tmp_path / "job.json"))
    doc = json.loads((tmp_path / "job.json").read_text())
    assert doc["version"] == protocol.JOB_VERSION == "rnnbench.job/2"
    back = Job.load(str(tmp_path / "job.json"))
    assert back.to_dict() == j.to_dict() and back.mode == "bench" and back.sizes() == SCENARIO
    r = ok_result(verify={"skipped": "needs a GPU"}, steps=[step_record("measure", 0, 0.1, float("nan"))])
    assert Result.from_dict(json.loads(json.dumps(r.to_dict()))).steps[0]["loss"] != 0  # NaN survives
    assert not list(tmp_path.glob("*.tmp-*"))


def test_a_job_with_a_stop_rule_round_trips(tmp_path):
    j = job(steps=40, stop=STOP)
    j.dump(str(tmp_path / "job.json"))
    back = Job.load(str(tmp_path / "job.json"))
    assert back.stop == STOP and back.to_dict() == j.to_dict()
    assert job().stop is None and job().to_dict()["stop"] is None  # fixed counts


@pytest.mark.parametrize("change, words", [
    ({"version": "rnnbench.job/1"}, "version 'rnnbench.job/1', but this rnnbench reads 'rnnbench.job/2'"),
    ({"version": None}, "version None"),
    ({"mode": "benchmark"}, "job.mode: 'benchmark' is not one of bench, verify"),
    ({"steps": "5"}, "field 'steps' should be int, got '5'"),
    ({"flush_denormal": 1}, "field 'flush_denormal' should be bool"),
    ({"threads": True}, "field 'threads' should be int, got True"),
    ({"threads": 0}, "threads >= 1"),
    ({"result": None}, "field 'result' is missing"),
    ({"bench": True}, "unknown field 'bench'"),
    ({"scenario": None}, "a bench job needs a scenario"),
    ({"steps": 0}, "a bench job needs steps >= 1"),
    ({"mode": "verify", "scenario": None}, "a verify job needs its verify part"),
    ({"verify": {"scenario": SCENARIO, "lr": 1.0}}, "job.verify: field 'adam_eps' is missing"),
    ({"scenario": {**SCENARIO, "layers": 1.5}}, "job.scenario: field 'layers' should be int"),
    ({"device": "tpu"}, "'tpu' is not one of auto, cpu, cuda"),
    ({"stop": {**STOP, "precision": 1.5}}, "job.stop.precision: 1.5 is not a fraction in (0, 1)"),
    ({"stop": {**STOP, "precision": 0}}, "job.stop.precision: 0 is not a fraction in (0, 1)"),
    ({"stop": {**STOP, "min_steps": 3}}, "job.stop.min_steps: 3 is not in 1..steps (2)"),
    ({"stop": {**STOP, "max_time_s": 0}}, "job.stop.max_time_s: 0 is not a time budget"),
    ({"stop": {**STOP, "max_warmup": 0}}, "job.stop.max_warmup: 0 is below warmup (1)"),
    ({"stop": {**STOP, "patience": 3}}, "job.stop: unknown field 'patience'"),
    ({"stop": {"precision": 0.02}}, "job.stop: field 'min_steps' is missing"),
    ({"stop": 0.02}, "field 'stop' should be dict, got 0.02"),
])
def test_a_job_of_another_version_or_malformed_is_refused_by_name(change, words):
    doc = {**job().to_dict(), **change}
    with pytest.raises(ProtocolError) as e:
        Job.from_dict(doc)
    assert words in str(e.value)


@pytest.mark.parametrize("change, words", [
    ({"version": "rnnbench.result/3"}, "version 'rnnbench.result/3'"),
    ({"status": "timeout"}, "'timeout' is not one of ok, failed, skipped"),
    ({"steps": [{"phase": "measure", "step": 0, "runtime_s": -1.0, "loss": 1.0}]}, "steps[0].runtime_s: -1.0 cannot be"),
    ({"steps": [{"phase": "measure", "step": 0, "runtime_s": float("inf"), "loss": 1.0}]}, "cannot be a step time"),
    ({"steps": [{"phase": "timed", "step": 0, "runtime_s": 0.1, "loss": 1.0}]}, "steps[0].phase: 'timed'"),
    ({"steps": [{"phase": "measure", "step": 0, "runtime_s": 0.1}]}, "steps[0]: field 'loss' is missing"),
    ({"verify": {"loss": 1.0}}, "result.verify: field 'scenario' is missing"),
    ({"verify": {"skipped": 3}}, "field 'skipped' should be str"),
    ({"parameters": 4.2}, "field 'parameters' should be int"),
    ({"stop_reason": "bored"}, "result.stop_reason: 'bored' is not one of fixed, precision, max-steps, max-time"),
    ({"warmup_reason": "count"}, "result.warmup_reason: 'count' is not one of fixed, settled, max-warmup"),
    ({"rule_s": "0.1"}, "field 'rule_s' should be int or float"),
])
def test_a_result_of_another_version_or_malformed_is_refused_by_name(change, words):
    with pytest.raises(ProtocolError) as e:
        Result.from_dict({**ok_result().to_dict(), **change})
    assert words in str(e.value)


def test_a_worker_cannot_write_a_malformed_result(tmp_path):
    with pytest.raises(ProtocolError, match="result.status: 'fine' is not one of"):
        Result(status="fine", reason="").dump(str(tmp_path / "r.json"))
    with pytest.raises(ProtocolError, match="unknown field 'speed'"):
        Result(status="ok", reason="", speed=1)
    assert not list(tmp_path.iterdir())  # no result, no temp file


def test_an_ok_result_must_answer_the_job():
    ok_result().check_answers(job())
    with pytest.raises(ProtocolError, match="lacks 'loop_s'"):
        ok_result(loop_s=None).check_answers(job())
    with pytest.raises(ProtocolError, match=r"3 steps \(2 measured\), the job asked for 1 \+ 3"):
        ok_result().check_answers(job(steps=3))
    with pytest.raises(ProtocolError, match="lacks the verification step"):
        ok_result().check_answers(job(verify={"scenario": SCENARIO, "lr": 1.0, "adam_eps": 1.0}))
    Result(status="failed", reason="boom").check_answers(job())  # a failure owes nothing


def test_a_result_under_a_stop_rule_answers_within_its_bounds():
    stopped = job(steps=3, stop=STOP)  # 1 to 5 warm-up steps, 1 to 3 measured
    warm = [step_record("warmup", k, 0.5, 3.0) for k in range(6)]
    measure = [step_record("measure", k, 0.1, 2.0) for k in range(4)]
    for w, m in ((1, 2), (5, 1), (3, 3)):
        ok_result(steps=warm[:w] + measure[:m]).check_answers(stopped)
    for w, m in ((6, 1), (0, 2), (1, 4), (2, 0)):
        with pytest.raises(ProtocolError, match=r"the job allowed 1 to 5 warm-up and 1 to 3 measured"):
            ok_result(steps=warm[:w] + measure[:m]).check_answers(stopped)


def test_a_file_that_is_not_json_names_itself(tmp_path):
    (tmp_path / "r.json").write_text("{")
    with pytest.raises(ProtocolError, match=f"result {tmp_path / 'r.json'}: not JSON"):
        Result.load(str(tmp_path / "r.json"))
    with pytest.raises(ProtocolError, match="^result: not JSON"):
        Result.load(str(tmp_path / "r.json"), "result")


def test_progress_is_read_up_to_the_first_incomplete_line(tmp_path):
    path = tmp_path / "p.jsonl"
    assert read_progress(str(path)) == []
    lines = [json.dumps(step_record("warmup", 0, 0.5, 3.0)), json.dumps(step_record("measure", 0, 0.1, 2.0)), '{"phase": "me']
    path.write_text("\n".join(lines))
    assert [r["phase"] for r in read_progress(str(path))] == ["warmup", "measure"]


def python36():
    """A Python 3.6 interpreter (pyenv's, where the machine has one), or None."""
    candidates = [*Path("~/.pyenv/versions").expanduser().glob("3.6*/bin/python3.6"), shutil.which("python3.6")]
    for exe in filter(None, candidates):
        check = [str(exe), "-c", "import sys; assert sys.version_info[:2] == (3, 6)"]
        if subprocess.run(check, capture_output=True).returncode == 0:
            return str(exe)
    return None


PYTHON36 = python36()

ROUND_TRIP_36 = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("protocol", sys.argv[1])
p = importlib.util.module_from_spec(spec)
spec.loader.exec_module(p)
job = p.Job.load(sys.argv[2])
r = p.Result(status="ok", reason="", parameters=1, loop_s=0.1,
             steps=[p.step_record("measure", i, 0.1, 1.0) for i in range(job.steps)])
r.check_answers(job)
r.dump(job.result)
try:
    p.Job.from_dict(dict(job.to_dict(), version="rnnbench.job/1"))
except p.ProtocolError as e:
    print(e)
"""


@pytest.mark.skipif(not PYTHON36, reason="no Python 3.6 interpreter on this machine")
def test_the_protocol_runs_under_python_3_6(tmp_path):
    """A legacy worker (the 2017 stack) imports this module under Python 3.6."""
    j = job(warmup=0, steps=2, result=str(tmp_path / "r.json"), stop=STOP, inputs=str(tmp_path / "inputs.npz"))
    j.dump(str(tmp_path / "job.json"))
    p = subprocess.run([str(PYTHON36), "-c", ROUND_TRIP_36, protocol.__file__, str(tmp_path / "job.json")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "version 'rnnbench.job/1', but this rnnbench reads 'rnnbench.job/2'" in p.stdout
    Result.load(str(tmp_path / "r.json")).check_answers(j)  # what 3.6 wrote, 3.11 reads


LEGACY_PYTHON = Path(protocol.__file__).parents[2] / ".venv-legacy" / "bin" / "python"
STOP_RULE_36 = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from rnnbench import stopping
warmup, measure = stopping.rules(1, 40, {"precision": 0.02, "min_steps": 5, "max_time_s": 60.0, "max_warmup": 11})
for t in [0.5] + [0.1 + 0.001 * (i % 3) for i in range(40)]:
    (warmup if not warmup.done else measure).add(t)
    if measure.done:
        break
print(np.__version__, warmup.reason, measure.reason, len(measure.times))
"""


@pytest.mark.skipif(not LEGACY_PYTHON.is_file(), reason=".venv-legacy is not there (make legacy)")
def test_the_stop_rules_run_under_the_legacy_numpy():
    """The legacy worker measures to a precision too: NumPy 1.13 has no default_rng, and the
    bootstrap draws from RandomState there (rnnbench.stopping.median_ci)."""
    p = subprocess.run([str(LEGACY_PYTHON), "-c", STOP_RULE_36, str(Path(protocol.__file__).parents[1])],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["1.13.3", "settled", "precision", "5"]
