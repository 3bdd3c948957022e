"""What the TensorFlow scripts share: the batch as tensors, the bidirectional stack over
per-sequence lengths, the Dense head with its loss, Adam, and the train step.

TensorFlow's RNN ops are time-major, so every script works on (T, B, features).
"""

import numpy as np
import tensorflow as tf

from .base import Config, Trainer


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


def rnn_stack(s, run, x, lengths):
    """The stacked, optionally bidirectional RNN. ``run(x, "l0.fw.")`` runs one direction
    of one layer over time-major ``x`` and returns its (T, B, H) outputs.

    Variable lengths need no mask: outputs before a sequence's end never see its padding,
    and the backward direction runs on each sequence reversed within its own length
    (tf.reverse_sequence leaves the padding in place), so it starts at the true end."""
    def reverse(t):
        return tf.reverse_sequence(t, lengths, seq_axis=0, batch_axis=1)

    for k in range(s.layers):
        out = run(x, f"l{k}.fw.")
        if s.bidirectional:
            out = tf.concat([out, reverse(run(reverse(x), f"l{k}.bw."))], axis=2)
        x = out
    return x


def head_loss(s, outputs, labels, lengths, w, b):
    """Dense head on the (T, B, D) RNN outputs, then the loss.

    CE: logits at the last time step, mean softmax cross-entropy. CTC: logits at every
    step, blank 0, mean over the batch of the per-sequence negative log-likelihoods."""
    if s.loss == "ce":
        logits = tf.matmul(outputs[-1], w) + b
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    logits = tf.tensordot(outputs, w, axes=1) + b
    label_length = None if isinstance(labels, tf.SparseTensor) else tf.fill(
        tf.shape(labels)[:1], tf.shape(labels)[1])  # dense: every sequence has L labels
    nll = tf.nn.ctc_loss(labels, logits, label_length=label_length, logit_length=lengths,
                         logits_time_major=True, blank_index=0)
    return tf.reduce_mean(nll)


class Adam:
    """Adam in TF ops, the way TensorFlow's and Keras's Adam compute it ("epsilon-hat":
    eps is added to sqrt(v) and the bias corrections are folded into the step size)."""

    def __init__(self, variables, lr, eps, beta_1=0.9, beta_2=0.999):
        self.params = variables
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self.t = tf.Variable(0.0, trainable=False)
        self.lr, self.eps, self.beta_1, self.beta_2 = lr, eps, beta_1, beta_2

    def apply(self, grads):
        t = self.t.assign_add(1.0)
        alpha = self.lr * tf.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m = m.assign_add((g - m) * (1 - self.beta_1))
            v = v.assign_add((tf.square(g) - v) * (1 - self.beta_2))
            p.assign_sub(alpha * m / (tf.sqrt(v) + self.eps))


def fit(cfg: Config, params: dict, loss_fn, to_canonical, jit_compile=False, **notes) -> Trainer:
    """Train ``params`` (name -> tf.Variable) with Adam on the toy batch.

    ``loss_fn(x, labels, lengths)`` is the model and its loss; the train step is one
    tf.function with a fixed input signature, so it is traced once and never again.
    ``to_canonical(dict of arrays)`` converts the parameters back to the canonical layout."""
    x, y, lengths = batch_tensors(cfg, sparse_labels=not jit_compile)
    variables = list(params.values())
    optimizer = Adam(variables, cfg.lr, cfg.adam_eps)

    @tf.function(input_signature=[tf.type_spec_from_value(t) for t in (x, y, lengths)],
                 jit_compile=jit_compile)
    def train_step(x, y, lengths):
        with tf.GradientTape() as tape:
            loss = loss_fn(x, y, lengths)
        optimizer.apply(tape.gradient(loss, variables))
        return loss

    def weights():
        return to_canonical({name: v.numpy() for name, v in params.items()})

    parameters = sum(int(np.prod(v.shape)) for v in variables)
    return Trainer(lambda: float(train_step(x, y, lengths)), weights, parameters,
                   {"adam": "epsilon-hat", **notes})
