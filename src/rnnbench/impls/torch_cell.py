"""PyTorch: ``nn.GRUCell`` / ``nn.LSTMCell`` stepped in a Python loop (the seed's
"PyTorch LSTMCell" row). Each step is a separate fused cell call, so Python and kernel
launch overhead are paid T times per layer and direction."""

from torch import nn

from .base import Config, Trainer
from .torch_common import CellNet, batch_tensors, cell_param_name, fit, reverse_index


def make_cell(kind: str, inputs: int, hidden: int) -> nn.Module:
    return {"gru": nn.GRUCell, "lstm": nn.LSTMCell}[kind](inputs, hidden)


def build(cfg: Config) -> Trainer:
    s = cfg.scenario
    model = CellNet(s, make_cell).to(cfg.device)
    x, _, lengths, _ = batch_tensors(cfg)
    rev = reverse_index(lengths, s.time_steps, cfg.device)
    # nn.GRUCell / nn.LSTMCell name their parameters like the canonical layout.
    names = cell_param_name({"w_ih": "weight_ih", "w_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh"})
    return fit(cfg, model, names, (x, rev))
