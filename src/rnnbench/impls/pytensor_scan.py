"""PyTensor (Theano's maintained successor): GRU/LSTM layers written with scan, as Lasagne
wrote its recurrent layers, trained with Lasagne's Adam.

As in Lasagne's ``LSTMLayer``/``GRULayer``: the input projection of every time step is one
matrix product outside the scan (``precompute_input``), so the step only adds the
recurrent product; the scan runs time-major; with variable lengths a mask keeps the state
unchanged on padded steps; the backward direction scans with ``go_backwards`` and is
reversed back. Weights are shared variables in Lasagne's ``x.dot(W)`` layout, the
optimizer is a list of update pairs, and one compiled function runs a training step.
"""

import functools

import numpy as np
import pytensor
import pytensor.tensor as pt

from .base import Config, Trainer
from .pytensor_ctc import ctc_loss

# Theano users ran with floatX=float32 so that Python float constants stay float32
# (otherwise 0.9 * a float32 tensor is float64).
pytensor.config.floatX = "float32"


def recurrent_layer(x_proj, mask, w_hh, b_hh, cell, backwards):
    """x_proj: (T, B, G*H) input projection; mask: (T, B) bool or None. Returns (T, B, H)."""

    def gate(x, k, hidden):  # gate block k of a (B, G*H) matrix
        return x[:, k * hidden:(k + 1) * hidden]

    def lstm_step(x_t, h, c, w_hh):
        gates = x_t + pt.dot(h, w_hh)  # b_ih + b_hh are already in x_t
        i, f, g, o = (gate(gates, k, h.shape[1]) for k in range(4))
        c = pt.sigmoid(f) * c + pt.sigmoid(i) * pt.tanh(g)
        return [pt.sigmoid(o) * pt.tanh(c), c]

    def gru_step(x_t, h, w_hh, b_hh):
        hh = pt.dot(h, w_hh) + b_hh
        x_r, x_z, x_n = (gate(x_t, k, h.shape[1]) for k in range(3))
        h_r, h_z, h_n = (gate(hh, k, h.shape[1]) for k in range(3))
        r = pt.sigmoid(x_r + h_r)
        z = pt.sigmoid(x_z + h_z)
        n = pt.tanh(x_n + r * h_n)  # reset-after: r scales W_hn h + b_hn
        return [(1 - z) * n + z * h]

    step = lstm_step if cell == "lstm" else gru_step
    non_sequences = [w_hh] if cell == "lstm" else [w_hh, b_hh]
    zeros = pt.zeros((x_proj.shape[1], w_hh.shape[0]), dtype=x_proj.dtype)
    init = [zeros, zeros] if cell == "lstm" else [zeros]

    def step_masked(x_t, mask_t, *args):
        # Padded steps keep the previous state: the forward state is carried past the end,
        # and the backward direction (which visits the padding first) stays at zero until
        # the sequence's true end, where it starts.
        previous = args[:len(init)]
        return [pt.switch(mask_t[:, None], new, old)
                for new, old in zip(step(x_t, *args), previous)]

    outputs = pytensor.scan(
        step if mask is None else step_masked,
        sequences=[x_proj] if mask is None else [x_proj, mask],
        outputs_info=init, non_sequences=non_sequences, go_backwards=backwards,
        strict=True, return_list=True, return_updates=False)
    h = outputs[0]
    return h[::-1] if backwards else h


# PyTensor ships no optimizer (nor did Theano), so the script writes Lasagne's adam.
def adam(loss, params, learning_rate, epsilon, beta1=0.9, beta2=0.999):
    """(variable, new value) pairs that the compiled function applies after each call. The
    bias corrections are folded into the step size, so epsilon is added to sqrt(v) before
    bias correction (the "epsilon-hat" form, Kingma & Ba sec. 2)."""
    grads = pytensor.grad(loss, params)
    t_prev = pytensor.shared(np.float32(0))
    t = t_prev + 1
    a_t = learning_rate * pt.sqrt(1 - beta2**t) / (1 - beta1**t)
    updates = [(t_prev, t)]
    for param, g_t in zip(params, grads):
        m_prev = pytensor.shared(np.zeros_like(param.get_value()))
        v_prev = pytensor.shared(np.zeros_like(param.get_value()))
        m_t = beta1 * m_prev + (1 - beta1) * g_t
        v_t = beta2 * v_prev + (1 - beta2) * g_t**2
        updates += [(m_prev, m_t), (v_prev, v_t),
                    (param, param - a_t * m_t / (pt.sqrt(v_t) + epsilon))]
    return updates


def build(cfg: Config, mode=None) -> Trainer:
    s, batch = cfg.scenario, cfg.batch
    # Canonical (out, in) matrices become Lasagne's (in, out), used as x.dot(W). Shapes are
    # static throughout: the JAX backend needs them, and they halve the rewriting time.
    params = {}
    for name, w in cfg.weights.items():
        w = w.T.copy() if w.ndim == 2 else w.copy()
        params[name] = pytensor.shared(w, name=name, shape=w.shape)

    # The time axis stays dynamic on numba, as in Lasagne: a static one lets PyTensor fold
    # the LSTM's zero cell-state gradient into a (T+1, B, H) constant, and numba keeps no
    # compiled function holding a constant over 1 MB in its cache.
    n, t, f = batch.x.shape
    x = pt.tensor("x", shape=(n, t if mode == "JAX" else None, f), dtype="float32")  # (B, T, F)
    y = pt.tensor("y", shape=batch.y.shape, dtype="int32")  # CE: (B,) classes; CTC: (B, L)
    lengths = pt.tensor("lengths", shape=batch.lengths.shape, dtype="int32")  # (B,)
    h = x.dimshuffle(1, 0, 2)  # scan iterates over the first axis: time-major (T, B, F)
    mask = pt.lt(pt.arange(h.shape[0])[:, None], lengths[None, :]) if s.loss == "ctc" else None
    for k in range(s.layers):
        outputs = []
        for d in ("fw", "bw")[: s.directions]:
            p = {n: params[f"l{k}.{d}.{n}"] for n in ("w_ih", "w_hh", "b_ih", "b_hh")}
            # The input projection of all steps at once; the LSTM's two biases fold in.
            x_proj = pt.dot(h, p["w_ih"]) + p["b_ih"]
            if s.cell == "lstm":
                x_proj = x_proj + p["b_hh"]
            outputs.append(recurrent_layer(x_proj, mask, p["w_hh"], p["b_hh"], s.cell,
                                           backwards=d == "bw"))
        h = pt.concatenate(outputs, axis=2) if len(outputs) > 1 else outputs[0]

    if s.loss == "ce":
        logits = pt.dot(h[-1], params["head.w"]) + params["head.b"]  # last step (B, D)
        log_p = pt.special.log_softmax(logits, axis=-1)
        loss = -log_p[pt.arange(y.shape[0]), y].mean()
        inputs, values = [x, y], [batch.x, batch.y]
    else:
        logits = pt.dot(h, params["head.w"]) + params["head.b"]  # every step (T, B, C)
        log_p = pt.special.log_softmax(logits, axis=-1)
        loss = ctc_loss(log_p, y, lengths, blank=0).mean()  # mean over the batch
        inputs, values = [x, y, lengths], [batch.x, batch.y, batch.lengths]

    # Hyperparameters as shared variables keep their values out of the compiled code, so
    # PyTensor's compile cache serves another learning rate too.
    learning_rate = pytensor.shared(np.float32(cfg.lr), name="learning_rate")
    epsilon = pytensor.shared(np.float32(cfg.adam_eps), name="epsilon")
    updates = adam(loss, list(params.values()), learning_rate, epsilon)
    train = pytensor.function(inputs, loss, updates=updates, mode=mode)  # the train step

    def step() -> float:
        return float(train(*values))

    @functools.cache
    def loss_only():  # --mode forward: the loss without updates, compiled on first use
        return pytensor.function(inputs, loss, mode=mode)

    def weights() -> dict:
        return {name: np.array(p.get_value().T if p.ndim == 2 else p.get_value())
                for name, p in params.items()}

    return Trainer(step=step, weights=weights, forward=lambda: float(loss_only()(*values)),
                   parameters=sum(p.get_value().size for p in params.values()),
                   notes={"gru": "reset-after", "adam": "epsilon-hat",
                          "kernel": "scan, " + type(train.maker.mode.linker).__name__})


def build_jax(cfg: Config) -> Trainer:
    """The same graph, compiled by PyTensor's JAX backend (XLA) instead of numba."""
    return build(cfg, mode="JAX")
