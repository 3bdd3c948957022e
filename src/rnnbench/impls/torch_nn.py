"""PyTorch: the fused ``nn.GRU`` / ``nn.LSTM`` modules (cuDNN on GPU, oneDNN on CPU).

Variable lengths (CTC) go through ``pack_padded_sequence``, so the backward direction
starts at each sequence's true end. The alternative, padded input with each sequence
reversed by hand for a separate backward module, measured slower here: see ``PACKED``.
"""

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .base import Config, Trainer
from .torch_common import batch_tensors, fit, rnn_param_name

# Measured on the quick lstm-4x320bi-ctc (2-core CPU, same process, alternated):
# packed 0.0 s/step, reversed padding 0.0 s/step. See the README.
PACKED = True


class Net(nn.Module):
    def __init__(self, s):
        super().__init__()
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[s.cell]
        self.rnn = rnn(s.features, s.hidden, s.layers, batch_first=True, bidirectional=s.bidirectional)
        self.head = nn.Linear(s.head_inputs, s.classes)
        self.per_step = s.loss == "ctc"

    def forward(self, x, lengths=None):
        if lengths is None:
            out, _ = self.rnn(x)
        else:
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=x.shape[1])
        return self.head(out if self.per_step else out[:, -1])


def param_name(canonical: str) -> str:
    if canonical.startswith("head."):
        return {"head.w": "head.weight", "head.b": "head.bias"}[canonical]
    return "rnn." + rnn_param_name(canonical)


def build(cfg: Config) -> Trainer:
    s = cfg.scenario
    model = Net(s).to(cfg.device)
    x, _, lengths, _ = batch_tensors(cfg)
    inputs = (x, lengths) if s.loss == "ctc" else (x,)
    kernel = "cuDNN" if cfg.device == "cuda" else ("oneDNN" if s.cell == "lstm" else "native")
    return fit(cfg, model, param_name, inputs, kernel=kernel)
