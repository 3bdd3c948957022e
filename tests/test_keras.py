"""Keras 3 layers (rnnbench.impls.keras_layers) on the tensorflow, jax and torch backends.

Keras picks its backend once per process, so each backend runs in its own subprocess
(``CHILD`` below), which builds every seed scenario at the smoke size, takes one step with
the verification settings (lr = 1, eps = 1) and reports back as JSON; the assertions are
made here. The reference comparison treats the LSTM's single Keras bias as the canonical
model with ``b_hh`` frozen (``notes["bias"] == "single"``): the gradient of ``b_hh`` is
zeroed before the reference's Adam step.
"""

import csv
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("keras")

from rnnbench.data import weight_shapes  # noqa: E402
from rnnbench.frameworks import FRAMEWORKS  # noqa: E402
from rnnbench.impls import framework_available  # noqa: E402
from rnnbench.launch import cpu_certain  # noqa: E402
from rnnbench.scenarios import PROFILES, SCENARIOS, SEED_SCENARIOS, apply_profile  # noqa: E402

BACKENDS = ["keras-tensorflow", "keras-jax", "keras-torch"]
LOSS_RTOL, DELTA_RTOL = 1e-4, 1e-3

CHILD = r"""
import json, sys
import numpy as np

framework, out = sys.argv[1], sys.argv[2]
from rnnbench.frameworks import keras_
info = keras_.setup(framework, 1, True, "cpu")

# Count calls of Keras' generic RNN loop, to check notes["kernel"].
from keras.src import backend as keras_backend
generic_calls = []
generic_rnn = keras_backend.rnn
def counting_rnn(*args, **kwargs):
    generic_calls.append(1)
    return generic_rnn(*args, **kwargs)
keras_backend.rnn = counting_rnn

# Count calls of the backend trainer's train_step: once per trace where the step is
# compiled (TensorFlow, JAX), once per step in eager torch.
import importlib
backend_name = keras_backend.backend()
trainer_cls = getattr(importlib.import_module(f"keras.src.backend.{backend_name}.trainer"),
                      {"tensorflow": "TensorFlowTrainer", "jax": "JAXTrainer", "torch": "TorchTrainer"}[backend_name])
step_calls = []
train_step = trainer_cls.train_step
def counting_train_step(self, *args, **kwargs):
    step_calls.append(1)
    return train_step(self, *args, **kwargs)
trainer_cls.train_step = counting_train_step

from rnnbench import reference
from rnnbench.data import canonical_weights, make_batch
from rnnbench.impls import keras_layers
from rnnbench.impls.base import Config
from rnnbench.scenarios import PROFILES, SCENARIOS, SEED_SCENARIOS, apply_profile

from rnnbench.verify import delta_err  # noqa: E402  (the error measure verify uses)

results = {"info": info, "scenarios": {}}
for name in SEED_SCENARIOS:
    s = apply_profile(SCENARIOS[name], PROFILES["smoke"])
    batch, w = make_batch(s), canonical_weights(s)
    generic_calls.clear()
    step_calls.clear()
    trainer = keras_layers.build(Config(s, batch, w, lr=1.0, adam_eps=1.0))
    w0 = trainer.weights()
    loss = trainer.step()
    new = trainer.weights()
    loss2 = trainer.step()
    ref_loss, grads = reference.loss_and_grads(s, batch, w, gru=trainer.notes.get("gru", "reset-after"))
    if trainer.notes.get("bias") == "single":
        grads = {k: (0 * g if k.endswith("b_hh") else g) for k, g in grads.items()}
    ref_new = reference.adam_step(w, grads, lr=1.0, eps=1.0, variant=trainer.notes["adam"])
    results["scenarios"][name] = {
        "exact_at_step0": sorted(k for k in w if w0[k].dtype == np.float32 and np.array_equal(w0[k], w[k])),
        "shapes": {k: list(v.shape) for k, v in new.items()},
        "changed": sorted(k for k in w if not np.array_equal(new[k], w[k])),
        "ref_changed": sorted(k for k in w if not np.array_equal(ref_new[k], w[k])),
        "loss": loss, "loss2": loss2, "ref_loss": ref_loss,
        "errs": {k: delta_err(w[k], new[k], ref_new[k]) for k in w},
        "parameters": trainer.parameters,
        "notes": trainer.notes,
        "generic_loop": bool(generic_calls),
        "train_step_calls": len(step_calls),  # over the two steps
    }
with open(out, "w") as f:
    json.dump(results, f)
"""


def _env():
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("KERAS_BACKEND", None)
    return env


@pytest.fixture(scope="module", params=BACKENDS)
def child(request, tmp_path_factory):
    framework = request.param
    if not framework_available(framework):
        pytest.skip(f"{framework}: framework not installed")
    out = tmp_path_factory.mktemp(framework) / "result.json"
    proc = subprocess.run([sys.executable, "-c", CHILD, framework, str(out)], env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return framework, json.loads(out.read_text())


def test_runtime_info(child):
    framework, r = child
    info = r["info"]
    backend = framework.removeprefix("keras-")
    assert info["keras_backend"] == backend
    assert info["device"] == "cpu" and info["threads"] == 1
    assert info["flush_denormal"] == "on"


@pytest.mark.parametrize("name", SEED_SCENARIOS)
def test_one_step_matches_reference(child, name):
    framework, r = child
    got = r["scenarios"][name]
    s = apply_profile(SCENARIOS[name], PROFILES["smoke"])
    shapes = weight_shapes(s)
    # weights() returns every canonical tensor, in canonical shapes, and at step 0 exactly
    # the weights that were loaded (the layout conversions are lossless).
    assert {k: tuple(v) for k, v in got["shapes"].items()} == shapes
    assert got["exact_at_step0"] == sorted(shapes)
    # The step trains: finite losses, and exactly the tensors the reference updates moved
    # (not the LSTM's frozen b_hh, nor the top backward w_hh of the bidirectional CE
    # networks, whose one step at t = T-1 starts from a zero state).
    assert np.isfinite(got["loss"]) and np.isfinite(got["loss2"]) and got["loss2"] != got["loss"]
    assert got["changed"] == got["ref_changed"]
    assert len(got["changed"]) >= len(shapes) // 2
    # Same loss and update as the float64 reference.
    assert abs(got["loss"] - got["ref_loss"]) / abs(got["ref_loss"]) < LOSS_RTOL
    bad = {k: e for k, e in got["errs"].items() if not e < DELTA_RTOL}
    assert not bad, bad


@pytest.mark.parametrize("name", SEED_SCENARIOS)
def test_notes_and_parameter_count(child, name):
    framework, r = child
    got = r["scenarios"][name]
    s = apply_profile(SCENARIOS[name], PROFILES["smoke"])
    notes = got["notes"]
    assert notes["adam"] == "epsilon-hat"
    assert notes["backend"] == framework.removeprefix("keras-")
    if s.cell == "gru":
        assert notes["gru"] == "reset-after"
    else:
        assert notes["bias"] == "single"
    # Keras counts one bias vector per LSTM direction (two per GRU direction).
    canonical = sum(int(np.prod(v)) for v in weight_shapes(s).values())
    lstm_bhh = s.layers * s.directions * s.gates * s.hidden if s.cell == "lstm" else 0
    assert got["parameters"] == canonical - lstm_bhh
    # notes["kernel"] says "generic loop" exactly when Keras ran its generic RNN loop.
    assert ("generic loop" in notes["kernel"]) == got["generic_loop"], notes["kernel"]
    # Two steps: one trace where the step is compiled (Adam's slots exist before it: built
    # in the first trace, they made TensorFlow trace the step twice), two calls in eager torch.
    assert got["train_step_calls"] == (2 if framework == "keras-torch" else 1)


@pytest.mark.parametrize("environment, framework, refusal", [
    ("KERAS_BACKEND='torch'", "keras-jax", "keras was imported with the torch backend"),
    # keras-torch's fork server imports Keras only where the device is sure to be the CPU
    ("KERAS_BACKEND='torch', KERAS_TORCH_DEVICE='meta'", "keras-torch",
     "keras was imported with its torch backend on meta"),
])
def test_keras_imported_otherwise_before_setup_is_refused(environment, framework, refusal):
    """setup() refuses to go on when keras was already imported with another backend, or
    (a fork server's preload) on another torch device than the run's."""
    if not (framework_available(framework) and framework_available("keras-torch")):
        pytest.skip(f"needs {framework} and keras-torch")
    code = (f"import os; os.environ.update({environment}); import keras\n"
            "from rnnbench.frameworks import keras_\n"
            f"try:\n    keras_.setup({framework!r}, 1, True, 'cpu')\n"
            "except RuntimeError as e:\n    print('refused:', e)\n")
    proc = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True,
                          text=True, timeout=300)
    assert "refused: " + refusal in proc.stdout, proc.stderr[-2000:]


@pytest.mark.skipif(importlib.util.find_spec("rnnbench.cli") is None, reason="no CLI yet")
def test_end_to_end_smoke_run_and_verify(tmp_path):
    """`rnnbench run` and `rnnbench verify` on the masked bidirectional LSTM stack with CTC
    (the GRU is covered above); `run --no-verify` since `verify` checks the same step."""
    if not any(framework_available(f) for f in BACKENDS):
        pytest.skip("no Keras backend installed")
    scenarios = ["lstm-4x320bi-ctc"]
    select = ["-i", "keras-*", "--threads", "1"] + [a for n in scenarios for a in ("-s", n)]
    cli = [sys.executable, "-m", "rnnbench.cli"]
    run = subprocess.run(cli + ["run", "--profile", "smoke", "--out", str(tmp_path), "--no-report",
                                "--no-verify"] + select,
                         env=_env(), capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    with open(tmp_path / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["scenario"], r["impl"]) for r in rows) == sorted(
        (n, f) for n in scenarios for f in BACKENDS)
    for row in rows:
        assert row["status"] == ("ok" if framework_available(row["impl"]) else "skipped"), row
        if row["status"] == "ok":
            # Forked from its framework's fork server, with its backend; Keras itself
            # preloaded there, for keras-torch (whose device Keras fixes at import) only
            # where the device is sure to be the CPU.
            doc = json.loads((tmp_path / "runs" / f"{row['scenario']}__{row['impl']}.json").read_text())
            assert doc["worker"] == "forked"
            runtime = doc["meta"]["runtime"]
            assert runtime["keras_backend"] == FRAMEWORKS[row["impl"]].runs_on
            assert runtime["keras_preloaded"] == (row["impl"] != "keras-torch" or cpu_certain("auto"))
    verify = subprocess.run(cli + ["verify"] + select, env=_env(), capture_output=True, text=True,
                            timeout=900)
    assert verify.returncode == 0, verify.stdout[-3000:] + verify.stderr[-3000:]
