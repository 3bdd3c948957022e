"""Runtime settings of the 2017 stack, applied by the legacy worker before it imports an
implementation: the same knobs as today's runtimes (rnnbench.frameworks), through the APIs
of the time. CPU only: the CUDA builds of 2017-2018 predate today's GPUs.

* torch1: ``torch.set_num_threads(N)`` and ``torch.set_flush_denormal(flag)``.
* tf1, keras2-tf1: TensorFlow 1 takes its thread counts per session
  (``ConfigProto(intra_op_parallelism_threads=N, inter_op_parallelism_threads=1)``,
  ``session_config`` below, which the scripts create their session with) and flushes
  denormals itself.
* theano, keras2-theano: ``THEANO_FLAGS`` (float32, CPU, the compile cache in
  ``$RNNBENCH_CACHE_DIR``, after any flags of yours in the environment); Theano's ops are
  single-threaded, its BLAS calls go to NumPy's OpenBLAS, which reads OPENBLAS_NUM_THREADS
  (set by the runner). Theano has no denormal switch.
* keras2-*: ``KERAS_BACKEND``.

NumPy 1.13's OpenBLAS (0.2.20) does not know today's CPUs and falls back to its slowest
kernels (an AMD EPYC with AVX-512 was taken for "Barcelona": a 2.5x slower GEMM); the
runner sets OPENBLAS_CORETYPE=Haswell (AVX2) for this worker unless it is set already
(rnnbench.legacy.host), which is recorded here.
"""

import os
import platform
import tempfile

ADAM_EPS = 1e-8  # the default of every 2017 Adam here: torch, tf.train, Keras 2, Lasagne
KERAS_BACKENDS = {"keras2-theano": "theano", "keras2-tf1": "tensorflow"}


def cache_dir():
    return os.environ.get("RNNBENCH_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "rnnbench-legacy")


def setup(framework, threads, flush_denormal, device):
    """Apply the settings; returns what to record (device, device_name, threads,
    flush_denormal and the framework's own)."""
    if device == "cuda":
        raise RuntimeError("--device cuda: the 2017 stack runs on the CPU only here")
    info = {"device": "cpu", "device_name": platform.processor() or "cpu", "threads": threads,
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "(detected)")}
    if framework in KERAS_BACKENDS:
        os.environ["KERAS_BACKEND"] = KERAS_BACKENDS[framework]
        info["keras_backend"] = KERAS_BACKENDS[framework]
    if framework in ("theano", "keras2-theano"):
        # Yours first (THEANO_FLAGS, e.g. cxx= for Python-only ops), ours after: Theano takes the last.
        ours = "floatX=float32,device=cpu,base_compiledir=" + os.path.join(cache_dir(), "theano")
        os.environ["THEANO_FLAGS"] = ",".join(f for f in (os.environ.get("THEANO_FLAGS"), ours) if f)
        import theano

        info.update(flush_denormal="off (Theano has no switch)", blas_ldflags=str(theano.config.blas.ldflags),
                    theano_flags=os.environ["THEANO_FLAGS"])
    elif framework in ("tf1", "keras2-tf1"):
        info.update(flush_denormal="on (TensorFlow flushes them itself)", inter_op_threads=1)
    elif framework == "torch1":
        import torch

        torch.set_num_threads(threads)
        ftz = torch.set_flush_denormal(flush_denormal)
        info.update(threads=torch.get_num_threads(), flush_denormal="on" if flush_denormal and ftz else "off")
    else:
        raise ValueError("no legacy runtime for framework {!r}".format(framework))
    return info


def session_config(threads):
    """TensorFlow 1's thread settings, given per session."""
    import tensorflow as tf

    return tf.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1,
                          device_count={"GPU": 0})
