"""Bad input gets one line that says what to do, and a non-zero exit status."""

import json

import pytest

from rnnbench import cli as cli_module
from rnnbench.impls import IMPLEMENTATIONS
from rnnbench.scenarios import SCENARIOS


def one_line_error(p):
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnbench: error:"), p.stderr
    return lines[0]


@pytest.mark.parametrize("args, words", [
    (["run", "-s", "no-such-net"], "no scenario matches 'no-such-net'"),
    (["run", "-i", "mxnet-*"], "no implementation matches 'mxnet-*'"),
    (["verify", "-i", "nope"], "no implementation matches 'nope'"),
    (["run", "--steps", "ten"], "expected a whole number, got 'ten'"),
    (["run", "--steps", "0"], "expected a number >= 1"),
    (["run", "--warmup", "-1"], "--warmup"),
    (["run", "--threads", "2.5"], "--threads"),
    (["run", "--timeout", "soon"], "expected seconds"),
    (["run", "--profile", "huge"], "invalid choice: 'huge'"),
    (["run", "--device", "tpu"], "invalid choice: 'tpu'"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_is_one_line(cli, tmp_path, args, words):
    p = cli(*args, "--out", tmp_path) if args[0] == "run" else cli(*args)
    assert words in one_line_error(p)
    assert not (tmp_path / "summary.csv").exists()


def test_missing_framework_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cli_module, "framework_available", lambda fw: fw != "tensorflow")
    code = cli_module.main(["run", "-i", "tf-cell", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "framework 'tensorflow' is not installed" in err[0] and "rnnbench[tensorflow]" in err[0]


def test_list_json(cli):
    p = cli("list", "--json")
    assert p.returncode == 0
    doc = json.loads(p.stdout)
    assert doc["scenarios"] == list(SCENARIOS)
    names = [i["name"] for i in doc["implementations"]]
    assert names == list(IMPLEMENTATIONS)
    torch_nn = doc["implementations"][0]
    assert set(torch_nn) == {"name", "framework", "available"} and torch_nn["framework"] == "torch"


def test_every_command_has_help(cli):
    for command in ("list", "run", "verify", "report", "compare"):
        p = cli(command, "--help")
        assert p.returncode == 0 and "usage: rnnbench " + command in p.stdout


def test_report_on_a_missing_directory_is_one_line(cli, tmp_path):
    one_line_error(cli("report", tmp_path / "nothing-here"))


def test_final_table_shows_a_ci_in_its_median_unit():
    ok = {"scenario": "gru-1x320-ce", "impl": "torch-nn", "status": "ok", "median_s": 0.0915,
          "ci_low_s": 0.0895, "ci_high_s": 0.104, "gflops": 69.7, "efficiency": 0.3,
          "peak_rss_mb": 450.0, "checks": "ok", "verified": "yes"}
    slow = {**ok, "median_s": 1.485, "ci_low_s": 0.095, "ci_high_s": 1.615}
    skipped = {"scenario": "gru-1x320-ce", "impl": "tf-cudnn", "status": "skipped", "reason": "needs a GPU"}
    lines = cli_module.final_table([ok, slow, skipped]).splitlines()
    assert lines[2].split()[3:9] == ["91.50ms", "[89.50ms,", "104.00ms]", "69.70", "30%", "450"]
    assert lines[3].split()[3:6] == ["1.485", "[0.095,", "1.615]"]
    assert lines[4].split() == ["gru-1x320-ce", "tf-cudnn", "skipped", "needs", "a", "GPU"]
