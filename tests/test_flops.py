"""The FLOP formula against an independent count from the canonical weight shapes."""

import numpy as np
import pytest

from rnnbench.data import weight_shapes
from rnnbench.flops import forward_flops, train_flops
from rnnbench.scenarios import SCENARIOS


def count_from_weights(s):
    """Every weight matrix (not bias) is one matrix-vector product per position it is
    applied to: 2 FLOPs per element; the head only at the positions the loss reads."""
    total = 0
    for name, shape in weight_shapes(s).items():
        if len(shape) != 2:
            continue
        positions = s.time_steps if (not name.startswith("head") or s.loss == "ctc") else 1
        total += 2 * int(np.prod(shape)) * s.batch * positions
    return total


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_formula_matches_independent_count(name):
    s = SCENARIOS[name]
    assert forward_flops(s) == count_from_weights(s)
    assert train_flops(s) == 3 * forward_flops(s)


def test_hand_computed_gru():
    # 1x320 GRU, (25, 1000, 123): 2 * 3*320 * (123 + 320) per sequence and step, + head.
    s = SCENARIOS["gru-1x320-ce"]
    assert forward_flops(s) == 25 * 1000 * 2 * 960 * 443 + 25 * 2 * 320 * 25
