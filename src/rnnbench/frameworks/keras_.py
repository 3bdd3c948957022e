"""Keras 3 runtime settings, for the three backends (keras-tensorflow, keras-jax,
keras-torch).

Keras reads ``KERAS_BACKEND`` once, when it is first imported, so ``setup`` sets it (and
everything the backend reads at its own import: JAX's platform, the CPU affinity that
sizes XLA's thread pool, Keras' torch device) before importing anything; this module
imports no framework at the top.
"""

from __future__ import annotations

import os

adam_eps = 1e-7  # keras.optimizers.Adam's default

BACKENDS = {"keras-tensorflow": "tensorflow", "keras-jax": "jax", "keras-torch": "torch"}
_backend: str | None = None


def setup(framework: str, threads: int, flush_denormal: bool, device: str) -> dict:
    global _backend
    _backend = BACKENDS[framework]
    os.environ["KERAS_BACKEND"] = _backend
    info = {"tensorflow": _setup_tensorflow, "jax": _setup_jax, "torch": _setup_torch}[
        _backend
    ](threads, flush_denormal, device)

    import keras

    if keras.backend.backend() != _backend:
        raise RuntimeError(f"keras was imported with the {keras.backend.backend()} backend "
                           f"before setup({framework!r})")
    info.update(keras=keras.__version__, keras_backend=keras.backend.backend())
    return info


def _setup_tensorflow(threads: int, flush_denormal: bool, device: str) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    # Like torch_: `threads` inside each op, ops one after another.
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    gpus = tf.config.list_physical_devices("GPU")
    if device == "auto":
        device = "cuda" if gpus else "cpu"
    if device == "cuda":
        if not gpus:
            raise RuntimeError("--device cuda: TensorFlow sees no GPU")
        # Grow GPU memory on demand, so that the peak figure means something.
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
        details = tf.config.experimental.get_device_details(gpus[0])
        name = details.get("device_name", gpus[0].name)
        build = tf.sysconfig.get_build_info()
        extra = {"cuda": build.get("cuda_version"), "cudnn": build.get("cudnn_version")}
    else:
        tf.config.set_visible_devices([], "GPU")
        name, extra = "cpu", {}
    return {
        "device": device,
        "device_name": name,
        "threads": tf.config.threading.get_intra_op_parallelism_threads(),
        # TensorFlow sets FTZ/DAZ in its own compute threads and offers no switch
        # (measured: 1e-38 * 1.5 gives 0 in eager mode and in tf.function).
        "flush_denormal": "on",
        "tensorflow": tf.__version__,
        **extra,
    }


def _setup_jax(threads: int, flush_denormal: bool, device: str) -> dict:
    if device == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"
    # XLA's CPU runtime sizes its thread pool from the CPUs the process may run on; the
    # old XLA_FLAGS (--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1)
    # no longer have an effect (measured with jaxlib 0.10.2). So restrict the affinity,
    # before jax starts its runtime.
    cpus = sorted(os.sched_getaffinity(0))
    if threads < len(cpus):
        os.sched_setaffinity(0, cpus[:threads])
    import jax
    import jaxlib

    backend = jax.default_backend()
    if device == "auto":
        device = "cuda" if backend == "gpu" else "cpu"
    if device == "cuda" and backend != "gpu":
        raise RuntimeError("--device cuda: JAX sees no GPU")
    return {
        "device": device,
        "device_name": jax.devices()[0].device_kind if device == "cuda" else "cpu",
        "threads": len(os.sched_getaffinity(0)),
        "cpu_affinity": ",".join(map(str, sorted(os.sched_getaffinity(0)))),
        # XLA flushes denormals in its compute threads and offers no switch (measured:
        # 1e-38 * 1.5 gives 0 under jit on CPU).
        "flush_denormal": "on",
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
    }


def _setup_torch(threads: int, flush_denormal: bool, device: str) -> dict:
    from . import torch_

    info = torch_.setup("torch", threads, flush_denormal, device)
    # Keras' torch backend picks its device at import: cuda whenever one is visible.
    os.environ["KERAS_TORCH_DEVICE"] = info["device"]
    import torch

    info["torch"] = torch.__version__
    return info


def gpu_peak_mb():
    if _backend == "torch":
        from . import torch_

        return torch_.gpu_peak_mb()
    if _backend == "tensorflow":
        import tensorflow as tf

        if not tf.config.list_logical_devices("GPU"):
            return None
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    if _backend == "jax":
        import jax

        if jax.default_backend() != "gpu":
            return None
        stats = jax.devices()[0].memory_stats() or {}
        peak = stats.get("peak_bytes_in_use")
        return None if peak is None else peak / 2**20
    return None


def kernel_path(cell: str, masked: bool, device: str, jit: bool) -> str:
    """Which recurrent kernel Keras 3 runs for a GRU/LSTM layer. Keras does not report it;
    this mirrors the dispatch in keras/src/layers/rnn/{lstm,gru}.py and
    keras/src/backend/<backend>/rnn.py (Keras 3.15): each backend's ``lstm``/``gru``
    either runs a fused path or raises NotImplementedError, and the layer falls back to
    the generic ``backend.rnn`` loop that steps the cell."""
    gpu = device == "cuda"
    if _backend == "tensorflow":
        # cuDNN also takes right-padded masks (sequence lengths); XLA is then disabled.
        return "cuDNN (CudnnRNNV3)" if gpu else "generic loop (tf.while_loop over the cell)"
    if _backend == "jax":
        if gpu and cell == "lstm" and not masked:
            return "cuDNN (jax.experimental.rnn)"
        if cell == "gru" and not masked:
            return "lax.scan, input projection hoisted (keras jax gru)"
        return "generic loop (lax.scan over the cell)"
    if _backend == "torch":
        if masked:
            return "generic loop (Python loop over the cell)"
        if gpu and not jit:
            return "cuDNN (torch._VF)"
        return "Python loop, input projection hoisted (keras torch fallback)"
    return "unknown"
