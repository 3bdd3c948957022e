"""A stand-in for ``rnnbench.worker`` that misbehaves on purpose: ``fake_worker.py MODE JOB``.

It reads the job and writes its result through ``rnnbench.protocol``, as a worker must
(with the framework versions and source hash a real worker records: --resume compares them):
``ok`` (and ``env``, ``stray``, ``killparent``, ``nan``, ``slow``) hands back the step
records its stop rule asks for (``rnnbench.stopping``: warmup + steps, or as many as the
precision needs), with made-up times: warm-up 0.5 s falling to 0.2 s, measured steps
0.100 to 0.104 s; ``verified`` (``wrong``) hands back the reference's own verification
step (its update half as large again) and counts it in ``$RNNBENCH_CACHE_DIR/verified.log``;
the others crash, hang, or write something that is not a result.
``slow`` takes ``$FAKE_STEP_S`` seconds a step (default 0.2), reporting each as it ends.
"""

import json
import os
import resource
import subprocess
import sys
import time

from rnnbench import stopping
from rnnbench.impls import IMPLEMENTATIONS, framework_versions
from rnnbench.protocol import Job, Result, step_record
from rnnbench.sources import source_hash

# A file size limit set on the runner (to test a full disk) is not this worker's concern.
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.getrlimit(resource.RLIMIT_FSIZE)[1],) * 2)
mode, job = sys.argv[1], Job.load(sys.argv[2])
if mode == "crash":
    print("fake worker: about to crash", file=sys.stderr)
    sys.exit(3)
elif mode == "exitmsg":
    sys.exit("fake worker: gave up")
elif mode == "segfault":
    import signal

    os.kill(os.getpid(), signal.SIGSEGV)
elif mode == "hang":
    with open(job.progress, "w") as f:
        f.write('{"phase": "warmup", "step": 0, "runtime_s": 0.01, "loss": 1.0}\n{"phase": "meas')
    time.sleep(600)
elif mode == "garbage":
    open(job.result, "w").write("this is not json {")
elif mode == "oldversion":
    open(job.result, "w").write('{"version": "rnnbench.result/1", "status": "ok", "reason": ""}')
elif mode == "fewsteps":  # says ok but hands back one step less than asked for
    Result(status="ok", reason="", parameters=1, loop_s=0.1,
           steps=[step_record("measure", 0, 0.1, 1.0)] * (job.warmup + job.steps - 1)).dump(job.result)
else:
    notes = {}
    if mode == "env":  # hand back what the runner put in the environment, then leave a mark
        notes = {k: os.environ.get(k, "") for k in ("RNNBENCH_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR", "OMP_NUM_THREADS",
                                                     "FAKE_MARK")}
        os.environ["FAKE_MARK"] = "left by an earlier worker"
    if mode == "stray":  # leave a process behind, as a compile worker pool might
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        notes = {"stray_pid": str(child.pid)}
    if mode == "killparent":  # take a fork server down with this worker
        import signal

        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(0.5)  # and finish after it: the runner must still wait for this worker
    warmup, measure = stopping.rules(job.warmup, job.steps, job.stop)
    steps = []
    with open(job.progress, "w") as progress:
        for phase, rule in (("warmup", warmup), ("measure", measure)):
            while job.mode == "bench" and not rule.done:
                n = len(rule.times)
                runtime = max(0.5 / (n + 1), 0.2) if phase == "warmup" else 0.1 + 0.001 * (n % 5)
                loss = float("nan") if mode == "nan" and len(steps) == 1 else 3.0 - 0.1 * len(steps)
                if mode == "slow":
                    time.sleep(float(os.environ.get("FAKE_STEP_S", "0.2")))
                steps.append(step_record(phase, n, runtime, loss))
                rule.add(runtime)
                progress.write(json.dumps(steps[-1]) + "\n")
                progress.flush()
    verify = {"skipped": "a fake worker has no weights"} if job.verify else None
    if job.verify and mode in ("verified", "wrong"):  # the reference's own step: it passes (or, off, fails)
        from rnnbench.data import canonical_weights, make_batch
        from rnnbench.reference import train_step
        from rnnbench.scenarios import Scenario

        s = Scenario(**job.verify["scenario"])
        weights = canonical_weights(s)
        loss, _, new = train_step(s, make_batch(s), weights, lr=job.verify["lr"], eps=job.verify["adam_eps"])
        scale = 1.5 if mode == "wrong" else 1.0
        verify = {"scenario": job.verify["scenario"], "loss": float(loss),
                  "weights": {k: (weights[k] + scale * (v - weights[k])).tolist() for k, v in new.items()}}
        os.makedirs(os.environ["RNNBENCH_CACHE_DIR"], exist_ok=True)
        with open(os.path.join(os.environ["RNNBENCH_CACHE_DIR"], "verified.log"), "a") as log:
            log.write(job.impl + "\n")  # how many verification steps ran
    bench = job.mode == "bench"
    Result(status="ok", reason="", runtime={"device": "cpu", "device_name": "cpu", "threads": 1, "flush_denormal": "on"},
           versions=framework_versions(IMPLEMENTATIONS[job.impl].framework), source_sha256=source_hash(job.impl),
           parameters=42, notes=notes, steps=steps if bench else None,
           loop_s=measure.total_s * 1.001 if bench else None, rule_s=0.0 if bench else None,
           warmup_reason=warmup.reason if bench else None, stop_reason=measure.reason if bench else None,
           peak_rss_mib=10.0, verify=verify).dump(job.result)
