"""The small surface between the harness and an implementation (framework-free).

An implementation module exposes ``build(cfg: Config) -> Trainer`` and reads top to
bottom as a training script: model, loss, optimizer, train step. The harness owns
threads, devices, timing, statistics, checks and I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..data import Batch
from ..scenarios import Scenario


@dataclass(frozen=True)
class Config:
    """What the harness hands an implementation."""

    scenario: Scenario
    batch: Batch
    weights: dict[str, np.ndarray]  # canonical layout (see rnnbench.data)
    device: str = "cpu"  # "cpu" | "cuda"
    lr: float = 1e-3
    adam_eps: float = 1e-8  # the framework's default, chosen by the harness


@dataclass
class Trainer:
    """What an implementation hands back."""

    step: Callable[[], float]  # one training step on the batch; returns the loss as a float
    weights: Callable[[], dict[str, np.ndarray]]  # current parameters, canonical layout
    parameters: int  # trainable parameters, as the framework counts them
    notes: dict[str, str] = field(default_factory=dict)  # e.g. {"gru": "reset-after"}
    # The loss on the batch without backward or update (``--mode forward``), as a float.
    forward: Callable[[], float] | None = None


class Unsupported(Exception):
    """Raised by ``build`` for a combination the implementation cannot express."""
