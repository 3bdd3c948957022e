"""TensorFlow 2: tf-cell's training script with its whole train step compiled by XLA
(``tf.function(jit_compile=True)``): the scan, the loss and the Adam update become one
XLA program instead of a graph of TF kernels stepped by TensorFlow's executor.

One difference: XLA has no kernel for the sparse-label CTC op, so the CTC scenario feeds
tf.nn.ctc_loss dense labels, a form written in plain TF ops that XLA compiles.
"""

from . import tf_cell
from .base import Config, Trainer


def build(cfg: Config) -> Trainer:
    return tf_cell.build(cfg, jit_compile=True)
