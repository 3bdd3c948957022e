"""Runner isolation: a worker that crashes, hangs or writes garbage is recorded and the
suite goes on; results are written as each run finishes."""

import csv
import json
import os
import sys
import time
from pathlib import Path

import pytest

from rnnbench import results
from rnnbench.runner import Runner, Settings, archive_previous
from rnnbench.scenarios import PROFILES, SCENARIOS

FAKE = str(Path(__file__).with_name("fake_worker.py"))


RUNNERS = []


@pytest.fixture(autouse=True, params=["spawned", "forked"])
def launch(request, monkeypatch):
    """Every test here runs twice: workers spawned, and workers forked from a fork server
    (one that preloads a light module, not torch, to keep the tests fast)."""
    monkeypatch.setattr("rnnbench.runner.preload", lambda fw: ("json",) if request.param == "forked" and fw == "torch" else ())
    yield request.param
    while RUNNERS:
        RUNNERS.pop().close_servers()


def make_runner(tmp_path, mode, timeout_s=30.0, profile="smoke"):
    st = Settings(profile=PROFILES[profile], warmup=1, steps=5, threads=1, timeout_s=timeout_s,
                  verify=False, out=tmp_path / "out", worker=[sys.executable, FAKE, mode])
    r = Runner(st)
    RUNNERS.append(r)
    r.meta = {"gemm": {"gflops": 100.0}}
    (r.out / "runs").mkdir(parents=True)
    (r.out / "logs").mkdir()
    return r


def run(tmp_path, mode, **kw):
    r = make_runner(tmp_path, mode, **kw)
    return r, r.run_one(SCENARIOS["lstm-1x320-ce"], "torch-nn")


def test_ok_worker_gives_statistics_checks_and_files(tmp_path, launch):
    r, doc = run(tmp_path, "ok")
    assert doc["status"] == "ok" and doc["worker"] == launch
    assert doc["steps"] == 5 and doc["first_step_s"] == 0.5
    assert doc["median_s"] == pytest.approx(0.102)
    assert doc["ci_low_s"] <= doc["median_s"] <= doc["ci_high_s"]
    assert doc["checks"] == "ok"
    assert doc["gflops"] == pytest.approx(doc["flops_per_step"] / 0.102 / 1e9)
    assert doc["efficiency"] == pytest.approx(doc["gflops"] / 100.0)
    rows = list(csv.DictReader(open(r.out / "results.csv")))
    assert [x["phase"] for x in rows] == ["warmup"] + ["measure"] * 5
    summary = list(csv.DictReader(open(r.out / "summary.csv")))
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


def test_garbage_output_is_recorded(tmp_path):
    _, doc = run(tmp_path, "garbage")
    assert doc["status"] == "failed" and "unreadable result" in doc["reason"]


def test_hang_times_out_and_keeps_partial_steps(tmp_path):
    t0 = time.monotonic()
    _, doc = run(tmp_path, "hang", timeout_s=2)
    assert time.monotonic() - t0 < 20
    assert doc["status"] == "timeout"
    assert "no result within 2 s" in doc["reason"] and "warmup step 1" in doc["reason"]
    assert len(doc["step_log"]) == 1


def test_suite_goes_on_after_failures(tmp_path, launch):
    r = make_runner(tmp_path, "crash")
    r.run_one(SCENARIOS["lstm-1x320-ce"], "torch-nn")
    r.st.worker[-1] = "garbage"
    r.run_one(SCENARIOS["gru-1x320-ce"], "torch-nn")
    r.st.worker[-1] = "segfault"
    r.run_one(SCENARIOS["lstm-4x320bi-ctc"], "torch-nn")
    r.st.worker[-1] = "ok"
    doc = r.run_one(SCENARIOS["lstm-4x320bi-ce"], "torch-nn")
    summary = list(csv.DictReader(open(r.out / "summary.csv")))
    assert [x["status"] for x in summary] == ["failed", "failed", "failed", "ok"]
    assert doc["worker"] == launch


def test_workers_start_clean_and_a_dead_fork_server_is_replaced(tmp_path, launch):
    r = make_runner(tmp_path, "env")
    first, second = (r.run_one(SCENARIOS[s], "torch-nn") for s in ("lstm-1x320-ce", "gru-1x320-ce"))
    assert first["notes"]["FAKE_MARK"] == second["notes"]["FAKE_MARK"] == ""  # nothing leaks between jobs
    if launch == "spawned":
        return  # a spawned worker's parent is this test
    r.st.worker[-1] = "killparent"
    assert r.run_one(SCENARIOS["lstm-4x320bi-ce"], "torch-nn")["status"] == "ok"
    r.st.worker[-1] = "ok"
    doc = r.run_one(SCENARIOS["lstm-4x320bi-ctc"], "torch-nn")
    assert doc["status"] == "ok" and doc["worker"] == launch


def test_previous_run_is_archived_not_overwritten(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "meta.json").write_text(json.dumps({"run_id": "old-run"}))
    (out / "summary.csv").write_text("x\n")
    dest = archive_previous(out)
    assert dest == out / "archive" / "old-run"
    assert (dest / "summary.csv").read_text() == "x\n"
    assert not (out / "summary.csv").exists()


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


@pytest.mark.parametrize("profile", ["smoke", "quick"])
def test_compile_cache_fresh_per_worker_or_shared(tmp_path, monkeypatch, profile):
    monkeypatch.delenv("RNNBENCH_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    r = make_runner(tmp_path, "env", profile=profile)
    docs = [r.run_one(SCENARIOS[s], "torch-nn") for s in ("lstm-1x320-ce", "gru-1x320-ce")]
    caches = [d["notes"]["RNNBENCH_CACHE_DIR"] for d in docs]
    for d, cache in zip(docs, caches):
        assert d["notes"]["TORCHINDUCTOR_CACHE_DIR"] == os.path.join(cache, "torchinductor")
        assert d["notes"]["OMP_NUM_THREADS"] == "1"
    if profile == "smoke":  # its timings are not the point: one cache across workers and runs
        assert caches == [str(tmp_path / "xdg" / "rnnbench" / "compile")] * 2
    else:  # cold compiles: first-step times include them
        assert caches[0] != caches[1] and not any(c.startswith(str(tmp_path / "xdg")) for c in caches)


def test_preset_cache_dir_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNBENCH_CACHE_DIR", str(tmp_path / "mine"))
    _, doc = run(tmp_path, "env")
    assert doc["notes"]["RNNBENCH_CACHE_DIR"] == str(tmp_path / "mine")
