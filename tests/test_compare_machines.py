"""Comparing machines: two runs on different machines, normalised by their GEMM rates,
more than two directories, an --every-node directory, --only-changed and --json."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
pytest.importorskip("pandas")

from fixtures.make_fixtures import edit_runs  # noqa: E402
from rnnbench import results  # noqa: E402
from rnnbench.compare import (  # noqa: E402
    FASTER_HERE, IMPROVEMENT, NEWLY_FAILING, REGRESSION, SLOWER_HERE, compare, compare_all, directories,
)

FIXTURES = Path(__file__).parent / "fixtures"


def on_machine(path: Path, **machine) -> Path:
    meta = json.loads((path / "meta.json").read_text())
    meta["machine"].update(machine)
    results.write_json(path / "meta.json", meta)
    return path


@pytest.fixture
def base(tmp_path) -> Path:
    return Path(shutil.copytree(FIXTURES / "quick-base", tmp_path / "base"))


@pytest.fixture
def other(tmp_path) -> Path:
    """quick-new, run on another machine."""
    return on_machine(Path(shutil.copytree(FIXTURES / "quick-new", tmp_path / "other")), hostname="big",
                      cpu="AMD EPYC 9654", cores=96)


def test_on_another_machine_a_change_is_the_machines_not_a_regression(base, other):
    c = compare(base, other)
    assert c.machines_differ
    assert c.row("gru-1x320-ce", "torch-nn").verdict == SLOWER_HERE
    assert c.row("lstm-1x320-ce", "jax-scan").verdict == FASTER_HERE
    assert not [r for r in c.rows if r.verdict in (REGRESSION, IMPROVEMENT)]
    assert [r.verdict for r in c.regressions] == [NEWLY_FAILING]  # a failure is one on any machine
    md = c.to_markdown()
    assert "**REGRESSION**" in md and "1 slower on this machine, 1 newly failing, 1 faster on this machine" in md
    assert "AMD EPYC 9654" in md and "cpu: base 'Intel(R) Xeon(R) CPU @ 2.20GHz', new 'AMD EPYC 9654'" in md
    assert "slower on this machine (+11%)" in md
    assert not compare(base, base).machines_differ


def test_normalising_by_gemm_divides_out_the_machines_speed(base, tmp_path):
    """The same times on a machine whose GEMM rate is twice as high: normalised, every cell
    is twice as slow as that machine's matrix speed says it should be."""
    fast = on_machine(Path(shutil.copytree(base, tmp_path / "fast")), hostname="fast")

    def double_gemm(doc):
        if doc.get("efficiency_pct"):
            doc["efficiency_pct"] /= 2
    edit_runs(fast, double_gemm)
    raw, norm = compare(base, fast), compare(base, fast, normalise="gemm")
    assert {r.ratio for r in raw.compared} == {1.0}
    assert norm.compared and all(r.ratio == pytest.approx(2.0) for r in norm.compared)
    assert {r.verdict for r in norm.compared} == {SLOWER_HERE}
    assert "normalised by the machines' GEMM rates" in norm.to_markdown()


def test_many_directories_and_every_node_directories(base, other, tmp_path):
    run = tmp_path / "cluster"
    for node in ("a", "b"):
        on_machine(Path(shutil.copytree(base, run / node)), node=node)
    (run / "nodes.json").write_text(json.dumps({"nodes": ["a", "b"]}))
    assert directories([run, base]) == [run / "a", run / "b", base]
    cs = compare_all(directories([run, other]), factor=1.05)
    assert [c.new.path for c in cs] == [run / "b", other] and all(c.machines_differ for c in cs)


def test_cli_json_only_changed_and_a_single_every_node_directory(cli, base, other, tmp_path):
    p = cli("compare", base, other, base, "--json")
    out = json.loads(p.stdout)
    assert p.returncode == 0 and len(out) == 2 and out[0]["machines_differ"] and not out[1]["machines_differ"]
    assert {r["verdict"] for r in out[0]["rows"]} >= {SLOWER_HERE, FASTER_HERE}
    full, short = (cli("compare", base, other, *flag).stdout for flag in ([], ["--only-changed"]))
    assert "within factor" in full and "within factor" not in short and SLOWER_HERE in short
    run = tmp_path / "cluster"
    for node in ("a", "b"):
        on_machine(Path(shutil.copytree(base, run / node)), node=node)
    (run / "nodes.json").write_text(json.dumps({"nodes": ["a", "b"]}))
    p = cli("compare", run)
    assert p.returncode == 0 and "**MACHINES COMPARED**" in p.stdout, p.stderr
    p = cli("compare", base)
    assert p.returncode == 2 and "the following arguments are required: new" in p.stderr


def test_the_report_of_an_every_node_directory_has_the_machines_section(base, tmp_path):
    from rnnbench.report import write_report

    run = tmp_path / "cluster"
    on_machine(Path(shutil.copytree(base, run / "a")), node="a", cpu_flags=["avx2"], memory_gib=8.0)
    on_machine(Path(shutil.copytree(base, run / "b")), node="b")

    def twice_as_slow(doc):
        doc.update({k: v * 2 for k, v in doc.items() if k.endswith("_s") and isinstance(v, float)})
        for step in doc.get("step_log") or []:
            step["runtime_s"] *= 2
    edit_runs(run / "b", twice_as_slow)
    (run / "nodes.json").write_text(json.dumps({"nodes": ["a", "b"]}))
    assert write_report(run, plots=False) == run / "report.md"
    md = (run / "report.md").read_text()
    assert (run / "a" / "report.md").is_file() and (run / "b" / "report.html").is_file()
    fastest = {}
    for d in ("a", "b"):
        docs = [json.loads(p.read_text()) for p in (run / d / "runs").glob("*.json")]
        ok = [x for x in docs if x["status"] == "ok" and x["scenario"] == "gru-1x320-ce"]
        fastest[d] = min(ok, key=lambda x: x["median_s"])
    row = next(line for line in md.splitlines() if line.startswith("| gru-1x320-ce |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1].startswith(fastest["a"]["impl"]) and cells[1].endswith("(1.00\u00d7)")
    assert cells[2].startswith(fastest["b"]["impl"]) and cells[2].endswith("(2.00\u00d7)")
    assert "| a | Intel(R) Xeon(R) CPU @ 2.20GHz | 2 | avx2 | 8 GiB | none | 118 |" in md
    assert "<h2>Machines</h2>" in (run / "report.html").read_text()
