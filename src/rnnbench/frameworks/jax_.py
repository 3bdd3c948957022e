"""JAX runtime settings (flax-nnx, jax-scan and, through their own runtime modules,
keras-jax and pytensor-jax).

Threads: XLA's CPU client runs every kernel (matmuls included) on one intra-op pool whose
size ``xla::DefaultThreadPoolSize()`` reads from the ``PJRT_NPROC`` environment variable
when the client is created; so it is set here, before JAX creates it (JAX may be imported
already: the quick profile's fork server, rnnbench.forkserver, imports it once for all the
workers it forks; ``JAX_PLATFORMS``, which JAX reads at import, is also set through
``jax.config`` for that reason). ``--xla_cpu_multi_thread_eigen=false`` does not limit the
current (thunk) runtime: a 2048^2 matmul still ran on 2 cores with it, and on 1 with
``PJRT_NPROC=1``.

Denormals: XLA CPU always runs with flush-to-zero and denormals-are-zero (inside jit,
``1e-40 * 1e30`` gives 0 and ``2e-38 * 0.01`` gives 0, measured), and no flag turns that off
(``--xla_cpu_ftz=false`` changes nothing). On GPUs ``--xla_gpu_ftz`` (default off) asks for
flush-to-zero in XLA's generated kernels.
"""

import os
import sys

adam_eps = 1e-8  # optax.adam's default


def setup(framework: str, threads: int, flush_denormal: bool, device: str) -> dict:
    note = None
    if "jax" in sys.modules:
        from jax._src import xla_bridge

        if xla_bridge.backends_are_initialized():
            note = "JAX was initialized before setup: PJRT_NPROC/XLA_FLAGS may not apply"
    os.environ["PJRT_NPROC"] = str(threads)
    if flush_denormal:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_gpu_ftz=true").strip()
    if device == "cpu":
        os.environ["JAX_PLATFORMS"] = "cpu"  # never initialize a GPU we will not use

    import jax

    if device == "cpu":  # the variable is read when jax is imported: a fork server imported it already
        jax.config.update("jax_platforms", "cpu")
    # Full float32 matmuls, as every other framework here runs them: on GPUs JAX's default
    # precision uses TF32/bf16 passes, and on an H100 the one-step check against the float64
    # reference then missed its 1e-3 tolerance on the 4x320 stacks (1.4e-3, measured).
    jax.config.update("jax_default_matmul_precision", "highest")
    # Compiled programs go to the run's compile cache (rnnbench.launch.compile_cache), as
    # PyTensor's and torch.compile's do: a warm run loads its executables instead of
    # compiling them again (the first step records which, ``cache_state``). Every compile
    # is kept, however short: a step's compile is many small ones (init, the update).
    cache = os.environ.get("RNNBENCH_CACHE_DIR")
    if cache:
        jax.config.update("jax_compilation_cache_dir", os.path.join(cache, "jax"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    dev = jax.devices()[0]  # JAX's default device: a GPU when it sees one
    on_gpu = dev.platform in ("gpu", "cuda")
    if device == "cuda" and not on_gpu:
        raise RuntimeError("--device cuda: JAX sees no CUDA GPU")
    jax.block_until_ready(jax.jit(lambda a: a + 1)(jax.numpy.zeros(4)))  # create the pools

    info = {
        "device": "cuda" if on_gpu else "cpu",
        "device_name": dev.device_kind if on_gpu else "cpu",
        "threads": threads,
        "xla_threads": _count_threads("tf_XLAEigen"),
        "threads_note": (
            f"PJRT_NPROC={threads} sizes XLA's CPU intra-op pool (the tf_XLAEigen threads that "
            "run the kernels); JAX also keeps idle dispatch and compiler threads"
        ),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "compilation_cache": jax.config.jax_compilation_cache_dir or "off",
    }
    if on_gpu:
        info["flush_denormal"] = "on (--xla_gpu_ftz=true)" if flush_denormal else "off"
        info["gpu_memory"] = "JAX default: preallocates 75% of GPU memory; gpu_peak_mb is the allocator's peak"
        info["float32_math"] = "full (jax_default_matmul_precision=highest)"
    else:
        info["flush_denormal"] = "on" if flush_denormal else "on (XLA CPU always flushes; cannot be turned off)"
    if note:
        info["setup_note"] = note
    return info


def _count_threads(name: str) -> int | None:
    """Threads of this process with the given name (Linux /proc), or None elsewhere."""
    tasks = f"/proc/{os.getpid()}/task"
    if not os.path.isdir(tasks):
        return None
    count = 0
    for tid in os.listdir(tasks):
        try:
            with open(f"{tasks}/{tid}/comm") as f:
                count += f.read().strip() == name
        except OSError:
            pass
    return count


def gpu_peak_mb():
    if "jax" not in sys.modules:
        return None
    import jax

    dev = jax.devices()[0]
    if dev.platform == "cpu":
        return None
    stats = dev.memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 2**20
