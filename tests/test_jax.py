"""The JAX implementations (flax-nnx, jax-scan) and the JAX runtime settings.

Each implementation is built on every seed scenario at the smoke size and takes one step
with the verification settings (lr = 1, eps = 1); the step is compared with the float64
reference. Flax's OptimizedLSTMCell has a single bias (``notes["bias"] == "single"``): that
model is the canonical one with ``b_hh`` frozen, so the reference zeroes ``b_hh``'s gradient.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("flax")
pytest.importorskip("optax")

from conftest import build_impl, round_trip_and_two_steps, summary  # noqa: E402
from rnnbench import reference  # noqa: E402
from rnnbench.data import Batch, canonical_weights, make_batch, weight_shapes  # noqa: E402
from rnnbench.impls import IMPLEMENTATIONS  # noqa: E402
from rnnbench.impls.base import Config  # noqa: E402
from rnnbench.scenarios import SCENARIOS, SEED_SCENARIOS  # noqa: E402
from rnnbench.verify import DELTA_RTOL, LOSS_RTOL, VERIFY_EPS, VERIFY_LR, verify_scenario  # noqa: E402

JAX_IMPLS = [n for n, i in IMPLEMENTATIONS.items() if i.framework == "jax"]
SEED_COUNTS = {"gru-1x320-ce": 435_225, "lstm-4x320bi-ce": 8_543_385,
               "lstm-4x320bi-ctc": 8_564_538, "lstm-1x320-ce": 577_625}


build = build_impl


from rnnbench.verify import delta_err  # noqa: E402  (the error measure verify uses)


@pytest.mark.parametrize("name", SEED_SCENARIOS)
@pytest.mark.parametrize("impl", JAX_IMPLS)
def test_one_step_round_trip_and_reference(impl, name):
    s = verify_scenario(SCENARIOS[name])
    batch, w = make_batch(s), canonical_weights(s)
    trainer = build(impl, Config(s, batch, w, lr=VERIFY_LR, adam_eps=VERIFY_EPS))

    loss, new = round_trip_and_two_steps(trainer, s, w)

    notes = trainer.notes
    assert notes["adam"] == "standard"
    ref_loss, grads = reference.loss_and_grads(s, batch, w, gru=notes.get("gru", "reset-after"))
    if notes.get("bias") == "single":
        grads = {k: (0 * g if k.endswith("b_hh") else g) for k, g in grads.items()}
    ref_new = reference.adam_step(w, grads, lr=VERIFY_LR, eps=VERIFY_EPS)
    # Exactly the tensors the reference moves have changed (not a frozen b_hh, nor the top
    # backward w_hh of the bidirectional CE nets: its one step at t = T-1 starts from zero).
    changed = sorted(k for k in w if not np.array_equal(new[k], w[k]))
    assert changed == sorted(k for k in w if not np.array_equal(ref_new[k], w[k]))
    assert abs(loss - ref_loss) / abs(ref_loss) < LOSS_RTOL
    errs = {k: delta_err(w[k], new[k], ref_new[k]) for k in w}
    assert not {k: e for k, e in errs.items() if not e < DELTA_RTOL}


@pytest.mark.parametrize("impl", JAX_IMPLS)
def test_padding_does_not_leak(impl):
    """CTC: garbage beyond each length changes neither the loss nor the update."""
    s = verify_scenario(SCENARIOS["lstm-4x320bi-ctc"])
    b, w = make_batch(s), canonical_weights(s)
    pad = np.arange(s.time_steps)[None, :] >= b.lengths[:, None]
    x = np.where(pad[:, :, None], np.float32(7.0), b.x)
    results = []
    for batch in (b, Batch(x, b.y, b.lengths)):
        trainer = build(impl, Config(s, batch, w, lr=VERIFY_LR, adam_eps=VERIFY_EPS))
        results.append((trainer.step(), trainer.weights()))
    (loss_a, w_a), (loss_b, w_b) = results
    assert pad.any() and abs(loss_a - loss_b) <= 1e-6 * abs(loss_a)
    for k in w:
        np.testing.assert_allclose(w_b[k], w_a[k], rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("name", SEED_SCENARIOS)
@pytest.mark.parametrize("impl", JAX_IMPLS)
def test_parameter_counts(impl, name):
    s = SCENARIOS[name]
    trainer = build(impl, Config(s, make_batch(s), canonical_weights(s)))  # built, not trained
    single = trainer.notes.get("bias") == "single"
    assert single == (impl == "flax-nnx" and s.cell == "lstm")
    # Two bias vectors per direction, as PyTorch; Flax's LSTM cell has one.
    lstm_bhh = s.layers * s.directions * s.gates * s.hidden if single else 0
    assert trainer.parameters == SEED_COUNTS[name] - lstm_bhh


@pytest.mark.parametrize("impl", JAX_IMPLS)
def test_train_step_compiles_on_the_first_step_only(impl):
    """The second step runs the first's executable: no argument changes its placement
    (a committed/uncommitted mix compiled the step again on its second call)."""
    import jax.monitoring
    from jax._src.dispatch import BACKEND_COMPILE_EVENT

    s = verify_scenario(SCENARIOS["gru-1x320-ce"])
    trainer = build(impl, Config(s, make_batch(s), canonical_weights(s)))
    trainer.step()
    compiles = []

    def listen(event, duration, **_):
        if event == BACKEND_COMPILE_EVENT:
            compiles.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        trainer.step()
        trainer.step()
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert compiles == []


RUNTIME_CHILD = r"""
import json, sys
from rnnbench.frameworks import jax_
info = jax_.setup("jax", int(sys.argv[1]), True, "cpu")
import jax, jax.numpy as jnp, numpy as np
# XLA CPU flushes denormals: a denormal input (1e-40) reads as 0 and a denormal result is 0.
x = jnp.asarray(np.array([1e-40, 2e-38], np.float32))
info["flushed"] = np.asarray(jax.jit(lambda a: a * jnp.float32(1e30))(x)).tolist()
info["ftz"] = float(jax.jit(lambda a: a * jnp.float32(0.01))(x)[1])
info["gpu_peak_mb"] = jax_.gpu_peak_mb()
print(json.dumps(info))
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_runtime_threads_and_denormals(threads):
    env = {k: v for k, v in os.environ.items() if k not in ("PJRT_NPROC", "XLA_FLAGS", "JAX_PLATFORMS")}
    proc = subprocess.run([sys.executable, "-c", RUNTIME_CHILD, str(threads)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["device"] == "cpu" and info["threads"] == threads
    if sys.platform.startswith("linux"):
        assert info["xla_threads"] == threads  # the XLA compute pool has exactly N threads
    assert info["flush_denormal"] == "on"
    assert info["flushed"][0] == 0.0 and info["flushed"][1] == pytest.approx(2e-8, rel=1e-6)
    assert info["ftz"] == 0.0
    assert info["gpu_peak_mb"] is None


def test_runtime_compiles_into_the_run_s_compile_cache(tmp_path):
    """With the worker's RNNBENCH_CACHE_DIR, XLA's executables go to its jax/ folder (every
    compile, however short), and a second process loads them instead of compiling."""
    env = {k: v for k, v in os.environ.items() if k not in ("PJRT_NPROC", "XLA_FLAGS", "JAX_PLATFORMS")}
    env["RNNBENCH_CACHE_DIR"] = str(tmp_path)
    infos = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", RUNTIME_CHILD, "1"], env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        infos.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        if not infos[1:]:
            first = sorted(os.listdir(tmp_path / "jax"))
    assert infos[0]["compilation_cache"] == str(tmp_path / "jax")
    assert any("multiply" in f or "lambda" in f for f in first)  # the child's two jits
    assert sorted(os.listdir(tmp_path / "jax")) == first  # the second process compiled nothing new


def test_end_to_end_smoke_run_and_verify(cli, tmp_path):
    p = cli("run", "--profile", "smoke", "--threads", "1", "-i", "flax-nnx", "-i", "jax-scan",
            "--out", tmp_path, "--no-report")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    rows = summary(tmp_path)
    assert set(rows) == {(s, i) for s in SEED_SCENARIOS for i in JAX_IMPLS}
    for key, row in rows.items():
        assert row["status"] == "ok", (key, row["reason"])
        assert row["checks"] == "ok", (key, row["checks"])
        assert row["verified"] == "yes", key
        assert row["flush_denormal"] == "on" and row["version"].startswith("jax 0.")
    v = cli("verify", "-i", "flax-nnx", "-i", "jax-scan")
    assert v.returncode == 0, v.stdout[-3000:] + v.stderr[-3000:]
    assert v.stdout.count(" pass ") == 8
