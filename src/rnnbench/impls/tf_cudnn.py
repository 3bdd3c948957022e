"""TensorFlow 2: ``tf.raw_ops.CudnnRNNV3``, the whole (bidirectional, stacked) network in
one cuDNN call inside a ``tf.function`` (the seed's "cudnnLSTM"). GPU only.

cuDNN keeps all weights in one opaque buffer whose layout it does not promise, so the
canonical weights go in through CudnnRNNCanonicalToParamsV2 and come back out through
CudnnRNNParamsToCanonicalV2, and the buffer itself is the one trainable variable (as in
TF1's CudnnLSTM layer). cuDNN's canonical form is the canonical layout itself: per layer
and direction (l0 fw, l0 bw, l1 fw, ...) one (units, inputs) input matrix per gate, then
one (units, units) recurrent matrix per gate, then the input and the recurrent bias of
each gate; gates i, f, g, o (LSTM) and r, z, n with the reset-after GRU. With per-sequence lengths
cuDNN itself starts each backward direction at the sequence's true end.
"""

import numpy as np
import tensorflow as tf

from . import tf_cell
from .base import Config, Trainer, Unsupported
from .tf_common import batch_tensors, directions


def mode(s):
    return dict(rnn_mode=s.cell, input_mode="linear_input",
                direction="bidirectional" if s.bidirectional else "unidirectional")


def shape(s):
    return dict(num_layers=s.layers, num_units=s.hidden, input_size=s.features)


class Net(tf_cell.Net):
    """tf-cell's head on one cuDNN call for the whole stack; variables: the opaque buffer
    ("rnn") and the head."""

    def __init__(self, s, weights):
        with tf.device("/GPU:0"):
            super().__init__(s, weights)

    def to_layout(self, cw):  # canonical tensors -> cuDNN's per-gate blocks -> the buffer
        s = self.s
        blocks = lambda *kinds: [b for p in directions(s) for k in kinds for b in np.split(cw[p + k], s.gates)]
        rnn = tf.raw_ops.CudnnRNNCanonicalToParamsV2(
            weights=blocks("w_ih", "w_hh"), biases=blocks("b_ih", "b_hh"), **shape(s), **mode(s))
        return {"rnn": rnn, "head.w": cw["head.w"].T, "head.b": cw["head.b"]}

    def from_layout(self, a):
        g, n = self.s.gates, 2 * self.s.gates * len(directions(self.s))  # n: weight (and bias) blocks
        join = lambda blocks: np.concatenate([t.numpy() for t in blocks])
        with tf.device("/GPU:0"):
            w, b = tf.raw_ops.CudnnRNNParamsToCanonicalV2(
                params=a["rnn"], num_params_weights=n, num_params_biases=n, **shape(self.s), **mode(self.s))
        out = {"head.w": a["head.w"].T, "head.b": a["head.b"]}
        for d, p in enumerate(directions(self.s)):
            k = 2 * g * d  # this direction's first gate block
            out[p + "w_ih"], out[p + "w_hh"] = join(w[k: k + g]), join(w[k + g: k + 2 * g])
            out[p + "b_ih"], out[p + "b_hh"] = join(b[k: k + g]), join(b[k + g: k + 2 * g])
        return out

    def rnn(self, x, lengths):
        zeros = tf.zeros((self.s.layers * self.s.directions, x.shape[1], self.s.hidden))  # h0 and c0
        outputs, _, _, _, _ = tf.raw_ops.CudnnRNNV3(
            input=x, input_h=zeros, input_c=zeros, params=self.params["rnn"], sequence_lengths=lengths,
            is_training=True, time_major=True, **mode(self.s))
        return outputs


def build(cfg: Config) -> Trainer:
    s = cfg.scenario
    if cfg.device != "cuda":
        raise Unsupported("CudnnRNNV3 needs a CUDA GPU")
    x, y, lengths = batch_tensors(cfg)
    model = Net(s, cfg.weights)

    def loss_fn(logits, y, lengths):  # CTC: the mean over the batch of per-sequence NLLs
        if s.loss == "ce":
            return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        return tf.reduce_mean(tf.nn.ctc_loss(y, logits, None, lengths, logits_time_major=True, blank_index=0))

    # TensorFlow's Adam is Keras's (epsilon-hat form, see tf_cell.py). Adam is elementwise,
    # so it trains the opaque buffer exactly as it would the canonical tensors.
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
    notes = {"adam": "epsilon-hat", "kernel": "cuDNN", **({"gru": "reset-after"} if s.cell == "gru" else {})}
    return Trainer(lambda: float(train_step(x, y, lengths)), model.to_canonical, parameters, notes,
                   forward=lambda: float(eval_loss(x, y, lengths)))
