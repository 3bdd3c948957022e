"""PyTorch: the fused ``nn.GRU`` / ``nn.LSTM`` modules (cuDNN on GPU, oneDNN on CPU).

Full-length sequences (cross-entropy) run the whole stack in one module call. Variable
lengths (CTC) need each backward direction to start at its sequence's true end: each
layer gets a forward and a backward module, and the backward one reads every sequence
reversed within its own length (padding stays at the end, where it cannot reach the
outputs that count). The alternative, ``pack_padded_sequence`` into one bidirectional
module, gives the same loss but measured 1.9-2.5x slower on this CPU (scripts/torch_packed_vs_reversed.py).
"""

import torch
from torch import nn

from .base import Config, Trainer
from .torch_common import batch_tensors, fit, reverse_index, rnn_param_name

RNN = {"gru": nn.GRU, "lstm": nn.LSTM}


class Net(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.rnn = RNN[s.cell](s.features, s.hidden, s.layers, batch_first=True, bidirectional=s.bidirectional)
        self.head = nn.Linear(s.head_inputs, s.classes)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


class MaskedNet(nn.Module):
    def __init__(self, s):
        super().__init__()
        inputs = [s.features] + [s.head_inputs] * (s.layers - 1)
        self.layers = nn.ModuleList(
            nn.ModuleDict({d: RNN[s.cell](n, s.hidden, batch_first=True) for d in ("fw", "bw")[: s.directions]})
            for n in inputs
        )
        self.head = nn.Linear(s.head_inputs, s.classes)

    def forward(self, x, rev):  # rev: reverse_index(lengths), (B, T)
        flip = lambda t: t.gather(1, rev.unsqueeze(-1).expand_as(t))
        for layer in self.layers:
            out = layer["fw"](x)[0]
            if "bw" in layer:
                out = torch.cat([out, flip(layer["bw"](flip(x))[0])], -1)
            x = out
        return self.head(x)  # logits at every step


def param_name(masked: bool):
    """Canonical name -> this model's parameter name (the canonical layout is PyTorch's)."""
    def name_of(canonical: str) -> str:
        if canonical.startswith("head."):
            return {"head.w": "head.weight", "head.b": "head.bias"}[canonical]
        if not masked:
            return "rnn." + rnn_param_name(canonical)
        layer, direction, kind = canonical.split(".")
        return f"layers.{layer[1:]}.{direction}." + rnn_param_name(f"l0.fw.{kind}")
    return name_of


def build(cfg: Config) -> Trainer:
    s = cfg.scenario
    x, _, lengths, _ = batch_tensors(cfg)
    masked = s.loss == "ctc"
    model = (MaskedNet(s) if masked else Net(s)).to(cfg.device)
    inputs = (x, reverse_index(lengths, s.time_steps, cfg.device)) if masked else (x,)
    kernel = "cuDNN" if cfg.device == "cuda" else ("oneDNN" if s.cell == "lstm" else "native")
    return fit(cfg, model, param_name(masked), inputs, kernel=kernel)
