"""PyTorch: variable-length sequences the way most PyTorch code masks them (and the seed's
CTC script did): ``pack_padded_sequence`` into one bidirectional ``nn.LSTM`` / ``nn.GRU``
stack, ``pad_packed_sequence`` back out. Packed, each direction runs over each sequence's
true length only, so the backward direction starts at the sequence's true end.

CTC scenarios only. Cross-entropy sequences all have the full length T, so packing would
change nothing but add its cost: the model would be torch-nn's. On CPU, packed input runs
PyTorch's native RNN kernel (oneDNN takes padded input only); torch-nn instead reverses
each sequence for a separate backward module, which measured 1.9-2.5x faster
(scripts/torch_packed_vs_reversed.py).
"""

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from . import torch_nn
from .base import Config, Trainer, Unsupported
from .torch_common import batch_tensors, load_canonical, to_canonical


class Net(torch_nn.Net):
    """torch-nn's model (one stacked module and the head), fed packed sequences."""

    def forward(self, x, lengths):  # lengths: (B,) on the CPU
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=x.shape[1])
        return self.head(out)  # logits at every step (CTC reads each sequence up to its length)


def build(cfg: Config) -> Trainer:
    s = cfg.scenario
    if s.loss != "ctc":
        raise Unsupported("full-length sequences need no packing: the same as torch-nn without masking")
    x, y, lengths, label_lengths = batch_tensors(cfg)
    model = Net(s).to(cfg.device)
    params = load_canonical(model, cfg.weights, model.param_name)

    def loss_fn(logits):  # the mean over the batch of per-sequence NLLs, blank 0
        log_probs = F.log_softmax(logits, dim=-1).transpose(0, 1)  # (T, B, C)
        return F.ctc_loss(log_probs, y, lengths, label_lengths, reduction="sum") / len(y)

    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=cfg.adam_eps)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x, lengths))
        loss.backward()
        optimizer.step()
        return loss.item()  # waits for the device

    def forward() -> float:  # --mode forward: the loss, no graph kept for a backward pass
        with torch.no_grad():
            return loss_fn(model(x, lengths)).item()

    kernel = "cuDNN" if cfg.device == "cuda" else "native (packed input has no oneDNN path)"
    return Trainer(step, lambda: to_canonical(params), sum(p.numel() for p in model.parameters()),
                   {"adam": "standard", "kernel": kernel}, forward)
