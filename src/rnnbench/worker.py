"""One (scenario, implementation) in its own process: ``python -m rnnbench.worker JOB``.

``JOB`` is a job file (``rnnbench.protocol.Job``) written by the runner. The worker applies
the framework's runtime settings, builds the implementation and, in "bench" mode, times
each training step (or, if the job says ``timed: "forward"``, each forward pass and loss:
``Trainer.forward``) with the loss fetched (the synchronization point); then, if the job
asks for it (always in "verify" mode), it runs one training step at the verification size
and hands back its loss and weights. It writes a ``rnnbench.protocol.Result`` to
``job.result``; measured steps also go to ``job.progress`` (a step record per line, flushed
at most once a second) so that the runner can show progress and keep the steps of a run
that times out. How many steps it takes is the job's stop rule's call (rnnbench.stopping:
fixed counts, or warm-up until step times stop falling and measurement until the median
is precise enough), asked between steps. Statistics and checks are the runner's job.
"""

from __future__ import annotations

import importlib
import os
import resource
import sys
import time
import traceback

from . import stopping
from .protocol import Job, Result


def run(job: Job) -> Result:
    from .data import canonical_weights, make_batch
    from .frameworks import runtime
    from .impls import IMPLEMENTATIONS, framework_versions
    from .impls.base import Config, Unsupported
    from .scenarios import Scenario
    from .sources import source_hash

    impl = IMPLEMENTATIONS[job.impl]
    out = Result(status="ok", reason="")
    t_start = time.perf_counter()
    rt = runtime(impl.framework)
    out.runtime = rt.setup(impl.framework, job.threads, job.flush_denormal, job.device)
    out.versions = framework_versions(impl.framework)
    module_name, func = impl.target.split(":")
    module = importlib.import_module(module_name)
    build = getattr(module, func)
    out.source_sha256 = source_hash(job.impl)  # what --resume compares (rnnbench.sources)
    out.import_s = time.perf_counter() - t_start

    def config(s: Scenario, **hyper) -> Config:
        hyper = {"adam_eps": rt.adam_eps, **hyper}
        return Config(s, make_batch(s), canonical_weights(s), device=out.runtime["device"], **hyper)

    if job.mode == "bench":
        s = Scenario(**job.scenario)
        try:
            t0 = time.perf_counter()
            trainer = build(config(s))
            out.build_s = time.perf_counter() - t0
        except Unsupported as e:
            out.status, out.reason = "skipped", str(e)
            return out
        out.parameters = trainer.parameters
        out.notes = trainer.notes
        timed = trainer.forward if job.timed == "forward" else trainer.step
        if timed is None:
            out.status, out.reason = "skipped", "this script has no forward-only step (Trainer.forward)"
            return out
        stopping.run_steps(timed, job, out)
        out.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out.peak_gpu_mib = rt.gpu_peak_mb()
        del trainer
    if job.verify is not None:
        hyper = {k: job.verify[k] for k in ("lr", "adam_eps")}
        out.verify = verify_step(build, config, Scenario(**job.verify["scenario"]), hyper, job.timed == "forward")
    return out


def verify_step(build, config, s, hyper: dict, forward: bool = False) -> dict:
    """One training step at the verification size: its loss and the updated weights; with
    ``forward``, first the forward step's loss from the same weights."""
    from dataclasses import asdict

    import numpy as np

    from .impls.base import Unsupported

    try:
        trainer = build(config(s, **hyper))
    except Unsupported as e:
        return {"skipped": str(e)}
    checked = {"forward_loss": float(trainer.forward())} if forward else {}
    loss = trainer.step()
    weights = {k: np.asarray(v, dtype=np.float64).tolist() for k, v in trainer.weights().items()}
    return {"scenario": asdict(s), "loss": float(loss), "weights": weights, "notes": trainer.notes, **checked}


def main(argv=None) -> int:
    """Run the job and write its result, whatever happens: a failure (an import error
    included) becomes a "failed" result with the exception as reason, its traceback in
    the log. A job that cannot be read has nowhere to put a result: exit status 2."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        job = Job.load(argv[0])
    except (OSError, ValueError, IndexError) as e:
        print(f"rnnbench.worker: cannot read the job: {e}", file=sys.stderr)
        return 2
    try:
        run(job).dump(job.result)
    except BaseException as e:  # report every failure, including an import error
        traceback.print_exc()
        Result(status="failed", reason=f"{type(e).__name__}: {e}".splitlines()[0][:300]).dump(job.result)
    return 0


if __name__ == "__main__":
    code = main()
    # Skip the interpreter's teardown: unloading torch or TensorFlow takes 0.5-0.7 s per
    # worker and nothing is left to save (the result file is written and closed).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
