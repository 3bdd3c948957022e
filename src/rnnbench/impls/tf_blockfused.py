"""TensorFlow 2: ``tf.raw_ops.BlockLSTMV2``, a whole sequence of one LSTM direction in
one op (the seed's later "LSTMBlockFusedCell"), inside a ``tf.function``.

The op takes [x, h] against one stacked (inputs + units, 4 * units) matrix with gates
i, f, c, o (the canonical order; unlike LSTMBlockCell's i, c, f, o). The gradient that
TensorFlow 2.21 registers for BlockLSTMV2 is wrong: it calls the V1 BlockLSTMGrad kernel,
which assumes the V1 gate order i, c, f, o (measured: weight updates off by 100%+). So
the op is paired with its own BlockLSTMGradV2 through ``tf.custom_gradient``.
There is no fused GRU op. The canonical model's two bias vectors stay two variables;
the op gets their sum.
"""

import numpy as np
import tensorflow as tf

from .base import Config, Trainer, Unsupported
from .tf_common import directions, fit, head_loss, rnn_stack


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


def build(cfg: Config) -> Trainer:
    s = cfg.scenario
    if s.cell != "lstm":
        raise Unsupported("TensorFlow has no fused whole-sequence GRU op (BlockLSTMV2 is LSTM only)")

    # Canonical per-direction weights <-> the op's stacked (I + H, 4H) matrix.
    arrays = {"head.w": cfg.weights["head.w"].T, "head.b": cfg.weights["head.b"]}
    for p in directions(s):
        cw = {k: cfg.weights[p + k] for k in ("w_ih", "w_hh", "b_ih", "b_hh")}
        arrays[p + "w"] = np.concatenate([cw["w_ih"], cw["w_hh"]], axis=1).T
        arrays[p + "b_ih"], arrays[p + "b_hh"] = cw["b_ih"], cw["b_hh"]
    params = {name: tf.Variable(a, name=name) for name, a in arrays.items()}

    def to_canonical(a):
        out = {"head.w": a["head.w"].T, "head.b": a["head.b"]}
        for p in directions(s):
            out[p + "w_ih"], out[p + "w_hh"] = np.split(a[p + "w"].T, [-s.hidden], axis=1)
            out[p + "b_ih"], out[p + "b_hh"] = a[p + "b_ih"], a[p + "b_hh"]
        return out

    def run(x, p):
        return block_lstm(x, params[p + "w"], params[p + "b_ih"] + params[p + "b_hh"])

    def loss_fn(x, y, lengths):
        outputs = rnn_stack(s, run, x, lengths)
        return head_loss(s, outputs, y, lengths, params["head.w"], params["head.b"])

    return fit(cfg, params, loss_fn, to_canonical)
