"""``rnnbench run --resume``: a matrix continues where it stopped (Ctrl-C, a crash, SIGKILL
of the runner), keeping every finished run that the current code, frameworks and
settings would repeat, each counted once; a directory it cannot continue is refused with
one line naming what differs, nothing in it moved or overwritten."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_reliability import Run, assert_consistent, no_traceback, snapshot

from rnnbench import results, resume, runner, sources
from rnnbench.errors import ResultsError
from rnnbench.impls import framework_available
from rnnbench.runner import Runner, Settings
from rnnbench.scenarios import PROFILES, SCENARIOS

FAKE = str(Path(__file__).with_name("fake_worker.py"))
NETS = [SCENARIOS[s] for s in ("gru-1x320-ce", "lstm-1x320-ce")]
IMPLS = ["torch-nn", "jax-scan"]


@pytest.fixture(autouse=True)
def quick_gemm(monkeypatch):
    monkeypatch.setattr("rnnbench.gemm.in_subprocess", lambda threads, env: {"gflops": 100.0, "threads": threads})


def matrix(out, modes=(), resume=False, threads=1, **kw):
    """Run NETS x IMPLS into ``out`` with fake workers: ``modes`` are the workers' modes in
    the order they start (then "ok"). Returns the runner and the labels it reported."""
    modes, labels = iter(modes), []
    st = Settings(profile=PROFILES["smoke"], warmup=1, steps=3, threads=threads, verify=False, out=out,
                  resume=resume, worker=(FAKE, next(modes, "ok")), **kw)
    r = Runner(st)

    def on_result(label, doc):
        labels.append(label)
        r.st.worker = (FAKE, next(modes, "ok"))

    r.on_result = on_result
    assert r.run(NETS, IMPLS, ["test"]) == 0
    return r, labels


def by_run(docs):
    return {(d["scenario"], d["impl"]): d for d in docs}


def test_resume_keeps_matching_runs_and_reruns_failed_and_changed_ones(tmp_path, monkeypatch):
    out = tmp_path / "out"
    first, _ = matrix(out, modes=["ok", "crash", "ok", "ok"])
    before = by_run(results.load_runs(out))
    assert [d["status"] for d in first.docs] == ["ok", "failed", "ok", "ok"]

    real = resume.source_hash  # jax-scan's source changes; torch-nn's does not
    monkeypatch.setattr(resume, "source_hash", lambda impl: real(impl) + ("-edited" if impl == "jax-scan" else ""))
    again, labels = matrix(out, resume=True)
    meta, docs = assert_consistent(out)
    now = by_run(docs)
    assert len(docs) == 4 and all(d["status"] == "ok" for d in docs)
    assert [label.endswith("(kept)") for label in labels] == [True, False, True, False]
    for key in [("gru-1x320-ce", "torch-nn"), ("lstm-1x320-ce", "torch-nn")]:
        assert now[key] == before[key]  # kept as it was: same document, same run
    for key in [("gru-1x320-ce", "jax-scan"), ("lstm-1x320-ce", "jax-scan")]:
        assert now[key]["run_id"] == again.run_id != first.run_id
    # the finished jax-scan run whose source changed is moved aside, not lost; the failed one is replaced
    [aside] = (out / "archive").iterdir()
    assert by_run(results.load_runs(aside)) == {("lstm-1x320-ce", "jax-scan"): before[("lstm-1x320-ce", "jax-scan")]}
    assert json.loads((aside / "meta.json").read_text())["run_id"] == first.run_id
    assert (aside / "logs" / "lstm-1x320-ce__jax-scan.log").exists()
    assert meta["state"] == "finished" and meta["resumed_from"] == [first.run_id]


def test_resume_of_a_finished_matrix_runs_nothing(tmp_path, monkeypatch):
    out = tmp_path / "out"
    matrix(out)
    before = snapshot(out / "runs")
    monkeypatch.setattr("rnnbench.gemm.in_subprocess", lambda *a: pytest.fail("nothing to measure"))
    monkeypatch.setattr("rnnbench.launch.Launcher.start", lambda *a: pytest.fail("a worker started"))
    _, labels = matrix(out, resume=True)
    assert all(label.endswith("(kept)") for label in labels) and snapshot(out / "runs") == before
    assert not (out / "archive").exists()


def test_resume_on_an_empty_directory_starts_afresh(tmp_path):
    r, _ = matrix(tmp_path / "new", resume=True)
    assert [d["status"] for d in r.docs] == ["ok"] * 4


@pytest.mark.parametrize("change, words", [
    (dict(threads=2), "its settings differ (threads 1 -> 2)"),
    (dict(profile="quick"), 'profile "smoke" -> "quick"'),
    (dict(flush_denormal=False), "flush_denormal true -> false"),
    (dict(steps=4), "steps 3 -> 4"),
    (dict(device="cpu"), 'device "auto" -> "cpu"'),
])
def test_resume_with_other_settings_is_refused_untouched(tmp_path, change, words):
    out = tmp_path / "out"
    matrix(out)
    before = snapshot(out)
    if "profile" in change:
        change = dict(profile=PROFILES[change["profile"]])
    st = Settings(**{**dict(profile=PROFILES["smoke"], warmup=1, steps=3, threads=1, verify=False, out=out,
                            resume=True, worker=(FAKE, "ok")), **change})
    with pytest.raises(ResultsError) as e:
        Runner(st).run(NETS, IMPLS, ["test"])
    assert words in str(e.value) and str(e.value).startswith(f"cannot resume {out}: ")
    assert "\n" not in str(e.value) and snapshot(out) == before


def test_resume_with_other_settings_is_one_line_exit_2(tmp_path):
    out = tmp_path / "out"
    assert Run(out).finish() == 0
    before = snapshot(out)
    again = Run(out, "ok", "--resume", "--steps", "5", "--no-flush-denormal")
    assert again.finish() == 2
    assert again.err.splitlines() == [f"rnnbench: error: cannot resume {out}: its settings differ (flush_denormal "
                                      "true -> false, steps 3 -> 5); repeat them, or run without --resume (the "
                                      "earlier run is then archived)"]
    assert snapshot(out) == before


@pytest.mark.parametrize("damage, words", [
    (lambda out: (out / "meta.json").write_text(json.dumps({**json.loads((out / "meta.json").read_text()),
                                                            "schema": "rnnbench.meta/0"})),
     "meta.json: field 'schema': unknown version 'rnnbench.meta/0'; this rnnbench reads rnnbench.meta/1"),
    (lambda out: (out / "runs" / "gru-1x320-ce__torch-nn.json").write_text('{"schema": "rnnbench.run/1"}'),
     "gru-1x320-ce__torch-nn.json: field 'schema': unknown version 'rnnbench.run/1'"),
    (lambda out: (out / "meta.json").unlink(), "it has no readable meta.json"),
])
def test_resume_of_another_schema_is_one_line_exit_2_untouched(tmp_path, damage, words):
    out = tmp_path / "out"
    assert Run(out).finish() == 0
    damage(out)
    before = snapshot(out)
    again = Run(out, "ok", "--resume")
    assert again.finish() == 2
    no_traceback(again)
    [line] = again.err.splitlines()
    assert line.startswith(f"rnnbench: error: cannot resume {out}: ") and words in line, line
    assert snapshot(out) == before


def children(pid):
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def gone(pid, within_s=5.0):
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def test_a_worker_does_not_outlive_a_killed_runner(tmp_path):
    """An orphan would load the machine while the resumed run measures (a hung worker:
    until its timeout, 15 min to 24 h)."""
    run = Run(tmp_path / "out", "hang")
    run.wait_for("[1/4]")
    time.sleep(0.5)
    workers = children(run.p.pid)
    assert workers
    try:
        run.signal(signal.SIGKILL)
        assert all(gone(pid) for pid in workers), "a worker outlived its runner"
    finally:
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.parametrize("wait_for, after_s", [("[3/4]", 0.4), ("[2/4]", 0.0), ("[4/4]", 0.7)])
def test_sigkill_of_the_runner_then_resume_keeps_each_finished_run_once(tmp_path, wait_for, after_s):
    out = tmp_path / "out"
    run = Run(out, "slow")
    run.wait_for(wait_for)
    run.signal(signal.SIGKILL, after_s=after_s)
    finished = {(d["scenario"], d["impl"]): d for d in results.load_runs(out) if d["status"] == "ok"}
    assert len(finished) == int(wait_for[1]) - 1
    again = Run(out, "ok", "--resume")
    assert again.finish() == 0, again.err
    no_traceback(again)
    assert f"resuming {out}: {len(finished)} of 4 runs kept, {4 - len(finished)} to run" in again.err
    meta, docs = assert_consistent(out)  # the exports agree with runs/: each run in them once
    assert meta["state"] == "finished" and len(docs) == 4 and all(d["status"] == "ok" for d in docs)
    for d in docs:
        if (d["scenario"], d["impl"]) in finished:
            assert d == finished[(d["scenario"], d["impl"])]
        else:
            assert d["run_id"] == meta["run_id"]
    assert not (out / "archive").exists()


def test_ctrl_c_then_resume_reruns_the_interrupted_run(tmp_path):
    out = tmp_path / "out"
    run = Run(out, "slow")
    run.wait_for("[2/4]")
    assert run.signal(signal.SIGINT, after_s=0.4) == 130
    assert [d["status"] for d in results.load_runs(out)] == ["ok", "interrupted"]
    again = Run(out, "ok", "--resume")
    assert again.finish() == 0, again.err
    meta, docs = assert_consistent(out)
    assert [d["status"] for d in docs] == ["ok"] * 4 and meta["state"] == "finished"
    # (file order: gru, lstm-1x320-ce, lstm-4x320bi-ce, -ctc) gru kept; the interrupted run and the rest run now
    assert [d["run_id"] == meta["run_id"] for d in docs] == [False, True, True, True]


def test_the_source_hash_follows_the_files_an_implementation_runs(tmp_path, monkeypatch):
    copy = tmp_path / "rnnbench"
    for sub in ("impls", "frameworks"):
        shutil.copytree(sources.PACKAGE / sub, copy / sub, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(sources, "PACKAGE", copy)
    impls = ("tf-xla", "tf-cell", "torch-nn", "keras-torch", "keras-jax")

    def changed_by(edit):
        before = {i: sources.source_hash(i) for i in impls}
        with open(copy / edit, "a") as f:
            f.write("# edited\n")
        return [i for i in impls if sources.source_hash(i) != before[i]]

    assert changed_by("impls/tf_common.py") == ["tf-xla", "tf-cell"]  # imported by tf_cell and tf_xla
    assert changed_by("frameworks/torch_.py") == ["torch-nn", "keras-torch"]  # the runtime keras-torch runs on
    assert changed_by("impls/base.py") == list(impls)


def test_the_source_hash_imports_no_framework():
    code = ("import sys; from rnnbench.impls import IMPLEMENTATIONS; from rnnbench.sources import source_hash; "
            "[source_hash(i) for i in IMPLEMENTATIONS]; "
            "print([m for m in ('torch', 'tensorflow', 'jax', 'keras', 'pytensor') if m in sys.modules])")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == "[]", p.stderr


@pytest.mark.skipif(not framework_available("torch"), reason="needs torch")
def test_a_real_workers_runs_are_kept_by_resume(cli, tmp_path):
    """The worker records the source hash and versions the runner computes without
    importing the framework: nothing runs again."""
    args = ("run", "--profile", "smoke", "-i", "torch-nn", "-s", "gru-1x320-ce", "--no-report", "--out", tmp_path)
    assert cli(*args).returncode == 0
    before = snapshot(tmp_path / "runs")
    again = cli(*args, "--resume")
    assert again.returncode == 0 and f"resuming {tmp_path}: 1 of 1 runs kept, 0 to run" in again.stderr
    assert snapshot(tmp_path / "runs") == before
