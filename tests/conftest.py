import csv
import subprocess
import sys

import pytest


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
