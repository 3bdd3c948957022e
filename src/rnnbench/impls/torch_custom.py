"""PyTorch: a hand-written cell from two ``nn.Linear`` layers and elementwise ops, stepped
in a Python loop (the seed's "PyTorch custom LSTMCell" row). The stack around the cell is
torch-cell's (torch_cell.Net); only the cell differs."""

import torch
import torch.nn.functional as F
from torch import nn

from .base import Config, Trainer
from .torch_cell import Net
from .torch_common import batch_tensors, load_canonical, reverse_index, to_canonical


class LSTMCell(nn.Module):
    def __init__(self, inputs: int, hidden: int):
        super().__init__()
        self.ih = nn.Linear(inputs, 4 * hidden)
        self.hh = nn.Linear(hidden, 4 * hidden)

    def forward(self, x, state=None):
        h, c = state if state is not None else (x.new_zeros(x.shape[0], self.hh.in_features),) * 2
        i, f, g, o = (self.ih(x) + self.hh(h)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class GRUCell(nn.Module):
    """The cuDNN formulation: the reset gate scales the recurrent product ("reset-after")."""

    def __init__(self, inputs: int, hidden: int):
        super().__init__()
        self.ih = nn.Linear(inputs, 3 * hidden)
        self.hh = nn.Linear(hidden, 3 * hidden)

    def forward(self, x, h=None):
        h = h if h is not None else x.new_zeros(x.shape[0], self.hh.in_features)
        xr, xz, xn = self.ih(x).chunk(3, dim=1)
        hr, hz, hn = self.hh(h).chunk(3, dim=1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1 - z) * n + z * h


CELLS = {"gru": GRUCell, "lstm": LSTMCell}
NAMES = {"w_ih": "ih.weight", "w_hh": "hh.weight", "b_ih": "ih.bias", "b_hh": "hh.bias"}  # canonical -> cell's


def build(cfg: Config) -> Trainer:
    s = cfg.scenario
    x, y, lengths, label_lengths = batch_tensors(cfg)
    rev = reverse_index(lengths, s.time_steps, cfg.device)
    model = Net(s, CELLS[s.cell], NAMES).to(cfg.device)
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
