"""The 2017 stack (rnnbench.legacy): its worker's modules are Python 3.6 and share only the
protocol and the stop rules; without a legacy interpreter, or with a broken one, its rows
are skipped with the reason and the rest of the matrix runs; a legacy worker that cannot
import fails with a one-line reason, one that hangs is killed by the timeout; the
then-and-now section of the report; and, where .venv-legacy exists (`make legacy`), one
implementation per 2017 framework trains at smoke size and passes verification."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rnnbench import cli, legacy
from rnnbench.frameworks import FRAMEWORKS
from rnnbench.impls import IMPLEMENTATIONS
from rnnbench.legacy import host
from rnnbench.report import write_report
from rnnbench.runner import Runner, Settings
from rnnbench.scenarios import PROFILES, SCENARIOS

from test_protocol import PYTHON36

FAKE = str(Path(__file__).with_name("fake_worker.py"))
PACKAGE = Path(legacy.__file__).parent
LEGACY_FRAMEWORKS = {name for name, fw in FRAMEWORKS.items() if fw.legacy}
VENV_PYTHON = host.ROOT / ".venv-legacy" / "bin" / "python"
HAS_VENV = VENV_PYTHON.is_file() and not host.probe(str(VENV_PYTHON))[1]


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setattr("rnnbench.gemm.in_subprocess", lambda threads, env: {"gflops": 100.0, "threads": threads})
    monkeypatch.setattr("rnnbench.launch.preload", lambda fw, cpu=False: ())


def interpreter(tmp_path, monkeypatch, body: str) -> str:
    """A stand-in legacy interpreter (a shell script), named by RNNBENCH_LEGACY_PYTHON."""
    path = tmp_path / "python3.6"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    monkeypatch.setenv("RNNBENCH_LEGACY_PYTHON", str(path))
    return str(path)


def run(tmp_path, impls, scenario="lstm-1x320-ce", timeout_s=60.0, missing=frozenset()):
    st = Settings(profile=PROFILES["smoke"], warmup=1, steps=3, threads=1, timeout_s=timeout_s, verify=False,
                  out=tmp_path / "out", worker=(FAKE, "ok"))
    runner = Runner(st)
    assert runner.run([SCENARIOS[scenario]], impls, ["test"], missing) == 0
    return {d["impl"]: d for d in runner.docs}


# -- the worker's side: Python 3.6 -------------------------------------------------------------
WORKER_SIDE = sorted(p for p in PACKAGE.glob("*.py") if p.name != "host.py")


@pytest.mark.parametrize("path", WORKER_SIDE, ids=lambda p: p.name)
def test_the_legacy_worker_side_is_python_3_6_and_shares_only_protocol_and_stopping(path):
    tree = ast.parse(path.read_text(), feature_version=(3, 6))
    ours = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            and (node.level or (node.module or "").startswith("rnnbench"))}
    assert ours <= {"rnnbench", "rnnbench.protocol", "rnnbench.legacy", "rnnbench.legacy.base", "base", "runtime"}, ours
    assert not any(isinstance(n, ast.ImportFrom) and n.module == "__future__" for n in ast.walk(tree))
    if PYTHON36:
        subprocess.run([PYTHON36, "-m", "py_compile", str(path)], check=True, timeout=60)


def test_every_legacy_implementation_is_registered_with_its_script():
    for name, framework, target, _ in legacy.IMPLEMENTATIONS:
        impl = IMPLEMENTATIONS[name]
        assert impl.framework == framework and FRAMEWORKS[framework].legacy
        assert (host.ROOT / impl.script).is_file() and impl.target == "rnnbench.legacy." + target
    # Resume compares this hash: the runner's (today's interpreter) is the worker's.
    from rnnbench.sources import source_hash

    assert source_hash("torch1-nn") == legacy.source_hash("torch1-nn") != legacy.source_hash("lasagne")


# -- no interpreter, a broken one, one without the packages -----------------------------------
def test_without_an_interpreter_the_legacy_frameworks_are_not_installed(monkeypatch):
    monkeypatch.setattr(host, "candidates", lambda: iter(()))
    assert host.python() is None
    assert not any(FRAMEWORKS[f].installed for f in LEGACY_FRAMEWORKS)
    assert "make legacy (no Python 3.6 for the 2017 stack" in FRAMEWORKS["torch1"].install_hint()


def test_a_broken_legacy_venv_skips_the_legacy_rows_and_the_rest_runs(tmp_path, monkeypatch):
    interpreter(tmp_path, monkeypatch, 'echo "Fatal Python error: init_fs_encoding" >&2; exit 1')
    assert "Fatal Python error: init_fs_encoding" in host.problem(("torch",))
    args = cli.build_parser().parse_args(["run", "--profile", "smoke", "-s", "lstm-1x320-ce"])
    _, impls, missing = cli.selection(args)
    assert LEGACY_FRAMEWORKS <= missing and "torch1-nn" in impls  # listed, like any framework not installed
    assert not missing - LEGACY_FRAMEWORKS
    docs = run(tmp_path, ["torch1-nn", "torch-nn"], missing=missing)
    assert docs["torch-nn"]["status"] == "ok"
    assert docs["torch1-nn"]["status"] == "skipped"
    assert "make legacy" in docs["torch1-nn"]["reason"] and "does not run" in docs["torch1-nn"]["reason"]
    assert "Then and now" not in write_report(tmp_path / "out", plots=False).read_text()  # nothing of 2017 ran


def test_an_interpreter_without_the_packages_names_what_it_lacks(tmp_path, monkeypatch):
    interpreter(tmp_path, monkeypatch, 'echo \'{"version": "3.6.15", "found": ["numpy", "torch"]}\'')
    assert host.problem(("torch",)) == ""
    assert host.problem(("theano", "lasagne")).endswith("lacks theano, lasagne")
    interpreter(tmp_path, monkeypatch, 'echo \'{"version": "3.11.2", "found": []}\'')
    host.probe.cache_clear()
    assert "is Python 3.11.2, not 3.6" in host.problem(("torch",))


def test_legacy_versions_are_the_legacy_interpreters_so_resume_can_keep_its_runs(tmp_path, monkeypatch):
    from rnnbench.impls import framework_versions

    interpreter(tmp_path, monkeypatch, 'echo \'{"version": "3.6.15", "found": ["theano", "lasagne", "numpy"], '
                '"dists": {"Theano": "0.9.0", "Lasagne": "0.1", "numpy": "1.13.3", "six": "1.11.0"}}\'')
    # what the legacy worker records (pkg_resources in .venv-legacy), not this venv's NumPy
    assert framework_versions("theano") == {"Theano": "0.9.0", "Lasagne": "0.1", "numpy": "1.13.3"}


@pytest.mark.skipif(not PYTHON36, reason="no Python 3.6 interpreter on this machine")
def test_a_legacy_worker_that_cannot_import_fails_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNBENCH_LEGACY_PYTHON", PYTHON36)  # pyenv's bare 3.6: no NumPy
    doc = run(tmp_path, ["torch1-nn"])["torch1-nn"]
    assert doc["status"] == "failed"
    assert doc["reason"] in ("ModuleNotFoundError: No module named 'numpy'",
                             "ModuleNotFoundError: No module named 'torch'"), doc["reason"]


def test_a_hanging_legacy_worker_is_killed_by_the_timeout(tmp_path, monkeypatch):
    interpreter(tmp_path, monkeypatch, "exec sleep 600")
    doc = run(tmp_path, ["tf1-cell"], timeout_s=1.5)["tf1-cell"]
    assert doc["status"] == "timeout" and "no result within 1.5 s" in doc["reason"]


# -- the runner's side and the report -----------------------------------------------------------
def test_legacy_jobs_carry_the_inputs_file_and_the_report_shows_then_and_now(tmp_path, monkeypatch):
    """A stand-in interpreter that runs the fake worker on the job: the legacy worker's
    command line and environment, and what the runner hands it."""
    seen = tmp_path / "seen.json"
    interpreter(tmp_path, monkeypatch,
                f'export PYTHONPATH={os.pathsep.join(sys.path)}\n'
                f'{sys.executable} -c "import json, os, sys; from rnnbench.protocol import Job; '
                f'job = Job.load(sys.argv[2]); json.dump(dict(argv=sys.argv[1:], inputs=job.inputs, '
                f"coretype=os.environ['OPENBLAS_CORETYPE']), open('{seen}', 'w'))\" \"$@\"\n"
                f'exec {sys.executable} {FAKE} ok "$2"')
    docs = run(tmp_path, ["torch1-nn", "torch-nn", "lasagne", "pytensor-scan"])
    assert {d["status"] for d in docs.values()} == {"ok"}
    got = json.loads(seen.read_text())
    assert got["argv"][0] == host.WORKER and got["argv"][1].endswith("job.json")
    assert got["inputs"].endswith("inputs.npz") and got["coretype"] == "Haswell"
    report = write_report(tmp_path / "out").read_text()
    assert "## Then and now" in report
    # The fake worker's steps all take the same time: a speed-up of 1.0 for each family pair.
    assert "| lstm-1x320-ce | PyTorch 1 \u2192 PyTorch |" in report and "| 1\u00d7 | 0.18 s |" in report
    assert "| lstm-1x320-ce | Theano \u2192 PyTensor |" in report and "| 1\u00d7 | 0.40 s |" in report
    assert (tmp_path / "out" / "plots" / "then_and_now.png").is_file()


# -- the real thing: the 2017 stack at smoke size ------------------------------------------------
ONE_PER_FRAMEWORK = ["torch1-nn", "tf1-blockcell", "keras2-tf1", "keras2-theano", "lasagne"]


@pytest.mark.skipif(not HAS_VENV, reason=".venv-legacy is not there (make legacy)")
def test_one_implementation_per_2017_framework_trains_and_verifies(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("RNNBENCH_LEGACY_PYTHON", raising=False)
    args = ["run", "--profile", "smoke", "-s", "lstm-1x320-ce", "--out", str(tmp_path / "out")]
    for impl in ONE_PER_FRAMEWORK:
        args += ["-i", impl]
    assert cli.main(args) == 0
    docs = [json.loads(p.read_text()) for p in (tmp_path / "out" / "runs").glob("*.json")]
    assert sorted(d["impl"] for d in docs) == sorted(ONE_PER_FRAMEWORK)
    for d in docs:
        # keras2-tf1's update is off in some runs (the README says what was measured): its
        # verification must run, its verdict may be either.
        verdicts = ("yes", "no") if d["impl"] == "keras2-tf1" else ("yes",)
        assert (d["status"], d["checks"]) == ("ok", "ok") and d["verified"] in verdicts, \
            (d["impl"], d["reason"], d.get("verify_message"))
        assert d["meta"]["runtime"]["openblas_coretype"] == "Haswell" and d["version"]


@pytest.mark.skipif(not HAS_VENV, reason=".venv-legacy is not there (make legacy)")
@pytest.mark.parametrize("impl, args, model", [
    # Lasagne 0.1's GRU keeps its one candidate bias outside the reset gate
    ("lasagne", ["-s", "gru-1x320-ce"], "GRU reset-after-bias-outside"),
    # Keras 2.0.5's Theano CTC smooths the emissions and sums the alignments over time
    ("keras2-theano", ["--network", "lstm,layers=1,ctc"], "CTC keras2-theano"),
])
def test_the_2017_formulations_verify_against_the_reference(impl, args, model, tmp_path, monkeypatch, capsys):
    """The math, not the speed: Theano's FAST_COMPILE mode (few graph optimizations, most
    ops in Python) verifies the same graph in seconds; the default mode's cold C compile of
    these scans took 2-4 min each here."""
    monkeypatch.delenv("RNNBENCH_LEGACY_PYTHON", raising=False)
    monkeypatch.setenv("THEANO_FLAGS", "mode=FAST_COMPILE")
    assert cli.main(["verify", "-i", impl, *args, "--out", str(tmp_path)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if f" {impl} " in x and " pass " in x)
    assert model in line, line


@pytest.mark.skipif(not HAS_VENV, reason=".venv-legacy is not there (make legacy)")
def test_keras2_tf1_race_script_orders_the_assignments(monkeypatch, capsys):
    """scripts/keras2_tf1_race.py: with every Adam assignment after every gradient, Keras
    2.0.5 on TensorFlow 1.2 passes verification (as shipped, gru-1x320-ce never does)."""
    sys.path.insert(0, str(host.ROOT / "scripts"))
    import keras2_tf1_race

    monkeypatch.delenv("RNNBENCH_LEGACY_PYTHON", raising=False)
    assert keras2_tf1_race.main(["--tries", "2", "--scenario", "gru-1x320-ce"]) == 0
    out = capsys.readouterr().out
    assert "plain: 0 of 2 tries pass verification" in out and "ordered: 2 of 2 tries pass verification" in out, out
