"""TensorFlow 2: tf-cell's model with its whole train step compiled by XLA
(``tf.function(jit_compile=True)``): the scan, the loss and the Adam update become one
XLA program instead of a graph of TF kernels stepped by TensorFlow's executor.

One difference: XLA has no kernel for the sparse-label CTC op, so the CTC scenario feeds
tf.nn.ctc_loss dense labels (with their lengths), a form written in plain TF ops that XLA
compiles.
"""

import numpy as np
import tensorflow as tf

from .base import Config, Trainer
from .tf_cell import Net
from .tf_common import batch_tensors


def build(cfg: Config) -> Trainer:
    s = cfg.scenario
    x, y, lengths = batch_tensors(cfg, sparse_labels=False)
    label_lengths = tf.constant(cfg.batch.label_lengths)
    model = Net(s, cfg.weights)

    def loss_fn(logits, y, lengths):  # CTC: the mean over the batch of per-sequence NLLs
        if s.loss == "ce":
            return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        nll = tf.nn.ctc_loss(y, logits, label_lengths, lengths, logits_time_major=True, blank_index=0)
        return tf.reduce_mean(nll)

    # TensorFlow's Adam is Keras's (epsilon-hat form, see tf_cell.py); XLA compiles it too.
    optimizer = tf.keras.optimizers.Adam(cfg.lr, epsilon=cfg.adam_eps)
    optimizer.build(model.trainable_variables)  # Adam's slots now, or the first step traces twice

    @tf.function(jit_compile=True)
    def train_step(x, y, lengths):
        with tf.GradientTape() as tape:
            loss = loss_fn(model(x, lengths), y, lengths)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function(jit_compile=True)  # --mode forward: the loss, no tape, no update
    def eval_loss(x, y, lengths):
        return loss_fn(model(x, lengths), y, lengths)

    parameters = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    return Trainer(lambda: float(train_step(x, y, lengths)), model.to_canonical, parameters,
                   {"adam": "epsilon-hat", **({"gru": "reset-after"} if s.cell == "gru" else {})},
                   forward=lambda: float(eval_loss(x, y, lengths)))
