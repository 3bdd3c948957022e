"""Keras 2.0.5 (the seed's version) on either of its 2017 backends, Theano 0.9
(keras2-theano) or TensorFlow 1.2 (keras2-tf1): ``LSTM`` / ``GRU`` layers, wrapped in
``Bidirectional``, a ``Dense`` softmax head, ``model.compile`` and ``train_on_batch``.
The backend is whatever ``KERAS_BACKEND`` named at import (rnnbench.legacy.runtime).

Keras 2.0 defaults that differ from the model measured here are set explicitly:
``recurrent_activation="sigmoid"`` (the default was ``hard_sigmoid``). Its GRU is the
original formulation ("reset-before", the reset gate applied to h before the matmul)
with gate order z, r, h; the LSTM's order is i, f, c, o; both hold one bias per gate
(loaded as ``b_ih + b_hh``: notes["bias"] = "single"). Its Adam is epsilon-hat.

CE: every layer returns sequences and the head reads the last step (``return_sequences
=False`` on a Bidirectional layer would give the backward direction's output at t = 0).
CTC, as Keras 2's OCR example did it: a ``Masking`` layer (the padding set to 0) keeps
each state held past its sequence's end (and the backward direction starts at the true
end), and ``K.ctc_batch_cost`` in a ``Lambda`` layer is the model's output, with the
identity as its "loss". That function takes the LAST class as the blank: the head's
class 0 (the canonical blank) is moved to the end and the labels shift down by one.
On TensorFlow 1.2 the train step's update of the recurrent layers is wrong in some runs
(every run on the GRU), and verification flags it: Keras 2.0.5's Adam creates each
``tf.assign`` waiting for that weight's own gradient only, so the backward pass may read a
weight its assignment already changed (scripts/keras2_tf1_race.py; kept as 2017 shipped it).
On Theano, Keras 2.0.5's ``ctc_batch_cost`` is its own scan that smooths the
probabilities, ``(1 - 1e-4) p + 1e-4 / S``, and sums the alignments over every time step
(``-log(T p)``): verified against the reference's "keras2-theano" CTC variant.
"""

import numpy as np

from keras import backend as K
from keras import layers
from keras.models import Model
from keras.optimizers import Adam

from .base import Trainer, directions, gates, single_bias, split_single_bias
from .runtime import session_config

ORDER = {"lstm": ("ifgo", "ifgo"), "gru": ("zrn", "rzn")}  # (Keras' gate order, canonical)


def build(cfg):
    s, b = cfg.scenario, cfg.batch
    if K.backend() == "tensorflow":  # a fresh graph for each model, run with the thread settings
        import tensorflow as tf

        K.clear_session()
        K.set_session(tf.Session(config=session_config(cfg.threads)))
    RNN = {"lstm": layers.LSTM, "gru": layers.GRU}[s.cell]

    features = layers.Input((s.time_steps, s.features), name="features")
    h = features if s.loss == "ce" else layers.Masking(0.0)(features)
    for k in range(s.layers):
        rnn = RNN(s.hidden, recurrent_activation="sigmoid", return_sequences=True)
        h = layers.Bidirectional(rnn, merge_mode="concat", name="l{}".format(k))(h) if s.bidirectional \
            else RNN(s.hidden, recurrent_activation="sigmoid", return_sequences=True, name="l{}".format(k))(h)
    x = b.x
    if s.loss == "ce":
        last = layers.Lambda(lambda t: t[:, -1], output_shape=(s.head_inputs,))(h)
        probs = layers.Dense(s.classes, activation="softmax", name="head")(last)
        model, inputs, targets = Model(features, probs), x, b.y.reshape(-1, 1)
        loss = "sparse_categorical_crossentropy"
    else:
        probs = layers.Dense(s.classes, activation="softmax", name="head")(h)
        labels = layers.Input((b.y.shape[1],), dtype="int32", name="labels")
        lengths = layers.Input((1,), dtype="int32", name="lengths")
        label_lengths = layers.Input((1,), dtype="int32", name="label_lengths")
        nll = layers.Lambda(lambda a: K.ctc_batch_cost(*a), output_shape=(1,), name="ctc")(
            [labels, probs, lengths, label_lengths])
        model = Model([features, labels, lengths, label_lengths], nll)
        x = x * (np.arange(s.time_steps)[None, :, None] < b.lengths[:, None, None])  # padding = 0: masked
        inputs = [x, b.y - 1, b.lengths.reshape(-1, 1), b.label_lengths.reshape(-1, 1)]
        targets = np.zeros((len(b.y), 1), dtype=np.float32)
        loss = lambda y_true, y_pred: y_pred  # the Lambda layer's output is the per-sequence NLL

    load(model, s, cfg.weights)
    model.compile(optimizer=Adam(lr=cfg.lr, epsilon=cfg.adam_eps), loss=loss)  # mean over the batch

    def step():
        return float(model.train_on_batch(inputs, targets))

    notes = {"adam": "epsilon-hat", "bias": "single", "backend": K.backend()}
    if s.cell == "gru":
        notes["gru"] = "reset-before"
    if s.loss == "ctc" and K.backend() == "theano":
        notes["ctc"] = "keras2-theano"
    return Trainer(step, lambda: export(model, s, cfg.weights), model.count_params(), notes)


def rnn_layers(model, s):
    """Canonical direction prefix -> its Keras recurrent layer."""
    out = {}
    for k, prefixes in enumerate(directions(s)):
        layer = model.get_layer("l{}".format(k))
        out.update(zip(prefixes, (layer.forward_layer, layer.backward_layer) if s.bidirectional else (layer,)))
    return out


def head_classes(w, ctc, inverse=False):
    """CTC: the blank (class 0) last in Keras' head, and back."""
    if not ctc:
        return w
    return np.roll(w, 1 if inverse else -1, axis=-1)


def load(model, s, w):
    keras_order, canonical = ORDER[s.cell]
    for prefix, layer in rnn_layers(model, s).items():
        layer.set_weights([gates(w[prefix + ".w_ih"], keras_order, canonical).T,
                           gates(w[prefix + ".w_hh"], keras_order, canonical).T,
                           gates(single_bias(w, prefix), keras_order, canonical)])
    ctc = s.loss == "ctc"
    model.get_layer("head").set_weights([head_classes(w["head.w"].T, ctc), head_classes(w["head.b"], ctc)])


def export(model, s, w0):
    keras_order, canonical = ORDER[s.cell]
    out = {}
    for prefix, layer in rnn_layers(model, s).items():
        kernel, recurrent, bias = layer.get_weights()
        out[prefix + ".w_ih"] = gates(kernel.T, canonical, keras_order)
        out[prefix + ".w_hh"] = gates(recurrent.T, canonical, keras_order)
        out.update(split_single_bias(gates(bias, canonical, keras_order), w0, prefix))
    kernel, bias = model.get_layer("head").get_weights()
    ctc = s.loss == "ctc"
    out["head.w"], out["head.b"] = head_classes(kernel, ctc, inverse=True).T, head_classes(bias, ctc, inverse=True)
    return dict((k, np.ascontiguousarray(v, dtype=np.float32)) for k, v in out.items())
