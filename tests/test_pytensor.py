"""PyTensor: the scan implementation (numba backend, and the same graph on the JAX backend),
the scan CTC, and the runtime settings.

Compile time dominates here: a cold numba compile of one smoke-size training function
takes about a minute on a 2-core machine (a 4-layer bidirectional net, two to three), while
the JAX backend compiles the same graph in seconds; the graph rewrites of a 4-layer net
take another 20 to 30 s on either backend. Numba's compiled code is cached under
``$RNNBENCH_CACHE_DIR`` (default ``<tmp>/rnnbench-pytensor``), so a second run is faster.
Hence the numba tests use one-layer versions of the bidirectional scenarios (every code
path: both directions, masking, CTC) and the full 4-layer smoke nets run on JAX.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("pytensor")

from rnnbench.frameworks import pytensor_ as runtime  # noqa: E402

runtime.configure_flags()  # before PyTensor is imported: keep its cache out of ~/.pytensor

from conftest import round_trip_and_two_steps, summary  # noqa: E402
from rnnbench import reference  # noqa: E402
from rnnbench.data import Batch, canonical_weights, make_batch, weight_shapes  # noqa: E402
from rnnbench.impls.base import Config  # noqa: E402
from rnnbench.impls import pytensor_scan  # noqa: E402
from rnnbench.scenarios import SCENARIOS, SEED_SCENARIOS  # noqa: E402
from rnnbench.verify import DELTA_RTOL, LOSS_RTOL, VERIFY_EPS, VERIFY_LR, verify_scenario  # noqa: E402

HAS_JAX = all(__import__("importlib").util.find_spec(m) for m in ("jax", "jaxlib"))
needs_jax = pytest.mark.skipif(not HAS_JAX, reason="PyTensor's JAX backend needs jax")


def smoke(name, layers=None):
    s = verify_scenario(SCENARIOS[name])
    return s.resized(layers=layers) if layers else s


from rnnbench.verify import delta_err  # noqa: E402  (the error measure verify uses)


def check_one_step(build, s):
    batch, w = make_batch(s), canonical_weights(s)
    trainer = build(Config(s, batch, w, lr=VERIFY_LR, adam_eps=VERIFY_EPS))
    assert trainer.parameters == sum(v.size for v in w.values())
    notes = trainer.notes
    assert notes["gru"] == "reset-after" and notes["adam"] == "epsilon-hat"  # Lasagne's Adam

    loss, new = round_trip_and_two_steps(trainer, s, w)

    ref_loss, grads = reference.loss_and_grads(s, batch, w, gru="reset-after")
    ref_new = reference.adam_step(w, grads, lr=VERIFY_LR, eps=VERIFY_EPS, variant="epsilon-hat")
    # Exactly the tensors the reference moves have changed (not the top backward w_hh of a
    # bidirectional CE net: its one step at t = T-1 starts from zero).
    changed = sorted(k for k in w if not np.array_equal(new[k], w[k]))
    assert changed == sorted(k for k in w if not np.array_equal(ref_new[k], w[k]))
    assert abs(loss - ref_loss) / abs(ref_loss) < LOSS_RTOL
    errs = {k: delta_err(w[k], new[k], ref_new[k]) for k in w}
    assert not {k: e for k, e in errs.items() if not e < DELTA_RTOL}


@pytest.mark.parametrize("name,layers", [("gru-1x320-ce", None), ("lstm-1x320-ce", None),
                                         ("lstm-4x320bi-ce", 1), ("lstm-4x320bi-ctc", 1)])
def test_numba_one_step_round_trip_and_reference(name, layers):
    check_one_step(pytensor_scan.build, smoke(name, layers))


@needs_jax
@pytest.mark.parametrize("name", SEED_SCENARIOS)
def test_jax_backend_one_step_full_smoke_nets(name):
    check_one_step(pytensor_scan.build_jax, smoke(name))


NUMBA_CONSTANT_LIMIT = 10**6  # numba keeps no function holding a larger array constant in its cache


def constants(fgraph):
    """The constants of a compiled graph and of the scans' inner graphs in it."""
    from pytensor.graph.basic import Constant
    from pytensor.scan.op import Scan

    found = [v for v in fgraph.variables if isinstance(v, Constant)]
    for node in fgraph.apply_nodes:
        if isinstance(node.op, Scan):
            found += constants(node.op.fgraph)
    return found


@pytest.mark.parametrize("name,layers", [("lstm-1x320-ce", None), ("lstm-4x320bi-ctc", 1)])
def test_numba_training_function_is_cacheable(monkeypatch, name, layers):
    """At the quick profile's size (T = 100, batch 25, hidden 320) the training function
    holds no constant numba would refuse to cache. With a static time axis PyTensor folded
    the LSTM's zero cell-state gradient into a (T+1, B, H) constant of 3.2 MB, and every
    warm run compiled the whole function again (18-71 s, against 0.4-2.4 s now). Only the
    graph is built (rewritten): numba compiles on the first call, which this test skips."""
    import pytensor

    from rnnbench.scenarios import PROFILES, apply_profile

    compiled = []
    function = pytensor.function
    monkeypatch.setattr(pytensor, "function", lambda *a, **k: compiled.append(function(*a, **k)) or compiled[-1])
    s = apply_profile(SCENARIOS[name], PROFILES["quick"])
    s = s.resized(layers=layers) if layers else s
    pytensor_scan.build(Config(s, make_batch(s), canonical_weights(s)))
    (train,) = compiled
    sizes = [getattr(c.data, "nbytes", 0) for c in constants(train.maker.fgraph)]
    assert sizes and max(sizes) <= NUMBA_CONSTANT_LIMIT, max(sizes)


def test_padding_does_not_leak():
    """CTC: garbage beyond each length changes neither the loss nor the update."""
    s = smoke("lstm-4x320bi-ctc", layers=1)  # the same compiled function as above
    b, w = make_batch(s), canonical_weights(s)
    pad = np.arange(s.time_steps)[None, :] >= b.lengths[:, None]
    x = np.where(pad[:, :, None], np.float32(7.0), b.x)
    results = []
    for batch in (b, Batch(x, b.y, b.lengths)):
        trainer = pytensor_scan.build(Config(s, batch, w, lr=VERIFY_LR, adam_eps=VERIFY_EPS))
        results.append((trainer.step(), trainer.weights()))
    (loss_a, w_a), (loss_b, w_b) = results
    assert pad.any() and abs(loss_a - loss_b) <= 1e-6 * abs(loss_a)
    for k in w:
        np.testing.assert_allclose(w_b[k], w_a[k], rtol=1e-5, atol=1e-6, err_msg=k)


@needs_jax  # the CTC graph alone costs a 90 s numba compile; its numba path is covered above
def test_scan_ctc_matches_torch():
    torch = pytest.importorskip("torch")
    import pytensor
    import pytensor.tensor as pt

    from rnnbench.impls.pytensor_ctc import ctc_loss

    rng = np.random.default_rng(0)
    T, B, C, L = 12, 4, 6, 3
    logits = rng.normal(size=(T, B, C)).astype(np.float32)
    labels = rng.integers(1, C, (B, L)).astype(np.int32)
    labels[0, 1] = labels[0, 0]  # a repeated label: the path must pass a blank between them
    lengths = np.array([6, 8, 10, 12], np.int32)

    z = pt.tensor("z", shape=(T, B, C), dtype="float32")
    y = pt.tensor("y", shape=(B, L), dtype="int32")
    n = pt.tensor("n", shape=(B,), dtype="int32")
    loss = ctc_loss(pt.special.log_softmax(z, axis=-1), y, n).mean()
    f = pytensor.function([z, y, n], [loss, pytensor.grad(loss, z)], mode="JAX")
    value, grad = f(logits, labels, lengths)

    zt = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    ref = torch.nn.functional.ctc_loss(
        zt.log_softmax(-1), torch.tensor(labels, dtype=torch.long),
        torch.tensor(lengths, dtype=torch.long), torch.full((B,), L, dtype=torch.long),
        blank=0, reduction="sum") / B
    ref.backward()
    assert float(value) == pytest.approx(ref.item(), rel=1e-5)
    np.testing.assert_allclose(np.asarray(grad), zt.grad.numpy(), atol=1e-6)
    assert not np.asarray(grad)[lengths[0]:, 0].any()  # nothing flows into the padding


RUNTIME_CHILD = r"""
import json, sys
from rnnbench.frameworks import pytensor_
info = pytensor_.setup(sys.argv[4], int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3])
import numpy as np
info["denormal_product"] = float(np.float32(1e-39) * np.float32(1.0))
info["gpu_peak_mb"] = pytensor_.gpu_peak_mb()
import pytensor
info["traceback_limit"] = pytensor.config.traceback__limit
print(json.dumps(info))
"""


def child(tmp_path, threads, flush, device, framework="pytensor", flags=None):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTENSOR_FLAGS", "PJRT_NPROC", "XLA_FLAGS", "JAX_PLATFORMS")}
    env["RNNBENCH_CACHE_DIR"] = str(tmp_path / "cache")
    if flags:
        env["PYTENSOR_FLAGS"] = flags
    args = [str(threads), str(int(flush)), device, framework]
    return subprocess.run([sys.executable, "-c", RUNTIME_CHILD, *args], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("flush", [True, False])
def test_runtime_cache_threads_and_denormals(tmp_path, flush):
    proc = child(tmp_path, 2, flush, "auto")
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["device"] == "cpu" and info["threads"] == 2 and info["gpu_peak_mb"] is None
    assert info["compiledir"] == str(tmp_path / "cache")
    assert info["linker"] == "NumbaLinker"
    assert info["blas_threads"] in ("2", os.environ.get("OPENBLAS_NUM_THREADS", "unknown"))
    if not flush:
        assert info["flush_denormal"] == "off" and info["denormal_product"] > 0
    elif info["flush_denormal"] == "on":
        assert info["denormal_product"] == 0.0  # DAZ: a denormal input reads as zero
    else:
        assert info["flush_denormal"].startswith("off (not supported")


@pytest.mark.parametrize("flags, limit", [(None, 0), ("traceback__limit=5", 5)])
def test_runtime_keeps_no_stack_traces_unless_asked(tmp_path, flags, limit):
    """Stack traces per graph node are off in workers (a quarter of a 4x320 build), unless
    the user's PYTENSOR_FLAGS set a limit; the compile cache moves either way."""
    proc = child(tmp_path, 1, True, "cpu", flags=flags)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["traceback_limit"] == limit and info["compiledir"] == str(tmp_path / "cache")


def test_runtime_refuses_cuda(tmp_path):
    proc = child(tmp_path, 1, True, "cuda")
    assert proc.returncode != 0 and "CPU only" in proc.stderr


@needs_jax
def test_runtime_pytensor_jax_takes_the_jax_settings(tmp_path):
    proc = child(tmp_path, 1, True, "cpu", framework="pytensor-jax")
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["device"] == "cpu" and info["threads"] == 1 and info["linker"] == "JAXLinker"
    assert info["compiledir"] == str(tmp_path / "cache")
    assert info["flush_denormal"] == "on"  # XLA CPU flushes
    if sys.platform.startswith("linux"):
        assert info["xla_threads"] == 1


def test_end_to_end_smoke_run_and_verify(cli, tmp_path):
    # One scenario: a cold numba compile takes about a minute (the session-wide cache of
    # conftest.py helps when the in-process tests compiled the same graph first).
    p = cli("run", "--profile", "smoke", "--threads", "1", "-i", "pytensor-scan",
            "-s", "gru-1x320-ce", "--out", tmp_path, "--no-report")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    rows = summary(tmp_path)
    assert set(rows) == {("gru-1x320-ce", "pytensor-scan")}
    row = rows["gru-1x320-ce", "pytensor-scan"]
    assert row["status"] == "ok", row["reason"]
    assert row["checks"] == "ok", row["checks"]
    assert row["verified"] == "yes"
    assert row["version"].startswith("pytensor 3.")
    v = cli("verify", "-i", "pytensor-scan", "-s", "lstm-1x320-ce", "--threads", "1")
    assert v.returncode == 0, v.stdout[-3000:] + v.stderr[-3000:]
    assert v.stdout.count(" pass ") == 1
