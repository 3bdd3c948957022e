"""Every bad input gets one line on stderr (``rnnbench: error: ...``, naming the file and
the field where a file is at fault), exit status 2, no traceback, and nothing written:
the command line, damaged results directories, a broken environment. A closed pipe ends
quietly (exit 141, as a Unix tool), and a comparison with nothing in common says so.

The command line and the damaged directories run ``rnnbench.cli.main`` in this process
(an escaping exception fails the test just as a traceback would); the broken environments
and pipes run the command in a fresh process, as a user would.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

pytest.importorskip("pandas")
pytest.importorskip("matplotlib")

from fixtures.make_fixtures import edit_runs  # noqa: E402
from rnnbench import cli, report, runner  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
BASE, NEW = FIXTURES / "quick-base", FIXTURES / "quick-new"
SRC = Path(cli.__file__).resolve().parents[1]
DOC = "runs/gru-1x320-ce__torch-nn.json"  # the run document the damages below pick on


def one_line(code: int, err: str, expected: int = 2) -> str:
    assert code == expected, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnbench: error: "), err
    return lines[0]


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def rnnbench(capsys, monkeypatch, tmp_path):
    """``rnnbench ARGS`` in this process, from an empty working directory; a bad input
    that starts a run fails the test. Returns (exit status, stdout, stderr)."""
    def no_run(*args, **kwargs):
        raise AssertionError("a bad input started a run")

    monkeypatch.setattr(runner, "Runner", no_run)
    monkeypatch.chdir(tmp_path)

    def call(*args):
        code = cli.main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err
    return call


# --- the command line ----------------------------------------------------------------------

COMMAND_LINE = [
    (["run", "--warmup", "-1"], "argument --warmup: expected a whole number >= 0, got -1"),
    (["run", "--warmup", "two"], "argument --warmup: expected a whole number, got 'two'"),
    (["run", "--steps", "0"], "argument --steps: expected a whole number >= 1, got 0"),
    (["run", "--steps", "ten"], "expected a whole number, got 'ten'"),
    (["run", "--steps", "1.5"], "expected a whole number, got '1.5'"),
    (["run", "--steps"], "argument --steps: expected one argument"),
    (["run", "--time-steps", "0"], "argument --time-steps: expected a whole number >= 1"),
    (["run", "--timeout", "inf"], "argument --timeout: expected a finite number of seconds > 0, got 'inf'"),
    (["run", "--timeout", "nan"], "expected a finite number of seconds > 0, got 'nan'"),
    (["run", "--timeout", "0"], "expected a finite number of seconds > 0, got '0'"),
    (["run", "--timeout=-5"], "expected a finite number of seconds > 0, got '-5'"),
    (["run", "--timeout=-inf"], "expected a finite number of seconds > 0, got '-inf'"),
    (["run", "--timeout", "1e400"], "expected a finite number of seconds > 0, got '1e400'"),
    (["run", "--timeout", "soon"], "argument --timeout: expected a number of seconds, got 'soon'"),
    (["verify", "--timeout", "inf"], "expected a finite number of seconds > 0"),
    (["run", "--precision", "0"], "argument --precision: expected a fraction in (0, 1), such as 0.02 for +-2%, got '0'"),
    (["run", "--precision", "1"], "expected a fraction in (0, 1), such as 0.02 for +-2%, got '1'"),
    (["run", "--precision", "2"], "expected a fraction in (0, 1), such as 0.02 for +-2%, got '2'"),
    (["run", "--precision=-0.02"], "expected a fraction in (0, 1), such as 0.02 for +-2%, got '-0.02'"),
    (["run", "--precision", "nan"], "expected a fraction in (0, 1), such as 0.02 for +-2%, got 'nan'"),
    (["run", "--precision", "2%"], "argument --precision: expected a fraction such as 0.02, got '2%'"),
    (["run", "--precision", "0.02", "--min-steps", "2"], "argument --min-steps: expected a whole number >= 3"),
    (["run", "--precision", "0.02", "--max-steps", "0"], "argument --max-steps: expected a whole number >= 1"),
    (["run", "--precision", "0.02", "--min-steps", "10", "--max-steps", "5"],
     "--min-steps 10 is more than --max-steps 5: lower the minimum or raise the maximum"),
    (["run", "--profile", "full", "--max-steps", "3"], "--min-steps 5 (the full profile's) is more than --max-steps 3"),
    (["run", "--profile", "full", "--max-time", "0"], "argument --max-time: expected a finite number of seconds > 0, got '0'"),
    (["run", "--profile", "full", "--max-time=-60"], "expected a finite number of seconds > 0, got '-60'"),
    (["run", "--profile", "full", "--max-time", "inf"], "expected a finite number of seconds > 0, got 'inf'"),
    (["run", "--steps", "10", "--precision", "0.02"],
     "--steps 10 measures exactly that many steps; --precision is for precision-targeted stopping: choose one"),
    (["run", "--profile", "full", "--steps", "10", "--max-time", "60"], "--max-time is for precision-targeted stopping: choose one"),
    (["run", "--profile", "seed", "--max-steps", "40"],
     "--max-steps bounds precision-targeted stopping, which the seed profile does not use"),
    (["run", "--profile", "full", "--timeout", "60"],
     "--timeout 60 s would stop a worker inside its measuring budget (--max-time 600 s, the full profile's)"),
    (["run", "--threads", "0"], "argument --threads: expected a whole number >= 1"),
    (["run", "--threads", "2.5"], "argument --threads: expected a whole number, got '2.5'"),
    (["run", "--threads", "999"], "--threads 999 is more than the"),
    (["verify", "--threads", "999"], "add --oversubscribe to measure it on purpose"),
    (["run", "--out", ""], "argument --out: expected a directory, got an empty path"),
    (["run", "--out", "  "], "argument --out: expected a directory, got an empty path"),
    (["run", "--out", "{file}"], "a-file exists and is not a directory"),
    (["run", "--out", "{file}/results"], "a-file is not a directory"),
    (["verify", "--out", ""], "argument --out: expected a directory, got an empty path"),
    (["run", "-s", "lstm-4x320bi-ctc", "--time-steps", "2"],
     "lstm-4x320bi-ctc at 2 time steps: its shortest sequence has 1 step(s), too few for 2 CTC labels"),
    (["run", "--profile", "smoke", "-s", "*-ctc", "--time-steps", "5"], "use --time-steps 6 or more"),
    (["run", "--time-steps", "1"], "lstm-4x320bi-ctc at 1 time steps"),  # the default selection has CTC
    (["run", "-s", "no-such-net"], "no scenario matches 'no-such-net'"),
    (["plan", "-s", "no-such-net"], "no scenario matches 'no-such-net'"),  # plan takes run's options
    (["plan", "--steps", "0"], "argument --steps: expected a whole number >= 1, got 0"),
    (["run", "-s", ""], "no scenario matches ''"),
    (["run", "-i", ""], "no implementation matches ''"),
    (["run", "-i", "mxnet-*"], "no implementation matches 'mxnet-*'"),
    (["verify", "-i", "nope"], "no implementation matches 'nope'"),
    (["run", "-f", "mxnet"], "no framework matches 'mxnet'"),
    (["run", "-f", "jax", "-i", "torch-*"], "no implementation is both in -i and in -f"),
    (["run", "--profile", "huge"], "invalid choice: 'huge'"),
    (["run", "--device", "tpu"], "invalid choice: 'tpu'"),
    (["run", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "the following arguments are required: command"),
    (["compare", BASE, NEW, "--factor", "nan"], "argument --factor: expected a finite ratio >= 1"),
    (["compare", BASE, NEW, "--factor", "0.9"], "expected a finite ratio >= 1 (1.05: slower by more than 5%), got '0.9'"),
    (["compare", BASE, NEW, "--factor", "inf"], "expected a finite ratio >= 1"),
    (["compare", BASE, NEW, "--factor", "fast"], "argument --factor: expected a ratio, got 'fast'"),
    (["compare", BASE], "the following arguments are required: new"),
    (["compare", "", NEW], "argument base: expected a directory, got an empty path"),
    (["compare", BASE, "{tmp}/nothing-here"], "nothing-here: no such results directory"),
    (["report", ""], "argument dir: expected a directory, got an empty path"),
    (["report", "{tmp}/nothing-here"], "nothing-here: no such results directory"),
    (["report", "{file}"], "a-file: not a directory"),
    (["report", "{tmp}"], "meta.json: missing"),
    (["report", BASE, NEW], "unrecognized arguments"),
]


@pytest.mark.parametrize("args, words", COMMAND_LINE, ids=lambda v: " ".join(map(str, v)) if isinstance(v, list) else None)
def test_command_line(rnnbench, tmp_path, args, words):
    (tmp_path / "a-file").write_text("not a directory\n")
    args = [str(a).replace("{file}", str(tmp_path / "a-file")).replace("{tmp}", str(tmp_path)) for a in args]
    before = tree(tmp_path)
    code, out, err = rnnbench(*args)
    assert words in one_line(code, err)
    assert tree(tmp_path) == before  # nothing written, not even the default results/


def test_threads_above_the_cores_when_asked_for():
    cli.check_threads(Namespace(threads=999, oversubscribe=True))
    cli.check_threads(Namespace(threads=cli.usable_cores(), oversubscribe=False))
    with pytest.raises(cli.UsageError, match=f"the {cli.usable_cores()} CPU core"):
        cli.check_threads(Namespace(threads=cli.usable_cores() + 1, oversubscribe=False))


# --- damaged results directories ------------------------------------------------------------

def edit_json(rel: str, **changes):
    """A damage: set (or with ... delete) dotted fields of one JSON file."""
    def damage(d: Path):
        path = d / rel
        doc = json.loads(path.read_text())
        for key, value in changes.items():
            *parents, last = key.split("__")
            target = doc
            for p in parents:
                target = target[int(p) if isinstance(target, list) else p]
            if value is ...:
                del target[last]
            else:
                target[last] = value
        path.write_text(json.dumps(doc))
    return damage


def write(rel: str, content):
    def damage(d: Path):
        (d / rel).write_bytes(content if isinstance(content, bytes) else content.encode())
    return damage


def edit_text(rel: str, edit):
    def damage(d: Path):
        (d / rel).write_text(edit((d / rel).read_text()))
    return damage


def remove(rel: str):
    def damage(d: Path):
        path = d / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return damage


def step(k: int, **changes):
    """A damage to one step of the run document (its exports are checked after it)."""
    return edit_json(DOC, **{f"step_log__{k}__{key}": value for key, value in changes.items()})


def edit_csv(rel: str, edit):
    """A damage to a CSV export: ``edit(rows)`` changes the list of rows (header first)."""
    def damage(d: Path):
        with open(d / rel, newline="") as fh:
            rows = list(csv.reader(fh))
        edit(rows)
        with open(d / rel, "w", newline="") as fh:
            csv.writer(fh).writerows(rows)
    return damage


def csv_cell(rel: str, line: int, column: str, value: str):
    def edit(rows):
        rows[line - 1][rows[0].index(column)] = value
    return edit_csv(rel, edit)


def lines(rel: str, keep):
    return edit_text(rel, lambda t: "".join(keep(t.splitlines(keepends=True))))


def rename_doc(d: Path):
    (d / DOC).rename(d / "runs" / "gru-1x320-ce__torch-cell-copy.json")


INF = math.inf
DAMAGES = {
    # meta.json
    "meta missing": (remove("meta.json"), "meta.json: missing"),
    "meta not JSON": (write("meta.json", '{"run_id": '), "meta.json: not valid JSON"),
    "meta not text": (write("meta.json", b"\x89PNG\r\n\x1a\n\xff\xfe"), "meta.json: not valid JSON"),
    "meta a list": (write("meta.json", "[1, 2]"), "meta.json: expected a JSON object, got list"),
    "meta unknown version": (edit_json("meta.json", schema="rnnbench.meta/2"),
                             "meta.json: field 'schema': unknown version 'rnnbench.meta/2'; this rnnbench reads rnnbench.meta/1"),
    "meta no version": (edit_json("meta.json", schema=...), "meta.json: field 'schema': missing"),
    "meta threads text": (edit_json("meta.json", threads="2"), "meta.json: field 'threads': expected a whole number >= 0, got '2'"),
    "meta threads negative": (edit_json("meta.json", threads=-2), "meta.json: field 'threads'"),
    "meta cores text": (edit_json("meta.json", machine__cores="two"), "meta.json: field 'machine.cores'"),
    "meta machine text": (edit_json("meta.json", machine="x86"), "meta.json: field 'machine': expected a JSON object"),
    "meta GEMM negative": (edit_json("meta.json", gemm__gflops=-118.4), "meta.json: field 'gemm.gflops'"),
    "meta GEMM inf": (edit_json("meta.json", gemm__gflops=INF), "meta.json: field 'gemm.gflops': expected a finite number > 0, got inf"),
    "meta timeout inf": (edit_json("meta.json", timeout_s=INF), "meta.json: field 'timeout_s'"),
    "meta timeout text": (edit_json("meta.json", timeout_s="900"), "meta.json: field 'timeout_s'"),
    "meta started number": (edit_json("meta.json", started=20250602), "meta.json: field 'started': expected text"),
    "meta argv text": (edit_json("meta.json", argv="rnnbench run"), "meta.json: field 'argv': expected a list of text"),
    "meta flush text": (edit_json("meta.json", flush_denormal="yes"), "meta.json: field 'flush_denormal': expected true or false"),
    "meta dirty text": (edit_json("meta.json", git__dirty="no"), "meta.json: field 'git.dirty'"),
    # runs/
    "runs missing": (remove("runs"), "runs: missing"),
    "run cut short": (edit_text(DOC, lambda t: t[: len(t) // 2]), "gru-1x320-ce__torch-nn.json: not valid JSON"),
    "run empty": (write(DOC, ""), "gru-1x320-ce__torch-nn.json: not valid JSON"),
    "run a list": (write(DOC, "[]"), "gru-1x320-ce__torch-nn.json: expected a JSON object, got list"),
    "run unknown version": (edit_json(DOC, schema="rnnbench.run/2"),  # before stop_reason and the other columns
                            "gru-1x320-ce__torch-nn.json: field 'schema': unknown version 'rnnbench.run/2'; "
                            "this rnnbench reads rnnbench.run/3"),
    "run no version": (edit_json(DOC, schema=...), "gru-1x320-ce__torch-nn.json: field 'schema': missing"),
    "stop reason unknown": (edit_json(DOC, stop_reason="bored"),
                            "field 'stop_reason': expected one of 'fixed', 'precision', 'max-steps', 'max-time', got 'bored'"),
    "ci width negative": (edit_json(DOC, ci_halfwidth_pct=-1.0), "field 'ci_halfwidth_pct': expected a number >= 0"),
    "median inf": (edit_json(DOC, median_s=INF), "field 'median_s': inf cannot be a time in seconds"),
    "median -inf": (edit_json(DOC, median_s=-INF), "field 'median_s': -inf cannot be a time in seconds"),
    "median nan": (edit_json(DOC, median_s=math.nan), "field 'median_s': nan cannot be a time in seconds"),
    "median zero": (edit_json(DOC, median_s=0), "field 'median_s': 0 cannot be a time in seconds"),
    "median 1e308": (edit_json(DOC, median_s=1e308), "field 'median_s': 1e+308 cannot be a time in seconds"),
    "median negative": (edit_json(DOC, median_s=-0.119174), "field 'median_s': -0.119174 cannot be a time"),
    "median text": (edit_json(DOC, median_s="0.119174"), "field 'median_s': expected a number, got '0.119174'"),
    "median true": (edit_json(DOC, median_s=True), "field 'median_s': expected a number, got True"),
    "ok without median": (edit_json(DOC, median_s=None), "field 'median_s': missing, though the status is ok"),
    "median not of its steps": (edit_json(DOC, median_s=0.1), "field 'median_s': 0.1 is not the median of its 8 measured steps"),
    "CI bound negative": (edit_json(DOC, ci_low_s=-0.1), "field 'ci_low_s'"),
    "first step inf": (edit_json(DOC, first_step_s=INF), "field 'first_step_s'"),
    "stdev nan": (edit_json(DOC, stdev_s=math.nan), "field 'stdev_s': expected a finite number, got nan"),
    "GFLOP/s negative": (edit_json(DOC, gflops=-53.5), "field 'gflops': expected a number >= 0"),
    "steps fractional": (edit_json(DOC, steps=8.5), "field 'steps': expected a whole number, got 8.5"),
    "parameters text": (edit_json(DOC, parameters="435k"), "field 'parameters': expected a number"),
    "stable text": (edit_json(DOC, stable="yes"), "field 'stable': expected true or false, got 'yes'"),
    "status unknown": (edit_json(DOC, status="exploded"), "field 'status': expected one of 'ok', 'failed'"),
    "verified unknown": (edit_json(DOC, verified="maybe"), "field 'verified'"),
    "scenario missing": (edit_json(DOC, scenario=...), "gru-1x320-ce__torch-nn.json: field 'scenario': missing"),
    "run renamed": (rename_doc, "gru-1x320-ce__torch-cell-copy.json: holds gru-1x320-ce / torch-nn, not what its name says"),
    "step time negative": (step(3, runtime_s=-0.5), "step_log[3] field 'runtime_s': -0.5 cannot be a time"),
    "step time inf": (step(3, runtime_s=INF), "step_log[3] field 'runtime_s': inf cannot be a time"),
    "step time zero": (step(0, runtime_s=0.0), "step_log[0] field 'runtime_s': 0.0 cannot be a time"),
    "step time missing": (step(4, runtime_s=...), "step_log[4] field 'runtime_s': missing"),
    "step phase unknown": (step(2, phase="cooldown"), "step_log[2] field 'phase': expected one of 'warmup', 'measure'"),
    "step number text": (step(2, step="3"), "step_log[2] field 'step': expected a number"),
    "step log text": (edit_json(DOC, step_log="none"), "field 'step_log': expected a list, got 'none'"),
    # summary.csv (an export: it must agree with runs/)
    "summary missing": (remove("summary.csv"), "summary.csv: missing, though runs/ holds 60 run document(s)"),
    "summary empty": (write("summary.csv", ""), "summary.csv: empty (no header)"),
    "summary cut inside a number": (edit_text("summary.csv", lambda t: t.replace(",0.119174,", ",0.1,", 1)),
                                    "summary.csv: line 2 field 'median_s': '0.1' disagrees with 0.119174 in "
                                    "runs/gru-1x320-ce__torch-nn.json"),
    "summary cut inside a row": (edit_text("summary.csv", lambda t: t[:-60]), "summary.csv: line 61: "),
    "summary last row lost": (lines("summary.csv", lambda ls: ls[:-1]), "summary.csv: no row for lstm-1x320-ce / pytensor-scan"),
    "summary row twice": (lines("summary.csv", lambda ls: ls + ls[1:2]), "summary.csv: line 62: gru-1x320-ce / torch-nn appears twice"),
    "summary row unknown": (csv_cell("summary.csv", 2, "impl", "mxnet"), "summary.csv: line 2: gru-1x320-ce / mxnet has no run document"),
    "summary not a number": (csv_cell("summary.csv", 2, "median_s", "zero.1"), "line 2 field 'median_s': expected a number, got 'zero.1'"),
    "summary negative": (csv_cell("summary.csv", 3, "median_s", "-0.166307"), "line 3 field 'median_s': '-0.166307' disagrees"),
    "summary inf": (csv_cell("summary.csv", 3, "p90_s", "inf"), "line 3 field 'p90_s': 'inf' disagrees"),
    "summary status edited": (csv_cell("summary.csv", 2, "status", "failed"), "line 2 field 'status': 'failed' disagrees with 'ok'"),
    "summary stable maybe": (csv_cell("summary.csv", 2, "stable", "maybe"), "line 2 field 'stable': expected true or false"),
    "summary steps fractional": (csv_cell("summary.csv", 2, "steps", "8.0"), "line 2 field 'steps': expected a whole number"),
    "summary column missing": (edit_csv("summary.csv", lambda rows: [r.pop(8) for r in rows]),
                               "summary.csv: missing column(s) median_s"),
    "summary not text": (write("summary.csv", b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 50), "summary.csv: not a valid CSV"),
    "summary NUL": (edit_text("summary.csv", lambda t: t.replace(",0.119174,", ",0.11\x009174,", 1)),
                    "summary.csv: line 2 field 'median_s': expected a number, got '0.11\\x009174'"),
    "summary of another tool": (write("summary.csv", "name,value\nx,1\n"),
                                "summary.csv: missing 39 of its 39 columns (run_id, profile, scenario, ...)"),
    "summary a directory": (lambda d: ((d / "summary.csv").unlink(), (d / "summary.csv").mkdir()), "summary.csv: missing"),
    # results.csv (an export: it must agree with runs/)
    "steps missing": (remove("results.csv"), "results.csv: missing, though runs/ holds 60"),
    "steps cut short": (lines("results.csv", lambda ls: ls[:-5]), "results.csv: 5 steps of lstm-1x320-ce / pytensor-scan, runs/ holds 10"),
    "steps cut inside a row": (edit_text("results.csv", lambda t: t[:-30]),
                               "fields, expected 10 (the file was cut short or damaged)"),
    "steps header only": (lines("results.csv", lambda ls: ls[:1]), "results.csv: 0 steps of "),
    "step time negative in CSV": (csv_cell("results.csv", 2, "runtime_s", "-0.5"), "results.csv: line 2 field 'runtime_s': '-0.5' disagrees"),
    "step time inf in CSV": (csv_cell("results.csv", 2, "runtime_s", "inf"), "results.csv: line 2 field 'runtime_s': 'inf' disagrees"),
    "step time empty in CSV": (csv_cell("results.csv", 2, "runtime_s", ""), "results.csv: line 2 field 'runtime_s': '' disagrees"),
    "step cut inside a number": (csv_cell("results.csv", 3, "runtime_s", "0.1"), "results.csv: line 3 field 'runtime_s'"),
    "steps not text": (write("results.csv", b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 50), "results.csv: not a valid CSV"),
    # the directory itself
    "a file, not a directory": (lambda d: (shutil.rmtree(d), d.write_text("x")), "base: not a directory"),
    "empty directory": (lambda d: (shutil.rmtree(d), d.mkdir()), "base/meta.json: missing"),
}


@pytest.fixture
def damaged(tmp_path, request) -> tuple[Path, str]:
    d = Path(shutil.copytree(BASE, tmp_path / "base"))
    damage, words = DAMAGES[request.param]
    damage(d)
    return d, words


@pytest.mark.parametrize("damaged", list(DAMAGES), indirect=True)
def test_damaged_directory_report(rnnbench, damaged):
    d, words = damaged
    before = tree(d) if d.is_dir() else None
    code, out, err = rnnbench("report", d)
    assert words in one_line(code, err)
    assert out == "" and (tree(d) if d.is_dir() else None) == before  # no report, no plots


@pytest.mark.parametrize("damaged", list(DAMAGES), indirect=True)
def test_damaged_directory_compare(rnnbench, damaged):
    d, words = damaged
    for args in ((d, NEW), (NEW, d, "--fail-on-regression")):
        code, out, err = rnnbench("compare", *args)
        assert words in one_line(code, err) and out == ""


@pytest.mark.parametrize("blocked", ["report.md", "plots"])
def test_report_into_an_unwritable_place(rnnbench, tmp_path, blocked):
    """A directory where report.md goes, a file where plots/ goes (the read-only case as
    root, who may write anywhere else)."""
    d = Path(shutil.copytree(BASE, tmp_path / "base"))
    (d / blocked).mkdir() if blocked == "report.md" else (d / blocked).write_text("a file")
    line = one_line(*_status(rnnbench("report", d)))
    assert f"{blocked}: cannot write the report (" in line and "copy the results directory somewhere writable" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_report_on_a_read_only_directory(rnnbench, tmp_path):
    d = Path(shutil.copytree(BASE, tmp_path / "base"))
    d.chmod(0o555)
    try:
        assert "cannot write the report (Permission denied)" in one_line(*_status(rnnbench("report", d)))
    finally:
        d.chmod(0o755)
    assert not (d / "report.md").exists()


def _status(result):
    code, _, err = result
    return code, err


def test_ctrl_c_is_one_line(rnnbench, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(report, "write_report", interrupted)
    code, _, err = rnnbench("report", BASE)
    assert code == 130 and err == "rnnbench: interrupted\n"


# --- compare: nothing in common -------------------------------------------------------------

def everything(doc):
    return True


def not_ok(doc):
    return doc["status"] != "ok"


@pytest.mark.parametrize("keep_base, keep_new, statement", [
    (everything, lambda doc: doc["scenario"] == "lstm-1x320-ce-short", "no (scenario, implementation) is in both runs"),
    (not_ok, not_ok, "no cell ran ok in both runs"),
])
def test_compare_with_nothing_in_common(rnnbench, tmp_path, keep_base, keep_new, statement):
    base = Path(shutil.copytree(BASE, tmp_path / "base"))
    new = Path(shutil.copytree(NEW, tmp_path / "new"))
    edit_runs(base, keep_base)
    edit_runs(new, keep_new)
    code, out, err = rnnbench("compare", base, new)
    assert code == 0 and err == "" and f"**NOTHING COMPARED**: 0 regressions, 0 improvements; {statement}." in out
    code, out, err = rnnbench("compare", base, new, "--fail-on-regression")
    assert code == 1 and "**NOTHING COMPARED**" in out  # a gate that compared nothing fails


# --- a broken environment, and closed pipes (fresh processes) --------------------------------

def fresh(*args, pythonpath: Path | None = None, stdout=subprocess.PIPE, cwd=None, unbuffered=True):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in (pythonpath, SRC) if p)}
    env.pop("PYTHONUNBUFFERED", None)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    return subprocess.run([sys.executable, "-m", "rnnbench.cli", *map(str, args)], env=env, cwd=cwd,
                          stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=300)


@pytest.mark.parametrize("package, args", [
    ("numpy", ["report", BASE]),
    ("numpy", ["compare", BASE, NEW]),
    ("numpy", ["run", "-s", "gru-1x320-ce", "-i", "torch-nn", "--profile", "smoke", "--out", "{tmp}/out"]),
    ("numpy", ["verify", "-i", "torch-nn"]),
    ("pandas", ["report", BASE]),
    ("pandas", ["compare", BASE, NEW]),
    ("matplotlib", ["report", BASE]),
])
def test_broken_package(tmp_path, package, args):
    """A directory on PYTHONPATH whose package raises at import (a stray checkout, a half
    upgrade): one line that names the package, where it came from, and what to do."""
    broken = tmp_path / "site" / package
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text('raise RuntimeError("broken on purpose")\n')
    args = [str(a).replace("{tmp}", str(tmp_path)) for a in args]
    p = fresh(*args, pythonpath=tmp_path / "site", cwd=tmp_path)
    line = one_line(p.returncode, p.stderr)
    assert f"{package} cannot be imported (broken on purpose) from {broken / '__init__.py'}" in line
    assert "remove that copy from PYTHONPATH, or reinstall it" in line
    assert tree(tmp_path) == {"site", f"site/{package}", f"site/{package}/__init__.py"}


def test_missing_package(rnnbench, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # what an uninstalled package looks like
    code, _, err = rnnbench("compare", BASE, NEW)
    assert "pandas is not installed: pip install 'rnnbench[report]'" in one_line(code, err)


def test_ctrl_c_during_an_import_is_a_ctrl_c(monkeypatch):
    """NumPy turns a Ctrl-C that lands in its C extension's import into an ImportError
    ("Importing the numpy C-extensions failed"): that is a Ctrl-C (exit 130), not a broken
    NumPy to reinstall. A real ImportError still is one."""
    import signal
    import time

    def interrupted_import(name):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            raise ImportError("Importing the numpy C-extensions failed.") from None

    monkeypatch.setattr(cli.importlib, "import_module", interrupted_import)
    with pytest.raises(KeyboardInterrupt):
        cli.require(("numpy",))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back

    def broken_import(name):
        raise ImportError("Importing the numpy C-extensions failed.")

    monkeypatch.setattr(cli.importlib, "import_module", broken_import)
    with pytest.raises(cli.UsageError, match="numpy cannot be imported"):
        cli.require(("numpy",))


@pytest.mark.parametrize("unbuffered", [True, False], ids=["unbuffered", "buffered"])
@pytest.mark.parametrize("args", [["list"], ["list", "--json"], ["compare", BASE, NEW], ["run", "--help"]],
                         ids=lambda a: " ".join(map(str, a[:2])))
def test_closed_pipe_ends_quietly(args, unbuffered):
    """`rnnbench list | head -1`: the reader went away; no BrokenPipeError, exit 141."""
    read, write = os.pipe()
    os.close(read)
    try:
        p = fresh(*args, stdout=write, unbuffered=unbuffered)
    finally:
        os.close(write)
    assert p.stderr == ""
    # argparse itself drops a help text it cannot write when stdout is unbuffered: exit 0.
    assert p.returncode == (0 if args[-1] == "--help" and unbuffered else 141)
