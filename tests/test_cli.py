"""The command line: listing, help, the terminal output of a run. Every bad input, and
its one-line answer, is in test_bad_input.py."""

import json
from pathlib import Path

from rnnbench import cli as cli_module
from rnnbench.impls import IMPLEMENTATIONS
from rnnbench.scenarios import SCENARIOS, SEED_SCENARIOS


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
    assert doc["runtimes"]["keras-tensorflow"]["inter-op threads"] == doc["runtimes"]["tensorflow"]["inter-op threads"]
    assert doc["profile"] == "quick" and doc["sizes"]["gru-1x320-ce"]["time_steps"] == 100
    seed = json.loads(cli("list", "--json", "--profile", "seed").stdout)["sizes"]
    assert {seed[s]["time_steps"] for s in SEED_SCENARIOS} == {1000}
    torch_nn = doc["implementations"][0]
    assert set(torch_nn) == {"name", "framework", "script", "available"} and torch_nn["framework"] == "torch"
    root = Path(__file__).resolve().parents[1]
    assert all((root / i["script"]).is_file() for i in doc["implementations"])  # every script is linked


def test_framework_selection(monkeypatch):
    """-f picks a framework's implementations; with -i, those in both."""
    from argparse import Namespace

    monkeypatch.setattr(cli_module, "framework_available", lambda fw: True)
    args = Namespace(scenario=["gru-1x320-ce"], impl=None, framework=["jax"], profile="quick", time_steps=None)
    _, impls, _ = cli_module.selection(args)
    assert impls == [i for i, v in IMPLEMENTATIONS.items() if v.framework == "jax"] and impls
    args.framework, args.impl = ["keras-*", "torch"], ["*-jax", "torch-nn"]
    assert cli_module.selection(args)[1] == ["torch-nn", "keras-jax"]


def test_every_command_has_help(cli):
    for command in ("list", "run", "verify", "report", "compare"):
        p = cli(command, "--help")
        assert p.returncode == 0 and "usage: rnnbench " + command in p.stdout


def test_terminal_output_carries_units():
    """Every time with its unit, a CI in its median's unit (was: `0.426/step` beside
    `75.75ms/step`)."""
    ok = {"scenario": "gru-1x320-ce", "impl": "torch-nn", "status": "ok", "median_s": 0.0915,
          "ci_low_s": 0.0895, "ci_high_s": 0.104, "first_step_s": 2.5, "gflops": 69.7, "efficiency_pct": 30.0,
          "peak_rss_mib": 450.0, "checks": "ok", "verified": "yes", "stable": True}
    slow = {**ok, "median_s": 1.485, "ci_low_s": 0.095, "ci_high_s": 1.616, "peak_rss_mib": None}
    skipped = {"scenario": "gru-1x320-ce", "impl": "tf-cudnn", "status": "skipped", "reason": "needs a GPU"}
    lines = cli_module.final_table([ok, slow, skipped]).splitlines()
    assert lines[2].split()[3:9] == ["91.5", "ms", "89.5\u2013104", "ms", "69.7", "30.0%"]
    assert lines[3].split()[3:8] == ["1.49", "s", "0.0950\u20131.62", "s", "69.7"]
    assert lines[3].split()[9] == "\u2013"  # no memory figure: shown as missing, not a crash
    assert lines[4].split() == ["gru-1x320-ce", "tf-cudnn", "skipped", "needs", "a", "GPU"]
    assert cli_module.result_line(ok) == ("  ok       median 91.5 ms/step, 95% CI 89.5\u2013104 ms  first 2.50 s  verified")
    assert cli_module.result_line({**slow, "stable": False}).startswith("  ok       median 1.49 s/step, 95% CI 0.0950\u20131.62 s")


def test_time_unit_rule():
    from rnnbench import fmt

    cases = [(1234.5, "1,234 s"), (1.485, "1.49 s"), (0.9996, "1.00 s"), (0.0923, "92.3 ms"),
             (0.119174, "119 ms"), (0.0012, "1.20 ms"), (0.00042, "420 \u00b5s"), (0, "0 \u00b5s"), (None, "\u2013")]
    assert [fmt.seconds(v) for v, _ in cases] == [text for _, text in cases]
    assert fmt.seconds(0.095, like=1.485) == "0.0950 s" and fmt.interval(0.116, 0.12, 0.119) == "116\u2013120 ms"
    assert fmt.span([8, 8]) == "8" and fmt.span([5, 37, 12]) == "5\u201337" and fmt.span([]) == fmt.MISSING
    assert fmt.ratio(1.1056, 3) == "1.106\u00d7" and fmt.percent(45.2) == "45.2%" and fmt.count(8564538) == "8,564,538"


def test_every_scenario_is_valid_in_every_profile():
    """validate() refuses only what cannot train: the catalogue itself always can, and
    the smallest --time-steps it suggests for CTC is accepted."""
    from rnnbench.scenarios import PROFILES, apply_profile, validate

    for profile in PROFILES.values():
        for s in SCENARIOS.values():
            validate(apply_profile(s, profile))
        validate(apply_profile(SCENARIOS["lstm-4x320bi-ctc"], profile, 6))
