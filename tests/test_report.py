"""The report, the charts and the comparison, from the stored fixtures in tests/fixtures/.

The fixtures (see tests/fixtures/make_fixtures.py) are synthetic quick-profile runs with a
failed, a timed-out and skipped cells, an unverified implementation, a verification
failure, unstable rows and a row whose checks failed.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pandas")
pytest.importorskip("matplotlib")

from fixtures.make_fixtures import edit_runs  # noqa: E402
from rnnbench.analysis import load  # noqa: E402
from rnnbench.compare import (  # noqa: E402
    IMPROVEMENT, NEWLY_FAILING, NOT_SIGNIFICANT, REGRESSION, WITHIN, _u_distribution, average_ranks, compare,
    mann_whitney, min_p, spearman,
)
from rnnbench.plots import DPI, WIDTH_IN, bar_chart_height  # noqa: E402
from rnnbench.report import write_report  # noqa: E402
from rnnbench.schema import STEP_COLUMNS, SUMMARY_COLUMNS  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def base(tmp_path) -> Path:
    return Path(shutil.copytree(FIXTURES / "quick-base", tmp_path / "base"))


@pytest.fixture
def new(tmp_path) -> Path:
    return Path(shutil.copytree(FIXTURES / "quick-new", tmp_path / "new"))


def read_summary(path: Path) -> list[dict]:
    with open(path / "summary.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def table_rows(md: str, first_cell: str) -> list[list[str]]:
    """Cells of the Markdown table rows whose first cell is ``first_cell``."""
    out = []
    for line in md.splitlines():
        if line.startswith("| "):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if cells[0] == first_cell:
                out.append(cells)
    return out


def run_doc(path: Path, scenario: str, impl: str) -> dict:
    return json.loads((path / "runs" / f"{scenario}__{impl}.json").read_text())


# --- analysis.load ------------------------------------------------------------------------

def test_load_fixture(base):
    r = load(base)
    assert r.run_id == "fixture-quick-base" and r.profile == "quick"
    assert r.scenarios == ["gru-1x320-ce", "lstm-4x320bi-ce", "lstm-4x320bi-ctc", "lstm-1x320-ce"]
    assert len(r.summary) == 60 and set(r.summary["status"]) == {"ok", "failed", "timeout", "skipped"}
    assert r.summary["median_s"].dtype == float
    assert len(r.samples("lstm-1x320-ce", "torch-nn")) == 8
    assert len(r.samples("lstm-1x320-ce", "torch-nn", "warmup")) == 2
    assert r.shape("gru-1x320-ce") == {"batch": 25, "time_steps": 100, "features": 123, "hidden": 320}
    # The median in the summary is the median of the stored per-step samples.
    row = r.summary[(r.summary["scenario"] == "gru-1x320-ce") & (r.summary["impl"] == "tf-xla")].iloc[0]
    assert row["median_s"] == pytest.approx(np.median(r.samples("gru-1x320-ce", "tf-xla")), rel=1e-5)
    fastest = r.ok[r.ok["scenario"] == "gru-1x320-ce"]["median_s"].min()
    assert row["ratio"] == pytest.approx(row["median_s"] / fastest)
    best = r.fastest_by_framework()
    assert len(best[best["scenario"] == "lstm-1x320-ce"]) == 7  # one per framework
    # Every number is the run document's, at full precision; the export holds the same.
    doc = run_doc(base, "gru-1x320-ce", "tf-xla")
    assert row["median_s"] == doc["median_s"] and row["gflops"] == doc["gflops"]
    csv_row = next(c for c in read_summary(base) if c["scenario"] == "gru-1x320-ce" and c["impl"] == "tf-xla")
    assert float(csv_row["gflops"]) == doc["gflops"] and len(csv_row["gflops"]) > 8  # not %.6g
    # Typed columns: whole numbers are integers, booleans booleans, switches on/off.
    assert str(r.summary["steps"].dtype) == "Int64" and str(r.steps["step"].dtype) == "Int64"
    assert set(r.summary["stable"].dropna()) == {True, False} and set(r.summary["flush_denormal"]) == {"on"}
    assert list(r.summary.columns) == SUMMARY_COLUMNS + ["ratio"] and list(r.steps.columns) == STEP_COLUMNS


# --- the report ---------------------------------------------------------------------------

def test_exports_written_by_the_schema_read_back(base):
    """schema.cell (full precision, true/false, on/off) writes exports the loader accepts
    and that read back as the records, value for value."""
    from rnnbench.schema import COLUMNS, STEPS, SUMMARY, cell, parse

    docs = [json.loads(p.read_text()) for p in sorted((base / "runs").glob("*.json"))]
    steps = [{**doc, **st} for doc in docs for st in doc["step_log"]]
    for name, columns, rows in (("summary.csv", SUMMARY, docs), ("results.csv", STEPS, steps)):
        with open(base / name, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow([c.name for c in columns])
            w.writerows([cell(c, r.get(c.name)) for c in columns] for r in rows)
    r = load(base)
    assert parse(COLUMNS["stable"], cell(COLUMNS["stable"], True)) is True
    assert (base / "summary.csv").read_text().count(",true,") + (base / "summary.csv").read_text().count(",false,") == 53
    for doc in docs:
        if doc["status"] == "ok":
            row = r.rows(doc["scenario"]).set_index("impl").loc[doc["impl"]]
            assert row["median_s"] == doc["median_s"] and row["steps"] == doc["steps"]
            text = {c.name: parse(c, cell(c, doc[c.name])) for c in SUMMARY if c.kind == "float" and c.name in doc}
            assert all(text[k] == doc[k] for k in text)  # full precision: exact


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> Path:
    """quick-base with its report and charts written (once for the module)."""
    d = Path(shutil.copytree(FIXTURES / "quick-base", tmp_path_factory.mktemp("reported") / "base"))
    assert write_report(d) == d / "report.md"
    return d


def test_report_tables(reported):
    base = reported
    path = base / "report.md"
    md = path.read_text()
    rows = {r["scenario"] + "/" + r["impl"]: r for r in read_summary(base)}

    # First table: each framework's fastest ok implementation, with the implementation named.
    header = table_rows(md, "Scenario")[0]
    assert header == ["Scenario", "Network", "Loss", "Masking", "torch", "tensorflow",
                      "keras-tensorflow", "keras-jax", "keras-torch", "jax", "pytensor"]
    (ctc,) = table_rows(md, "[lstm-4x320bi-ctc](#lstm-4x320bi-ctc)")
    assert ctc[1:4] == ["4x320 bidir LSTM", "CTC", "Yes"]
    assert ctc[4] == "1.45 s (torch-nn)"
    assert float(rows["lstm-4x320bi-ctc/torch-nn"]["median_s"]) == pytest.approx(1.45, abs=0.005)
    assert ctc[5] == "1.84 s (tf-blockfused)"  # faster than tf-xla, tf-blockcell, tf-cell
    assert ctc[7] == "3.48 s (keras-jax) \u26a0"  # its checks failed: flagged
    assert ctc[8] == "5.56 s (keras-torch) \u26a0"  # verification failed: flagged
    (gru,) = table_rows(md, "[gru-1x320-ce](#gru-1x320-ce)")
    assert gru[1:4] == ["1x320 unidir GRU", "Cross-Entropy", "No"]
    assert gru[4] == "119 ms (torch-nn)" and gru[5] == "143 ms (tf-xla)"  # one unit rule

    # Second table: the 1x320 LSTM across every implementation, statuses for the gaps.
    (second,) = table_rows(md, "1x320 unidir LSTM")
    impl_header = table_rows(md, "Network")[0]
    assert len(impl_header) == 3 + 15 and impl_header[3] == "torch-nn"
    cell = dict(zip(impl_header, second))
    assert cell["tf-cudnn"] == "skipped"
    assert cell["torch-nn"] == "92.3 ms"
    assert cell["pytensor-scan"] == "399 ms"

    # Detail rows: CI, ratio to the fastest, efficiency, first step, memory, verification.
    r = rows["lstm-4x320bi-ctc/tf-xla"]
    (xla,) = [c for c in table_rows(md, "4") if c[1] == "tf-xla"]
    assert xla[3] == "2.26 s" and xla[4] == "1.76\u20133.78 s"
    assert xla[6] == "8 (fixed)"  # steps measured, and why it stopped there
    assert xla[7] == f"{float(r['median_s']) / float(rows['lstm-4x320bi-ctc/torch-nn']['median_s']):.2f}\u00d7"
    assert xla[9] == f"{float(r['efficiency_pct']):.1f}%"
    assert xla[10] == "37.1 s" and xla[13] == "yes"
    (nn,) = [c for c in table_rows(md, "1") if c[1] == "torch-nn" and c[3] == "119 ms"]
    assert nn[4] == "116\u2013120 ms" and nn[10] == "192 ms"  # a CI in its median's unit
    assert "unstable" in xla[-1]
    (keras_torch,) = [c for c in table_rows(md, "12") if c[1] == "keras-torch" and "FAILED" in c[-1]]
    assert keras_torch[13] == "**NO**"
    assert any(c[1] == "pytensor-scan" and c[13] == "not checked" for c in table_rows(md, "13"))
    assert any(c[1] == "keras-jax" and "checks failed: decreasing" in c[-1] for c in table_rows(md, "10"))
    # Rows that did not run are listed in the detail tables with their status and reason.
    not_run = {(c[1], c[3], c[-1]) for c in table_rows(md, "\u2013")}
    assert ("torch-compile", "**timeout**", "timeout after 900 s (2 of 10 steps done)") in not_run
    assert ("tf-blockfused", "**skipped**",
            "BlockLSTMV2 is LSTM only: TensorFlow has no fused GRU op") in not_run

    # Failures, skips and flags, with reasons.
    problems = md.split("## Failures, skips and flags")[1].split("## Environment")[0]
    for text in ("BlockLSTMV2 is LSTM only", "CudnnRNNV3 needs a CUDA GPU", "ctc_loss_backward",
                 "timeout after 900 s", "checks failed: decreasing", "verification FAILED",
                 "unstable (stdev"):
        assert text in problems
    assert "Not verified against the float64 reference (run `rnnbench verify`): pytensor-scan." in problems

    # Environment block.
    env = md.split("## Environment")[1]
    for text in ("Intel(R) Xeon(R) CPU @ 2.20GHz, 2 cores", "| **threads** | 2 |",
                 "| **flush denormals** | on |", "118 GFLOP/s (float32 2048\u00b2 matrix product, 2 threads, numpy 2.4.6", "git 97d47db",
                 "2 warm-up + 8 measured steps", "(B, T, F) = (25, 100, 123), hidden 320",
                 "| torch | torch 2.13.0+cpu |", "| pytensor | pytensor 3.0.7, numba 0.65.1 |",
                 "`rnnbench run --profile quick`", "41.1 min"):
        assert text in env, text

    # Charts are embedded with relative paths that exist.
    links = [line.split("](")[1].rstrip(")") for line in md.splitlines() if line.startswith("![")]
    assert "plots/overview.png" in links and "plots/lstm-1x320-ce-steps.png" in links
    assert len(links) == 1 + 2 * 4
    for link in links:
        assert (base / link).is_file()


def test_report_failed_framework_and_extra_scenario(new):
    md = write_report(new, plots=False).read_text()
    (row,) = table_rows(md, "[lstm-1x320-ce](#lstm-1x320-ce)")
    header = table_rows(md, "Scenario")[0]
    assert "pytensor" not in header
    assert dict(zip(header, row))["keras-torch"] == "failed"
    assert table_rows(md, "[lstm-1x320-ce-short](#lstm-1x320-ce-short)")
    assert "worker killed by signal 9" in md
    assert "![" not in md  # plots=False: no charts


def test_report_interrupted_and_nothing_ok(base):
    meta = json.loads((base / "meta.json").read_text())
    meta["finished"] = None
    (base / "meta.json").write_text(json.dumps(meta))

    def fail_gru(doc):
        if doc["scenario"] == "gru-1x320-ce" and doc["status"] == "ok":
            doc.update(status="interrupted", reason="interrupted by the user (Ctrl-C)", median_s=None)
    edit_runs(base, fail_gru)
    md = write_report(base).read_text()
    assert "**This run did not finish**" in md and "**did not finish**" in md
    (gru,) = table_rows(md, "[gru-1x320-ce](#gru-1x320-ce)")
    assert gru[4] == "interrupted" and gru[5] == "interrupted / skipped"
    assert "interrupted by the user (Ctrl-C)" in md
    assert not (base / "plots" / "gru-1x320-ce.png").exists()  # nothing to draw
    assert "plots/gru-1x320-ce.png" not in md
    assert (base / "plots" / "lstm-1x320-ce.png").is_file()


def test_report_gpu_columns(base):
    def on_gpu(doc):
        doc.update(device="cuda", device_name="NVIDIA H100 80GB HBM3")
        if doc["status"] == "ok":
            doc["peak_gpu_mib"] = 1234.5
    edit_runs(base, on_gpu)
    md = write_report(base, plots=False).read_text()
    assert "| **device** | requested auto; used cuda (NVIDIA H100 80GB HBM3) |" in md
    header = table_rows(md, "#")[0]
    assert "peak GPU MB" in header
    (row,) = [c for c in table_rows(md, "1") if c[1] == "torch-nn" and c[3] == "119 ms"]
    assert row[header.index("peak GPU MB")] == "1,234"


# --- the charts ---------------------------------------------------------------------------

def test_plots(reported):
    import matplotlib.image as mpimg

    plots = reported / "plots"
    names = sorted(p.name for p in plots.iterdir())
    assert names == sorted(["overview.png"] + [f"{s}{x}.png" for s in
                            ("gru-1x320-ce", "lstm-4x320bi-ce", "lstm-4x320bi-ctc", "lstm-1x320-ce")
                            for x in ("", "-steps")])
    # Bar charts: fixed width, height from the number of bars (failed/skipped not drawn,
    # listed in one footnote line).
    assert png_size(plots / "lstm-1x320-ce.png") == (round(WIDTH_IN * DPI), round(bar_chart_height(14, 1) * DPI))
    assert png_size(plots / "gru-1x320-ce.png") == (round(WIDTH_IN * DPI), round(bar_chart_height(13, 1) * DPI))
    w, h = png_size(plots / "overview.png")
    assert w == round(WIDTH_IN * DPI) and h > png_size(plots / "gru-1x320-ce.png")[1]
    assert png_size(plots / "lstm-1x320-ce-steps.png")[0] == round(WIDTH_IN * DPI)
    for p in plots.iterdir():
        assert p.stat().st_size > 10_000
    # Not blank: the implementations' colours are drawn (torch-nn red, pytensor-scan green bars).
    from rnnbench.impls import colour
    rgb = lambda hex_: tuple(int(hex_[k:k + 2], 16) for k in (1, 3, 5))
    img = (mpimg.imread(plots / "lstm-1x320-ce.png")[..., :3] * 255).round().astype(int)
    colours = {tuple(c) for c in img.reshape(-1, 3)[::7]}
    assert rgb(colour("torch-nn")) in colours and rgb(colour("pytensor-scan")) in colours


# --- the comparison -----------------------------------------------------------------------

def test_compare(base, new):
    c = compare(base, new, factor=1.05)
    assert c.row("gru-1x320-ce", "torch-nn").verdict == REGRESSION
    assert c.row("gru-1x320-ce", "torch-nn").ratio == (  # the records' medians, not the CSV's
        run_doc(new, "gru-1x320-ce", "torch-nn")["median_s"] / run_doc(base, "gru-1x320-ce", "torch-nn")["median_s"])
    assert c.row("lstm-1x320-ce", "jax-scan").verdict == IMPROVEMENT
    assert c.row("lstm-1x320-ce", "keras-torch").verdict == NEWLY_FAILING
    noisy = c.row("lstm-4x320bi-ctc", "tf-xla")  # 1.4x slower, but its steps are all over
    assert noisy.ratio > 1.3 and noisy.p_value > 0.05 and noisy.verdict == NOT_SIGNIFICANT
    assert c.row("lstm-4x320bi-ce", "torch-nn").verdict == WITHIN
    assert c.has_regression
    assert {(r.scenario, r.impl) for r in c.regressions} == {
        ("gru-1x320-ce", "torch-nn"), ("lstm-1x320-ce", "keras-torch")}

    # Geometric mean over the cells ok in both runs, computed here from the run documents.
    def medians(d):
        docs = [json.loads(p.read_text()) for p in (d / "runs").glob("*.json")]
        return {(x["scenario"], x["impl"]): x["median_s"] for x in docs if x["status"] == "ok"}
    b, n = medians(base), medians(new)
    common = sorted(set(b) & set(n))
    logs = [math.log(n[k] / b[k]) for k in common]
    assert len(c.compared) == len(common) == 48
    assert c.geomean == pytest.approx(math.exp(sum(logs) / len(logs)), rel=1e-12)

    assert "scenarios only in new: lstm-1x320-ce-short" in c.mismatches
    assert "implementations only in base: pytensor-scan" in c.mismatches
    md = c.to_markdown()
    assert "**REGRESSION**" in md and "1 regression, 1 newly failing, 1 improvement" in md
    assert f"geometric mean new/base {c.geomean:.3f}\u00d7 over 48 cells" in md
    (row,) = [r for r in table_rows(md, "gru-1x320-ce") if r[1] == "torch-nn"]
    assert row[2:5] == ["119 ms", "132 ms", "1.106\u00d7"] and row[6] == "<0.001"
    assert row[7].startswith("**regression** (+11%)")
    assert "Mann\u2013Whitney" in md and "### Not compared" in md
    assert "worker killed by signal 9" in md
    short = c.to_markdown(all_rows=False)
    assert len(table_rows(short, "gru-1x320-ce")) < len(table_rows(md, "gru-1x320-ce"))


def test_compare_same_run_and_factor(base):
    c = compare(base, base)
    assert not c.has_regression and c.geomean == pytest.approx(1.0)
    assert {r.verdict for r in c.compared} == {WITHIN} and not c.mismatches
    assert "**no regression**" in c.to_markdown()
    new = FIXTURES / "quick-new"
    loose = compare(base, new, factor=1.2)
    assert loose.row("gru-1x320-ce", "torch-nn").verdict == WITHIN  # +11% < 20%
    assert loose.row("lstm-1x320-ce", "jax-scan").verdict == WITHIN  # -16% > -1/1.2
    assert loose.has_regression  # keras-torch still newly fails
    with pytest.raises(ValueError):
        compare(base, new, factor=0.9)


def test_compare_mismatches(base, new):
    meta = json.loads((new / "meta.json").read_text())
    meta.update(profile="seed", threads=1)
    (new / "meta.json").write_text(json.dumps(meta))

    def longer(doc):
        doc["profile"] = "seed"
        if doc["scenario"] == "lstm-1x320-ce":
            doc["time_steps"] = 1000
    edit_runs(new, longer)
    c = compare(base, new)
    assert "profiles differ: base quick, new seed; only scenarios whose shapes match are compared" \
        in c.mismatches
    assert any(m.startswith("shapes differ for lstm-1x320-ce: base (batch 25, time_steps 100")
               and "time_steps 1000" in m for m in c.mismatches)
    assert not [r for r in c.rows if r.scenario == "lstm-1x320-ce"]  # not compared
    assert c.row("gru-1x320-ce", "torch-nn").verdict == REGRESSION  # same shapes: compared
    assert not c.has_regression or all(r.scenario != "lstm-1x320-ce" for r in c.regressions)
    assert "threads: base 2, new 1" in c.differences
    md = c.to_markdown()
    assert "shapes differ for lstm-1x320-ce" in md and "### Environment differences" in md


def test_compare_without_samples_uses_confidence_intervals(base, new):
    for d in (base, new):
        edit_runs(d, lambda doc: doc.update(step_log=[]))
    c = compare(base, new)
    r = c.row("gru-1x320-ce", "torch-nn")
    assert r.method == "ci-overlap" and r.verdict == REGRESSION and "confidence intervals" in r.note
    assert c.row("lstm-4x320bi-ctc", "tf-xla").verdict == NOT_SIGNIFICANT


def test_compare_too_few_steps_warns(base, new):
    def three_steps(doc):
        doc["step_log"] = [st for st in doc["step_log"] if st["phase"] == "warmup" or st["step"] < 3]
        if doc["status"] == "ok":
            doc["median_s"] = float(np.median([st["runtime_s"] for st in doc["step_log"] if st["phase"] == "measure"]))
    for d in (base, new):
        edit_runs(d, three_steps)
    c = compare(base, new)
    assert c.row("gru-1x320-ce", "torch-nn").p_value == pytest.approx(0.1)
    assert c.row("gru-1x320-ce", "torch-nn").verdict == NOT_SIGNIFICANT
    assert c.warnings == ["3 and 3 measured steps per cell are too few for the test to ever reach "
                          "p < 0.05: no change can be flagged; measure more steps"]
    assert "> Warning: 3 and 3 measured steps" in c.to_markdown()


# --- statistics ---------------------------------------------------------------------------

def test_mann_whitney_exact_matches_enumeration():
    n, m = 4, 3
    counts = np.zeros(n * m + 1)
    for xs in itertools.combinations(range(n + m), n):
        counts[sum(sum(1 for y in range(n + m) if y not in xs and y < x) for x in xs)] += 1
    assert np.allclose(_u_distribution(n, m), counts / counts.sum())
    assert mann_whitney([4, 5, 6], [1, 2, 3]) == (9.0, pytest.approx(0.1))
    assert min_p(3, 3) == pytest.approx(0.1) and min_p(8, 8) < 0.001
    rng = np.random.default_rng(0)
    x, y = rng.normal(0, 1, 20), rng.normal(0.5, 1, 20)
    _, exact = mann_whitney(x, y)
    _, tied = mann_whitney(np.round(x, 1), np.round(y, 1))  # ties: normal approximation
    assert 0.001 < exact < 0.05 and 0.001 < tied < 0.05 and abs(exact - tied) < 0.01
    assert mann_whitney([1.0, 1.0], [1.0, 1.0])[1] == 1.0


# --- the command line (wired by rnnbench.cli) ---------------------------------------------

def test_cli_compare_and_errors(base, new, tmp_path):
    import subprocess
    import sys

    def rnnbench(*args):
        return subprocess.run([sys.executable, "-m", "rnnbench.cli", *map(str, args)],
                              capture_output=True, text=True, timeout=120)

    p = rnnbench("compare", base, new)
    assert p.returncode == 0 and "**REGRESSION**" in p.stdout
    p = rnnbench("compare", base, new, "--fail-on-regression")
    assert p.returncode == 1
    p = rnnbench("compare", base, base, "--fail-on-regression")
    assert p.returncode == 0 and "**no regression**" in p.stdout
    text = (base / "summary.csv").read_text()
    (base / "summary.csv").write_text(text.replace(",0.119174,", ",0.1,", 1))  # cut inside a number
    p = rnnbench("report", base)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and not (base / "report.md").exists()
    assert "summary.csv: line 2 field 'median_s': '0.1' disagrees with 0.119174" in p.stderr


def test_colours_one_hue_family_per_framework():
    """Every implementation has its own shade; implementations of one family share a hue."""
    import colorsys

    from rnnbench.frameworks import FRAMEWORKS
    from rnnbench.impls import IMPLEMENTATIONS, colour

    shades = {i: colour(i) for i in IMPLEMENTATIONS}
    assert len(set(shades.values())) == len(shades)
    hue = lambda c: colorsys.rgb_to_hls(*(int(c[k:k + 2], 16) / 255 for k in (1, 3, 5)))[0]
    by_family = {}
    for i, c in shades.items():
        by_family.setdefault(FRAMEWORKS[IMPLEMENTATIONS[i].framework].family, []).append(hue(c))
    for family, hues in by_family.items():  # hue is an angle: red sits at both ends
        assert all(min(abs(a - b), 1 - abs(a - b)) < 0.1 for a in hues for b in hues), family


def test_unstable_flag_gives_the_spread_in_percent():
    from rnnbench.analysis import flags

    row = {"status": "ok", "checks": "ok", "stable": False, "stdev_s": 0.162, "mean_s": 1.0, "verified": "yes"}
    assert flags(row) == ["unstable (stdev 16.2% of the mean)"]


def test_spearman_and_average_ranks():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)  # 1 - 6 * 2 / (3 * 8)
    assert list(average_ranks([5.0, 1.0, 5.0, 2.0])) == [3.5, 1.0, 3.5, 2.0]
    assert spearman([1, 2], [2, 1]) is None and spearman([1, 1, 1], [1, 2, 3]) is None


def test_rank_agreement_across_sizes(base, new):
    """A quick run against one at T = 1000: the scenario's shapes differ, so no cell is
    compared, but its ranking is, with the pairs that swap."""
    def longer(doc):
        if doc["scenario"] != "lstm-1x320-ce":
            return
        doc["time_steps"] = 1000
        factor = {"torch-nn": 30.0, "flax-nnx": 0.5}.get(doc["impl"], 10.0)
        for key in ("median_s", "ci_low_s", "ci_high_s", "p10_s", "p90_s", "mean_s"):
            if doc.get(key) is not None:
                doc[key] *= factor
        for step in doc.get("step_log") or []:
            step["runtime_s"] *= factor
    edit_runs(new, longer)
    c = compare(base, new)
    assert not [r for r in c.rows if r.scenario == "lstm-1x320-ce"]
    ranking = {r.scenario: r for r in c.rankings}["lstm-1x320-ce"]
    b, n = load(base), load(new)

    def medians(res):
        rows = res.summary[(res.summary["scenario"] == "lstm-1x320-ce") & (res.summary["status"] == "ok")]
        return dict(zip(rows["impl"], rows["median_s"]))
    mb, mn = medians(b), medians(n)
    common = sorted(set(mb) & set(mn), key=mb.get)
    assert ranking.impls == common and ranking.new_order == sorted(common, key=mn.get)
    assert ranking.rho == pytest.approx(spearman([mb[i] for i in common], [mn[i] for i in common]))
    assert ranking.rho < 1
    expected = {(a, x) for k, a in enumerate(common) for x in common[k + 1:] if mn[a] > mn[x]}
    assert set(ranking.swapped) == expected and any("torch-nn" in p for p in expected)
    assert "time_steps=100" in ranking.base_shape and "time_steps=1000" in ranking.new_shape
    md = c.to_markdown()
    assert "### Rank agreement" in md and f"Spearman {ranking.rho:.2f}" in md
    same = {r.scenario: r for r in compare(base, base).rankings}
    assert same["gru-1x320-ce"].rho == pytest.approx(1.0) and not same["gru-1x320-ce"].swapped
