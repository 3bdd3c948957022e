"""Per-framework runtime settings, applied by the worker before an implementation loads.

Each module here has ``setup(framework, threads, flush_denormal, device) -> dict`` that
sets the thread count through the framework's own API, flushes denormals where asked,
resolves ``device`` ("auto" | "cpu" | "cuda") and returns metadata to record (at least
``device``: "cpu" or "cuda", ``device_name``, ``threads``, ``flush_denormal``), plus
``gpu_peak_mb() -> float | None`` and ``adam_eps``, the framework's default Adam epsilon.
Only the worker imports these modules; the OMP/MKL/OpenBLAS variables are set by the
runner in the worker's environment.
"""

RUNTIMES = {
    "torch": "torch_",
    "tensorflow": "tensorflow_",
    "keras-tensorflow": "keras_",
    "keras-jax": "keras_",
    "keras-torch": "keras_",
    "jax": "jax_",
    "pytensor": "pytensor_",
    "pytensor-jax": "pytensor_",
}


# What a fork server (rnnbench.forkserver, smoke profile) imports before forking each
# worker: only modules that start no threads and touch no device at import.
PRELOAD = {"torch": ("torch", "torch._dynamo")}


def runtime(framework: str):
    import importlib

    return importlib.import_module(f"{__name__}.{RUNTIMES[framework]}")
