"""A stand-in for ``rnnbench.worker`` that misbehaves on purpose: ``fake_worker.py MODE JOB``.

It reads the job and writes its result through ``rnnbench.protocol``, as a worker must
(with the framework versions and source hash a real worker records: --resume compares them):
``ok`` (and ``env``, ``stray``, ``killparent``, ``nan``, ``slow``) hands back warmup +
steps step records; the others crash, hang, or write something that is not a result.
``slow`` takes ``$FAKE_STEP_S`` seconds a step (default 0.2), reporting each as it ends.
"""

import json
import os
import resource
import subprocess
import sys
import time

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
    phases = ["warmup"] * job.warmup + ["measure"] * job.steps
    steps = []
    with open(job.progress, "w") as progress:
        for i, phase in enumerate(phases):
            n = i if phase == "warmup" else i - job.warmup
            runtime = 0.5 if phase == "warmup" else 0.1 + 0.001 * n
            loss = float("nan") if mode == "nan" and i == 1 else 3.0 - 0.1 * i
            if mode == "slow":
                time.sleep(float(os.environ.get("FAKE_STEP_S", "0.2")))
            steps.append(step_record(phase, n, runtime, loss))
            progress.write(json.dumps(steps[-1]) + "\n")
            progress.flush()
    verify = {"skipped": "a fake worker has no weights"} if job.verify else None
    Result(status="ok", reason="", runtime={"device": "cpu", "device_name": "cpu", "threads": 1, "flush_denormal": "on"},
           versions=framework_versions(IMPLEMENTATIONS[job.impl].framework), source_sha256=source_hash(job.impl),
           parameters=42, notes=notes, steps=steps if job.mode == "bench" else None,
           loop_s=sum(s["runtime_s"] for s in steps[job.warmup:]) * 1.001 if job.mode == "bench" else None,
           peak_rss_mib=10.0, verify=verify).dump(job.result)
