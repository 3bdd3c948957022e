"""PyTensor runtime settings: the numba backend (CPU only) and, for pytensor-jax, JAX's.

What is controlled, and how:

* compile cache: PyTensor keeps compiled C modules and numba's on-disk cache under
  ``base_compiledir``. It is pointed at ``$RNNBENCH_CACHE_DIR`` (else
  ``<tmp>/rnnbench-pytensor``) through ``PYTENSOR_FLAGS`` before PyTensor is imported,
  so a run never reads or writes ``~/.pytensor``.
* stack traces: by default PyTensor keeps, on every node it creates, the 8 user frames
  that created it (``traceback__limit``), for its error messages; building a 4-layer
  bidirectional LSTM's training graph creates about 250,000 and spent a quarter of its
  build there (quick size, 2-core AMD: 25.6 s, 16.9-19.9 s with ``traceback__limit=0``).
  The workers set it to 0 unless ``PYTENSOR_FLAGS`` already sets it (to debug a graph).
  The compiled function is the same.
* threads: the numba backend compiles elementwise code single-threaded (no
  ``parallel=True``) and calls SciPy's bundled OpenBLAS for matrix products; that
  OpenBLAS reads ``OPENBLAS_NUM_THREADS`` (set by the runner) and is also set through its
  own ``scipy_openblas_set_num_threads`` and read back. ``numba.set_num_threads`` is set
  too, for any parallel kernel.
* denormals: neither numba nor NumPy flushes them. On x86-64 the FTZ and DAZ bits of
  MXCSR are set with a two-instruction numba intrinsic (``stmxcsr``/``ldmxcsr``) in the
  calling thread, before any BLAS thread exists, so threads created later inherit it
  (the same scope as ``torch.set_flush_denormal``). Other CPUs: recorded as not supported.
* device: the numba backend is CPU only, so ``cuda`` is refused.

Framework ``pytensor-jax`` (the same graphs compiled by PyTensor's JAX backend) takes the
JAX runtime's settings instead (``PJRT_NPROC`` threads, XLA's own flush-to-zero, a GPU
when JAX sees one): see :mod:`rnnbench.frameworks.jax_`.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile

from . import FRAMEWORKS, runtime

adam_eps = 1e-8  # Lasagne's adam() default (PyTensor ships no optimizers)

MXCSR_FTZ_DAZ = 0x8040  # bit 15: flush-to-zero, bit 6: denormals-are-zero


def cache_dir() -> str:
    return os.environ.get("RNNBENCH_CACHE_DIR") or os.path.join(
        tempfile.gettempdir(), "rnnbench-pytensor")


def configure_flags() -> None:
    """Point PyTensor's compile cache at our directory, and record no stack trace per graph
    node unless the user's PYTENSOR_FLAGS ask for one; must run before PyTensor is imported."""
    flags = [f for f in os.environ.get("PYTENSOR_FLAGS", "").split(",")
             if f and not f.startswith(("base_compiledir=", "compiledir="))]
    flags.append(f"base_compiledir={cache_dir()}")
    if not any(f.startswith("traceback__limit=") for f in flags):
        flags.append("traceback__limit=0")
    os.environ["PYTENSOR_FLAGS"] = ",".join(flags)


def set_flush_denormal() -> bool:
    """Set FTZ|DAZ in this thread's MXCSR (x86-64 only); True when both bits read back."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    from llvmlite import ir
    from numba import njit, types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def mxcsr_or(typingctx, bits):
        def codegen(context, builder, signature, args):
            i32, i8p = ir.IntType(32), ir.IntType(8).as_pointer()
            fnty = ir.FunctionType(ir.VoidType(), [i8p])
            stmxcsr = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.stmxcsr")
            ldmxcsr = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.ldmxcsr")
            slot = cgutils.alloca_once(builder, i32)
            builder.call(stmxcsr, [builder.bitcast(slot, i8p)])
            builder.store(builder.or_(builder.load(slot), args[0]), slot)
            builder.call(ldmxcsr, [builder.bitcast(slot, i8p)])
            builder.call(stmxcsr, [builder.bitcast(slot, i8p)])
            return builder.load(slot)

        return types.uint32(types.uint32), codegen

    @njit
    def set_bits(bits):
        return mxcsr_or(bits)

    return (int(set_bits(MXCSR_FTZ_DAZ)) & MXCSR_FTZ_DAZ) == MXCSR_FTZ_DAZ


def _scipy_openblas():
    """SciPy's bundled OpenBLAS (what numba's np.dot calls), or None."""
    import ctypes
    import glob

    import scipy
    import scipy.linalg.cython_blas  # noqa: F401  (loads the library)

    libs = glob.glob(os.path.join(os.path.dirname(scipy.__file__) + ".libs", "libscipy_openblas*.so*"))
    if len(libs) != 1:
        return None
    lib = ctypes.CDLL(libs[0])
    if not hasattr(lib, "scipy_openblas_get_num_threads"):
        return None
    return lib


def _compiledir(pytensor) -> str:
    return str(pytensor.config.base_compiledir)


def setup(framework: str, threads: int, flush_denormal: bool, device: str) -> dict:
    configure_flags()
    backend = FRAMEWORKS[framework].runs_on
    if backend:  # pytensor-jax: exactly the JAX runtime's settings
        info = runtime(backend).setup(backend, threads, flush_denormal, device)
        import pytensor

        return {**info, "linker": "JAXLinker", "compiledir": _compiledir(pytensor)}
    if device == "cuda":
        raise RuntimeError("--device cuda: PyTensor's numba backend is CPU only")
    # FTZ/DAZ before BLAS is loaded, so its worker threads inherit the setting.
    if flush_denormal:
        ftz = "on" if set_flush_denormal() else f"off (not supported on {platform.machine()})"
    else:
        ftz = "off"

    import numba
    import pytensor

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    blas = _scipy_openblas()
    if blas is not None:
        blas.scipy_openblas_set_num_threads(threads)
        blas_threads = str(blas.scipy_openblas_get_num_threads())
    else:
        blas_threads = os.environ.get("OPENBLAS_NUM_THREADS", "unknown")
    mode = pytensor.compile.mode.get_default_mode()
    return {
        "device": "cpu",
        "device_name": "cpu",
        "threads": threads,
        "numba_threads": numba.get_num_threads(),
        "blas_threads": blas_threads,
        "flush_denormal": ftz,
        "linker": type(mode.linker).__name__,
        "compiledir": _compiledir(pytensor),
    }


def gpu_peak_mb():
    if "jax" not in sys.modules:  # only the pytensor-jax framework can use a GPU
        return None
    from . import jax_

    return jax_.gpu_peak_mb()
