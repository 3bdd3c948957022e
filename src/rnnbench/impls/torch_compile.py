"""PyTorch: the hand-written cells of ``torch_custom`` with each cell step compiled by
``torch.compile``, so the elementwise gate math of a step fuses into one kernel.

Compiling the whole unrolled time loop instead traces T steps per layer and direction:
at T = 1000 that takes minutes (SPEC 6 saw Keras' torch backend not finish in 10
minutes), so only the cell is compiled and the loop stays in Python.
"""

import torch

from .base import Config, Trainer
from .torch_common import CellNet, batch_tensors, fit, reverse_index
from .torch_custom import NAMES, make_cell


def compiled_cell(kind: str, inputs: int, hidden: int) -> torch.nn.Module:
    cell = make_cell(kind, inputs, hidden)
    cell.compile(dynamic=False)  # compiles on first call; parameter names stay the same
    return cell


def build(cfg: Config) -> Trainer:
    s = cfg.scenario
    model = CellNet(s, compiled_cell).to(cfg.device)
    x, _, lengths, _ = batch_tensors(cfg)
    rev = reverse_index(lengths, s.time_steps, cfg.device)
    return fit(cfg, model, NAMES, (x, rev), compile="per cell step (torch.compile, inductor)")
