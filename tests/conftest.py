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
