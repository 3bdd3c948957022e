"""What the legacy worker hands a 2017 implementation and what it hands back: the same
surface as rnnbench.impls.base (``build(cfg) -> Trainer``), written for Python 3.6, and
the canonical weight layout's helpers the scripts share (see rnnbench.data: PyTorch's
layout, gate blocks along the first axis, LSTM ``i, f, g, o``, GRU ``r, z, n``, two bias
vectors ``b_ih`` and ``b_hh``)."""

from collections import namedtuple

import numpy as np

from rnnbench.protocol import SCENARIO_FIELDS


class Scenario(namedtuple("Scenario", [name for name, _, _ in SCENARIO_FIELDS])):
    """A job's scenario (rnnbench.scenarios.Scenario's fields and the properties used here)."""

    @property
    def directions(self):
        return 2 if self.bidirectional else 1

    @property
    def head_inputs(self):
        return self.hidden * self.directions

    @property
    def gates(self):
        return {"gru": 3, "lstm": 4}[self.cell]


# The batch: x (B, T, F) float32, y (B,) classes or (B, L) labels, lengths and label_lengths (B,).
Batch = namedtuple("Batch", "x y lengths label_lengths")
# The scenario, batch, canonical weights (name -> float32 array), thread count, lr, Adam epsilon.
Config = namedtuple("Config", "scenario batch weights threads lr adam_eps")


class Trainer(object):
    """``step()``: one training step on the batch, returning the loss; ``weights()``: the
    parameters in the canonical layout; ``parameters``: the framework's count; ``notes``:
    what verification must know (``gru``, ``adam``, ``bias``) and anything worth recording."""

    def __init__(self, step, weights, parameters, notes):
        self.step, self.weights, self.parameters, self.notes = step, weights, parameters, notes


class Unsupported(Exception):
    """Raised by ``build`` for what the 2017 software cannot express: the run is skipped."""


def directions(s):
    """Canonical ``l{k}.fw`` / ``l{k}.bw`` prefixes, layer by layer."""
    return [["l{}.{}".format(k, d) for d in ("fw", "bw")[:s.directions]] for k in range(s.layers)]


def gates(w, order, canonical):
    """Reorder the gate blocks of ``w`` (first axis) from ``canonical`` order (e.g. "ifgo")
    to ``order`` (e.g. "igfo"); the same call with the two swapped converts back."""
    blocks = dict(zip(canonical, np.split(w, len(canonical))))
    return np.concatenate([blocks[g] for g in order])


def single_bias(w, prefix):
    """One bias vector per gate, as frameworks with one load it: ``b_ih + b_hh``."""
    return w[prefix + ".b_ih"] + w[prefix + ".b_hh"]


def split_single_bias(bias, w0, prefix):
    """A trained single bias back as the canonical pair: the whole change in ``b_ih``,
    ``b_hh`` as it was (verification then trains the canonical model with ``b_hh``
    frozen: notes["bias"] = "single")."""
    b_ih0, b_hh0 = w0[prefix + ".b_ih"], w0[prefix + ".b_hh"]
    return {prefix + ".b_ih": b_ih0 + (bias - (b_ih0 + b_hh0)), prefix + ".b_hh": b_hh0.copy()}
