"""PyTorch: torch-custom's hand-written cells with each cell step compiled by
``torch.compile``, so the elementwise gate math of a step fuses into one kernel.

Compiling the whole unrolled time loop instead traces T steps per layer and direction:
at T = 1000 that takes minutes (Keras 3 on the torch backend with ``jit_compile=True``,
torch.compile of a 1000-step loop, did not finish one 1x320 LSTM step in 10 minutes), so
only the cell is compiled and the loop stays in Python.
"""

import torch
import torch.nn.functional as F

from .base import Config, Trainer
from .torch_cell import Net
from .torch_common import batch_tensors, load_canonical, reverse_index, to_canonical
from .torch_custom import CELLS, NAMES


def compiled_cell(s):
    def make_cell(inputs: int, hidden: int) -> torch.nn.Module:
        cell = CELLS[s.cell](inputs, hidden)
        cell.compile(dynamic=False)  # compiles on first call; parameter names stay the same
        return cell
    return make_cell


def build(cfg: Config) -> Trainer:
    s = cfg.scenario
    x, y, lengths, label_lengths = batch_tensors(cfg)
    rev = reverse_index(lengths, s.time_steps, cfg.device)
    model = Net(s, compiled_cell(s), NAMES).to(cfg.device)
    params = load_canonical(model, cfg.weights, model.param_name)

    def loss_fn(logits):  # CTC: the mean over the batch of per-sequence NLLs, blank 0
        if s.loss == "ce":
            return F.cross_entropy(logits, y)
        log_probs = F.log_softmax(logits, dim=-1).transpose(0, 1)  # (T, B, C)
        return F.ctc_loss(log_probs, y, lengths, label_lengths, reduction="sum") / len(y)

    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=cfg.adam_eps)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x, rev))
        loss.backward()
        optimizer.step()
        return loss.item()  # waits for the device

    def forward() -> float:  # --mode forward: the loss, no graph kept for a backward pass
        with torch.no_grad():
            return loss_fn(model(x, rev)).item()

    return Trainer(step, lambda: to_canonical(params), sum(p.numel() for p in model.parameters()),
                   {"adam": "standard", "compile": "per cell step (torch.compile, inductor)"}, forward)
