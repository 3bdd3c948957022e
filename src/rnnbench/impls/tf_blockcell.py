"""TensorFlow 2: one fused kernel per time step, ``tf.raw_ops.LSTMBlockCell`` /
``GRUBlockCell``, stepped by ``tf.scan`` inside a ``tf.function``.

Today's form of the seed's "LSTMBlockCell". Each op takes [x, h] against one stacked
(inputs + units, gates * units) matrix and does the gate arithmetic in one kernel.
TensorFlow registers no gradient for these two ops (the TF1 contrib wrappers did), so
each is paired with its ``...Grad`` op through ``tf.custom_gradient``.

Layouts: LSTMBlockCell's gate order is i, c, f, o (canonical: i, f, g, o, c = g);
GRUBlockCell's is r, u, c (canonical: r, z, n, u = z, c = n). GRUBlockCell is the
reset-before GRU, c = tanh([x, r * h] W_c + b_c), so it trains that formulation from the
same weights. The canonical model's two bias vectors stay two variables; the ops get
their sum. The stack around the cell and the head are tf-cell's (tf_cell.Net).
"""

import numpy as np
import tensorflow as tf

from . import tf_cell
from .base import Config, Trainer
from .tf_common import batch_tensors, directions, reorder_gates

LSTM_ORDER = [0, 2, 1, 3]  # canonical i, f, g, o <-> LSTMBlockCell's i, c, f, o (self-inverse)


@tf.custom_gradient
def lstm_block_cell(x, c, h, w, b):
    no_peephole = tf.zeros_like(b[: c.shape[1]])
    cell = dict(x=x, cs_prev=c, h_prev=h, w=w, wci=no_peephole, wcf=no_peephole,
                wco=no_peephole, b=b, use_peephole=False)
    # forget_bias 0 and no cell clipping (its default clips c to [-3, 3]): the plain LSTM.
    i, cs, f, o, ci, co, h_new = tf.raw_ops.LSTMBlockCell(**cell, forget_bias=0.0, cell_clip=-1.0)

    def grad(dh, dcs):
        dc, dicfo, _, _, _ = tf.raw_ops.LSTMBlockCellGrad(
            **cell, i=i, cs=cs, f=f, o=o, ci=ci, co=co, cs_grad=dcs, h_grad=dh)
        dxh = tf.matmul(dicfo, w, transpose_b=True)  # back through [x, h] @ w
        xh = tf.concat([x, h], axis=1)
        n = x.shape[1]
        return (dxh[:, :n], dc, dxh[:, n:], tf.matmul(xh, dicfo, transpose_a=True),
                tf.reduce_sum(dicfo, axis=0))

    return (h_new, cs), grad


@tf.custom_gradient
def gru_block_cell(x, h, w_ru, w_c, b_ru, b_c):
    r, u, c, h_new = tf.raw_ops.GRUBlockCell(x=x, h_prev=h, w_ru=w_ru, w_c=w_c, b_ru=b_ru, b_c=b_c)

    def grad(dh):
        dx, dh_prev, dc_bar, dru_bar = tf.raw_ops.GRUBlockCellGrad(
            x=x, h_prev=h, w_ru=w_ru, w_c=w_c, b_ru=b_ru, b_c=b_c, r=r, u=u, c=c, d_h=dh)
        dw_ru = tf.matmul(tf.concat([x, h], axis=1), dru_bar, transpose_a=True)
        dw_c = tf.matmul(tf.concat([x, r * h], axis=1), dc_bar, transpose_a=True)
        return (dx, dh_prev, dw_ru, dw_c, tf.reduce_sum(dru_bar, axis=0),
                tf.reduce_sum(dc_bar, axis=0))

    return h_new, grad


def lstm(x, w, b_ih, b_hh):
    b = b_ih + b_hh

    def step(state, x_t):
        h, c = state
        return lstm_block_cell(x_t, c, h, w, b)

    zeros = tf.zeros((x.shape[1], w.shape[1] // 4))
    h, _ = tf.scan(step, x, initializer=(zeros, zeros))
    return h


def gru(x, w_ru, w_c, b_ih, b_hh):
    hidden = w_c.shape[1]
    b = b_ih + b_hh  # reset-before: both n biases sit outside r, so they simply add up
    b_ru, b_c = b[: 2 * hidden], b[2 * hidden:]
    return tf.scan(lambda h, x_t: gru_block_cell(x_t, h, w_ru, w_c, b_ru, b_c),
                   x, initializer=tf.zeros((x.shape[1], hidden)))


class Net(tf_cell.Net):
    """tf-cell's stack and head, each direction one block-cell op per step; variables in
    the ops' layout: one stacked [x, h] matrix (two for the GRU) per direction."""

    def to_layout(self, cw):
        s, out = self.s, {"head.w": cw["head.w"].T, "head.b": cw["head.b"]}
        for p in directions(s):
            w = np.concatenate([cw[p + "w_ih"], cw[p + "w_hh"]], axis=1).T  # (I + H, G * H)
            b_ih, b_hh = cw[p + "b_ih"], cw[p + "b_hh"]
            if s.cell == "lstm":
                out[p + "w"] = reorder_gates(w, 4, LSTM_ORDER, axis=1)
                b_ih, b_hh = reorder_gates(b_ih, 4, LSTM_ORDER), reorder_gates(b_hh, 4, LSTM_ORDER)
            else:
                out[p + "w_ru"], out[p + "w_c"] = np.split(w, [2 * s.hidden], axis=1)
            out[p + "b_ih"], out[p + "b_hh"] = b_ih, b_hh
        return out

    def from_layout(self, a):
        s, out = self.s, {"head.w": a["head.w"].T, "head.b": a["head.b"]}
        for p in directions(s):
            b_ih, b_hh = a[p + "b_ih"], a[p + "b_hh"]
            if s.cell == "lstm":
                w = reorder_gates(a[p + "w"], 4, LSTM_ORDER, axis=1).T  # (G * H, I + H)
                b_ih, b_hh = reorder_gates(b_ih, 4, LSTM_ORDER), reorder_gates(b_hh, 4, LSTM_ORDER)
            else:
                w = np.concatenate([a[p + "w_ru"], a[p + "w_c"]], axis=1).T
            out[p + "w_ih"], out[p + "w_hh"] = np.split(w, [w.shape[1] - s.hidden], axis=1)
            out[p + "b_ih"], out[p + "b_hh"] = b_ih, b_hh
        return out

    def direction(self, x, p):
        if self.s.cell == "lstm":
            return lstm(x, *(self.params[p + k] for k in ("w", "b_ih", "b_hh")))
        return gru(x, *(self.params[p + k] for k in ("w_ru", "w_c", "b_ih", "b_hh")))


def build(cfg: Config) -> Trainer:
    s = cfg.scenario
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
                   {"adam": "epsilon-hat", **({"gru": "reset-before"} if s.cell == "gru" else {})},
                   forward=lambda: float(eval_loss(x, y, lengths)))
