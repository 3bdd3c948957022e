"""The float64 reference against finite differences and brute force; verify.compare."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rnnbench import reference as R
from rnnbench import verify as V
from rnnbench.data import Batch, canonical_weights, gate_blocks, make_batch
from rnnbench.scenarios import SCENARIOS, SEED_SCENARIOS

TINY = dict(batch=3, time_steps=5, features=3, hidden=4)


def tiny(name, **changes):
    return SCENARIOS[name].resized(**{**TINY, **changes})


def as64(weights):
    return {k: v.astype(np.float64) for k, v in weights.items()}


def check_grads(s, batch, gru="reset-after", per_tensor=4, seed=0):
    """Central differences on a few random elements of every tensor."""
    w = as64(canonical_weights(s))
    _, grads = R.loss_and_grads(s, batch, w, gru=gru)
    assert set(grads) == set(w)
    rng = np.random.default_rng(seed)
    h = 1e-6
    for name, value in w.items():
        assert grads[name].shape == value.shape
        for _ in range(per_tensor):
            idx = tuple(rng.integers(0, n) for n in value.shape)
            plus, minus = dict(w), dict(w)
            plus[name] = value.copy()
            plus[name][idx] += h
            minus[name] = value.copy()
            minus[name][idx] -= h
            fd = (R.loss_and_grads(s, batch, plus, gru=gru)[0]
                  - R.loss_and_grads(s, batch, minus, gru=gru)[0]) / (2 * h)
            assert grads[name][idx] == pytest.approx(fd, rel=1e-5, abs=1e-8), (name, idx)
    return grads


@pytest.mark.parametrize("gru", R.GRU_FORMULATIONS)
def test_gru_gradients(gru):
    s = tiny("gru-1x320-ce")
    check_grads(s, make_batch(s), gru=gru)


def test_gru_formulations_differ():
    s = tiny("gru-1x320-ce")
    b, w = make_batch(s), canonical_weights(s)
    after = R.loss_and_grads(s, b, w, gru="reset-after")[0]
    before = R.loss_and_grads(s, b, w, gru="reset-before")[0]
    assert abs(after - before) > 1e-4


def test_lstm_gradients():
    s = tiny("lstm-1x320-ce")
    check_grads(s, make_batch(s))


def test_stacked_bidirectional_ce_gradients():
    s = tiny("lstm-4x320bi-ce", layers=2)
    grads = check_grads(s, make_batch(s), per_tensor=2)
    # The top backward direction has seen one step from a zero state at t = T-1.
    assert np.all(grads["l1.bw.w_hh"] == 0)


def test_ce_head_gradient_and_value():
    s = tiny("lstm-1x320-ce")
    b, w = make_batch(s), as64(canonical_weights(s))
    top = np.random.default_rng(1).normal(size=(s.batch, s.time_steps, s.head_inputs))
    loss, dtop, dw, db = R.ce_head(top, b.y, w["head.w"], w["head.b"])
    logits = top[:, -1] @ w["head.w"].T + w["head.b"]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(s.batch), b.y])), rel=1e-12)
    assert np.all(dtop[:, :-1] == 0)
    h = 1e-6
    for arr, grad in ((top, dtop), (w["head.w"], dw), (w["head.b"], db)):
        for idx in [(0,) * arr.ndim, tuple(n - 1 for n in arr.shape)]:
            old = arr[idx]
            arr[idx] = old + h
            up = R.ce_head(top, b.y, w["head.w"], w["head.b"])[0]
            arr[idx] = old - h
            down = R.ce_head(top, b.y, w["head.w"], w["head.b"])[0]
            arr[idx] = old
            assert grad[idx] == pytest.approx((up - down) / (2 * h), rel=1e-6, abs=1e-9)


def ctc_brute_force(logits, labels, smooth=0.0):
    """-log of the summed probability of every path that collapses to ``labels`` (each
    class's probability smoothed to ``(1 - smooth) p + smooth / S``, S = 2U + 1)."""
    T, C = logits.shape
    p = (1 - smooth) * np.exp(R.log_softmax(logits)) + smooth / (2 * len(labels) + 1)
    total = 0.0
    for path in itertools.product(range(C), repeat=T):
        collapsed = [k for i, k in enumerate(path) if k != R.BLANK and (i == 0 or path[i - 1] != k)]
        if collapsed == list(labels):
            total += np.prod(p[np.arange(T), path])
    return -np.log(total)


@pytest.mark.parametrize("ctc", R.CTC_VARIANTS)
@pytest.mark.parametrize("labels", [(1, 2), (1, 1), (2,)])
def test_ctc_loss_brute_force_and_gradient(labels, ctc):
    logits = np.random.default_rng(3).normal(size=(4, 3))
    nll, grad = R.ctc_loss(logits, np.array(labels), ctc)
    if ctc == "exact":
        assert nll == pytest.approx(ctc_brute_force(logits, labels), rel=1e-12)
    else:  # Keras 2's Theano loss: smoothed, and counted once per time step (T = 4)
        expected = ctc_brute_force(logits, labels, smooth=R.KERAS2_CTC_SMOOTHING) - np.log(4)
        assert nll == pytest.approx(expected, rel=1e-12)
        assert abs(nll - R.ctc_loss(logits, np.array(labels))[0]) > 1.0
    assert grad.sum(axis=1) == pytest.approx(np.zeros(4), abs=1e-12)  # shift-invariant softmax
    h = 1e-6
    for idx in itertools.product(range(4), range(3)):
        up, down = logits.copy(), logits.copy()
        up[idx] += h
        down[idx] -= h
        fd = (R.ctc_loss(up, np.array(labels), ctc)[0] - R.ctc_loss(down, np.array(labels), ctc)[0]) / (2 * h)
        assert grad[idx] == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_ctc_infeasible_alignment_raises():
    with pytest.raises(ValueError):
        R.ctc_loss(np.zeros((2, 3)), np.array([1, 1]))  # needs a blank between: 3 steps


def ctc_scenario():
    s = tiny("lstm-4x320bi-ctc", layers=2, time_steps=8, classes=5)
    b = make_batch(s)
    assert list(b.lengths) == [4, 6, 8] and b.y.shape == (3, 2)
    return s, b


def test_bidirectional_ctc_gradients():
    s, b = ctc_scenario()
    check_grads(s, b, per_tensor=3)


def test_padding_has_no_influence():
    s, b = ctc_scenario()
    w = canonical_weights(s)
    loss, grads = R.loss_and_grads(s, b, w)
    x = b.x.copy()
    pad = np.arange(s.time_steps)[None, :] >= b.lengths[:, None]
    x[pad] = np.random.default_rng(5).uniform(-5, 5, x[pad].shape)
    loss2, grads2 = R.loss_and_grads(s, Batch(x, b.y, b.lengths), w)
    assert loss2 == loss
    for name in grads:
        np.testing.assert_array_equal(grads2[name], grads[name], err_msg=name)
    # ... while the same change counts once the lengths say it is data.
    full = np.full_like(b.lengths, s.time_steps)
    assert R.loss_and_grads(s, Batch(x, b.y, full), w)[0] != pytest.approx(
        R.loss_and_grads(s, Batch(b.x, b.y, full), w)[0])


def test_backward_direction_starts_at_true_end():
    """A 1-layer bidirectional net: the bw output at t=0 of a sequence of length L equals
    that of the same sequence truncated to L with no padding at all."""
    s, b = ctc_scenario()
    s = s.resized(layers=1)
    w = as64(canonical_weights(s))
    x = b.x.astype(np.float64)
    T = s.time_steps
    mask = np.arange(T)[None, :] < b.lengths[:, None]
    top, _ = R.stack_forward(s, x, mask, R.reverse_index(b.lengths, T), w, "reset-after")
    for i, L in enumerate(b.lengths):
        xi = x[i : i + 1, :L]
        ones = np.ones((1, L), dtype=bool)
        alone, _ = R.stack_forward(s, xi, ones, R.reverse_index(np.array([L]), L), w, "reset-after")
        np.testing.assert_allclose(top[i, :L], alone[0], rtol=1e-12, atol=1e-14)
        assert np.all(top[i, L:] == 0)


@pytest.mark.parametrize("variant", R.ADAM_VARIANTS)
def test_adam_first_step_by_hand(variant):
    w = {"a": np.array([1.0, -2.0, 0.5])}
    g = {"a": np.array([0.5, -0.01, 0.0])}
    new = R.adam_step(w, g, lr=0.1, eps=1.0, variant=variant)["a"]
    if variant == "standard":
        # m_hat = g, v_hat = g^2: w - lr * g / (|g| + eps)
        expected = [1.0 - 0.1 * 0.5 / 1.5, -2.0 + 0.1 * 0.01 / 1.01, 0.5]
    else:
        # m = 0.1 g, sqrt(v) = sqrt(0.001) |g|, alpha = lr * sqrt(0.001) / 0.1
        alpha = 0.1 * np.sqrt(0.001) / 0.1
        expected = [1.0 - alpha * 0.05 / (np.sqrt(0.001) * 0.5 + 1.0),
                    -2.0 + alpha * 0.001 / (np.sqrt(0.001) * 0.01 + 1.0), 0.5]
    np.testing.assert_allclose(new, expected, rtol=1e-14)
    # With a tiny eps the first step is ~ lr * sign(g) in both variants.
    tiny_eps = R.adam_step(w, g, lr=0.1, eps=1e-12, variant=variant)["a"]
    np.testing.assert_allclose(tiny_eps, [0.9, -1.9, 0.5], rtol=1e-8)


def test_reference_rejects_bad_input():
    s = tiny("gru-1x320-ce")
    b, w = make_batch(s), canonical_weights(s)
    with pytest.raises(ValueError):
        R.loss_and_grads(s, b, w, gru="reset-sideways")
    with pytest.raises(ValueError):
        R.adam_step(w, w, lr=1, eps=1, variant="adamw")
    del w["head.b"]
    with pytest.raises(ValueError, match="head.b"):
        R.loss_and_grads(s, b, w)


# ------------------------------------------------------------------ verify.compare

def smoke(name):
    s = V.verify_scenario(SCENARIOS[name])
    return s, make_batch(s), canonical_weights(s)


def impl_step(s, b, w, **kw):
    """What a correct float32 implementation would report."""
    loss, _, new = R.train_step(s, b, w, lr=V.VERIFY_LR, eps=V.VERIFY_EPS, **kw)
    return np.float32(loss).item(), {k: v.astype(np.float32) for k, v in new.items()}


def test_reference_is_fast_at_smoke_size():
    import time

    for name in SEED_SCENARIOS:
        s, b, w = smoke(name)
        t = time.perf_counter()
        R.train_step(s, b, w, lr=1.0, eps=1.0)
        assert time.perf_counter() - t < 1.0


@pytest.mark.parametrize("name", SEED_SCENARIOS)
@pytest.mark.parametrize("adam", R.ADAM_VARIANTS)
def test_compare_passes_identical(name, adam):
    s, b, w = smoke(name)
    assert (s.batch, s.time_steps, s.hidden) == (4, 12, 8)
    loss, new = impl_step(s, b, w, adam=adam)
    v = V.compare(s, b, w, loss, new, {"adam": adam})
    assert v.ok, v.message
    assert v.loss_err < 1e-6 and v.worst[1] < 1e-6
    assert set(v.param_errs) == set(w)


def swap_gates(s, weights, a, b):
    out = {}
    for name, value in weights.items():
        if name.startswith("head"):
            out[name] = value
            continue
        blocks = gate_blocks(value, s.gates)
        blocks[a], blocks[b] = blocks[b], blocks[a]
        out[name] = np.concatenate(blocks, axis=0)
    return out


@pytest.mark.parametrize("name", SEED_SCENARIOS)
def test_compare_catches_swapped_gates(name):
    s, b, w = smoke(name)
    # An implementation that loads gate blocks 0 and 1 (i/f or r/z) into each other's slots
    # and converts back with the same mapping.
    loss, new = impl_step(s, b, swap_gates(s, w, 0, 1))
    v = V.compare(s, b, w, loss, swap_gates(s, new, 0, 1))
    assert not v.ok
    assert v.worst[1] > 10 * V.DELTA_RTOL
    assert "weight updates differ" in v.message


def test_compare_catches_padding_leak():
    s, b, w = smoke("lstm-4x320bi-ctc")
    leaky = Batch(b.x, b.y, np.full_like(b.lengths, s.time_steps))
    loss, new = impl_step(s, leaky, w)
    v = V.compare(s, b, w, loss, new)
    assert not v.ok
    assert v.loss_err > 10 * V.LOSS_RTOL and "loss" in v.message


def test_compare_checks_the_declared_formulation():
    s, b, w = smoke("gru-1x320-ce")
    loss, new = impl_step(s, b, w, gru="reset-before")
    wrong = V.compare(s, b, w, loss, new, {})
    assert not wrong.ok and wrong.gru == "reset-after"
    right = V.compare(s, b, w, loss, new, {"gru": "reset-before"})
    assert right.ok and right.gru == "reset-before", right.message


def test_compare_checks_the_adam_variant():
    s, b, w = smoke("lstm-1x320-ce")
    loss, new = impl_step(s, b, w, adam="epsilon-hat")
    assert not V.compare(s, b, w, loss, new, {"adam": "standard"}).ok
    assert V.compare(s, b, w, loss, new, {"adam": "epsilon-hat"}).ok


def test_compare_catches_a_gradient_off_by_a_factor():
    s, b, w = smoke("lstm-1x320-ce")
    loss, grads = R.loss_and_grads(s, b, w)
    grads["l0.fw.w_hh"] = grads["l0.fw.w_hh"] * 1.5
    new = R.adam_step(w, grads, lr=V.VERIFY_LR, eps=V.VERIFY_EPS)
    v = V.compare(s, b, w, loss, new)
    assert not v.ok and v.worst[0] == "l0.fw.w_hh"
    assert [n for n, e in v.param_errs.items() if e > V.DELTA_RTOL] == ["l0.fw.w_hh"]


def test_compare_names_and_shapes():
    s, b, w = smoke("lstm-1x320-ce")
    loss, new = impl_step(s, b, w)
    missing = {k: v for k, v in new.items() if k != "l0.fw.b_hh"}
    v = V.compare(s, b, w, loss, missing)
    assert not v.ok and "missing" in v.message and "l0.fw.b_hh" in v.message
    v = V.compare(s, b, w, loss, {**new, "l0.fw.bias": new["l0.fw.b_hh"]})
    assert not v.ok and "unexpected" in v.message and "l0.fw.bias" in v.message
    v = V.compare(s, b, w, loss, {**new, "head.w": new["head.w"].T})
    assert not v.ok and "head.w" in v.message and "shape" in v.message
    v = V.compare(s, b, w, float("nan"), new)
    assert not v.ok
    v = V.compare(s, b, w, loss, {**new, "head.b": np.full_like(new["head.b"], np.nan)})
    assert not v.ok and "head.b" in v.message


def rounding_share(new_ref, initial):
    """One float32 ulp of the largest new weight, relative to the tensor's largest update:
    the share of it that delta_err forgives as float32 rounding."""
    d = np.abs(new_ref - initial).max()
    return np.spacing(np.abs(new_ref).astype(np.float32)).max() / d


def test_verify_lr_makes_float32_rounding_negligible():
    """At VERIFY_LR one ulp of any new weight is under 1% of the tolerance, for every tensor
    the step moves, in every scenario, GRU formulation and Adam variant: the rounding
    allowance cannot hide an error the tolerance would catch."""
    shares = {}
    for name in SCENARIOS:
        s, b, w = smoke(name)
        for gru in R.GRU_FORMULATIONS if s.cell == "gru" else ("reset-after",):
            _, grads = R.loss_and_grads(s, b, w, gru=gru)
            for adam in R.ADAM_VARIANTS:
                new = R.adam_step(w, grads, lr=V.VERIFY_LR, eps=V.VERIFY_EPS, variant=adam)
                for k in w:
                    if np.any(new[k] != w[k]):
                        shares[name, gru, adam, k] = rounding_share(new[k], w[k])
    assert len(shares) > 100 and max(shares.values()) < V.DELTA_RTOL / 100
    # The case that made the check loose at lr = 1: one ulp was 0.7% of the update.
    s, b, w = smoke("lstm-4x320bi-ce")
    _, grads = R.loss_and_grads(s, b, w)
    new = R.adam_step(w, grads, lr=1.0, eps=V.VERIFY_EPS, variant="epsilon-hat")
    assert rounding_share(new["l0.bw.w_hh"], w["l0.bw.w_hh"]) > 5 * V.DELTA_RTOL


@pytest.mark.parametrize("adam", R.ADAM_VARIANTS)
def test_compare_catches_a_half_percent_error_in_any_one_tensor(adam):
    s, b, w = smoke("lstm-4x320bi-ce")
    loss, new = impl_step(s, b, w, adam=adam)
    assert V.compare(s, b, w, loss, new, {"adam": adam}).ok  # float32 rounding alone passes
    _, _, ref = R.train_step(s, b, w, lr=V.VERIFY_LR, eps=V.VERIFY_EPS, adam=adam)
    moved = [k for k in w if np.any(ref[k] != w[k])]
    assert len(moved) == len(w) - 1  # all but l3.bw.w_hh, which sees only h = 0
    for k in moved:
        off = (w[k] + 1.005 * (ref[k] - w[k])).astype(np.float32)  # the update 0.5% too large
        assert 4e-3 < V.delta_err(w[k], off, ref[k]) < 6e-3, k
    # Through compare, in the tensor with the smallest update against its weights.
    k = max(moved, key=lambda k: rounding_share(ref[k], w[k]))
    assert k == "l0.bw.w_hh"
    off = (w[k] + 1.005 * (ref[k] - w[k])).astype(np.float32)
    v = V.compare(s, b, w, loss, {**new, k: off}, {"adam": adam})
    assert not v.ok and [n for n, e in v.param_errs.items() if e > V.DELTA_RTOL] == [k]
