"""The worker for the 2017 stack: ``<legacy python> worker.py JOB`` (Python 3.6).

It speaks the job/result protocol of today's worker (rnnbench.worker) and runs the same
loop: the runtime settings (rnnbench.legacy.runtime), the implementation's build, the
warm-up and measured steps timed by rnnbench.stopping with the loss fetched, then one
verification step whose loss and weights go back in the result. It cannot import today's
package (Python 3.6, NumPy 1.13), so it reads the batch and the canonical weights from
the job's ``inputs`` file (written by the runner: rnnbench.legacy.host) and imports only
rnnbench.protocol, rnnbench.stopping and this package.
"""

import importlib
import os
import resource
import sys
import time
import traceback

# This checkout's src/ (not the script's own folder, whose keras2.py would shadow keras).
sys.path[0] = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rnnbench.protocol import Job, Result  # noqa: E402  (standard library only: a broken venv still reports)


def versions(framework):
    import pkg_resources

    from rnnbench.legacy import FRAMEWORKS

    out = {}
    for dist in FRAMEWORKS[framework][0]:
        try:
            out[dist] = pkg_resources.get_distribution(dist).version
        except pkg_resources.DistributionNotFound:
            pass
    return out


def config(inputs, part, scenario, threads, lr, adam_eps):
    """The Config of the ``part`` ("bench" or "verify") of the inputs file."""
    from rnnbench.legacy.base import Batch, Config, Scenario
    prefix = part + "."
    batch = Batch(*(inputs[prefix + k] for k in Batch._fields))
    weights = {k[len(prefix) + 2:]: inputs[k] for k in inputs.files if k.startswith(prefix + "w.")}
    return Config(Scenario(**scenario), batch, weights, threads, lr, adam_eps)


def run(job):
    import numpy as np

    from rnnbench import stopping
    from rnnbench.legacy import IMPLEMENTATIONS, base, runtime, source_hash

    framework, target = next((fw, t) for name, fw, t, _ in IMPLEMENTATIONS if name == job.impl)
    out = Result(status="ok", reason="")
    t_start = time.perf_counter()
    out.runtime = runtime.setup(framework, job.threads, job.flush_denormal, job.device)
    out.versions = versions(framework)
    module_name, func = target.split(":")
    build = getattr(importlib.import_module("rnnbench.legacy." + module_name), func)
    out.source_sha256 = source_hash(job.impl)
    out.import_s = time.perf_counter() - t_start
    inputs = np.load(job.inputs)

    if job.mode == "bench":
        try:
            t0 = time.perf_counter()
            trainer = build(config(inputs, "bench", job.scenario, job.threads, 1e-3, runtime.ADAM_EPS))
            out.build_s = time.perf_counter() - t0
        except base.Unsupported as e:
            out.status, out.reason = "skipped", str(e)
            return out
        out.parameters, out.notes = int(trainer.parameters), trainer.notes  # NumPy integers too
        if job.timed == "forward":
            out.status, out.reason = "skipped", "the 2017 scripts time the training step only (no forward-only step)"
            return out
        stopping.run_steps(trainer.step, job, out)
        out.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        del trainer
    if job.verify is not None:
        v = job.verify
        try:
            trainer = build(config(inputs, "verify", v["scenario"], job.threads, v["lr"], v["adam_eps"]))
        except base.Unsupported as e:
            out.verify = {"skipped": str(e)}
            return out
        loss = trainer.step()
        weights = dict((k, np.asarray(w, dtype=np.float64).tolist()) for k, w in trainer.weights().items())
        out.verify = {"scenario": v["scenario"], "loss": float(loss), "weights": weights, "notes": trainer.notes}
    return out


def main(argv):
    """As rnnbench.worker.main: every failure becomes a "failed" result; exit status 2 if
    the job cannot be read."""
    try:
        job = Job.load(argv[0])
    except (OSError, ValueError, IndexError) as e:
        print("rnnbench.legacy.worker: cannot read the job: {}".format(e), file=sys.stderr)
        return 2
    try:
        run(job).dump(job.result)
    except BaseException as e:  # report every failure, including an import error
        traceback.print_exc()
        reason = "{}: {}".format(type(e).__name__, e).splitlines()[0][:300]
        Result(status="failed", reason=reason).dump(job.result)
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip unloading TensorFlow or torch: the result is written
