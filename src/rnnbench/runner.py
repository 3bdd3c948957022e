"""The loop over the matrix, and the files (framework-free).

For each (scenario, implementation) the runner writes a job (``rnnbench.protocol``),
starts a worker (``rnnbench.launch``), waits for it with a timeout, builds the run
document (``rnnbench.assemble``) and records it at once (``rnnbench.results``): the
document in runs/, and summary.csv and results.csv regenerated from every document, all
three or none. A worker that crashes, hangs past its timeout or writes unreadable output
is recorded as failed or timeout with the reason and the tail of its stderr, and the
suite goes on.

The results directory belongs to the run while it lasts (``rnnbench.rundir``: a lock; an
earlier run is archived first, or, with ``resume``, continued: its finished runs that the
current code, frameworks and settings would repeat are kept, and only the rest is run). meta.json says what the run is doing: "running", then
"finished", or "interrupted" with ``stopped_by``. Ctrl-C or SIGTERM at any moment stops
the worker, records its run as interrupted and ends the run as "interrupted"; every
finished run is kept. A write error (disk full, file too large, read-only file system)
stops the suite with RecordError: nothing more could be recorded, and what was recorded
before is complete.

While a run lasts, the progress display hears its phase (read from the worker's progress
file), the time spent on it and on the matrix, and the ETA from the time plan
(``rnnbench.plan``). Each run document records the machine's load average before and
after the run: a busy machine is the main source of wrong numbers.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from . import __version__, gemm, machine, plan, results, rundir
from .assemble import Outcome, Run, run_document
from .frameworks import FRAMEWORKS
from .impls import IMPLEMENTATIONS, framework_versions
from .launch import Launcher, cache_env, compile_cache, thread_env
from .protocol import Job, Result, read_progress
from .scenarios import Profile, Scenario, apply_profile
from .sources import source_hash

STDERR_TAIL_LINES = 15
INTERRUPT_GRACE_S = 1.0  # a stopped worker's time to end before SIGKILL: the user is waiting
LOAD_WINDOW_S = 60.0  # the kernel's 1-minute load average decays as exp(-t / 60 s)


@dataclass
class Settings:
    profile: Profile
    warmup: int
    steps: int
    threads: int
    device: str = "auto"
    flush_denormal: bool = True
    timeout_s: float = 900.0
    time_steps: int | None = None
    mode: str = "bench"  # "bench": time each run; "verify": only check one step (``rnnbench verify``)
    verify: bool = True  # bench: also run one step at the verification size and check it
    out: Path = Path("results")
    resume: bool = False  # continue the run in ``out``: keep its finished runs that match, run the rest
    worker: tuple[str, ...] = ("-m", "rnnbench.worker")  # what follows ``python`` to start a worker
    stop: dict | None = None  # bench: the stop rule (rnnbench.stopping.stop_rule); None: fixed counts


def now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


class Quiet:
    """The progress display when nobody watches (``cli.Progress`` on a terminal).
    ``message``: a new run's label; ``status``: phase, run_s, matrix_s, eta_s, warning."""

    def __call__(self, message=None, **status):
        pass

    def result(self, line: str):
        pass


def reusable(doc: dict, sizes: dict) -> bool:
    """Whether a recorded run is one the current code would repeat as it is: finished
    (ok, or skipped by the implementation, not for a missing framework), at the same
    sizes, with the same framework versions and the same implementation source."""
    meta = doc.get("meta") or {}
    return (doc.get("status") in ("ok", "skipped") and bool(meta) and doc.get("shape") == sizes
            and meta.get("versions") == framework_versions(IMPLEMENTATIONS[doc["impl"]].framework)
            and meta.get("source_sha256") == source_hash(doc["impl"]))


def finished(doc: dict) -> bool:
    """A run that ended with a result (one not to lose), not one that failed to."""
    return doc.get("status") in ("ok", "skipped") and bool(doc.get("meta"))


def load_average() -> list[float]:
    """The machine's 1-, 5- and 15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


class OwnLoad:
    """This runner's own share of the 1-minute load average: its workers' threads, as
    the kernel averages them (every 5 s, decaying as exp(-t / 60 s)). Taken out of the
    load before a run, what is left is the rest of the machine. An upper bound: a
    worker does not keep all its threads busy all the time (imports, compiles)."""

    def __init__(self):
        self.share, self.at = 0.0, time.monotonic()

    def now(self) -> float:
        return self.share * math.exp(-(time.monotonic() - self.at) / LOAD_WINDOW_S)

    def ran(self, threads: int, seconds: float) -> None:
        """``threads`` threads were busy for the last ``seconds``."""
        self.share = self.now() + threads * (1 - math.exp(-seconds / LOAD_WINDOW_S))
        self.at = time.monotonic()


def busy_warning(load: float, own: float, threads: int) -> str | None:
    """A warning when the rest of the machine loads more cores than ``threads`` leave free."""
    cores = machine.usable_cores()
    others = max(0.0, load - own)
    if others <= cores - threads:
        return None
    return (f"machine busy: load {others:.1f} from other processes (1-min average) > {max(cores - threads, 0)} "
            f"of {cores} cores left free by {threads} threads; this run's times may be slow")


class Runner:
    """One run of a matrix into one results directory; ``docs`` are its records so far."""

    def __init__(self, settings: Settings, progress=None, on_result=None):
        self.st, self.out = settings, Path(settings.out)
        self.progress = progress or Quiet()
        self.on_result = on_result or (lambda label, doc: None)
        self.run_id = dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]
        self.info = Run(self.run_id, settings.profile.name, settings.timeout_s)
        self.docs: list[dict] = []
        self.meta: dict = {}
        self.lock: rundir.Lock | None = None
        self.stopped_by: str | None = None  # what interrupted the run, if anything did
        self.launcher = Launcher(settings.profile.fork_server)
        self.own_load = OwnLoad()
        self.started = time.monotonic()
        self.left: list[float] = []  # predicted seconds of each run of the matrix not yet done (bench)
        self.fared = [0.0, 0.0]  # seconds the runs done so far took, and were predicted to take

    def run(self, scenarios: list[Scenario], impls: list[str], argv: list[str], missing=frozenset()) -> int:
        """Every scenario with every implementation (those of a ``missing`` framework are
        recorded as skipped; with ``resume``, those kept are not run again). Returns 0, or
        130 / 143 after Ctrl-C / SIGTERM. Raises ResultsError, having touched nothing, if
        the directory is unusable, in use, or cannot be resumed."""
        status = 0
        try:
            evidence = plan.Evidence.read(self.out) if self.st.mode == "bench" else None
            kept = self.open(scenarios, impls, argv)
            todo = [(s, i) for s in scenarios for i in impls]
            if evidence is not None:
                self.left = [self.estimate(evidence, s, i, missing, kept).seconds for s, i in todo]
            if self.st.mode == "bench" and len(kept) < len(todo):
                self.progress("measuring the GEMM rate")
                t0 = time.monotonic()
                self.meta["gemm"] = gemm.in_subprocess(self.st.threads, {**os.environ, **thread_env(self.st.threads)})
                self.own_load.ran(self.st.threads, time.monotonic() - t0)
                self.info.gemm_gflops = self.meta["gemm"].get("gflops")
                with rundir.deferred_signals():
                    results.write_json(self.out / "meta.json", self.meta)
            self.started = time.monotonic()
            for n, (s, impl) in enumerate(todo, 1):
                label = f"[{n}/{len(todo)}] {s.name} {impl}"
                fw = IMPLEMENTATIONS[impl].framework
                if (s.name, impl) in kept:
                    doc = kept[(s.name, impl)]
                    label += " (kept)"
                elif fw in missing:
                    doc = self.skip(s, impl, f"framework {fw} is not installed ({FRAMEWORKS[fw].install_hint()})")
                else:
                    self.progress(label, phase="starting", run_s=0.0, predicted_s=self.left and self.left[n - 1],
                                  **self.clock(0.0))
                    t0 = time.monotonic()
                    doc = self.run_one(s, impl)
                    if self.left:
                        self.fared = [self.fared[0] + time.monotonic() - t0, self.fared[1] + self.left[n - 1]]
                if self.left:
                    self.left[n - 1] = 0.0
                self.on_result(label, doc)
        except KeyboardInterrupt as e:
            status, self.stopped_by = rundir.exit_status(e), rundir.cause(e)
        except results.RecordError as e:
            self.stopped_by = str(e)
            raise results.RecordError(f"{e}; the run stopped there, the {len(self.docs)} runs recorded "
                                      f"before it are kept in {self.out}") from None
        finally:
            self.close()
        return status

    def estimate(self, evidence, s: Scenario, impl: str, missing=frozenset(), kept=()) -> plan.Estimate:
        """The time plan's prediction for one run of this matrix."""
        if (s.name, impl) in kept:
            return plan.Estimate(0.0, "kept")
        if IMPLEMENTATIONS[impl].framework in missing:
            return plan.Estimate(0.0, "not installed")
        timed = apply_profile(s, self.st.profile, self.st.time_steps)
        return plan.predict(evidence, timed, impl, self.st.warmup + self.st.steps, self.st.timeout_s,
                            stop=self.st.stop, warmup=self.st.warmup)

    def clock(self, run_s: float) -> dict:
        """The matrix's elapsed time and ETA, the current run ``run_s`` seconds in: what
        the plan leaves, scaled by how the runs done so far fared against it (the plan
        may come from another machine)."""
        if not self.left:
            return {"matrix_s": time.monotonic() - self.started, "eta_s": None}
        pace = self.fared[0] / self.fared[1] if self.fared[1] > 0 else 1.0
        current = next((x for x in self.left if x > 0), 0.0)
        eta = pace * (sum(self.left) - current) + max(pace * current - run_s, 0.0)
        return {"matrix_s": time.monotonic() - self.started, "eta_s": eta}

    def settings_meta(self) -> dict:
        """The run-wide settings in meta.json: those a resumed run must share (``rundir.RESUME_KEYS``)."""
        st = self.st
        return {"profile": st.profile.name, "mode": st.mode, "threads": st.threads, "flush_denormal": st.flush_denormal,
                "device": st.device, "warmup": st.warmup, "steps": st.steps, "stop": st.stop,
                "time_steps": st.time_steps, "verify": st.verify}

    def new_meta(self, scenarios: list[Scenario], impls: list[str], argv: list[str]) -> dict:
        """This run's meta.json, saying "running"."""
        st = self.st
        return {
            "schema": results.META_SCHEMA, "run_id": self.run_id, **self.settings_meta(),
            "state": "running", "started": now(), "finished": None, "interrupted": False,
            "argv": list(argv), "machine": machine.machine(), "git": machine.git_revision(), "rnnbench": __version__,
            "timeout_s": st.timeout_s, "scenarios": [s.name for s in scenarios], "impls": list(impls),
            "compile_cache": compile_cache(st.profile.shared_cache) or "fresh per worker",
            "workers": "forked from a fork server per framework that preloads it" if st.profile.fork_server
                       else "a fresh process each",
            "gemm": {"gflops": None, "threads": st.threads,
                     "error": "not measured" if st.mode == "bench" else "verify only"},
        }

    def open(self, scenarios: list[Scenario], impls: list[str], argv: list[str]) -> dict:
        """Make the results directory this run's, with meta.json saying "running".
        Returns the runs kept from the run it resumes: {(scenario, impl): document}."""
        meta = self.new_meta(scenarios, impls, argv)
        kept = {}
        if self.st.resume and rundir.holds_run(self.out):
            kept, notices = self.reopen(meta, scenarios, impls, argv)
        else:
            self.lock, notices = rundir.take(self.out, argv, meta)
            if self.st.resume:
                notices.append(f"nothing to resume in {self.out}: a new run starts there")
        self.meta = meta
        for line in notices:
            self.progress.result(line)
        return kept

    def sizes(self, scenario: Scenario, impl: str) -> dict:
        """The sizes a run of this matrix has (as its document's ``shape``)."""
        return self.job(scenario, impl, Path(os.devnull)).sizes()

    def kept_runs(self, docs: list[dict], scenarios: list[Scenario], impls: list[str]) -> dict:
        """The documents of ``docs`` that this matrix would repeat as they are (``reusable``)."""
        planned = {(s.name, i): self.sizes(s, i) for s in scenarios for i in impls}
        return {(d["scenario"], d["impl"]): d for d in docs
                if (d["scenario"], d["impl"]) in planned and reusable(d, planned[(d["scenario"], d["impl"])])}

    def reopen(self, meta: dict, scenarios: list[Scenario], impls: list[str], argv: list[str]) -> tuple[dict, list]:
        """Continue the run in the results directory (``resume``): keep its documents,
        move the finished runs of this matrix that would not be repeated as they are (the
        source or a framework changed) to an archive directory of their own, and let
        the rest (failed, timed out, interrupted) be replaced as they are run again."""
        with rundir.deferred_signals():
            self.lock, old, docs, notices = rundir.reopen(self.out, argv, meta)
            try:
                kept = self.kept_runs(docs, scenarios, impls)
                planned = {(s.name, i) for s in scenarios for i in impls}
                stale = [d for d in docs if (d["scenario"], d["impl"]) in planned - kept.keys() and finished(d)]
                if stale:
                    dest = rundir.set_aside(self.out, old, stale)
                    notices.append(f"{len(stale)} finished run(s) whose sizes, source or framework versions changed "
                                   f"moved to {dest}; they run again")
                for directory in (self.out, self.out / "runs"):
                    results.remove_temp_files(directory)
                for sub in ("runs", "logs"):
                    (self.out / sub).mkdir(exist_ok=True)
                meta.update(resumed_from=[*old.get("resumed_from", []), old.get("run_id")],
                            gemm=old.get("gemm") or meta["gemm"],
                            scenarios=list(dict.fromkeys([*old.get("scenarios", []), *meta["scenarios"]])),
                            impls=list(dict.fromkeys([*old.get("impls", []), *meta["impls"]])))
                self.docs = results.in_order([d for d in docs if not any(d is x for x in stale)],
                                             meta["scenarios"], meta["impls"])
                results.write_json(self.out / "meta.json", meta)
                results.write_exports(self.out, self.docs)
            except BaseException as e:
                self.lock.release()
                self.lock = None
                if isinstance(e, OSError):
                    raise results.RecordError(f"cannot resume in {self.out}: {e.strerror or e}") from None
                raise
        notices.append(f"resuming {self.out}: {len(kept)} of {len(planned)} runs kept, {len(planned) - len(kept)} to run")
        return kept, notices

    def close(self) -> None:
        """Stop the fork servers, say in meta.json how the run ended, release the lock. A
        run stopped once every run was recorded has finished all the same."""
        with rundir.deferred_signals():
            self.launcher.close()
            if self.lock is None:
                return
            done = sum(d["status"] != "interrupted" for d in self.docs)
            stopped = bool(self.stopped_by) and done < len(self.meta["scenarios"]) * len(self.meta["impls"])
            self.meta.update(state="interrupted" if stopped else "finished", finished=now(), interrupted=stopped,
                             stopped_by=self.stopped_by if stopped else None)
            try:
                results.write_json(self.out / "meta.json", self.meta)
            except OSError:
                pass  # a full disk: meta.json still says "running", which the next run reads as interrupted
            self.lock.release()
            self.lock = None

    def record(self, doc: dict) -> dict:
        """Record a run's document, in place of an earlier one of the same run (resume)."""
        doc = results.strict(doc)
        same = [i for i, d in enumerate(self.docs) if (d["scenario"], d["impl"]) == (doc["scenario"], doc["impl"])]
        docs = self.docs[:same[0]] + [doc] + self.docs[same[0] + 1:] if same else self.docs + [doc]
        with rundir.deferred_signals():
            results.record(self.out, doc, docs, self.docs[same[0]] if same else None)
            self.docs = docs
        return doc

    def job(self, scenario: Scenario, impl: str, tmp: Path) -> Job:
        st = self.st
        verify = None
        if st.verify or st.mode == "verify":
            from .verify import VERIFY_EPS, VERIFY_LR, verify_scenario

            verify = {"scenario": asdict(verify_scenario(scenario)), "lr": VERIFY_LR, "adam_eps": VERIFY_EPS}
        timed = apply_profile(scenario, st.profile, st.time_steps) if st.mode == "bench" else None
        return Job(mode=st.mode, impl=impl, scenario=timed and asdict(timed), warmup=st.warmup, steps=st.steps,
                   threads=st.threads, flush_denormal=st.flush_denormal, device=st.device, verify=verify,
                   result=str(tmp / "result.json"), progress=str(tmp / "progress.jsonl"),
                   stop=st.stop if st.mode == "bench" else None)

    def skip(self, scenario: Scenario, impl: str, reason: str) -> dict:
        job = self.job(scenario, impl, Path(os.devnull))  # for no worker: its files are never written
        return self.record(run_document(job, self.info, Outcome("not started", reason=reason)))

    def run_one(self, scenario: Scenario, impl: str) -> dict:
        """Run one worker and record what came of it, with the load average around it."""
        tmp = Path(tempfile.mkdtemp(prefix="rnnbench-"))
        try:
            job = self.job(scenario, impl, tmp)
            job.dump(str(tmp / "job.json"))
            outcome, load = self.work(job, tmp)
            return self.record({**run_document(job, self.info, outcome), **load})
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def work(self, job: Job, tmp: Path) -> tuple[Outcome, dict]:
        """Start the job's worker and wait for it: how it ended and what it handed back,
        and the load averages before and after it (``load_before``, ``load_after``)."""
        log = self.out / "logs" / f"{job.sizes()['name']}__{job.impl}.log"
        cache = compile_cache(self.st.profile.shared_cache) or str(tmp / "cache")
        env = {**os.environ, **thread_env(job.threads), **cache_env(cache)}
        load = {"load_before": load_average()}
        warning = busy_warning(load["load_before"][0], self.own_load.now(), job.threads)
        proc, t0 = None, time.perf_counter()
        try:
            proc = self.launcher.start(IMPLEMENTATIONS[job.impl].framework, [*self.st.worker, str(tmp / "job.json")],
                                       log, env)
            ended = self.wait(proc, job, t0, warning)
        except OSError as e:
            return Outcome("exited", error=f"could not start the worker: {e}"), load
        except KeyboardInterrupt as e:
            with rundir.deferred_signals():
                if proc is not None:
                    proc.kill(INTERRUPT_GRACE_S)
                self.record({**run_document(job, self.info, Outcome(
                    "interrupted", reason=f"interrupted by {rundir.cause(e)}", progress=read_progress(job.progress),
                    wall_s=time.perf_counter() - t0, worker=proc.how if proc else "", stderr_tail=tail(log))), **load})
            raise
        wall_s = time.perf_counter() - t0
        proc.kill()  # anything the worker left running (compile worker pools)
        self.own_load.ran(job.threads, wall_s)
        load["load_after"] = load_average()
        result, error = read_result(job.result)
        return Outcome(ended, proc.returncode, result, error, read_progress(job.progress), wall_s=wall_s,
                       worker=proc.how, stderr_tail=tail(log)), load

    def wait(self, proc, job: Job, t0: float, warning: str | None = None) -> str:
        while True:
            try:
                proc.wait(timeout=0.5)
                return "exited"
            except subprocess.TimeoutExpired:
                pass
            elapsed = time.perf_counter() - t0
            self.progress(None, phase=phase(job), run_s=elapsed, warning=warning, **self.clock(elapsed))
            if elapsed > self.st.timeout_s:
                proc.kill()
                return "timeout"


def phase(job: Job) -> str:
    """Where a running worker is, from its progress file: none yet while it imports its
    framework and builds the model; empty while the first step runs (compiles, mostly);
    then its steps; all of them reported, the verification step (or its exit)."""
    if job.mode == "verify":
        return "import, build, verify"
    if not os.path.exists(job.progress):
        return "import, build"
    steps = read_progress(job.progress)
    if not steps:
        return "first step (compile)"
    if len(steps) >= job.warmup + job.steps:
        return "verify" if job.verify else "finishing"
    last = steps[-1]
    if last["phase"] == "warmup":
        # an adaptive warm-up may run past its count; a precision rule may stop early
        return f"warm-up step {last['step'] + 1}" + ("" if job.stop else f"/{job.warmup}")
    return f"measure step {last['step'] + 1}/" + (f"\u2264{job.steps}" if job.stop else f"{job.steps}")


def read_result(path: str) -> tuple[Result | None, str]:
    try:
        return Result.load(path, "result"), ""
    except FileNotFoundError:
        return None, "no result file"
    except (OSError, ValueError) as e:  # ProtocolError is a ValueError
        return None, f"unreadable {e}"


def tail(path: Path, lines: int = STDERR_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
