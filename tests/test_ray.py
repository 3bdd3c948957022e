"""The Ray executor against a real Ray cluster of two nodes on this machine
(``ray.cluster_utils.Cluster``: a head and a worker node, each a raylet with one unit of
the ``rnnbench`` resource), with the fake worker in place of a framework: where each run
lands, what is written, a node lost mid-matrix, a timeout, Ctrl-C, and bad input."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'rnnbench[ray]'")
from ray.cluster_utils import Cluster  # noqa: E402

from rnnbench import results  # noqa: E402
from rnnbench.ray_executor import NODES_FILE, RESOURCE, ClusterError, RayRunner  # noqa: E402
from rnnbench.runner import Runner, Settings  # noqa: E402
from rnnbench.scenarios import PROFILES, SCENARIOS  # noqa: E402

from conftest import rnnbench  # noqa: E402

FAKE = str(Path(__file__).with_name("fake_worker.py"))
MATRIX = ([SCENARIOS["lstm-1x320-ce"], SCENARIOS["gru-1x320-ce"]], ["torch-nn", "jax-scan"])
TMP = Path(os.environ.get("TMPDIR", "/tmp"))
NODE = {"num_cpus": 1, "resources": {RESOURCE: 1}}
# A raylet that is killed is declared dead within a second, not the default half minute.
FAST_HEALTH = {"health_check_period_ms": 200, "health_check_failure_threshold": 3}


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    c = Cluster(initialize_head=True, head_node_args={**NODE, "_system_config": FAST_HEALTH})
    c.add_node(**NODE)
    c.wait_for_nodes()
    yield c
    for node in c.list_all_nodes():
        forget(node)
    c.shutdown()


def forget(node):
    """Remove the node's cached machine and GEMM rate from the temp directory."""
    for path in TMP.glob(f"rnnbench-node-*-{node.node_id[:16]}-*.json"):
        path.unlink(missing_ok=True)


def settings(out, fake="ok", script=FAKE, **kw):
    return Settings(**{"profile": PROFILES["smoke"], "warmup": 1, "steps": 5, "threads": 1, "timeout_s": 60.0,
                       "verify": False, "out": out, "worker": (str(script), fake), **kw})


def own_fake(tmp_path) -> Path:
    """A copy of the fake worker that only this test starts, so that its processes can be
    told from those of tests running beside it."""
    copy = tmp_path / "own_fake_worker.py"
    shutil.copy(FAKE, copy)
    return copy


def running(script) -> list[int]:
    out = subprocess.run(["pgrep", "-f", str(script)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def ray_run(cluster, out, fake="ok", matrix=MATRIX, **kw):
    lines = []
    runner = RayRunner(settings(out, fake), on_result=lambda label, doc: lines.append(label),
                       address=cluster.address, **kw)
    return runner, runner.run(*matrix, ["test"]), lines


def test_a_matrix_spreads_over_the_nodes_and_is_written_as_a_local_run(cluster, tmp_path):
    runner, status, lines = ray_run(cluster, tmp_path / "ray", fake="slow")
    assert status == 0 and len(lines) == 4
    docs = results.load_runs(tmp_path / "ray")
    assert [d["status"] for d in docs] == ["ok"] * 4
    nodes = {d["node"] for d in docs}
    assert len(nodes) == 2, "two nodes, four 1-second runs: both nodes take some"
    for d in docs:
        info = d["node_info"]
        assert info["hostname"] and info["cpu"] and info["cores"] >= 1 and "memory_gib" in info
        assert d["efficiency_pct"] == pytest.approx(100 * d["gflops"] / info["gemm"]["gflops"])
        clock = d["ray"]
        assert clock["task_started"] <= clock["worker_started"] < clock["worker_ended"] <= clock["received"]
    # One run at a time per node: the worker intervals of a node never overlap.
    for node in nodes:
        spans = sorted((d["ray"]["worker_started"], d["ray"]["worker_ended"]) for d in docs if d["node"] == node)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    meta = json.loads((tmp_path / "ray" / "meta.json").read_text())
    assert meta["state"] == "finished" and set(meta["nodes"]) == nodes and meta["executor"]["name"] == "ray"

    local = Runner(settings(tmp_path / "local"))
    assert local.run(*MATRIX, ["test"]) == 0
    shape = {p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("*")}
    assert {p.relative_to(tmp_path / "ray") for p in (tmp_path / "ray").rglob("*")} == shape
    assert all((tmp_path / "ray" / "logs").iterdir())
    script = Path(__file__).parents[1] / "scripts" / "ray_measure.py"
    p = subprocess.run([sys.executable, str(script), "overhead", str(tmp_path / "ray")], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0 and "4 runs on 2 node(s)" in p.stdout and "dispatch overhead per run:" in p.stdout, p


def test_every_node_runs_the_whole_matrix_on_each_node_into_its_own_directory(cluster, tmp_path):
    runner, status, _ = ray_run(cluster, tmp_path, every_node=True)
    names = json.loads((tmp_path / NODES_FILE).read_text())["nodes"]
    assert status == 0 and len(names) == 2
    for name in names:
        docs = results.load_runs(tmp_path / name)
        assert [(d["status"], d["node"]) for d in docs] == [("ok", name)] * 4
        meta = json.loads((tmp_path / name / "meta.json").read_text())
        assert meta["machine"]["node"] == name and meta["machine"]["cpu"] and meta["gemm"]["gflops"] > 0
        assert {d["node_info"]["node_id"] for d in docs} == {meta["machine"]["node_id"]}
    # Resumed with every run kept, each directory still says which machine it is.
    again = RayRunner(settings(tmp_path, resume=True), address=cluster.address, every_node=True)
    assert again.run(*MATRIX, ["test"]) == 0
    for name in names:
        meta = json.loads((tmp_path / name / "meta.json").read_text())
        assert meta["machine"]["node"] == name and meta["machine"]["cpu"] and meta["gemm"]["gflops"] > 0


def test_fresh_cache_gives_each_worker_on_a_node_a_new_empty_cache(cluster, tmp_path):
    """--fresh-cache on Ray as locally: no worker compiles into the node's shared cache
    (the fake worker hands back the cache directory it was given)."""
    shared = os.environ["RNNBENCH_CACHE_DIR"]  # the test suite's shared cache (conftest)
    for fresh in (False, True):
        runner = RayRunner(settings(tmp_path / str(fresh), "env", fresh_cache=fresh), address=cluster.address)
        assert runner.run(*MATRIX, ["test"]) == 0
        caches = [d["notes"]["RNNBENCH_CACHE_DIR"] for d in results.load_runs(tmp_path / str(fresh))]
        if fresh:
            assert shared not in caches and len(set(caches)) == 4
        else:
            assert caches == [shared] * 4


def test_a_run_past_its_timeout_is_killed_on_its_node(cluster, tmp_path):
    script = own_fake(tmp_path)
    out = tmp_path / "out"
    runner = RayRunner(settings(out, "hang", script, timeout_s=3.0), address=cluster.address)
    assert runner.run([SCENARIOS["lstm-1x320-ce"]], ["torch-nn"], ["test"]) == 0
    [doc] = results.load_runs(out)
    assert doc["status"] == "timeout" and doc["wall_s"] < 10 and "last reported: warmup step 1" in doc["reason"]
    assert not running(script), "the hung worker was killed with its process group"


def lose_a_node_once_busy(cluster):
    """A third node, and a thread that removes it (as a crash would: no grace) once its
    first run has measured the node's GEMM rate, that is as its worker starts."""
    doomed = cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    marker = f"rnnbench-node-*-{doomed.node_id[:16]}-*.json"

    def kill_when_busy():
        deadline = time.monotonic() + 60
        while not list(TMP.glob(marker)) and time.monotonic() < deadline:
            time.sleep(0.05)
        cluster.remove_node(doomed, allow_graceful=False)
        forget(doomed)

    killer = threading.Thread(target=kill_when_busy)
    killer.start()
    return doomed, killer


def test_a_node_lost_mid_run_is_retried_on_another_and_both_attempts_are_recorded(cluster, tmp_path):
    doomed, killer = lose_a_node_once_busy(cluster)
    matrix = ([SCENARIOS[s] for s in ("lstm-1x320-ce", "gru-1x320-ce", "lstm-1x320-ce-short")], ["torch-nn"])
    try:
        _, status, _ = ray_run(cluster, tmp_path, fake="slow", matrix=matrix)
    finally:
        killer.join()
    docs = results.load_runs(tmp_path)
    assert status == 0 and [d["status"] for d in docs] == ["ok"] * 3, "nothing lost"
    [retried] = [d for d in docs if d.get("attempts")]
    assert retried["attempts"][0]["status"] == "failed" and retried["attempts"][0]["reason"].startswith("node lost")
    assert doomed.node_id not in {d["node_info"]["node_id"] for d in docs}


def test_with_every_node_a_lost_nodes_runs_end_as_lost_and_the_others_finish(cluster, tmp_path):
    doomed, killer = lose_a_node_once_busy(cluster)
    try:
        _, status, _ = ray_run(cluster, tmp_path, fake="slow", every_node=True)
    finally:
        killer.join()
    names = json.loads((tmp_path / NODES_FILE).read_text())["nodes"]
    [lost] = [n for n in names if doomed.node_id.startswith(n.rsplit("-", 1)[1])]
    assert status == 0 and len(names) == 3
    for name in names:
        docs = results.load_runs(tmp_path / name)
        if name == lost:
            assert len(docs) == 4 and all(d["status"] in ("failed", "skipped") and d["reason"].startswith("node lost")
                                          for d in docs), [(d["status"], d["reason"]) for d in docs]
        else:
            assert [d["status"] for d in docs] == ["ok"] * 4


DRIVER = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_ray import settings, MATRIX
from rnnbench.ray_executor import RayRunner
runner = RayRunner(settings(Path(sys.argv[1]), "slow", sys.argv[3]),
                   on_result=lambda label, doc: print(doc["status"], flush=True), address=sys.argv[2])
sys.exit(runner.run(*MATRIX, ["test"]))
"""


def test_ctrl_c_cancels_the_unfinished_runs_and_keeps_the_finished_ones(cluster, tmp_path):
    script = own_fake(tmp_path)
    driver = subprocess.Popen([sys.executable, "-c", DRIVER.format(tests=str(Path(__file__).parent)),
                               str(tmp_path / "out"), cluster.address, str(script)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert driver.stdout.readline().strip() == "ok"  # one run finished; others are running or queued
    driver.send_signal(signal.SIGINT)
    out, err = driver.communicate(timeout=60)
    assert driver.returncode == 130, err
    docs = results.load_runs(tmp_path / "out")
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["state"] == "interrupted" and "Ctrl-C" in meta["stopped_by"]
    statuses = [d["status"] for d in docs]
    assert 1 <= statuses.count("ok") < 4 and set(statuses) == {"ok"}, statuses
    deadline = time.monotonic() + 10
    while running(script) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not running(script), "a cancelled run's worker is stopped"


def test_a_cluster_without_the_resource_is_refused_before_anything_is_written(cluster, tmp_path, monkeypatch):
    monkeypatch.setattr("rnnbench.ray_executor.RESOURCE", "no-such-resource")
    with pytest.raises(ClusterError, match="no node of the Ray cluster carries the 'no-such-resource' resource"):
        ray_run(cluster, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, words", [
    (["--every-node"], "--every-node needs --executor ray"),
    (["--ray-address", "auto"], "--ray-address needs --executor ray"),
    (["--executor", "ray", "--processes", "2"], "--processes runs on the local executor only"),
    (["--executor", "ray", "--ray-address", "127.0.0.1:9"], "cannot reach the Ray cluster at 127.0.0.1:9"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, args, words):
    p = rnnbench("run", "--profile", "smoke", "-i", "torch-nn", "--out", tmp_path / "out", *args, timeout=120)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and words in p.stderr, p.stderr
    assert not (tmp_path / "out").exists()


def test_without_ray_installed_the_message_says_how_to_install_it(tmp_path):
    fake = tmp_path / "noray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'ray'\", name='ray')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake.parent), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-m", "rnnbench.cli", "run", "--profile", "smoke", "-i", "torch-nn",
                        "--executor", "ray", "--out", str(tmp_path / "out")], capture_output=True, text=True,
                       env=env, timeout=120)
    assert p.returncode == 2 and "pip install 'rnnbench[ray]'" in p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert not (tmp_path / "out").exists()


def test_a_cuda_run_without_a_gpu_node_is_skipped_and_resume_keeps_finished_runs(cluster, tmp_path):
    runner = RayRunner(settings(tmp_path, device="cuda"), address=cluster.address)
    assert runner.run(*MATRIX, ["test"]) == 0
    assert {(d["status"], d["reason"]) for d in results.load_runs(tmp_path)} == {
        ("skipped", "no node with the 'rnnbench' resource has a GPU, and --device cuda asks for one")}

    assert ray_run(cluster, tmp_path / "r")[1] == 0
    first = {d["impl"] + d["scenario"]: d["node"] for d in results.load_runs(tmp_path / "r")}
    lines = []
    again = RayRunner(settings(tmp_path / "r", resume=True), on_result=lambda label, doc: lines.append(label),
                      address=cluster.address)
    assert again.run(*MATRIX, ["test"]) == 0 and len(lines) == 4 and all(l.endswith("(kept)") for l in lines)
    assert {d["impl"] + d["scenario"]: d["node"] for d in results.load_runs(tmp_path / "r")} == first


def test_the_longest_runs_are_dispatched_first():
    from types import SimpleNamespace

    from rnnbench.plan import Evidence, estimate
    from rnnbench.ray_executor import Task, longest_first

    st = settings(Path("unused"), profile=PROFILES["quick"])
    cells = [(SCENARIOS[s], i) for s in ("lstm-1x320-ce", "lstm-4x320bi-ctc") for i in ("torch-nn", "pytensor-scan")]
    tasks = [Task(None, f"{s.name} {i}", s, SimpleNamespace(impl=i), None) for s, i in cells]
    ordered = longest_first(tasks, st, Evidence.read(None))
    times = [estimate(st, Evidence.read(None), t.scenario, t.job.impl).seconds for t in ordered]
    assert times == sorted(times, reverse=True) and len(set(times)) == 4
    assert ordered[0].label == "lstm-4x320bi-ctc pytensor-scan" and ordered[-1].label == "lstm-1x320-ce torch-nn"
