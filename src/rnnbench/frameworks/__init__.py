"""One record per framework: every other place (registry, CLI, worker, runner, charts)
reads these facts from here. Framework-free: this package's ``__init__`` imports no
framework; the runtime modules beside it do, and only the worker imports them.

A runtime module has ``setup(framework, threads, flush_denormal, device) -> dict`` that
sets the thread count through the framework's own API, flushes denormals where asked,
resolves ``device`` ("auto" | "cpu" | "cuda") and returns metadata to record (at least
``device``: "cpu" or "cuda", ``device_name``, ``threads``, ``flush_denormal``), plus
``gpu_peak_mb() -> float | None`` and ``adam_eps``, the framework's default Adam epsilon.
The OMP/MKL/OpenBLAS variables are set by the runner in the worker's environment.

A framework that runs on another's runtime (``runs_on``: the Keras backends, PyTensor's JAX
backend) calls that framework's ``setup`` and adds only its own settings, so the same
backend always runs under the same threads, affinity and denormal settings; ``settings``
says what each runtime sets (``rnnbench list --json``, the README's table).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Framework:
    name: str
    family: str  # the framework family a reader knows: PyTorch, TensorFlow, Keras, JAX, PyTensor
    distributions: tuple[str, ...]  # whose versions every result records
    modules: tuple[str, ...]  # that must import for the framework to count as installed
    runtime: str  # the module beside this file whose setup() the worker calls first
    extra: str  # pip extra(s) that install it: pip install 'rnnbench[EXTRA]'
    # What a fork server (rnnbench.forkserver: smoke and quick profiles) imports before
    # forking each worker: only modules that start no threads of their own and touch no
    # device at import (each of these starts only NumPy's OpenBLAS pool, whose fork handler
    # makes forking safe), and that read no setting the worker's runtime sets later, but
    # for ``cpu_preload`` below, which reads the device where it is known to be the CPU.
    # Keras reads KERAS_BACKEND at import: it is preloaded only with its backend in
    # ``preload_env``; keras-torch's torch backend also picks its device at import, so its
    # server imports Keras only where the worker's device is sure to be the CPU
    # (``cpu_preload``: rnnbench.launch.cpu_certain). Never PyTensor (its flags).
    preload: tuple[str, ...] = ()
    preload_env: dict[str, str] = field(default_factory=dict, hash=False)  # the server's environment
    cpu_preload: tuple[str, ...] = ()  # imported after ``preload`` where the device is the CPU
    cpu_preload_env: dict[str, str] = field(default_factory=dict, hash=False)
    runs_on: str | None = None  # the framework whose runtime setup() this one calls first
    # What its runtime's setup() sets, by SETTINGS_COLUMNS; for a framework that runs on
    # another, only the environment variables it adds.
    own_settings: dict[str, str] = field(default_factory=dict, hash=False)
    # The 2017 stack (rnnbench.legacy): run by the legacy worker under .venv-legacy's Python
    # 3.6; ``runtime`` is then its name in rnnbench.legacy.runtime, installed means there.
    legacy: bool = False

    @property
    def settings(self) -> dict[str, str]:
        """What the worker's runtime setup sets for this framework, by SETTINGS_COLUMNS."""
        if self.runs_on is None:
            return self.own_settings
        base = FRAMEWORKS[self.runs_on].settings
        env = ", ".join(e for e in (self.own_settings["environment"], base["environment"]) if e)
        return {**base, "environment": env}

    @property
    def installed(self) -> bool:
        if self.legacy:
            from ..legacy import host

            return not host.problem(self.modules)
        return all(importlib.util.find_spec(m) is not None for m in self.modules)

    def versions(self) -> dict[str, str]:
        if self.legacy:  # installed in the legacy interpreter, not here
            from ..legacy import host

            return host.versions(self.distributions)
        from importlib import metadata

        out = {}
        for dist in self.distributions:
            try:
                out[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                pass
        return out

    def install_hint(self) -> str:
        if self.legacy:
            from ..legacy import host

            return f"make legacy ({host.problem(self.modules) or 'installed'})"
        return f"pip install 'rnnbench[{self.extra}]'"


SETTINGS_COLUMNS = ("intra-op threads", "inter-op threads", "CPU affinity", "denormals",
                    "device", "GPU memory", "environment")
# What each runtime's setup() sets (`rnnbench list --json`, the README's table), besides the
# OMP/MKL/OpenBLAS/NUMEXPR/NUMBA thread variables the runner sets to N for every framework.
# N is --threads; "flag" is on unless --no-flush-denormal.
TORCH = {
    "intra-op threads": "torch.set_num_threads(N)",
    "inter-op threads": "torch.set_num_interop_threads(1)",
    "CPU affinity": "not set",
    "denormals": "torch.set_flush_denormal(flag)",
    "device": "cuda if torch.cuda.is_available(); cudnn.benchmark = True and TF32 off on it",
    "GPU memory": "caching allocator (default)",
    "environment": "",
}
TENSORFLOW = {
    "intra-op threads": "tf.config.threading.set_intra_op_parallelism_threads(N)",
    "inter-op threads": "tf.config.threading.set_inter_op_parallelism_threads(1)",
    "CPU affinity": "not set",
    "denormals": "always flushed (TensorFlow sets FTZ/DAZ itself; no switch)",
    "device": "GPU if one is listed; on CPU runs GPUs are hidden (set_visible_devices)",
    "GPU memory": "set_memory_growth(True)",
    "environment": "TF_CPP_MIN_LOG_LEVEL=2",
}
JAX = {
    "intra-op threads": "PJRT_NPROC=N (XLA's CPU compute pool)",
    "inter-op threads": "no setting: every XLA CPU kernel runs on that one pool",
    "CPU affinity": "not set",
    "denormals": "CPU: always flushed (XLA; no switch); GPU: --xla_gpu_ftz=true if flag",
    "device": "JAX's default device; JAX_PLATFORMS=cpu for --device cpu; float32 matmuls at 'highest' precision",
    "GPU memory": "JAX default: preallocates 75%",
    "environment": "PJRT_NPROC, JAX_PLATFORMS (--device cpu), XLA_FLAGS (if flag)",
}
PYTENSOR = {
    "intra-op threads": "numba.set_num_threads(N); scipy_openblas_set_num_threads(N)",
    "inter-op threads": "no setting: ops run one after another",
    "CPU affinity": "not set",
    "denormals": "FTZ|DAZ set in MXCSR when flag (x86-64)",
    "device": "CPU only (numba)",
    "GPU memory": "no GPU",
    "environment": "PYTENSOR_FLAGS=base_compiledir=<cache>,traceback__limit=0",
}

# The 2017 stack (rnnbench.legacy.runtime says how each is set).
LEGACY_TORCH = {**TORCH, "inter-op threads": "not set (PyTorch 1.0)", "device": "CPU only",
                "GPU memory": "no GPU", "environment": "OPENBLAS_CORETYPE=Haswell"}
LEGACY_TF = {**TENSORFLOW, "intra-op threads": "tf.ConfigProto(intra_op_parallelism_threads=N)",
             "inter-op threads": "tf.ConfigProto(inter_op_parallelism_threads=1)",
             "device": "CPU only (device_count={'GPU': 0})", "GPU memory": "no GPU",
             "environment": "TF_CPP_MIN_LOG_LEVEL=2, OPENBLAS_CORETYPE=Haswell"}
LEGACY_THEANO = {"intra-op threads": "OPENBLAS_NUM_THREADS=N (NumPy's BLAS; Theano's own ops are serial)",
                 "inter-op threads": "no setting: ops run one after another", "CPU affinity": "not set",
                 "denormals": "not flushed (Theano has no switch)", "device": "CPU only (THEANO_FLAGS device=cpu)",
                 "GPU memory": "no GPU",
                 "environment": "THEANO_FLAGS=floatX=float32,device=cpu,base_compiledir=<cache>, OPENBLAS_CORETYPE=Haswell"}


def _legacy(name: str, family: str, settings: dict[str, str], backend: str = "") -> Framework:
    """A framework of the 2017 stack: its distributions and modules from rnnbench.legacy."""
    from ..legacy import FRAMEWORKS as LEGACY

    if backend:
        settings = {**settings, "environment": f"KERAS_BACKEND={backend}, " + settings["environment"]}
    return Framework(name, family, *LEGACY[name], runtime=name, extra="", own_settings=settings, legacy=True)


TORCH_IMPORTS = ("torch", "torch._dynamo")  # torch.optim loads torch._dynamo: 1.7-2.4 s of the import

FRAMEWORKS: dict[str, Framework] = {
    f.name: f
    for f in [
        Framework("torch", "PyTorch", ("torch",), ("torch",), "torch_", "torch",
                  preload=TORCH_IMPORTS, own_settings=TORCH),
        Framework("tensorflow", "TensorFlow", ("tensorflow-cpu", "tensorflow"), ("tensorflow",),
                  "tensorflow_", "tensorflow", preload=("tensorflow",), own_settings=TENSORFLOW),
        Framework("keras-tensorflow", "Keras", ("keras", "tensorflow-cpu", "tensorflow"), ("keras", "tensorflow"),
                  "keras_", "keras", runs_on="tensorflow", preload=("tensorflow", "keras"),
                  preload_env={"KERAS_BACKEND": "tensorflow"},  # TensorFlow's import loads Keras too
                  own_settings={"environment": "KERAS_BACKEND=tensorflow"}),
        Framework("keras-jax", "Keras", ("keras", "jax", "jaxlib"), ("keras", "jax"), "keras_", "keras",
                  runs_on="jax", preload=("jax", "keras"), preload_env={"KERAS_BACKEND": "jax"},
                  own_settings={"environment": "KERAS_BACKEND=jax"}),
        Framework("keras-torch", "Keras", ("keras", "torch"), ("keras", "torch"), "keras_", "keras",
                  runs_on="torch", preload=TORCH_IMPORTS, cpu_preload=("keras",),
                  cpu_preload_env={"KERAS_BACKEND": "torch", "KERAS_TORCH_DEVICE": "cpu"},
                  own_settings={"environment": "KERAS_BACKEND=torch, KERAS_TORCH_DEVICE=<device>"}),
        Framework("jax", "JAX", ("jax", "jaxlib", "flax", "optax"), ("jax", "flax", "optax"), "jax_", "jax",
                  preload=("jax", "flax", "optax"), own_settings=JAX),
        Framework("pytensor", "PyTensor", ("pytensor", "numba"), ("pytensor",), "pytensor_", "pytensor",
                  own_settings=PYTENSOR),
        Framework("pytensor-jax", "PyTensor", ("pytensor", "jax", "jaxlib"), ("pytensor", "jax"),
                  "pytensor_", "pytensor,jax", runs_on="jax", preload=("jax",),
                  own_settings={"environment": "PYTENSOR_FLAGS=base_compiledir=<cache>,traceback__limit=0"}),
        _legacy("theano", "Theano", LEGACY_THEANO),
        _legacy("keras2-theano", "Keras 2", LEGACY_THEANO, backend="theano"),
        _legacy("keras2-tf1", "Keras 2", LEGACY_TF, backend="tensorflow"),
        _legacy("tf1", "TensorFlow 1", LEGACY_TF),
        _legacy("torch1", "PyTorch 1", LEGACY_TORCH),
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
    # The 2017 stack: greyed versions of its successors' hues.
    "PyTorch 1": ("#8c6d6d", "#b89a9a"),
    "TensorFlow 1": ("#8c7a64", "#b3a08a", "#d1c2b0"),
    "Keras 2": ("#77708a", "#a49db5"),
    "Theano": ("#4f6b57", "#5f7a66"),  # family_colour takes the second shade
}


def runtime(framework: str):
    return importlib.import_module(f"{__name__}.{FRAMEWORKS[framework].runtime}")
