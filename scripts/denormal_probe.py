"""Where could denormals slow PyTorch down on this machine? Two measurements:

1. the CPU's penalty: an elementwise op and a matmul on denormal inputs against normal
   ones, with ``torch.set_flush_denormal`` off and on;
2. how many denormals a training step of ``lstm-4x320bi-ce`` produces: the share of
   denormal (and of exactly zero) entries of dLoss/dInput per time step, from the
   canonical initial weights, with flushing off. The cross-entropy loss sits on the last
   step only, so the gradient decays going back in time; it crosses the denormal range
   (1e-38 .. 1e-45) on its way to zero only when T is long enough.

    python scripts/denormal_probe.py [T ...]     (default: 100 1000)
"""

import sys
import time

import torch
import torch.nn.functional as F

from rnnbench.data import canonical_weights, make_batch
from rnnbench.impls.torch_common import load_canonical
from rnnbench.impls.torch_nn import Net
from rnnbench.scenarios import SCENARIOS

TINY = torch.finfo(torch.float32).tiny  # the smallest normal float32


def best_of(fn, repeats=10) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def penalty() -> None:
    n = 4_000_000
    half = torch.full((n,), 0.5)
    m_half = torch.full((1024, 1024), 0.5)
    for flush in (False, True):
        torch.set_flush_denormal(flush)
        row = []
        for label, value in (("denormal", 1e-39), ("normal", 1e-3)):
            x, m = torch.full((n,), value), torch.full((1024, 1024), value)
            row.append(f"{label}: x*y+x {best_of(lambda: x * half + x) * 1e3:6.2f} ms, "
                       f"1024^2 matmul {best_of(lambda: m @ m_half) * 1e3:6.2f} ms")
        print(f"flush {'on ' if flush else 'off'} | " + " | ".join(row))


def gradient_census(time_steps: int) -> None:
    torch.set_flush_denormal(False)
    s = SCENARIOS["lstm-4x320bi-ce"].resized(time_steps=time_steps)
    b = make_batch(s)
    model = Net(s)  # torch-nn's model
    load_canonical(model, canonical_weights(s), model.param_name)
    x = torch.from_numpy(b.x).requires_grad_()
    F.cross_entropy(model(x), torch.from_numpy(b.y).long()).backward()
    g = x.grad
    denormal = (g != 0) & (g.abs() < TINY)
    print(f"T={time_steps}: dLoss/dInput entries denormal {denormal.float().mean().item():.1%}, "
          f"exactly zero {(g == 0).float().mean().item():.1%}; "
          f"largest |g| at t=0: {g[:, 0].abs().max().item():.1e}, at t=T-1: {g[:, -1].abs().max().item():.1e}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    penalty()
    for t in [int(a) for a in sys.argv[1:]] or [100, 1000]:
        gradient_census(t)
