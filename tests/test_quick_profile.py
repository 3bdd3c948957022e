"""The quick profile forks its workers and compiles into the per-user cache; every run
records whether its compiles were cold or warm; ``--fresh-cache`` gives each worker an
empty cache again; results written before the cache column still load."""

import csv
import json
from pathlib import Path

import pytest

from rnnbench import analysis, cli, fmt, report
from rnnbench.cli import result_line
from rnnbench.launch import CACHE_WRITERS, cache_files
from rnnbench.runner import Runner, Settings
from rnnbench.scenarios import PROFILES, SCENARIOS

TESTS = Path(__file__).parent
CACHE_WORKER = str(TESTS / "cache_worker.py")
FAKE = str(TESTS / "fake_worker.py")
RUNNERS = []


@pytest.fixture(autouse=True)
def quiet(monkeypatch, tmp_path):
    """Fork servers preload a light module, not torch; the per-user cache is under tmp_path;
    no GEMM probe."""
    monkeypatch.setattr("rnnbench.launch.preload", lambda fw, cpu=False: ("json",) if fw == "torch" else ())
    monkeypatch.setattr("rnnbench.gemm.in_subprocess", lambda threads, env: {"gflops": 100.0, "threads": threads})
    monkeypatch.delenv("RNNBENCH_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    yield
    while RUNNERS:
        RUNNERS.pop().close()


def opened(tmp_path, worker, profile="quick", **kw) -> Runner:
    st = Settings(**{"profile": PROFILES[profile], "warmup": 1, "steps": 5, "threads": 1, "timeout_s": 30.0,
                     "verify": False, "out": tmp_path / "out", "worker": worker, **kw})
    r = Runner(st)
    RUNNERS.append(r)
    r.open([], [], ["test"])
    return r


def test_quick_forks_its_workers_and_shares_the_per_user_cache(tmp_path):
    r = opened(tmp_path, (FAKE, "env"))
    docs = [r.run_one(SCENARIOS[s], "torch-nn") for s in ("gru-1x320-ce", "lstm-1x320-ce")]
    assert [d["worker"] for d in docs] == ["forked", "forked"]
    assert [d["notes"]["RNNBENCH_CACHE_DIR"] for d in docs] == [str(tmp_path / "xdg" / "rnnbench" / "compile")] * 2
    assert docs[1]["notes"]["FAKE_MARK"] == ""  # the second fork starts from the server, not from the first job
    meta = json.loads((r.out / "meta.json").read_text())
    assert meta["compile_cache"] == str(tmp_path / "xdg" / "rnnbench" / "compile") and meta["fresh_cache"] is False
    assert meta["workers"].startswith("forked")
    # The profiles whose first steps are meant to be cold compiles still start fresh.
    assert not PROFILES["seed"].shared_cache and not PROFILES["full"].shared_cache


def test_each_run_records_a_cold_or_warm_cache(tmp_path):
    r = opened(tmp_path, (CACHE_WORKER, "graph"))
    gru, lstm = SCENARIOS["gru-1x320-ce"], SCENARIOS["lstm-1x320-ce"]
    first = r.run_one(gru, "torch-nn")
    assert first["cache_state"] == "cold"
    assert first["cache"]["files_before"] == 0 and first["cache"]["files_added"] == 1
    assert first["cache"]["bytes_added"] == 1000
    second = r.run_one(gru, "torch-nn")  # the same graph: found in the cache
    assert second["cache_state"] == "warm" and second["cache"]["files_added"] == 0
    assert r.run_one(lstm, "torch-nn")["cache_state"] == "cold"  # other sizes compile anew
    r.st.worker = (CACHE_WORKER, "verify")  # the same run compiling a part it had not before
    assert r.run_one(gru, "torch-nn")["cache_state"] == "partly cold"
    r.st.worker = (FAKE, "ok")  # writes nothing: a framework without an on-disk cache
    assert r.run_one(SCENARIOS["lstm-4x320bi-ce"], "torch-nn")["cache_state"] == "not cached"
    # What the run document says is in summary.csv, the terminal line and the report.
    summary = {(row["scenario"]): row["cache_state"] for row in csv.DictReader(open(r.out / "summary.csv"))}
    assert summary == {"gru-1x320-ce": "partly cold", "lstm-1x320-ce": "cold", "lstm-4x320bi-ce": "not cached"}
    assert "first 500 ms (warm cache)" in result_line(second)
    r.close()
    text = report.render(analysis.load(r.out))
    assert "500 ms (partly cold cache)" in text and "500 ms (no disk cache)" in text
    # The writers' list is the cache's own bookkeeping, never counted as a compile.
    cache = Path(first["cache"]["dir"])
    assert (cache / CACHE_WRITERS).is_file() and CACHE_WRITERS not in cache_files(str(cache))


def test_a_second_matrix_in_the_shared_cache_starts_warm(tmp_path):
    """Runs of another matrix (another runner, another results directory) find what the
    first compiled, however its workers started."""
    r = opened(tmp_path, (CACHE_WORKER, "graph"))
    assert r.run_one(SCENARIOS["gru-1x320-ce"], "torch-nn")["cache_state"] == "cold"
    r.close()
    later = opened(tmp_path / "later", (CACHE_WORKER, "tf-graph"))
    doc = later.run_one(SCENARIOS["gru-1x320-ce"], "tf-cell")  # spawned: no fork server for tensorflow
    assert doc["worker"] == "spawned" and doc["cache_state"] == "cold"  # another implementation compiles its own
    later.st.worker = (CACHE_WORKER, "graph")
    doc = later.run_one(SCENARIOS["gru-1x320-ce"], "torch-nn")
    assert doc["worker"] == "forked" and doc["cache_state"] == "warm"


def test_fresh_cache_gives_every_worker_an_empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNBENCH_CACHE_DIR", str(tmp_path / "preset"))  # --fresh-cache wins over it too
    r = opened(tmp_path, (CACHE_WORKER, "graph"), fresh_cache=True)
    docs = [r.run_one(SCENARIOS["gru-1x320-ce"], "torch-nn") for _ in range(2)]
    assert [d["cache_state"] for d in docs] == ["cold", "cold"]
    assert [d["cache"]["files_before"] for d in docs] == [0, 0]
    dirs = [d["cache"]["dir"] for d in docs]
    assert dirs[0] != dirs[1] and not any(d.startswith(str(tmp_path)) for d in dirs)
    assert not (tmp_path / "preset").exists() and not (tmp_path / "xdg").exists()
    meta = json.loads((r.out / "meta.json").read_text())
    assert meta["compile_cache"] == "fresh per worker (--fresh-cache)" and meta["fresh_cache"] is True


def test_fresh_cache_option(tmp_path, capsys):
    args = cli.build_parser().parse_args(["run", "--fresh-cache", "--out", str(tmp_path / "r")])
    st = cli.run_settings(args)
    assert st.fresh_cache and st.compile_cache() is None
    assert cli.run_settings(cli.build_parser().parse_args(["run"])).compile_cache() is not None  # quick: shared
    assert cli.main(["plan", "--fresh-cache", "-s", "gru-1x320-ce", "-i", "torch-nn", "--out", str(tmp_path / "p")]) == 0
    assert "torch-nn" in capsys.readouterr().out and not (tmp_path / "p").exists()
    assert cli.main(["run", "--executor", "ray", "--fresh-cache", "--out", str(tmp_path / "ray")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["rnnbench: error: --fresh-cache runs on the local executor only: drop --fresh-cache, "
                   "or --executor ray"]


def test_results_written_before_the_cache_column_still_load(tmp_path):
    old = analysis.load(TESTS / "fixtures" / "quick-base")  # written before cache_state existed
    assert old.summary["cache_state"].fillna("").eq("").all()  # text: empty where not recorded
    text = report.render(old)
    assert "192 ms" in text and not any(f"({note})" in text for note in fmt.CACHE_NOTES.values())


def test_quick_keeps_passed_verifications_while_the_code_stays_the_same(tmp_path, monkeypatch):
    r = opened(tmp_path, (FAKE, "verified"), verify=True)
    log = tmp_path / "xdg" / "rnnbench" / "compile" / "verified.log"
    gru, lstm = SCENARIOS["gru-1x320-ce"], SCENARIOS["lstm-1x320-ce"]

    def checks() -> int:
        return len(log.read_text().splitlines()) if log.exists() else 0

    first = r.run_one(gru, "torch-nn")
    assert first["status"] == "ok", first["reason"]
    assert first["verified"] == "yes" and "kept" not in first["verify_message"] and checks() == 1
    again = r.run_one(gru, "torch-nn")  # the same code and check: the verdict is kept, no second build
    assert checks() == 1 and again["verified"] == "yes"
    assert again["verify_message"].startswith(first["verify_message"] + " (kept from run " + r.run_id)
    assert again["verify_loss_err"] == first["verify_loss_err"]
    assert r.run_one(lstm, "torch-nn")["verified"] == "yes" and checks() == 2  # another network: checked
    r.st.threads = 2  # another setting of the check
    assert "kept" not in r.run_one(gru, "torch-nn")["verify_message"] and checks() == 3
    monkeypatch.setattr("rnnbench.verdicts.source_hash", lambda impl: "changed")  # the code changed
    assert "kept" not in r.run_one(gru, "torch-nn")["verify_message"] and checks() == 4
    assert "kept" in r.run_one(gru, "torch-nn")["verify_message"] and checks() == 4
    # A failed verification is never kept: checked again each time.
    monkeypatch.setattr("rnnbench.verdicts.source_hash", lambda impl: "broken")
    r.st.worker = (FAKE, "wrong")
    assert [r.run_one(gru, "torch-nn")["verified"] for _ in range(2)] == ["no", "no"] and checks() == 6
    # --fresh-cache verifies again, in an empty cache of its own.
    r.st.worker, r.st.fresh_cache = (FAKE, "verified"), True
    monkeypatch.setattr("rnnbench.verdicts.source_hash", lambda impl: "changed")
    fresh = r.run_one(gru, "torch-nn")
    assert fresh["verified"] == "yes" and "kept" not in fresh["verify_message"] and checks() == 6


def test_profiles_without_kept_verdicts_verify_every_time(tmp_path):
    assert PROFILES["quick"].keep_verdicts and not any(PROFILES[p].keep_verdicts for p in ("smoke", "seed", "full"))
    r = opened(tmp_path, (FAKE, "verified"), profile="smoke", verify=True)
    docs = [r.run_one(SCENARIOS["gru-1x320-ce"], "torch-nn") for _ in range(2)]
    assert [d["verified"] for d in docs] == ["yes", "yes"] and not any("kept" in d["verify_message"] for d in docs)
