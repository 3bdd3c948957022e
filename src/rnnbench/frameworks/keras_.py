"""Keras 3 runtime settings, for the three backends (keras-tensorflow, keras-jax,
keras-torch).

A Keras backend runs under exactly its framework's settings: ``setup`` calls the runtime
setup of the framework it runs on (``FRAMEWORKS[...].runs_on``: tensorflow_, jax_ or
torch_, the same threads, affinity, denormal and device settings as tf-*, jax-* and
torch-*) and adds only Keras' own: ``KERAS_BACKEND``, which Keras reads once, at its first
import (importing TensorFlow imports part of Keras and fixes the backend too), so it is set
before any framework is imported; and, for torch, the device Keras places tensors on
(``KERAS_TORCH_DEVICE``, also read at import: a fork server imports Keras for keras-torch
only where the device is sure to be the CPU, and setup checks that it matches).
"""

from __future__ import annotations

import os
import sys

from . import FRAMEWORKS, runtime

adam_eps = 1e-7  # keras.optimizers.Adam's default

_backend_runtime = None  # the backend framework's runtime module, once setup() has run


def setup(framework: str, threads: int, flush_denormal: bool, device: str) -> dict:
    global _backend_runtime
    preloaded = "keras" in sys.modules  # by a fork server (rnnbench.launch)
    backend = FRAMEWORKS[framework].runs_on  # Keras names its backends as we name frameworks
    os.environ["KERAS_BACKEND"] = backend
    _backend_runtime = runtime(backend)  # imports tensorflow or torch: after KERAS_BACKEND
    info = _backend_runtime.setup(backend, threads, flush_denormal, device)
    if backend == "torch":
        # Keras' torch backend picks its device at import: KERAS_TORCH_DEVICE if set, else
        # mps, cuda or xpu where one is available.
        os.environ["KERAS_TORCH_DEVICE"] = info["device"]

    import keras

    if keras.backend.backend() != backend:
        raise RuntimeError(f"keras was imported with the {keras.backend.backend()} backend "
                           f"before setup({framework!r})")
    if backend == "torch":  # a fork server may have imported Keras (on the CPU only)
        from keras.src.backend.torch.core import get_device

        if get_device() != info["device"]:
            raise RuntimeError(f"keras was imported with its torch backend on {get_device()}, "
                               f"this run is on {info['device']}")
    return {**info, "keras_backend": backend, "keras_preloaded": preloaded}


def gpu_peak_mb():
    return _backend_runtime.gpu_peak_mb() if _backend_runtime else None


def kernel_path(backend: str, cell: str, masked: bool, device: str, jit: bool) -> str:
    """Which recurrent kernel Keras 3 runs for a GRU/LSTM layer. Keras does not report it;
    this mirrors the dispatch in keras/src/layers/rnn/{lstm,gru}.py and
    keras/src/backend/<backend>/rnn.py (Keras 3.15): each backend's ``lstm``/``gru``
    either runs a fused path or raises NotImplementedError, and the layer falls back to
    the generic ``backend.rnn`` loop that steps the cell."""
    gpu = device == "cuda"
    if backend == "tensorflow":
        # cuDNN also takes right-padded masks (sequence lengths); XLA is then disabled.
        return "cuDNN (CudnnRNNV3)" if gpu else "generic loop (tf.while_loop over the cell)"
    if backend == "jax":
        if gpu and cell == "lstm" and not masked:
            return "cuDNN (jax.experimental.rnn)"
        if cell == "gru" and not masked:
            return "lax.scan, input projection hoisted (keras jax gru)"
        return "generic loop (lax.scan over the cell)"
    if masked:
        return "generic loop (Python loop over the cell)"
    if gpu and not jit:
        return "cuDNN (torch._VF)"
    return "Python loop, input projection hoisted (keras torch fallback)"
