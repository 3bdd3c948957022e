"""Flax NNX: ``nnx.RNN`` over ``nnx.OptimizedLSTMCell`` / ``nnx.GRUCell``, ``nnx.Bidirectional``.

Weights: Flax's ``Linear`` kernels are (in, out), so the canonical (out, in) matrices are
transposed; the gate orders (LSTM i, f, g, o; GRU r, z, n) are the canonical ones.

* ``OptimizedLSTMCell`` has ONE bias (on its recurrent ``Linear``), loaded as
  ``b_ih + b_hh``: the trained model is the canonical one with ``b_hh`` frozen, so
  ``weights()`` reports the bias's change in ``b_ih`` and ``b_hh`` unchanged.
* ``nnx.GRUCell`` is the reset-after GRU without a recurrent bias,
  ``n = tanh(W_in x + b_in + r * (W_hn h))``: the canonical ``b_hn`` sits inside ``r * (...)``,
  where no bias of the stock cell can hold it. The subclass below gives the recurrent
  ``Linear`` the bias cuDNN has, which makes the cell exactly the canonical GRU.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from .base import Config, Trainer


class GRUCell(nnx.GRUCell):
    """``nnx.GRUCell`` plus the recurrent bias of the cuDNN / PyTorch GRU."""

    def __init__(self, in_features: int, hidden_features: int, *, rngs: nnx.Rngs):
        super().__init__(in_features, hidden_features, rngs=rngs)
        self.dense_h = nnx.Linear(hidden_features, 3 * hidden_features, rngs=rngs)


class Model(nnx.Module):
    """Stacked (bidirectional) RNN and a Dense head on the last step (CE) or every step (CTC)."""

    def __init__(self, s, rngs: nnx.Rngs):
        cell = {"lstm": nnx.OptimizedLSTMCell, "gru": GRUCell}[s.cell]

        def rnn(inputs):
            return nnx.RNN(cell(inputs, s.hidden, rngs=rngs))

        layers = []
        for k in range(s.layers):
            inputs = s.features if k == 0 else s.head_inputs
            # Bidirectional reverses each sequence within its seq_lengths for the backward RNN.
            layers.append(nnx.Bidirectional(rnn(inputs), rnn(inputs)) if s.bidirectional else rnn(inputs))
        self.layers = nnx.List(layers)
        self.head = nnx.Linear(s.head_inputs, s.classes, rngs=rngs)
        self.last_step_only = s.loss == "ce"

    def __call__(self, x, seq_lengths=None):
        for layer in self.layers:
            x = layer(x, seq_lengths=seq_lengths)
        if self.last_step_only:
            x = x[:, -1]
        return self.head(x)


def build(cfg: Config) -> Trainer:
    s, device = cfg.scenario, jax.devices(cfg.device)[0]
    with jax.default_device(device):
        model = Model(s, nnx.Rngs(0))
        load_weights(model, cfg.weights)
        optimizer = nnx.Optimizer(model, optax.adam(cfg.lr, eps=cfg.adam_eps), wrt=nnx.Param)
        # On the default device, uncommitted like the model's arrays: a mix of committed
        # and uncommitted arrays makes jit compile the step a second time on its second call.
        x, y, lengths = (jnp.asarray(a) for a in (cfg.batch.x, cfg.batch.y, cfg.batch.lengths))

    def loss_fn(model, x, y, lengths):
        """Mean over the batch: cross-entropy at the last step, or CTC (blank 0)."""
        if s.loss == "ce":
            return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()
        logits = model(x, seq_lengths=lengths)
        # optax takes paddings (1 = a padded frame) rather than lengths; no label is padding.
        padding = (jnp.arange(s.time_steps) >= lengths[:, None]).astype(logits.dtype)
        return optax.ctc_loss(logits, padding, y, jnp.zeros(y.shape), blank_id=0).mean()

    @nnx.jit(donate_argnames=("model", "optimizer"))
    def train_step(model, optimizer, x, y, lengths):
        loss, grads = nnx.value_and_grad(loss_fn)(model, x, y, lengths)
        optimizer.update(model, grads)
        return loss

    # Flax performance guide: cache the object-graph traversal nnx.jit would redo every call.
    cached_step = nnx.cached_partial(train_step, model, optimizer)
    cached_loss = nnx.cached_partial(nnx.jit(loss_fn), model)  # --mode forward: no gradients, no update

    notes = {"adam": "standard"}
    if s.cell == "gru":
        notes["gru"] = "reset-after"  # with the recurrent bias added above
        notes["kernel"] = "nnx.RNN over nnx.GRUCell (+ recurrent bias)"
    else:
        notes["kernel"] = "nnx.RNN over nnx.OptimizedLSTMCell"
        notes["bias"] = "single"  # b_ih + b_hh in one vector: b_hh reported frozen
    return Trainer(
        step=lambda: float(cached_step(x, y, lengths)),
        forward=lambda: float(cached_loss(x, y, lengths)),
        weights=lambda: export_weights(model, cfg.weights),
        parameters=sum(v.size for v in jax.tree.leaves(nnx.state(model, nnx.Param))),
        notes=notes,
    )


# -- The canonical (PyTorch) weight layout <-> the model's parameters -----------------------


def cells(model: Model):
    """The model's cells under their canonical prefixes ``l{k}.fw`` / ``l{k}.bw``."""
    for k, layer in enumerate(model.layers):
        if isinstance(layer, nnx.Bidirectional):
            yield f"l{k}.fw", layer.forward_rnn.cell
            yield f"l{k}.bw", layer.backward_rnn.cell
        else:
            yield f"l{k}.fw", layer.cell


def load_weights(model: Model, w: dict) -> None:
    for p, c in cells(model):
        c.dense_i.kernel[...] = w[f"{p}.w_ih"].T
        c.dense_h.kernel[...] = w[f"{p}.w_hh"].T
        if isinstance(c, nnx.OptimizedLSTMCell):
            c.dense_h.bias[...] = w[f"{p}.b_ih"] + w[f"{p}.b_hh"]
        else:
            c.dense_i.bias[...] = w[f"{p}.b_ih"]
            c.dense_h.bias[...] = w[f"{p}.b_hh"]
    model.head.kernel[...] = w["head.w"].T
    model.head.bias[...] = w["head.b"]


def export_weights(model: Model, w0: dict) -> dict:
    """Current parameters in the canonical layout; ``w0`` (the initial weights) supplies the
    frozen ``b_hh`` of the LSTM's single bias."""
    a = lambda v: np.asarray(v[...])
    out = {}
    for p, c in cells(model):
        out[f"{p}.w_ih"] = a(c.dense_i.kernel).T.copy()
        out[f"{p}.w_hh"] = a(c.dense_h.kernel).T.copy()
        if isinstance(c, nnx.OptimizedLSTMCell):
            b_ih0, b_hh0 = w0[f"{p}.b_ih"], w0[f"{p}.b_hh"]
            out[f"{p}.b_ih"] = b_ih0 + (a(c.dense_h.bias) - (b_ih0 + b_hh0))
            out[f"{p}.b_hh"] = b_hh0.copy()
        else:
            out[f"{p}.b_ih"] = a(c.dense_i.bias).copy()
            out[f"{p}.b_hh"] = a(c.dense_h.bias).copy()
    out["head.w"] = a(model.head.kernel).T.copy()
    out["head.b"] = a(model.head.bias).copy()
    return out
