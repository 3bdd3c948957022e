"""The matrix on a Ray cluster (``rnnbench run --executor ray``): the only module that
imports Ray, and only when that executor is chosen.

Every (scenario, implementation) run is one Ray task that starts the same worker process
as a local run, on the node it lands on, through the same launch code (``rnnbench.launch``:
spawned, its own process group, killed as a group at the per-run timeout or on cancel),
and hands back what a local run reads from disk: how the worker ended, its result, its log
and the node it ran on. The driver records each run as its task ends, exactly as a local
run is recorded (``rnnbench.runner.Runner.record``), with the node's name and machine.

Scheduling: each node advertises one unit of the custom resource ``rnnbench`` and every
task needs one (and no CPU: Ray's CPU count would let two runs share a node), so a node
never runs two benchmarks at once; a run on CUDA also needs a GPU. A run no live node can
take is skipped with that reason rather than left waiting. Each node's GEMM rate is
measured by the first run that lands there, cached in a file under the node's temp
directory, and used for the efficiency of every run on it.

With ``every_node`` the whole matrix runs once on each node (pinned to it), into
``OUT/<node>/``: one complete results directory per machine, so that report and compare
treat each as any other run (``rnnbench.machines`` renders the machines section).

Faults: a task whose node died is recorded as failed ("node lost") and retried once on
another node; the retry's document lists the lost attempt under ``attempts``. Ctrl-C
cancels every unfinished task (the cancelled task kills its worker's process group) and
keeps every finished run.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from . import gemm, plan, results, rundir
from .assemble import Outcome, run_document
from .errors import ResultsError
from .frameworks import FRAMEWORKS
from .impls import IMPLEMENTATIONS
from .launch import Launcher, cache_env, compile_cache, read_result, tail, thread_env
from .machine import machine
from .machines import NODES_FILE
from .protocol import Job, read_progress
from .runner import INTERRUPT_GRACE_S, Quiet, Runner
from .scenarios import Scenario
from .watch import load_average

RESOURCE = "rnnbench"
INSTALL = "pip install 'rnnbench[ray]'"
RESOURCE_HINT = f"start each node with `ray start ... --resources '{{\"{RESOURCE}\": 1}}'`"
NODE_LOST = "node lost"
FEASIBILITY_EVERY_S = 5.0  # how often the driver checks that queued runs still have a node
CONNECT_TIMEOUT_S = 5.0


class ClusterError(ResultsError):
    """Ray is missing, the cluster cannot be reached, or no node can run a benchmark: one
    line, exit 2, raised before anything is written to the results directory."""


# --- on the node --------------------------------------------------------------------------

def node_info(run_id: str, node_id: str, threads: int) -> dict:
    """This node's machine and GEMM rate, measured by the first run of ``run_id`` that lands
    here (it holds the node's one rnnbench unit, so nothing else of ours runs meanwhile)
    and kept in a file for the next; the load is read afresh."""
    cache = Path(tempfile.gettempdir()) / f"rnnbench-node-{run_id}-{node_id[:16]}-{threads}.json"
    try:
        info = json.loads(cache.read_text())
    except (OSError, ValueError):
        for old in cache.parent.glob(f"rnnbench-node-*-{node_id[:16]}-*.json"):  # earlier runs' on this node
            old.unlink(missing_ok=True)
        info = {**machine(), "node_id": node_id,
                "gemm": gemm.in_subprocess(threads, {**os.environ, **thread_env(threads)})}
        cache.write_text(json.dumps(info))
    return {**info, "load": list(os.getloadavg())}


def run_on_node(job: Job, worker: tuple[str, ...], timeout_s: float, run_id: str, shared_cache: bool,
                fresh_cache: bool = False) -> dict:
    """Run one worker on this node as the local runner would (``Runner.work``) and hand
    back its outcome, its whole log, the node's info and wall-clock marks (``clock``) from
    which the dispatch overhead is measured. Its compile cache: the node's shared one, or
    a new, empty one for this worker (``fresh_cache``, or a profile that shares none). A
    cancel (Ctrl-C on the driver) arrives as KeyboardInterrupt: the worker's process group is killed before the task ends."""
    import ray

    clock = {"task_started": time.time()}
    tmp = Path(tempfile.mkdtemp(prefix="rnnbench-"))
    try:
        info = node_info(run_id, ray.get_runtime_context().get_node_id(), job.threads)
        job = copy.copy(job)  # the driver's paths name its own machine: this node's instead
        job.result, job.progress = str(tmp / "result.json"), str(tmp / "progress.jsonl")
        job.dump(str(tmp / "job.json"))
        log = tmp / "worker.log"
        cache = compile_cache(shared_cache, fresh_cache) or str(tmp / "cache")
        env = {**os.environ, **thread_env(job.threads), **cache_env(cache)}
        if job.device == "auto" and env.get("CUDA_VISIBLE_DEVICES") == "":
            del env["CUDA_VISIBLE_DEVICES"]  # Ray hides GPUs from a task that asked for none
        load = {"load_before": load_average()}
        clock["worker_started"] = time.time()
        t0 = time.perf_counter()
        try:
            proc = Launcher(False).start(IMPLEMENTATIONS[job.impl].framework, [*worker, str(tmp / "job.json")],
                                         log, env)
        except OSError as e:
            outcome = Outcome("exited", error=f"could not start the worker: {e}")
            return {"outcome": outcome, "log": "", "node": info, "clock": clock, **load}
        try:
            ended = wait(proc, timeout_s)
        except BaseException:
            proc.kill(INTERRUPT_GRACE_S)
            raise
        wall_s = time.perf_counter() - t0
        proc.kill()  # anything the worker left running
        clock["worker_ended"] = time.time()
        load["load_after"] = load_average()
        result, error = read_result(job.result)
        outcome = Outcome(ended, proc.returncode, result, error, read_progress(job.progress), wall_s=wall_s,
                          worker=f"{proc.how} on {info['hostname']}", stderr_tail=tail(log))
        clock["task_returned"] = time.time()
        return {"outcome": outcome, "log": log.read_text(errors="replace"), "node": info, "clock": clock, **load}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def wait(proc, timeout_s: float) -> str:
    """"exited", or "timeout" once the worker's process group has been killed."""
    try:
        proc.wait(timeout=timeout_s)
        return "exited"
    except subprocess.TimeoutExpired:
        proc.kill()
        return "timeout"


# --- on the driver ------------------------------------------------------------------------

def import_ray():
    try:
        import ray
    except ImportError:
        raise ClusterError(f"the ray executor needs Ray, which is not installed: {INSTALL}") from None
    return ray


def check_reachable(address: str) -> None:
    """A host:port that nothing answers on fails here in seconds, not in Ray's minutes of retries."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError) as e:
        raise ClusterError(f"cannot reach the Ray cluster at {address} ({e}): start it with `ray start --head "
                           f"--resources '{{\"{RESOURCE}\": 1}}'` there, or give --ray-address auto on a node of it")


def connect(address: str | None):
    """Join the cluster at ``address`` ("auto" or host:port), or start a local Ray instance
    whose one node carries the resource when there is none. Returns the ray module."""
    ray = import_ray()
    if address and address != "auto":
        check_reachable(address)
    import logging

    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(resources={RESOURCE: 1}, include_dashboard=False, logging_level=logging.WARNING,
                     log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ClusterError(f"cannot join the Ray cluster at {address or 'a new local instance'}: "
                           f"{' '.join(str(e).split())[:200]}") from None
    return ray


def nodes(ray) -> dict[str, dict]:
    """The live nodes that carry the resource, by name: the host name, with the start of
    the node id where one host runs several nodes."""
    alive = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get(RESOURCE, 0) >= 1]
    hosts = [n["NodeManagerHostname"] for n in alive]
    return {(h if hosts.count(h) == 1 else f"{h}-{n['NodeID'][:6]}"): n for h, n in zip(hosts, alive)}


def node_name(ray, node_id: str, known: dict[str, dict]) -> str:
    for name, n in known.items():
        if n["NodeID"] == node_id:
            return name
    known.update(nodes(ray))  # a node that joined during the run
    return next((name for name, n in known.items() if n["NodeID"] == node_id), node_id[:12])


@dataclasses.dataclass
class Task:
    sink: Runner  # the runner whose directory the run is recorded in
    label: str
    scenario: Scenario
    job: Job
    node: str | None  # every-node: the node it is pinned to
    attempts: list = dataclasses.field(default_factory=list)  # lost attempts: their documents

    @property
    def gpu(self) -> bool:
        return self.job.device == "cuda"


def longest_first(tasks: list[Task], settings, evidence: plan.Evidence) -> list[Task]:
    """The runs in order of predicted wall time, longest first (``rnnbench.plan``): each
    node that frees up takes the longest run left, so that no long run starts last and
    holds the whole matrix up while the other nodes idle (the makespan of "longest
    processing time first" is within 4/3 of the best possible)."""
    return sorted(tasks, key=lambda t: -plan.estimate(settings, evidence, t.scenario, t.job.impl).seconds)


def attempts(task: Task) -> list[dict]:
    """The lost attempts of a run, for its document."""
    return [{k: a.get(k) for k in ("status", "reason", "node")} for a in task.attempts]


class RayRunner:
    """A matrix run on a Ray cluster, with the interface ``cli.execute`` uses of a
    ``Runner``: ``run`` and, after it, ``docs``, ``meta``, ``stopped_by``. It records
    through one Runner per results directory (one, or one per node with ``every_node``)."""

    def __init__(self, settings, progress=None, on_result=None, *, address: str | None = None,
                 every_node: bool = False):
        self.st, self.out = settings, Path(settings.out)
        self.progress = progress or Quiet()
        self.on_result = on_result or (lambda label, doc: None)
        self.address, self.every_node = address, every_node
        self.sinks: list[Runner] = []
        self.stopped_by: str | None = None
        self.known: dict[str, dict] = {}
        self.ray = None

    @property
    def docs(self) -> list[dict]:
        return [d for s in self.sinks for d in s.docs]

    @property
    def meta(self) -> dict:
        return self.sinks[0].meta if self.sinks else {}

    def run(self, scenarios, impls, argv, missing=frozenset()) -> int:
        """As ``Runner.run``. Raises ClusterError, having written nothing, for a cluster
        that cannot run the matrix."""
        ray = self.ray = connect(self.address)
        evidence = plan.Evidence.read(self.out if self.st.mode == "bench" else None)  # before open archives it
        status = 0
        try:
            self.known = nodes(ray)
            if not self.known:
                raise ClusterError(f"no node of the Ray cluster carries the {RESOURCE!r} resource: {RESOURCE_HINT}")
            status = self.dispatch(longest_first(self.open(scenarios, impls, argv, missing), self.st, evidence))
        except KeyboardInterrupt as e:  # while the directories were being taken
            status, self.stopped_by = rundir.exit_status(e), rundir.cause(e)
        finally:
            for sink in self.sinks:
                sink.stopped_by = sink.stopped_by or self.stopped_by
                sink.close()
            ray.shutdown()
        return status

    def open(self, scenarios, impls, argv, missing) -> list[Task]:
        """Take each results directory, record what needs no node (kept by --resume, of a
        missing framework), and return the runs to dispatch."""
        if self.every_node:
            self.out.mkdir(parents=True, exist_ok=True)
            results.write_json(self.out / NODES_FILE, {"nodes": sorted(self.known)})
            targets = {name: dataclasses.replace(self.st, out=self.out / name) for name in sorted(self.known)}
        else:
            targets = {None: self.st}
        tasks = []
        for name, st in targets.items():
            sink = Runner(st, self.progress, self.on_result)
            self.sinks.append(sink)
            kept = sink.open(scenarios, impls, argv)
            sink.meta["executor"] = {"name": "ray", "address": self.address or "local instance", "node": name}
            sink.meta["gemm"] = {"gflops": None, "threads": st.threads, "error": "measured on each node"}
            if name is not None:
                sink.meta["machine"] = {"hostname": self.known[name]["NodeManagerHostname"], "node": name}
            for s in scenarios:
                for impl in impls:
                    label = f"{s.name} {impl}" + (f" on {name}" if name else "")
                    fw = IMPLEMENTATIONS[impl].framework
                    if (s.name, impl) in kept:
                        doc = kept[(s.name, impl)]
                        if doc.get("node_info"):  # the machine of a directory all of whose runs are kept
                            self.describe_node(sink, name or doc["node"], doc["node_info"])
                        self.on_result(label + " (kept)", doc)
                    elif fw in missing:
                        self.on_result(label, sink.skip(s, impl, f"framework {fw} is not installed "
                                                            f"({FRAMEWORKS[fw].install_hint()})"))
                    else:
                        tasks.append(Task(sink, label, s, sink.job(s, impl, Path(tempfile.gettempdir())), name))
        return tasks

    def unplaceable(self, task: Task, live: dict | None = None) -> str | None:
        """Why no live node (``live``: ``nodes()``, read now if None) can take ``task``, or None."""
        live = nodes(self.ray) if live is None else live
        if task.node is not None and task.node not in live:
            return f"{NODE_LOST}: {task.node} is no longer in the cluster"
        if task.gpu and not any(n["Resources"].get("GPU", 0) >= 1 for n in live.values()):
            return f"no node with the {RESOURCE!r} resource has a GPU, and --device cuda asks for one"
        if not live:
            return f"no live node carries the {RESOURCE!r} resource"
        return None

    def submit(self, task: Task):
        ray = self.ray
        options = {"num_cpus": 0, "num_gpus": 1 if task.gpu else 0, "resources": {RESOURCE: 1},
                   "max_retries": 0, "retry_exceptions": False}
        if task.node is not None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(self.known[task.node]["NodeID"], soft=False)
        remote = ray.remote(run_on_node).options(**options)
        return remote.remote(task.job, tuple(self.st.worker), self.st.timeout_s, task.sink.run_id,
                             self.st.profile.shared_cache, self.st.fresh_cache)

    def dispatch(self, tasks: list[Task]) -> int:
        """Submit every runnable task, record each as it ends (retrying a lost one once),
        until none is left. Returns 0, or 130 / 143 after Ctrl-C / SIGTERM."""
        pending, checked, started, shown = {}, time.monotonic(), time.monotonic(), None
        live = nodes(self.ray)
        try:
            for task in tasks:
                why = self.unplaceable(task, live)
                if why:
                    self.on_result(task.label, task.sink.skip(task.scenario, task.job.impl, why))
                else:
                    pending[self.submit(task)] = task
            while pending:
                line = f"{len(pending)} runs queued or running on {len(self.known)} node(s)"
                self.progress(line if line != shown else None, matrix_s=time.monotonic() - started)
                shown = line
                ready, _ = self.ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in ready:
                    self.finish(ref, pending.pop(ref), pending)
                if time.monotonic() - checked > FEASIBILITY_EVERY_S:
                    checked = time.monotonic()
                    self.drop_unplaceable(pending)
        except KeyboardInterrupt as e:
            self.stopped_by = rundir.cause(e)
            self.cancel(pending)
            return rundir.exit_status(e)
        except BaseException:  # a record that cannot be written: nothing more can be kept
            self.cancel(pending, keep=False)
            raise
        return 0

    def drop_unplaceable(self, pending: dict) -> None:
        """Cancel the queued runs that no live node can take any more (every node with the
        resource, or with a GPU, has left): skipped, not waited for forever."""
        live = nodes(self.ray)
        for ref, task in list(pending.items()):
            why = self.unplaceable(task, live)
            if why and not self.ray.wait([ref], timeout=0)[0]:
                self.ray.cancel(ref)
                del pending[ref]
                self.on_result(task.label, task.sink.skip(task.scenario, task.job.impl, why))

    def finish(self, ref, task: Task, pending: dict) -> None:
        """Record a task that ended; a lost node's run is recorded as failed and, once,
        submitted again (pinned runs of --every-node are not: their node is the point)."""
        ray = self.ray
        try:
            got = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            return
        except ray.exceptions.RayTaskError as e:  # an error in run_on_node itself
            self.record_failure(task, f"the Ray task failed: {' '.join(str(e.cause).split())[:300]}")
            return
        except ray.exceptions.RayError as e:
            doc = self.record_failure(task, f"{NODE_LOST} ({type(e).__name__})")
            if task.node is None and not task.attempts:
                task.attempts.append(doc)
                why = self.unplaceable(task)
                if why is None:
                    pending[self.submit(task)] = task
            return
        self.record(task, got)

    def record_failure(self, task: Task, reason: str) -> dict:
        doc = run_document(task.job, task.sink.info, Outcome("exited", error=reason))
        doc.update(reason=reason, node=task.node or "")
        if task.attempts:
            doc["attempts"] = attempts(task)
        doc = task.sink.record(doc)
        self.on_result(task.label, doc)
        return doc

    def record(self, task: Task, got: dict) -> None:
        """Record a finished run as a local one is, with its node, that node's GEMM rate
        for its efficiency, its log in logs/, and any lost attempt before it."""
        sink, info = task.sink, got["node"]
        name = task.node or node_name(self.ray, info["node_id"], self.known)
        log = sink.out / "logs" / f"{task.job.sizes()['name']}__{task.job.impl}.log"
        rate = (info.get("gemm") or {}).get("gflops")
        with rundir.deferred_signals():
            log.write_text(got["log"])
            self.describe_node(sink, name, info)
        clock = {**got["clock"], "received": time.time()}
        doc = {**run_document(task.job, dataclasses.replace(sink.info, gemm_gflops=rate), got["outcome"]),
               "load_before": got["load_before"], "load_after": got.get("load_after"),
               "node": name, "node_info": info, "ray": clock}
        if task.attempts:
            doc["attempts"] = attempts(task)
        self.on_result(task.label if task.node else f"{task.label} on {name}", sink.record(doc))

    def describe_node(self, sink: Runner, name: str, info: dict) -> None:
        """Put a node's machine into meta.json once its first run is back: the machine of
        an --every-node directory, or one of the nodes of a shared one."""
        if self.every_node:
            if sink.meta["machine"].get("cpu") is None:
                sink.meta.update(machine={**info, "node": name}, gemm=info.get("gemm"))
                results.write_json(sink.out / "meta.json", sink.meta)
        elif name not in sink.meta.setdefault("nodes", {}):
            sink.meta["nodes"][name] = info
            results.write_json(sink.out / "meta.json", sink.meta)

    def cancel(self, pending: dict, keep: bool = True) -> None:
        """Cancel every unfinished run (a running one kills its worker's process group),
        and record those that finished meanwhile (``keep``). Runs already finished are not
        cancelled: Ray 2.60 aborted the driver here (task_manager.cc: "Tried to complete task
        that was not pending") when a cancel met a task's completion."""
        done, _ = self.ray.wait(list(pending), num_returns=len(pending), timeout=0) if pending else ([], [])
        for ref in set(pending) - set(done):
            self.ray.cancel(ref)
        if not (pending and keep):
            return
        ready, _ = self.ray.wait(list(pending), num_returns=len(pending), timeout=INTERRUPT_GRACE_S + 5)
        for ref in ready:
            try:
                got = self.ray.get(ref)
            except self.ray.exceptions.RayError:
                continue
            self.record(pending[ref], got)
