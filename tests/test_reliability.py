"""Nothing lost, nothing left half-written: one run owns a results directory, and runs/,
summary.csv, results.csv and meta.json agree whatever stops the runner and when (Ctrl-C,
SIGTERM, SIGKILL, a full disk). Most tests drive ``rnnbench run`` in a subprocess, with
the fake worker and a GEMM stand-in, and signal it at chosen moments."""

import csv
import errno
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnbench import results, rundir
from rnnbench.errors import ResultsError

FAKE = str(Path(__file__).with_name("fake_worker.py"))

# `rnnbench run` with workers from fake_worker.py (mode: argv[1]) and a GEMM rate that
# comes at once, or after a minute with $SLOW_GEMM; $GO_FILE: wait for it before starting;
# $FSIZE: a file size limit (a full disk); $SLOW_REPORT: a report that takes a minute.
DRIVER = r"""
import dataclasses, os, resource, signal, sys, time
try:  # as the entry point (rnnbench.__main__) guards its imports
    import rnnbench.cli as cli, rnnbench.gemm as gemm, rnnbench.launch as launch
except KeyboardInterrupt:
    print("rnnbench: interrupted", file=sys.stderr)
    sys.exit(130)
mode = sys.argv[1]
settings = cli._settings
cli._settings = lambda args, bench: dataclasses.replace(settings(args, bench), worker=(%r, mode))
launch.preload = lambda fw, cpu=False: ("json",) if os.environ.get("FORK") else ()
gemm.COMMAND = [sys.executable, "-c", "import time; time.sleep(60)" if os.environ.get("SLOW_GEMM")
                else "print('{\"gflops\": 50.0}')"]
if os.environ.get("SLOW_REPORT"):
    import rnnbench.report
    rnnbench.report.write_report = lambda path: time.sleep(60)
if os.environ.get("FSIZE"):
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(os.environ["FSIZE"]), resource.RLIM_INFINITY))
while os.environ.get("GO_FILE") and not os.path.exists(os.environ["GO_FILE"]):
    time.sleep(0.001)
sys.exit(cli.main(sys.argv[2:]))
""" % FAKE


class Run:
    """``rnnbench run --profile smoke -i torch-nn`` (the seed's four scenarios) in a
    subprocess, its output read as it comes."""

    def __init__(self, out, mode="ok", *args, report=False, **env):
        cmd = [sys.executable, "-c", DRIVER, mode, "run", "--profile", "smoke", "-i", "torch-nn", "--out", str(out),
               *args, *([] if report else ["--no-report"])]
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1", "FAKE_STEP_S": "0.3", **env})
        self.fds = self.p.stdout.fileno(), self.p.stderr.fileno()
        self.seen = dict.fromkeys(self.fds, b"")

    def wait_for(self, text, timeout=30.0):
        """Read its output (unbuffered, straight from the pipes) until ``text`` appears."""
        deadline = time.monotonic() + timeout
        while text.encode() not in b"".join(self.seen.values()):
            ready = select.select(list(self.seen), [], [], 0.1)[0]
            chunks = [os.read(fd, 65536) for fd in ready]
            for fd, chunk in zip(ready, chunks):
                self.seen[fd] += chunk
            if time.monotonic() > deadline or (ready and not any(chunks)):
                pytest.fail(f"never saw {text!r}; output: {self.seen!r}")

    def signal(self, sig, after_s=0.0):
        time.sleep(after_s)
        self.p.send_signal(sig)
        return self.finish()

    def finish(self, timeout=60):
        out, err = self.p.communicate(timeout=timeout)
        self.out, self.err = ((self.seen[fd] + new).decode() for fd, new in zip(self.fds, (out, err)))
        return self.p.returncode


def assert_consistent(out):
    """The directory agrees with itself and is free: exports = runs/, no temp files, no lock."""
    docs = results.load_runs(out)
    with open(out / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    with open(out / "results.csv") as f:
        steps = list(csv.DictReader(f))
    assert sorted((r["scenario"], r["impl"], r["status"]) for r in summary) == \
        sorted((d["scenario"], d["impl"], d["status"]) for d in docs)
    assert len(steps) == sum(len(d.get("step_log") or []) for d in docs)
    assert not [p for p in out.rglob("*") if results.TEMP_MARK in p.name]
    assert not (out / rundir.LOCK_NAME).exists()
    meta = json.loads((out / "meta.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in meta.json"))
    return meta, docs


def no_traceback(run):
    assert "Traceback" not in run.err + run.out, run.err


# -- interruption ------------------------------------------------------------------------
def test_ctrl_c_while_measuring_the_gemm_rate_leaves_a_usable_directory(tmp_path):
    out = tmp_path / "out"
    run = Run(out, SLOW_GEMM="1")
    run.wait_for("measuring the GEMM rate")
    assert run.signal(signal.SIGINT, after_s=0.3) == 130
    no_traceback(run)
    assert [line for line in run.err.splitlines() if "interrupted" in line] == \
        [f"rnnbench: interrupted (Ctrl-C): 0 finished runs kept in {out}"]
    meta, docs = assert_consistent(out)
    assert (meta["state"], meta["stopped_by"], docs) == ("interrupted", "Ctrl-C", [])
    again = Run(out)  # the next run archives it, as it does a finished one
    assert again.finish() == 0, again.err
    assert len(list((out / "archive").iterdir())) == 1 and assert_consistent(out)[0]["state"] == "finished"


@pytest.mark.parametrize("sig, status, cause", [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_ctrl_c_or_sigterm_during_a_run_keeps_what_finished(tmp_path, sig, status, cause):
    out = tmp_path / "out"
    run = Run(out, "slow", FORK="1")
    run.wait_for("[2/4]")
    assert run.signal(sig, after_s=0.4) == status
    no_traceback(run)
    assert f"rnnbench: interrupted ({cause}): 1 finished run kept in {out}" in run.err
    meta, docs = assert_consistent(out)
    assert (meta["state"], meta["interrupted"], meta["stopped_by"]) == ("interrupted", True, cause)
    assert [d["status"] for d in docs] == ["ok", "interrupted"]  # (file order: gru before lstm)
    assert docs[1]["reason"] == f"interrupted by {cause}"


@pytest.mark.parametrize("after_s", [0.0, 0.15, 0.3, 0.5, 0.8, 1.2])
def test_ctrl_c_at_any_moment_leaves_the_directory_consistent(tmp_path, after_s):
    out = tmp_path / "out"
    run = Run(out)
    status = run.signal(signal.SIGINT, after_s=after_s)
    no_traceback(run)
    assert status in (0, 130, -signal.SIGINT), run.err  # the last: before Python set its handler
    if (out / "meta.json").exists():
        meta, docs = assert_consistent(out)
        if status == 0:
            assert meta["state"] == "finished"
        elif meta["state"] == "finished":
            # The Ctrl-C came after the matrix was recorded as finished (as the runner let go
            # of the directory, or as the table was printed): still 130, the whole matrix kept.
            assert len(docs) == 4 and all(d["status"] == "ok" for d in docs), docs
        else:
            assert meta["state"] == "interrupted"
    else:  # stopped before it took the directory: nothing there
        assert not out.exists() or not [p for p in out.iterdir() if p.name != rundir.LOCK_NAME]
    assert Run(out).finish() == 0  # and the next run can use it


def test_ctrl_c_while_the_report_is_written(tmp_path):
    out = tmp_path / "out"
    run = Run(out, report=True, SLOW_REPORT="1")
    run.wait_for("results: ")
    assert run.signal(signal.SIGINT, after_s=0.3) == 130
    no_traceback(run)
    assert run.err.splitlines()[-1] == f"rnnbench: interrupted; `rnnbench report {out}` writes the report"
    assert assert_consistent(out)[0]["state"] == "finished"


def test_sigkill_of_the_runner_then_the_next_run(tmp_path):
    out = tmp_path / "out"
    run = Run(out, "slow")
    run.wait_for("[2/4]")
    run.signal(signal.SIGKILL, after_s=0.2)
    again = Run(out)
    assert again.finish() == 0, again.err
    notes = [line for line in again.err.splitlines() if "lock" in line]
    assert len(notes) == 1 and re.fullmatch(
        rf"rnnbench: note: took over the lock of an earlier run \(pid {run.p.pid} on .*, started .*\) "
        "that ended without releasing it", notes[0])
    [old] = (out / "archive").iterdir()
    meta, docs = assert_consistent(old)
    assert meta["state"] == "interrupted" and "ended without finishing" in meta["stopped_by"]
    assert [d["status"] for d in docs] == ["ok"]


# -- one run per directory ---------------------------------------------------------------
def snapshot(out):
    return sorted((str(p.relative_to(out)), p.stat().st_size, p.stat().st_mtime_ns) for p in out.rglob("*"))


def test_a_second_run_into_the_same_directory_is_refused_untouched(tmp_path):
    out = tmp_path / "out"
    first = Run(out, "hang")
    first.wait_for("[1/4]")
    time.sleep(0.5)  # its worker has started, and hangs
    before = snapshot(out)
    second = Run(out)
    assert second.finish() == 2
    [line] = second.err.splitlines()
    assert re.fullmatch(rf"rnnbench: error: {out} is in use by another rnnbench run \(pid {first.p.pid} on .+, "
                        r"started \d{4}-\d\d-\d\dT[\d:]+.*\); wait for it to end or choose another --out", line), line
    assert snapshot(out) == before
    assert first.signal(signal.SIGINT) == 130


def test_two_runs_started_at_the_same_moment_one_wins(tmp_path):
    out, go = tmp_path / "out", tmp_path / "go"
    runs = [Run(out, "slow", GO_FILE=str(go)) for _ in range(2)]
    time.sleep(1.0)  # both are waiting at the line
    go.touch()
    deadline = time.monotonic() + 30
    while all(r.p.poll() is None for r in runs) and time.monotonic() < deadline:
        time.sleep(0.05)
    codes = [r.p.poll() for r in runs]
    assert sorted(codes, key=str) == [2, None], codes  # one refused at once, one running
    loser, winner = (runs[0], runs[1]) if codes[0] == 2 else (runs[1], runs[0])
    assert winner.finish() == 0, winner.err
    loser.finish()
    [line] = loser.err.splitlines()
    assert line.startswith(f"rnnbench: error: {out} is in use by another rnnbench run (pid {winner.p.pid}")
    no_traceback(loser)
    assert assert_consistent(out)[0]["state"] == "finished"


def test_a_lock_left_by_a_run_that_is_gone_is_taken_over(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    gone = subprocess.Popen(["true"])
    gone.wait()
    (out / rundir.LOCK_NAME).write_text(json.dumps({"pid": gone.pid, "host": "here", "started": "then", "argv": []}))
    lock = rundir.Lock(out)
    assert lock.acquire(["x"]) == (f"took over the lock of an earlier run (pid {gone.pid} on here, started then) "
                                   "that ended without releasing it")
    assert json.loads((out / rundir.LOCK_NAME).read_text())["pid"] == os.getpid()
    with pytest.raises(ResultsError, match=rf"in use by another rnnbench run \(pid {os.getpid()} "):
        rundir.Lock(out).acquire(["y"])  # a live holder is respected, even by its own process
    lock.release()
    assert not (out / rundir.LOCK_NAME).exists() and rundir.Lock(out).acquire(["z"]) is None


@pytest.mark.parametrize("where", ["file", "under a file", "empty", "not writable", "not creatable"])
def test_an_unusable_out_is_one_line_and_nothing_written(tmp_path, cli, where):
    (tmp_path / "f").write_text("x")
    out = {"file": tmp_path / "f", "under a file": tmp_path / "f" / "sub", "empty": "",
           "not writable": "/proc", "not creatable": "/sys/rnnbench-test"}[where]
    if where == "not creatable" and not Path("/sys").is_dir():
        pytest.skip("no /sys here")
    before = snapshot(tmp_path)
    p = cli("run", "--profile", "smoke", "-i", "torch-nn", "--out", out, timeout=60)
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1, p.stderr
    assert p.stderr.startswith("rnnbench: error: ") and "Traceback" not in p.stderr
    assert snapshot(tmp_path) == before


# -- a full disk ---------------------------------------------------------------------------
@pytest.mark.parametrize("steps, fsize, recorded, failing", [
    ("30", 9000, 2, "results.csv"),  # the third record's export no longer fits
    ("300", 12000, 0, "runs/"),  # not even the first record fits
])
def test_a_full_disk_stops_the_run_with_one_line_and_a_consistent_directory(tmp_path, steps, fsize, recorded, failing):
    out = tmp_path / "out"
    run = Run(out, "ok", "--steps", steps, FSIZE=str(fsize))
    assert run.finish() == 2
    no_traceback(run)
    [line] = [x for x in run.err.splitlines() if x.startswith("rnnbench: error:")]
    assert f"cannot record {out}/{failing}" in line and "File too large" in line
    assert line.endswith(f"the run stopped there, the {recorded} runs recorded before it are kept in {out}")
    meta, docs = assert_consistent(out)
    assert len(docs) == recorded and meta["state"] == "interrupted" and "File too large" in meta["stopped_by"]


def fail_writes(monkeypatch, name, error=errno.ENOSPC, call="open"):
    """Make writing (``open``) or moving into place (``os.replace``) of a file whose name
    contains ``name`` fail with ``error``."""
    real = {"open": open, "replace": os.replace}[call]

    def failing(path, *args, **kw):
        target = str(args[0]) if call == "replace" else str(path)
        if name in Path(target).name and (call == "replace" or "w" in (args[0] if args else kw.get("mode", "r"))):
            raise OSError(error, os.strerror(error), target)
        return real(path, *args, **kw)

    if call == "open":
        monkeypatch.setattr("builtins.open", failing)
    else:
        monkeypatch.setattr(os, "replace", failing)


def doc(scenario, status="ok"):
    return {"schema": results.RUN_SCHEMA, "scenario": scenario, "impl": "torch-nn", "status": status,
            "step_log": [{"phase": "measure", "step": 0, "runtime_s": 0.1, "loss": 1.0}]}


@pytest.mark.parametrize("failing, call, error", [
    ("__torch-nn.json", "open", errno.ENOSPC),  # the record
    ("summary.csv", "open", errno.EFBIG),  # an export
    ("results.csv", "open", errno.EROFS),
    ("results.csv", "replace", errno.ENOSPC),  # the last move into place: the record is taken back
])
def test_a_record_reaches_disk_with_its_exports_or_not_at_all(tmp_path, monkeypatch, failing, call, error):
    (tmp_path / "runs").mkdir()
    first = doc("a")
    results.record(tmp_path, first, [first])
    before = snapshot(tmp_path)
    second = doc("b")
    fail_writes(monkeypatch, failing, error, call)
    with pytest.raises(results.RecordError, match=re.escape(os.strerror(error))):
        results.record(tmp_path, second, [first, second])
    monkeypatch.undo()
    assert not (tmp_path / "runs" / "b__torch-nn.json").exists()
    assert [s[0] for s in snapshot(tmp_path)] == [s[0] for s in before]  # no new file, no temp file
    assert [r["scenario"] for r in csv.DictReader(open(tmp_path / "summary.csv"))] == ["a"]
    assert [r["scenario"] for r in csv.DictReader(open(tmp_path / "results.csv"))] == ["a"]


# -- the archive ------------------------------------------------------------------------------
ARCHIVE_NAME = re.compile(r"\d{8}-\d{6}-\d+")


@pytest.mark.parametrize("run_id", ["../../x", "/tmp/rnnbench-escape", "..", None, 42, "a/b"])
def test_the_archive_name_is_never_read_from_a_file(tmp_path, run_id):
    out = tmp_path / "deep" / "out"
    for n in range(2):  # twice: the second archive gets a name of its own
        out.mkdir(parents=True, exist_ok=True)
        (out / "meta.json").write_text(json.dumps({"run_id": run_id, "state": "finished", "finished": "t"}))
        (out / "summary.csv").write_text(f"run {n}\n")
        rundir.archive_previous(out)
    archives = sorted((out / "archive").iterdir())
    assert len(archives) == 2 and all(ARCHIVE_NAME.fullmatch(a.name) for a in archives)
    assert sorted((a / "summary.csv").read_text() for a in archives) == ["run 0\n", "run 1\n"]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.parent == tmp_path / "deep") == ["out"]
    assert not Path("/tmp/rnnbench-escape").exists()


def test_a_run_killed_before_it_wrote_meta_json_is_archived_and_repaired(tmp_path):
    out = tmp_path / "out"
    (out / "runs").mkdir(parents=True)
    (out / "logs").mkdir()
    (out / "runs" / "gru__torch-nn.json").write_text(json.dumps(doc("gru")))
    (out / "runs" / f".lstm__torch-nn.json{results.TEMP_MARK}99").write_text('{"half')
    (out / f".summary.csv{results.TEMP_MARK}99").write_text("half")
    dest = rundir.archive_previous(out)
    assert ARCHIVE_NAME.fullmatch(dest.name) and sorted(p.name for p in out.iterdir()) == ["archive"]
    assert [r["scenario"] for r in csv.DictReader(open(dest / "summary.csv"))] == ["gru"]  # rebuilt from runs/
    assert not [p for p in dest.rglob("*") if results.TEMP_MARK in p.name]


def test_a_directory_of_other_files_is_refused_not_archived(tmp_path):
    (tmp_path / "thesis.tex").write_text("x")
    with pytest.raises(ResultsError, match="holds files that are not rnnbench results"):
        rundir.archive_previous(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex"]


def test_json_has_no_nan_or_infinity(tmp_path):
    results.write_json(tmp_path / "m.json", {"timeout_s": float("inf"), "x": [1.0, float("nan")]})
    doc = json.loads((tmp_path / "m.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert doc == {"timeout_s": None, "x": [1.0, None], "non_finite": {"timeout_s": "inf", "x[1]": "nan"}}


def test_a_file_system_without_locks_is_said_not_fatal(tmp_path, monkeypatch):
    def no_locks(fd, how):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(rundir.fcntl, "flock", no_locks)
    lock = rundir.Lock(tmp_path)
    assert lock.acquire(["x"]) == (f"cannot lock {tmp_path / rundir.LOCK_NAME} ({os.strerror(errno.ENOLCK)}): "
                                   "a second run into it would not be refused")
    lock.release()


def test_ctrl_c_while_the_command_loads():
    """A Ctrl-C while the entry point imports the CLI (the first ~0.3 s) is one line, 130."""
    code = ("import builtins, sys\n"
            "real = builtins.__import__\n"
            "def slow(name, *a, **k):\n"
            "    if name == 'cli' or name.endswith('rnnbench.cli'):\n"
            "        raise KeyboardInterrupt\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = slow\n"
            "from rnnbench.__main__ import main\n"
            "sys.exit(main(['list']))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 130 and p.stderr == "rnnbench: interrupted\n", p.stderr


def test_ctrl_c_once_the_command_has_returned_is_ignored():
    """A Ctrl-C that lands after the command returned (the matrix recorded, the interpreter
    shutting down) leaves the command's exit status, with no traceback: it once made a
    finished smoke run die by SIGINT (-2) in tests/test_torch.py's Ctrl-C test."""
    code = ("import os, signal, sys, time\n"
            "from rnnbench.__main__ import main\n"
            "status = main(['list'])\n"
            "os.kill(os.getpid(), signal.SIGINT)\n"
            "time.sleep(0.2)\n"
            "sys.exit(status)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    cli = ("import atexit, os, runpy, signal, sys, time\n"  # python -m rnnbench.cli, as the tests run it
           "atexit.register(lambda: (os.kill(os.getpid(), signal.SIGINT), time.sleep(0.2)))\n"
           "sys.argv = ['rnnbench', 'list']\n"
           "runpy.run_module('rnnbench.cli', run_name='__main__')\n")
    p = subprocess.run([sys.executable, "-c", cli], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
