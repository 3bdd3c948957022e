"""A fork server: one process imports a framework once, then forks a fresh worker for
each (scenario, implementation). Used by the smoke and quick profiles, where the framework's
import (about 4 s for torch and torch._dynamo, which ``torch.optim`` loads, on the 2-core Intel
development machine; on the 2-core AMD one 2.5 s, TensorFlow 3.5 s, JAX with Flax and Optax
0.7 s) would otherwise be much of each worker's time (``Framework.preload`` says what each
framework's server imports, ``cpu_preload`` what it adds where the device is sure to be the CPU). Every job still runs in
its own process and process group, forked from the same just-imported state, so nothing of
one job reaches the next; the runner times it out and kills it exactly as a spawned worker.
The server only imports: the worker sets its threads, denormal flag and device after the
fork, as a spawned one does (one exception: keras-torch's server, where the device is sure to
be the CPU, imports Keras with its torch device fixed to the CPU, which the worker checks), so no thread pool is inherited (``fork`` copies only the calling
thread); what its modules read from the environment at import (OMP_NUM_THREADS) is the same
for every job of a run.

    python -m rnnbench.forkserver MODULE...

It imports the modules, answers ``{"ready": true}``, then reads one JSON request per line
on stdin: ``{"argv": [...], "log": PATH, "env": {...}}``, where argv is what would follow
``python`` on a command line (``-m MODULE ARGS...`` or ``SCRIPT ARGS...``). It answers
``{"pid": N}`` once the child runs, and ``{"pid": N, "returncode": R}`` when it has ended
(R < 0: killed by signal -R, as in ``subprocess``). It exits when stdin closes.
"""

from __future__ import annotations

import importlib
import json
import os
import runpy
import sys
import traceback


def _child(req: dict) -> None:
    code = 1
    try:
        os.setsid()
        log = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.environ.update(req["env"])
        argv = req["argv"]
        if argv[0] == "-m":
            sys.argv = [argv[1], *argv[2:]]
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = list(argv)
            runpy.run_path(argv[0], run_name="__main__")
        code = 0
    except SystemExit as e:  # as the interpreter reports it
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _say(doc: dict) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def main(modules: list[str]) -> None:
    for name in modules:
        importlib.import_module(name)
    _say({"ready": True})
    for line in sys.stdin:
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(req)
        _say({"pid": pid})
        _, status = os.waitpid(pid, 0)
        _say({"pid": pid, "returncode": os.waitstatus_to_exitcode(status)})


if __name__ == "__main__":
    main(sys.argv[1:])
