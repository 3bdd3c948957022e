"""Where a row's cost grows faster than the time steps: one implementation at several T.

    python scripts/growth_profile.py IMPL SCENARIO --time-steps 100 400 [--steps 3] [--threads 2]

Builds IMPL on SCENARIO at each T (in this process, with the worker's runtime settings),
runs one warm-up step, then times ``--steps`` training steps and prints the median and how
much it grew against the first T (T grows by the ratio printed: linear growth matches it).

* PyTorch frameworks (torch, keras-torch): the timed steps run under ``torch.profiler``; the
  ops with the most self CPU time are listed per T, with their growth, so a quadratic
  one stands out (e.g. the backward of indexing one step out of a (T, B, H) tensor, which
  allocates a gradient of the whole tensor at every step).
* tf-xla: XLA dumps the optimized program of every T (``--xla_dump_to``); for the train
  step's module the script counts, inside while-loop bodies, the instructions whose result
  is a buffer with T in its shape (a whole-sequence buffer written or copied at every
  iteration: T iterations of O(T) work).

It takes timings: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path


def hlo_whole_sequence_ops(modules: list[Path], T: int) -> collections.Counter:
    """Opcode -> count of instructions in while bodies of the largest of ``modules`` (XLA's
    optimized programs) whose result has a dimension of size T (the time axis)."""
    if not modules:
        return collections.Counter()
    text = max(modules, key=lambda p: p.stat().st_size).read_text()
    bodies = set(re.findall(r"body=(%?[\w.\-]+)", text))
    counts: collections.Counter = collections.Counter()
    current = None
    for line in text.splitlines():
        head = re.match(r"^(?:ENTRY )?(%?[\w.\-]+) \(", line)
        if head:
            current = head.group(1)
            continue
        if current not in bodies and ("%" + current if current else None) not in bodies:
            continue
        m = re.match(r"\s*(?:ROOT )?%?[\w.\-]+ = (\w+)\[([\d,]*)\]\{?[^ ]* (\w[\w-]*)\(", line)
        if m and str(T) in m.group(2).split(","):
            counts[m.group(3)] += 1
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("impl")
    parser.add_argument("scenario")
    parser.add_argument("--time-steps", type=int, nargs="+", required=True)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per T (default 3)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=8, help="ops listed per T (PyTorch)")
    args = parser.parse_args(argv)

    from rnnbench.data import canonical_weights, make_batch
    from rnnbench.frameworks import runtime
    from rnnbench.impls import IMPLEMENTATIONS
    from rnnbench.impls.base import Config
    from rnnbench.scenarios import SCENARIOS

    impl = IMPLEMENTATIONS[args.impl]
    if args.impl == "tf-xla":  # read once, when TensorFlow starts XLA: set before the import
        dump_root = Path(tempfile.mkdtemp(prefix="xla-dump-"))
        os.environ["XLA_FLAGS"] = f"--xla_dump_to={dump_root}"
    seen: set[Path] = set()
    rt = runtime(impl.framework)
    device = rt.setup(impl.framework, args.threads, True, "cpu")["device"]
    module, func = impl.target.split(":")
    build = getattr(__import__(module, fromlist=[func]), func)
    profiler = None
    if impl.framework in ("torch", "keras-torch"):
        import torch.profiler as profiler

    first = None
    for T in args.time_steps:
        s = SCENARIOS[args.scenario].resized(time_steps=T)
        trainer = build(Config(s, make_batch(s), canonical_weights(s), device=device, adam_eps=rt.adam_eps))
        trainer.step()  # compile, first-call work
        times = []
        prof = profiler.profile(activities=[profiler.ProfilerActivity.CPU]) if profiler else None
        if prof:
            prof.__enter__()
        for _ in range(args.steps):
            t0 = time.perf_counter()
            trainer.step()
            times.append(time.perf_counter() - t0)
        if prof:
            prof.__exit__(None, None, None)
        median = statistics.median(times)
        first = first or (T, median)
        print(f"T = {T}: median {median * 1e3:.1f} ms/step; against T = {first[0]}: "
              f"time x{median / first[1]:.1f} for T x{T / first[0]:g}")
        if prof:
            rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:args.top]
            for e in rows:
                print(f"    {e.key:<40} {e.self_cpu_time_total / 1e3 / args.steps:10.1f} ms/step self, "
                      f"{e.count // args.steps} calls/step")
        if args.impl == "tf-xla":  # the programs XLA compiled for this T
            new = set(dump_root.glob("*after_optimizations.txt")) - seen
            seen |= new
            ops = hlo_whole_sequence_ops(sorted(new), T)
            print(f"    inside the while loops, instructions producing a buffer with {T} in its shape: "
                  + (", ".join(f"{op} {n}" for op, n in ops.most_common()) or "none"))
        del trainer
    print(f"XLA dumps: {dump_root}" if args.impl == "tf-xla" else "", end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
