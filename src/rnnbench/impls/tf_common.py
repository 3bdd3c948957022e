"""What the TensorFlow scripts share: the batch as tensors, and helpers that convert the
canonical weights into the ops' layouts.

TensorFlow's RNN ops are time-major, so every script works on (T, B, features).
"""

import numpy as np
import tensorflow as tf

from .base import Config


def batch_tensors(cfg: Config, sparse_labels: bool = True):
    """The toy batch: time-major inputs, targets and sequence lengths. CTC labels go in
    as a SparseTensor where possible: tf.nn.ctc_loss is much slower with dense labels on
    CPU, but only its dense-label form is plain TF ops that XLA can compile."""
    b = cfg.batch
    with tf.device("/GPU:0" if cfg.device == "cuda" else "/CPU:0"):
        x = tf.constant(np.transpose(b.x, (1, 0, 2)))
    y = tf.constant(b.y)
    if cfg.scenario.loss == "ctc" and sparse_labels:
        y = tf.sparse.from_dense(y)  # labels are 1..57, never 0, so from_dense keeps them all
    return x, y, tf.constant(b.lengths)


def reorder_gates(w, gates: int, order, axis: int = 0):
    """Reorder the gate blocks of ``w`` along ``axis`` (canonical -> an op's gate order)."""
    blocks = np.split(w, gates, axis=axis)
    return np.concatenate([blocks[g] for g in order], axis=axis)


def directions(s):
    """Prefixes of the canonical per-direction weight names: l0.fw., l0.bw., l1.fw., ..."""
    return [f"l{k}.{d}." for k in range(s.layers) for d in ("fw", "bw")[: s.directions]]
