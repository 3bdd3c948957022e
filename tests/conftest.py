import csv
import subprocess
import sys

import os
import tempfile

import pytest

# One compile cache (PyTensor's numba/C code) for the whole session: the same tiny graphs
# are compiled by several tests, and by the workers the CLI tests start.
os.environ.setdefault("RNNBENCH_CACHE_DIR", tempfile.mkdtemp(prefix="rnnbench-test-cache-"))


def rnnbench(*args, timeout=900):
    """Run the rnnbench command in a fresh process, as a user would."""
    return subprocess.run([sys.executable, "-m", "rnnbench.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def summary(out):
    with open(out / "summary.csv") as f:
        return {(r["scenario"], r["impl"]): r for r in csv.DictReader(f)}


@pytest.fixture
def cli():
    return rnnbench


def build_impl(impl, cfg):
    """Build a registered implementation in this process, as the worker does."""
    import importlib

    from rnnbench.impls import IMPLEMENTATIONS

    module, func = IMPLEMENTATIONS[impl].target.split(":")
    return getattr(importlib.import_module(module), func)(cfg)


def round_trip_and_two_steps(trainer, s, weights):
    """weights() before training is exactly the canonical set; two steps give finite,
    changing losses. Returns the first loss and the weights after that step."""
    import numpy as np

    from rnnbench.data import weight_shapes

    w0 = trainer.weights()
    assert set(w0) == set(weight_shapes(s))
    for k in weights:
        assert w0[k].dtype == np.float32 and np.array_equal(w0[k], weights[k]), k
    loss = trainer.step()
    new = trainer.weights()
    loss2 = trainer.step()
    assert isinstance(loss, float) and np.isfinite(loss) and np.isfinite(loss2) and loss2 != loss
    return loss, new
