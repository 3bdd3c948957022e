"""The TensorFlow implementations: weights round trip, one verified training step on every
scenario each supports, training on past it, the skips and their reasons, the seed's
parameter counts, and an end-to-end smoke run and verify through the command line."""

import importlib
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow")

from conftest import summary  # noqa: E402
from rnnbench.data import canonical_weights, make_batch  # noqa: E402
from rnnbench.impls import IMPLEMENTATIONS  # noqa: E402
from rnnbench.impls.base import Config, Unsupported  # noqa: E402
from rnnbench.scenarios import SCENARIOS, SEED_SCENARIOS  # noqa: E402
from rnnbench.verify import VERIFY_EPS, VERIFY_LR, compare, verify_scenario  # noqa: E402

TF_IMPLS = [n for n, i in IMPLEMENTATIONS.items() if i.framework == "tensorflow"]
HAS_GPU = bool(tf.config.list_physical_devices("GPU"))
DEVICE = "cuda" if HAS_GPU else "cpu"
SEED_COUNTS = {"gru-1x320-ce": 435_225, "lstm-4x320bi-ce": 8_543_385,
               "lstm-4x320bi-ctc": 8_564_538, "lstm-1x320-ce": 577_625}

try:  # the machine is shared: one thread (only possible before TF's runtime starts)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
except RuntimeError:
    pass


def build(impl, cfg):
    module, func = IMPLEMENTATIONS[impl].target.split(":")
    return getattr(importlib.import_module(module), func)(cfg)


def expected_skip(impl, name):
    """The reason ``impl`` gives for not running scenario ``name`` here, or None."""
    if impl == "tf-cudnn" and not HAS_GPU:
        return "CudnnRNNV3 needs a CUDA GPU"
    if impl == "tf-blockfused" and SCENARIOS[name].cell == "gru":
        return "no fused whole-sequence GRU op"
    return None


def test_every_tensorflow_impl_is_registered():
    assert set(TF_IMPLS) == {"tf-cell", "tf-blockcell", "tf-blockfused", "tf-xla", "tf-cudnn"}


@pytest.mark.parametrize("impl", TF_IMPLS)
@pytest.mark.parametrize("name", SEED_SCENARIOS)
def test_one_step_matches_the_reference(impl, name):
    s = verify_scenario(SCENARIOS[name])
    w0 = canonical_weights(s)
    cfg = Config(s, make_batch(s), w0, device=DEVICE, lr=VERIFY_LR, adam_eps=VERIFY_EPS)
    reason = expected_skip(impl, name)
    if reason:
        with pytest.raises(Unsupported, match=reason):
            build(impl, cfg)
        return
    trainer = build(impl, cfg)

    start = trainer.weights()  # the round trip through the op's layout is exact
    assert start.keys() == w0.keys()
    for k in w0:
        assert start[k].dtype == np.float32 and np.array_equal(start[k], w0[k]), k

    loss = trainer.step()
    assert np.isfinite(loss)
    after = trainer.weights()
    # CE reads the top backward direction after its first step, from h = 0: no gradient
    # reaches its recurrent weights. Every other tensor moves.
    frozen = {f"l{s.layers - 1}.bw.w_hh"} if s.bidirectional and s.loss == "ce" else set()
    assert {k for k in w0 if not np.array_equal(after[k], w0[k])} == set(w0) - frozen
    verdict = compare(s, make_batch(s), w0, loss, after, trainer.notes)
    assert verdict.ok, verdict.message
    assert trainer.notes["adam"] == "epsilon-hat"
    if s.cell == "gru":
        assert trainer.notes["gru"] == ("reset-before" if impl == "tf-blockcell" else "reset-after")


@pytest.mark.parametrize("impl", TF_IMPLS)
def test_keeps_training_at_the_default_learning_rate(impl):
    """Past the verified first step (the smoke run checks the CTC scenario the same way)."""
    s = verify_scenario(SCENARIOS["lstm-4x320bi-ce"])
    if expected_skip(impl, s.name):
        pytest.skip(expected_skip(impl, s.name))
    trainer = build(impl, Config(s, make_batch(s), canonical_weights(s), device=DEVICE, adam_eps=1e-7))
    losses = [trainer.step() for _ in range(4)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0], losses


@pytest.mark.parametrize("impl", TF_IMPLS)
@pytest.mark.parametrize("name", SEED_SCENARIOS)
def test_parameter_counts_match_the_seed(impl, name):
    if expected_skip(impl, name):
        pytest.skip(expected_skip(impl, name))
    s = SCENARIOS[name]
    cfg = Config(s, make_batch(s), canonical_weights(s), device=DEVICE)
    assert build(impl, cfg).parameters == SEED_COUNTS[name]  # built, not trained


def test_smoke_run_and_verify_end_to_end(cli, tmp_path):
    name = "lstm-4x320bi-ctc"  # the richest scenario: stacked, bidirectional, lengths, CTC
    p = cli("run", "--profile", "smoke", "-i", "tf-*", "-s", name, "--threads", "1",
            "--out", tmp_path, "--no-report")
    assert p.returncode == 0, p.stdout + p.stderr
    rows = summary(tmp_path)
    assert set(rows) == {(name, i) for i in TF_IMPLS}
    for (_, impl), row in rows.items():
        reason = expected_skip(impl, name)
        if reason:
            assert row["status"] == "skipped" and reason in row["reason"], row
            continue
        assert row["status"] == "ok", (impl, row["reason"])
        assert row["verified"] == "yes", (impl, row)
        # Not the harness's 1% loop-overhead check: smoke steps last milliseconds, so on a
        # loaded machine one descheduling between steps can exceed it.
        assert "finite" not in row["checks"] and "decreasing" not in row["checks"], (impl, row)
        assert row["flush_denormal"] == "on" and row["threads"] == "1"
        assert int(row["parameters"]) > 0 and float(row["median_s"]) > 0

    # The reset-before GRU of GRUBlockCell is verified as such; blockfused has no GRU.
    p = cli("verify", "-i", "tf-blockcell", "-i", "tf-blockfused", "-s", "gru-1x320-ce",
            "--threads", "1")
    assert p.returncode == 0, p.stdout + p.stderr
    lines = {line.split()[1]: line for line in p.stdout.splitlines()
             if line.startswith("gru-1x320-ce ") and len(line.split()) > 2}
    assert " pass " in lines["tf-blockcell"] and "reset-before" in lines["tf-blockcell"]
    assert "skipped" in lines["tf-blockfused"]


@pytest.mark.parametrize("impl", TF_IMPLS)
def test_train_step_is_traced_once(impl, monkeypatch):
    """The model's Python code runs once, at the first step's trace: Adam's slots exist
    before it (optimizer.build), where a tf.function creating them traced the step twice."""
    from rnnbench.impls import tf_cell

    s = verify_scenario(SCENARIOS["lstm-1x320-ce"])
    if expected_skip(impl, s.name):
        pytest.skip(expected_skip(impl, s.name))
    traces = []
    call = tf_cell.Net.__call__
    monkeypatch.setattr(tf_cell.Net, "__call__", lambda self, *a: traces.append(1) or call(self, *a))
    trainer = build(impl, Config(s, make_batch(s), canonical_weights(s), device=DEVICE))
    for _ in range(3):
        trainer.step()
    assert len(traces) == 1


XLA_CHILD = r"""
import tensorflow as tf  # imported first, as in the fork server: the flags are read later
f = tf.function(lambda x: tf.reduce_sum(x * x), jit_compile=True)
print(float(f(tf.ones(4))))
"""


def test_xla_executables_go_to_the_run_s_compile_cache(tmp_path, monkeypatch):
    """tf-xla's compiles land in the worker's compile cache (launch.cache_env), with the
    user's own TF_XLA_FLAGS kept, even in a process that imported TensorFlow before."""
    import subprocess
    import sys

    from rnnbench.launch import cache_env

    monkeypatch.setenv("TF_XLA_FLAGS", "--tf_xla_enable_lazy_compilation=true")
    env = {**os.environ, **cache_env(str(tmp_path))}
    assert env["TF_XLA_FLAGS"].startswith("--tf_xla_enable_lazy_compilation=true --tf_xla_persistent")
    proc = subprocess.run([sys.executable, "-c", XLA_CHILD], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("4.0"), proc.stderr[-2000:]
    assert [f for f in os.listdir(tmp_path / "tensorflow-xla") if f.startswith("xla_compile_cache")]
