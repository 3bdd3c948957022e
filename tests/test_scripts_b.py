"""The Keras, JAX and PyTensor scripts read as training scripts, and a framework that runs on
another's runtime (Keras' backends, PyTensor's JAX backend) runs under exactly its settings.

The script checks read the source (no framework is imported); the runtime checks call each
framework's ``setup`` in a fresh process, as the worker does: frameworks must not share one.
"""

import ast
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from rnnbench.frameworks import FRAMEWORKS, SETTINGS_COLUMNS
from rnnbench.impls import IMPLEMENTATIONS

FAMILIES = ("Keras", "JAX", "PyTensor")
# What each script must call itself: the model, the loss, the optimizer, the gradient and
# the update (for Keras: compile with the optimizer and loss, then its train step).
TRAIN_STEP = {
    "rnnbench.impls.keras_layers": {
        "layers.Bidirectional", "keras.losses.SparseCategoricalCrossentropy", "ops.ctc_loss",
        "keras.optimizers.Adam", "model.compile", "model.train_on_batch"},
    "rnnbench.impls.jax_scan": {
        "jax.lax.scan", "optax.softmax_cross_entropy_with_integer_labels", "optax.ctc_loss",
        "optax.adam", "jax.value_and_grad", "tx.update", "optax.apply_updates"},
    "rnnbench.impls.flax_nnx": {
        "nnx.RNN", "optax.softmax_cross_entropy_with_integer_labels", "optax.ctc_loss",
        "optax.adam", "nnx.Optimizer", "nnx.value_and_grad", "optimizer.update"},
    "rnnbench.impls.pytensor_scan": {
        "pytensor.scan", "pt.special.log_softmax", "ctc_loss", "pytensor.grad",
        "pytensor.function"},
}
# The rnnbench.impls modules a script may import: the harness surface, and a piece its
# framework lacks (PyTensor has no CTC op). Nothing that hides the model, loss or step.
LIBRARIES = {"base", "pytensor_ctc"}


def script_modules():
    return sorted({i.target.split(":")[0] for i in IMPLEMENTATIONS.values()
                   if FRAMEWORKS[i.framework].family in FAMILIES})


def dotted(node) -> str:
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else "?"


def parse(module: str) -> ast.Module:
    with open(importlib.util.find_spec(module).origin) as f:
        return ast.parse(f.read())


def test_every_script_is_checked():
    assert script_modules() == sorted(TRAIN_STEP)


@pytest.mark.parametrize("module", sorted(TRAIN_STEP))
def test_script_contains_model_loss_optimizer_and_train_step(module):
    tree = parse(module)
    calls = {dotted(n.func): n for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert not TRAIN_STEP[module] - set(calls), f"{module} does not call these itself"
    if module.endswith("pytensor_scan"):  # the optimizer's updates go into the train step (not the forward one)
        compiled = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and dotted(n.func) == "pytensor.function"]
        assert any("updates" in {k.arg for k in c.keywords} for c in compiled)
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    helpers = {n.module for n in imports if n.level == 1}
    helpers |= {n.module.removeprefix("rnnbench.impls.") for n in imports
                if n.level == 0 and n.module.startswith("rnnbench.impls.")}
    assert helpers <= LIBRARIES, helpers


# -- Runtime settings ----------------------------------------------------------------------
CHILD = r"""
import json, os, sys

# Record the environment variables rnnbench's own code sets (frameworks set some too).
set_by_rnnbench, setitem = set(), os._Environ.__setitem__
def recording_setitem(self, key, value):
    frame = sys._getframe(1)
    while frame.f_globals.get("__name__") in ("os", "_collections_abc"):  # setdefault, update
        frame = frame.f_back
    if frame.f_globals.get("__name__", "").startswith("rnnbench."):
        set_by_rnnbench.add(key)
    setitem(self, key, value)
os._Environ.__setitem__ = recording_setitem

from rnnbench.frameworks import runtime
framework, threads = sys.argv[1], int(sys.argv[2])
info = runtime(framework).setup(framework, threads, True, "cpu")
info["cpus"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
info["env_set"] = sorted(set_by_rnnbench)
print(json.dumps(info))
"""
# Variables the setups set: the child starts without them, as a worker does.
SET_BY_SETUP = ("KERAS_BACKEND", "PJRT_NPROC", "XLA_FLAGS", "JAX_PLATFORMS", "PYTENSOR_FLAGS",
                 "KERAS_TORCH_DEVICE", "TF_CPP_MIN_LOG_LEVEL")
_setups: dict = {}


def setup_in_child(framework: str, tmp_path_factory, threads: int = 1) -> dict:
    """``setup(framework, threads, flush_denormal=True, device="cpu")`` in a fresh process;
    its info, the CPUs the process may then run on and the environment variables it set."""
    if (framework, threads) not in _setups:
        if FRAMEWORKS[framework].legacy:
            pytest.skip(f"{framework} sets up under .venv-legacy's Python 3.6 (tests/test_legacy.py)")
        if not FRAMEWORKS[framework].installed:
            pytest.skip(f"{framework} is not installed")
        env = {k: v for k, v in os.environ.items() if k not in SET_BY_SETUP}
        if "cache" not in _setups:  # one compile cache for every child: its path is in their infos
            _setups["cache"] = str(tmp_path_factory.mktemp("cache"))
        env["RNNBENCH_CACHE_DIR"] = _setups["cache"]
        proc = subprocess.run([sys.executable, "-c", CHILD, framework, str(threads)], env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        _setups[framework, threads] = json.loads(proc.stdout.strip().splitlines()[-1])
    return _setups[framework, threads]


@pytest.mark.parametrize("framework", [f for f in FRAMEWORKS if FRAMEWORKS[f].runs_on])
def test_same_thread_affinity_and_denormal_settings_as_the_backend(framework, tmp_path_factory):
    backend = FRAMEWORKS[framework].runs_on
    base = setup_in_child(backend, tmp_path_factory)
    got = setup_in_child(framework, tmp_path_factory)
    # Everything the backend's setup reports (threads, inter-op threads, XLA's pool size,
    # denormals, device), the CPUs it may use, and the variables it sets, identical.
    assert {k: got.get(k) for k in base if k != "env_set"} == {k: v for k, v in base.items() if k != "env_set"}
    assert set(base["env_set"]) <= set(got["env_set"])
    assert got["threads"] == 1 and got["flush_denormal"] == "on"


def test_tensorflow_runs_ops_one_after_another(tmp_path_factory):
    """N threads inside each op, ops one after another, as torch (tensorflow_ says why)."""
    info = setup_in_child("tensorflow", tmp_path_factory, threads=2)
    assert info["threads"] == 2 and info["inter_op_threads"] == 1


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_settings_record_names_every_variable_setup_sets(framework, tmp_path_factory):
    settings = FRAMEWORKS[framework].settings
    assert tuple(settings) == SETTINGS_COLUMNS
    info = setup_in_child(framework, tmp_path_factory)
    assert all(v in settings["environment"] for v in info["env_set"]), info["env_set"]
