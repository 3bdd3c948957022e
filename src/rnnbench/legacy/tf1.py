"""TensorFlow 1.2 (the seed's version): a graph, a session, ``tf.contrib.rnn`` cells run
by ``dynamic_rnn``, ``tf.train.AdamOptimizer`` and ``tf.nn.ctc_loss``.

Three implementations, as the seed compared them: tf1-cell (``LSTMCell`` / ``GRUCell``,
the cell written in TensorFlow ops), tf1-blockcell (``LSTMBlockCell`` / ``GRUBlockCell``,
one fused op per step) and tf1-blockfused (``LSTMBlockFusedCell``: the whole sequence in
one op; TensorFlow 1.2 has no fused GRU, so its GRU scenario is skipped).

Each layer is bidirectional through ``tf.nn.bidirectional_dynamic_rnn`` (the fused cell:
itself and ``TimeReversedFusedRNN``); with ``sequence_length`` (CTC) the backward
direction reads each sequence reversed within its length (``tf.reverse_sequence``) and
outputs past a sequence's end are zero. ``tf.nn.ctc_loss`` takes the LAST class as the
blank: the logits of the canonical blank (class 0) move to the end and the labels shift
down by one.

Weights: TensorFlow's cells hold one (inputs + hidden, gates * hidden) kernel over
``[x, h]`` and one bias per gate (loaded as ``b_ih + b_hh``: notes["bias"] = "single").
LSTM gates in the order i, j (the candidate), f, o. The GRU is the original one
("reset-before": the reset gate scales h before the candidate's matmul, so its single
bias is exact) with a (.., 2H) r, u kernel and a (.., H) candidate kernel; u is the
canonical z. Forget biases are 0 (``forget_bias=0.0``): the canonical weights hold them.
"""

import numpy as np
import tensorflow as tf

from .base import Trainer, Unsupported, directions, gates, single_bias, split_single_bias
from .runtime import session_config

LSTM_ORDER = "igfo"  # TensorFlow's i, j, f, o, in canonical letters (canonical: i, f, g, o)


def cell_kernels(w, prefix, s):
    """Canonical -> TensorFlow: [(kernel, bias)] of one direction, as its variables hold
    them (LSTM: one pair; GRU: the r, u pair, then the candidate's)."""
    w_ih, w_hh, b = w[prefix + ".w_ih"], w[prefix + ".w_hh"], single_bias(w, prefix)
    if s.cell == "lstm":
        kernel = np.concatenate([w_ih, w_hh], 1)
        return [(gates(kernel, LSTM_ORDER, "ifgo").T, gates(b, LSTM_ORDER, "ifgo"))]
    H = s.hidden
    return [(np.concatenate([w_ih[:2 * H], w_hh[:2 * H]], 1).T, b[:2 * H]),
            (np.concatenate([w_ih[2 * H:], w_hh[2 * H:]], 1).T, b[2 * H:])]


def canonical_kernels(values, prefix, s, w0):
    """TensorFlow -> canonical: the inverse of ``cell_kernels``."""
    inputs = w0[prefix + ".w_ih"].shape[1]
    if s.cell == "lstm":
        (kernel, b), = values
        kernel, b = gates(kernel.T, "ifgo", LSTM_ORDER), gates(b, "ifgo", LSTM_ORDER)
    else:
        kernel = np.concatenate([values[0][0].T, values[1][0].T])
        b = np.concatenate([values[0][1], values[1][1]])
    out = {prefix + ".w_ih": kernel[:, :inputs], prefix + ".w_hh": kernel[:, inputs:]}
    out.update(split_single_bias(b, w0, prefix))
    return out


def direction_variables(scope, s):
    """A direction's variables as [(kernel, bias)]: told apart by shape (the GRU's r, u
    pair has 2H columns, its candidate's H), so that the cells' own names do not matter."""
    found = [v for v in tf.trainable_variables() if v.name.startswith(scope + "/")]
    kernels = sorted((v for v in found if v.get_shape().ndims == 2), key=lambda v: -int(v.get_shape()[1]))
    biases = sorted((v for v in found if v.get_shape().ndims == 1), key=lambda v: -int(v.get_shape()[0]))
    return list(zip(kernels, biases))


def rnn_layer(kind, s, x, lengths, k):
    """Layer k over x (B, T, I): its outputs (B, T, H * directions) and variable scopes."""
    if kind == "blockfused":
        x_tm = tf.transpose(x, [1, 0, 2])  # the fused cell is time-major
        fw = tf.contrib.rnn.LSTMBlockFusedCell(s.hidden, forget_bias=0.0)
        out = [fw(x_tm, sequence_length=lengths, dtype=tf.float32, scope="l{}/fw".format(k))[0]]
        if s.bidirectional:
            bw = tf.contrib.rnn.TimeReversedFusedRNN(tf.contrib.rnn.LSTMBlockFusedCell(s.hidden, forget_bias=0.0))
            out.append(bw(x_tm, sequence_length=lengths, dtype=tf.float32, scope="l{}/bw".format(k))[0])
        return tf.transpose(tf.concat(out, 2), [1, 0, 2])
    cells = {"cell": {"lstm": lambda: tf.contrib.rnn.LSTMCell(s.hidden, forget_bias=0.0),
                      "gru": lambda: tf.contrib.rnn.GRUCell(s.hidden)},
             "blockcell": {"lstm": lambda: tf.contrib.rnn.LSTMBlockCell(s.hidden, forget_bias=0.0),
                           "gru": lambda: tf.contrib.rnn.GRUBlockCell(s.hidden)}}[kind][s.cell]
    if not s.bidirectional:
        return tf.nn.dynamic_rnn(cells(), x, sequence_length=lengths, dtype=tf.float32, scope="l{}/fw".format(k))[0]
    (fw, bw), _ = tf.nn.bidirectional_dynamic_rnn(cells(), cells(), x, sequence_length=lengths, dtype=tf.float32,
                                                  scope="l{}".format(k))  # l{k}/fw, l{k}/bw
    return tf.concat([fw, bw], 2)


def build(cfg, kind):
    s, b = cfg.scenario, cfg.batch
    if kind == "blockfused" and s.cell == "gru":
        raise Unsupported("TensorFlow 1.2 has no fused GRU (LSTMBlockFusedCell is LSTM only)")
    graph = tf.Graph()
    with graph.as_default():
        x = tf.constant(b.x)
        lengths = tf.constant(b.lengths) if s.loss == "ctc" else None
        h = x
        for k in range(s.layers):
            h = rnn_layer(kind, s, h, lengths, k)
        if s.loss == "ce":
            logits = tf.layers.dense(h[:, -1], s.classes, name="head")
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.constant(b.y.astype(np.int64)),
                                                                                 logits=logits))
        else:
            logits = tf.layers.dense(h, s.classes, name="head")
            logits = tf.concat([logits[:, :, 1:], logits[:, :, :1]], 2)  # the blank last
            B, L = b.y.shape
            labels = tf.SparseTensor(np.array([(i, j) for i in range(B) for j in range(L)], dtype=np.int64),
                                     (b.y - 1).reshape(-1), (B, L))
            loss = tf.reduce_mean(tf.nn.ctc_loss(labels, logits, b.lengths, time_major=False))
        train_op = tf.train.AdamOptimizer(cfg.lr, epsilon=cfg.adam_eps).minimize(loss)
        variables = dict((p, direction_variables(p.replace(".", "/"), s)) for layer in directions(s) for p in layer)
        head = [v for v in tf.trainable_variables() if v.name.startswith("head/")]
        head = sorted(head, key=lambda v: -v.get_shape().ndims)  # kernel, bias
        sess = tf.Session(graph=graph, config=session_config(cfg.threads))
        sess.run(tf.global_variables_initializer())
        for prefix, pairs in variables.items():
            for (kv, bv), (kernel, bias) in zip(pairs, cell_kernels(cfg.weights, prefix, s)):
                kv.load(kernel, sess)
                bv.load(bias, sess)
        head[0].load(cfg.weights["head.w"].T, sess)
        head[1].load(cfg.weights["head.b"], sess)
        parameters = int(sum(np.prod(v.get_shape().as_list()) for v in tf.trainable_variables()))
    graph.finalize()

    def step():
        return sess.run([train_op, loss])[1]

    def weights():
        values = sess.run(variables)
        out = {"head.w": sess.run(head[0]).T, "head.b": sess.run(head[1])}
        for prefix, pairs in values.items():
            out.update(canonical_kernels(pairs, prefix, s, cfg.weights))
        return dict((k, np.ascontiguousarray(v, dtype=np.float32)) for k, v in out.items())

    notes = {"adam": "epsilon-hat", "bias": "single", "kernel": kind}
    if s.cell == "gru":
        notes["gru"] = "reset-before"
    return Trainer(step, weights, parameters, notes)


def build_cell(cfg):
    return build(cfg, "cell")


def build_blockcell(cfg):
    return build(cfg, "blockcell")


def build_blockfused(cfg):
    return build(cfg, "blockfused")
