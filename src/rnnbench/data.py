"""The seeded toy batch and the canonical initial weights, in NumPy.

Toy data (as the seed's ``support.py`` made it): one batch, generated once from
``numpy.random.RandomState(11)`` and reused on every step. Inputs are uniform in [-1, 1];
cross-entropy labels are one class per sequence; CTC lengths are
``linspace(T/2, T, B)`` as integers with ``T/10`` labels per sequence drawn from 1..57
(blank = 0).

Canonical weights: one seeded set per scenario, in PyTorch's layout, which every
implementation converts into its own:

* ``l{k}.{fw|bw}.w_ih``: (G*H, I) input weights of layer k, direction fw or bw;
* ``l{k}.{fw|bw}.w_hh``: (G*H, H) recurrent weights;
* ``l{k}.{fw|bw}.b_ih`` and ``b_hh``: (G*H,) two bias vectors (cuDNN convention);
* ``head.w``: (C, D) and ``head.b``: (C,) the Dense head, D = H * directions.

Gate blocks along the first axis: LSTM ``i, f, g, o`` (g is the cell candidate);
GRU ``r, z, n``. The GRU is the cuDNN/PyTorch formulation ("reset-after"):
``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``.
Frameworks with one bias vector per gate use ``b_ih + b_hh`` (exact for LSTM and for the
GRU's r and z gates). Input size I is F for layer 0 and D for the layers above it.
Values: uniform in [-1/sqrt(H), 1/sqrt(H)], PyTorch's default init.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scenarios import Scenario

DATA_SEED = 11
WEIGHT_SEED = 1234


@dataclass(frozen=True)
class Batch:
    x: np.ndarray  # (B, T, F) float32
    y: np.ndarray  # CE: (B,) int32 classes; CTC: (B, L) int32 labels in 1..57
    lengths: np.ndarray  # (B,) int32 sequence lengths (all T for CE)

    @property
    def label_lengths(self) -> np.ndarray:
        """CTC: every sequence has the same number of labels (CE: one each)."""
        return np.full(len(self.y), self.y.shape[1] if self.y.ndim == 2 else 1, dtype=np.int32)


def make_batch(s: Scenario) -> Batch:
    rng = np.random.RandomState(DATA_SEED)
    x = rng.uniform(-1, 1, (s.batch, s.time_steps, s.features)).astype(np.float32)
    if s.loss == "ce":
        y = rng.randint(0, s.classes, s.batch).astype(np.int32)
        lengths = np.full(s.batch, s.time_steps, dtype=np.int32)
    else:
        lengths = np.linspace(s.min_length, s.time_steps, s.batch).astype(np.int32)
        y = rng.randint(1, s.classes, (s.batch, s.label_length)).astype(np.int32)
    return Batch(x, y, lengths)


def layer_input_size(s: Scenario, layer: int) -> int:
    return s.features if layer == 0 else s.head_inputs


def weight_shapes(s: Scenario) -> dict[str, tuple[int, ...]]:
    """Canonical parameter names and shapes, in a fixed order."""
    gh = s.gates * s.hidden
    shapes: dict[str, tuple[int, ...]] = {}
    for k in range(s.layers):
        for d in ("fw", "bw")[: s.directions]:
            shapes[f"l{k}.{d}.w_ih"] = (gh, layer_input_size(s, k))
            shapes[f"l{k}.{d}.w_hh"] = (gh, s.hidden)
            shapes[f"l{k}.{d}.b_ih"] = (gh,)
            shapes[f"l{k}.{d}.b_hh"] = (gh,)
    shapes["head.w"] = (s.classes, s.head_inputs)
    shapes["head.b"] = (s.classes,)
    return shapes


def canonical_weights(s: Scenario) -> dict[str, np.ndarray]:
    """The scenario's initial weights (float32), the same for every framework."""
    rng = np.random.default_rng(WEIGHT_SEED)
    out = {}
    for name, shape in weight_shapes(s).items():
        bound = 1 / np.sqrt(s.hidden if not name.startswith("head") else s.head_inputs)
        out[name] = rng.uniform(-bound, bound, shape).astype(np.float32)
    return out


def gate_blocks(w: np.ndarray, gates: int) -> list[np.ndarray]:
    """Split a canonical weight or bias into its gate blocks along the first axis."""
    return np.split(w, gates, axis=0)
