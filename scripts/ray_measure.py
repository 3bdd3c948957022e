"""What the Ray executor costs, and whether it changes a measurement.

    python scripts/ray_measure.py overhead DIR
        DIR: a results directory of `rnnbench run --executor ray` (a smoke matrix is
        enough). Per run, from the wall-clock marks each document holds under ``ray``:
        start  = worker_started - task_started (the task's start on the node; the first run
                 on a node also measures its GEMM rate, so it is left out),
        return = received - worker_ended (reading the result and log, and the transfer),
        gap    = this task_started - the previous task_returned on the same node (the
                 scheduler handing the node's one rnnbench unit to the next queued run).
        Dispatch overhead per run = start + return + gap; medians in ms. The marks are
        compared across processes, so run it on one machine (a local instance, or a
        cluster whose nodes share a clock).

    python scripts/ray_measure.py neutrality OUT [--rounds 3] [-- RUN OPTIONS]
        `rnnbench run -s lstm-1x320-ce -i torch-nn --profile quick`, locally and with
        --executor ray (a local Ray instance), alternated ROUNDS times into OUT/local-K and
        OUT/ray-K; prints each median and how far the Ray medians are from the local ones.
        It takes timings: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path


def overhead(directory: Path) -> None:
    docs = [json.loads(p.read_text()) for p in sorted((directory / "runs").glob("*.json"))]
    docs = [d for d in docs if "worker_ended" in (d.get("ray") or {})]
    if not docs:
        sys.exit(f"{directory}: no run of the Ray executor with its marks")
    parts = {"start": [], "return": [], "gap": []}
    for node in {d["node"] for d in docs}:
        runs = sorted((d["ray"] for d in docs if d["node"] == node), key=lambda c: c["task_started"])
        for prev, c in zip([None, *runs], runs):
            parts["return"].append(c["received"] - c["worker_ended"])
            if prev is not None:  # the first run on a node measured its GEMM rate
                parts["start"].append(c["worker_started"] - c["task_started"])
                parts["gap"].append(c["task_started"] - prev["task_returned"])
    ms = {k: 1000 * statistics.median(v) for k, v in parts.items() if v}
    print(f"{len(docs)} runs on {len({d['node'] for d in docs})} node(s); medians per run:")
    for k, v in ms.items():
        print(f"  {k:7} {v:8.1f} ms")
    print(f"  dispatch overhead per run: {sum(ms.values()):.1f} ms")


def neutrality(out: Path, rounds: int, extra: list[str]) -> None:
    base = [sys.executable, "-m", "rnnbench.cli", "run", "-s", "lstm-1x320-ce", "-i", "torch-nn", "--profile",
            "quick", "--no-report", *extra]
    medians = {"local": [], "ray": []}
    for k in range(1, rounds + 1):
        for executor in ("local", "ray"):
            d = out / f"{executor}-{k}"
            subprocess.run([*base, "--executor", executor, "--out", str(d)], check=True, stdout=subprocess.DEVNULL)
            [doc] = [json.loads(p.read_text()) for p in (d / "runs").glob("*.json")]
            medians[executor].append(doc["median_s"])
            print(f"round {k} {executor:5} median {1000 * doc['median_s']:.2f} ms", flush=True)
    local, ray = (statistics.median(v) for v in medians.values())
    print(f"median of medians: local {1000 * local:.2f} ms, ray {1000 * ray:.2f} ms, ray/local {ray / local:.4f} "
          f"({100 * (ray / local - 1):+.1f}%)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    sub.add_parser("overhead").add_argument("dir", type=Path)
    n = sub.add_parser("neutrality")
    n.add_argument("out", type=Path)
    n.add_argument("--rounds", type=int, default=3)
    args, extra = p.parse_known_args()  # neutrality: more `rnnbench run` options after --
    if args.what == "overhead" and extra:
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.what == "overhead":
        overhead(args.dir)
    else:
        neutrality(args.out, args.rounds, [a for a in extra if a != "--"])


if __name__ == "__main__":
    main()
