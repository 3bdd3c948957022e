"""TensorFlow 2: ``tf.raw_ops.CudnnRNNV3``, the whole (bidirectional, stacked) network in
one cuDNN call inside a ``tf.function`` (the seed's "cudnnLSTM"). GPU only.

cuDNN keeps all weights in one opaque buffer whose layout it does not promise, so the
canonical weights go in through CudnnRNNCanonicalToParamsV2 and come back out through
CudnnRNNParamsToCanonicalV2, and the buffer itself is the one trainable variable (as in
TF1's CudnnLSTM layer); Adam is elementwise, so it trains it exactly like the canonical
tensors. cuDNN's canonical form is the canonical layout itself: per layer and direction
(l0 fw, l0 bw, l1 fw, ...) one (units, inputs) input matrix per gate, then one (units,
units) recurrent matrix per gate, then the input and the recurrent bias of each gate;
gates i, f, g, o (LSTM) and r, z, n with the reset-after GRU. With per-sequence lengths
cuDNN itself starts each backward direction at the sequence's true end.
"""

import numpy as np
import tensorflow as tf

from .base import Config, Trainer, Unsupported
from .tf_common import directions, fit, head_loss


def build(cfg: Config) -> Trainer:
    s = cfg.scenario
    if cfg.device != "cuda":
        raise Unsupported("CudnnRNNV3 needs a CUDA GPU")
    mode = dict(rnn_mode=s.cell, input_mode="linear_input",
                direction="bidirectional" if s.bidirectional else "unidirectional")
    shape = dict(num_layers=s.layers, num_units=s.hidden, input_size=s.features)

    def gate_blocks(*names):  # canonical tensors -> cuDNN's list of per-gate blocks
        return [block for p in directions(s) for n in names
                for block in np.split(cfg.weights[p + n], s.gates)]

    weights, biases = gate_blocks("w_ih", "w_hh"), gate_blocks("b_ih", "b_hh")
    with tf.device("/GPU:0"):
        params = {"rnn": tf.Variable(tf.raw_ops.CudnnRNNCanonicalToParamsV2(
                      weights=weights, biases=biases, **shape, **mode)),
                  "head.w": tf.Variable(cfg.weights["head.w"].T),
                  "head.b": tf.Variable(cfg.weights["head.b"])}

    def to_canonical(arrays):
        with tf.device("/GPU:0"):
            w, b = tf.raw_ops.CudnnRNNParamsToCanonicalV2(
                params=arrays["rnn"], num_params_weights=len(weights),
                num_params_biases=len(biases), **shape, **mode)
        out = {"head.w": arrays["head.w"].T, "head.b": arrays["head.b"]}
        g = s.gates
        for d, p in enumerate(directions(s)):
            k = 2 * g * d  # this direction's first gate block
            out[p + "w_ih"] = np.concatenate([t.numpy() for t in w[k: k + g]])
            out[p + "w_hh"] = np.concatenate([t.numpy() for t in w[k + g: k + 2 * g]])
            out[p + "b_ih"] = np.concatenate([t.numpy() for t in b[k: k + g]])
            out[p + "b_hh"] = np.concatenate([t.numpy() for t in b[k + g: k + 2 * g]])
        return out

    def loss_fn(x, y, lengths):
        zeros = tf.zeros((s.layers * s.directions, x.shape[1], s.hidden))  # h0 and c0
        outputs, _, _, _, _ = tf.raw_ops.CudnnRNNV3(
            input=x, input_h=zeros, input_c=zeros, params=params["rnn"], sequence_lengths=lengths,
            is_training=True, time_major=True, **mode)
        return head_loss(s, outputs, y, lengths, params["head.w"], params["head.b"])

    notes = {"gru": "reset-after"} if s.cell == "gru" else {}
    return fit(cfg, params, loss_fn, to_canonical, kernel="cuDNN", **notes)
