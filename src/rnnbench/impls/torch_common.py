"""What the PyTorch scripts share: canonical weights in and out, and the batch as tensors.

The canonical layout *is* PyTorch's (gate order, two bias vectors, (out, in) weights), so
converting is renaming: ``l{k}.fw.w_ih`` <-> ``weight_ih_l{k}``, ``l{k}.bw.*`` <->
``*_l{k}_reverse`` (nn.GRU / nn.LSTM names), and ``head.*`` <-> the ``head`` nn.Linear
every script's model ends in.
"""

import torch

from .base import Config

TORCH_NAMES = {"w_ih": "weight_ih", "w_hh": "weight_hh", "b_ih": "bias_ih", "b_hh": "bias_hh"}
HEAD_NAMES = {"head.w": "head.weight", "head.b": "head.bias"}


def rnn_param_name(canonical: str) -> str:
    """``l2.bw.w_ih`` -> ``weight_ih_l2_reverse`` (the nn.LSTM / nn.GRU parameter name)."""
    layer, direction, kind = canonical.split(".")
    return f"{TORCH_NAMES[kind]}_{layer}" + ("_reverse" if direction == "bw" else "")


def load_canonical(model: torch.nn.Module, weights, rnn_name) -> dict[str, torch.nn.Parameter]:
    """Copy the canonical ``weights`` into ``model``; returns canonical name -> parameter.
    ``rnn_name(canonical)`` names the model's parameter for ``l{k}.{fw|bw}.*``."""
    named = dict(model.named_parameters())
    params = {c: named[HEAD_NAMES.get(c) or rnn_name(c)] for c in weights}
    with torch.no_grad():
        for c, p in params.items():
            p.copy_(torch.from_numpy(weights[c]))
    return params


def to_canonical(params: dict[str, torch.nn.Parameter]):
    """The parameters back as canonical NumPy arrays (copies, on the CPU)."""
    return {c: p.detach().cpu().numpy().copy() for c, p in params.items()}


def batch_tensors(cfg: Config):
    """The toy batch: inputs (B, T, F) and targets on the device; sequence and label
    lengths stay on the CPU, where F.ctc_loss and pack_padded_sequence read them."""
    b = cfg.batch
    x = torch.from_numpy(b.x).to(cfg.device)
    y = torch.from_numpy(b.y).long().to(cfg.device)
    return x, y, torch.from_numpy(b.lengths).long(), torch.from_numpy(b.label_lengths).long()


def reverse_index(lengths, time_steps: int, device):
    """Gather index (B, T) that reverses each sequence within its own length (padding stays
    put), so that a backward direction starts at each sequence's true end. Its own inverse."""
    t = torch.arange(time_steps).unsqueeze(0)
    rev = lengths.unsqueeze(1) - 1 - t
    return torch.where(rev >= 0, rev, t).to(device)
