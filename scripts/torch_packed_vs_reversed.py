"""torch-nn on CTC: ``pack_padded_sequence`` into one bidirectional ``nn.LSTM`` against
padded input with each sequence reversed for a separate backward module (torch-nn's
default). Both must give the same loss; prints the median step time of each, alternated
in one process.

Usage: python scripts/torch_packed_vs_reversed.py [THREADS] [STEPS]
"""

import statistics
import sys
import time

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnbench.data import canonical_weights, make_batch
from rnnbench.impls import torch_nn
from rnnbench.impls.base import Config
from rnnbench.impls.torch_common import batch_tensors, fit, rnn_param_name
from rnnbench.scenarios import PROFILES, SCENARIOS, apply_profile


class Packed(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.rnn = nn.LSTM(s.features, s.hidden, s.layers, batch_first=True, bidirectional=True)
        self.head = nn.Linear(s.head_inputs, s.classes)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=x.shape[1])
        return self.head(out)


def packed_name(canonical):
    if canonical.startswith("head."):
        return {"head.w": "head.weight", "head.b": "head.bias"}[canonical]
    return "rnn." + rnn_param_name(canonical)


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 6
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    s = apply_profile(SCENARIOS["lstm-4x320bi-ctc"], PROFILES["quick"])
    cfg = Config(s, make_batch(s), canonical_weights(s))
    x, _, lengths, _ = batch_tensors(cfg)
    trainers = {"packed": fit(cfg, Packed(s), packed_name, (x, lengths)), "reversed": torch_nn.build(cfg)}
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
