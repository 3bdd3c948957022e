"""The CTC scenario masked two ways: ``torch-packed`` (``pack_padded_sequence`` into one
bidirectional ``nn.LSTM``, the common idiom) against ``torch-nn`` (padded input, each
sequence reversed for a separate backward module). Both give the same loss; prints the
median step time of each, alternated in one process, at the quick profile's size.

Usage: python scripts/torch_packed_vs_reversed.py [THREADS] [STEPS]
"""

import statistics
import sys
import time

import torch

from rnnbench.data import canonical_weights, make_batch
from rnnbench.impls import torch_nn, torch_packed
from rnnbench.impls.base import Config
from rnnbench.scenarios import PROFILES, SCENARIOS, apply_profile


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    s = apply_profile(SCENARIOS["lstm-4x320bi-ctc"], PROFILES["quick"])
    cfg = Config(s, make_batch(s), canonical_weights(s))
    trainers = {"packed": torch_packed.build(cfg), "reversed": torch_nn.build(cfg)}
    print("first losses:", {k: t.step() for k, t in trainers.items()})
    times = {k: [] for k in trainers}
    for _ in range(steps):
        for k, t in trainers.items():
            t0 = time.perf_counter()
            t.step()
            times[k].append(time.perf_counter() - t0)
    for k, v in times.items():
        print(f"{k:9} median {statistics.median(v):.3f} s/step over {steps} steps")


if __name__ == "__main__":
    main()
