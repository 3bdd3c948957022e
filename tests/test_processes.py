"""``rnnbench run --processes K``: each run measured in K worker processes, the matrix's
processes interleaved, the spread between processes reported beside the spread within one."""

import json

import pytest
from test_resume import FAKE, IMPLS, NETS, by_run, matrix
from test_reliability import assert_consistent

from rnnbench import results
from rnnbench.assemble import combine
from rnnbench.runner import Runner, Settings
from rnnbench.scenarios import PROFILES


def process_doc(times, status="ok", reason="", ci=2.0, flops=1e9):
    """A run document of one process as run_document builds it: ``times`` its measured steps."""
    from rnnbench import stats

    steps = ([{"phase": "warmup", "step": 0, "runtime_s": 1.0, "loss": 3.0}]
             + [{"phase": "measure", "step": n, "runtime_s": t, "loss": 2.9 - 0.1 * n} for n, t in enumerate(times)])
    doc = {"scenario": "gru-1x320-ce", "impl": "torch-nn", "status": status, "reason": reason,
           "flops_per_step": flops, "wall_s": 2.0, "load_before": [0.5, 0.5, 0.5], "load_after": [0.6, 0.5, 0.5],
           "verified": "yes", "meta": {"source_sha256": "abc"}, "step_log": steps}
    if status == "ok":
        median = stats.summarize(times)["median_s"]
        doc.update(stats.summarize(times), ci_halfwidth_pct=ci, steps=len(times), gflops=flops / median / 1e9,
                   efficiency_pct=50.0 * (0.1 / median),
                   check_details={"finite": True, "decreasing": True, "overhead": True, "overhead_pct": 0.1},
                   checks="ok", stop_reason="fixed", peak_rss_mib=100.0)
    return doc


def test_processes_are_pooled_and_their_spread_is_reported_beside_the_spread_within_one():
    parts = [process_doc([0.10] * 5, ci=1.0), process_doc([0.12] * 5, ci=3.0), process_doc([0.11] * 5, ci=2.0)]
    doc = combine(parts, 3)
    assert doc["processes"] == 3 and doc["steps"] == 15 and doc["warmup"] == 3
    assert doc["median_s"] == pytest.approx(0.11)  # of the 15 pooled steps
    assert doc["process_spread_pct"] == pytest.approx(100 * 0.02 / 0.11)
    assert doc["process_ci_pct"] == 2.0  # the median of the processes' own CI half-widths
    assert [p["median_s"] for p in doc["process_stats"]] == pytest.approx([0.10, 0.12, 0.11])
    measured = [x for x in doc["step_log"] if x["phase"] == "measure"]
    assert [x["step"] for x in measured] == list(range(15))  # one numbering across processes...
    assert [x["process"] for x in measured] == [1] * 5 + [2] * 5 + [3] * 5  # ...each step keeping its process
    assert doc["gflops"] == pytest.approx(1e9 / 0.11 / 1e9)
    assert doc["efficiency_pct"] == pytest.approx(50.0 * 0.1 / 0.11)  # the same yardstick, the pooled median
    assert doc["wall_s"] == 6.0 and doc["load_after"] == [0.6, 0.5, 0.5]


def test_one_process_so_far_has_no_spread_between_processes():
    doc = combine([process_doc([0.10, 0.11, 0.12])], 3)
    assert doc["processes"] == 1 and doc["process_spread_pct"] is None and doc["process_ci_pct"] is None
    assert doc["median_s"] == pytest.approx(0.11)


def test_a_failed_process_fails_the_run_and_says_which():
    parts = [process_doc([0.10] * 5), process_doc([], status="timeout", reason="no result within 30 s")]
    doc = combine(parts, 3)
    assert doc["status"] == "timeout" and doc["reason"] == "process 2 of 3: no result within 30 s"
    assert [p["status"] for p in doc["process_stats"]] == ["ok", "timeout"]


def test_a_failing_check_in_any_process_fails_the_run():
    bad = process_doc([0.10] * 5)
    bad["check_details"] = {**bad["check_details"], "overhead": False, "overhead_pct": 4.0}
    doc = combine([process_doc([0.10] * 5), bad], 2)
    assert doc["checks"] == "failed: overhead" and doc["check_details"]["overhead_pct"] == 4.0


def test_a_check_no_process_applied_stays_not_applicable():
    """A forward run's loss has no reason to decrease: its processes skip that check, and
    pooling them must not turn "not applicable" into a failure."""
    parts = [process_doc([0.10] * 5), process_doc([0.11] * 5)]
    for p in parts:
        p["check_details"] = {**p["check_details"], "decreasing": None}
    doc = combine(parts, 2)
    assert doc["checks"] == "ok" and doc["check_details"]["decreasing"] is None


def test_the_matrix_runs_process_by_process_interleaved(tmp_path):
    out = tmp_path / "out"
    r, labels = matrix(out, processes=2)
    runs = [f"{s.name} {i}" for s in NETS for i in IMPLS]
    assert [label.split("] ", 1)[1] for label in labels] == (
        [f"{x} (process 1/2)" for x in runs] + [f"{x} (process 2/2)" for x in runs])
    meta, docs = assert_consistent(out)
    assert meta["processes"] == 2 and len(docs) == 4
    for d in docs:
        assert d["processes"] == 2 and d["steps"] == 6 and d["process_spread_pct"] == pytest.approx(0.0)
        assert [x["process"] for x in d["step_log"]] == [1] * 4 + [2] * 4
        assert (out / "logs" / f"{d['scenario']}__{d['impl']}.p1.log").exists()
        assert (out / "logs" / f"{d['scenario']}__{d['impl']}.p2.log").exists()
    rows = [x for x in results.load_runs(out)]
    assert all(x["processes"] == 2 for x in rows)
    summary = (out / "summary.csv").read_text().splitlines()
    assert "process_spread_pct" in summary[0]


def test_only_the_first_process_verifies(tmp_path):
    jobs = []
    st = Settings(profile=PROFILES["smoke"], warmup=1, steps=3, threads=1, verify=True, out=tmp_path / "out",
                  worker=(FAKE, "ok"), processes=3)
    r = Runner(st)
    real = r.job
    r.job = lambda *a, **kw: jobs.append(real(*a, **kw)) or jobs[-1]
    assert r.run(NETS[:1], IMPLS[:1], ["test"]) == 0
    assert [j.verify is not None for j in jobs if j.result != "/dev/null/result.json"][-3:] == [True, False, False]
    assert r.docs[0]["verify_message"] == "skipped: a fake worker has no weights"


def test_a_run_whose_processes_did_not_all_run_is_run_again_on_resume(tmp_path):
    out = tmp_path / "out"
    matrix(out, processes=2)
    # as if the matrix had stopped after the first round: one run holds a single process
    path = out / "runs" / "gru-1x320-ce__torch-nn.json"
    doc = json.loads(path.read_text())
    doc.update(processes=1, step_log=[x for x in doc["step_log"] if x["process"] == 1])
    results.record(out, doc, [doc if (d["scenario"], d["impl"]) == ("gru-1x320-ce", "torch-nn") else d
                              for d in results.load_runs(out)], None)
    again, labels = matrix(out, resume=True, processes=2)
    kept = [label for label in labels if label.endswith("(kept)")]
    assert len(kept) == 3 and not any("gru-1x320-ce torch-nn" in k for k in kept)
    now = by_run(assert_consistent(out)[1])
    assert now[("gru-1x320-ce", "torch-nn")]["processes"] == 2
    assert now[("gru-1x320-ce", "torch-nn")]["run_id"] == again.run_id


def test_resume_with_another_process_count_is_refused(tmp_path):
    from rnnbench.errors import ResultsError

    out = tmp_path / "out"
    matrix(out)
    with pytest.raises(ResultsError, match="processes 1 -> 2"):
        matrix(out, resume=True, processes=2)


def test_the_report_shows_the_spread_between_processes_beside_the_one_within(tmp_path):
    pytest.importorskip("pandas")
    from rnnbench.analysis import load
    from rnnbench.report import render

    out = tmp_path / "out"
    matrix(out, processes=2)
    md = render(load(out))
    header = next(line for line in md.splitlines() if "steps (stopped by)" in line)
    assert "processes: spread of medians" in header and "CI within one" in header
    row = next(line for line in md.splitlines() if "| torch-nn |" in line and "(fixed)" in line)
    assert "| 6 (fixed) | 0% |" in row  # six steps from two processes whose medians agree
