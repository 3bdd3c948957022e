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
current code, frameworks and settings would repeat are kept: ``rnnbench.resume``).
meta.json says what the run is doing: "running", then
"finished", or "interrupted" with ``stopped_by``. Ctrl-C or SIGTERM at any moment stops
the worker, records its run as interrupted and ends the run as "interrupted"; every
finished run is kept. A write error (disk full, file too large, read-only file system)
stops the suite with RecordError: nothing more could be recorded, and what was recorded
before is complete.

The progress display hears each run's phase (``rnnbench.watch``) and the ETA
(``rnnbench.plan``); each run document records the load average before and after it.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path

from . import gemm, plan, results, resume, rundir, verdicts
from .assemble import Outcome, Run, combine, run_document
from .frameworks import FRAMEWORKS
from .impls import IMPLEMENTATIONS
from .launch import Launcher, cache_env, cache_files, cache_key, cache_record, read_result, tail, thread_env
from .protocol import Job, read_progress
from .scenarios import Scenario, apply_profile
from .settings import Settings, new_meta, now, settings_meta  # noqa: F401 (Settings: rnnbench.runner.Settings)
from .watch import OwnLoad, busy_warning, load_average, phase

INTERRUPT_GRACE_S = 1.0  # a stopped worker's time to end before SIGKILL: the user is waiting


class Quiet:
    """The progress display when nobody watches (``cli.Progress`` on a terminal).
    ``message``: a new run's label; ``status``: phase, run_s, matrix_s, eta_s, warning."""

    def __call__(self, message=None, **status):
        pass

    def result(self, line: str):
        pass


class Runner:
    """One run of a matrix into one results directory; ``docs`` are its records so far."""

    def __init__(self, settings: Settings, progress=None, on_result=None):
        self.st, self.out = settings, Path(settings.out)
        self.progress = progress or Quiet()
        self.on_result = on_result or (lambda label, doc: None)
        self.run_id = dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]
        self.info = Run(self.run_id, settings.profile.name, settings.timeout_s)
        self.docs: list[dict] = []
        self.parts: dict[tuple[str, str], list[dict]] = {}  # --processes: each run's processes' documents so far
        self.meta: dict = {}
        self.lock: rundir.Lock | None = None
        self.stopped_by: str | None = None  # what interrupted the run, if anything did
        self.launcher = Launcher(settings.profile.fork_server, settings.device)
        self.own_load = OwnLoad()
        self.eta = plan.Eta()

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
                warm = self.verdicts_kept(scenarios, impls, missing)
                once = [plan.estimate(self.st, evidence, s, i, missing, kept, warm=warm).seconds for s, i in todo]
                self.eta.left = once * (self.st.processes if self.st.mode == "bench" else 1)
            if self.st.mode == "bench" and len(kept) < len(todo):
                self.progress("measuring the GEMM rate")
                t0 = time.monotonic()
                self.meta["gemm"] = gemm.in_subprocess(self.st.threads, {**os.environ, **thread_env(self.st.threads)})
                self.own_load.ran(self.st.threads, time.monotonic() - t0)
                self.info.gemm_gflops = self.meta["gemm"].get("gflops")
                with rundir.deferred_signals():
                    results.write_json(self.out / "meta.json", self.meta)
            self.eta.started = time.monotonic()
            rounds = self.st.processes if self.st.mode == "bench" else 1
            for r in range(rounds):  # --processes K: each run's K processes, the matrix's interleaved
                for n, (s, impl) in enumerate(todo, 1):
                    key, k = (s.name, impl), r * len(todo) + n - 1
                    label = f"[{n}/{len(todo)}] {s.name} {impl}" + (f" (process {r + 1}/{rounds})" if rounds > 1 else "")
                    fw = IMPLEMENTATIONS[impl].framework
                    if r and (key in kept or self.parts.get(key, [{}])[-1].get("status") != "ok"):
                        continue  # kept, skipped, or a process of it failed: nothing more to measure
                    if key in kept:
                        doc = kept[key]
                        label += " (kept)"
                    elif fw in missing:
                        doc = self.skip(s, impl, f"framework {fw} is not installed ({FRAMEWORKS[fw].install_hint()})")
                    else:
                        self.progress(label, phase="starting", run_s=0.0, predicted_s=self.eta.predicted(k),
                                      **self.eta.clock(0.0))
                        t0 = time.monotonic()
                        doc = self.run_one(s, impl, process=r)
                        self.eta.took(k, time.monotonic() - t0)
                    self.eta.done(k)
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

    def verdicts_kept(self, scenarios: list[Scenario], impls: list[str], missing=frozenset()) -> set:
        """(scenario, impl) of the runs whose passed verification the compile cache keeps
        (rnnbench.verdicts): the same code, versions and check, so their compiles were made
        into that cache too. The time plan predicts them warm."""
        cache = self.st.compile_cache() if self.st.profile.keep_verdicts else None
        if not cache or not (Path(cache) / verdicts.DIR).is_dir():  # nothing kept: no key to compute
            return set()
        return {(s.name, i) for s in scenarios for i in impls if IMPLEMENTATIONS[i].framework not in missing
                and self.verdict(self.job(s, i, Path(os.devnull)))[2]}

    def verdict(self, job: Job) -> tuple[str | None, str | None, dict | None]:
        """Where a job's passed verification is kept (a profile that keeps verdicts, a
        shared cache), and what is kept there: (cache, key, kept verdict or None), or
        (None, None, None) (rnnbench.verdicts)."""
        keeps = job.verify and self.st.mode == "bench" and self.st.profile.keep_verdicts
        cache = self.st.compile_cache() if keeps else None
        if not cache:
            return None, None, None
        key = verdicts.key(job)
        return cache, key, verdicts.lookup(cache, key)

    def planned(self, scenarios: list[Scenario], impls: list[str]) -> dict:
        """(scenario, impl) -> the sizes each run of this matrix has (its document's ``shape``)."""
        return {(s.name, i): self.job(s, i, Path(os.devnull)).sizes() for s in scenarios for i in impls}

    def settings_meta(self) -> dict:
        return settings_meta(self.st)

    def open(self, scenarios: list[Scenario], impls: list[str], argv: list[str]) -> dict:
        """Make the results directory this run's, with meta.json saying "running".
        Returns the runs kept from the run it resumes: {(scenario, impl): document}."""
        meta = new_meta(self.st, self.run_id, scenarios, impls, argv)
        kept = {}
        # A Ctrl-C held back while the directory is taken fires only once the lock is
        # self.lock, so that close() releases it (a Ctrl-C at 0.0 s left it behind).
        with rundir.deferred_signals():
            if self.st.resume and rundir.holds_run(self.out):
                self.lock, self.docs, kept, notices = resume.reopen(self.out, argv, meta, self.planned(scenarios, impls))
            else:
                self.lock, notices = rundir.take(self.out, argv, meta)
                if self.st.resume:
                    notices.append(f"nothing to resume in {self.out}: a new run starts there")
            self.meta = meta
        for line in notices:
            self.progress.result(line)
        return kept

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
        """Record a run's document, in place of an earlier one of the same run (resume,
        and each new process of a run measured in several: ``assemble.combine``)."""
        if self.st.processes > 1 and self.st.mode == "bench" and doc["status"] != "skipped":
            parts = self.parts.setdefault((doc["scenario"], doc["impl"]), [])
            parts.append(doc)
            doc = combine(parts, self.st.processes)
        doc = results.strict(doc)
        same = [i for i, d in enumerate(self.docs) if (d["scenario"], d["impl"]) == (doc["scenario"], doc["impl"])]
        docs = self.docs[:same[0]] + [doc] + self.docs[same[0] + 1:] if same else self.docs + [doc]
        with rundir.deferred_signals():
            results.record(self.out, doc, docs, self.docs[same[0]] if same else None)
            self.docs = docs
        return doc

    def job(self, scenario: Scenario, impl: str, tmp: Path, first: bool = True) -> Job:
        """The worker's job; only the ``first`` of a run's processes verifies its step."""
        st = self.st
        verify = None
        if (st.verify and first) or st.mode == "verify":
            from .verify import VERIFY_EPS, VERIFY_LR, verify_scenario

            verify = {"scenario": asdict(verify_scenario(scenario)), "lr": VERIFY_LR, "adam_eps": VERIFY_EPS}
        sized = apply_profile(scenario, st.profile, st.time_steps) if st.mode == "bench" else None
        return Job(mode=st.mode, impl=impl, scenario=sized and asdict(sized), warmup=st.warmup, steps=st.steps,
                   threads=st.threads, flush_denormal=st.flush_denormal, device=st.device, verify=verify,
                   result=str(tmp / "result.json"), progress=str(tmp / "progress.jsonl"),
                   stop=st.stop if st.mode == "bench" else None, timed=st.timed if st.mode == "bench" else None)

    def skip(self, scenario: Scenario, impl: str, reason: str) -> dict:
        job = self.job(scenario, impl, Path(os.devnull))  # for no worker: its files are never written
        return self.record(run_document(job, self.info, Outcome("not started", reason=reason)))

    def run_one(self, scenario: Scenario, impl: str, process: int = 0) -> dict:
        """Run one worker (``process``: which of the run's processes, from 0) and record
        what came of it, with the load average around it."""
        tmp = Path(tempfile.mkdtemp(prefix="rnnbench-"))
        try:
            job = self.job(scenario, impl, tmp, first=not process)
            # A passed verification of the same code is kept: no second build (rnnbench.verdicts).
            cache, key, kept = self.verdict(job)
            if kept:
                job.verify = None
            if FRAMEWORKS[IMPLEMENTATIONS[impl].framework].legacy:  # it cannot make them: Python 3.6, NumPy 1.13
                from .legacy import host

                job.inputs = host.write_inputs(job, tmp / "inputs.npz")
            job.dump(str(tmp / "job.json"))
            outcome, around = self.work(job, tmp, f".p{process + 1}" if self.st.processes > 1 else "")
            doc = {**run_document(job, self.info, outcome), **around}
            if kept and doc["status"] == "ok":
                doc.update(kept)
            elif cache and not kept:
                verdicts.keep(cache, key, doc, self.run_id)
            return self.record(doc)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def work(self, job: Job, tmp: Path, suffix: str = "") -> tuple[Outcome, dict]:
        """Start the job's worker and wait for it: how it ended and what it handed back,
        and what was around it: the load averages before and after it (``load_before``,
        ``load_after``) and what its compile cache held (``cache_state``, ``cache``).
        Its log: logs/<scenario>__<impl><suffix>.log."""
        log = self.out / "logs" / f"{job.sizes()['name']}__{job.impl}{suffix}.log"
        cache = self.st.compile_cache() or str(tmp / "cache")
        env = {**os.environ, **thread_env(job.threads), **cache_env(cache)}
        around = {"load_before": load_average()}
        before = cache_files(cache)
        warning = busy_warning(around["load_before"][0], self.own_load.now(), job.threads)
        proc, t0 = None, time.perf_counter()
        try:
            proc = self.launcher.start(IMPLEMENTATIONS[job.impl].framework, [*self.st.worker, str(tmp / "job.json")],
                                       log, env)
            ended = self.wait(proc, job, t0, warning)
        except OSError as e:
            return Outcome("exited", error=f"could not start the worker: {e}"), around
        except KeyboardInterrupt as e:
            with rundir.deferred_signals():
                if proc is not None:
                    proc.kill(INTERRUPT_GRACE_S)
                self.record({**run_document(job, self.info, Outcome(
                    "interrupted", reason=f"interrupted by {rundir.cause(e)}", progress=read_progress(job.progress),
                    wall_s=time.perf_counter() - t0, worker=proc.how if proc else "", stderr_tail=tail(log))), **around})
            raise
        wall_s = time.perf_counter() - t0
        proc.kill()  # anything the worker left running (compile worker pools)
        self.own_load.ran(job.threads, wall_s)
        around["load_after"] = load_average()
        around.update(cache_record(cache, cache_key(job), before, cache_files(cache)))
        result, error = read_result(job.result)
        return Outcome(ended, proc.returncode, result, error, read_progress(job.progress), wall_s=wall_s,
                       worker=proc.how, stderr_tail=tail(log)), around

    def wait(self, proc, job: Job, t0: float, warning: str | None = None) -> str:
        while True:
            try:
                proc.wait(timeout=0.5)
                return "exited"
            except subprocess.TimeoutExpired:
                pass
            elapsed = time.perf_counter() - t0
            self.progress(None, phase=phase(job), run_s=elapsed, warning=warning, **self.eta.clock(elapsed))
            if elapsed > self.st.timeout_s:
                proc.kill()
                return "timeout"
