"""What the JAX scripts (flax-nnx, jax-scan) share: the batch on the device and the losses.

Weights: the canonical layout is PyTorch's, (out, in) matrices; JAX code multiplies
``x @ w`` with (in, out) kernels, so converting is a transpose (gate order is the same).
"""

import jax
import jax.numpy as jnp
import optax

from .base import Config


def device_batch(cfg: Config):
    """The toy batch on the device: inputs (B, T, F), targets, lengths (B,)."""
    b = cfg.batch
    return jax.device_put((b.x, b.y, b.lengths), jax.devices(cfg.device)[0])


def cross_entropy(logits, labels):
    """Softmax cross-entropy, mean over the batch. logits (B, C), labels (B,)."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def ctc(logits, lengths, labels):
    """CTC with blank 0, mean over the batch of per-sequence negative log-likelihoods.
    logits (B, T, C); frames at or beyond each length are padding, labels are all real."""
    time = jnp.arange(logits.shape[1])
    logit_paddings = (time[None, :] >= lengths[:, None]).astype(logits.dtype)
    label_paddings = jnp.zeros(labels.shape, logits.dtype)
    return optax.ctc_loss(logits, logit_paddings, labels, label_paddings, blank_id=0).mean()
