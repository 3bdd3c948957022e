"""Keras 3: ``layers.GRU`` / ``layers.LSTM`` / ``layers.Bidirectional``, trained with
``model.compile`` + ``train_on_batch``.

One script for three implementations: keras-tensorflow, keras-jax and keras-torch. The
backend is whatever ``KERAS_BACKEND`` named when keras was first imported
(``rnnbench.frameworks.keras_.setup`` sets it); nothing below depends on it except the
``jit_compile`` choice. The conversions between the canonical (PyTorch) weight layout and
Keras' come last.
"""

import numpy as np

import keras
from keras import layers, ops

from ..frameworks.keras_ import kernel_path
from .base import Config, Trainer

# model.compile(jit_compile=...) per backend: the faster setting that works, measured on
# CPU with 1 thread (1x320 LSTM, batch 25, T = 100): TensorFlow 0.26 s/step without XLA,
# 0.33 with; JAX 0.36 s/step jitted, 2.2 op by op; torch eager 0.82 s/step, while
# torch.compile of the unrolled time loop did not finish its first step in 3 minutes (at
# T = 10 it compiled in 95 s, then ran 1.5x faster than eager). On a GPU these settings
# still hold: Keras turns XLA off itself for TensorFlow's cuDNN layers, and torch.compile
# would bypass cuDNN.
JIT_COMPILE = {"tensorflow": False, "jax": True, "torch": False}

RNN = {"gru": layers.GRU, "lstm": layers.LSTM}  # GRU: reset_after=True by default


def build_model(s) -> keras.Model:
    features = keras.Input((s.time_steps, s.features), name="features")
    inputs, mask = features, None
    if s.loss == "ctc":
        # Variable lengths: a mask built from them keeps the padding out of every layer;
        # Keras' backward direction skips the masked (reversed) padding with its state
        # held at zero, so it starts at each sequence's true end.
        lengths = keras.Input((), dtype="int32", name="lengths")
        inputs = [features, lengths]
        mask = lengths[:, None] > ops.arange(s.time_steps)  # (B, T)

    h = features
    for k in range(s.layers):
        rnn = RNN[s.cell](s.hidden, return_sequences=True, name=f"l{k}")
        if s.bidirectional:
            rnn = layers.Bidirectional(rnn, name=f"l{k}")  # holds copies of rnn, fw and bw
        h = rnn(h, mask=mask)

    if s.loss == "ce":
        # The top layer's output at the last time step. Not return_sequences=False: for a
        # Bidirectional layer that gives the backward direction's output at t=0.
        logits = layers.Dense(s.classes, name="head")(h[:, -1])
        return keras.Model(inputs, logits)
    logits = layers.Dense(s.classes, name="head")(h)  # on every time step
    return CTCModel(inputs, logits)


class CTCModel(keras.Model):
    """CTC needs each sequence's length, which only the inputs carry (``keras.losses.CTC``
    takes every sequence as full length): overriding ``compute_loss`` is Keras' documented
    hook for a loss beyond ``loss(y, y_pred)``."""

    def compute_loss(self, x, y, y_pred, sample_weight=None, training=True):
        _, lengths = x
        label_lengths = ops.full(ops.shape(y)[:1], ops.shape(y)[1], dtype="int32")
        nll = ops.ctc_loss(y, y_pred, label_lengths, lengths, mask_index=0)  # blank 0
        return ops.mean(nll)  # mean over the batch of per-sequence NLLs


def build(cfg: Config) -> Trainer:
    s, backend = cfg.scenario, keras.backend.backend()
    model = build_model(s)
    load_weights(model, s, cfg.weights)

    # Keras' Adam adds epsilon to sqrt(v) before the bias correction ("epsilon-hat").
    optimizer = keras.optimizers.Adam(learning_rate=cfg.lr, epsilon=cfg.adam_eps)
    if s.loss == "ce":
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)  # batch mean
    else:
        loss = None  # CTCModel.compute_loss
    model.compile(optimizer=optimizer, loss=loss, jit_compile=JIT_COMPILE[backend])
    optimizer.build(model.trainable_variables)  # Adam's slots now, or TensorFlow traces the first step twice

    # The one toy batch, converted to backend tensors (on the device) once.
    x = ops.convert_to_tensor(cfg.batch.x)
    if s.loss == "ctc":
        x = [x, ops.convert_to_tensor(cfg.batch.lengths)]
    y = ops.convert_to_tensor(cfg.batch.y)

    def step() -> float:  # forward, loss, gradients and the Adam update
        return float(model.train_on_batch(x, y))

    def forward() -> float:  # --mode forward: the loss only, as in model.evaluate
        return float(model.test_on_batch(x, y))

    notes = {
        "adam": "epsilon-hat",
        "backend": backend,
        "jit_compile": str(model.jit_compile),
        "kernel": kernel_path(backend, s.cell, s.loss == "ctc", cfg.device, model.jit_compile),
    }
    if s.cell == "gru":
        notes["gru"] = "reset-after"
    else:
        notes["bias"] = "single"  # b_ih + b_hh in one vector: b_hh reported frozen
    return Trainer(
        step=step,
        forward=forward,
        weights=lambda: export_weights(model, s, cfg.weights),
        parameters=model.count_params(),
        notes=notes,
    )


# -- The canonical (PyTorch) weight layout <-> Keras' -------------------------------------
# * kernels are (inputs, gates * units): the transposes of ``w_ih`` / ``w_hh``;
# * LSTM gate order i, f, c, o is the canonical i, f, g, o; Keras has ONE bias vector per
#   layer, loaded as ``b_ih + b_hh``: the trained model is the canonical one with ``b_hh``
#   frozen, so ``weights()`` reports the bias's change in ``b_ih`` and ``b_hh`` unchanged;
# * GRU ``reset_after=True`` (the default) is the canonical cuDNN formulation, with a
#   (2, 3 * units) bias: row 0 the input bias, row 1 the recurrent bias; Keras' gate order
#   is z, r, h, the canonical one r, z, n.


def directions(model, s) -> dict:
    """Canonical ``l{k}.fw`` / ``l{k}.bw`` -> the Keras RNN layer of that direction."""
    out = {}
    for k in range(s.layers):
        layer = model.get_layer(f"l{k}")
        if s.bidirectional:
            out[f"l{k}.fw"], out[f"l{k}.bw"] = layer.forward_layer, layer.backward_layer
        else:
            out[f"l{k}.fw"] = layer
    return out


def keras_gates(w, cell):
    """Canonical gate blocks (first axis) in Keras' order; for the GRU r, z, n <-> z, r, h
    (swapping the first two blocks is its own inverse)."""
    if cell == "lstm":
        return w
    r, z, n = np.split(w, 3)
    return np.concatenate([z, r, n])


def load_weights(model, s, w):
    for prefix, layer in directions(model, s).items():
        g = {k: keras_gates(w[f"{prefix}.{k}"], s.cell) for k in ("w_ih", "w_hh", "b_ih", "b_hh")}
        layer.cell.kernel.assign(g["w_ih"].T)
        layer.cell.recurrent_kernel.assign(g["w_hh"].T)
        if s.cell == "gru":
            layer.cell.bias.assign(np.stack([g["b_ih"], g["b_hh"]]))
        else:
            layer.cell.bias.assign(g["b_ih"] + g["b_hh"])
    head = model.get_layer("head")
    head.kernel.assign(w["head.w"].T)
    head.bias.assign(w["head.b"])


def export_weights(model, s, w0):
    """Current parameters in the canonical layout; ``w0`` (the initial canonical weights)
    supplies the frozen ``b_hh`` of the LSTM's single bias."""
    numpy = ops.convert_to_numpy
    out = {}
    for prefix, layer in directions(model, s).items():
        out[f"{prefix}.w_ih"] = keras_gates(numpy(layer.cell.kernel).T, s.cell)
        out[f"{prefix}.w_hh"] = keras_gates(numpy(layer.cell.recurrent_kernel).T, s.cell)
        bias = numpy(layer.cell.bias)
        if s.cell == "gru":
            out[f"{prefix}.b_ih"] = keras_gates(bias[0], s.cell)
            out[f"{prefix}.b_hh"] = keras_gates(bias[1], s.cell)
        else:
            b_ih0, b_hh0 = w0[f"{prefix}.b_ih"], w0[f"{prefix}.b_hh"]
            out[f"{prefix}.b_ih"] = b_ih0 + (bias - (b_ih0 + b_hh0))
            out[f"{prefix}.b_hh"] = b_hh0.copy()
    head = model.get_layer("head")
    out["head.w"] = numpy(head.kernel).T
    out["head.b"] = numpy(head.bias)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}
