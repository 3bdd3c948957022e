"""What the PyTorch scripts share: canonical weights in and out, the losses, the optimizer.

The canonical layout *is* PyTorch's (gate order, two bias vectors, (out, in) weights), so
converting is renaming: ``l{k}.fw.w_ih`` <-> ``weight_ih_l{k}``, ``l{k}.bw.*`` <->
``*_l{k}_reverse`` (nn.GRU / nn.LSTM names), and ``head.*`` <-> the Linear head.
"""

import numpy as np
import torch
import torch.nn.functional as F

from .base import Config, Trainer

TORCH_NAMES = {"w_ih": "weight_ih", "w_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh"}


def rnn_param_name(canonical: str) -> str:
    """``l2.bw.w_ih`` -> ``weight_ih_l2_reverse`` (the nn.LSTM / nn.GRU parameter name)."""
    layer, direction, kind = canonical.split(".")
    return f"{TORCH_NAMES[kind]}_{layer}" + ("_reverse" if direction == "bw" else "")


def batch_tensors(cfg: Config):
    """The toy batch on the device: inputs, targets, and (for CTC) lengths."""
    b = cfg.batch
    x = torch.from_numpy(b.x).to(cfg.device)
    y = torch.from_numpy(b.y).long()
    return x, y, torch.from_numpy(b.lengths).long(), torch.from_numpy(b.label_lengths).long()


def ctc_loss(logits, targets, lengths, target_lengths):
    """CTC, blank 0, mean over the batch of per-sequence negative log-likelihoods."""
    log_probs = F.log_softmax(logits, dim=-1).transpose(0, 1)  # (T, B, C)
    return F.ctc_loss(log_probs, targets, lengths, target_lengths, blank=0, reduction="sum") / len(targets)


def fit(cfg: Config, model: torch.nn.Module, name_of, inputs, **notes) -> Trainer:
    """Load the canonical weights into ``model``, then train it with Adam on the toy batch:
    the loss, optimizer and train step that every PyTorch style here shares.
    ``inputs``: the model's positional inputs; ``name_of``: canonical -> parameter name."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for canonical, value in cfg.weights.items():
            params[name_of(canonical)].copy_(torch.from_numpy(value))

    _, y, lengths, target_lengths = batch_tensors(cfg)
    y = y.to(cfg.device)
    if cfg.scenario.loss == "ce":
        loss_fn = lambda logits: F.cross_entropy(logits, y)
    else:
        loss_fn = lambda logits: ctc_loss(logits, y, lengths, target_lengths)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=cfg.adam_eps)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(*inputs))
        loss.backward()
        optimizer.step()
        return loss.item()  # waits for the device

    def weights():
        return {c: params[name_of(c)].detach().cpu().numpy().copy() for c in cfg.weights}

    parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Trainer(step, weights, parameters, {"adam": "standard", **notes})


def reverse_index(lengths, time_steps: int, device):
    """Gather index that reverses each sequence within its own length (padding stays put),
    so that a backward direction starts at each sequence's true end."""
    t = torch.arange(time_steps).unsqueeze(0)
    rev = lengths.unsqueeze(1) - 1 - t
    return torch.where(rev >= 0, rev, t).to(device)


class CellStack(torch.nn.Module):
    """A stacked, optionally bidirectional RNN that steps a cell in a Python loop.

    ``make_cell(kind, inputs, hidden)`` builds a cell with nn.LSTMCell's calling
    convention: ``cell(x_t, state) -> (h, c)`` for LSTM, ``-> h`` for GRU, ``state=None``
    meaning zeros. Variable lengths: the forward direction needs nothing (outputs before
    a sequence's end never see its padding); the backward direction runs on each sequence
    reversed within its own length, so it starts at the true end.
    """

    def __init__(self, s, make_cell):
        super().__init__()
        self.s = s
        self.cells = torch.nn.ModuleDict({
            f"l{k}_{d}": make_cell(s.cell, s.features if k == 0 else s.head_inputs, s.hidden)
            for k in range(s.layers) for d in ("fw", "bw")[: s.directions]
        })

    @staticmethod
    def scan(cell, x):
        state, outputs = None, []
        for x_t in x.unbind(1):
            state = cell(x_t, state)
            outputs.append(state[0] if isinstance(state, tuple) else state)
        return torch.stack(outputs, 1)

    def forward(self, x, rev):  # rev: reverse_index(...), (B, T)
        flip = lambda t: t.gather(1, rev.unsqueeze(-1).expand_as(t))
        for k in range(self.s.layers):
            out = self.scan(self.cells[f"l{k}_fw"], x)
            if self.s.bidirectional:
                out = torch.cat([out, flip(self.scan(self.cells[f"l{k}_bw"], flip(x)))], -1)
            x = out
        return x


def cell_param_name(suffix_of):
    """Name mapping for a CellStack: ``l0.bw.w_ih`` -> ``rnn.cells.l0_bw.<suffix_of[w_ih]>``."""
    def name_of(canonical):
        if canonical.startswith("head."):
            return {"head.w": "head.weight", "head.b": "head.bias"}[canonical]
        layer, direction, kind = canonical.split(".")
        return f"rnn.cells.{layer}_{direction}.{suffix_of[kind]}"
    return name_of


class CellNet(torch.nn.Module):
    """CellStack + the Dense head: logits at the last step (CE) or at every step (CTC)."""

    def __init__(self, s, make_cell):
        super().__init__()
        self.rnn = CellStack(s, make_cell)
        self.head = torch.nn.Linear(s.head_inputs, s.classes)
        self.per_step = s.loss == "ctc"

    def forward(self, x, rev):
        out = self.rnn(x, rev)
        return self.head(out if self.per_step else out[:, -1])
