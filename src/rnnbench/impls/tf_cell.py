"""TensorFlow 2: the cell's math in TF ops, stepped by ``tf.scan`` inside a ``tf.function``.

Today's form of the seed's "TensorFlow LSTMCell" (``dynamic_rnn``). The input projection
of all time steps is one matrix product before the loop, so the loop body is only the
recurrent product and the gate arithmetic. Weights in Keras's layout: kernels are
(inputs, units), the canonical matrices transposed; gate order and the two bias vectors
stay canonical. tf-blockcell, tf-blockfused and tf-cudnn reuse this script's ``Net`` with
other ops inside.
"""

import numpy as np
import tensorflow as tf

from .base import Config, Trainer
from .tf_common import batch_tensors

KINDS = ("w_ih", "w_hh", "b_ih", "b_hh")


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


class Net(tf.Module):
    """The stacked, optionally bidirectional RNN and the Dense head, as TF variables.

    Variable lengths need no mask: outputs before a sequence's end never see its padding,
    and the backward direction runs on each sequence reversed within its own length
    (tf.reverse_sequence leaves the padding in place), so it starts at the true end.
    """

    def __init__(self, s, weights):
        super().__init__()
        self.s = s
        self.params = {name: tf.Variable(w, name=name) for name, w in self.to_layout(weights).items()}

    def to_layout(self, weights):  # canonical (out, in) matrices -> (in, out) kernels
        return {name: w.T if w.ndim == 2 else w for name, w in weights.items()}

    def from_layout(self, arrays):
        return self.to_layout(arrays)  # a transpose is its own inverse

    def to_canonical(self):
        return self.from_layout({name: v.numpy() for name, v in self.params.items()})

    def direction(self, x, prefix):
        """One direction of one layer (``prefix`` "l0.fw."): time-major x -> (T, B, H)."""
        cell = {"lstm": lstm, "gru": gru}[self.s.cell]
        return cell(x, *(self.params[prefix + k] for k in KINDS))

    def rnn(self, x, lengths):
        reverse = lambda t: tf.reverse_sequence(t, lengths, seq_axis=0, batch_axis=1)
        for k in range(self.s.layers):
            out = self.direction(x, f"l{k}.fw.")
            if self.s.bidirectional:
                out = tf.concat([out, reverse(self.direction(reverse(x), f"l{k}.bw."))], axis=2)
            x = out
        return x

    def __call__(self, x, lengths):
        """Logits: (B, C) at the last step (CE) or (T, B, C) at every step (CTC)."""
        h = self.rnn(x, lengths)  # (T, B, D)
        h = h[-1] if self.s.loss == "ce" else h
        return tf.tensordot(h, self.params["head.w"], axes=1) + self.params["head.b"]


def build(cfg: Config) -> Trainer:
    s = cfg.scenario
    x, y, lengths = batch_tensors(cfg)
    model = Net(s, cfg.weights)

    def loss_fn(logits, y, lengths):  # CTC: the mean over the batch of per-sequence NLLs
        if s.loss == "ce":
            return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        return tf.reduce_mean(tf.nn.ctc_loss(y, logits, None, lengths, logits_time_major=True, blank_index=0))

    # TensorFlow's Adam is Keras's (``import tensorflow`` loads Keras): "epsilon-hat" form,
    # eps added to sqrt(v) before the bias correction.
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
                   {"adam": "epsilon-hat", **({"gru": "reset-after"} if s.cell == "gru" else {})},
                   forward=lambda: float(eval_loss(x, y, lengths)))
