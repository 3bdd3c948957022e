"""TensorFlow 2: the cell's math in TF ops, stepped by ``tf.scan`` inside a ``tf.function``.

Today's form of the seed's "TensorFlow LSTMCell" (``dynamic_rnn``). The input projection
of all time steps is one matrix product before the loop, so the loop body is only the
recurrent product and the gate arithmetic. Weights in Keras's layout: kernels are
(inputs, units), the canonical matrices transposed; gate order and the two bias vectors
stay canonical.
"""

import tensorflow as tf

from .base import Config, Trainer
from .tf_common import fit, head_loss, rnn_stack


def lstm(x, w_ih, w_hh, b_ih, b_hh):
    """One LSTM direction over time-major ``x``; gates i, f, g, o."""
    xw = tf.tensordot(x, w_ih, axes=1) + b_ih  # every time step at once

    def step(state, xw_t):
        h, c = state
        i, f, g, o = tf.split(xw_t + tf.matmul(h, w_hh) + b_hh, 4, axis=1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        return tf.sigmoid(o) * tf.tanh(c), c

    zeros = tf.zeros((x.shape[1], w_hh.shape[0]))
    h, _ = tf.scan(step, xw, initializer=(zeros, zeros))
    return h


def gru(x, w_ih, w_hh, b_ih, b_hh):
    """One GRU direction, gates r, z, n, reset-after (cuDNN's formulation):
    n = tanh(x W_n + b_in + r * (h U_n + b_hn)), h' = (1 - z) * n + z * h."""
    xw = tf.tensordot(x, w_ih, axes=1) + b_ih

    def step(h, xw_t):
        x_r, x_z, x_n = tf.split(xw_t, 3, axis=1)
        h_r, h_z, h_n = tf.split(tf.matmul(h, w_hh) + b_hh, 3, axis=1)
        r = tf.sigmoid(x_r + h_r)
        z = tf.sigmoid(x_z + h_z)
        n = tf.tanh(x_n + r * h_n)
        return (1 - z) * n + z * h

    return tf.scan(step, xw, initializer=tf.zeros((x.shape[1], w_hh.shape[0])))


def build(cfg: Config, jit_compile: bool = False) -> Trainer:
    s = cfg.scenario
    transpose = lambda w: w.T if w.ndim == 2 else w  # canonical (out, in) <-> kernel (in, out)
    params = {name: tf.Variable(transpose(w), name=name) for name, w in cfg.weights.items()}
    cell = {"lstm": lstm, "gru": gru}[s.cell]

    def run(x, prefix):
        return cell(x, *(params[prefix + k] for k in ("w_ih", "w_hh", "b_ih", "b_hh")))

    def loss_fn(x, y, lengths):
        outputs = rnn_stack(s, run, x, lengths)
        return head_loss(s, outputs, y, lengths, params["head.w"], params["head.b"])

    def to_canonical(arrays):
        return {name: transpose(w) for name, w in arrays.items()}

    notes = {"gru": "reset-after"} if s.cell == "gru" else {}
    return fit(cfg, params, loss_fn, to_canonical, jit_compile=jit_compile, **notes)
