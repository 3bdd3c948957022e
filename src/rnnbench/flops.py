"""Analytic FLOPs of one training step (framework-free).

Counted: matrix products only, a multiply-add being 2 FLOPs. Per layer and direction a
GRU/LSTM with G gates (GRU 3, LSTM 4), input size I and H units does, per sequence and
time step, ``2 * G*H * (I + H)`` FLOPs for the input and recurrent products; the Dense
head does ``2 * D * C`` per position it is applied to (the last step for cross-entropy,
every step for CTC). Padded time steps are counted: every framework here computes them.

    forward  = B * T * sum_{layers, directions} 2 * G*H * (I_k + H)  +  B * P * 2 * D * C
    training = 3 * forward

The backward pass is two products per forward product (gradients of the activations and
of the weights), hence the factor 3. Elementwise gate math, the loss and the optimizer
(O(parameters) per step) are left out; so is the gradient of the input data, which some
frameworks compute anyway.
"""

from __future__ import annotations

from .scenarios import Scenario


def forward_flops(s: Scenario) -> int:
    rnn = 0
    for k in range(s.layers):
        inputs = s.features if k == 0 else s.head_inputs
        rnn += s.directions * 2 * s.gates * s.hidden * (inputs + s.hidden)
    head_positions = s.time_steps if s.loss == "ctc" else 1
    return s.batch * s.time_steps * rnn + s.batch * head_positions * 2 * s.head_inputs * s.classes


def train_flops(s: Scenario) -> int:
    """FLOPs of one training step (forward + backward), see the module docstring."""
    return 3 * forward_flops(s)


def step_flops(s: Scenario, timed: str | None) -> int:
    """FLOPs of one timed step: a training step, or (``--mode forward``) a forward pass."""
    return forward_flops(s) if timed == "forward" else train_flops(s)
