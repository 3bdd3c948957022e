"""PyTorch: a hand-written cell from two ``nn.Linear`` layers and elementwise ops, stepped
in a Python loop (the seed's "PyTorch custom LSTMCell" row)."""

import torch
from torch import nn

from .base import Config, Trainer
from .torch_common import CellNet, batch_tensors, cell_param_name, fit, reverse_index


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


def make_cell(kind: str, inputs: int, hidden: int) -> nn.Module:
    return {"gru": GRUCell, "lstm": LSTMCell}[kind](inputs, hidden)


NAMES = cell_param_name({"w_ih": "ih.weight", "w_hh": "hh.weight", "b_ih": "ih.bias", "b_hh": "hh.bias"})


def build(cfg: Config) -> Trainer:
    s = cfg.scenario
    model = CellNet(s, make_cell).to(cfg.device)
    x, _, lengths, _ = batch_tensors(cfg)
    rev = reverse_index(lengths, s.time_steps, cfg.device)
    return fit(cfg, model, NAMES, (x, rev))
