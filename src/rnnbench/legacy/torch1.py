"""PyTorch 1.0 (December 2018, the oldest PyTorch the package registry has; the seed used
0.1.12): ``nn.LSTM`` / ``nn.GRU`` (torch1-nn) and ``nn.LSTMCell`` / ``nn.GRUCell`` in a
Python loop (torch1-cell), trained with Adam, cross-entropy or ``F.ctc_loss`` (new in
1.0; the seed needed warp-ctc).

Variable lengths (CTC), as 2017 scripts did them: torch1-nn packs the batch
(``pack_padded_sequence``, which in 1.0 wants the lengths sorted longest first) into
one bidirectional module per stack, so each backward direction starts at its
sequence's true end; the cell loop holds each state where the sequence has ended and
runs the backward direction on each sequence reversed within its length.

The canonical layout is PyTorch's: converting is renaming (``l{k}.fw.w_ih`` <->
``weight_ih_l{k}``, ``l{k}.bw.*`` <-> ``*_l{k}_reverse``).
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .base import Trainer

RNN = {"gru": nn.GRU, "lstm": nn.LSTM}
CELL = {"gru": nn.GRUCell, "lstm": nn.LSTMCell}
NAMES = {"w_ih": "weight_ih", "w_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh"}


class Net(nn.Module):
    """The whole stack in one nn.LSTM / nn.GRU, then the Dense head: on the last step (CE)
    or on every step of the packed, variable-length batch (CTC)."""

    def __init__(self, s):
        super(Net, self).__init__()
        self.rnn = RNN[s.cell](s.features, s.hidden, s.layers, batch_first=True, bidirectional=s.bidirectional)
        self.head = nn.Linear(s.head_inputs, s.classes)

    def forward(self, x, lengths=None):
        if lengths is None:
            out, _ = self.rnn(x)
            return self.head(out[:, -1])
        out, _ = self.rnn(pack_padded_sequence(x, lengths, batch_first=True))
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        return self.head(out)

    @staticmethod
    def param_name(canonical):
        layer, direction, kind = canonical.split(".")
        return "rnn.{}_{}{}".format(NAMES[kind], layer, "_reverse" if direction == "bw" else "")


class CellNet(nn.Module):
    """One cell per layer and direction, stepped in a Python loop."""

    def __init__(self, s):
        super(CellNet, self).__init__()
        self.s = s
        inputs = [s.features] + [s.head_inputs] * (s.layers - 1)
        self.cells = nn.ModuleList(nn.ModuleList(CELL[s.cell](n, s.hidden) for _ in range(s.directions))
                                   for n in inputs)
        self.head = nn.Linear(s.head_inputs, s.classes)

    def run(self, cell, x, mask):
        """One direction over (B, T, I); where ``mask`` (B, T, 1) is 0 the state is held
        and the output is zero (CTC padding)."""
        h = x.new_zeros(x.size(0), self.s.hidden)
        state = (h, h) if self.s.cell == "lstm" else h
        outputs = []
        for t in range(x.size(1)):
            new = cell(x[:, t], state)
            if mask is not None:
                m = mask[:, t]
                new = tuple(m * a + (1 - m) * b for a, b in zip(new, state)) if self.s.cell == "lstm" \
                    else m * new + (1 - m) * state
            state = new
            out = state[0] if self.s.cell == "lstm" else state
            outputs.append(out if mask is None else out * mask[:, t])
        return torch.stack(outputs, 1)

    def forward(self, x, rev=None, mask=None):  # rev: (B, T, 1) index reversing each sequence in its length
        flip = lambda t: t.gather(1, rev.expand_as(t)) if rev is not None else t.flip(1)
        for fw_bw in self.cells:
            out = self.run(fw_bw[0], x, mask)
            if len(fw_bw) == 2:
                out = torch.cat([out, flip(self.run(fw_bw[1], flip(x), mask))], -1)
            x = out
        return self.head(x[:, -1] if mask is None else x)

    @staticmethod
    def param_name(canonical):  # l2.bw.w_ih -> cells.2.1.weight_ih
        layer, direction, kind = canonical.split(".")
        if layer == "head":
            return canonical
        return "cells.{}.{}.{}".format(layer[1:], int(direction == "bw"), NAMES[kind])


def train(cfg, model, inputs, notes):
    """Load the canonical weights, then the loss, Adam and the train step."""
    s, b = cfg.scenario, cfg.batch
    named = dict(model.named_parameters())
    head = {"head.w": "head.weight", "head.b": "head.bias"}
    params = dict((c, named[head.get(c) or model.param_name(c)]) for c in cfg.weights)
    with torch.no_grad():
        for c, p in params.items():
            p.copy_(torch.from_numpy(cfg.weights[c]))
    y = torch.from_numpy(b.y).long()

    def loss_fn(logits):
        if s.loss == "ce":
            return F.cross_entropy(logits, y)
        log_probs = F.log_softmax(logits, dim=-1).transpose(0, 1)  # (T, B, C), blank 0
        lengths, label_lengths = torch.from_numpy(b.lengths).long(), torch.from_numpy(b.label_lengths).long()
        return F.ctc_loss(log_probs, y, lengths, label_lengths, reduction="sum") / len(y)  # batch mean

    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=cfg.adam_eps)

    def step():
        optimizer.zero_grad()
        loss = loss_fn(model(*inputs))
        loss.backward()
        optimizer.step()
        return loss.item()

    weights = lambda: dict((c, p.detach().numpy().copy()) for c, p in params.items())
    # PyTorch 1.0's Adam adds eps to sqrt(v) before the bias correction (epsilon-hat, as
    # TensorFlow and Keras do); today's PyTorch adds it after (standard).
    notes = dict(notes, adam="epsilon-hat")
    if s.cell == "gru":
        notes["gru"] = "reset-after"
    return Trainer(step, weights, sum(p.numel() for p in model.parameters()), notes)


def build_nn(cfg):
    s, b = cfg.scenario, cfg.batch
    x = torch.from_numpy(b.x)
    if s.loss == "ce":
        return train(cfg, Net(s), (x,), {"kernel": "native"})
    # pack_padded_sequence in 1.0 needs the longest sequence first: sort the batch (and the
    # targets with it; the loss is a mean over the batch, so the order does not matter).
    order = torch.from_numpy(b.lengths).long().sort(descending=True)[1]
    cfg = cfg._replace(batch=b._replace(x=b.x[order.numpy()], y=b.y[order.numpy()], lengths=b.lengths[order.numpy()]))
    lengths = cfg.batch.lengths.tolist()
    return train(cfg, Net(s), (torch.from_numpy(cfg.batch.x), lengths), {"kernel": "native", "packed": "yes"})


def build_cell(cfg):
    s, b = cfg.scenario, cfg.batch
    x = torch.from_numpy(b.x)
    if s.loss == "ce":
        return train(cfg, CellNet(s), (x,), {"kernel": "cell loop"})
    lengths = torch.from_numpy(b.lengths).long()
    t = torch.arange(s.time_steps).unsqueeze(0)
    mask = (t < lengths.unsqueeze(1)).float().unsqueeze(-1)  # (B, T, 1)
    rev = torch.where(t < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - t, t).unsqueeze(-1)
    return train(cfg, CellNet(s), (x, rev, mask), {"kernel": "cell loop"})

