"""CTC loss written with PyTensor's scan (PyTensor has no CTC op).

The forward (alpha) recursion of Graves et al. (2006) in log space, over the extended
label sequence ``blank, l1, blank, l2, ..., lL, blank`` (S = 2L + 1), for the whole batch
at once. PyTensor's autodiff differentiates through the scan, so no beta recursion is
written by hand.
"""

import pytensor
import pytensor.tensor as pt

# log(0), kept finite: logsumexp of all-"zero" terms and its gradient then stay finite
# (with -inf they would be nan), and -1e30 + a log-probability is still -1e30 in float32.
LOG_ZERO = -1e30


def logsumexp(x, axis):
    """log(sum(exp(x))) with the max factored out. Written out because the gradient of
    ``pt.logsumexp`` is taken on its naive form, exp(x) / sum(exp(x)), which is 0/0 where
    every term is LOG_ZERO (states no path has reached yet)."""
    top = pt.max(x, axis=axis, keepdims=True)
    return pt.log(pt.sum(pt.exp(x - top), axis=axis)) + pt.squeeze(top, axis=axis)


def ctc_loss(log_probs, labels, input_lengths, blank=0):
    """Per-sequence CTC negative log-likelihood, shape (B,).

    log_probs: (T, B, C) log-softmax outputs, time-major; labels: (B, L) integer labels,
    every sequence exactly L of them (no label padding); input_lengths: (B,) valid steps,
    at least 1. Steps at or beyond a sequence's length do not touch its alphas.
    """
    batch, n_labels = labels.shape
    extended = pt.set_subtensor(
        pt.full((batch, 2 * n_labels + 1), blank, dtype=labels.dtype)[:, 1::2], labels)
    # Log-probability of each extended label at every step: (T, B, S).
    emit = log_probs[:, pt.arange(batch)[:, None], extended]
    # A path may skip the blank between two labels only when the labels differ.
    can_skip = pt.concatenate(
        [pt.zeros((batch, 2), dtype="bool"), pt.neq(extended[:, 2:], extended[:, :-2])], axis=1)
    mask = pt.lt(pt.arange(log_probs.shape[0])[:, None], input_lengths[None, :])  # (T, B)

    def step(emit_t, mask_t, alpha, can_skip):
        log_zero = pt.full_like(alpha[:, :2], LOG_ZERO)
        stay = alpha
        advance = pt.concatenate([log_zero[:, :1], alpha[:, :-1]], axis=1)
        skip = pt.switch(can_skip, pt.concatenate([log_zero, alpha[:, :-2]], axis=1), LOG_ZERO)
        new = logsumexp(pt.stack([stay, advance, skip]), axis=0) + emit_t
        return pt.switch(mask_t[:, None], new, alpha)

    # Paths start in the first blank or the first label.
    starts = pt.lt(pt.arange(extended.shape[1]), 2)[None, :]
    alpha_0 = pt.switch(starts, emit[0], LOG_ZERO)
    alphas = pytensor.scan(step, sequences=[emit[1:], mask[1:]], outputs_info=alpha_0,
                           non_sequences=can_skip, return_updates=False)
    # Paths end in the last label or the final blank.
    return -logsumexp(alphas[-1][:, -2:], axis=1)
