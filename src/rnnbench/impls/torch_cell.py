"""PyTorch: ``nn.GRUCell`` / ``nn.LSTMCell`` stepped in a Python loop (the seed's
"PyTorch LSTMCell" row). Each step is a separate fused cell call, so Python and kernel
launch overhead are paid T times per layer and direction.

Variable lengths (CTC) need no mask: the forward direction's outputs before a sequence's
end never see its padding, and the backward direction runs on each sequence reversed
within its own length, so it starts at the true end.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .base import Config, Trainer
from .torch_common import TORCH_NAMES, batch_tensors, load_canonical, reverse_index, to_canonical

CELLS = {"gru": nn.GRUCell, "lstm": nn.LSTMCell}


class Net(nn.Module):
    """A stacked, optionally bidirectional RNN that steps a cell in a Python loop, then
    Dense on the last step's output (CE) or on every step's (CTC).

    ``make_cell(inputs, hidden)`` builds a cell with nn.LSTMCell's calling convention:
    ``cell(x_t, state) -> (h, c)`` for LSTM, ``-> h`` for GRU, ``state=None`` meaning
    zeros. ``names`` maps the canonical w_ih, w_hh, b_ih, b_hh to the cell's parameters.
    """

    def __init__(self, s, make_cell, names=TORCH_NAMES):
        super().__init__()
        self.layers, self.bidirectional, self.names = s.layers, s.bidirectional, names
        self.per_step = s.loss == "ctc"  # logits at every step (CTC) or the last (CE)
        self.cells = nn.ModuleDict({
            f"l{k}_{d}": make_cell(s.features if k == 0 else s.head_inputs, s.hidden)
            for k in range(s.layers) for d in ("fw", "bw")[: s.directions]
        })
        self.head = nn.Linear(s.head_inputs, s.classes)

    @staticmethod
    def scan(cell, x):
        state, outputs = None, []
        for x_t in x.unbind(1):
            state = cell(x_t, state)
            outputs.append(state[0] if isinstance(state, tuple) else state)
        return torch.stack(outputs, 1)

    def forward(self, x, rev):  # rev: reverse_index(lengths), (B, T)
        flip = lambda t: t.gather(1, rev.unsqueeze(-1).expand_as(t))
        for k in range(self.layers):
            out = self.scan(self.cells[f"l{k}_fw"], x)
            if self.bidirectional:
                out = torch.cat([out, flip(self.scan(self.cells[f"l{k}_bw"], flip(x)))], -1)
            x = out
        return self.head(x if self.per_step else x[:, -1])

    def param_name(self, canonical: str) -> str:  # l0.bw.w_ih -> cells.l0_bw.weight_ih
        layer, direction, kind = canonical.split(".")
        return f"cells.{layer}_{direction}.{self.names[kind]}"


def build(cfg: Config) -> Trainer:
    s = cfg.scenario
    x, y, lengths, label_lengths = batch_tensors(cfg)
    rev = reverse_index(lengths, s.time_steps, cfg.device)
    model = Net(s, CELLS[s.cell]).to(cfg.device)
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
                   {"adam": "standard"}, forward)
