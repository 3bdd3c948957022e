"""Runner isolation: a worker that crashes, hangs or writes garbage is recorded and the
suite goes on; each run is recorded as it finishes, and the three files agree."""

import csv
import io
import json
import math
import os
import re
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from rnnbench import results
from rnnbench import watch
from rnnbench.cli import Progress, status_text
from rnnbench.protocol import Job, step_record
from rnnbench.runner import Runner, Settings
from rnnbench.watch import OwnLoad, busy_warning, phase
from rnnbench.scenarios import PROFILES, SCENARIOS

FAKE = str(Path(__file__).with_name("fake_worker.py"))
RUNNERS = []


@pytest.fixture(autouse=True, params=["spawned", "forked"])
def launch(request, monkeypatch):
    """Every test here runs twice: workers spawned, and workers forked from a fork server
    (one that preloads a light module, not torch, to keep the tests fast)."""
    monkeypatch.setattr("rnnbench.launch.preload", lambda fw, cpu=False: ("json",) if request.param == "forked" and fw == "torch" else ())
    monkeypatch.setattr("rnnbench.gemm.in_subprocess", lambda threads, env: {"gflops": 100.0, "threads": threads})
    yield request.param
    while RUNNERS:
        RUNNERS.pop().close()


def make_runner(tmp_path, fake, timeout_s=30.0, profile="smoke", **kw):
    """A runner whose workers are ``fake_worker.py FAKE``."""
    st = Settings(profile=PROFILES[profile], warmup=1, steps=5, threads=1, timeout_s=timeout_s,
                  verify=False, out=tmp_path / "out", worker=(FAKE, fake), **kw)
    r = Runner(st)
    RUNNERS.append(r)
    return r


def opened(tmp_path, fake, **kw):
    """A runner that holds its results directory, ready for ``run_one``."""
    r = make_runner(tmp_path, fake, **kw)
    r.open([], [], ["test"])
    r.info.gemm_gflops = 100.0
    return r


def run(tmp_path, fake, **kw):
    r = opened(tmp_path, fake, **kw)
    return r, r.run_one(SCENARIOS["lstm-1x320-ce"], "torch-nn")


def assert_files_agree(out):
    """summary.csv and results.csv say exactly what runs/ holds."""
    docs = {(d["scenario"], d["impl"]): d for d in results.load_runs(out)}
    summary = list(csv.DictReader(open(out / "summary.csv")))
    assert {(r["scenario"], r["impl"]): r["status"] for r in summary} == {k: d["status"] for k, d in docs.items()}
    steps = list(csv.DictReader(open(out / "results.csv")))
    assert len(steps) == sum(len(d.get("step_log") or []) for d in docs.values())
    assert not list(out.rglob(f"*{results.TEMP_MARK}*"))
    return summary


def test_ok_worker_gives_statistics_checks_and_files(tmp_path, launch):
    r, doc = run(tmp_path, "ok")
    assert doc["status"] == "ok" and doc["worker"] == launch
    assert doc["steps"] == 5 and doc["first_step_s"] == 0.5
    assert doc["median_s"] == pytest.approx(0.102)
    assert doc["ci_low_s"] <= doc["median_s"] <= doc["ci_high_s"]
    assert doc["checks"] == "ok"
    assert doc["gflops"] == pytest.approx(doc["flops_per_step"] / 0.102 / 1e9)
    assert doc["efficiency_pct"] == pytest.approx(100 * doc["gflops"] / 100.0)
    rows = list(csv.DictReader(open(r.out / "results.csv")))
    assert [x["phase"] for x in rows] == ["warmup"] + ["measure"] * 5
    summary = assert_files_agree(r.out)
    assert summary[0]["status"] == "ok" and summary[0]["checks"] == "ok"
    saved = json.loads((r.out / "runs" / "lstm-1x320-ce__torch-nn.json").read_text())
    assert saved["schema"] == results.RUN_SCHEMA and len(saved["step_log"]) == 6


def test_crash_is_recorded_with_stderr(tmp_path):
    _, doc = run(tmp_path, "crash")
    assert doc["status"] == "failed"
    assert "code 3" in doc["reason"]
    assert "about to crash" in doc["stderr_tail"]


def test_exit_with_a_message_is_recorded_as_python_reports_it(tmp_path):
    _, doc = run(tmp_path, "exitmsg")
    assert doc["status"] == "failed" and "code 1" in doc["reason"]
    assert "fake worker: gave up" in doc["stderr_tail"]


def test_segfault_is_recorded(tmp_path):
    _, doc = run(tmp_path, "segfault")
    assert doc["status"] == "failed" and "code -11" in doc["reason"]


@pytest.mark.parametrize("fake, words", [
    ("garbage", "unreadable result: not JSON"),
    ("oldversion", "version 'rnnbench.result/1', but this rnnbench reads 'rnnbench.result/2'"),
    ("fewsteps", "5 steps (5 measured), the job asked for 1 + 5"),
])
def test_a_result_that_is_not_one_is_recorded(tmp_path, fake, words):
    _, doc = run(tmp_path, fake)
    assert doc["status"] == "failed" and words in doc["reason"]


def test_hang_times_out_and_keeps_partial_steps(tmp_path):
    t0 = time.monotonic()
    _, doc = run(tmp_path, "hang", timeout_s=2)
    assert time.monotonic() - t0 < 20
    assert doc["status"] == "timeout"
    assert "no result within 2 s" in doc["reason"] and "warmup step 1" in doc["reason"]
    assert len(doc["step_log"]) == 1  # the half-written second line is left out


def test_nan_losses_fail_the_checks_and_are_stored_as_null(tmp_path):
    r, doc = run(tmp_path, "nan")
    assert doc["status"] == "ok" and doc["checks"] == "failed: finite,decreasing"
    text = (r.out / "runs" / "lstm-1x320-ce__torch-nn.json").read_text()
    saved = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in a run document"))
    assert saved["step_log"][1]["loss"] is None and saved["non_finite"] == {"step_log[1].loss": "nan"}


def test_whole_matrix_goes_on_after_failures_and_records_in_order(tmp_path, launch):
    r = make_runner(tmp_path, "crash")
    modes = iter(["garbage", "segfault", "segfault", "ok", "ok"])  # the mode of the run after each result
    r.on_result = lambda label, doc: setattr(r.st, "worker", (FAKE, next(modes, "ok")))
    scenarios = [SCENARIOS[s] for s in ("lstm-1x320-ce", "gru-1x320-ce")]
    assert r.run(scenarios, ["torch-nn", "jax-scan", "tf-cell"], ["test"], missing={"tensorflow"}) == 0
    summary = assert_files_agree(r.out)
    assert [(x["scenario"], x["impl"], x["status"]) for x in summary] == [
        ("lstm-1x320-ce", "torch-nn", "failed"), ("lstm-1x320-ce", "jax-scan", "failed"),
        ("lstm-1x320-ce", "tf-cell", "skipped"), ("gru-1x320-ce", "torch-nn", "failed"),
        ("gru-1x320-ce", "jax-scan", "ok"), ("gru-1x320-ce", "tf-cell", "skipped")]
    assert "rnnbench[tensorflow]" in summary[2]["reason"]
    meta = json.loads((r.out / "meta.json").read_text())
    assert meta["state"] == "finished" and meta["finished"] and meta["gemm"]["gflops"] == 100.0
    assert not (r.out / "rnnbench.lock").exists()
    assert [d.get("worker") for d in r.docs] == [launch, "spawned", None, launch, "spawned", None]


def test_verify_mode_runs_only_the_verification_step(tmp_path, monkeypatch):
    monkeypatch.setattr("rnnbench.gemm.in_subprocess", lambda *a: pytest.fail("no GEMM rate for verify"))
    r = make_runner(tmp_path, "ok", mode="verify")
    r.run([SCENARIOS["gru-1x320-ce"]], ["torch-nn"], ["test"])
    doc = r.docs[0]
    assert doc["status"] == "ok" and "median_s" not in doc and doc["verify_message"].startswith("skipped")
    assert (doc["batch"], doc["hidden"]) == (4, 8)  # the verification size


def test_workers_start_clean_and_a_dead_fork_server_is_replaced(tmp_path, launch):
    r = opened(tmp_path, "env")
    first, second = (r.run_one(SCENARIOS[s], "torch-nn") for s in ("lstm-1x320-ce", "gru-1x320-ce"))
    assert first["notes"]["FAKE_MARK"] == second["notes"]["FAKE_MARK"] == ""  # nothing leaks between jobs
    if launch == "spawned":
        return  # a spawned worker's parent is this test
    r.st.worker = (FAKE, "killparent")
    assert r.run_one(SCENARIOS["lstm-4x320bi-ce"], "torch-nn")["status"] == "ok"
    r.st.worker = (FAKE, "ok")
    doc = r.run_one(SCENARIOS["lstm-4x320bi-ctc"], "torch-nn")
    assert doc["status"] == "ok" and doc["worker"] == launch


def test_worker_leftovers_are_killed(tmp_path):
    _, doc = run(tmp_path, "stray")
    assert doc["status"] == "ok"
    pid = int(doc["notes"]["stray_pid"])
    for _ in range(50):  # the kill is immediate; reaping by init may take a moment
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        if Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            break
        time.sleep(0.1)
    else:
        pytest.fail("the worker's leftover process is still running")


@pytest.mark.parametrize("profile", ["smoke", "quick", "seed"])
def test_compile_cache_fresh_per_worker_or_shared(tmp_path, monkeypatch, profile):
    monkeypatch.delenv("RNNBENCH_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    r = opened(tmp_path, "env", profile=profile)
    docs = [r.run_one(SCENARIOS[s], "torch-nn") for s in ("lstm-1x320-ce", "gru-1x320-ce")]
    caches = [d["notes"]["RNNBENCH_CACHE_DIR"] for d in docs]
    for d, cache in zip(docs, caches):
        assert d["notes"]["TORCHINDUCTOR_CACHE_DIR"] == os.path.join(cache, "torchinductor")
        assert d["notes"]["OMP_NUM_THREADS"] == "1"
    if profile in ("smoke", "quick"):  # one cache across workers and runs; each run says cold or warm
        assert caches == [str(tmp_path / "xdg" / "rnnbench" / "compile")] * 2
    else:  # cold compiles: first-step times include them
        assert caches[0] != caches[1] and not any(c.startswith(str(tmp_path / "xdg")) for c in caches)


def test_preset_cache_dir_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNBENCH_CACHE_DIR", str(tmp_path / "mine"))
    _, doc = run(tmp_path, "env")
    assert doc["notes"]["RNNBENCH_CACHE_DIR"] == str(tmp_path / "mine")


def test_the_worker_reads_the_job_it_is_given(tmp_path):
    """The real worker's side of the protocol: a job it cannot read ends it with status 2,
    nothing written; a failure inside the job is a "failed" result."""
    import subprocess

    job = tmp_path / "job.json"
    job.write_text('{"version": "rnnbench.job/1"}')
    p = subprocess.run([sys.executable, "-m", "rnnbench.worker", str(job)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "version 'rnnbench.job/1'" in p.stderr


def test_meta_json_is_json_even_with_an_infinite_timeout(tmp_path):
    r = opened(tmp_path, "ok", timeout_s=float("inf"))
    r.close()
    meta = json.loads((r.out / "meta.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in meta.json"))
    assert meta["timeout_s"] is None and meta["non_finite"] == {"timeout_s": "inf"} and meta["state"] == "finished"


# -- what the runner says while it runs, and the load around each run ---------------------
def test_each_run_records_the_load_average_before_and_after(tmp_path):
    _, doc = run(tmp_path, "ok")
    for key in ("load_before", "load_after"):
        assert len(doc[key]) == 3 and all(isinstance(x, float) and x >= 0 for x in doc[key]), doc[key]


def test_a_busy_machine_is_warned_about(monkeypatch):
    monkeypatch.setattr("rnnbench.machine.usable_cores", lambda: 4)
    assert busy_warning(1.9, 0.0, 2) is None  # others use less than the 2 cores left free
    assert busy_warning(2.6, 0.0, 2) == ("machine busy: load 2.6 from other processes (1-min average) > 2 of 4 "
                                         "cores left free by 2 threads; this run's times may be slow")
    assert busy_warning(2.6, 1.0, 2) is None  # the runner's own recent workers are not the machine's load
    assert busy_warning(2.4, 0.0, 2) is None  # background noise: within BUSY_TOLERANCE
    assert busy_warning(0.3, 0.0, 4) is None  # every core in use, the daemons' 0.3 is no warning...
    assert busy_warning(0.8, 0.0, 4).startswith("machine busy: load 0.8")  # ...most of a core is


def test_the_runners_own_share_of_the_load_decays_as_the_kernels_average(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(watch, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    own = OwnLoad()
    clock[0] = 60.0
    own.ran(2, 60.0)  # 2 threads for one minute: 2 * (1 - 1/e)
    assert own.now() == pytest.approx(2 * (1 - math.exp(-1)))
    clock[0] = 120.0  # a minute later: decayed by 1/e
    assert own.now() == pytest.approx(2 * (1 - math.exp(-1)) * math.exp(-1))


def test_the_phase_is_read_from_the_worker_progress_file(tmp_path):
    progress = tmp_path / "progress.jsonl"
    job = Job(mode="bench", warmup=2, steps=3, verify=None, progress=str(progress))
    seen = [phase(job)]
    progress.write_text("")
    seen.append(phase(job))
    for kind, i in [("warmup", 0), ("measure", 1)]:
        with open(progress, "a") as f:
            f.write(json.dumps(step_record(kind, i, 0.1, 1.0)) + "\n")
        seen.append(phase(job))
    progress.write_text("".join(json.dumps(step_record("measure", i, 0.1, 1.0)) + "\n" for i in range(5)))
    seen += [phase(job), phase(Job(mode="bench", warmup=2, steps=3, verify={"x": 1}, progress=str(progress)))]
    assert seen == ["import, build", "first step (compile)", "warm-up step 1/2", "measure step 2/3",
                    "finishing", "verify"]


def test_the_progress_line_carries_units():
    assert status_text(phase="measure step 3/8", run_s=12.34, predicted_s=45, matrix_s=750, eta_s=11520) == \
        "measure step 3/8 \u00b7 run 12.3 s of ~45.0 s \u00b7 matrix 12.5 min \u00b7 ETA 3.20 h"
    assert status_text(phase="starting", run_s=0.0, matrix_s=0.0, eta_s=None) == "starting \u00b7 run 0 s \u00b7 matrix 0 s"
    stream = io.StringIO()  # not a terminal: plain lines, each warning once
    progress = Progress(stream)
    progress("[1/2] gru-1x320-ce torch-nn", phase="starting", run_s=0.0, predicted_s=45, matrix_s=0.0, eta_s=100)
    for _ in range(2):
        progress(None, phase="measure step 1/8", run_s=1.0, warning="machine busy: load 2.0")
    assert stream.getvalue().splitlines() == [
        "[1/2] gru-1x320-ce torch-nn starting \u00b7 run 0 s of ~45.0 s \u00b7 matrix 0 s \u00b7 ETA 1.67 min",
        "  warning: machine busy: load 2.0"]


class Recorder:
    """A progress display that keeps what it is told."""

    def __init__(self):
        self.seen = []

    def __call__(self, message=None, **status):
        self.seen.append(status)

    def result(self, line):
        pass


def test_the_runner_reports_phases_and_an_eta_that_falls(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_STEP_S", "0.3")
    r = make_runner(tmp_path, "slow")
    r.progress = Recorder()
    r.run([SCENARIOS["gru-1x320-ce"], SCENARIOS["lstm-1x320-ce"]], ["torch-nn"], ["test"])
    live = [s for s in r.progress.seen if s.get("phase") not in (None, "starting")]
    phases = [s["phase"] for s in live]
    assert all(re.fullmatch(r"import, build|first step \(compile\)|warm-up step 1/1|measure step [1-5]/5|finishing", p)
               for p in phases), phases
    assert any(p.startswith("measure step") for p in phases), phases
    etas = [s["eta_s"] for s in live]
    assert etas == sorted(etas, reverse=True) and etas[-1] >= 0
    assert all(s["matrix_s"] >= s["run_s"] >= 0 for s in live)


def test_the_eta_is_what_the_plan_leaves(tmp_path):
    r = make_runner(tmp_path, "ok")
    r.eta.left = [10.0, 20.0, 30.0]
    assert r.eta.clock(4.0)["eta_s"] == 56.0  # 6 s left of the first run, then 20 + 30
    assert r.eta.clock(15.0)["eta_s"] == 50.0  # a run past its prediction adds nothing of its own
    r.eta.done(0)
    assert r.eta.clock(5.0)["eta_s"] == 45.0
    r.eta.fared = [5.0, 10.0]  # the first run took half its prediction: so will the rest
    assert r.eta.clock(5.0)["eta_s"] == 20.0  # 10 - 5 s of the second run, then 15 s
