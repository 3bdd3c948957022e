"""PyTorch: the fused ``nn.GRU`` / ``nn.LSTM`` modules (cuDNN on GPU, oneDNN on CPU).

Full-length sequences (cross-entropy) run the whole stack in one module call. Variable
lengths (CTC) need each backward direction to start at its sequence's true end: each
layer gets a forward and a backward module, and the backward one reads every sequence
reversed within its own length (padding stays at the end, where it cannot reach the
outputs that count). The idiom most PyTorch code uses instead, ``pack_padded_sequence``
into one bidirectional module, is ``torch-packed`` (torch_packed.py): the same loss, but
packed input has no oneDNN path and it measured 1.9-2.5x slower on CPU.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .base import Config, Trainer
from .torch_common import batch_tensors, load_canonical, reverse_index, rnn_param_name, to_canonical

RNN = {"gru": nn.GRU, "lstm": nn.LSTM}


class Net(nn.Module):
    """The whole stack in one module, then Dense on the last step's output (CE)."""

    def __init__(self, s):
        super().__init__()
        self.rnn = RNN[s.cell](s.features, s.hidden, s.layers, batch_first=True, bidirectional=s.bidirectional)
        self.head = nn.Linear(s.head_inputs, s.classes)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])

    @staticmethod
    def param_name(canonical: str) -> str:
        return "rnn." + rnn_param_name(canonical)


class MaskedNet(nn.Module):
    """One module per layer and direction, the backward one on reversed sequences; Dense
    on every step's output (CTC)."""

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
        return self.head(x)

    @staticmethod
    def param_name(canonical: str) -> str:  # l2.bw.w_ih -> layers.2.bw.weight_ih_l0
        layer, direction, kind = canonical.split(".")
        return f"layers.{layer[1:]}.{direction}." + rnn_param_name(f"l0.fw.{kind}")


def build(cfg: Config) -> Trainer:
    s = cfg.scenario
    x, y, lengths, label_lengths = batch_tensors(cfg)
    if s.loss == "ce":
        model = Net(s).to(cfg.device)
        inputs = (x,)
    else:
        model = MaskedNet(s).to(cfg.device)
        inputs = (x, reverse_index(lengths, s.time_steps, cfg.device))
    params = load_canonical(model, cfg.weights, model.param_name)

    def loss_fn(logits):  # CTC: the mean over the batch of per-sequence NLLs, blank 0
        if s.loss == "ce":
            return F.cross_entropy(logits, y)
        log_probs = F.log_softmax(logits, dim=-1).transpose(0, 1)  # (T, B, C)
        # reduction="mean" would also divide each NLL by its label length.
        return F.ctc_loss(log_probs, y, lengths, label_lengths, reduction="sum") / len(y)

    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=cfg.adam_eps)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(*inputs))
        loss.backward()
        optimizer.step()
        return loss.item()  # waits for the device

    def forward() -> float:  # --mode forward: the loss, no graph kept for a backward pass
        with torch.no_grad():
            return loss_fn(model(*inputs)).item()

    kernel = "cuDNN" if cfg.device == "cuda" else ("oneDNN" if s.cell == "lstm" else "native")
    return Trainer(step, lambda: to_canonical(params), sum(p.numel() for p in model.parameters()),
                   {"adam": "standard", "kernel": kernel}, forward)
