"""A stand-in for ``rnnbench.worker`` that misbehaves on purpose: ``fake_worker.py MODE JOB``."""

import json
import os
import subprocess
import sys
import time

mode, job_path = sys.argv[1], sys.argv[2]
job = json.load(open(job_path))
if mode == "crash":
    print("fake worker: about to crash", file=sys.stderr)
    sys.exit(3)
elif mode == "exitmsg":
    sys.exit("fake worker: gave up")
elif mode == "segfault":
    import signal

    os.kill(os.getpid(), signal.SIGSEGV)
elif mode == "hang":
    with open(job["progress"], "w") as f:
        f.write(json.dumps({"phase": "warmup", "step": 0, "runtime_s": 0.01, "loss": 1.0}) + "\n")
    time.sleep(600)
elif mode == "garbage":
    open(job["result"], "w").write("this is not json {")
elif mode in ("ok", "env", "stray", "killparent"):
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
    steps = [{"phase": "warmup", "step": 0, "runtime_s": 0.5, "loss": 3.0}] + [
        {"phase": "measure", "step": i, "runtime_s": 0.1 + 0.001 * i, "loss": 2.9 - 0.1 * i} for i in range(job["steps"])
    ]
    json.dump({"status": "ok", "reason": "", "runtime": {"device": "cpu", "device_name": "cpu", "threads": 1,
               "flush_denormal": "on"}, "versions": {"fake": "1.0"}, "parameters": 42, "notes": notes,
               "steps": steps, "loop_s": sum(s["runtime_s"] for s in steps[1:]) * 1.001, "peak_rss_mb": 10.0,
               "peak_gpu_mb": None}, open(job["result"], "w"))
