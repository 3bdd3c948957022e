"""TensorFlow 2: ``tf.raw_ops.BlockLSTMV2``, a whole sequence of one LSTM direction in
one op (the seed's later "LSTMBlockFusedCell"), inside a ``tf.function``.

The op takes [x, h] against one stacked (inputs + units, 4 * units) matrix with gates
i, f, c, o (the canonical order; unlike LSTMBlockCell's i, c, f, o). The gradient that
TensorFlow 2.21 registers for BlockLSTMV2 is wrong: it calls the V1 BlockLSTMGrad kernel,
which assumes the V1 gate order i, c, f, o (measured: weight updates off by 100%+). So
the op is paired with its own BlockLSTMGradV2 through ``tf.custom_gradient``.
There is no fused GRU op. The canonical model's two bias vectors stay two variables;
the op gets their sum. The stack around the op and the head are tf-cell's (tf_cell.Net).
"""

import numpy as np
import tensorflow as tf

from . import tf_cell
from .base import Config, Trainer, Unsupported
from .tf_common import batch_tensors, directions


@tf.custom_gradient
def block_lstm(x, w, b):
    """One LSTM direction over time-major ``x``: all T steps in one kernel; returns h."""
    zeros = tf.zeros((x.shape[1], w.shape[1] // 4))
    no_peephole = zeros[0]
    lstm = dict(seq_len_max=tf.constant(x.shape[0], tf.int64), x=x, cs_prev=zeros, h_prev=zeros,
                w=w, wci=no_peephole, wcf=no_peephole, wco=no_peephole, b=b, use_peephole=False)
    i, cs, f, o, ci, co, h = tf.raw_ops.BlockLSTMV2(**lstm, cell_clip=0.0)  # <= 0: no clipping

    def grad(dh):
        dx, _, _, dw, _, _, _, db = tf.raw_ops.BlockLSTMGradV2(
            **lstm, i=i, cs=cs, f=f, o=o, ci=ci, co=co, h=h, cs_grad=tf.zeros_like(cs), h_grad=dh)
        return dx, dw, db

    return h, grad


class Net(tf_cell.Net):
    """tf-cell's stack and head, each direction one BlockLSTMV2 op; variables in the op's
    layout: one stacked (I + H, 4H) [x, h] matrix per direction."""

    def to_layout(self, cw):
        out = {"head.w": cw["head.w"].T, "head.b": cw["head.b"]}
        for p in directions(self.s):
            out[p + "w"] = np.concatenate([cw[p + "w_ih"], cw[p + "w_hh"]], axis=1).T
            out[p + "b_ih"], out[p + "b_hh"] = cw[p + "b_ih"], cw[p + "b_hh"]
        return out

    def from_layout(self, a):
        out = {"head.w": a["head.w"].T, "head.b": a["head.b"]}
        for p in directions(self.s):
            out[p + "w_ih"], out[p + "w_hh"] = np.split(a[p + "w"].T, [-self.s.hidden], axis=1)
            out[p + "b_ih"], out[p + "b_hh"] = a[p + "b_ih"], a[p + "b_hh"]
        return out

    def direction(self, x, p):
        return block_lstm(x, self.params[p + "w"], self.params[p + "b_ih"] + self.params[p + "b_hh"])


def build(cfg: Config) -> Trainer:
    s = cfg.scenario
    if s.cell != "lstm":
        raise Unsupported("TensorFlow has no fused whole-sequence GRU op (BlockLSTMV2 is LSTM only)")
    x, y, lengths = batch_tensors(cfg)
    model = Net(s, cfg.weights)

    def loss_fn(logits, y, lengths):  # CTC: the mean over the batch of per-sequence NLLs
        if s.loss == "ce":
            return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        return tf.reduce_mean(tf.nn.ctc_loss(y, logits, None, lengths, logits_time_major=True, blank_index=0))

    # TensorFlow's Adam is Keras's (epsilon-hat form, see tf_cell.py).
    optimizer = tf.keras.optimizers.Adam(cfg.lr, epsilon=cfg.adam_eps)
    optimizer.build(model.trainable_variables)  # Adam's slots now, or the first step traces twice

    @tf.function  # traced once: every call passes the same tensors
    def train_step(x, y, lengths):
        with tf.GradientTape() as tape:
            loss = loss_fn(model(x, lengths), y, lengths)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function  # --mode forward: the loss, no tape, no update
    def eval_loss(x, y, lengths):
        return loss_fn(model(x, lengths), y, lengths)

    parameters = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    return Trainer(lambda: float(train_step(x, y, lengths)), model.to_canonical, parameters,
                   {"adam": "epsilon-hat"},
                   forward=lambda: float(eval_loss(x, y, lengths)))
