"""One record per framework: every other place (registry, CLI, worker, runner, charts)
reads these facts from here. Framework-free: this package's ``__init__`` imports no
framework; the runtime modules beside it do, and only the worker imports them.

A runtime module has ``setup(framework, threads, flush_denormal, device) -> dict`` that
sets the thread count through the framework's own API, flushes denormals where asked,
resolves ``device`` ("auto" | "cpu" | "cuda") and returns metadata to record (at least
``device``: "cpu" or "cuda", ``device_name``, ``threads``, ``flush_denormal``), plus
``gpu_peak_mb() -> float | None`` and ``adam_eps``, the framework's default Adam epsilon.
The OMP/MKL/OpenBLAS variables are set by the runner in the worker's environment.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class Framework:
    name: str
    family: str  # the framework family a reader knows: PyTorch, TensorFlow, Keras, JAX, PyTensor
    distributions: tuple[str, ...]  # whose versions every result records
    modules: tuple[str, ...]  # that must import for the framework to count as installed
    runtime: str  # the module beside this file whose setup() the worker calls first
    extra: str  # pip extra(s) that install it: pip install 'rnnbench[EXTRA]'
    # What a fork server (rnnbench.forkserver, smoke profile) imports before forking each
    # worker: only modules that start no threads and touch no device at import.
    preload: tuple[str, ...] = ()

    @property
    def installed(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in self.modules)

    def versions(self) -> dict[str, str]:
        from importlib import metadata

        out = {}
        for dist in self.distributions:
            try:
                out[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                pass
        return out

    def install_hint(self) -> str:
        return f"pip install 'rnnbench[{self.extra}]'"


FRAMEWORKS: dict[str, Framework] = {
    f.name: f
    for f in [
        Framework("torch", "PyTorch", ("torch",), ("torch",), "torch_", "torch",
                  preload=("torch", "torch._dynamo")),
        Framework("tensorflow", "TensorFlow", ("tensorflow-cpu", "tensorflow"), ("tensorflow",),
                  "tensorflow_", "tensorflow"),
        Framework("keras-tensorflow", "Keras", ("keras", "tensorflow-cpu", "tensorflow"), ("keras", "tensorflow"),
                  "keras_", "keras"),
        Framework("keras-jax", "Keras", ("keras", "jax", "jaxlib"), ("keras", "jax"), "keras_", "keras"),
        Framework("keras-torch", "Keras", ("keras", "torch"), ("keras", "torch"), "keras_", "keras"),
        Framework("jax", "JAX", ("jax", "jaxlib", "flax", "optax"), ("jax", "flax", "optax"), "jax_", "jax"),
        Framework("pytensor", "PyTensor", ("pytensor", "numba"), ("pytensor",), "pytensor_", "pytensor"),
        Framework("pytensor-jax", "PyTensor", ("pytensor", "jax", "jaxlib"), ("pytensor", "jax"),
                  "pytensor_", "pytensor,jax"),
    ]
}

# One hue family per framework family, dark to light: each implementation of the family
# takes the next shade (registry order), the same in every chart and page.
FAMILY_SHADES = {
    "PyTorch": ("#a50f15", "#de2d26", "#fb6a4a", "#fc9272", "#67000d"),
    "TensorFlow": ("#a63603", "#e6550d", "#fd8d3c", "#fdae6b", "#7f2704"),
    "Keras": ("#54278f", "#807dba", "#bcbddc"),
    "JAX": ("#08519c", "#4292c6", "#9ecae1"),
    "PyTensor": ("#006d2c", "#41ab5d", "#a1d99b"),
}


def runtime(framework: str):
    return importlib.import_module(f"{__name__}.{FRAMEWORKS[framework].runtime}")
