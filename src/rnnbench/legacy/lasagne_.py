"""Lasagne 0.1 on Theano 0.9, as the seed trained it: ``LSTMLayer`` / ``GRULayer`` (Theano
``scan`` inside), one per direction with ``backwards=True`` for the backward one,
``mask_input`` for variable lengths, a ``DenseLayer`` head, ``lasagne.updates.adam`` and
one compiled ``theano.function`` for the train step.

Lasagne 0.1 (its only release) imports ``theano.tensor.signal.downsample``, which Theano
0.9 removed: its successor, ``theano.tensor.signal.pool``, is registered under the old
name before the import (only Lasagne's pooling layers, unused here, touch it).

CTC: the seed used warp-ctc's Theano binding, which cannot be had today; the loss here is
the CTC forward algorithm written in Theano ``scan`` (log space, the whole batch at once,
each sequence's alphas held once past its length), the per-sequence negative
log-likelihoods averaged over the batch, blank 0.

With a mask, a masked step keeps the previous state; the backward layer reads the
sequence from the end, so over the padding its state stays zero and it starts at each
sequence's true end. Padded outputs never reach the loss.

Weights: Lasagne keeps one (inputs, H) / (H, H) matrix and one bias per gate (loaded as
``b_ih + b_hh``: notes["bias"] = "single"); LSTM without peepholes (its default has them).
Its GRU computes ``h' = (1 - u) h + u c`` (so u = 1 - z: loaded negated) and
``c = tanh(W_c x + b_c + r * (W_hc h))``: the reset gate applies after the matmul as in
the canonical formulation, but its one bias stays outside the reset gate: verified against
the reference's "reset-after-bias-outside" formulation (``b_c = b_in + b_hn``).
"""

import sys

import numpy as np
import theano
import theano.tensor as T
import theano.tensor.signal.pool

sys.modules.setdefault("theano.tensor.signal.downsample", theano.tensor.signal.pool)

import lasagne  # noqa: E402
from lasagne.layers import (ConcatLayer, DenseLayer, GRULayer, Gate, InputLayer, LSTMLayer,  # noqa: E402
                            ReshapeLayer, SliceLayer)

from .base import Trainer, directions, single_bias, split_single_bias  # noqa: E402

LSTM_GATES = ("ingate", "forgetgate", "cell", "outgate")  # canonical i, f, g, o
GRU_GATES = ("resetgate", "updategate", "hidden_update")  # canonical r, z (negated), n
NEG = -1e30  # log(0) for the CTC alphas, finite so that gradients stay finite


def gate_weights(w, prefix, s):
    """Canonical -> one Lasagne Gate per gate, holding its initial values."""
    n = s.gates
    w_ih, w_hh, b = (np.split(a, n) for a in (w[prefix + ".w_ih"], w[prefix + ".w_hh"], single_bias(w, prefix)))
    sign = [1, -1, 1] if s.cell == "gru" else [1] * 4  # Lasagne's update gate is 1 - z
    tanh = lasagne.nonlinearities.tanh
    return [Gate(W_in=sign[g] * w_ih[g].T, W_hid=sign[g] * w_hh[g].T, b=sign[g] * b[g], W_cell=None,
                 nonlinearity=tanh if g == 2 else lasagne.nonlinearities.sigmoid) for g in range(n)]


def rnn(s, incoming, w, prefix, mask, backwards):
    gates = gate_weights(w, prefix, s)
    if s.cell == "lstm":
        return LSTMLayer(incoming, s.hidden, *gates, peepholes=False, mask_input=mask, backwards=backwards)
    return GRULayer(incoming, s.hidden, *gates, mask_input=mask, backwards=backwards)


def ctc_loss(log_probs, labels, lengths):
    """The CTC forward algorithm in scan: log_probs (B, T, C), labels (B, L) in 1..C-1,
    lengths (B,); returns the mean over the batch of -log p(labels | x). Blank 0."""
    B, L = labels.shape
    ext = T.zeros((B, 2 * L + 1), dtype="int32")
    ext = T.set_subtensor(ext[:, 1::2], labels)  # blank, l1, blank, l2, ..., blank
    skip = T.zeros_like(ext, dtype=theano.config.floatX)
    skip = T.set_subtensor(skip[:, 2:], T.neq(ext[:, 2:], 0) * T.neq(ext[:, 2:], ext[:, :-2]))
    emissions = log_probs[T.arange(B)[:, None, None], T.arange(log_probs.shape[1])[None, :, None],
                          ext[:, None, :]].dimshuffle(1, 0, 2)  # (T, B, 2L+1)
    first = T.fill(emissions[0], NEG)
    first = T.set_subtensor(first[:, :2], emissions[0][:, :2])

    def lse(*xs):
        m = T.maximum(T.maximum(xs[0], xs[1]), xs[2])
        return m + T.log(sum(T.exp(x - m) for x in xs))

    def step(e_t, t, alpha):
        shifted1 = T.concatenate([T.fill(alpha[:, :1], NEG), alpha[:, :-1]], axis=1)
        shifted2 = T.concatenate([T.fill(alpha[:, :2], NEG), alpha[:, :-2]], axis=1)
        shifted2 = T.switch(skip > 0, shifted2, NEG)
        new = lse(alpha, shifted1, shifted2) + e_t
        return T.switch(T.lt(t, lengths)[:, None], new, alpha)

    alphas, _ = theano.scan(step, sequences=[emissions[1:], T.arange(1, emissions.shape[0])], outputs_info=first)
    last = alphas[-1]
    end = T.maximum(last[:, -1], last[:, -2])
    nll = -(end + T.log(T.exp(last[:, -1] - end) + T.exp(last[:, -2] - end)))
    return nll.mean()


def build(cfg):
    s, b, w = cfg.scenario, cfg.batch, cfg.weights
    x = InputLayer((s.batch, s.time_steps, s.features))
    mask = None
    if s.loss == "ctc":
        mask = InputLayer((s.batch, s.time_steps))
        mask_value = (np.arange(s.time_steps)[None, :] < b.lengths[:, None]).astype(theano.config.floatX)
    h, layers = x, {}
    for prefixes in directions(s):
        out = []
        for prefix in prefixes:
            layers[prefix] = rnn(s, h, w, prefix, mask, backwards=prefix.endswith("bw"))
            out.append(layers[prefix])
        h = ConcatLayer(out, axis=2) if len(out) == 2 else out[0]

    if s.loss == "ce":
        head = DenseLayer(SliceLayer(h, -1, axis=1), s.classes, W=w["head.w"].T, b=w["head.b"],
                          nonlinearity=lasagne.nonlinearities.softmax)
        probs = lasagne.layers.get_output(head, {x: T.constant(b.x)})
        loss = lasagne.objectives.categorical_crossentropy(probs, T.constant(b.y)).mean()
    else:
        flat = ReshapeLayer(h, (-1, s.head_inputs))
        head = DenseLayer(flat, s.classes, W=w["head.w"].T, b=w["head.b"], nonlinearity=None)
        logits = lasagne.layers.get_output(head, {x: T.constant(b.x), mask: T.constant(mask_value)})
        log_probs = T.nnet.logsoftmax(logits).reshape((s.batch, s.time_steps, s.classes))
        loss = ctc_loss(log_probs, T.constant(b.y), T.constant(b.lengths))

    params = lasagne.layers.get_all_params(head, trainable=True)
    updates = lasagne.updates.adam(loss, params, learning_rate=cfg.lr, epsilon=cfg.adam_eps)
    train = theano.function([], loss, updates=updates)

    def step():
        return float(train())

    def weights():
        out = {"head.w": head.W.get_value().T, "head.b": head.b.get_value()}
        names = GRU_GATES if s.cell == "gru" else LSTM_GATES
        sign = [1, -1, 1] if s.cell == "gru" else [1] * 4
        for prefix, layer in layers.items():
            get = lambda kind, g: sign[g] * getattr(layer, "{}_{}".format(kind, names[g])).get_value()
            out[prefix + ".w_ih"] = np.concatenate([get("W_in_to", g).T for g in range(s.gates)])
            out[prefix + ".w_hh"] = np.concatenate([get("W_hid_to", g).T for g in range(s.gates)])
            out.update(split_single_bias(np.concatenate([get("b", g) for g in range(s.gates)]), w, prefix))
        return dict((k, np.ascontiguousarray(v, dtype=np.float32)) for k, v in out.items())

    notes = {"adam": "epsilon-hat", "bias": "single", "blas": str(theano.config.blas.ldflags) or "NumPy C-API"}
    if s.cell == "gru":
        notes["gru"] = "reset-after-bias-outside"
    return Trainer(step, weights, lasagne.layers.count_params(head, trainable=True), notes)
