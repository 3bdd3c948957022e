"""The float64 NumPy reference: forward pass, hand-written backward pass and one Adam step.

This is the oracle every implementation is verified against (``rnnbench verify``). It uses
NumPy only (no autodiff library), is vectorized over the batch and loops over time, so it
is meant for the tiny ``smoke`` shapes only. Weights use the canonical names and layout of
:mod:`rnnbench.data` (PyTorch layout, two bias vectors per gate).

Model semantics (what every implementation must compute):

* Stacked, optionally bidirectional GRU/LSTM, zero initial states. A layer's output is the
  concatenation ``[forward, backward]`` along the feature axis.
* Per-sequence lengths (CTC scenarios): positions ``t >= length`` are padding. They never
  influence the loss or the gradients: the state is frozen there and the output is zero,
  and the backward direction starts at each sequence's TRUE end (each sequence is reversed
  within its length, run forward, and reversed back). Cross-entropy scenarios use the full
  sequence.
* CE head: top layer output at the last time step ``t = T-1`` (for a bidirectional layer
  the backward half there has seen one step) -> Dense -> softmax cross-entropy, mean over
  the batch.
* CTC head: Dense on every time step -> log_softmax -> CTC with blank 0; the loss is the
  MEAN OVER THE BATCH OF THE PER-SEQUENCE NEGATIVE LOG-LIKELIHOODS (not divided by the
  label lengths).

The two GRU formulations (gate blocks ``r, z, n``; ``h' = (1 - z) * n + z * h`` in both):

* ``"reset-after"``: ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``. cuDNN, PyTorch
  ``nn.GRU``/``nn.GRUCell``, Keras ``GRU(reset_after=True)`` (the Keras 3 default) and
  Flax ``GRUCell``. This is the canonical formulation.
* ``"reset-before"``: ``n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)``. The original GRU
  (Cho et al. 2014), TensorFlow's ``GRUBlockCell`` (``tf.raw_ops.GRUBlockCell``) and
  ``tf.compat.v1`` ``GRUCell``, Keras ``GRU(reset_after=False)``.
* ``"reset-after-bias-outside"``: ``n = tanh(W_in x + b_in + b_hn + r * (W_hn h))``: the
  reset gate scales the recurrent matmul but not its bias. Lasagne 0.1's ``GRULayer`` (one
  bias per gate, outside the reset gate).

The CTC variants (``ctc``):

* ``"exact"``: the CTC loss above.
* ``"keras2-theano"``: Keras 2.0.5's Theano ``ctc_batch_cost`` (its own scan). It smooths
  every emission, ``y' = (1 - 1e-4) y[t, ext[s]] + 1e-4 / S`` (S = 2U + 1, the extended
  label length), and adds ``alpha * beta / y'`` over every time step instead of one, so a
  sequence's loss is ``-log(T_i p'(l | x))``: the exact loss's alignment sum on smoothed
  probabilities, plus ``-log T_i`` (no gradient).

The two Adam variants (first step, zero moments, betas 0.9/0.999):

* ``"standard"`` (PyTorch, optax): ``w -= lr * m_hat / (sqrt(v_hat) + eps)``.
* ``"epsilon-hat"`` (Keras, TensorFlow, Lasagne): ``alpha = lr * sqrt(1 - b2^t) / (1 - b1^t)``,
  ``w -= alpha * m / (sqrt(v) + eps)``.
"""

from __future__ import annotations

import numpy as np

from .data import Batch, weight_shapes
from .scenarios import Scenario

GRU_FORMULATIONS = ("reset-after", "reset-before", "reset-after-bias-outside")
CTC_VARIANTS = ("exact", "keras2-theano")
KERAS2_CTC_SMOOTHING = 1e-4
ADAM_VARIANTS = ("standard", "epsilon-hat")
BLANK = 0

Params = dict[str, np.ndarray]  # one direction of one layer: w_ih, w_hh, b_ih, b_hh


# ---------------------------------------------------------------------------- helpers

def sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * a))  # overflow-free form of 1 / (1 + exp(-a))


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


# ------------------------------------------------------- cells: one step, whole batch
# A cell maps (x_t (B, I), state tuple of (B, H)) to (new state tuple, cache); its backward
# maps (grads of the new state, cache) to (dx_t, grads of the old state) and adds the
# parameter gradients into ``grads``. State: GRU (h,), LSTM (h, c).

def gru_cell(x, state, p: Params, gru: str):
    (h,) = state
    H = h.shape[1]
    gi = x @ p["w_ih"].T + p["b_ih"]
    w_hn, b_hn = p["w_hh"][2 * H :], p["b_hh"][2 * H :]
    rz = sigmoid(gi[:, : 2 * H] + h @ p["w_hh"][: 2 * H].T + p["b_hh"][: 2 * H])
    r, z = rz[:, :H], rz[:, H:]
    if gru == "reset-after":
        hn = h @ w_hn.T + b_hn  # the reset gate scales the recurrent term after the matmul
        n = np.tanh(gi[:, 2 * H :] + r * hn)
    elif gru == "reset-after-bias-outside":
        hn = h @ w_hn.T  # ... but not its bias
        n = np.tanh(gi[:, 2 * H :] + b_hn + r * hn)
    else:
        hn = r * h  # reset-before: the reset gate scales the state before the matmul
        n = np.tanh(gi[:, 2 * H :] + hn @ w_hn.T + b_hn)
    h_new = (1.0 - z) * n + z * h
    return (h_new,), (x, h, r, z, n, hn)


def gru_cell_backward(d_state, cache, p: Params, grads: Params, gru: str):
    (dh_new,) = d_state
    x, h, r, z, n, hn = cache
    H = h.shape[1]
    w_hn = p["w_hh"][2 * H :]
    dn = dh_new * (1.0 - z)
    dz = dh_new * (h - n)
    da_n = dn * (1.0 - n * n)  # pre-activation of n
    if gru in ("reset-after", "reset-after-bias-outside"):  # hn = W_hn h (+ b_hn)
        dr = da_n * hn
        d_hn = da_n * r  # grad of W_hn h (+ b_hn)
        db_hn = d_hn if gru == "reset-after" else da_n
        n_input = h  # what the n block of W_hh multiplies
        dh = dh_new * z + d_hn @ w_hn
    else:  # hn = r * h
        d_hn = db_hn = da_n  # grad of W_hn (r h) + b_hn
        d_rh = da_n @ w_hn
        dr = d_rh * h
        n_input = hn
        dh = dh_new * z + d_rh * r
    da_rz = np.concatenate([dr * r * (1.0 - r), dz * z * (1.0 - z)], axis=1)
    d_in = np.concatenate([da_rz, da_n], axis=1)
    grads["w_ih"] += d_in.T @ x
    grads["b_ih"] += d_in.sum(axis=0)
    grads["w_hh"][: 2 * H] += da_rz.T @ h
    grads["w_hh"][2 * H :] += d_hn.T @ n_input
    grads["b_hh"] += np.concatenate([da_rz, db_hn], axis=1).sum(axis=0)
    dh = dh + da_rz @ p["w_hh"][: 2 * H]
    return d_in @ p["w_ih"], (dh,)


def lstm_cell(x, state, p: Params, gru: str = ""):
    h, c = state
    H = h.shape[1]
    a = x @ p["w_ih"].T + p["b_ih"] + h @ p["w_hh"].T + p["b_hh"]
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H : 2 * H])
    g = np.tanh(a[:, 2 * H : 3 * H])
    o = sigmoid(a[:, 3 * H :])
    c_new = f * c + i * g
    tanh_c = np.tanh(c_new)
    h_new = o * tanh_c
    return (h_new, c_new), (x, h, c, i, f, g, o, tanh_c)


def lstm_cell_backward(d_state, cache, p: Params, grads: Params, gru: str = ""):
    dh_new, dc_new = d_state
    x, h, c, i, f, g, o, tanh_c = cache
    do = dh_new * tanh_c
    dc = dc_new + dh_new * o * (1.0 - tanh_c * tanh_c)
    da = np.concatenate(
        [
            dc * g * i * (1.0 - i),  # i
            dc * c * f * (1.0 - f),  # f
            dc * i * (1.0 - g * g),  # g
            do * o * (1.0 - o),  # o
        ],
        axis=1,
    )
    grads["w_ih"] += da.T @ x
    grads["w_hh"] += da.T @ h
    grads["b_ih"] += da.sum(axis=0)
    grads["b_hh"] += da.sum(axis=0)
    return da @ p["w_ih"], (da @ p["w_hh"], dc * f)


CELLS = {
    "gru": (gru_cell, gru_cell_backward, 1),
    "lstm": (lstm_cell, lstm_cell_backward, 2),
}


# ------------------------------------------------- one direction over the whole sequence

def direction_forward(cell: str, x: np.ndarray, mask: np.ndarray, p: Params, gru: str):
    """Run one direction left to right. Where ``mask`` (B, T) is False the state is frozen
    and the output is zero. Returns outputs (B, T, H) and the per-step caches."""
    step, _, n_states = CELLS[cell]
    B, T, _ = x.shape
    H = p["w_hh"].shape[1]
    state = tuple(np.zeros((B, H)) for _ in range(n_states))
    ys = np.zeros((B, T, H))
    caches = []
    for t in range(T):
        new, cache = step(x[:, t], state, p, gru)
        m = mask[:, t, None]
        state = tuple(np.where(m, a, b) for a, b in zip(new, state))
        ys[:, t] = np.where(m, state[0], 0.0)
        caches.append(cache)
    return ys, caches


def direction_backward(cell: str, dys: np.ndarray, mask: np.ndarray, p: Params, caches, gru: str):
    """Backward of :func:`direction_forward`: returns dx (B, T, I) and the parameter grads."""
    _, step_backward, n_states = CELLS[cell]
    B, T, H = dys.shape
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    dx = np.zeros((B, T, p["w_ih"].shape[1]))
    d_state = tuple(np.zeros((B, H)) for _ in range(n_states))
    for t in reversed(range(T)):
        m = mask[:, t, None]
        d_state = (d_state[0] + np.where(m, dys[:, t], 0.0),) + d_state[1:]
        d_new = tuple(np.where(m, d, 0.0) for d in d_state)  # into the cell
        dx[:, t], d_prev = step_backward(d_new, caches[t], p, grads, gru)
        # A frozen (padded) step passes its state gradient straight through.
        d_state = tuple(dp + np.where(m, 0.0, d) for dp, d in zip(d_prev, d_state))
    return dx, grads


def reverse_index(lengths: np.ndarray, T: int) -> np.ndarray:
    """(B, T) time indices that reverse each sequence within its length and leave the
    padding in place. The permutation is its own inverse (and so its own backward)."""
    t = np.arange(T)[None, :]
    L = np.asarray(lengths)[:, None]
    return np.where(t < L, L - 1 - t, t)


def reverse_within(a: np.ndarray, index: np.ndarray) -> np.ndarray:
    return np.take_along_axis(a, index[:, :, None], axis=1)


# ------------------------------------------------------------------------ the stack

def _directions(s: Scenario) -> tuple[str, ...]:
    return ("fw", "bw")[: s.directions]


def _params(weights: dict[str, np.ndarray], layer: int, d: str) -> Params:
    return {k: weights[f"l{layer}.{d}.{k}"] for k in ("w_ih", "w_hh", "b_ih", "b_hh")}


def stack_forward(s: Scenario, x, mask, rev, weights, gru):
    """Top layer outputs (B, T, H * directions) and the caches for the backward pass."""
    caches = []
    for k in range(s.layers):
        outs, layer_caches = [], {}
        for d in _directions(s):
            xin = x if d == "fw" else reverse_within(x, rev)
            y, layer_caches[d] = direction_forward(s.cell, xin, mask, _params(weights, k, d), gru)
            outs.append(y if d == "fw" else reverse_within(y, rev))
        caches.append(layer_caches)
        x = np.concatenate(outs, axis=-1)
    return x, caches


def stack_backward(s: Scenario, dtop, mask, rev, weights, caches, gru) -> dict[str, np.ndarray]:
    grads = {}
    dy = dtop
    for k in reversed(range(s.layers)):
        dx = 0.0
        for j, d in enumerate(_directions(s)):
            dy_d = dy[:, :, j * s.hidden : (j + 1) * s.hidden]
            if d == "bw":
                dy_d = reverse_within(dy_d, rev)
            dx_d, g = direction_backward(s.cell, dy_d, mask, _params(weights, k, d), caches[k][d], gru)
            dx = dx + (dx_d if d == "fw" else reverse_within(dx_d, rev))
            grads.update({f"l{k}.{d}.{name}": v for name, v in g.items()})
        dy = dx
    return grads


# ------------------------------------------------------------------------ the heads

def ce_head(top: np.ndarray, y: np.ndarray, w: np.ndarray, b: np.ndarray):
    """Last time step -> Dense -> mean softmax cross-entropy. Returns loss, dtop, dw, db."""
    B = top.shape[0]
    feats = top[:, -1]
    lp = log_softmax(feats @ w.T + b)
    loss = -lp[np.arange(B), y].mean()
    dlogits = np.exp(lp)
    dlogits[np.arange(B), y] -= 1.0
    dlogits /= B
    dtop = np.zeros_like(top)
    dtop[:, -1] = dlogits @ w
    return loss, dtop, dlogits.T @ feats, dlogits.sum(axis=0)


def ctc_loss(logits: np.ndarray, labels: np.ndarray, ctc: str = "exact") -> tuple[float, np.ndarray]:
    """CTC negative log-likelihood of one sequence and its gradient w.r.t. the logits.

    ``logits``: (T, C) for the sequence's true length only; ``labels``: (U,) in 1..C-1.
    Log-space forward-backward over the extended label sequence ``blank l1 blank l2 ...
    blank`` (length S = 2U + 1). ``alpha[t, s]`` and ``beta[t, s]`` both include the
    emission at t, so the posterior occupancy of s at t is
    ``alpha + beta - log y[t, ext[s]] - log p``; d(-log p)/d logits = softmax - occupancy.
    ``ctc="keras2-theano"``: the emissions smoothed and the loss offset as Keras 2.0.5's
    Theano backend computes them (see the module docstring).
    """
    T, C = logits.shape
    lp = log_softmax(logits)
    labels = np.asarray(labels)
    ext = np.full(2 * len(labels) + 1, BLANK)
    ext[1::2] = labels
    S = len(ext)
    # s may be entered from s - 2 (skipping a blank) unless ext[s] is a blank or a repeat.
    skip = np.zeros(S, dtype=bool)
    skip[2:] = (ext[2:] != BLANK) & (ext[2:] != ext[:-2])
    smooth = KERAS2_CTC_SMOOTHING if ctc == "keras2-theano" else 0.0
    emit = np.log((1 - smooth) * np.exp(lp[:, ext]) + smooth / S) if smooth else lp[:, ext]  # (T, S)

    alpha = np.full((T, S), -np.inf)
    alpha[0, :2] = emit[0, :2]
    for t in range(1, T):
        prev = alpha[t - 1]
        a = prev.copy()
        a[1:] = np.logaddexp(a[1:], prev[:-1])
        a[2:] = np.where(skip[2:], np.logaddexp(a[2:], prev[:-2]), a[2:])
        alpha[t] = a + emit[t]

    beta = np.full((T, S), -np.inf)
    beta[-1, -2:] = emit[-1, -2:]
    for t in range(T - 2, -1, -1):
        nxt = beta[t + 1]
        b = nxt.copy()
        b[:-1] = np.logaddexp(b[:-1], nxt[1:])
        b[:-2] = np.where(skip[2:], np.logaddexp(b[:-2], nxt[2:]), b[:-2])
        beta[t] = b + emit[t]

    log_p = np.logaddexp.reduce(alpha[-1, -2:])
    if not np.isfinite(log_p):
        raise ValueError(f"CTC: {len(labels)} labels cannot be aligned to {T} time steps")
    occupancy = np.exp(alpha + beta - emit - log_p)  # (T, S)
    # d(-log p)/d log y'[t, s] = -occupancy; log y' depends on the logits through y[t, ext[s]],
    # whose log has the gradient 1 - softmax: weigh each occupancy by d log y' / d log y.
    share = occupancy * ((1 - smooth) * np.exp(lp[:, ext] - emit))
    per_class = np.zeros((T, C))
    np.add.at(per_class.T, ext, share.T)  # sum over s with the same class
    nll = -log_p - (np.log(T) if smooth else 0.0)
    return nll, np.exp(lp) * share.sum(axis=1, keepdims=True) - per_class


def ctc_head(top, labels, lengths, w, b, ctc="exact"):
    """Dense on every step -> CTC, mean over the batch. Returns loss, dtop, dw, db."""
    B = top.shape[0]
    logits = top @ w.T + b
    dlogits = np.zeros_like(logits)  # zero at padded positions
    loss = 0.0
    for i in range(B):
        L = int(lengths[i])
        nll, d = ctc_loss(logits[i, :L], labels[i], ctc)
        loss += nll / B
        dlogits[i, :L] = d / B
    dw = np.einsum("btc,btd->cd", dlogits, top)
    return loss, dlogits @ w, dw, dlogits.sum(axis=(0, 1))


# ------------------------------------------------------------------------ public API

def _check(s: Scenario, weights) -> dict[str, np.ndarray]:
    shapes = weight_shapes(s)
    if set(weights) != set(shapes):
        missing = sorted(set(shapes) - set(weights))
        extra = sorted(set(weights) - set(shapes))
        raise ValueError(f"weights: missing {missing}, unexpected {extra}")
    out = {}
    for name, shape in shapes.items():
        w = np.asarray(weights[name], dtype=np.float64)
        if w.shape != shape:
            raise ValueError(f"weights[{name!r}]: shape {w.shape}, expected {shape}")
        out[name] = w
    return out


def loss_and_grads(s: Scenario, batch: Batch, weights, gru: str = "reset-after", ctc: str = "exact"):
    """Loss (float) and its gradients (dict of float64 arrays, canonical names)."""
    if gru not in GRU_FORMULATIONS:
        raise ValueError(f"gru formulation {gru!r}, expected one of {GRU_FORMULATIONS}")
    if ctc not in CTC_VARIANTS:
        raise ValueError(f"ctc variant {ctc!r}, expected one of {CTC_VARIANTS}")
    w = _check(s, weights)
    x = np.asarray(batch.x, dtype=np.float64)
    B, T, _ = x.shape
    # Cross-entropy scenarios use the full sequence; CTC ones the per-sequence lengths.
    lengths = np.asarray(batch.lengths) if s.loss == "ctc" else np.full(B, T)
    mask = np.arange(T)[None, :] < lengths[:, None]
    rev = reverse_index(lengths, T)

    top, caches = stack_forward(s, x, mask, rev, w, gru)
    if s.loss == "ce":
        loss, dtop, dw, db = ce_head(top, np.asarray(batch.y), w["head.w"], w["head.b"])
    else:
        loss, dtop, dw, db = ctc_head(top, np.asarray(batch.y), lengths, w["head.w"], w["head.b"], ctc)
    grads = stack_backward(s, dtop, mask, rev, w, caches, gru)
    grads["head.w"], grads["head.b"] = dw, db
    return float(loss), {name: grads[name] for name in w}


def adam_step(weights, grads, *, lr: float, eps: float, variant: str = "standard",
              b1: float = 0.9, b2: float = 0.999) -> dict[str, np.ndarray]:
    """One Adam step from zero moments (t = 1). Returns new float64 weights."""
    if variant not in ADAM_VARIANTS:
        raise ValueError(f"adam variant {variant!r}, expected one of {ADAM_VARIANTS}")
    t = 1
    new = {}
    for name, w in weights.items():
        g = np.asarray(grads[name], dtype=np.float64)
        m = (1 - b1) * g
        v = (1 - b2) * g * g
        if variant == "standard":
            update = lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        else:
            alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
            update = alpha * m / (np.sqrt(v) + eps)
        new[name] = np.asarray(w, dtype=np.float64) - update
    return new


def train_step(s: Scenario, batch: Batch, weights, *, lr: float, eps: float,
               gru: str = "reset-after", adam: str = "standard"):
    """One training step: (loss, grads, new_weights), all float64, canonical names."""
    loss, grads = loss_and_grads(s, batch, weights, gru=gru)
    return loss, grads, adam_step(weights, grads, lr=lr, eps=eps, variant=adam)
