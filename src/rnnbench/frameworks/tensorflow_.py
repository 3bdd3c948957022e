"""TensorFlow runtime settings (tf-* and, through rnnbench.frameworks.keras_, keras-tensorflow)."""

import os

# Before TensorFlow loads: keep its C++ INFO/WARNING banners out of the worker's stderr.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

adam_eps = 1e-7  # the TF/Keras Adam default


def setup(framework: str, threads: int, flush_denormal: bool, device: str) -> dict:
    # Must run before TensorFlow executes its first op (the worker calls us first).
    # `threads` is the whole budget, as for every framework: torch spreads each op over N
    # threads and runs ops one after another (set_num_interop_threads(1)), XLA runs every
    # kernel on one N-thread pool. TensorFlow's inter-op pool is a second pool whose threads
    # run small kernels themselves, beside the N intra-op threads: with N of them, ops that
    # do not depend on each other (a layer's two directions) run at once on up to 2N
    # threads, a head start the others do not get, which oversubscribes the cores when N is
    # all of them. One inter-op thread keeps TensorFlow within the same budget.
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    gpus = tf.config.list_physical_devices("GPU")
    if device == "auto":
        device = "cuda" if gpus else "cpu"
    if device == "cuda":
        if not gpus:
            raise RuntimeError("--device cuda: TensorFlow sees no GPU (tensorflow-cpu, or no "
                               "CUDA build: install tensorflow[and-cuda])")
        # Allocate on demand rather than reserving the whole GPU up front.
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
        details = tf.config.experimental.get_device_details(gpus[0])
        build = tf.sysconfig.get_build_info()
        name = details.get("device_name", gpus[0].name)
        extra = {"cuda": str(build.get("cuda_version", "")),
                 "cudnn": str(build.get("cudnn_version", ""))}
    else:
        tf.config.set_visible_devices([], "GPU")  # so default placement is the CPU
        name, extra = "cpu", {}

    # TensorFlow sets flush-to-zero and denormals-are-zero itself around every kernel it
    # runs (eager ops, its inter/intra-op thread pools, XLA:CPU) and offers no switch to
    # turn that off, so denormals are flushed whatever was asked.
    ftz = "on" if flush_denormal else "on (TensorFlow always flushes; cannot be disabled)"
    return {
        "device": device,
        "device_name": name,
        "threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "flush_denormal": ftz,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on for x86 CPUs)"),
        **extra,
    }


def gpu_peak_mb():
    if not tf.config.list_logical_devices("GPU"):
        return None
    return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
